//! A deterministic in-memory network of sans-IO nodes, with virtual time.
//!
//! Used by the tests (and `rs2p sim`) to run rings of many nodes in one
//! process with no sockets: every [`Action`] is carried out by the simulator,
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

mod rng;

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use bytes::Bytes;

use crate::chord::Node;
use crate::core::{Action, Config, ConnId, Event, GetError, Time};
use crate::ring::HashMethod;
use crate::wire::{base58, flags, Message};
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

/// One thing the network will hand to a node.
enum Delivery {
    Data { node: usize, conn: ConnId, bytes: Bytes },
    Closed { node: usize, conn: ConnId },
}

/// A delivery with its due time; the heap pops the earliest (then the
/// first scheduled) first.
struct Scheduled {
    at: Time,
    seq: u64,
    what: Delivery,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> Ordering {
        // Reversed: `BinaryHeap` is a max-heap.
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// One item lookup as seen on the wire: (table name, base58 hash).
pub type ItemName = (String, String);

/// The five items a `get` of `key` looks up, as [`Sim::take_lookup_hops`]
/// names them.
pub fn item_names(key: &[u8]) -> [ItemName; 5] {
    HashMethod::ALL.map(|m| (m.name().to_owned(), base58::encode(&m.hash(key))))
}

/// The simulated network.
pub struct Sim {
    nodes: Vec<Option<Node>>,
    now: Time,
    queue: BinaryHeap<Scheduled>,
    seq: u64,
    /// Nodes the simulator called into since it last drained their actions.
    dirty: BTreeSet<usize>,
    links: BTreeMap<(usize, ConnId), (usize, ConnId)>,
    listeners: BTreeMap<(String, u16), usize>,
    events: Vec<(usize, Event)>,
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
            queue: BinaryHeap::new(),
            seq: 0,
            dirty: BTreeSet::new(),
            links: BTreeMap::new(),
            listeners: BTreeMap::new(),
            events: Vec::new(),
            frames: 0,
            bytes: 0,
            dials: 0,
            by_sub_flag: BTreeMap::new(),
            latency: (0, 0),
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

    /// Ticks every node each `period_ms` of virtual time during
    /// [`Sim::advance`] (and at its end, if the period divides it). `None`,
    /// the default, ticks once per `advance` call, after the clock moved.
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

    /// Counts, from now on, the retrieve requests delivered per item (see
    /// [`Sim::take_lookup_hops`]); `false` stops counting.
    pub fn track_lookups(&mut self, on: bool) {
        self.track_lookups = on;
    }

    /// Takes the counts gathered since the last call: per item
    /// (table name, base58 hash), the number of retrieve whispers
    /// (`flags::RETRIEVE`) delivered, i.e. the forward hops of that item's
    /// lookups (re-sends and re-asks included). An item its asker owns
    /// costs no whisper and is absent: count it as 0 hops (see
    /// [`item_names`]). Frames that do not decode are not counted.
    pub fn take_lookup_hops(&mut self) -> BTreeMap<ItemName, u32> {
        std::mem::take(&mut self.lookup_hops)
    }

    /// Frames and bytes of lookup traffic delivered while tracking: retrieve
    /// whispers and their `retrieved` answers (relayed answers included),
    /// whoever asked (a repair's retrieves count too).
    pub fn lookup_frames(&self) -> (u64, u64) {
        self.lookup_frames
    }

    /// A hash of every delivery so far (time, node, connection and bytes of
    /// each frame; time, node and connection of each close), with a fixed
    /// key: two runs with the same seed and calls give the same value.
    pub fn trace_hash(&self) -> u64 {
        self.trace.finish()
    }

    /// Deliveries waiting in the queue (due now or later).
    pub fn in_flight(&self) -> usize {
        self.queue.len()
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
            if self.listeners.get(&node.config().out_addr) == Some(&idx) {
                self.listeners.remove(&node.config().out_addr);
            }
            self.dirty.remove(&idx);
            let ends: Vec<(usize, ConnId)> =
                self.links.range((idx, ConnId(0))..=(idx, ConnId(u64::MAX))).map(|(k, _)| *k).collect();
            for end in ends {
                if let Some(other) = self.links.remove(&end) {
                    self.links.remove(&other);
                    if reset {
                        let at = self.now + self.link_latency(idx, other.0);
                        self.schedule(at, Delivery::Closed { node: other.0, conn: other.1 });
                    }
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

    fn schedule(&mut self, at: Time, what: Delivery) {
        self.seq += 1;
        self.queue.push(Scheduled { at, seq: self.seq, what });
    }

    fn apply_actions(&mut self, idx: usize) -> bool {
        let Some(node) = self.nodes[idx].as_mut() else {
            return false;
        };
        let actions: Vec<Action> = node.drain_actions().collect();
        let any = !actions.is_empty();
        for action in actions {
            match action {
                Action::Send { conn, frame } => {
                    if let Some(&(peer, peer_conn)) = self.links.get(&(idx, conn)).filter(|l| self.reachable(idx, l.0))
                    {
                        let at = self.now + self.link_latency(idx, peer);
                        self.schedule(at, Delivery::Data { node: peer, conn: peer_conn, bytes: frame });
                    }
                }
                Action::SendMessage { conn, out } => {
                    let Ok(frame) = out.encode() else { continue };
                    if let Some(&(peer, peer_conn)) = self.links.get(&(idx, conn)).filter(|l| self.reachable(idx, l.0))
                    {
                        let at = self.now + self.link_latency(idx, peer);
                        self.schedule(at, Delivery::Data { node: peer, conn: peer_conn, bytes: frame });
                    }
                }
                Action::Dial { conn, host, port } => {
                    self.dials += 1;
                    let now = self.now;
                    let target = self.listeners.get(&(host, port)).copied();
                    let cut = target.is_some_and(|t| !self.reachable(idx, t) || self.paused.contains_key(&t));
                    if cut {
                        self.node(idx).on_dial_failed(conn, "connection timed out", now);
                        continue;
                    }
                    match target.filter(|t| self.alive(*t)) {
                        Some(target) => {
                            let accepted = self.node(target).on_accepted(now);
                            self.links.insert((idx, conn), (target, accepted));
                            self.links.insert((target, accepted), (idx, conn));
                            self.node(idx).on_dialed(conn, now);
                        }
                        None => self.node(idx).on_dial_failed(conn, "connection refused", now),
                    }
                }
                Action::Close { conn } => {
                    if let Some(other) = self.links.remove(&(idx, conn)) {
                        self.links.remove(&other);
                        // Across a partition the FIN is lost: the other end
                        // finds the link silent, and its writes go nowhere.
                        if self.reachable(idx, other.0) {
                            let at = self.now + self.link_latency(idx, other.0);
                            self.schedule(at, Delivery::Closed { node: other.0, conn: other.1 });
                        }
                    }
                }
                Action::Event(e) => self.events.push((idx, e)),
            }
        }
        any
    }

    /// Carries out the actions of every marked node, in index order; a node
    /// marked during the pass below the cursor waits for the next pass (as
    /// a scan of all nodes would). True if any node had actions.
    fn apply_dirty(&mut self) -> bool {
        let mut any = false;
        let mut cursor = 0;
        while let Some(&idx) = self.dirty.range(cursor..).next() {
            self.dirty.remove(&idx);
            any |= self.apply_actions(idx);
            cursor = idx + 1;
        }
        any
    }

    /// Hands one delivery to its node, counting and hashing it.
    fn deliver(&mut self, what: Delivery) {
        let now = self.now;
        let to = match &what {
            Delivery::Data { node, .. } | Delivery::Closed { node, .. } => *node,
        };
        if let Some(held) = self.paused.get_mut(&to) {
            held.push(what);
            return;
        }
        match what {
            Delivery::Data { node, conn, bytes } => {
                self.frames += 1;
                self.bytes += bytes.len() as u64;
                let sub = bytes.get(4..).and_then(raw_sub_flag).flatten().unwrap_or(0xFF);
                let slot = self.by_sub_flag.entry(sub).or_default();
                slot.0 += 1;
                slot.1 += bytes.len() as u64;
                self.trace.word(now);
                self.trace.word(node as u64);
                self.trace.word(conn.0);
                self.trace.bytes(&bytes);
                if self.track_lookups {
                    match lookup_frame(&bytes) {
                        Some(Lookup::Retrieve(item)) => {
                            *self.lookup_hops.entry(item).or_default() += 1;
                            self.lookup_frames.0 += 1;
                            self.lookup_frames.1 += bytes.len() as u64;
                        }
                        Some(Lookup::Retrieved) => {
                            self.lookup_frames.0 += 1;
                            self.lookup_frames.1 += bytes.len() as u64;
                        }
                        None => {}
                    }
                }
                if let Some(n) = self.nodes[node].as_mut() {
                    n.on_data(conn, &bytes, now);
                    self.dirty.insert(node);
                }
            }
            Delivery::Closed { node, conn } => {
                self.trace.word(now);
                self.trace.word(node as u64);
                self.trace.word(conn.0);
                self.trace.word(TRACE_CLOSED);
                if let Some(n) = self.nodes[node].as_mut() {
                    n.on_closed(conn, now);
                    self.dirty.insert(node);
                }
            }
        }
    }

    /// Delivers, in order, everything due by `stop` (the clock following
    /// each delivery's time), until no marked node has actions left.
    fn run_until(&mut self, stop: Time) {
        for _ in 0..MAX_RUN_STEPS {
            let progressed = self.apply_dirty();
            let due = self.queue.peek().is_some_and(|s| s.at <= stop);
            if due {
                let s = self.queue.pop().expect("peeked");
                self.now = self.now.max(s.at);
                self.deliver(s.what);
            } else if !progressed {
                return;
            }
        }
        panic!("simulation did not settle");
    }

    /// Delivers everything due now until the network is quiet (bounded).
    /// With zero latency that is every consequence of every call; with
    /// latency, frames sent now arrive later, during [`Sim::advance`].
    pub fn run(&mut self) {
        self.run_until(self.now);
    }

    fn tick_all(&mut self) {
        let now = self.now;
        for (idx, slot) in self.nodes.iter_mut().enumerate() {
            let Some(n) = slot.as_mut() else {
                continue;
            };
            if self.paused.contains_key(&idx) {
                continue;
            }
            n.on_tick(now);
            for conn in n.key_streams() {
                n.stream_keys(conn, STREAM_ROOM);
            }
            self.dirty.insert(idx);
        }
    }

    /// Moves the clock by `ms`, ticking every node, and settles. With zero
    /// latency and no tick period (the defaults) the clock jumps, every node
    /// ticks once, then everything is delivered. Otherwise deliveries are
    /// made in time order up to the new time, with every node ticked at each
    /// multiple of the tick period on the way (or once at the end).
    pub fn advance(&mut self, ms: u64) {
        let target = self.now + ms;
        let latency = self.latency.1 > 0;
        if latency {
            // What callers queued happened now: send it before time moves.
            self.run();
        }
        loop {
            let stop = match self.tick_ms {
                Some(_) => self.next_tick.min(target),
                None => target,
            };
            if latency {
                self.run_until(stop);
            }
            self.now = stop;
            match self.tick_ms {
                Some(period) if stop == self.next_tick => {
                    self.next_tick += period;
                    self.tick_all();
                }
                Some(_) => {}
                None => self.tick_all(),
            }
            self.run();
            if stop == target {
                return;
            }
        }
    }

    /// True when every seeding node is linked to its true successor and
    /// predecessor among the seeding nodes present (O(N log N) plus each
    /// node's routing table once).
    pub fn ring_is_consistent(&mut self) -> bool {
        self.ring_mismatches() == 0
    }

    /// How many seeding nodes are not linked to their true successor or
    /// predecessor among the seeding nodes present (0: the ring is
    /// consistent). Progress for a large ring.
    pub fn ring_mismatches(&self) -> usize {
        let mut ids: Vec<(crate::ring::U512, usize)> = self
            .nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.as_ref().map(|n| (i, n)))
            .filter(|(_, n)| !n.is_leeching())
            .map(|(i, n)| (*n.id().value(), i))
            .collect();
        ids.sort();
        let n = ids.len();
        if n < 2 {
            return 0;
        }
        (0..n)
            .filter(|&k| {
                let node = self.nodes[ids[k].1].as_ref().expect("alive");
                let succ = node.owner_id(node.successor()).map(|p| *p.value());
                let pred = node.owner_id(node.predecessor()).map(|p| *p.value());
                !(succ == Some(ids[(k + 1) % n].0) && pred == Some(ids[(k + n - 1) % n].0))
            })
            .count()
    }

    /// Advances time in 1 s steps until the ring is consistent; false if it
    /// is not after `max_seconds`.
    pub fn settle_ring(&mut self, max_seconds: u32) -> bool {
        for _ in 0..max_seconds {
            if self.ring_is_consistent() {
                return true;
            }
            self.advance(1000);
        }
        self.ring_is_consistent()
    }

    /// A blocking `get` through node `idx` (virtual time moves until it ends).
    pub fn get(&mut self, idx: usize, key: &[u8]) -> Result<Bytes, GetError> {
        let now = self.now;
        let timeout = self.node(idx).config().get_timeout_ms;
        let req = self.node(idx).get(key, timeout, now);
        loop {
            self.run();
            let pos = self
                .events
                .iter()
                .position(|(n, e)| *n == idx && matches!(e, Event::GetDone { req: r, .. } if *r == req));
            if let Some(pos) = pos {
                if let (_, Event::GetDone { result, .. }) = self.events.remove(pos) {
                    return result;
                }
            }
            self.advance(100);
        }
    }

    /// `set` through node `idx`, settled.
    pub fn set(&mut self, idx: usize, key: &[u8], value: &[u8]) {
        self.node(idx).set(key, Bytes::copy_from_slice(value));
        self.run();
    }
}

/// Packets of an uncompressed frame's header before the payload (type,
/// sender, id, time).
const HEADER_PACKETS: usize = 4;

/// A frame of lookup traffic.
enum Lookup {
    /// A retrieve whisper for this item.
    Retrieve(ItemName),
    /// An answer.
    Retrieved,
}

/// What a frame is, if it is lookup traffic. A cheap scan of the packet
/// lengths rules out most uncompressed frames before the full decode (which
/// checks the message id).
fn lookup_frame(frame: &[u8]) -> Option<Lookup> {
    let body = frame.get(4..)?;
    let len = u32::from_be_bytes(frame[..4].try_into().ok()?) as usize;
    if len != body.len() {
        return None;
    }
    if let Some(sub) = raw_sub_flag(body) {
        if sub != Some(flags::RETRIEVE) && sub != Some(flags::RETRIEVED) {
            return None;
        }
    }
    // Between rs2p nodes whispers carry an empty id (PROTOCOL §16.16).
    let (methods, max) = (&crate::wire::compression::PREFERENCE, crate::wire::DEFAULT_MAX_FRAME);
    let msg = Message::decode_body_ext(body, methods, max, true).ok()?;
    if msg.msg_type != flags::WHISPER || msg.payload.len() < 3 {
        return None;
    }
    match msg.payload[0].as_ref() {
        [flags::RETRIEVE] => Some(Lookup::Retrieve((
            String::from_utf8_lossy(&msg.payload[1]).into_owned(),
            String::from_utf8_lossy(&msg.payload[2]).into_owned(),
        ))),
        [flags::RETRIEVED] => Some(Lookup::Retrieved),
        _ => None,
    }
}

/// For an uncompressed body: `Some(sub-flag)` (`None` inside when the
/// payload's first packet is not one byte); `None` if the body does not
/// parse as uncompressed packets.
fn raw_sub_flag(body: &[u8]) -> Option<Option<u8>> {
    if !body.starts_with(&[0, 0, 0, 1]) {
        return None;
    }
    let mut rest = body;
    for _ in 0..HEADER_PACKETS {
        let len = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        rest = rest.get(4 + len..)?;
    }
    let len = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
    let packet = rest.get(4..4 + len)?;
    Some(if len == 1 { Some(packet[0]) } else { None })
}
