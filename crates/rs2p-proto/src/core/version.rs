//! Versions of writes: a hybrid logical clock timestamp and the writer.
//!
//! Between rs2p nodes every write and every delete carries a [`Version`]:
//! wherever copies of an item disagree (a get, a handoff, a replica, a
//! repair, two rings merging), the higher version wins and a delete is a
//! version too (a tombstone). The timestamp is a hybrid logical clock
//! (Kulkarni et al., *Logical physical clocks*, 2014): the wall clock in
//! milliseconds in the high 48 bits and a counter in the low 16, never
//! behind any version the node has seen. So a write made after a node saw
//! another write is ordered after it whatever the two hosts' clocks say,
//! and the clocks of a ring that talks to itself converge on the fastest
//! one: a write's version is "later" in real time within the delay of a
//! message, even on hosts whose clocks are minutes apart. A version dated
//! more than [`Config::max_clock_skew_ms`] ahead of our own clock is
//! refused, so one host with a clock a year ahead cannot drag the ring's
//! clocks along. Equal timestamps are ordered by the writer (64 bits of its
//! node id), so two writes never tie.
//!
//! py2p's copies carry no version ([`Version::ZERO`]): an rs2p owner dates
//! a store that arrives without one when it arrives (py2p's own rule: the
//! last store to land wins).
//!
//! [`Config::max_clock_skew_ms`]: crate::core::Config::max_clock_skew_ms

use super::Time;

/// Bits of the logical counter below the milliseconds.
const LOGICAL_BITS: u32 = 16;

/// The version of a write or a delete; ordered by time, then writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Version {
    /// Hybrid logical clock: wall milliseconds << 16 | counter.
    pub hlc: u64,
    /// The writer's tie-break (64 bits of its node id).
    pub writer: u64,
}

impl Version {
    /// No version: a py2p copy, or one written before versions existed.
    pub const ZERO: Version = Version { hlc: 0, writer: 0 };

    /// Bytes on the wire.
    pub const WIRE_LEN: usize = 16;

    /// True for [`Version::ZERO`].
    pub fn is_zero(&self) -> bool {
        *self == Version::ZERO
    }

    /// The wall-clock time (ms since the epoch) the version is dated.
    pub fn wall_ms(&self) -> Time {
        self.hlc >> LOGICAL_BITS
    }

    /// Big-endian: the timestamp, then the writer.
    pub fn to_bytes(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.hlc.to_be_bytes());
        b[8..].copy_from_slice(&self.writer.to_be_bytes());
        b
    }

    /// Parses [`Version::to_bytes`]; `None` unless exactly 16 bytes.
    pub fn from_bytes(b: &[u8]) -> Option<Version> {
        if b.len() != Self::WIRE_LEN {
            return None;
        }
        let hlc = u64::from_be_bytes(b[..8].try_into().ok()?);
        let writer = u64::from_be_bytes(b[8..].try_into().ok()?);
        Some(Version { hlc, writer })
    }
}

/// A hybrid logical clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct Hlc {
    last: u64,
}

impl Hlc {
    /// A timestamp for a new write at wall time `wall_ms`: after every one
    /// issued or seen.
    pub fn tick(&mut self, wall_ms: Time) -> u64 {
        let physical = wall_ms << LOGICAL_BITS;
        self.last = physical.max(self.last.saturating_add(1));
        self.last
    }

    /// Takes in a timestamp seen on the wire; refused (false) when it is
    /// dated more than `max_ahead_ms` after this clock (the wall clock, or
    /// the hybrid clock if it follows a faster peer: peers following the
    /// same fast clock are not refused). The clock itself never moves more
    /// than `max_ahead_ms` past the wall clock, so a peer cannot ratchet it
    /// forward step by step.
    pub fn observe(&mut self, hlc: u64, wall_ms: Time, max_ahead_ms: u64) -> bool {
        let base = wall_ms.max(self.last >> LOGICAL_BITS);
        if hlc >> LOGICAL_BITS > base.saturating_add(max_ahead_ms) {
            return false;
        }
        let cap = wall_ms.saturating_add(max_ahead_ms).saturating_mul(1 << LOGICAL_BITS);
        self.last = self.last.max(hlc.min(cap));
        true
    }

    /// The latest timestamp issued or seen.
    pub fn last(&self) -> u64 {
        self.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clock_behind_still_orders_after_what_it_saw() {
        let (mut fast, mut slow) = (Hlc::default(), Hlc::default());
        let t = 1_700_000_000_000;
        let a = fast.tick(t + 120_000);
        assert!(slow.observe(a, t, 300_000));
        let b = slow.tick(t + 10);
        assert!(b > a, "a write after seeing another is later");
        assert!(!slow.observe((t + 430_000) << LOGICAL_BITS, t, 300_000), "too far ahead");
        // Taken (a peer following the same fast clock), but the clock
        // moves at most 300 s past the wall clock: no ratchet.
        let mut c = Hlc::default();
        assert!(c.observe((t + 300_000) << LOGICAL_BITS, t, 300_000));
        assert!(c.observe((t + 590_000) << LOGICAL_BITS, t, 300_000));
        assert_eq!(c.last() >> LOGICAL_BITS, t + 300_000);
        assert!(!c.observe((t + 700_000) << LOGICAL_BITS, t, 300_000));
        let v = Version { hlc: b, writer: 7 };
        assert_eq!(Version::from_bytes(&v.to_bytes()), Some(v));
        assert_eq!(Version::from_bytes(&[1, 2]), None);
        assert!(Version { hlc: 5, writer: 1 } > Version { hlc: 4, writer: 9 });
    }
}
