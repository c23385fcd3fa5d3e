//! A deterministic in-memory network of sans-IO nodes, with virtual time.
//!
//! Used by the tests (and `rs2p sim`) to run rings of many nodes in one
//! process with no sockets: every [`Action`](crate::core::Action) is carried out by the simulator,
//! bytes are delivered in order on each link, and the clock only moves when
//! the caller moves it. See `SIMULATION.md` for the design.
//!
//! * Deliveries (frames and link closes) wait in an event queue ordered by
//!   (due time, sequence number). With the default zero latency everything is
//!   due at once and delivered first in, first out; with
//!   [`Sim::set_latency`] each link has its own fixed latency, so each link
//!   stays FIFO as TCP is.
//! * Only nodes that may have queued actions are visited: a node is marked
//!   when the simulator calls into it, including through [`Sim::node`].
//! * Nothing depends on a `HashMap`'s order; the same seed gives the same run,
//!   which [`Sim::trace_hash`] lets a caller check.
//!
//! ```
//! use rs2p_proto::core::Config;
//! use rs2p_proto::sim::Sim;
//! let mut sim = Sim::new();
//! let a = sim.add_node(Config::chord("10.0.0.1", 1));
//! let b = sim.add_node(Config::chord("10.0.0.2", 1));
//! sim.node(a).join().unwrap();
//! sim.node(b).join().unwrap();
//! sim.connect(b, a);
//! sim.run();
//! sim.node(a).set(b"k", "v".into());
//! sim.run();
//! assert_eq!(sim.get(b, b"k").unwrap(), "v");
//! ```

mod checks;
mod interpret;
mod links;
mod lookups;
mod queue;
mod rng;
mod wheel;

use std::collections::{BTreeMap, BTreeSet};

use crate::chord::Node;
use crate::core::{Config, ConnId, Event, Time};
pub use lookups::{item_names, ItemName};
use queue::Delivery;
pub use rng::{mix64, SimRng, TraceHasher};

/// Start of virtual time (ms since the epoch): 2023-11-14.
pub const SIM_EPOCH: Time = 1_700_000_000_000;

/// Deliveries (plus passes over marked nodes) one `run` may make before it
/// declares the network unable to settle: far above any test's traffic, low
/// enough that a message loop fails in minutes rather than hanging.
const MAX_RUN_STEPS: u64 = 50_000_000;

/// What a key stream may send per tick: delivery is near instant here, so a
/// stream may send as much as a tick's worth (the tokio driver's room is its
/// connection's free queue).
const STREAM_ROOM: crate::chord::Room = crate::chord::Room { frames: 1024, bytes: 16 << 20 };

/// Sets the draws of node salts apart from the simulation's other draws.
const SALT_PURPOSE: u64 = 0x5341_4c54_5341_4c54;

/// Marks a link close in the trace hash (no frame length reaches it).
const TRACE_CLOSED: u64 = u64::MAX;

/// The simulated network.
pub struct Sim {
    nodes: Vec<Option<Node>>,
    now: Time,
    /// Deliveries and node timers, by (due time, sequence number).
    queue: wheel::Wheel,
    seq: u64,
    /// Nodes the simulator called into since it last drained their actions.
    dirty: BTreeSet<usize>,
    links: links::Links,
    listeners: BTreeMap<(String, u16), usize>,
    events: Vec<(usize, Event)>,
    /// A node's actions while they are carried out (kept empty between
    /// visits, to reuse its allocation).
    actions: Vec<crate::core::Action>,
    /// Frames delivered so far.
    pub frames: u64,
    /// Bytes delivered so far (length headers included).
    pub bytes: u64,
    /// Dials made so far (successful or not).
    pub dials: u64,
    /// Frames and bytes delivered per sub-flag (uncompressed frames; 0xFF:
    /// others), to see where a phase's traffic goes.
    pub by_sub_flag: BTreeMap<u8, (u64, u64)>,
    /// Seeds every node's [`Config::seed`] and the link latencies.
    seed: u64,
    latency: (u64, u64),
    /// Each node's armed timer (`queue::UNARMED`: none).
    timers: Vec<Time>,
    /// Node ticks so far (timers fired, and ticks of every node with a
    /// tick period): how often nodes were visited for their timers.
    pub ticks: u64,
    /// Timer entries in `queue` (live or stale).
    timer_entries: usize,
    tick_ms: Option<u64>,
    next_tick: Time,
    trace: TraceHasher,
    track_lookups: bool,
    lookup_hops: BTreeMap<ItemName, u32>,
    lookup_frames: (u64, u64),
    /// Each node's side of a partition ([`Sim::partition`]): frames, closes
    /// and dials between different sides are lost. Missing: side 0.
    sides: BTreeMap<usize, u8>,
    /// Paused nodes ([`Sim::pause`]) and what reached them meanwhile, in order.
    paused: BTreeMap<usize, Vec<Delivery>>,
}

