//! One allocation of a key per node: the key list, the tables and the
//! replicas keep the same `Arc<[u8]>` of a key, whichever store learned it
//! first (a key list of a million keys beside items and replicas of
//! most of them held each key up to three times, 48 bytes each).

use std::sync::Arc;

use crate::chord::Node;

impl Node {
    /// The allocation of `key` this node already keeps, for a copy the
    /// tables (`into_tables`) or the replicas are about to keep: the other
    /// store's, else a new one. The store that keeps it looks in its own
    /// held keys itself (`ItemStore::insert_keyed`); the key list looks in
    /// both stores when it learns a key (`Node::add_key`), which is after
    /// the stores and replicas of a set in the usual order (its
    /// announcement waits for a batch), so the key list, larger than
    /// either store, is not searched on every write.
    pub(crate) fn shared_key(&self, key: &[u8], into_tables: bool) -> Arc<[u8]> {
        let other = if into_tables { &self.chord.replicas } else { &self.chord.data };
        other.held_key(key).cloned().unwrap_or_else(|| Arc::from(key))
    }
}
