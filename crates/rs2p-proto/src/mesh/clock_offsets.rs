//! Peers' clocks seen through the dates of their whispers: each link's
//! offset (for `rs2p status` and the broadcast window), a loud warning past
//! the tolerance, and the hybrid clock kept at the fastest clock in reach.

use super::{Mesh, PeerExt};
use crate::core::ConnId;

impl<X: PeerExt> Mesh<X> {
    /// A whisper's date from `conn` (whispers are sent as they are dated,
    /// unlike relayed broadcasts): the peer's clock offset. An rs2p peer
    /// whose clock is off by more than `Config::max_clock_skew_ms` is
    /// reported once per link (its broadcasts and versions are refused).
    pub(super) fn note_peer_clock(&mut self, conn: ConnId, time_secs: u64) {
        let wall = self.wall_now() as i64;
        let max = self.cfg.max_clock_skew_ms as i64;
        let Some(c) = self.conns.get_mut(&conn).filter(|c| c.rs2p) else { return };
        // Seconds on the wire (any u64 a peer chooses: clamped, so that no
        // arithmetic below can overflow); an offset under a second is noise.
        let secs = i64::try_from(time_secs).unwrap_or(i64::MAX / 1000).min(i64::MAX / 1000);
        let offset = secs.saturating_mul(1000).saturating_sub(wall).clamp(-(1 << 50), 1 << 50);
        let offset = if offset.unsigned_abs() < 1500 { 0 } else { offset };
        let was = c.clock_offset_ms;
        c.clock_offset_ms = offset;
        if offset.unsigned_abs() <= max.unsigned_abs() {
            // The hybrid clock follows the fastest clock among the peers
            // (to within the second the date carries), so that a write made
            // here after one made there is versioned after it.
            let floor = time_secs.saturating_mul(1000).saturating_sub(1000) << 16;
            self.hlc.observe(floor, wall as u64, max as u64);
        }
        if offset.unsigned_abs() > max.unsigned_abs() && was.unsigned_abs() <= max.unsigned_abs() {
            let peer = c.peer.as_ref().map(|p| p.short().to_string()).unwrap_or_default();
            self.counters.clock_skew_warnings += 1;
            self.record_error(
                Some(conn),
                format!(
                    "peer {peer}'s clock is {:.1} s off ours, past the {:.0} s tolerated: its writes and broadcasts are refused; fix the clocks (NTP)",
                    offset as f64 / 1000.0,
                    max as f64 / 1000.0
                ),
            );
        }
    }

    /// The largest clock offset of a linked rs2p peer (ms; positive: ahead).
    pub fn clock_skew_ms(&self) -> i64 {
        self.conns
            .values()
            .filter(|c| c.handshaken && c.rs2p)
            .map(|c| c.clock_offset_ms)
            .max_by_key(|o| o.unsigned_abs())
            .unwrap_or(0)
    }
}