impl Default for Sim {
    fn default() -> Self {
        Self::new()
    }
}

impl Sim {
    /// An empty network at [`SIM_EPOCH`], with seed 0.
    pub fn new() -> Sim {
        Self::with_seed(0)
    }

    /// An empty network whose nodes' seeds derive from `seed`.
    pub fn with_seed(seed: u64) -> Sim {
        Sim {
            seed,
            nodes: Vec::new(),
            now: SIM_EPOCH,
            queue: wheel::Wheel::new(SIM_EPOCH),
            seq: 0,
            dirty: BTreeSet::new(),
            links: links::Links::default(),
            listeners: BTreeMap::new(),
            events: Vec::new(),
            actions: Vec::new(),
            frames: 0,
            bytes: 0,
            dials: 0,
            by_sub_flag: BTreeMap::new(),
            latency: (0, 0),
            timers: Vec::new(),
            ticks: 0,
            timer_entries: 0,
            tick_ms: None,
            next_tick: SIM_EPOCH,
            trace: TraceHasher::default(),
            track_lookups: false,
            lookup_hops: BTreeMap::new(),
            lookup_frames: (0, 0),
            sides: BTreeMap::new(),
            paused: BTreeMap::new(),
        }
    }

    /// The seed the network was made with.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Gives every link a one-way latency in `min_ms..=max_ms`, fixed per
    /// pair of nodes and drawn from the seed (so a link stays FIFO). With
    /// any latency, [`Sim::run`] delivers only what is due now and
    /// [`Sim::advance`] delivers in time order. `(0, 0)`, the default,
    /// delivers everything at once.
    pub fn set_latency(&mut self, min_ms: u64, max_ms: u64) {
        assert!(min_ms <= max_ms, "latency range {min_ms}..={max_ms} is empty");
        self.latency = (min_ms, max_ms);
    }

    /// Also ticks every node each `period_ms` of virtual time during
    /// [`Sim::advance`] (and at its end, if the period divides it): the
    /// fixed tick nodes had before they said when they need the clock, for
    /// comparison. `None`, the default: each node is ticked only when its
    /// own timer ([`Node::poll_timeout`]) is due.
    pub fn set_tick_ms(&mut self, period_ms: Option<u64>) {
        assert!(period_ms != Some(0), "a tick period must be positive");
        self.tick_ms = period_ms;
        self.next_tick = self.now + period_ms.unwrap_or(0);
    }

    /// The one-way latency of the link between nodes `a` and `b`.
    pub fn link_latency(&self, a: usize, b: usize) -> u64 {
        let (min, max) = self.latency;
        if max == 0 {
            return 0;
        }
        let (lo, hi) = (a.min(b) as u64, a.max(b) as u64);
        let draw = mix64(self.seed ^ mix64(lo.wrapping_mul(0x1_0000_0001) ^ mix64(hi)));
        min + draw % (max - min + 1)
    }

    /// A hash of every delivery so far (time, node, connection and bytes of
    /// each frame; time, node and connection of each close), with a fixed
    /// key: two runs with the same seed and calls give the same value.
    pub fn trace_hash(&self) -> u64 {
        self.trace.finish()
    }

    /// Deliveries waiting in the queue (due now or later).
    pub fn in_flight(&self) -> usize {
        self.queue.len() - self.timer_entries
    }

    /// Adds a node listening at its configured out address; returns its index.
    /// Its [`Config::seed`] is replaced by one derived from the simulation's
    /// seed and the index, and an empty [`Config::salt`] too, so that a run
    /// (node ids included) depends on nothing else.
    pub fn add_node(&mut self, mut cfg: Config) -> usize {
        let idx = self.nodes.len();
        cfg.seed = self.seed.rotate_left(20) ^ idx as u64;
        if cfg.salt.is_empty() {
            let a = mix64(self.seed ^ mix64(SALT_PURPOSE ^ idx as u64));
            let b = mix64(a ^ SALT_PURPOSE);
            let mut bytes = [0u8; 16];
            bytes[..8].copy_from_slice(&a.to_le_bytes());
            bytes[8..].copy_from_slice(&b.to_le_bytes());
            cfg.salt = crate::wire::protocol::salt_from_bytes(bytes);
        }
        self.listeners.insert(cfg.out_addr.clone(), idx);
        self.nodes.push(Some(Node::new(cfg, self.now)));
        self.timers.push(queue::UNARMED);
        self.dirty.insert(idx);
        idx
    }

    /// The node at `idx` (panics if it was removed). The node is marked as
    /// having work, so that the next [`Sim::run`] carries out what the
    /// caller makes it do.
    pub fn node(&mut self, idx: usize) -> &mut Node {
        let now = self.now;
        let node = self.nodes[idx].as_mut().expect("node was removed");
        // What the caller does happens now (a write is versioned by it).
        node.advance_clock(now);
        self.dirty.insert(idx);
        node
    }

