//! The slab of values: one entry per write (value, version, key), counted
//! by the items that hold it (`chord/store.rs`).

use std::sync::Arc;

use bytes::Bytes;

use super::Slot;
use crate::core::Version;

/// One value in the slab.
pub(super) struct Entry {
    pub(super) value: Bytes,
    pub(super) version: Version,
    /// The key whose items hold this value, when known (shared with the
    /// store's held keys and the node's key list).
    pub(super) key: Option<Arc<[u8]>>,
}

/// Entries in one chunk of the slab: the slab grows a chunk at a time, so
/// at most one chunk is allocated and unused (a vector doubling would
/// leave up to half of it so). The first chunk grows as a vector does, up
/// to this: a node holding a handful of items (a simulated ring of 10,000
/// nodes, two stores each) does not pay 64 KB a store for them.
const CHUNK: usize = 1024;

/// The slab of values, reference-counted by the tables that hold them.
#[derive(Default)]
pub(super) struct Values {
    /// Every chunk but the last holds [`CHUNK`] entries: slot `s` is entry
    /// `s % CHUNK` of chunk `s / CHUNK`.
    chunks: Vec<Vec<Option<Entry>>>,
    /// Items holding each slot's entry (five for a `set`), apart from the
    /// entries so that an entry is 64 bytes, not 72.
    refs: Vec<u8>,
    free: Vec<Slot>,
    /// The last value stored: a `set` stores one value in five tables in a row.
    pub(super) last: Option<(usize, usize, Slot)>,
    /// Bytes of the values held (each once).
    pub(super) bytes: usize,
}

fn same_key(a: &Option<Arc<[u8]>>, b: &Option<Arc<[u8]>>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => Arc::ptr_eq(a, b) || a[..] == b[..],
        (None, None) => true,
        _ => false,
    }
}

impl Values {
    /// The slot already holding this very value (same bytes in memory) for
    /// the same key and version, if it was the last one stored.
    pub(super) fn shared(&self, value: &Bytes, version: Version, key: &Option<Arc<[u8]>>) -> Option<Slot> {
        let (p, l, slot) = self.last?;
        let e = self.entry(slot)?;
        let same = |b: &Bytes| b.as_ptr() as usize == p && b.len() == l;
        // A count of 255 takes a new entry (only the same bytes stored as
        // that many items in a row could reach it).
        let room = self.refs(slot) < u8::MAX;
        (room && same(value) && same(&e.value) && e.version == version && same_key(&e.key, key)).then_some(slot)
    }

    /// `slot` (the entry last written for an item of `key`), if it holds
    /// the same bytes with the same key and version: another item of the
    /// same write, arrived in a frame of its own.
    fn alike(&self, slot: Slot, value: &Bytes, version: Version, key: &Option<Arc<[u8]>>) -> Option<Slot> {
        let e = self.entry(slot)?;
        let room = self.refs(slot) < u8::MAX;
        (room && key.is_some() && e.version == version && same_key(&e.key, key) && e.value == *value).then_some(slot)
    }

    /// Stores a value, or counts one more item on the entry that holds it:
    /// the last one stored, or `like` (see [`Values::alike`]).
    pub(super) fn add(&mut self, value: Bytes, version: Version, key: Option<Arc<[u8]>>, like: Option<Slot>) -> Slot {
        let shared =
            self.shared(&value, version, &key).or_else(|| like.and_then(|s| self.alike(s, &value, version, &key)));
        if let Some(slot) = shared {
            if let Some(r) = self.refs.get_mut(slot as usize) {
                *r += 1;
            }
            return slot;
        }
        let id = (value.as_ptr() as usize, value.len());
        self.bytes += value.len();
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                let s = self.refs.len();
                self.refs.push(0);
                if s / CHUNK == self.chunks.len() {
                    // The first chunk grows by doubling (exactly to CHUNK);
                    // later ones are needed whole.
                    let cap = if self.chunks.is_empty() { 0 } else { CHUNK };
                    self.chunks.push(Vec::with_capacity(cap));
                }
                self.chunks[s / CHUNK].push(None);
                s as Slot
            }
        };
        self.chunks[slot as usize / CHUNK][slot as usize % CHUNK] = Some(Entry { value, version, key });
        self.refs[slot as usize] = 1;
        self.last = Some((id.0, id.1, slot));
        slot
    }

    pub(super) fn entry(&self, slot: Slot) -> Option<&Entry> {
        self.chunks.get(slot as usize / CHUNK)?.get(slot as usize % CHUNK)?.as_ref()
    }

    pub(super) fn entry_mut(&mut self, slot: Slot) -> Option<&mut Entry> {
        self.chunks.get_mut(slot as usize / CHUNK)?.get_mut(slot as usize % CHUNK)?.as_mut()
    }

    /// Tables holding the entry.
    pub(super) fn refs(&self, slot: Slot) -> u8 {
        self.refs.get(slot as usize).copied().unwrap_or(0)
    }

    pub(super) fn get(&self, slot: Slot) -> Option<&Bytes> {
        self.entry(slot).map(|e| &e.value)
    }

    pub(super) fn key(&self, slot: Slot) -> Option<&Arc<[u8]>> {
        self.entry(slot)?.key.as_ref()
    }

    pub(super) fn version(&self, slot: Slot) -> Version {
        self.entry(slot).map_or(Version::ZERO, |e| e.version)
    }

    pub(super) fn release(&mut self, slot: Slot) {
        let Some(r) = self.refs.get_mut(slot as usize).filter(|r| **r > 0) else { return };
        *r -= 1;
        if *r > 0 {
            return;
        }
        let entry = self.chunks.get_mut(slot as usize / CHUNK).and_then(|c| c.get_mut(slot as usize % CHUNK));
        if let Some(e) = entry.and_then(Option::take) {
            self.bytes -= e.value.len();
        }
        self.free.push(slot);
        if self.last.is_some_and(|l| l.2 == slot) {
            self.last = None;
        }
    }

    /// Entries held.
    #[cfg(test)]
    pub(super) fn live(&self) -> usize {
        self.refs.iter().filter(|r| **r > 0).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_slab_takes_little_and_slots_stay_put_across_chunks() {
        let mut v = Values::default();
        let a = v.add(Bytes::from_static(b"a"), Version::ZERO, None, None);
        assert!(v.chunks[0].capacity() < 16, "one entry does not take a whole chunk");
        let mut slots = vec![a];
        for i in 0..(2 * CHUNK + 3) {
            slots.push(v.add(Bytes::from(i.to_string()), Version::ZERO, None, None));
        }
        assert_eq!(v.chunks.len(), 3);
        assert!(v.chunks[..2].iter().all(|c| c.len() == CHUNK && c.capacity() == CHUNK));
        assert_eq!(v.get(a).map(|b| &b[..]), Some(&b"a"[..]));
        let last = *slots.last().unwrap();
        assert_eq!(v.get(last).map(|b| &b[..]), Some((2 * CHUNK + 2).to_string().as_bytes()));
        v.release(last);
        assert!(v.get(last).is_none());
        // A freed slot is reused in place.
        assert_eq!(v.add(Bytes::from_static(b"z"), Version::ZERO, None, None), last);
        assert!(v.get(Slot::MAX).is_none(), "a slot past the end is none, not a panic");
    }
}
