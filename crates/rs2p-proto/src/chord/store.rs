//! Compact storage for the five hash tables.
//!
//! A node may hold millions of items, so each table keeps only the
//! significant bytes of its keys (a sha1 key is the digest shifted left by
//! 224 bits: 20 bytes, not 64), in a sorted vector plus a small hash map of
//! recent inserts that is merged in when it grows. Values live once in a slab
//! and are shared by the five tables when a local `set` stores the same bytes
//! in all of them. Keys that are not of their table's shape (only a remote
//! peer could send one) go to a plain map beside it.

use std::collections::HashMap;

use bytes::Bytes;

use crate::core::Version;
use crate::ring::{HashMethod, U512};

/// Bytes an item costs beside its value, as counted against
/// `Config::max_store_bytes`: its key (up to 64 bytes in its table's compact
/// form), its slot in the sorted index, and the slab's record of the value.
/// Without it a flood of one-byte values would be nearly free to store.
pub const ITEM_OVERHEAD: usize = 96;

/// Index of a value in the slab.
type Slot = u32;
/// Marks a removed entry in a sorted vector.
const GONE: Slot = Slot::MAX;

struct Table<const N: usize> {
    shift: usize,
    sorted: Vec<([u8; N], Slot)>,
    gone: usize,
    recent: HashMap<[u8; N], Slot>,
    odd: HashMap<U512, Slot>,
}

impl<const N: usize> Table<N> {
    fn new(shift: usize) -> Self {
        Table { shift, sorted: Vec::new(), gone: 0, recent: HashMap::new(), odd: HashMap::new() }
    }

    /// The compact form of `key`, if it has this table's shape.
    fn compact(&self, key: &U512) -> Option<[u8; N]> {
        let bits = self.shift + 8 * N;
        if bits < 512 && !(*key >> bits).is_zero() {
            return None;
        }
        if self.shift > 0 && !(*key << (512 - self.shift)).is_zero() {
            return None;
        }
        let be: [u8; 64] = (*key >> self.shift).to_be_bytes();
        let mut out = [0u8; N];
        out.copy_from_slice(&be[64 - N..]);
        Some(out)
    }

    fn expand(&self, k: &[u8; N]) -> U512 {
        crate::ring::u512_from_be(k) << self.shift
    }

    fn find(&self, k: &[u8; N]) -> Option<usize> {
        self.sorted.binary_search_by(|(x, _)| x.cmp(k)).ok().filter(|&i| self.sorted[i].1 != GONE)
    }

    fn get(&self, key: &U512) -> Option<Slot> {
        match self.compact(key) {
            Some(k) => self.recent.get(&k).copied().or_else(|| self.find(&k).map(|i| self.sorted[i].1)),
            None => self.odd.get(key).copied(),
        }
    }

    /// Inserts or replaces; returns the replaced slot.
    fn insert(&mut self, key: &U512, slot: Slot) -> Option<Slot> {
        let Some(k) = self.compact(key) else { return self.odd.insert(*key, slot) };
        if let Some(i) = self.find(&k) {
            return Some(std::mem::replace(&mut self.sorted[i].1, slot));
        }
        let old = self.recent.insert(k, slot);
        if self.recent.len() > (self.sorted.len() / 16).max(1024) {
            self.merge();
        }
        old
    }

    fn remove(&mut self, key: &U512) -> Option<Slot> {
        let Some(k) = self.compact(key) else { return self.odd.remove(key) };
        if let Some(s) = self.recent.remove(&k) {
            return Some(s);
        }
        let i = self.find(&k)?;
        self.gone += 1;
        let old = std::mem::replace(&mut self.sorted[i].1, GONE);
        if self.gone > self.sorted.len() / 2 {
            self.merge();
        }
        Some(old)
    }

