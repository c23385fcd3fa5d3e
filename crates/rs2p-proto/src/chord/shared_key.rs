//! One allocation of a key per node: the key list, the tables and the
//! replicas keep the same `Arc<[u8]>` of a key, whichever of them learned
//! it first (a key list of a million keys beside items and replicas of
//! most of them held each key up to three times, 48 bytes each).

use std::sync::Arc;

use crate::chord::Node;

impl Node {
    /// The allocation of `key` this node already keeps (tables, replicas,
    /// key list, in that order), or a new one.
    pub(crate) fn shared_key(&self, key: &[u8]) -> Arc<[u8]> {
        let c = &self.chord;
        c.data
            .held_key(key)
            .or_else(|| c.replicas.held_key(key))
            .or_else(|| c.keys.listed(key))
            .cloned()
            .unwrap_or_else(|| Arc::from(key))
    }
}
