//! Compact storage for the five hash tables.
//!
//! A node may hold millions of items, so an item costs little beside its
//! value. Each value lives once in a slab entry ([`Values`]) with its
//! version and, when known, its key (one allocation, shared with the
//! node's key list and with every table whose item is the same write: a
//! local `set` stores one entry for its five items). The tables index the
//! slab:
//!
//! * an item whose entry knows its key is indexed by the top 32 bits of its
//!   hash and a 32-bit check, a digest of the whole hash under a key drawn
//!   from the node's secret seed (12 bytes an item with its slot): the rest
//!   of the hash is the key's. A lookup whose prefix and check both match
//!   hashes the stored key again to be sure, so two hashes are never taken
//!   for each other; a peer sending hashes that share a stored item's
//!   prefix (it may send any) cannot match the check but by chance (2^-32),
//!   so it cannot make us hash a stored key per frame;
//! * an item without a known key (a py2p store, an item loaded from disk),
//!   or whose prefix another keyed item has, is indexed by the significant
//!   bytes of its hash (a sha1 key is the digest shifted left by 224 bits:
//!   20 bytes, not 64);
//! * a hash not of its table's shape (only a remote peer could send one)
//!   goes to a plain map.
//!
//! Each index is a sorted vector plus a small hash map of recent inserts,
//! merged in when it grows.

mod slab;
mod sorted;

use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;

use crate::core::{Map, SeededState, Version};
use crate::ring::{HashMethod, U512};
use slab::Values;
use sorted::Sorted;

/// Bytes an item costs beside its value, as counted against
/// `Config::max_store_bytes`: its key (up to 64 bytes in its table's compact
/// form), its slot in the sorted index, and the slab's record of the value.
/// Without it a flood of one-byte values would be nearly free to store.
pub const ITEM_OVERHEAD: usize = 96;

/// Distinguishes the store's seeded maps from the node's others.
const PURPOSE: u64 = 0x5354_4f52_4500_0000;

/// Index of a value in the slab.
type Slot = u32;

/// No entry: a [`Held::last`] whose entry was released.
const NO_SLOT: Slot = Slot::MAX;

/// A held key: how many items have it, and the slab entry last written for
/// one of them ([`NO_SLOT`] once released). A write of another of its
/// items with the same version and bytes shares that entry: the items of
/// one `set` reach an owner, and its replicas, one frame each, and each
/// frame's value is an allocation of its own (issue 26: a node holding
/// owned and replicated items of a million keys kept most values twice).
#[derive(Clone, Copy, Debug)]
struct Held {
    items: u8,
    last: Slot,
}

/// The index of one table (see the module's doc).
struct Table<const N: usize> {
    method: HashMethod,
    shift: usize,
    /// Items whose entry knows their key, by [`Table::index_key`]: the top
    /// 32 bits of the hash, then the check (12 bytes an entry with the slot).
    keyed: Sorted<(u32, u32)>,
    /// Keys the check ([`Table::check`]): secret, so that no peer can
    /// craft a hash that passes it.
    check: SeededState,
    /// Items without a known key, by their compact hash.
    bare: Sorted<[u8; N]>,
    odd: Map<U512, Slot>,
    /// The last keyed item whose key was hashed again and matched: a write
    /// looks its item up several times in a row (its version, its room),
    /// and each would hash the key again. Cleared by every insert and
    /// remove (a slot this table holds cannot be freed or reused before).
    checked: Cell<Option<(U512, Slot)>>,
    /// Stored keys hashed again by lookups (tests: a peer's crafted hashes
    /// must not make us hash).
    #[cfg(test)]
    rehashed: Cell<u64>,
}

