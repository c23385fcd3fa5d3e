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
use crate::core::{ConnId, Time};
use crate::wire::flags;

const PING: &[u8] = b"ping";
const PONG: &[u8] = b"pong";

/// When a scan pings a link that is due, it also pings the links due
/// within this fraction of their period: a node's keepalives go out
/// together, so it wakes about once per period for them, not once per link.
const BATCH_DIV: u64 = 8;

/// The liveness timers of one link: (keepalive period, silence deadline).
pub(crate) fn periods<X: PeerExt>(cfg: &crate::core::Config, c: &super::Conn<X>) -> (u64, u64) {
    if c.finger_only {
        let ka = cfg.finger_keepalive_ms;
        (ka, cfg.finger_peer_timeout_ms.max(ka))
    } else {
        (cfg.keepalive_ms, cfg.peer_timeout_ms.max(cfg.keepalive_ms))
    }
}

/// When a handshaken link next needs its keepalive, and when it is silent
/// past its deadline.
fn deadlines<X: PeerExt>(cfg: &crate::core::Config, c: &super::Conn<X>) -> (Time, Time) {
    let (ka, timeout) = periods(cfg, c);
    let ping = c.alive_at.max(c.last_ping).saturating_add(ka);
    (ping, c.alive_at.saturating_add(timeout))
}

impl<X: PeerExt> Mesh<X> {
    /// The earliest liveness deadline of the handshaken links (a keepalive
    /// due, or a silence past its limit); `None` without links.
    pub(crate) fn liveness_due(&self) -> Option<Time> {
        self.conns
            .values()
            .filter(|c| c.handshaken)
            .map(|c| {
                let (ping, silent) = deadlines(&self.cfg, c);
                ping.min(silent)
            })
            .min()
    }

    /// Sends keepalives to quiet peers; returns the connections silent past
    /// the deadline, with how long (ms), for [`Mesh::close_silent`] (the
    /// protocol above looks at them first: a lost ring neighbour is probed
    /// again).
    pub(crate) fn liveness_scan(&mut self) -> Vec<(ConnId, u64)> {
        let now = self.now;
        let keepalive = self.cfg.keepalive_ms;
        // If we were woken much later than our earliest liveness deadline
        // (the process was stopped, the machine overloaded, or a
        // simulation jumped its clock), silence is ours, not the peers':
        // give every link a fresh keepalive period.
        let starved = now.saturating_sub(self.liveness_at.unwrap_or(self.last_tick)) > keepalive;
        self.last_tick = now;
        let mut silent: Vec<(ConnId, u64)> = Vec::new();
        let mut ping: Vec<ConnId> = Vec::new();
        let mut any_due = false;
        for c in self.conns.values_mut().filter(|c| c.handshaken) {
            if starved {
                let (ka, _) = periods(&self.cfg, c);
                c.alive_at = c.alive_at.max(now.saturating_sub(ka));
                continue;
            }
            let (ka, _) = periods(&self.cfg, c);
            let (due, dead) = deadlines(&self.cfg, c);
            if now >= dead {
                silent.push((c.id, now.saturating_sub(c.alive_at)));
            } else if due <= now.saturating_add(ka / BATCH_DIV) {
                any_due |= due <= now;
                ping.push(c.id);
            }
        }
        if !any_due {
            ping.clear();
        }
        for conn in ping {
            if let Some(c) = self.conns.get_mut(&conn) {
                c.last_ping = now;
            }
            let probe = if self.is_rs2p(conn) {
                vec![Bytes::from_static(&[flags::RS2P_PING]), Bytes::from_static(PING)]
            } else {
                vec![Bytes::from_static(&[flags::REQUEST]), Bytes::from_static(b"*")]
            };
            self.send_on(conn, flags::WHISPER, probe);
        }
        silent
    }

    /// Sets whether a link is only a finger to the protocol above (kept
    /// alive on [`crate::core::Config::finger_keepalive_ms`]).
    pub(crate) fn set_finger_only(&mut self, conn: ConnId, finger: bool) {
        let (now, keepalive) = (self.now, self.cfg.keepalive_ms);
        if let Some(c) = self.conns.get_mut(&conn) {
            if c.finger_only && !finger {
                // Now a ring neighbour: its silence so far is judged by the
                // shorter period from here on (a keepalive at once), not
                // retroactively.
                c.alive_at = c.alive_at.max(now.saturating_sub(keepalive));
            }
            c.finger_only = finger;
        }
    }

    /// Remembers the earliest liveness deadline after a scan and the
    /// closes it led to (see the starvation check of [`Mesh::liveness_scan`]).
    pub(crate) fn liveness_scanned(&mut self) {
        self.liveness_at = self.liveness_due();
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
