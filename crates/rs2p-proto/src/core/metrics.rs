//! Counters of what happened on a node, and [`Node::metrics`]: those
//! counters with the node's sizes, its links by kind, and the bounds they
//! run against. Plain integers, updated where the events happen; rendering
//! them (Prometheus text) is the shell's business.

use super::{Node, NodeStats};
use crate::chord::{HandoffStats, Owner, RepairStats};
use crate::ring::HashMethod;

/// Why a connection was closed for what the peer sent (or failed to send).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadInput {
    /// A frame that did not parse, past the renegotiation attempts.
    BadFrame,
    /// A length header out of bounds (a frame larger than `max_frame`).
    FrameHeader,
    /// The connection held the most partial-frame bytes when the total passed `max_buffered_bytes`.
    BufferBound,
    /// Half a frame left idle past `half_frame_timeout_ms`.
    HalfFrameIdle,
    /// No handshake within `handshake_timeout_ms`.
    HandshakeTimeout,
    /// An unfinished handshake evicted to make room (connection caps).
    HandshakeEvicted,
    /// A handshake with an id that is not base58.
    BadHandshake,
    /// A handshaken peer silent past `peer_timeout_ms` (keepalives unanswered).
    Silent,
}

impl BadInput {
    /// Every reason, in label order.
    pub const ALL: [BadInput; 8] = [
        BadInput::BadFrame,
        BadInput::FrameHeader,
        BadInput::BufferBound,
        BadInput::HalfFrameIdle,
        BadInput::HandshakeTimeout,
        BadInput::HandshakeEvicted,
        BadInput::BadHandshake,
        BadInput::Silent,
    ];

    /// The label value (`reason="..."`).
    pub fn label(self) -> &'static str {
        match self {
            BadInput::BadFrame => "bad_frame",
            BadInput::FrameHeader => "frame_header",
            BadInput::BufferBound => "buffer_bound",
            BadInput::HalfFrameIdle => "half_frame_idle",
            BadInput::HandshakeTimeout => "handshake_timeout",
            BadInput::HandshakeEvicted => "handshake_evicted",
            BadInput::BadHandshake => "bad_handshake",
            BadInput::Silent => "silent",
        }
    }
}

/// Event counters kept in the [`Node`]; they only grow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Frames decoded (any connection).
    pub frames_in: u64,
    /// Bytes received (any connection, frames or parts of frames).
    pub bytes_in: u64,
    /// Frames queued for sending.
    pub frames_out: u64,
    /// Bytes of those frames.
    pub bytes_out: u64,
    /// Connections closed for bad input, by [`BadInput`] (indexed as [`BadInput::ALL`]).
    pub bad_input_closes: [u64; BadInput::ALL.len()],
    /// Gets whose tables disagreed (values held by some tables differed
    /// from the others'), so that the differing tables were asked again.
    pub disagreements: u64,
    /// Retrieves received from peers (answered here or forwarded).
    pub retrieves_in: u64,
    /// Stores received from peers.
    pub stores_in: u64,
    /// Status requests answered (PROTOCOL §16.15).
    pub status_answered: u64,
    /// Writes and deletes refused for a version dated too far ahead.
    pub versions_refused: u64,
    /// Links whose rs2p peer's clock was found off past the tolerance.
    pub clock_skew_warnings: u64,
    /// Conflicts between copies settled by their versions, by kind
    /// (indexed as [`Conflict::ALL`]).
    pub conflicts: [u64; Conflict::ALL.len()],
    /// Value bytes sent to new owners of items after a merge or a rejoin
    /// (handoffs of items we no longer own, tombstones included).
    pub merge_bytes: u64,
}

/// How two copies of an item that disagreed were settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflict {
    /// An older write arrived where a newer one was held: dropped.
    StaleWrite,
    /// A newer write replaced an older value.
    NewerWrite,
    /// A delete (tombstone) replaced an older value, or refused an older write.
    Delete,
    /// A get saw different versions and returned the highest.
    GetVersions,
}

impl Conflict {
    /// Every kind, in counter order.
    pub const ALL: [Conflict; 4] =
        [Conflict::StaleWrite, Conflict::NewerWrite, Conflict::Delete, Conflict::GetVersions];

    /// Its label in metrics.
    pub fn label(self) -> &'static str {
        match self {
            Conflict::StaleWrite => "stale_write",
            Conflict::NewerWrite => "newer_write",
            Conflict::Delete => "delete",
            Conflict::GetVersions => "get_versions",
        }
    }
}

impl Counters {
    /// Counts one close for bad input.
    pub(crate) fn bad_input(&mut self, why: BadInput) {
        let slot = BadInput::ALL.iter().position(|b| *b == why).unwrap_or(0);
        self.bad_input_closes[slot] += 1;
    }

    /// Counts one conflict settled by versions.
    pub(crate) fn conflict(&mut self, kind: Conflict) {
        let slot = Conflict::ALL.iter().position(|c| *c == kind).unwrap_or(0);
        self.conflicts[slot] += 1;
    }
}

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
        for c in self.conns.values().filter(|c| c.handshaken) {
            links[usize::from(c.rs2p)][usize::from(!c.leeching)][usize::from(c.outgoing)] += 1;
        }
        let cfg = &self.cfg;
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
            counters: self.counters,
            stats: self.stats(),
            bounds,
            items_per_table: HashMethod::ALL.map(|m| self.chord.data.len(m)),
            value_bytes_per_table: HashMethod::ALL.map(|m| self.chord.data.table_value_bytes(m)),
            tombstones: self.chord.keys.tombstone_count(),
            links,
            awaiting: self.conns.values().filter(|c| !c.handshaken).count(),
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