    /// Folds the recent inserts into the sorted vector and drops removed entries.
    fn merge(&mut self) {
        let mut fresh: Vec<([u8; N], Slot)> = self.recent.drain().collect();
        fresh.sort_unstable_by_key(|e| e.0);
        let old = std::mem::take(&mut self.sorted);
        let mut merged = Vec::with_capacity(old.len() - self.gone + fresh.len());
        let mut a = old.into_iter().filter(|e| e.1 != GONE).peekable();
        let mut b = fresh.into_iter().peekable();
        loop {
            let take_a = match (a.peek(), b.peek()) {
                (Some(x), Some(y)) => x.0 < y.0,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            let next = if take_a { a.next() } else { b.next() };
            merged.extend(next);
        }
        self.sorted = merged;
        self.gone = 0;
    }

    fn len(&self) -> usize {
        self.sorted.len() - self.gone + self.recent.len() + self.odd.len()
    }

    /// Items with `first <= key <= last` (recent inserts are merged in
    /// first, so a run of range queries costs one merge and a binary search
    /// each).
    fn range(&mut self, first: &U512, last: &U512, limit: usize) -> Vec<(U512, Slot)> {
        if !self.recent.is_empty() {
            self.merge();
        }
        let mut out = Vec::new();
        // Compact keys sort as the keys they stand for.
        let start = self.sorted.partition_point(|(x, _)| self.expand(x) < *first);
        for (k, s) in &self.sorted[start..] {
            let key = self.expand(k);
            if key > *last {
                break;
            }
            if *s != GONE && key >= *first {
                out.push((key, *s));
                if out.len() > limit {
                    break;
                }
            }
        }
        out.extend(self.odd.iter().filter(|(k, _)| *k >= first && *k <= last).map(|(k, s)| (*k, *s)));
        out
    }

    fn entries(&self) -> Vec<(U512, Slot)> {
        let mut out: Vec<(U512, Slot)> = Vec::with_capacity(self.len());
        out.extend(self.sorted.iter().filter(|e| e.1 != GONE).map(|(k, s)| (self.expand(k), *s)));
        out.extend(self.recent.iter().map(|(k, s)| (self.expand(k), *s)));
        out.extend(self.odd.iter().map(|(k, s)| (*k, *s)));
        // In key order, whatever the maps' order: handoffs go out in it.
        out.sort_unstable_by_key(|e| e.0);
        out
    }
}

/// The slab of values, reference-counted by the tables that hold them.
#[derive(Default)]
struct Values {
    /// Value, tables holding it, its version.
    slots: Vec<Option<(Bytes, u32, Version)>>,
    free: Vec<Slot>,
    /// The last value stored: a `set` stores one value in five tables in a row.
    last: Option<(usize, usize, Slot)>,
    /// Bytes of the values held (each once).
    bytes: usize,
}

impl Values {
    /// The slot already holding this very value (same bytes in memory), if
    /// it was the last one stored.
    fn shared(&self, value: &Bytes, version: Version) -> Option<Slot> {
        let (p, l, slot) = self.last?;
        let (v, _, ver) = self.slots.get(slot as usize)?.as_ref()?;
        let same = |b: &Bytes| b.as_ptr() as usize == p && b.len() == l;
        (same(value) && same(v) && *ver == version).then_some(slot)
    }

    fn add(&mut self, value: Bytes, version: Version) -> Slot {
        if let Some(slot) = self.shared(&value, version) {
            if let Some(Some((_, refs, _))) = self.slots.get_mut(slot as usize) {
                *refs += 1;
            }
            return slot;
        }
        let id = (value.as_ptr() as usize, value.len());
        self.bytes += value.len();
        let slot = match self.free.pop() {
            Some(s) => {
                self.slots[s as usize] = Some((value, 1, version));
                s
            }
            None => {
                self.slots.push(Some((value, 1, version)));
                (self.slots.len() - 1) as Slot
            }
        };
        self.last = Some((id.0, id.1, slot));
        slot
    }

    fn get(&self, slot: Slot) -> Option<&Bytes> {
        self.slots.get(slot as usize)?.as_ref().map(|(v, _, _)| v)
    }

    fn version(&self, slot: Slot) -> Version {
        self.slots.get(slot as usize).and_then(|s| s.as_ref()).map_or(Version::ZERO, |s| s.2)
    }

