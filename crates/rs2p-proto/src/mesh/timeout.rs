//! When the mesh next has timer work: a handshake's deadline, a
//! half-received frame's, a keepalive or a silence deadline, the expiry of
//! a route request. [`Mesh::on_tick`] and [`Mesh::liveness_scan`] do that
//! work; the node above adds its own deadlines (`chord::Node::poll_timeout`).

use super::{Mesh, PeerExt};
use crate::core::Time;

impl<X: PeerExt> Mesh<X> {
    /// The earliest instant at which the mesh has timer work, if any.
    /// Pruning that is memory only (dial backoffs, address rests: each is
    /// checked against the clock where it is used) has no deadline of its
    /// own and runs whenever the node is ticked; seen broadcast ids do
    /// (a replay of one pruned is refused by its age instead).
    pub(crate) fn next_timeout(&self) -> Option<Time> {
        let cfg = &self.cfg;
        let mut due: Option<Time> = None;
        let mut at = |t: Time| due = Some(due.map_or(t, |d| d.min(t)));
        // No pass over the links (this runs after every frame): lower
        // bounds kept as links open, handshake and get partial frames,
        // made exact at each tick.
        if let Some(t) = self.conn_timer {
            at(t);
        }
        if let Some(t) = self.live_timer {
            at(t);
        }
        if let Some(secs) = self.recent.next_expiry() {
            // Seen ids are dated by the wall clock; timers run on `now`.
            let wall = secs.saturating_mul(1000);
            at(wall.saturating_add_signed(self.wall_offset.saturating_neg()).max(self.now));
        }
        let horizon = cfg.get_timeout_ms.max(super::node::ROUTE_REQUEST_KEEP_MS);
        if let Some(t) = self.route_requests.values().map(|(t, _)| *t).min() {
            at(t.saturating_add(horizon).saturating_add(1));
        }
        due
    }

    /// Lowers [`Mesh::conn_timer`] to `t`.
    pub(super) fn lower_conn_timer(&mut self, t: Time) {
        self.conn_timer = Some(self.conn_timer.map_or(t, |d| d.min(t)));
    }

    /// Lowers [`Mesh::live_timer`] for a link handshaken at `now`.
    pub(super) fn lower_live_timer(&mut self) {
        let t = self.fresh_link_deadline();
        self.live_timer = Some(self.live_timer.map_or(t, |d| d.min(t)));
    }

    /// When the node was last ticked.
    pub(crate) fn last_tick(&self) -> Time {
        self.last_tick
    }
}
