//! The broadcast relay ("waterfall"): dates checked against the window,
//! ids remembered so that each broadcast is relayed once, and relayed to
//! every peer but the sender.

use super::{Mesh, PeerExt};
use crate::core::ConnId;
use crate::wire::Message;

impl<X: PeerExt> Mesh<X> {
    /// §8: age check, duplicate check, relay. True when the message is new.
    ///
    /// py2p's window is 60 s each way. A broadcast arriving from an rs2p
    /// peer is also accepted within `Config::max_clock_skew_ms` more, either
    /// way, so that rings of hosts whose clocks are minutes apart still
    /// share their key lists; ids are remembered that much longer, so a
    /// replay is caught for as long as it could be accepted.
    pub(super) fn waterfall(&mut self, conn: ConnId, msg: &Message, id: &str) -> bool {
        let now = self.now_secs();
        let slack = if self.is_rs2p(conn) { self.cfg.max_clock_skew_ms / 1000 } else { 0 };
        if msg.time.saturating_add(super::recent::MAX_AGE_SECS + slack) < now {
            tracing::debug!(node = %self.id.short(), conn = conn.0, "dropping expired broadcast");
            return false;
        }
        if msg.time > now.saturating_add(super::recent::MAX_FUTURE_SECS + slack) {
            let ahead = msg.time - now;
            self.record_error(Some(conn), format!("dropping a broadcast dated {ahead} s ahead of our clock"));
            return false;
        }
        let remembered = self.remembered_until(msg.time);
        if !self.recent.insert(id, remembered) {
            return false;
        }
        // Some broadcasts make py2p drop the link (D1): only to rs2p peers.
        let rs2p_only = (self.rs2p_only)(msg);
        let py2p_only = (self.py2p_only)(msg);
        self.relay_to_routed(msg, id, |rs2p| if rs2p { !py2p_only } else { !rs2p_only });
        true
    }

    /// Relays a broadcast to every routed peer but its sender whose kind
    /// (rs2p or not) `wanted` accepts.
    fn relay_to_routed(&mut self, msg: &Message, id: &str, wanted: impl Fn(bool) -> bool) {
        for target in self.routed_conns() {
            let Some(c) = self.conns.get(&target) else {
                continue;
            };
            let to_sender = c.peer.as_ref().is_some_and(|p| p.as_str().as_bytes() == msg.sender.as_ref());
            if to_sender || !wanted(c.rs2p) {
                continue;
            }
            self.relay_on(target, msg, id);
        }
    }
}

impl<X: PeerExt> Mesh<X> {
    /// True if a broadcast dated `time` (seconds, the sender's clock) is
    /// within the window [`Mesh::waterfall`] accepts from an rs2p peer.
    pub(crate) fn broadcast_date_ok(&self, time: u64) -> bool {
        let now = self.now_secs();
        let slack = self.cfg.max_clock_skew_ms / 1000;
        time >= self.broadcast_horizon() && time <= now.saturating_add(super::recent::MAX_FUTURE_SECS + slack)
    }

    /// The earliest date (seconds) [`Mesh::broadcast_date_ok`] accepts now.
    fn broadcast_horizon(&self) -> u64 {
        let slack = self.cfg.max_clock_skew_ms / 1000;
        self.now_secs().saturating_sub(super::recent::MAX_AGE_SECS + slack)
    }

    /// The time under which the id of a broadcast dated `time` is kept in
    /// a [`super::RecentIds`]: kept until it can no longer be accepted (its
    /// date, plus the slack any link may grant), so that a replay is always
    /// caught.
    pub(crate) fn remembered_until(&self, time: u64) -> u64 {
        time.saturating_add(self.cfg.max_clock_skew_ms / 1000 + 1)
    }

    /// True if a handshaken py2p peer (no rs2p capability) is linked.
    pub(crate) fn has_py2p_peer(&self) -> bool {
        self.has_peer_of_kind(false)
    }

    /// True if a handshaken peer with the rs2p capability is linked.
    pub(crate) fn has_rs2p_peer(&self) -> bool {
        self.has_peer_of_kind(true)
    }

    fn has_peer_of_kind(&self, rs2p: bool) -> bool {
        self.routing.values().any(|c| self.conns.get(c).is_some_and(|c| c.rs2p == rs2p))
    }

    /// Sends a broadcast, ours or one rebuilt from an rs2p key-list batch,
    /// to our py2p peers only (not to its sender), keeping its id: to them
    /// it is the broadcast they would have had from the flood. Its id is
    /// remembered, so that it goes out once and its echo is dropped;
    /// nothing is sent (nor hashed) when no py2p peer is linked.
    pub(crate) fn broadcast_to_py2p(&mut self, msg: &Message) {
        if !self.has_py2p_peer() {
            return;
        }
        let id = crate::wire::message_id(&msg.payload, msg.time);
        let remembered = self.remembered_until(msg.time);
        if !self.recent.insert(&id, remembered) {
            return;
        }
        self.relay_to_routed(msg, &id, |rs2p| !rs2p);
    }
}
