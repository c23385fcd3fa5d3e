//! The bounded memory of recently seen broadcast ids.

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;

use crate::core::hasher::SeededState;

/// Broadcast ids seen in the last 60 seconds, bounded in count.
///
/// An id older than 60 s can never be accepted again (the age check rejects
/// it first), so pruning by age loses nothing; the count bound only matters
/// under a flood, where the oldest ids are forgotten first.
#[derive(Debug)]
pub struct RecentIds {
    /// Fingerprint of an id → its time.
    seen: HashMap<u128, u64, SeededState>,
    order: VecDeque<(u128, u64)>,
    /// No id held is older than this (seconds; it may be older than the
    /// oldest held after evictions): when the next prune is due.
    oldest: Option<u64>,
    max: usize,
    /// Two secret keys (from the node's seed) for the 128-bit fingerprint.
    keys: (SeededState, SeededState),
}

/// Distinguish the two fingerprint keys from each other and from the
/// node's other seeded maps.
const PURPOSE_A: u64 = 0x7265_6365_6e74_0001;
const PURPOSE_B: u64 = 0x7265_6365_6e74_0002;
const PURPOSE_C: u64 = 0x7265_6365_6e74_0003;

/// Seconds a broadcast stays acceptable.
pub const MAX_AGE_SECS: u64 = 60;

/// Seconds a broadcast may be dated ahead of our clock. An id is remembered
/// until its own date is [`MAX_AGE_SECS`] old, so one dated far ahead would
/// stay for as long, and a flood of them would push honest ids out of the
/// bounded memory (which then lets duplicates through). py2p drops
/// broadcasts a minute old; the same tolerance is given the other way.
pub const MAX_FUTURE_SECS: u64 = 60;

impl RecentIds {
    /// An empty set holding at most `max` ids, fingerprinted under keys
    /// derived from `seed` (secret: see [`crate::core::Config::seed`]).
    pub fn new(max: usize, seed: u64) -> Self {
        RecentIds {
            // Seeded too: nothing in the core draws on the OS (a
            // simulation does the same work twice, its instruction count too).
            seen: SeededState::new(seed, PURPOSE_C).map(),
            order: VecDeque::new(),
            oldest: None,
            max: max.max(1),
            keys: (SeededState::new(seed, PURPOSE_A), SeededState::new(seed, PURPOSE_B)),
        }
    }

    /// A 128-bit fingerprint of an id under two secret keys: ids are kept in
    /// 24 bytes instead of a 66-character string, and a collision would need
    /// about 2^64 tries by someone who cannot see the keys.
    fn fingerprint(&self, id: &str) -> u128 {
        let a = self.keys.0.hash_one(id);
        let b = self.keys.1.hash_one(id);
        (u128::from(a) << 64) | u128::from(b)
    }

    /// Records `id`; false if it was already there.
    pub fn insert(&mut self, id: &str, time: u64) -> bool {
        self.insert_fingerprint(self.fingerprint(id), time)
    }

    /// Records an id already reduced to 128 bits by the caller (one that no
    /// peer can choose freely); false if it was already there.
    pub fn insert_fingerprint(&mut self, fp: u128, time: u64) -> bool {
        if self.seen.contains_key(&fp) {
            return false;
        }
        while self.seen.len() >= self.max {
            match self.order.pop_front() {
                Some((old, _)) => {
                    self.seen.remove(&old);
                }
                None => break,
            }
        }
        self.seen.insert(fp, time);
        self.order.push_back((fp, time));
        self.oldest = Some(self.oldest.map_or(time, |t| t.min(time)));
        true
    }

    /// True if `id` was seen.
    pub fn contains(&self, id: &str) -> bool {
        self.seen.contains_key(&self.fingerprint(id))
    }

    /// Forgets ids whose time is at or before `now - 60`.
    pub fn prune(&mut self, now_secs: u64) {
        let horizon = now_secs.saturating_sub(MAX_AGE_SECS);
        // Times are the senders', so not monotonic: scan the whole order queue.
        if self.order.iter().any(|(_, t)| *t <= horizon) {
            let seen = &mut self.seen;
            self.order.retain(|(id, t)| {
                let keep = *t > horizon;
                if !keep {
                    seen.remove(id);
                }
                keep
            });
        }
        self.oldest = self.order.iter().map(|(_, t)| *t).min();
    }

    /// When (seconds, the senders' clocks) the oldest id held expires:
    /// [`RecentIds::prune`] is due then.
    pub fn next_expiry(&self) -> Option<u64> {
        self.oldest.map(|t| t.saturating_add(MAX_AGE_SECS))
    }

    /// How many ids are held.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_pruned() {
        let mut r = RecentIds::new(3, 7);
        for i in 0..10 {
            assert!(r.insert(&i.to_string(), 1000 + i));
        }
        assert_eq!(r.len(), 3);
        assert!(!r.insert("9", 1009));
        r.prune(1068);
        assert_eq!(r.len(), 1);
    }
}
