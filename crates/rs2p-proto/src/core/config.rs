//! Node configuration.

use super::TlsOptions;
use crate::wire::{compression::PREFERENCE, Compression, Protocol, DEFAULT_MAX_FRAME};

/// Which protocol family the node speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// py2p's `mesh_socket`.
    Mesh,
    /// py2p's `chord_socket`.
    Chord,
}

/// Everything a node needs to know about itself. Build with [`Config::mesh`] or
/// [`Config::chord`] and adjust fields.
#[derive(Debug, Clone)]
pub struct Config {
    /// Mesh or chord.
    pub kind: Kind,
    /// Subnet and encryption; peers with another protocol id are dropped.
    pub protocol: Protocol,
    /// The address peers should dial to reach us (sent in the handshake).
    pub out_addr: (String, u16),
    /// Salt for the id derivation (a UUID4 text). Empty in the configs made
    /// here: the protocol core draws no randomness, so the tokio shell puts
    /// a random one in and the simulator one derived from its seed. Left
    /// empty, the id depends on the address alone.
    pub salt: String,
    /// A fixed id (base58) instead of the derived one.
    pub id: Option<String>,
    /// Outgoing connections made from peer lists (py2p: 4).
    pub max_outgoing: usize,
    /// Compression methods we accept and use, in preference order.
    pub compression: Vec<Compression>,
    /// Largest frame body accepted, compressed or not.
    pub max_frame: usize,
    /// A connection with a partial frame and no bytes for this long is closed.
    pub half_frame_timeout_ms: u64,
    /// Bound on the bytes of partial frames over all connections; past it the
    /// connection holding the most is closed (a peer trickling a large frame
    /// keeps its bytes until the half-frame timeout).
    pub max_buffered_bytes: usize,
    /// Inbound connections held at once. A newcomer past it replaces the
    /// oldest connection still without a handshake; only when every slot
    /// holds a handshaken peer is it closed on arrival.
    pub max_connections: usize,
    /// A connection that has not completed its handshake this long after it
    /// opened is closed, so that silent connections cannot hold slots.
    pub handshake_timeout_ms: u64,
    /// Inbound connections from one address still without a handshake; a
    /// newcomer past it closes the oldest of them. Peers behind one NAT
    /// handshake within milliseconds, so this only bites a flood.
    pub max_pending_per_source: usize,
    /// Handshaken inbound links from one address; past it, further
    /// connections from that address are refused. High enough for a ring of
    /// many nodes on one host (tests, demos), low enough that one host
    /// cannot take every slot.
    pub max_inbound_per_source: usize,
    /// Outgoing connections without a handshake yet (dialing or awaiting
    /// it) past which no further dial is started from a peer list; the last
    /// two are kept for would-be ring neighbours, and one peer's lists may
    /// have started at most two of them (`mesh::LIST_DIALS_PER_PEER`).
    pub max_list_dials: usize,
    /// Outgoing links (dials included) past which peer lists start no more
    /// dials. Above what ring neighbours, `max_outgoing` and routing links
    /// need; explicit `connect` calls are not limited by it.
    pub max_outgoing_links: usize,
    /// Peer lists longer than this are refused.
    pub max_peer_list: usize,
    /// Bound on remembered broadcast ids.
    pub max_recent_ids: usize,
    /// Bound on pending retrieve entries and route requests.
    pub max_pending: usize,
    /// Bound on the network-wide key list (and, apart, on remembered deletes).
    pub max_keys: usize,
    /// Bound on the bytes of the key list (and, apart, of remembered deletes).
    pub max_key_bytes: usize,
    /// Bound on items stored per hash table.
    pub max_items: usize,
    /// Bound on what this node's tables cost: value bytes (a value shared by
    /// several tables counts once) plus a fixed overhead per item for its key
    /// and index entry ([`crate::chord::ITEM_OVERHEAD`]). Stores beyond it are
    /// refused and logged. Replicas are bounded by it too, apart.
    pub max_store_bytes: usize,
    /// Bound on the bytes of user messages waiting in the receive queue
    /// (oldest dropped first); the queue also holds at most 10,000 messages.
    pub max_recv_queue_bytes: usize,
    /// Default `get` timeout.
    pub get_timeout_ms: u64,
    /// Tables a `get` asks at first (3 to 5; the rest only when the first
    /// answers do not decide, or are slow). 3 halves the frames of a get;
    /// 5 (py2p's way) answers from the fastest 3 of 5 owners, at the cost
    /// of two more retrieves and answers per get.
    pub get_first_wave: usize,
    /// Advertise the rs2p capability flag, so rs2p peers can use extensions.
    pub advertise_capability: bool,
    /// The period of the node's keepalive rounds: at each, a handshaken peer
    /// we have heard nothing from for this long is sent a keepalive (py2p's
    /// own peer request `*`, which every peer answers; `ping` to an rs2p
    /// peer). See `mesh/liveness.rs`.
    pub keepalive_ms: u64,
    /// A handshaken peer silent for this long (keepalives unanswered) is
    /// declared gone and its link closed: catches a host that vanished
    /// without its socket closing. A quiet link is pinged one to two
    /// rounds in, so this should be at least twice `keepalive_ms` and a
    /// round trip (a shorter limit makes rounds ping sooner).
    pub peer_timeout_ms: u64,
    /// The keepalive period of a link the protocol above marked distant
    /// (chord: an rs2p finger that is no ring neighbour of ours, whose
    /// peer understands per-link periods): fingers only route, and a
    /// request that goes unanswered over one makes it suspect at once
    /// (`mesh/liveness.rs`), so their keepalives can be 4× rarer.
    pub finger_keepalive_ms: u64,
    /// The silence limit of such a link: three of its periods, as
    /// `peer_timeout_ms` is three of `keepalive_ms`, so that the keeper's
    /// pings (at most two periods apart) fit with a margin. A suspect
    /// distant link gets `peer_timeout_ms` instead.
    pub finger_timeout_ms: u64,
    /// Seeding rs2p peers on each side of a chord node whose links keep
    /// the short timers (`keepalive_ms`, `peer_timeout_ms`); links to the
    /// rest of its successor list and to its fingers ride the distant ones.
    /// 4 covers the predecessor, the successor and the replica holders (at
    /// most `MAX_REPLICA_DEPTH` = 4 on a side), whose loss repair and
    /// rejoin must learn of within seconds; at least 1.
    pub short_timer_neighbours: usize,
    /// Repair starts this long after a seeding peer vanished, so that the
    /// ring has re-linked around the gap (stabilisation runs every second)
    /// and ownership is judged on the healed ring.
    pub repair_delay_ms: u64,
    /// Period of the anti-entropy pass: every key's copies in our arc are
    /// checked even without a failure (overlapping failures, a repair cut
    /// short by another crash, a restart with stale data).
    pub anti_entropy_ms: u64,
    /// Keys examined per tick by a repair scan (five hashes each); the
    /// anti-entropy pass takes a tenth of it, to stay in the background.
    pub repair_keys_per_tick: usize,
    /// How many rs2p predecessors keep a replica of each item this node
    /// owns (0: none; then a crash is repaired from the other four tables
    /// alone, and a key whose five copies were all on the lost node is gone).
    /// Each level costs about one more copy of the data in memory.
    pub replica_depth: u8,
    /// Announce every set and delete to every node (py2p's network-wide key
    /// list, a broadcast per set: its cost grows with N). Always done while
    /// a py2p peer is linked. Off, a set costs O(log N) messages, rs2p
    /// owners keep each item's key, and `keys()` walks the ring
    /// (`chord/keywalk.rs`). On by default: py2p peers need the list, and a
    /// node cannot know that none will join.
    pub key_list: bool,
    /// Keep fingers and a successor list (rs2p chord nodes advertising the
    /// capability): lookups take about ½·log2 N hops instead of a number
    /// that grows like a power of N. Off: py2p's links only.
    pub fingers: bool,
    /// Record every change of the tables and of the key list, for the
    /// driver to write to disk ([`crate::chord::Node::take_changes`]).
    pub journal: bool,
    /// Seeds the keys of the node's internal hash maps, which fix the order
    /// in which it visits connections and lookups, and its jitter. Zero in
    /// the configs made here: the tokio shell draws a random one (the keys
    /// must be secret, or a peer could choose colliding ids), the simulator
    /// derives one from its seed (the same seed gives the same run).
    pub seed: u64,
    /// Where a node keeps its items, tombstones and key list (`--data-dir`):
    /// read by the driver, which restores the node from it and sets
    /// `journal`. `None`: in memory only.
    pub data_dir: Option<std::path::PathBuf>,
    /// Seeding peers whose links failed that a node remembers and probes
    /// to get back to its ring (`chord/rejoin.rs`): past it, the one lost
    /// longest ago is forgotten. 64 covers a node's ring neighbours,
    /// successor list and fingers in a ring of millions.
    pub max_lost_peers: usize,
    /// A lost peer is probed for this long before it is forgotten: the
    /// longest partition a ring heals by itself (a day).
    pub heal_forget_ms: u64,
    /// The first pause before probing a lost peer (jittered by a quarter),
    /// doubling after each failed probe ...
    pub heal_backoff_min_ms: u64,
    /// ... up to this: how long after a partition ends the two sides may
    /// take to find each other, at worst.
    pub heal_backoff_max_ms: u64,
    /// While a node has a seeding peer, it probes lost peers at most once
    /// per this long (a node with none probes every one that is due).
    pub heal_probe_every_ms: u64,
    /// Versions (and rs2p peers' clocks) dated more than this ahead of our
    /// clock are refused, and broadcasts from rs2p peers are accepted this
    /// far from our clock either way (py2p peers: py2p's 60 s). Clocks of
    /// a ring must agree within it; 5 minutes covers hosts without NTP for
    /// weeks.
    pub max_clock_skew_ms: u64,
    /// How long an item's delete is remembered (its tombstone) and so the
    /// longest a node may be away, or a ring split, without a deleted key
    /// coming back: a node back after longer drops what it held and
    /// takes the ring's copies (Cassandra's `gc_grace_seconds` rule).
    /// 26 h: a day of partition, and time to heal.
    pub tombstone_horizon_ms: u64,
    /// A node away longer than `tombstone_horizon_ms` (its process stopped,
    /// cut off from every seeding peer, or restarted from a data directory
    /// last alive that long ago) drops what it held before serving again,
    /// so that no key the ring deleted (and has since forgotten deleting)
    /// comes back from it: Cassandra's `gc_grace_seconds` rule. Off by
    /// default: a whole ring stopped over a weekend, or a node that was the
    /// last one holding the data, would lose everything; off, such a node
    /// keeps its data and says loudly that deletes older than the horizon
    /// may come back from it (`rs2p node --drop-stale-after-horizon`).
    pub drop_stale_after_horizon: bool,
    /// Bound on item tombstones held (about 100 bytes each: 1 Mi of them,
    /// 5 per deleted key, is about 100 MB for 200,000 deletes a day).
    /// Past it, a delete removes the value without a tombstone (logged).
    pub max_item_tombstones: usize,
    /// Certificates and peer authentication when `protocol.encryption` is
    /// `SSL` (read by the driver; ignored for `Plaintext`).
    pub tls: TlsOptions,
}

