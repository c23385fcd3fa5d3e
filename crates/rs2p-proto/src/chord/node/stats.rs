//! Counters describing a node's state, for logs, tests and benchmarks.

use super::Node;

/// A snapshot of a node's sizes. Every map a peer can grow is counted here.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// Open connections (any state).
    pub connections: usize,
    /// Handshaken peers.
    pub peers: usize,
    /// Connections awaiting a handshake (accepted or dialing).
    pub awaiting: usize,
    /// Bytes of partial frames over all connections.
    pub buffered_bytes: usize,
    /// Remembered broadcast ids.
    pub recent_ids: usize,
    /// Route requests awaiting a response.
    pub route_requests: usize,
    /// Retrieves awaiting an answer.
    pub pending_retrieves: usize,
    /// Gets in progress.
    pub gets: usize,
    /// Keys in the network-wide key list (where `keys()` walks the ring:
    /// the keys the walk found).
    pub keys: usize,
    /// Key-list streams to peers still in progress.
    pub key_streams: usize,
    /// Bytes of those keys.
    pub key_bytes: usize,
    /// Bytes of remembered deleted keys.
    pub tombstone_bytes: usize,
    /// Items stored locally (five tables).
    pub items: usize,
    /// Bytes of the values stored locally (a value in several tables counts once).
    pub value_bytes: usize,
    /// What the local tables cost against `Config::max_store_bytes`: value
    /// bytes plus a fixed overhead per item for its key and index entry.
    pub stored_bytes: usize,
    /// Replicas kept for rs2p successors, and what they cost (counted like
    /// `stored_bytes`, against the same bound, apart).
    pub replicas: usize,
    /// See `replicas`.
    pub replica_bytes: usize,
    /// Items being handed over.
    pub handoff_pending: usize,
    /// Errors kept for `status`.
    pub errors: usize,
    /// Outgoing dials started since the node began (any reason).
    pub dials_started: u64,
}

impl Node {
    /// Current sizes.
    pub fn stats(&self) -> NodeStats {
        NodeStats {
            connections: self.mesh.conns().len(),
            peers: self.mesh.routing().len(),
            awaiting: self.mesh.conns().values().filter(|c| !c.handshaken).count(),
            buffered_bytes: self.mesh.conns().values().map(|c| c.buffered()).sum(),
            recent_ids: self.mesh.recent_len(),
            route_requests: self.mesh.route_requests_len(),
            pending_retrieves: self.gets.pending_len(),
            gets: self.gets.gets_len(),
            keys: if self.walks_keys() { self.walked_len() } else { self.chord.keys.len() },
            key_streams: self.chord.streaming.len(),
            key_bytes: self.chord.keys.bytes().0,
            tombstone_bytes: self.chord.keys.bytes().1,
            items: self.chord.item_count(),
            value_bytes: self.chord.data.value_bytes(),
            stored_bytes: self.chord.data.stored_bytes(),
            replicas: self.chord.replicas.total(),
            replica_bytes: self.chord.replicas.stored_bytes(),
            handoff_pending: self.chord.handoff.len(),
            errors: self.mesh.errors_len(),
            dials_started: self.mesh.dials_started(),
        }
    }
}