    fn release(&mut self, slot: Slot) {
        if let Some(entry) = self.slots.get_mut(slot as usize) {
            if let Some((v, refs, _)) = entry {
                *refs -= 1;
                if *refs == 0 {
                    self.bytes -= v.len();
                    *entry = None;
                    self.free.push(slot);
                    if self.last.is_some_and(|l| l.2 == slot) {
                        self.last = None;
                    }
                }
            }
        }
    }
}

/// A 128-bit digest of one item for range summaries (`chord/sync.rs`):
/// its hash, its version, and (for a value, whose version may be zero) its
/// bytes; a tombstone is marked apart. Not cryptographic: two honest
/// stores differ and collide with probability 2^-128; a lying peer can
/// already write anything.
pub fn item_digest(hash: &U512, version: Version, value: Option<&[u8]>) -> u128 {
    use crate::core::mix64;
    let mut a = mix64(version.hlc ^ 0x5eed_1234);
    let mut b = mix64(version.writer ^ 0x0dd_ba11);
    for (i, limb) in hash.as_limbs().iter().enumerate() {
        a = mix64(a ^ limb.rotate_left(i as u32 * 7));
        b = mix64(b.wrapping_add(*limb));
    }
    match value {
        Some(v) => {
            for chunk in v.chunks(8) {
                let mut w = [0u8; 8];
                w[..chunk.len()].copy_from_slice(chunk);
                a = mix64(a ^ u64::from_le_bytes(w));
            }
            b = mix64(b ^ v.len() as u64);
        }
        None => b = mix64(b ^ 0x70b5_70b5),
    }
    (u128::from(a) << 64) | u128::from(b)
}

trait TableOps: Send {
    fn get(&self, key: &U512) -> Option<Slot>;
    fn insert(&mut self, key: &U512, slot: Slot) -> Option<Slot>;
    fn remove(&mut self, key: &U512) -> Option<Slot>;
    fn len(&self) -> usize;
    fn entries(&self) -> Vec<(U512, Slot)>;
    fn range(&mut self, first: &U512, last: &U512, limit: usize) -> Vec<(U512, Slot)>;
}

impl<const N: usize> TableOps for Table<N> {
    fn get(&self, key: &U512) -> Option<Slot> {
        Table::get(self, key)
    }
    fn insert(&mut self, key: &U512, slot: Slot) -> Option<Slot> {
        Table::insert(self, key, slot)
    }
    fn remove(&mut self, key: &U512) -> Option<Slot> {
        Table::remove(self, key)
    }
    fn len(&self) -> usize {
        Table::len(self)
    }
    fn entries(&self) -> Vec<(U512, Slot)> {
        Table::entries(self)
    }
    fn range(&mut self, first: &U512, last: &U512, limit: usize) -> Vec<(U512, Slot)> {
        Table::range(self, first, last, limit)
    }
}

/// The five tables of a node.
pub struct ItemStore {
    tables: [Box<dyn TableOps>; 5],
    values: Values,
    /// Value bytes per table (a value held by several tables counts in each).
    table_bytes: [usize; 5],
    /// Deleted items (tombstones) and the version of their delete, kept
    /// until `Config::tombstone_horizon_ms` after it so that an older copy
    /// coming back (a paused node, the other side of a partition) loses.
    tombs: std::collections::HashMap<(HashMethod, U512), Version>,
    /// Writes to persist, when the node keeps a data directory.
    pub(crate) journal: super::journal::Journal,
}

impl std::fmt::Debug for ItemStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ItemStore").field("items", &self.total()).finish()
    }
}

impl Default for ItemStore {
    fn default() -> Self {
        ItemStore {
            tables: [
                Box::new(Table::<20>::new(224)),
                Box::new(Table::<28>::new(160)),
                Box::new(Table::<32>::new(128)),
                Box::new(Table::<48>::new(0)),
                Box::new(Table::<64>::new(0)),
            ],
            values: Values::default(),
            table_bytes: [0; 5],
            tombs: Default::default(),
            journal: Default::default(),
        }
    }
}

impl ItemStore {
    /// The value of an item.
    pub fn get(&self, method: HashMethod, key: &U512) -> Option<&Bytes> {
        self.values.get(self.tables[method.index()].get(key)?)
    }

    /// True if the item is held.
    pub fn contains(&self, method: HashMethod, key: &U512) -> bool {
        self.tables[method.index()].get(key).is_some()
    }

    /// The version of an item's value (zero: unversioned, a py2p copy).
    pub fn version(&self, method: HashMethod, key: &U512) -> Option<Version> {
        self.tables[method.index()].get(key).map(|s| self.values.version(s))
    }

