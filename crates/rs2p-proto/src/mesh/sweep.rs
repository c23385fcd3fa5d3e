//! The pass over the connections a tick makes (idle half-sent frames,
//! handshakes that did not come, the next such deadline), in one pass and
//! only while some connection holds a partial frame or awaits a handshake:
//! counts kept as connections move in and out of those states say so
//! without touching every (cold) connection on every tick.

use super::{Mesh, PeerExt};
use crate::core::{ConnId, Time};

/// What a tick's pass over the connections found.
#[derive(Default)]
pub(super) struct Sweep {
    /// Holding a partial frame with nothing received for too long.
    pub(super) stale: Vec<ConnId>,
    /// Not stale, but with no handshake in time: (connection, outgoing).
    pub(super) late: Vec<(ConnId, bool)>,
    /// The earliest handshake or half-frame deadline of the others.
    pub(super) deadline: Option<Time>,
}

impl<X: PeerExt> Mesh<X> {
    /// Counts a connection's move into or out of holding a partial frame
    /// ([`Mesh::partial_conns`]).
    pub(super) fn partial_changed(&mut self, was: bool, is: bool) {
        match (was, is) {
            (false, true) => self.partial_conns += 1,
            (true, false) => self.partial_conns -= 1,
            _ => {}
        }
    }

    /// Counts a connection's move into or out of awaiting its peer's
    /// handshake, dial complete ([`Mesh::awaiting_conns`]).
    pub(super) fn awaiting_changed(&mut self, was: bool, is: bool) {
        match (was, is) {
            (false, true) => self.awaiting_conns += 1,
            (true, false) => self.awaiting_conns -= 1,
            _ => {}
        }
    }

    /// The tick's pass: connections idle too long in a partial frame
    /// (judged at `now`), connections past their handshake deadline
    /// (judged at the node's time), and the next deadline of the rest.
    pub(super) fn sweep_conns(&self, now: Time) -> Sweep {
        debug_assert_eq!(self.partial_conns, self.conns.values().filter(|c| c.buffered() > 0).count());
        debug_assert_eq!(self.awaiting_conns, self.conns.values().filter(|c| !c.handshaken && !c.dialing).count());
        let mut sweep = Sweep::default();
        if self.partial_conns == 0 && self.awaiting_conns == 0 {
            return sweep;
        }
        let cfg = &self.cfg;
        let mut lower = |t: Time| sweep.deadline = Some(sweep.deadline.map_or(t, |d| d.min(t)));
        let (mut stale, mut late) = (Vec::new(), Vec::new());
        for c in self.conns.values() {
            let partial = c.buffered() > 0;
            let awaiting = !c.handshaken && !c.dialing;
            if partial && now.saturating_sub(c.last_rx) > cfg.half_frame_timeout_ms {
                stale.push(c.id);
                continue;
            }
            if awaiting && self.now.saturating_sub(c.opened_at) > cfg.handshake_timeout_ms {
                late.push((c.id, c.outgoing));
                continue;
            }
            if awaiting {
                lower(c.opened_at.saturating_add(cfg.handshake_timeout_ms).saturating_add(1));
            }
            if partial {
                lower(c.last_rx.saturating_add(cfg.half_frame_timeout_ms).saturating_add(1));
            }
        }
        sweep.stale = stale;
        sweep.late = late;
        sweep
    }
}
