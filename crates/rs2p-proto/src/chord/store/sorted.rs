//! A sorted vector of `(key, slot)` with a small map of recent inserts:
//! the index each of the store's tables keeps (`chord/store.rs`), twice.

use std::hash::Hash;

use super::Slot;
use crate::core::{Map, SeededState};

/// Marks a removed entry in a sorted vector.
const GONE: Slot = Slot::MAX;

/// The recent inserts of an index are merged into its sorted vector past
/// this many (or a sixteenth of the vector): a lookup costs a hash probe
/// and a binary search, an insert an amortised share of one merge.
const MIN_RECENT: usize = 1024;

/// A sorted vector of `(key, slot)` and a map of recent inserts.
pub(super) struct Sorted<K> {
    sorted: Vec<(K, Slot)>,
    gone: usize,
    recent: Map<K, Slot>,
}

impl<K: Copy + Ord + Hash> Sorted<K> {
    pub(super) fn new(state: SeededState) -> Self {
        Sorted { sorted: Vec::new(), gone: 0, recent: state.map() }
    }

    fn find(&self, k: &K) -> Option<usize> {
        self.sorted.binary_search_by(|(x, _)| x.cmp(k)).ok().filter(|&i| self.sorted[i].1 != GONE)
    }

    pub(super) fn get(&self, k: &K) -> Option<Slot> {
        if let Some(s) = self.recent.get(k) {
            return Some(*s);
        }
        self.find(k).map(|i| self.sorted[i].1)
    }

    /// Inserts or replaces; returns the replaced slot.
    pub(super) fn insert(&mut self, k: K, slot: Slot) -> Option<Slot> {
        if let Some(i) = self.find(&k) {
            return Some(std::mem::replace(&mut self.sorted[i].1, slot));
        }
        let old = self.recent.insert(k, slot);
        if self.recent.len() > (self.sorted.len() / 16).max(MIN_RECENT) {
            self.merge();
        }
        old
    }

    pub(super) fn remove(&mut self, k: &K) -> Option<Slot> {
        if let Some(s) = self.recent.remove(k) {
            return Some(s);
        }
        let i = self.find(k)?;
        self.gone += 1;
        let old = std::mem::replace(&mut self.sorted[i].1, GONE);
        if self.gone > self.sorted.len() / 2 {
            self.merge();
        }
        Some(old)
    }

    /// Folds the recent inserts into the sorted vector and drops removed
    /// entries, in place: the vector grows as vectors do, by doubling, so
    /// it moves a few times in all (a new vector per merge, or one grown to
    /// its exact length, left the allocator holes it kept resident: 4 to 6
    /// MB for a node of 100,000 keys; the unused tail of a doubled vector is
    /// never written, so it takes no memory).
    pub(super) fn merge(&mut self) {
        if self.gone > 0 {
            self.sorted.retain(|e| e.1 != GONE);
            self.gone = 0;
        }
        let mut fresh: Vec<(K, Slot)> = self.recent.drain().collect();
        fresh.sort_unstable_by_key(|e| e.0);
        let old = self.sorted.len();
        self.sorted.reserve(fresh.len());
        self.sorted.extend_from_slice(&fresh);
        // From the back: the largest of the two runs goes last. A key is in
        // one run only (an insert looks in the vector first).
        let (mut i, mut j) = (old, fresh.len());
        while j > 0 {
            let k = i + j - 1;
            if i > 0 && self.sorted[i - 1].0 > fresh[j - 1].0 {
                self.sorted[k] = self.sorted[i - 1];
                i -= 1;
            } else {
                self.sorted[k] = fresh[j - 1];
                j -= 1;
            }
        }
    }

    pub(super) fn len(&self) -> usize {
        self.sorted.len() - self.gone + self.recent.len()
    }

    /// The live entries from the first whose key is not below `lo`, in key
    /// order (recent inserts are merged in first, so a run of range queries
    /// costs one merge and a binary search each).
    pub(super) fn from(&mut self, lo: impl Fn(&K) -> bool) -> impl Iterator<Item = (K, Slot)> + '_ {
        if !self.recent.is_empty() {
            self.merge();
        }
        let start = self.sorted.partition_point(|(x, _)| lo(x));
        self.sorted[start..].iter().filter(|e| e.1 != GONE).copied()
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (K, Slot)> + '_ {
        self.sorted.iter().filter(|e| e.1 != GONE).copied().chain(self.recent.iter().map(|(k, s)| (*k, *s)))
    }
}
