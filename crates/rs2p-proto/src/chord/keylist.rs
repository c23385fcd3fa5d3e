//! The network-wide key list (kept by notifies) and the tombstones of deleted
//! keys, bounded by count and by bytes: peers can send keys of any length.
//!
//! Keys are kept sorted, each in an allocation of its own length (a key
//! taken from a received frame would otherwise pin the frame's buffer), so
//! that a connection can stream the list from a cursor: "every key after
//! the last one sent" needs no per-connection copy of the list. Tombstones
//! are sorted too, so that they can be streamed to rs2p peers the same way
//! (docs/PROTOCOL.md §16.11); peers exchange them as ages, not times, so
//! their clocks need not agree. All the time arithmetic is here.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;

use super::Change;
use crate::core::{Map, SeededState, Time};

/// How long a deleted key stays remembered, so that a stale add-notify
/// re-sent by py2p after a meta exchange (D10) does not bring it back.
pub(crate) const TOMBSTONE_MS: u64 = 10 * 60 * 1000;

/// Sets remembered for dating peers' tombstones ([`KeyList::note_set`]):
/// past it the oldest are forgotten, and a peer's tombstone older than a
/// forgotten set may unlist that key until it is announced again. 65,536
/// sets in ten minutes is about 110 a second.
pub(crate) const MAX_RECENT_SETS: usize = 65_536;

/// The first 128 bits of a key's SHA-256: how remembered sets are kept
/// (collisions would take about 2^64 tries; the digest is not keyed, so a
/// simulation stays repeatable).
fn digest(key: &[u8]) -> u128 {
    use sha2::Digest;
    let d = sha2::Sha256::digest(key);
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    u128::from_be_bytes(b)
}

/// [`digest`] as two halves: how `recent_sets` keeps it (aligned to 8
/// bytes, not 16: 24 bytes an entry with its time, not 32).
type Halves = [u64; 2];

fn halves(key: &[u8]) -> Halves {
    let d = digest(key);
    [(d >> 64) as u64, d as u64]
}

/// Count and byte bounds, each for the keys and for the tombstones.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub max_keys: usize,
    pub max_bytes: usize,
}

/// Why a key was not recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Full {
    Count,
    Bytes,
}

/// What is remembered of a key deleted in the last [`TOMBSTONE_MS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mark {
    /// Deleted at this time: a stale add-notify must not bring it back.
    Deleted(Time),
    /// Set again at this time, after a delete: a peer's tombstone older than
    /// that is stale. Takes the place (and the budget) of the tombstone it
    /// cleared, and expires as it would have.
    SetAgain(Time),
}

impl Mark {
    fn at(self) -> Time {
        match self {
            Mark::Deleted(t) | Mark::SetAgain(t) => t,
        }
    }
}

/// Known keys and recently deleted ones, with the sum of their lengths.
#[derive(Debug)]
pub struct KeyList {
    /// Sorted, so a stream can resume after the last key it sent. A key
    /// whose items we hold shares their allocation (`Node::shared_key`).
    keys: BTreeSet<Arc<[u8]>>,
    key_bytes: usize,
    /// Sorted as `keys`, for the same reason.
    tombstones: BTreeMap<Bytes, Mark>,
    tombstone_bytes: usize,
    /// No mark is older than this (a lower bound): a full set of tombstones
    /// is scanned for expired ones only when one may be expired.
    oldest: Time,
    /// Keys set here or announced by a broadcast add-notify (a genuine new
    /// set, datable) in the last [`TOMBSTONE_MS`], with the time: a peer's
    /// tombstone older than that set must not unlist the key. Bounded by
    /// [`MAX_RECENT_SETS`], oldest forgotten first.
    /// Kept by a 128-bit digest of the key, not the key: 24 bytes an entry
    /// however long the keys a peer announces.
    recent_sets: Map<Halves, Time>,
    /// `recent_sets` in the order they were recorded, for the bound.
    recent_order: VecDeque<(Halves, Time)>,
    /// The XOR of the 128-bit digests of the listed keys: with the count,
    /// a summary two nodes compare to see whether their lists differ
    /// (`sum`, docs/PROTOCOL.md §16.19), whatever order keys came in.
    sum: u128,
    /// Changes to persist, when the node keeps a data directory.
    pub(crate) journal: super::journal::Journal,
}

impl Default for KeyList {
    fn default() -> Self {
        Self::with_seed(0)
    }
}