    /// The version of what this table knows of the item: its value's, or
    /// its tombstone's ([`Version::ZERO`] for neither).
    pub fn current_version(&self, method: HashMethod, key: &U512) -> Version {
        match self.version(method, key) {
            Some(v) => v,
            None => self.tomb(method, key).unwrap_or(Version::ZERO),
        }
    }

    /// The version of the item's delete, if it is remembered.
    pub fn tomb(&self, method: HashMethod, key: &U512) -> Option<Version> {
        if self.tombs.is_empty() {
            return None;
        }
        self.tombs.get(&(method, *key)).copied()
    }

    /// Remembers that the item was deleted at `version` (its value, if
    /// any, is removed). False, with nothing remembered, when `max`
    /// tombstones are held already.
    pub fn tombstone(&mut self, method: HashMethod, key: &U512, version: Version, max: usize) -> bool {
        self.remove(method, key);
        if self.tombs.len() >= max && !self.tombs.contains_key(&(method, *key)) {
            return false;
        }
        self.tombs.insert((method, *key), version);
        self.journal.record(|| super::Change::ItemTombstone { table: method, hash: *key, version: Some(version) });
        true
    }

    /// Forgets an item's tombstone.
    pub fn clear_tomb(&mut self, method: HashMethod, key: &U512) {
        if self.tombs.remove(&(method, *key)).is_some() {
            self.journal.record(|| super::Change::ItemTombstone { table: method, hash: *key, version: None });
        }
    }

    /// Tombstones held.
    pub fn tomb_count(&self) -> usize {
        self.tombs.len()
    }

    /// Every tombstone, in key order.
    pub fn tombs(&self) -> Vec<((HashMethod, U512), Version)> {
        let mut v: Vec<_> = self.tombs.iter().map(|(k, v)| (*k, *v)).collect();
        v.sort();
        v
    }

    /// Forgets the tombstones of deletes dated before `before` (wall ms).
    pub fn prune_tombs(&mut self, before: crate::core::Time) -> usize {
        let old: Vec<(HashMethod, U512)> =
            self.tombs.iter().filter(|(_, v)| v.wall_ms() < before).map(|(k, _)| *k).collect();
        for (m, k) in &old {
            self.clear_tomb(*m, k);
        }
        old.len()
    }

    /// Stores an item unversioned (replacing any value it had).
    pub fn insert(&mut self, method: HashMethod, key: &U512, value: Bytes) {
        self.insert_versioned(method, key, value, Version::ZERO);
    }

    /// Stores an item with its version (replacing any value or tombstone it had).
    pub fn insert_versioned(&mut self, method: HashMethod, key: &U512, value: Bytes, version: Version) {
        if !self.tombs.is_empty() && self.tombs.remove(&(method, *key)).is_some() {
            self.journal.record(|| super::Change::ItemTombstone { table: method, hash: *key, version: None });
        }
        self.journal.record(|| super::Change::Item { table: method, hash: *key, value: Some(value.clone()), version });
        let t = method.index();
        self.table_bytes[t] += value.len();
        let slot = self.values.add(value, version);
        if let Some(old) = self.tables[t].insert(key, slot) {
            self.table_bytes[t] = self.table_bytes[t].saturating_sub(self.values.get(old).map_or(0, Bytes::len));
            self.values.release(old);
        }
    }

    /// Removes an item; true if it was held.
    pub fn remove(&mut self, method: HashMethod, key: &U512) -> bool {
        match self.tables[method.index()].remove(key) {
            Some(old) => {
                let t = method.index();
                self.table_bytes[t] = self.table_bytes[t].saturating_sub(self.values.get(old).map_or(0, Bytes::len));
                self.values.release(old);
                self.journal.record(|| super::Change::Item {
                    table: method,
                    hash: *key,
                    value: None,
                    version: Version::ZERO,
                });
                true
            }
            None => false,
        }
    }

    /// Bytes of the values held (a value shared by several tables counts once).
    pub fn value_bytes(&self) -> usize {
        self.values.bytes
    }

    /// Bytes of the values one table holds (a value shared with another
    /// table counts in both).
    pub fn table_value_bytes(&self, method: HashMethod) -> usize {
        self.table_bytes[method.index()]
    }

