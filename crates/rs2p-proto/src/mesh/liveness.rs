//! Failure detection: a keepalive to quiet peers, and a deadline after which
//! a silent peer is declared gone.
//!
//! A crashed process's sockets are reset by its kernel, and the driver sees
//! the link close at once. A host that is unplugged, frozen or cut off by a
//! firewall closes nothing: its links only fall silent. So every handshaken
//! peer that has sent nothing for [`Config::keepalive_ms`] is asked for its
//! peer list (py2p's request `*`, which py2p and rs2p both answer), and one
//! silent for [`Config::peer_timeout_ms`] is closed as dead (an rs2p peer
//! gets the rs2p `ping` instead of `*`: a peer list costs kilobytes in a
//! ring with fingers), which starts
//! the same recovery as a reset link (for a seeding peer: repair).
//!
//! [`Config::keepalive_ms`]: crate::core::Config::keepalive_ms
//! [`Config::peer_timeout_ms`]: crate::core::Config::peer_timeout_ms

use bytes::Bytes;

use super::{Mesh, PeerExt};
use crate::core::ConnId;
use crate::wire::flags;

const PING: &[u8] = b"ping";
const PONG: &[u8] = b"pong";

impl<X: PeerExt> Mesh<X> {
    /// Sends keepalives to quiet peers; returns the connections silent past
    /// the deadline, with how long (ms), for [`Mesh::close_silent`] (the
    /// protocol above looks at them first: a lost ring neighbour is probed
    /// again).
    pub(crate) fn liveness_scan(&mut self) -> Vec<(ConnId, u64)> {
        let now = self.now;
        let keepalive = self.cfg.keepalive_ms;
        let timeout = self.cfg.peer_timeout_ms.max(keepalive);
        // If we were not ticked for a while (the process was stopped, the
        // machine overloaded, or a simulation jumped its clock), silence is
        // ours, not the peers': give every link a fresh keepalive period.
        let starved = now.saturating_sub(self.last_tick) > keepalive;
        self.last_tick = now;
        let mut silent: Vec<(ConnId, u64)> = Vec::new();
        let mut ping: Vec<ConnId> = Vec::new();
        for c in self.conns.values_mut().filter(|c| c.handshaken) {
            if starved {
                c.alive_at = c.alive_at.max(now.saturating_sub(keepalive));
                continue;
            }
            let quiet = now.saturating_sub(c.alive_at);
            if quiet >= timeout {
                silent.push((c.id, quiet));
            } else if quiet >= keepalive && now.saturating_sub(c.last_ping) >= keepalive {
                c.last_ping = now;
                ping.push(c.id);
            }
        }
        for conn in ping {
            let probe = if self.is_rs2p(conn) {
                vec![Bytes::from_static(&[flags::RS2P_PING]), Bytes::from_static(PING)]
            } else {
                vec![Bytes::from_static(&[flags::REQUEST]), Bytes::from_static(b"*")]
            };
            self.send_on(conn, flags::WHISPER, probe);
        }
        silent
    }

    /// Closes a connection found silent for `quiet` ms. Its
    /// [`super::Upcall::Lost`] says [`super::LostCause::Silent`].
    pub(crate) fn close_silent(&mut self, conn: ConnId, quiet: u64) {
        if !self.conns.contains_key(&conn) {
            return;
        }
        let text = format!("closing connection: peer silent for {quiet} ms (keepalives unanswered)");
        self.record_error(Some(conn), text.clone());
        self.counters.bad_input(crate::core::BadInput::Silent);
        self.actions.push_back(crate::core::Action::Close { conn });
        self.forget_conn_by(conn, &text, super::LostCause::Silent);
    }

    /// The rs2p keepalive (§16.14): a `ping` is answered `pong`; either
    /// counts as traffic, which is all the liveness check needs.
    pub(crate) fn handle_ping(&mut self, conn: ConnId, payload: &[Bytes]) {
        if payload[1].as_ref() == PING {
            self.send_on(conn, flags::WHISPER, vec![Bytes::from_static(&[flags::RS2P_PING]), Bytes::from_static(PONG)]);
        }
    }
}