impl KeyList {
    /// Empty, its map of recent sets keyed from `seed` (see
    /// [`crate::core::Config::seed`]).
    pub fn with_seed(seed: u64) -> Self {
        KeyList {
            keys: BTreeSet::new(),
            key_bytes: 0,
            tombstones: BTreeMap::new(),
            tombstone_bytes: 0,
            oldest: 0,
            recent_sets: SeededState::new(seed, 0x4b45_5953_0000_0001).map(),
            recent_order: VecDeque::new(),
            sum: 0,
            journal: Default::default(),
        }
    }

    /// Known keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when no key is known.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Bytes held by keys and by tombstones.
    pub fn bytes(&self) -> (usize, usize) {
        (self.key_bytes, self.tombstone_bytes)
    }

    /// Tombstones held (with the marks of keys set again since their delete).
    pub fn tombstone_count(&self) -> usize {
        self.tombstones.len()
    }

    /// The list's summary: how many keys, and the XOR of their digests.
    pub(crate) fn summary(&self) -> (usize, u128) {
        (self.keys.len(), self.sum)
    }

    /// True if `key` is known.
    pub fn contains(&self, key: &[u8]) -> bool {
        self.keys.contains(key)
    }

    /// The known keys, in byte order.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        self.keys.iter().map(|k| &k[..])
    }

    /// The known keys after `cursor` (all of them for `None`), in byte order.
    pub fn after<'a>(&'a self, cursor: Option<&'a [u8]>) -> impl Iterator<Item = &'a [u8]> + 'a {
        let from = cursor.map_or(Bound::Unbounded, Bound::Excluded);
        self.keys.range::<[u8], _>((from, Bound::Unbounded)).map(|k| &k[..])
    }

    /// The keys deleted less than [`TOMBSTONE_MS`] before `now`, after
    /// `cursor` (all of them for `None`), in byte order, each with the time
    /// since its delete in ms.
    pub(crate) fn deleted_after<'a>(
        &'a self,
        cursor: Option<&'a [u8]>,
        now: Time,
    ) -> impl Iterator<Item = (&'a Bytes, Time)> + 'a {
        let from = cursor.map_or(Bound::Unbounded, Bound::Excluded);
        self.tombstones.range::<[u8], _>((from, Bound::Unbounded)).filter_map(move |(k, m)| match *m {
            Mark::Deleted(at) if now.saturating_sub(at) < TOMBSTONE_MS => Some((k, now.saturating_sub(at))),
            _ => None,
        })
    }

    /// True if `key` was deleted recently (and not set again since).
    pub(crate) fn is_deleted(&self, key: &[u8]) -> bool {
        matches!(self.tombstones.get(key), Some(Mark::Deleted(_)))
    }

    /// Records `key`: Ok(true) if it is new, Ok(false) if already known.
    pub(crate) fn add(&mut self, key: &[u8], limits: Limits) -> Result<bool, Full> {
        self.add_with(key, limits, |k| Arc::from(k))
    }

    /// [`KeyList::add`], keeping the allocation `share` gives for a new key.
    pub(crate) fn add_with(
        &mut self,
        key: &[u8],
        limits: Limits,
        share: impl FnOnce(&[u8]) -> Arc<[u8]>,
    ) -> Result<bool, Full> {
        if self.keys.contains(key) {
            return Ok(false);
        }
        if self.keys.len() >= limits.max_keys {
            return Err(Full::Count);
        }
        if self.key_bytes.saturating_add(key.len()) > limits.max_bytes {
            return Err(Full::Bytes);
        }
        self.key_bytes += key.len();
        self.sum ^= digest(key);
        self.keys.insert(share(key));
        self.journal.record(|| Change::Key { key: Bytes::copy_from_slice(key), listed: true });
        Ok(true)
    }

    /// Forgets `key`; true if it was known.
    pub(crate) fn remove(&mut self, key: &[u8]) -> bool {
        let known = self.keys.remove(key);
        if known {
            self.sum ^= digest(key);
            self.key_bytes -= key.len();
            self.journal.record(|| Change::Key { key: Bytes::copy_from_slice(key), listed: false });
        }
        known
    }

    /// Remembers that `key` was deleted at `now`. When full, tombstones older
    /// than [`TOMBSTONE_MS`] are dropped first; if that is not enough, this
    /// one is not kept (a stale notify may then bring the key back to the list).
    pub(crate) fn tombstone(&mut self, key: &[u8], now: Time, limits: Limits) {
        self.forget_set(key);
        if let Some(t) = self.tombstones.get_mut(key) {
            *t = Mark::Deleted(now);
            self.oldest = self.oldest.min(now);
            self.journal.record(|| Change::Tombstone { key: Bytes::copy_from_slice(key), at: Some(now) });
            return;
        }
        let fits = |s: &Self| {
            s.tombstones.len() < limits.max_keys && s.tombstone_bytes.saturating_add(key.len()) <= limits.max_bytes
        };
        if !fits(self) {
            self.prune(now);
            if !fits(self) {
                return;
            }
        }
        if self.tombstones.is_empty() {
            self.oldest = now;
        }
        self.oldest = self.oldest.min(now);
        // Journaled only when kept: one not kept must not live on on disk.
        self.journal.record(|| Change::Tombstone { key: Bytes::copy_from_slice(key), at: Some(now) });
        self.tombstone_bytes += key.len();
        // A copy: a slice of a received frame would pin the whole frame.
        self.tombstones.insert(Bytes::copy_from_slice(key), Mark::Deleted(now));
    }

    /// A peer's tombstone for `key`, deleted `age` ms before `now`: the key
    /// leaves the list and is tombstoned, unless we know of a later set (or
    /// the tombstone has expired). True if the key was listed.
    pub(crate) fn tombstone_received(&mut self, key: &[u8], age: Time, now: Time, limits: Limits) -> bool {
        if age >= TOMBSTONE_MS {
            return false;
        }
        let at = now.saturating_sub(age);
        // A delete and a set at the same millisecond: the delete wins.
        if self.recent_sets.get(&halves(key)).is_some_and(|set| *set > at) {
            return false;
        }
        match self.tombstones.get(key) {
            Some(Mark::SetAgain(set)) if *set >= at => return false,
            // Ours is as recent: keep its time.
            Some(Mark::Deleted(ours)) if *ours >= at => {}
            _ => self.tombstone(key, at, limits),
        }
        self.remove(key)
    }

    /// Clears `key`'s tombstone: it was set again at `now`. The set is
    /// remembered in its place, so that an older tombstone from a peer
    /// cannot delete it again.
    pub(crate) fn untombstone(&mut self, key: &[u8], now: Time) {
        if let Some(mark) = self.tombstones.get_mut(key) {
            if matches!(mark, Mark::Deleted(_)) {
                self.journal.record(|| Change::Tombstone { key: Bytes::copy_from_slice(key), at: None });
            }
            *mark = Mark::SetAgain(now.max(mark.at()));
        }
    }

    /// Remembers that `key` was set at `now` by a genuine set (a local set,
    /// or a broadcast add-notify; not a py2p list re-announcing it), so that
    /// an older tombstone from a peer does not unlist it.
    pub(crate) fn note_set(&mut self, key: &[u8], now: Time) {
        self.untombstone(key, now);
        let key = halves(key);
        let now = match self.recent_sets.remove(&key) {
            Some(t) => now.max(t),
            None => now,
        };
        // Stale entries of the queue (a key set again since) are skipped when
        // popped; repeated sets of few keys must not grow it for good.
        if self.recent_order.len() > 2 * MAX_RECENT_SETS {
            let mut live: Vec<(Halves, Time)> = self.recent_sets.iter().map(|(k, t)| (*k, *t)).collect();
            live.sort_unstable_by_key(|e| (e.1, e.0));
            self.recent_order = live.into();
        }
        while self.recent_sets.len() >= MAX_RECENT_SETS {
            match self.recent_order.pop_front() {
                Some((k, t)) => {
                    if self.recent_sets.get(&k) == Some(&t) {
                        self.recent_sets.remove(&k);
                    }
                }
                None => break,
            }
        }
        self.recent_sets.insert(key, now);
        self.recent_order.push_back((key, now));
        // Entries expire in order: drop those older than the horizon.
        let horizon = now.saturating_sub(TOMBSTONE_MS);
        while self.recent_order.front().is_some_and(|(_, t)| *t <= horizon) {
            if let Some((k, t)) = self.recent_order.pop_front() {
                if self.recent_sets.get(&k) == Some(&t) {
                    self.recent_sets.remove(&k);
                }
            }
        }
    }

    /// A delete supersedes the record of an earlier set.
    fn forget_set(&mut self, key: &[u8]) {
        if !self.recent_sets.is_empty() {
            self.recent_sets.remove(&halves(key));
        }
    }

    /// Drops tombstones older than [`TOMBSTONE_MS`]. Scans them only if one
    /// may have expired: a peer sending tombstones to a full list must not
    /// cost a scan each.
    pub(crate) fn prune(&mut self, now: Time) {
        if now.saturating_sub(self.oldest) < TOMBSTONE_MS {
            return;
        }
        let horizon = now.saturating_sub(TOMBSTONE_MS);
        let mut freed = 0;
        let mut oldest = now;
        let journal = &mut self.journal;
        self.tombstones.retain(|k, m| {
            let keep = m.at() > horizon;
            if keep {
                oldest = oldest.min(m.at());
            } else {
                freed += k.len();
                if matches!(m, Mark::Deleted(_)) {
                    journal.record(|| Change::Tombstone { key: k.clone(), at: None });
                }
            }
            keep
        });
        self.tombstone_bytes -= freed;
        self.oldest = oldest;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits { max_keys: 4, max_bytes: 20 };

    #[test]
    fn bytes_follow_every_change() {
        let mut l = KeyList::default();
        assert_eq!(l.add(b"abc", LIMITS), Ok(true));
        assert_eq!(l.add(b"abc", LIMITS), Ok(false));
        l.tombstone(b"gone", 1, LIMITS);
        l.tombstone(b"gone", 2, LIMITS);
        assert_eq!(l.bytes(), (3, 4));
        assert!(l.remove(b"abc"));
        assert!(!l.remove(b"abc"));
        l.untombstone(b"gone", 3);
        l.untombstone(b"gone", 4);
        assert!(!l.is_deleted(b"gone"));
        // The set is remembered where the tombstone was, until it expires.
        assert_eq!((l.bytes(), l.len(), l.tombstone_count()), ((0, 4), 0, 1));
        l.prune(4 + TOMBSTONE_MS);
        assert_eq!((l.bytes(), l.len(), l.tombstone_count()), ((0, 0), 0, 0));
    }

    #[test]
    fn streams_resume_after_a_cursor() {
        let mut l = KeyList::default();
        for k in ["b", "d", "a", "c"] {
            l.add(k.as_bytes(), LIMITS).unwrap();
        }
        let all: Vec<&[u8]> = l.after(None).collect();
        assert_eq!(all, [&b"a"[..], b"b", b"c", b"d"]);
        let rest: Vec<&[u8]> = l.after(Some(b"b")).collect();
        assert_eq!(rest, [&b"c"[..], b"d"]);
        // A cursor that is no longer (or never was) a key still resumes in order.
        let rest: Vec<&[u8]> = l.after(Some(b"bb")).collect();
        assert_eq!(rest, [&b"c"[..], b"d"]);
    }

    #[test]
    fn full_by_count_or_bytes() {
        let mut l = KeyList::default();
        assert_eq!(l.add(&[b'x'; 21], LIMITS), Err(Full::Bytes));
        for k in ["a", "b", "c", "d"] {
            assert_eq!(l.add(k.as_bytes(), LIMITS), Ok(true));
        }
        assert_eq!(l.add(b"e", LIMITS), Err(Full::Count));
        assert_eq!(l.add(&[b'y'; 17], LIMITS), Err(Full::Count));
        assert!(l.remove(b"a"));
        assert_eq!(l.add(&[b'y'; 18], LIMITS), Err(Full::Bytes));
        assert_eq!(l.add(&[b'y'; 17], LIMITS), Ok(true));
        // Tombstones have a budget of their own.
        l.tombstone(&[b't'; 20], 1, LIMITS);
        assert_eq!(l.bytes(), (20, 20));
    }

    #[test]
    fn full_tombstones_make_room_from_old_ones_only() {
        let mut l = KeyList::default();
        let old = 1_000;
        let now = old + TOMBSTONE_MS + 1;
        l.tombstone(&[b'o'; 15], old, LIMITS);
        l.tombstone(&[b'n'; 5], now, LIMITS);
        // Full by bytes: the old tombstone goes, the new key is kept.
        l.tombstone(&[b'm'; 10], now, LIMITS);
        assert!(!l.is_deleted(&[b'o'; 15]) && l.is_deleted(&[b'n'; 5]) && l.is_deleted(&[b'm'; 10]));
        assert_eq!(l.bytes(), (0, 15));
        // Full again, nothing old enough to drop: not kept, nothing lost.
        l.tombstone(&[b'z'; 6], now, LIMITS);
        assert!(!l.is_deleted(&[b'z'; 6]));
        assert_eq!(l.bytes(), (0, 15));
    }

    #[test]
    fn received_tombstones_delete_unless_a_later_set_is_known() {
        let mut l = KeyList::default();
        let now = 1_000_000;
        for k in ["a", "b", "c"] {
            l.add(k.as_bytes(), LIMITS).unwrap();
        }
        // Deleted 5 s ago on a peer: gone here too, and tombstoned.
        assert!(l.tombstone_received(b"a", 5_000, now, LIMITS));
        assert!(!l.contains(b"a") && l.is_deleted(b"a"));
        let sent: Vec<(&[u8], Time)> = l.deleted_after(None, now + 1).map(|(k, age)| (&k[..], age)).collect();
        assert_eq!(sent, [(&b"a"[..], 5_001)], "the age counts from the delete on the peer");
        // Expired on the way: ignored.
        assert!(!l.tombstone_received(b"b", TOMBSTONE_MS, now, LIMITS));
        assert!(l.contains(b"b") && !l.is_deleted(b"b"));
        // Set again here after a delete: an older tombstone from a peer is
        // stale, a newer one wins.
        l.tombstone(b"c", now - 10_000, LIMITS);
        l.remove(b"c");
        l.untombstone(b"c", now - 2_000);
        l.add(b"c", LIMITS).unwrap();
        assert!(!l.tombstone_received(b"c", 5_000, now, LIMITS));
        assert!(l.contains(b"c") && !l.is_deleted(b"c"));
        assert_eq!(l.deleted_after(None, now).count(), 1, "a key set again is not sent as deleted");
        assert!(l.tombstone_received(b"c", 1_000, now, LIMITS));
        assert!(!l.contains(b"c") && l.is_deleted(b"c"));
        // A peer's older tombstone does not make ours older.
        l.tombstone_received(b"a", 9_000, now, LIMITS);
        assert_eq!(l.deleted_after(Some(b"0"), now).next(), Some((&Bytes::from_static(b"a"), 5_000)));
        // Received tombstones expire as local ones: TOMBSTONE_MS after the delete.
        l.prune(now - 5_000 + TOMBSTONE_MS);
        assert!(!l.is_deleted(b"a") && l.is_deleted(b"c"));
        assert_eq!(l.deleted_after(None, now - 5_000 + TOMBSTONE_MS).count(), 1);
    }

    #[test]
    fn received_tombstones_keep_the_bounds() {
        let mut l = KeyList::default();
        let now = 1_000_000;
        for i in 0..100u32 {
            l.tombstone_received(format!("key-{i}").as_bytes(), u64::from(i), now, LIMITS);
        }
        assert_eq!(l.tombstone_count(), 4, "count bound");
        assert!(l.bytes().1 <= LIMITS.max_bytes);
        // A key too long for the byte bound still leaves the list.
        l.add(&[b'k'; 12], Limits { max_keys: 10, max_bytes: 100 }).unwrap();
        assert!(l.tombstone_received(&[b'k'; 12], 0, now, LIMITS));
        assert!(!l.is_deleted(&[b'k'; 12]));
        assert!(l.bytes().1 <= LIMITS.max_bytes);
    }

    #[test]
    fn a_set_newer_than_a_peers_tombstone_keeps_the_key() {
        let mut l = KeyList::default();
        let now = 1_000_000;
        // Set here (never deleted here) 2 s ago; a peer deleted it 5 s ago.
        l.add(b"k", LIMITS).unwrap();
        l.note_set(b"k", now - 2_000);
        assert!(!l.tombstone_received(b"k", 5_000, now, LIMITS), "an older delete unlisted a newer set");
        assert!(l.contains(b"k") && !l.is_deleted(b"k"));
        // A delete after the set wins.
        assert!(l.tombstone_received(b"k", 1_000, now, LIMITS));
        assert!(!l.contains(b"k"));
    }

    #[test]
    fn tombstones_not_kept_are_not_journaled() {
        let mut l = KeyList::default();
        l.journal.set_enabled(true);
        let now = 1_000_000;
        for i in 0..10u32 {
            l.tombstone(format!("t{i}").as_bytes(), now, LIMITS);
        }
        assert_eq!(l.tombstone_count(), 4);
        let written = l.journal.take().iter().filter(|c| matches!(c, Change::Tombstone { at: Some(_), .. })).count();
        assert_eq!(written, 4, "tombstones beyond the bound must not reach the disk");
    }

    #[test]
    fn remembered_sets_are_bounded() {
        let mut l = KeyList::default();
        for i in 0..(MAX_RECENT_SETS as u64 + 1_000) {
            l.note_set(format!("s{i}").as_bytes(), 1_000 + i);
        }
        assert!(l.recent_sets.len() <= MAX_RECENT_SETS);
        // Repeated sets of one key do not grow the queue for good.
        for i in 0..(3 * MAX_RECENT_SETS as u64) {
            l.note_set(b"same", 10_000_000 + i);
        }
        assert!(l.recent_order.len() <= 2 * MAX_RECENT_SETS + 1);
    }
}
