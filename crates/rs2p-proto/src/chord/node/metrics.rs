//! [`Node::metrics`]: the node's counters with its sizes, its links by
//! kind, and the bounds they run against.

use super::Node;
use crate::chord::{HandoffStats, Owner, RepairStats};
use crate::core::Counters;
use crate::ring::HashMethod;

use super::stats::NodeStats;

/// Handshaken links by kind of peer, seeding or not, and direction:
/// `[rs2p][seeding][outgoing]`, each index 0 or 1.
pub type LinksByKind = [[[usize; 2]; 2]; 2];

/// Everything [`Node::metrics`] reports: counters, sizes and bounds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeMetrics {
    /// The event counters.
    pub counters: Counters,
    /// Sizes of everything a peer can grow (as [`Node::stats`]).
    pub stats: NodeStats,
    /// The bound each of those sizes runs against, by name (`Config` field).
    pub bounds: Vec<(&'static str, u64)>,
    /// Items per table, in [`HashMethod::ALL`] order.
    pub items_per_table: [usize; 5],
    /// Value bytes per table (a value held by two tables counts in each).
    pub value_bytes_per_table: [usize; 5],
    /// Tombstones (deleted keys remembered).
    pub tombstones: usize,
    /// Links by kind, seeding and direction (see [`LinksByKind`]).
    pub links: LinksByKind,
    /// Connections not handshaken yet.
    pub awaiting: usize,
    /// True while this node seeds.
    pub seeding: bool,
    /// A predecessor is linked.
    pub has_predecessor: bool,
    /// A successor is linked.
    pub has_successor: bool,
    /// Fingers known (distinct peers).
    pub fingers: usize,
    /// Length of the successor list.
    pub successors: usize,
    /// Handoff counters.
    pub handoff: HandoffStats,
    /// Repair counters (copies restored, bytes ...).
    pub repair: RepairStats,
    /// Rejoin, tombstones and clock (as `rs2p status` shows them).
    pub heal: crate::chord::HealStatus,
    /// Probes of lost peers and start addresses sent.
    pub rejoin_probes: u64,
    /// Range summaries: items matched at their new owner, items sent one
    /// by one after a summary differed, bytes of summaries.
    pub sync: (u64, u64, u64),
}

impl Node {
    /// The node's counters, sizes, links and bounds at this moment.
    pub fn metrics(&self) -> NodeMetrics {
        let mut links: LinksByKind = Default::default();
        for c in self.mesh.conns().values().filter(|c| c.handshaken) {
            links[usize::from(c.rs2p)][usize::from(!c.ext.leeching)][usize::from(c.outgoing)] += 1;
        }
        let cfg = &self.mesh.config();
        let as_u64 = |n: usize| n as u64;
        let bounds = vec![
            ("max_connections", as_u64(cfg.max_connections)),
            ("max_buffered_bytes", as_u64(cfg.max_buffered_bytes)),
            ("max_recent_ids", as_u64(cfg.max_recent_ids)),
            ("max_pending", as_u64(cfg.max_pending)),
            ("max_keys", as_u64(cfg.max_keys)),
            ("max_key_bytes", as_u64(cfg.max_key_bytes)),
            ("max_items", as_u64(cfg.max_items)),
            ("max_store_bytes", as_u64(cfg.max_store_bytes)),
            ("max_frame", as_u64(cfg.max_frame)),
        ];
        NodeMetrics {
            counters: *self.mesh.counters(),
            stats: self.stats(),
            bounds,
            items_per_table: HashMethod::ALL.map(|m| self.chord.data.len(m)),
            value_bytes_per_table: HashMethod::ALL.map(|m| self.chord.data.table_value_bytes(m)),
            tombstones: self.chord.keys.tombstone_count(),
            links,
            awaiting: self.mesh.conns().values().filter(|c| !c.handshaken).count(),
            seeding: !self.chord.leeching,
            has_predecessor: matches!(self.predecessor(), Owner::Remote(_)),
            has_successor: matches!(self.successor(), Owner::Remote(_)),
            fingers: self.fingers().len(),
            successors: self.successor_list().len(),
            handoff: self.handoff_stats(),
            repair: self.repair_stats(),
            heal: self.heal_status(),
            rejoin_probes: self.rejoin_probes(),
            sync: self.sync_stats(),
        }
    }
}
