//! The network-wide key list (kept by notifies) and the tombstones of deleted
//! keys, bounded by count and by bytes: peers can send keys of any length.
//!
//! Keys are kept sorted, each in an allocation of its own length (a key
//! taken from a received frame would otherwise pin the frame's buffer), so
//! that a connection can stream the list from a cursor: "every key after
//! the last one sent" needs no per-connection copy of the list.

use std::collections::{BTreeSet, HashMap};
use std::ops::Bound;

use bytes::Bytes;

use super::Change;
use crate::core::Time;

/// How long a deleted key stays remembered, so that a stale add-notify
/// re-sent by py2p after a meta exchange (D10) does not bring it back.
pub(crate) const TOMBSTONE_MS: u64 = 10 * 60 * 1000;

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

/// Known keys and recently deleted ones, with the sum of their lengths.
#[derive(Debug, Default)]
pub struct KeyList {
    /// Sorted, so a stream can resume after the last key it sent.
    keys: BTreeSet<Box<[u8]>>,
    key_bytes: usize,
    tombstones: HashMap<Bytes, Time>,
    tombstone_bytes: usize,
    /// Changes to persist, when the node keeps a data directory.
    pub(crate) journal: super::journal::Journal,
}

impl KeyList {
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

    /// Tombstones held.
    pub fn tombstone_count(&self) -> usize {
        self.tombstones.len()
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

    /// True if `key` was deleted recently.
    pub(crate) fn is_deleted(&self, key: &[u8]) -> bool {
        self.tombstones.contains_key(key)
    }

    /// Records `key`: Ok(true) if it is new, Ok(false) if already known.
    pub(crate) fn add(&mut self, key: &[u8], limits: Limits) -> Result<bool, Full> {
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
        self.keys.insert(Box::from(key));
        self.journal.record(|| Change::Key { key: Bytes::copy_from_slice(key), listed: true });
        Ok(true)
    }

    /// Forgets `key`; true if it was known.
    pub(crate) fn remove(&mut self, key: &[u8]) -> bool {
        let known = self.keys.remove(key);
        if known {
            self.key_bytes -= key.len();
            self.journal.record(|| Change::Key { key: Bytes::copy_from_slice(key), listed: false });
        }
        known
    }

    /// Remembers that `key` was deleted at `now`. When full, tombstones older
    /// than [`TOMBSTONE_MS`] are dropped first; if that is not enough, this
    /// one is not kept (a stale notify may then bring the key back to the list).
    pub(crate) fn tombstone(&mut self, key: &[u8], now: Time, limits: Limits) {
        self.journal.record(|| Change::Tombstone { key: Bytes::copy_from_slice(key), at: Some(now) });
        if let Some(t) = self.tombstones.get_mut(key) {
            *t = now;
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
        self.tombstone_bytes += key.len();
        // A copy: a slice of a received frame would pin the whole frame.
        self.tombstones.insert(Bytes::copy_from_slice(key), now);
    }

    /// Clears `key`'s tombstone (it was set again).
    pub(crate) fn untombstone(&mut self, key: &[u8]) {
        if self.tombstones.remove(key).is_some() {
            self.tombstone_bytes -= key.len();
            self.journal.record(|| Change::Tombstone { key: Bytes::copy_from_slice(key), at: None });
        }
    }

    /// Drops tombstones older than [`TOMBSTONE_MS`].
    pub(crate) fn prune(&mut self, now: Time) {
        let horizon = now.saturating_sub(TOMBSTONE_MS);
        let mut freed = 0;
        let journal = &mut self.journal;
        self.tombstones.retain(|k, t| {
            let keep = *t > horizon;
            if !keep {
                freed += k.len();
                journal.record(|| Change::Tombstone { key: k.clone(), at: None });
            }
            keep
        });
        self.tombstone_bytes -= freed;
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
        l.untombstone(b"gone");
        l.untombstone(b"gone");
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
}
