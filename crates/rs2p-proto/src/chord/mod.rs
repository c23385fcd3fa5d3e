//! The chord layer (sans-IO): the five hash tables, ownership on the ring,
//! store/retrieve routing, `get` aggregation, join/leave with verified handoff.
//!
//! These are `impl Node` blocks; shared state is in [`ChordState`] and [`GetState`].

mod dispatch;
mod fingers;
mod get;
mod handlers;
mod handoff;
mod handoffs;
mod item_text;
mod journal;
mod keylist;
mod keystream;
mod keywalk;
mod news;
pub mod node;
mod peek;
mod peer;
mod peer_list;
mod rejoin;
mod repair;
mod replica;
mod replica_batch;
mod ring_ops;
mod shared_key;
mod shared_value;
mod status;
mod store;
mod sync;
mod table_walk;
mod user;

use std::collections::BTreeSet;

pub use fingers::{FingerStats, FINGER_LOOKUP_MS, MAX_FIND_PATH, MAX_FINGERS, MAX_SUCCESSORS, MIN_SUCCESSORS};
pub use get::GetState;
pub use handoff::HandoffStats;
pub use journal::Change;
pub use keylist::KeyList;
pub(crate) use keylist::{Full, Limits};
pub use keystream::{Incoming as KeysIn, KeyListStatus, Outgoing as KeysOut, Room};
pub use keywalk::{NO_KEY_LIST_MARKER, WALK_PAGE_KEYS};
pub use news::{MAX_NEWS_SEEN, MAX_NEWS_VISITED, NEWS_FLUSH_MS, NEWS_MAX_BYTES, NEWS_MAX_KEYS};
pub use node::{LinksByKind, Node, NodeMetrics, NodeStats};
pub use peer::ChordPeer;
pub use rejoin::{Placement, MAX_BOOTSTRAP};
pub use repair::RepairStats;
pub use ring_ops::Owner;
pub use status::{
    ring_position, HealStatus, LinkStatus, RingNode, StatusReport, MAX_STATUS_ASKS, MAX_STATUS_BYTES, MAX_STATUS_LINKS,
    STATUS_ANSWERS_PER_SEC,
};
pub use store::{item_digest, ItemStore, ITEM_OVERHEAD};
pub use sync::{MAX_SYNC_INFLIGHT, MIN_RUN, RANGE_ITEMS, SYNC_SETTLE_MS, SYNC_TIMEOUT_MS};
pub use user::ChordError;

use crate::core::{ConnId, Time};
use crate::ring::{HashMethod, U512};

/// How often a seeding node asks its ring neighbours for their peers.
pub(crate) const STABILIZE_MS: u64 = 1_000;

/// With fingers, the longest pause between two stabilisation rounds while
/// the ring neighbours stay the same (each unchanged round doubles it): a
/// peer list is a few kilobytes, and the successor list is kept by links
/// already held; a joining node links to its neighbours itself.
pub(crate) const STABILIZE_MAX_MS: u64 = 8_000;

/// For this long after joining, or after a seeding peer vanished, a lookup
/// that misses in a table we own is asked again of the node that owned the
/// item before us (our arc grew: its items may not have reached us yet).
pub(crate) const FALLBACK_MS: u64 = 30_000;

/// Tells the replica store's seed from the tables' (both from `Config::seed`).
const REPLICAS_SEED: u64 = 0x7265_706c_6963_6173;

/// An empty store for replicas, its maps keyed from the node's seed.
pub(crate) fn replica_store(seed: u64) -> ItemStore {
    ItemStore::with_seed(crate::core::mix64(seed ^ REPLICAS_SEED))
}

/// One item of a hash table, addressed by table and adjusted hash.
pub type ItemKey = (HashMethod, U512);

/// A notify with the `del` marker (py2p drops the link on one it relays, §13 D1).
pub(crate) fn is_delete_notify(msg: &crate::wire::Message) -> bool {
    msg.sub_flag() == Some(crate::wire::flags::NOTIFY) && msg.payload.len() >= 3 && msg.payload[2].as_ref() == b"del"
}

/// A notify without the `del` marker: a new key (§6.10).
pub(crate) fn is_add_notify(msg: &crate::wire::Message) -> bool {
    msg.sub_flag() == Some(crate::wire::flags::NOTIFY) && msg.payload.len() == 2
}