    /// The node at `idx` for reading, if it is still present.
    pub fn peek(&self, idx: usize) -> Option<&Node> {
        self.nodes.get(idx).and_then(Option::as_ref)
    }

    /// Number of nodes ever added (removed ones included).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True if no node was ever added.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// True if the node is still in the network.
    pub fn alive(&self, idx: usize) -> bool {
        self.nodes.get(idx).is_some_and(Option::is_some)
    }

    /// Indices of nodes still present.
    pub fn alive_nodes(&self) -> Vec<usize> {
        (0..self.nodes.len()).filter(|i| self.alive(*i)).collect()
    }

    /// The virtual clock.
    pub fn now(&self) -> Time {
        self.now
    }

    /// Node `from` dials node `to`'s address (the dial itself is instant; with
    /// latency, the handshake takes its round trips during `advance`).
    pub fn connect(&mut self, from: usize, to: usize) {
        let (host, port) = self.node(to).config().out_addr.clone();
        let _ = self.node(from).connect(&host, port, None);
        self.run();
    }

    /// Removes a node abruptly (a crash): its links close on the other side.
    pub fn crash(&mut self, idx: usize) {
        self.remove_node(idx, true);
    }

    /// Removes a node silently, as a host unplugged from the network: its
    /// links carry nothing more, and no side sees them close. The survivors
    /// find out by their keepalives going unanswered.
    pub fn isolate(&mut self, idx: usize) {
        self.remove_node(idx, false);
    }

    /// Splits the network: the nodes in `side` can reach each other, the
    /// others each other, and nothing crosses (frames and closes are lost
    /// as on a cut cable, dials fail). Links stay open until keepalives
    /// find them silent. [`Sim::heal`] joins the two sides again.
    pub fn partition(&mut self, side: &[usize]) {
        self.sides = side.iter().map(|&i| (i, 1)).collect();
    }

    /// Ends a partition: everything reaches everything again.
    pub fn heal(&mut self) {
        self.sides.clear();
    }

    fn side(&self, idx: usize) -> u8 {
        self.sides.get(&idx).copied().unwrap_or(0)
    }

    /// True if frames can travel between the two nodes.
    fn reachable(&self, a: usize, b: usize) -> bool {
        self.side(a) == self.side(b)
    }

    /// Stops a node as `kill -STOP` does: it is not ticked and handles
    /// nothing; what reaches it waits (in order) until [`Sim::resume`];
    /// dials to it fail.
    pub fn pause(&mut self, idx: usize) {
        self.paused.entry(idx).or_default();
    }

    /// Resumes a paused node: it handles what reached it meanwhile, then
    /// ticks (finding, as a resumed process does, that time jumped).
    pub fn resume(&mut self, idx: usize) {
        let Some(held) = self.paused.remove(&idx) else { return };
        for what in held {
            self.deliver(what);
        }
        let now = self.now;
        if let Some(n) = self.nodes[idx].as_mut() {
            n.on_tick(now);
            self.dirty.insert(idx);
        }
        self.run();
    }

    /// Sets a node's wall clock `offset_ms` ahead of (negative: behind) the
    /// virtual time, as a host whose clock is off.
    pub fn set_clock_offset(&mut self, idx: usize, offset_ms: i64) {
        if let Some(n) = self.nodes[idx].as_mut() {
            let now = n.now_ms();
            n.set_wall_clock(now.saturating_add_signed(offset_ms));
        }
    }

    /// Drops a node and its links; with `reset`, the other ends see them close.
    fn remove_node(&mut self, idx: usize, reset: bool) {
        if let Some(node) = self.nodes[idx].take() {
            self.timers[idx] = queue::UNARMED;
            if self.listeners.get(&node.config().out_addr) == Some(&idx) {
                self.listeners.remove(&node.config().out_addr);
            }
            self.dirty.remove(&idx);
            let ends = self.links.take_node(idx);
            // Ends of a link from the node to itself, closed with their twin.
            let mut gone: Vec<ConnId> = Vec::new();
            for (conn, other) in ends {
                if gone.contains(&conn) {
                    continue;
                }
                if other.0 == idx {
                    gone.push(other.1);
                }
                self.links.remove(other.0, other.1);
                if reset {
                    let at = self.now + self.link_latency(idx, other.0);
                    self.schedule(at, Delivery::Closed { node: other.0, conn: other.1 });
                }
            }
        }
        self.run();
    }

    /// Closes a node gracefully (its links close) and removes it.
    pub fn close(&mut self, idx: usize) {
        if let Some(n) = self.nodes[idx].as_mut() {
            let _ = n.close();
            self.dirty.insert(idx);
        }
        self.run();
        self.crash(idx);
    }

    /// Takes the events reported so far.
    pub fn take_events(&mut self) -> Vec<(usize, Event)> {
        std::mem::take(&mut self.events)
    }
}