impl<const N: usize> Table<N> {
    /// An empty table, its maps keyed from `seed` (see `Config::seed`).
    fn new(method: HashMethod, seed: u64) -> Self {
        let state = |i: u64| SeededState::new(seed, PURPOSE + 4 * method.index() as u64 + i);
        Table {
            method,
            shift: method.shift(),
            keyed: Sorted::new(state(0)),
            bare: Sorted::new(state(1)),
            odd: state(2).map(),
            check: state(3),
            checked: Cell::new(None),
            #[cfg(test)]
            rehashed: Cell::new(0),
        }
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

    /// The top 32 bits of a hash of this table's shape; for any value, a
    /// bound that keeps the order (larger values give the largest prefix).
    fn prefix(&self, key: &U512) -> u32 {
        let top = *key >> (self.shift + 8 * N - 32);
        let limbs = top.as_limbs();
        if limbs[1..].iter().any(|l| *l != 0) || limbs[0] > u64::from(u32::MAX) {
            u32::MAX
        } else {
            limbs[0] as u32
        }
    }

    /// 32 bits of a keyed digest of the whole hash.
    fn check(&self, key: &U512) -> u32 {
        use std::hash::BuildHasher;
        (self.check.hash_one(key) >> 32) as u32
    }

    /// Where a keyed item is indexed: its prefix, then its check.
    fn index_key(&self, key: &U512) -> (u32, u32) {
        (self.prefix(key), self.check(key))
    }

    /// The keyed item at `key`'s prefix and check, and whether it is
    /// `key`'s (its key hashed again, unless it was just checked).
    fn keyed_at(&self, key: &U512, values: &Values) -> Option<(Slot, bool)> {
        if self.keyed.len() == 0 {
            return None;
        }
        let s = self.keyed.get(&self.index_key(key))?;
        if self.checked.get() == Some((*key, s)) {
            return Some((s, true));
        }
        #[cfg(test)]
        self.rehashed.set(self.rehashed.get() + 1);
        let mine = values.key(s).is_some_and(|k| self.method.hash(k) == *key);
        if mine {
            self.checked.set(Some((*key, s)));
        }
        Some((s, mine))
    }

    fn get(&self, key: &U512, values: &Values) -> Option<Slot> {
        let Some(k) = self.compact(key) else { return self.odd.get(key).copied() };
        if let Some((s, true)) = self.keyed_at(key, values) {
            return Some(s);
        }
        self.bare.get(&k)
    }

    /// Inserts or replaces; returns the replaced slot. `slot`'s key, if it
    /// has one, is `key`'s (the caller checked).
    fn insert(&mut self, key: &U512, slot: Slot, values: &Values) -> Option<Slot> {
        let Some(k) = self.compact(key) else { return self.odd.insert(*key, slot) };
        let found = self.keyed_at(key, values);
        self.checked.set(None);
        let keyed = values.key(slot).is_some();
        match found {
            Some((_, true)) if keyed => {
                // The slot's key is the item's (the caller checked): the
                // lookups that follow a write need not hash it again.
                self.checked.set(Some((*key, slot)));
                self.keyed.insert(self.index_key(key), slot)
            }
            Some((_, true)) => {
                // Not reached while the store passes keys on; kept correct.
                let old = self.keyed.remove(&self.index_key(key));
                self.bare.insert(k, slot);
                old
            }
            None if keyed => {
                let old = self.bare.remove(&k);
                self.keyed.insert(self.index_key(key), slot);
                self.checked.set(Some((*key, slot)));
                old
            }
            // No key, or another item has the prefix and check.
            _ => self.bare.insert(k, slot),
        }
    }

    fn remove(&mut self, key: &U512, values: &Values) -> Option<Slot> {
        let Some(k) = self.compact(key) else { return self.odd.remove(key) };
        let found = self.keyed_at(key, values);
        self.checked.set(None);
        if let Some((_, true)) = found {
            return self.keyed.remove(&self.index_key(key));
        }
        self.bare.remove(&k)
    }

    fn len(&self) -> usize {
        self.keyed.len() + self.bare.len() + self.odd.len()
    }

    /// The hash of a keyed item.
    fn hash_of(&self, slot: Slot, values: &Values) -> Option<U512> {
        values.key(slot).map(|k| self.method.hash(k))
    }

    /// Items with `first <= key <= last`, in key order; more than `limit`
    /// only when the range holds more than `limit`.
    fn range(&mut self, first: &U512, last: &U512, limit: usize, values: &Values) -> Vec<(U512, Slot)> {
        let mut out = Vec::new();
        let (lo, hi) = (self.prefix(first), self.prefix(last));
        let (method, shift) = (self.method, self.shift);
        // Within a prefix the entries go by check, not by key: a stop only
        // between prefixes keeps every key below the last one returned.
        let mut group = None;
        for ((p, _), s) in self.keyed.from(|p| p.0 < lo) {
            if p > hi || (out.len() > limit && group != Some(p)) {
                break;
            }
            group = Some(p);
            let key = values.key(s).map(|k| method.hash(k)).unwrap_or_default();
            if key >= *first && key <= *last {
                out.push((key, s));
            }
        }
        let mut bare = Vec::new();
        // Compact keys sort as the keys they stand for.
        let expand = |k: &[u8; N]| crate::ring::u512_from_be(k) << shift;
        for (k, s) in self.bare.from(|x| expand(x) < *first) {
            let key = expand(&k);
            if key > *last || bare.len() > limit {
                break;
            }
            bare.push((key, s));
        }
        out.extend(bare);
        out.extend(self.odd.iter().filter(|(k, _)| *k >= first && *k <= last).map(|(k, s)| (*k, *s)));
        out.sort_unstable_by_key(|e| e.0);
        out
    }

    fn entries(&self, values: &Values) -> Vec<(U512, Slot)> {
        let mut out: Vec<(U512, Slot)> = Vec::with_capacity(self.len());
        out.extend(self.keyed.iter().filter_map(|(_, s)| Some((self.hash_of(s, values)?, s))));
        out.extend(self.bare.iter().map(|(k, s)| (self.expand(&k), s)));
        out.extend(self.odd.iter().map(|(k, s)| (*k, *s)));
        // In key order, whatever the maps' order: handoffs go out in it.
        out.sort_unstable_by_key(|e| e.0);
        out
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
    #[cfg(test)]
    fn rehashed(&self) -> u64;
    fn get(&self, key: &U512, values: &Values) -> Option<Slot>;
    fn insert(&mut self, key: &U512, slot: Slot, values: &Values) -> Option<Slot>;
    fn remove(&mut self, key: &U512, values: &Values) -> Option<Slot>;
    fn len(&self) -> usize;
    fn entries(&self, values: &Values) -> Vec<(U512, Slot)>;
    fn range(&mut self, first: &U512, last: &U512, limit: usize, values: &Values) -> Vec<(U512, Slot)>;
}

impl<const N: usize> TableOps for Table<N> {
    #[cfg(test)]
    fn rehashed(&self) -> u64 {
        self.rehashed.get()
    }
    fn get(&self, key: &U512, values: &Values) -> Option<Slot> {
        Table::get(self, key, values)
    }
    fn insert(&mut self, key: &U512, slot: Slot, values: &Values) -> Option<Slot> {
        Table::insert(self, key, slot, values)
    }
    fn remove(&mut self, key: &U512, values: &Values) -> Option<Slot> {
        Table::remove(self, key, values)
    }
    fn len(&self) -> usize {
        Table::len(self)
    }
    fn entries(&self, values: &Values) -> Vec<(U512, Slot)> {
        Table::entries(self, values)
    }
    fn range(&mut self, first: &U512, last: &U512, limit: usize, values: &Values) -> Vec<(U512, Slot)> {
        Table::range(self, first, last, limit, values)
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
    tombs: Map<(HashMethod, U512), Version>,
    /// The keys of the items held, with how many items have each (up to
    /// five) and the entry last written for one of them: in order for the
    /// ring walk's pages (`keywalk.rs`), and the one allocation of each key
    /// that the slab and the key list share.
    held: BTreeMap<Arc<[u8]>, Held>,
    /// The key of the next write of this item ([`ItemStore::stage_key`]).
    staged: Option<(HashMethod, U512, Arc<[u8]>)>,
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
        Self::with_seed(0)
    }
}

impl ItemStore {
    /// Empty, its maps keyed from `seed` (see [`crate::core::Config::seed`]:
    /// a simulation run twice does the same work twice).
    pub fn with_seed(seed: u64) -> Self {
        ItemStore {
            tables: [
                Box::new(Table::<20>::new(HashMethod::Sha1, seed)),
                Box::new(Table::<28>::new(HashMethod::Sha224, seed)),
                Box::new(Table::<32>::new(HashMethod::Sha256, seed)),
                Box::new(Table::<48>::new(HashMethod::Sha384, seed)),
                Box::new(Table::<64>::new(HashMethod::Sha512, seed)),
            ],
            values: Values::default(),
            table_bytes: [0; 5],
            tombs: SeededState::new(seed, PURPOSE + 20).map(),
            held: BTreeMap::new(),
            staged: None,
            journal: Default::default(),
        }
    }

    fn slot(&self, method: HashMethod, key: &U512) -> Option<Slot> {
        self.tables[method.index()].get(key, &self.values)
    }

    /// The value of an item.
    pub fn get(&self, method: HashMethod, key: &U512) -> Option<&Bytes> {
        self.values.get(self.slot(method, key)?)
    }

    /// True if the item is held.
    pub fn contains(&self, method: HashMethod, key: &U512) -> bool {
        self.slot(method, key).is_some()
    }

    /// The version of an item's value (zero: unversioned, a py2p copy).
    pub fn version(&self, method: HashMethod, key: &U512) -> Option<Version> {
        self.slot(method, key).map(|s| self.values.version(s))
    }

    /// The value and version of an item, in one lookup.
    pub fn entry(&self, method: HashMethod, key: &U512) -> Option<(&Bytes, Version)> {
        let e = self.values.entry(self.slot(method, key)?)?;
        Some((&e.value, e.version))
    }

    /// The key of an item held, when known.
    pub fn item_key(&self, method: HashMethod, key: &U512) -> Option<Bytes> {
        let k = self.values.key(self.slot(method, key)?)?;
        // The store's allocation, not a copy.
        Some(Bytes::from_owner(k.clone()))
    }

    /// The one allocation of `key` that the store holds, or a new one.
    #[cfg(test)]
    pub(crate) fn shared_key(&self, key: &[u8]) -> Arc<[u8]> {
        match self.held.get_key_value(key) {
            Some((k, _)) => k.clone(),
            None => Arc::from(key),
        }
    }

    /// This store's allocation of `key`, if it holds an item of it.
    pub(crate) fn held_key(&self, key: &[u8]) -> Option<&Arc<[u8]>> {
        self.held.get_key_value(key).map(|(k, _)| k)
    }

    /// The value this store holds for another item of `key`'s write at
    /// `version`, if its bytes are `value`'s: the one allocation for the
    /// node's tables and replicas to share (see [`Held`]).
    pub(crate) fn same_value(&self, key: &[u8], version: Version, value: &Bytes) -> Option<Bytes> {
        let e = self.values.entry(self.held.get(key)?.last)?;
        (e.version == version && e.value == *value).then(|| e.value.clone())
    }

    /// The key staged for the next write of this item, if any.
    pub(crate) fn staged_key(&self, method: HashMethod, hash: &U512) -> Option<&Arc<[u8]>> {
        self.staged.as_ref().filter(|(m, h, _)| *m == method && h == hash).map(|(_, _, k)| k)
    }

    /// Keys of the items held after `cursor` (all for an empty one), in order.
    pub(crate) fn held_keys_after<'a>(&'a self, cursor: &'a [u8]) -> impl Iterator<Item = &'a Arc<[u8]>> + 'a {
        use std::ops::Bound;
        let from = if cursor.is_empty() { Bound::Unbounded } else { Bound::Excluded(cursor) };
        self.held.range::<[u8], _>((from, Bound::Unbounded)).map(|(k, _)| k)
    }

    /// Keys of the items held.
    pub fn held_key_count(&self) -> usize {
        self.held.len()
    }

    /// `key` (which hashes to the item: the caller checked) goes with the
    /// next write of the item ([`ItemStore::insert_versioned`]); an item
    /// already held without a key of its own learns it now. The allocation
    /// given is kept: the node's one of that key (`Node::shared_key`).
    pub(crate) fn stage_key(&mut self, method: HashMethod, hash: &U512, key: Arc<[u8]>) {
        if let Some(slot) = self.slot(method, hash) {
            // Only an entry of this item alone (one shared with another
            // table's item may be another key's).
            let alone = self.values.refs(slot) == 1;
            if let Some(e) = self.values.entry_mut(slot).filter(|e| e.key.is_none() && alone) {
                e.key = Some(key.clone());
                self.hold_key(&Some(key.clone()), slot);
            }
        }
        self.staged = Some((method, *hash, key));
    }

    /// Drops a key staged for this item and not used.
    pub(crate) fn unstage_key(&mut self, method: HashMethod, hash: &U512) {
        if self.staged.as_ref().is_some_and(|(m, h, _)| *m == method && h == hash) {
            self.staged = None;
        }
    }

    /// One more item of `key`, whose entry is `slot`.
    fn hold_key(&mut self, key: &Option<Arc<[u8]>>, slot: Slot) {
        if let Some(k) = key {
            let h = self.held.entry(k.clone()).or_insert(Held { items: 0, last: slot });
            h.items += 1;
            h.last = slot;
        }
    }

    /// One item of `key` fewer; `gone` is an entry that was released.
    fn drop_key(&mut self, key: Option<Arc<[u8]>>, gone: Option<Slot>) {
        if let Some(k) = key {
            if let Some(h) = self.held.get_mut(&k) {
                h.items -= 1;
                if h.items == 0 {
                    self.held.remove(&k);
                } else if gone == Some(h.last) {
                    h.last = NO_SLOT;
                }
            }
        }
    }

    /// Releases a slot an item no longer uses, and the key's count with it.
    fn release(&mut self, slot: Slot) {
        let key = self.values.key(slot).cloned();
        self.values.release(slot);
        let gone = (self.values.refs(slot) == 0).then_some(slot);
        self.drop_key(key, gone);
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

    /// Stores an item with its version (replacing any value or tombstone
    /// it had). Its key is the one staged for it ([`ItemStore::stage_key`]),
    /// else the one its old value had, if any.
    pub fn insert_versioned(&mut self, method: HashMethod, key: &U512, value: Bytes, version: Version) {
        let staged = match self.staged.take() {
            Some((m, h, k)) if m == method && h == *key => Some(k),
            _ => None,
        };
        self.insert_keyed(method, key, value, version, staged);
    }

    /// Stores an item with its version and, when known, its key (which
    /// must hash to the item: the caller checks); without one, the item
    /// keeps the key its old value had.
    pub(crate) fn insert_keyed(
        &mut self,
        method: HashMethod,
        hash: &U512,
        value: Bytes,
        version: Version,
        key: Option<Arc<[u8]>>,
    ) {
        if !self.tombs.is_empty() && self.tombs.remove(&(method, *hash)).is_some() {
            self.journal.record(|| super::Change::ItemTombstone { table: method, hash: *hash, version: None });
        }
        self.journal.record(|| super::Change::Item { table: method, hash: *hash, value: Some(value.clone()), version });
        let t = method.index();
        let old = self.slot(method, hash);
        // The callers checked the key (it came with a store and was hashed,
        // or the hash was made from it): hashing it again here cost 2.5% of
        // a set's instructions. A test build checks all the same.
        debug_assert!(key.as_ref().is_none_or(|k| method.hash(k) == *hash), "a key that is not the item's");
        let (key, last) = match key {
            Some(k) => match self.held.get_key_value(&k[..]) {
                Some((held, h)) => (Some(held.clone()), Some(h.last)),
                None => (Some(k), None),
            },
            None => (old.and_then(|s| self.values.key(s).cloned()), None),
        };
        self.table_bytes[t] += value.len();
        let slot = self.values.add(value, version, key.clone(), last.filter(|s| *s != NO_SLOT));
        self.hold_key(&key, slot);
        if let Some(old) = self.tables[t].insert(hash, slot, &self.values) {
            self.table_bytes[t] = self.table_bytes[t].saturating_sub(self.values.get(old).map_or(0, Bytes::len));
            self.release(old);
        }
    }

    /// Removes an item; true if it was held.
    pub fn remove(&mut self, method: HashMethod, key: &U512) -> bool {
        match self.tables[method.index()].remove(key, &self.values) {
            Some(old) => {
                let t = method.index();
                self.table_bytes[t] = self.table_bytes[t].saturating_sub(self.values.get(old).map_or(0, Bytes::len));
                self.release(old);
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
        let Some(slot) = self.slot(method, key) else { return 0 };
        match self.values.entry(slot) {
            Some(e) if self.values.refs(slot) == 1 => e.value.len(),
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
        let items = self.tables[method.index()].range(first, last, limit, &self.values);
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

    /// At most `limit` keys of one table with `first <= key <= last`, in
    /// key order: a bounded step of a walk over a table (the work is the
    /// keys returned, a binary search, and a merge of recent inserts).
    pub(crate) fn keys_between(&mut self, method: HashMethod, first: &U512, last: &U512, limit: usize) -> Vec<U512> {
        if limit == 0 || first > last {
            return Vec::new();
        }
        let mut keys = self.tables[method.index()].range(first, last, limit, &self.values);
        keys.truncate(limit);
        keys.into_iter().map(|(k, _)| k).collect()
    }

    /// The keys of one table.
    pub fn keys(&self, method: HashMethod) -> Vec<U512> {
        self.tables[method.index()].entries(&self.values).into_iter().map(|(k, _)| k).collect()
    }

    /// The items of one table with their versions.
    pub fn versioned_items(&self, method: HashMethod) -> Vec<(U512, Bytes, Version)> {
        self.tables[method.index()]
            .entries(&self.values)
            .into_iter()
            .filter_map(|(k, s)| Some((k, self.values.get(s)?.clone(), self.values.version(s))))
            .collect()
    }

    /// The items of one table.
    pub fn items(&self, method: HashMethod) -> Vec<(U512, Bytes)> {
        self.tables[method.index()]
            .entries(&self.values)
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
        let mut model: std::collections::HashMap<(HashMethod, U512), Bytes> = Default::default();
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
        assert_eq!(store.values.live(), 1);
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
        assert_eq!(store.values.live(), 0);
        assert_eq!(store.total(), 0);
        assert_eq!(store.value_bytes(), 0);
    }

    /// Stores `key` in all five tables with its key, as a local `set` does.
    fn set_keyed(store: &mut ItemStore, key: &[u8], value: &Bytes, version: Version) {
        for m in HashMethod::ALL {
            let h = m.hash(key);
            store.stage_key(m, &h, store.shared_key(key));
            store.insert_versioned(m, &h, value.clone(), version);
        }
    }

    #[test]
    fn keyed_items_share_one_entry_and_are_checked_against_their_key() {
        let (mut keyed, mut bare) = (ItemStore::default(), ItemStore::default());
        let v = |hlc| Version { hlc, writer: 1 };
        for i in 0..3000u32 {
            let key = format!("k{i}");
            let value = Bytes::from(format!("v{i}"));
            set_keyed(&mut keyed, key.as_bytes(), &value, v(u64::from(i) + 1));
            for m in HashMethod::ALL {
                bare.insert_versioned(m, &m.hash(key.as_bytes()), value.clone(), v(u64::from(i) + 1));
            }
        }
        // One slab entry a key, one allocation of the key.
        assert_eq!(keyed.values.live(), 3000);
        assert_eq!(keyed.held_key_count(), 3000);
        let k0 = keyed.shared_key(b"k0");
        assert_eq!(Arc::strong_count(&k0), 3, "the held map, the entry and this one");
        for m in HashMethod::ALL {
            let h = m.hash(b"k7");
            assert_eq!(keyed.get(m, &h), Some(&Bytes::from_static(b"v7")));
            assert_eq!(keyed.item_key(m, &h), Some(Bytes::from_static(b"k7")));
            assert_eq!(keyed.keys(m), bare.keys(m), "the same hashes, in the same order");
            let all = keyed.keys(m);
            let (first, last) = (all[100], all[900]);
            assert_eq!(keyed.range_summary(m, &first, &last, 1000), bare.range_summary(m, &first, &last, 1000));
            assert_eq!(keyed.range_summary(m, &first, &last, 500), None);
        }
        // A hash that shares a keyed item's prefix (any peer may send one)
        // is another item: each reads, and goes, alone.
        for m in HashMethod::ALL {
            let h = m.hash(b"k7");
            let twin = h ^ (U512::from(1u64) << m.shift());
            assert!(!keyed.contains(m, &twin));
            keyed.insert(m, &twin, Bytes::from_static(b"twin"));
            assert_eq!(keyed.get(m, &twin), Some(&Bytes::from_static(b"twin")));
            assert_eq!(keyed.get(m, &h), Some(&Bytes::from_static(b"v7")));
            assert!(keyed.remove(m, &twin));
            assert_eq!(keyed.get(m, &h), Some(&Bytes::from_static(b"v7")));
            // ... and the other way round: the twin first, keyless.
            let h8 = m.hash(b"k8");
            let twin8 = h8 ^ (U512::from(1u64) << m.shift());
            assert!(keyed.remove(m, &h8));
            keyed.insert(m, &twin8, Bytes::from_static(b"twin"));
            keyed.stage_key(m, &h8, keyed.shared_key(b"k8"));
            keyed.insert_versioned(m, &h8, Bytes::from_static(b"v8"), v(9));
            assert_eq!(keyed.get(m, &h8), Some(&Bytes::from_static(b"v8")));
            assert_eq!(keyed.get(m, &twin8), Some(&Bytes::from_static(b"twin")));
            assert!(keyed.remove(m, &twin8));
            assert_eq!(keyed.item_key(m, &h8), Some(Bytes::from_static(b"k8")));
        }
        // Hashes crafted to share a keyed item's prefix (a peer knows the
        // hashes of the items we hold) cost no hash of the stored key: the
        // secret check tells them apart first.
        for m in HashMethod::ALL {
            let h = m.hash(b"k7");
            let before = keyed.tables[m.index()].rehashed();
            for bit in 0..200usize {
                let twin = h ^ (U512::from(1u64) << (m.shift() + bit % 200));
                assert_eq!(keyed.get(m, &twin), None);
            }
            let rehashed = keyed.tables[m.index()].rehashed() - before;
            assert!(rehashed <= 1, "{m:?}: 200 crafted lookups hashed a stored key {rehashed} times");
        }
        // A keyless overwrite keeps the item's key, and reads back (the
        // table's remembered check follows the new slot).
        let h = HashMethod::Sha256.hash(b"k9");
        keyed.insert(HashMethod::Sha256, &h, Bytes::from_static(b"new"));
        assert_eq!(keyed.item_key(HashMethod::Sha256, &h), Some(Bytes::from_static(b"k9")));
        assert_eq!(keyed.get(HashMethod::Sha256, &h), Some(&Bytes::from_static(b"new")));
        let twin = h ^ U512::from(1u64) << 128;
        assert_eq!(keyed.get(HashMethod::Sha256, &twin), None, "the remembered check is of one hash only");
        // Held keys follow the items, in order.
        let after: Vec<&[u8]> = keyed.held_keys_after(b"k2998").take(3).map(|k| &k[..]).collect();
        assert_eq!(after, vec![&b"k2999"[..], &b"k3"[..], &b"k30"[..]]);
        for m in HashMethod::ALL {
            assert!(keyed.remove(m, &m.hash(b"k3")));
        }
        assert!(!keyed.held_keys_after(b"").any(|k| &k[..] == b"k3"));
        assert_eq!(keyed.held_key_count(), 2999);
        assert_eq!(Arc::strong_count(&k0), 3);
    }

    #[test]
    fn items_of_one_write_arriving_apart_share_one_entry() {
        let mut store = ItemStore::default();
        let v = |hlc| Version { hlc, writer: 1 };
        // Each item's value a buffer of its own, as frames bring them.
        let own = || Bytes::from(b"value".to_vec());
        let [a, b, c, d, e] = HashMethod::ALL.map(|m| (m, m.hash(b"k")));
        for (m, h) in [a, b] {
            store.stage_key(m, &h, store.shared_key(b"k"));
            store.insert_versioned(m, &h, own(), v(1));
        }
        assert_eq!(store.values.live(), 1, "the same key, version and bytes: one entry");
        // Another version, or other bytes, take an entry of their own.
        store.stage_key(c.0, &c.1, store.shared_key(b"k"));
        store.insert_versioned(c.0, &c.1, own(), v(2));
        store.stage_key(d.0, &d.1, store.shared_key(b"k"));
        store.insert_versioned(d.0, &d.1, Bytes::from_static(b"other"), v(2));
        assert_eq!(store.values.live(), 3);
        // The entry last written for the key released: the next item takes
        // a new one, and every item reads its own value.
        assert!(store.remove(d.0, &d.1));
        store.stage_key(e.0, &e.1, store.shared_key(b"k"));
        store.insert_versioned(e.0, &e.1, own(), v(1));
        assert_eq!(store.values.live(), 3);
        for (m, h) in [a, b, e] {
            assert_eq!(store.entry(m, &h), Some((&own(), v(1))));
        }
        assert_eq!(store.entry(c.0, &c.1), Some((&own(), v(2))));
        for (m, h) in [a, b, c, e] {
            assert!(store.remove(m, &h));
        }
        assert_eq!((store.values.live(), store.held_key_count(), store.value_bytes()), (0, 0, 0));
    }

    #[test]
    fn a_key_learned_after_the_value_is_kept() {
        let mut store = ItemStore::default();
        let h = HashMethod::Sha1.hash(b"late");
        store.insert(HashMethod::Sha1, &h, Bytes::from_static(b"v"));
        assert_eq!(store.item_key(HashMethod::Sha1, &h), None);
        store.stage_key(HashMethod::Sha1, &h, store.shared_key(b"late"));
        assert_eq!(store.item_key(HashMethod::Sha1, &h), Some(Bytes::from_static(b"late")));
        assert_eq!(store.held_key_count(), 1);
        store.unstage_key(HashMethod::Sha1, &h);
        assert!(store.remove(HashMethod::Sha1, &h));
        assert_eq!(store.held_key_count(), 0);
    }

    #[test]
    fn one_value_stored_as_many_items_is_counted_right() {
        let mut store = ItemStore::default();
        let v = Bytes::from_static(b"same");
        let keys: Vec<U512> = (0..600u64).map(|i| HashMethod::Sha1.hash(&i.to_be_bytes())).collect();
        for k in &keys {
            store.insert(HashMethod::Sha1, k, v.clone());
        }
        for k in &keys[..599] {
            assert!(store.remove(HashMethod::Sha1, k));
        }
        assert_eq!(store.get(HashMethod::Sha1, &keys[599]), Some(&v));
    }
}