/// Chord state of a node.
#[derive(Debug)]
pub struct ChordState {
    /// Not storing data for the ring (every node starts so; `join` clears it).
    pub leeching: bool,
    /// The five tables.
    pub data: ItemStore,
    /// The network-wide key list, kept by notifies, and recently deleted keys.
    pub keys: KeyList,
    /// Sets and deletes gathered for rs2p peers, and batches seen (see `news.rs`).
    pub(crate) news: news::NewsState,
    /// Items in flight to their new owners (see `handoffs.rs`).
    pub(crate) handoff: handoffs::Handoffs,
    /// The base58 texts of the items just handled (encoded once, or as received).
    pub(crate) texts: item_text::ItemTexts,
    /// Handoff counters.
    pub(crate) handoff_stats: HandoffStats,
    /// When the last stabilisation round ran.
    pub(crate) last_stabilize: Time,
    /// A connection may hold deferred seeding-peer work (`meta_work_due`):
    /// false spares the timers a pass over the connections.
    pub(crate) meta_work_maybe: bool,
    /// The pause before the next round ([`STABILIZE_MS`] up to [`STABILIZE_MAX_MS`]).
    pub(crate) stabilize_every: u64,
    /// Added to the pause before the next round, drawn per round (up to an
    /// eighth of it): the rounds of nodes started together drift apart.
    pub(crate) stabilize_jitter: u64,
    /// Changes of our own or a peer's seeding flag so far (with the mesh's
    /// routing changes: [`Node::ring_version`]).
    pub(crate) ring_changes: u64,
    /// When work in progress last made a paced step (see [`node::PACE_MS`]).
    pub(crate) last_step: Time,
    /// The ring neighbours at the last round (a change resets the pause).
    pub(crate) stabilize_seen: (Owner, Owner),
    /// Connections with a key-list stream in progress.
    pub(crate) streaming: BTreeSet<ConnId>,
    /// The key list is wanted: we seed, or the user asked for `keys()`.
    /// A leeching client that never asks downloads no key list.
    pub(crate) want_keys: bool,
    /// A seeding rs2p peer sent us its whole list (reset when no seeding peer is left).
    pub(crate) keys_complete: bool,
    /// A seeding peer vanished without leaving: alone, a local miss proves nothing.
    pub(crate) lost_seeder: bool,
    /// Until then, local misses are checked with the previous owner ([`FALLBACK_MS`]).
    pub(crate) fallback_until: Time,
    /// Re-replication after failures, and anti-entropy.
    pub(crate) repair: repair::RepairState,
    /// Copies of our rs2p successors' items (see `replica.rs`).
    pub(crate) replicas: ItemStore,
    /// Items whose last write was refused for lack of room, and when: this
    /// table answers them as unavailable until they are written again
    /// (bounded by `Config::max_pending`, oldest forgotten first).
    pub(crate) unsure: crate::core::Map<ItemKey, Time>,
    /// Refreshes of our predecessor's replicas of our items.
    pub(crate) replica: replica::ReplicaState,
    /// Replica writes waiting to go out in one frame.
    pub(crate) replica_out: replica_batch::Outbox,
    /// Fingers and their lookups (see `fingers.rs`).
    pub(crate) fingers: fingers::FingerState,
    /// Keys beside items, and the ring walk of `keys()` (see `keywalk.rs`).
    pub(crate) walk: keywalk::WalkState,
    /// Status requests we made and their answers (see `status.rs`).
    pub(crate) status: status::StatusState,
    /// Lost peers and start addresses probed to get back to the ring (see `rejoin.rs`).
    pub(crate) rejoin: rejoin::RejoinState,
    /// When expired item tombstones were last pruned.
    pub(crate) last_tomb_prune: Time,
    /// Range summaries offered before handoffs (see `sync.rs`).
    pub(crate) sync: sync::SyncState,
    /// Our ring neighbours changed: scan the store for items others own.
    pub(crate) rescan_due: bool,
    /// When the store was last scanned for items others own, for any reason.
    pub(crate) last_rescan: Time,
    /// Our ring neighbours at that scan: a later scan is due only when they
    /// differ (the scan a new seeding peer sets off already covers it).
    pub(crate) scanned_with: (Owner, Owner),
    /// Whether a seeding peer is linked, as of a ring version
    /// ([`Node::has_seeding_peer`]): the timers ask after every frame, and
    /// the answer can only change when the version moves.
    pub(crate) seeded: std::cell::Cell<Option<(u64, bool)>>,
    /// The ring version and size estimate the links were last marked
    /// distant or not at ([`Node::mark_distant_links`]).
    pub(crate) distant_marked: Option<(u64, u32)>,
}

impl ChordState {
    /// Empty, leeching.
    pub fn new() -> Self {
        Self::with_seed(0)
    }

    /// Empty, leeching, its maps keyed from `seed` (see [`crate::core::Config::seed`]).
    pub fn with_seed(seed: u64) -> Self {
        ChordState {
            leeching: true,
            data: ItemStore::with_seed(seed),
            keys: KeyList::with_seed(seed),
            news: news::NewsState::with_seed(seed),
            handoff: handoffs::Handoffs::with_seed(seed),
            texts: item_text::ItemTexts::default(),
            handoff_stats: HandoffStats::default(),
            last_stabilize: 0,
            stabilize_every: STABILIZE_MS,
            meta_work_maybe: false,
            last_step: 0,
            ring_changes: 0,
            stabilize_jitter: 0,
            stabilize_seen: (Owner::Nobody, Owner::Nobody),
            streaming: BTreeSet::new(),
            want_keys: false,
            keys_complete: false,
            lost_seeder: false,
            fallback_until: 0,
            repair: repair::RepairState::default(),
            replicas: replica_store(seed),
            unsure: crate::core::SeededState::new(seed, 102).map(),
            replica: replica::ReplicaState::default(),
            replica_out: replica_batch::Outbox::default(),
            fingers: fingers::FingerState::with_seed(seed),
            walk: keywalk::WalkState::default(),
            status: status::StatusState::default(),
            rejoin: rejoin::RejoinState::with_seed(seed),
            last_tomb_prune: 0,
            sync: sync::SyncState::with_seed(seed),
            rescan_due: false,
            last_rescan: 0,
            scanned_with: (Owner::Nobody, Owner::Nobody),
            seeded: std::cell::Cell::new(None),
            distant_marked: None,
        }
    }

    /// Items held, over all five tables.
    pub fn item_count(&self) -> usize {
        self.data.total()
    }
}

impl Default for ChordState {
    fn default() -> Self {
        Self::new()
    }
}