impl Config {
    fn base(kind: Kind, protocol: Protocol, host: &str, port: u16) -> Config {
        Config {
            kind,
            protocol,
            out_addr: (host.to_owned(), port),
            salt: String::new(),
            id: None,
            max_outgoing: 4,
            compression: PREFERENCE.to_vec(),
            max_frame: DEFAULT_MAX_FRAME,
            half_frame_timeout_ms: 60_000,
            max_buffered_bytes: 256 << 20,
            max_connections: 1024,
            handshake_timeout_ms: 5_000,
            max_pending_per_source: 32,
            max_inbound_per_source: 256,
            max_list_dials: 8,
            max_outgoing_links: 64,
            max_peer_list: 1024,
            max_recent_ids: 100_000,
            max_pending: 65_536,
            max_keys: 1 << 20,
            max_key_bytes: 128 << 20,
            max_items: 1 << 22,
            max_store_bytes: 1 << 30,
            max_recv_queue_bytes: 64 << 20,
            get_timeout_ms: 10_000,
            get_first_wave: 3,
            advertise_capability: true,
            keepalive_ms: 2_000,
            peer_timeout_ms: 6_000,
            finger_keepalive_ms: 8_000,
            finger_timeout_ms: 24_000,
            short_timer_neighbours: 4,
            repair_delay_ms: 2_000,
            anti_entropy_ms: 5 * 60 * 1000,
            repair_keys_per_tick: 5_000,
            replica_depth: 2,
            fingers: true,
            key_list: true,
            journal: false,
            data_dir: None,
            tls: TlsOptions::default(),
            max_clock_skew_ms: 5 * 60 * 1000,
            tombstone_horizon_ms: 26 * 3600 * 1000,
            max_item_tombstones: 1 << 20,
            drop_stale_after_horizon: false,
            max_lost_peers: 64,
            heal_forget_ms: 24 * 3600 * 1000,
            heal_backoff_min_ms: 1_000,
            heal_backoff_max_ms: 16_000,
            heal_probe_every_ms: 1_000,
            seed: 0,
        }
    }

    /// A mesh node reachable at `host:port`, with py2p's mesh defaults.
    pub fn mesh(host: &str, port: u16) -> Config {
        Config::base(Kind::Mesh, Protocol::mesh_default(), host, port)
    }

    /// A chord node reachable at `host:port`, with py2p's chord defaults.
    pub fn chord(host: &str, port: u16) -> Config {
        Config::base(Kind::Chord, Protocol::chord_default(), host, port)
    }
}