    /// What the store costs, as counted against `Config::max_store_bytes`:
    /// the value bytes (a shared value once) plus [`ITEM_OVERHEAD`] per item.
    pub fn stored_bytes(&self) -> usize {
        self.values.bytes.saturating_add(self.total().saturating_mul(ITEM_OVERHEAD))
    }

    /// What storing `value` as this item would add to [`ItemStore::stored_bytes`]
    /// (before the old value of an overwritten item is released).
    pub fn added_cost(&self, method: HashMethod, key: &U512, value: &Bytes) -> usize {
        let entry = if self.contains(method, key) { 0 } else { ITEM_OVERHEAD };
        self.added_bytes(value) + entry
    }

    /// Bytes that overwriting this item would release: its old value, if no
    /// other table shares it.
    pub fn released_bytes(&self, method: HashMethod, key: &U512) -> usize {
        let Some(slot) = self.tables[method.index()].get(key) else { return 0 };
        match self.values.slots.get(slot as usize) {
            Some(Some((v, 1, _))) => v.len(),
            _ => 0,
        }
    }

    /// [`ItemStore::stored_bytes`] after storing `value` as this item.
    pub fn stored_bytes_after(&self, method: HashMethod, key: &U512, value: &Bytes) -> usize {
        (self.stored_bytes() + self.added_cost(method, key, value)).saturating_sub(self.released_bytes(method, key))
    }

    /// The bytes that storing `value` would add: none when it is the value
    /// just stored in another table (one `set` stores one value five times).
    pub fn added_bytes(&self, value: &Bytes) -> usize {
        if self.values.last.is_some_and(|(p, l, _)| value.as_ptr() as usize == p && value.len() == l) {
            0
        } else {
            value.len()
        }
    }

    /// Count and XOR of [`item_digest`] of the values and tombstones of
    /// one table with `first <= hash <= last`.
    /// `None` when the range holds more than `limit` items (not summed).
    pub fn range_summary(
        &mut self,
        method: HashMethod,
        first: &U512,
        last: &U512,
        limit: usize,
    ) -> Option<(u64, u128)> {
        let (mut count, mut sum) = (0u64, 0u128);
        let items = self.tables[method.index()].range(first, last, limit);
        if items.len() > limit {
            return None;
        }
        for (k, slot) in items {
            let value = self.values.get(slot).map(|v| &v[..]);
            sum ^= item_digest(&k, self.values.version(slot), value);
            count += 1;
        }
        for ((m, k), v) in &self.tombs {
            if *m == method && k >= first && k <= last {
                sum ^= item_digest(k, *v, None);
                count += 1;
            }
        }
        Some((count, sum))
    }

    /// Items in one table.
    pub fn len(&self, method: HashMethod) -> usize {
        self.tables[method.index()].len()
    }

    /// Items over the five tables.
    pub fn total(&self) -> usize {
        self.tables.iter().map(|t| t.len()).sum()
    }

    /// The keys of one table.
    pub fn keys(&self, method: HashMethod) -> Vec<U512> {
        self.tables[method.index()].entries().into_iter().map(|(k, _)| k).collect()
    }

    /// The items of one table with their versions.
    pub fn versioned_items(&self, method: HashMethod) -> Vec<(U512, Bytes, Version)> {
        self.tables[method.index()]
            .entries()
            .into_iter()
            .filter_map(|(k, s)| Some((k, self.values.get(s)?.clone(), self.values.version(s))))
            .collect()
    }

