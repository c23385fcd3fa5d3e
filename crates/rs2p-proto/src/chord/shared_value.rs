//! One allocation of a write's value per node: an item of our tables and
//! a replica of another item of the same `set` (same key, version and
//! bytes) keep the same bytes. Each arrives in a frame of its own, so each
//! was a copy: a node keeps replicas of its two successors' arcs beside
//! its own, and holds items of both kinds for about a third of the keys.

use std::sync::Arc;

use bytes::Bytes;

use crate::chord::Node;
use crate::core::Version;

impl Node {
    /// `value`, or the equal bytes already kept for `key` at `version` by
    /// the other store (the replicas when `into_tables`, else the tables).
    /// `key` is the node's allocation ([`Node::shared_key`]): held by
    /// nothing else, no store holds the key, and none is searched.
    pub(crate) fn shared_value(
        &self,
        key: Option<&Arc<[u8]>>,
        version: Version,
        value: Bytes,
        into_tables: bool,
    ) -> Bytes {
        let other = if into_tables { &self.chord.replicas } else { &self.chord.data };
        key.filter(|k| !value.is_empty() && Arc::strong_count(k) > 1 && other.total() > 0)
            .and_then(|k| other.same_value(k, version, &value))
            .unwrap_or(value)
    }
}