    /// The items of one table.
    pub fn items(&self, method: HashMethod) -> Vec<(U512, Bytes)> {
        self.tables[method.index()]
            .entries()
            .into_iter()
            .filter_map(|(k, s)| Some((k, self.values.get(s)?.clone())))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaves_like_a_map_across_merges() {
        let mut store = ItemStore::default();
        let mut model: HashMap<(HashMethod, U512), Bytes> = HashMap::new();
        for i in 0..5000u32 {
            let key = format!("k{}", i % 3000);
            let value = Bytes::from(format!("v{i}"));
            for m in HashMethod::ALL {
                let h = m.hash(key.as_bytes());
                if i % 7 == 3 {
                    store.remove(m, &h);
                    model.remove(&(m, h));
                } else {
                    store.insert(m, &h, value.clone());
                    model.insert((m, h), value.clone());
                }
            }
        }
        // An odd-shaped key (low bits set in the sha1 table) is kept too.
        let odd = U512::from(12345u64);
        store.insert(HashMethod::Sha1, &odd, Bytes::from_static(b"odd"));
        model.insert((HashMethod::Sha1, odd), Bytes::from_static(b"odd"));
        assert_eq!(store.total(), model.len());
        for ((m, k), v) in &model {
            assert_eq!(store.get(*m, k), Some(v));
        }
        let mut listed = 0;
        for m in HashMethod::ALL {
            for (k, v) in store.items(m) {
                assert_eq!(model.get(&(m, k)), Some(&v));
                listed += 1;
            }
        }
        assert_eq!(listed, model.len());
        assert!(!store.contains(HashMethod::Sha256, &U512::from(1u64)));
    }

    #[test]
    fn range_summaries_match_only_the_same_items_and_versions() {
        let (mut a, mut b) = (ItemStore::default(), ItemStore::default());
        let v = |hlc| Version { hlc, writer: 1 };
        let keys: Vec<U512> = (0..50).map(|i| HashMethod::Sha256.hash(format!("k{i}").as_bytes())).collect();
        for (i, k) in keys.iter().enumerate() {
            a.insert_versioned(HashMethod::Sha256, k, Bytes::from(format!("v{i}")), v(5));
            b.insert_versioned(HashMethod::Sha256, k, Bytes::from(format!("v{i}")), v(5));
        }
        let mut sorted = keys.clone();
        sorted.sort();
        let (first, last) = (sorted[10], sorted[30]);
        let sa = a.range_summary(HashMethod::Sha256, &first, &last, 100);
        let sa = sa.expect("within the limit");
        assert_eq!(sa.0, 21, "the range holds 21 items");
        assert_eq!(a.range_summary(HashMethod::Sha256, &first, &last, 10), None, "over the limit");
        assert_eq!(Some(sa), b.range_summary(HashMethod::Sha256, &first, &last, 100));
        // A newer version of one item, or a tombstone, shows.
        b.insert_versioned(HashMethod::Sha256, &sorted[20], Bytes::from_static(b"new"), v(6));
        assert_ne!(Some(sa), b.range_summary(HashMethod::Sha256, &first, &last, 100));
        b.tombstone(HashMethod::Sha256, &sorted[20], v(7), 10);
        assert_ne!(Some(sa), b.range_summary(HashMethod::Sha256, &first, &last, 100));
        // Outside the range nothing counts.
        let outside = b.range_summary(HashMethod::Sha256, &sorted[0], &sorted[5], 100);
        assert_eq!(outside, a.range_summary(HashMethod::Sha256, &sorted[0], &sorted[5], 100));
    }

    #[test]
    fn values_are_shared_and_released() {
        let mut store = ItemStore::default();
        let v = Bytes::from_static(b"shared");
        assert_eq!(store.added_bytes(&v), 6);
        for m in HashMethod::ALL {
            store.insert(m, &m.hash(b"x"), v.clone());
            assert_eq!(store.added_bytes(&v), 0, "the value just stored is shared");
        }
        assert_eq!(store.values.slots.iter().flatten().count(), 1);
        assert_eq!(store.value_bytes(), 6, "a shared value counts once");
        // Equal bytes elsewhere in memory are a value of their own.
        let other = Bytes::from(b"shared".to_vec());
        assert_eq!(store.added_bytes(&other), 6);
        store.insert(HashMethod::Sha1, &U512::from(7u64), other);
        assert_eq!(store.value_bytes(), 12);
        // Replacing releases the old value once nothing holds it.
        store.insert(HashMethod::Sha1, &U512::from(7u64), Bytes::from_static(b"ab"));
        assert_eq!(store.value_bytes(), 8);
        for m in HashMethod::ALL {
            assert!(store.remove(m, &m.hash(b"x")));
        }
        assert!(store.remove(HashMethod::Sha1, &U512::from(7u64)));
        assert_eq!(store.values.slots.iter().flatten().count(), 0);
        assert_eq!(store.total(), 0);
        assert_eq!(store.value_bytes(), 0);
    }
}
