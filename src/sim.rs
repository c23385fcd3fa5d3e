//! A deterministic in-memory network of sans-IO nodes, with virtual time.
//!
//! Used by the tests to run rings of many nodes in one process with no
//! sockets: every [`Action`] is carried out by the simulator, bytes are
//! delivered in order, and the clock only moves when the test moves it.
//!
//! ```
//! use rs2p::core::Config;
//! use rs2p::sim::Sim;
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

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;

use crate::core::{Action, Config, ConnId, Event, GetError, Node, Time};

/// Start of virtual time (ms since the epoch): 2023-11-14.
pub const SIM_EPOCH: Time = 1_700_000_000_000;

enum Delivery {
    Data { node: usize, conn: ConnId, bytes: Bytes },
    Closed { node: usize, conn: ConnId },
}

/// The simulated network.
pub struct Sim {
    nodes: Vec<Option<Node>>,
    now: Time,
    queue: VecDeque<Delivery>,
    links: HashMap<(usize, ConnId), (usize, ConnId)>,
    listeners: HashMap<(String, u16), usize>,
    events: Vec<(usize, Event)>,
    /// Frames delivered so far.
    pub frames: u64,
    /// Bytes delivered so far.
    pub bytes: u64,
    /// Seeds every node's [`Config::seed`].
    seed: u64,
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
            queue: VecDeque::new(),
            links: HashMap::new(),
            listeners: HashMap::new(),
            events: Vec::new(),
            frames: 0,
            bytes: 0,
        }
    }

    /// Adds a node listening at its configured out address; returns its index.
    /// Its [`Config::seed`] is replaced by one derived from the simulation's
    /// seed and the index, so that a run depends on nothing else (give the
    /// config a fixed `salt` too, for fixed node ids).
    pub fn add_node(&mut self, mut cfg: Config) -> usize {
        let idx = self.nodes.len();
        cfg.seed = self.seed.rotate_left(20) ^ idx as u64;
        self.listeners.insert(cfg.out_addr.clone(), idx);
        self.nodes.push(Some(Node::new(cfg, self.now)));
        idx
    }

    /// The node at `idx` (panics if it was removed).
    pub fn node(&mut self, idx: usize) -> &mut Node {
        self.nodes[idx].as_mut().expect("node was removed")
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

    /// Node `from` dials node `to`'s address.
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

    /// Drops a node and its links; with `reset`, the other ends see them close.
    fn remove_node(&mut self, idx: usize, reset: bool) {
        if self.nodes[idx].take().is_some() {
            self.listeners.retain(|_, v| *v != idx);
            let mut ends: Vec<(usize, ConnId)> = self.links.keys().filter(|(n, _)| *n == idx).copied().collect();
            ends.sort();
            for end in ends {
                if let Some(other) = self.links.remove(&end) {
                    self.links.remove(&other);
                    if reset {
                        self.queue.push_back(Delivery::Closed { node: other.0, conn: other.1 });
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
        }
        self.run();
        self.crash(idx);
    }

    /// Takes the events reported so far.
    pub fn take_events(&mut self) -> Vec<(usize, Event)> {
        std::mem::take(&mut self.events)
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
                    if let Some(&(peer, peer_conn)) = self.links.get(&(idx, conn)) {
                        self.queue.push_back(Delivery::Data { node: peer, conn: peer_conn, bytes: frame });
                    }
                }
                Action::Dial { conn, host, port } => {
                    let now = self.now;
                    match self.listeners.get(&(host.clone(), port)).copied().filter(|t| self.alive(*t)) {
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
                        self.queue.push_back(Delivery::Closed { node: other.0, conn: other.1 });
                    }
                }
                Action::Event(e) => self.events.push((idx, e)),
            }
        }
        any
    }

    /// Delivers everything until the network is quiet (bounded).
    pub fn run(&mut self) {
        for _ in 0..50_000_000u64 {
            let mut progressed = false;
            for idx in 0..self.nodes.len() {
                progressed |= self.apply_actions(idx);
            }
            match self.queue.pop_front() {
                Some(Delivery::Data { node, conn, bytes }) => {
                    self.frames += 1;
                    self.bytes += bytes.len() as u64;
                    let now = self.now;
                    if let Some(n) = self.nodes[node].as_mut() {
                        n.on_data(conn, &bytes, now);
                    }
                }
                Some(Delivery::Closed { node, conn }) => {
                    let now = self.now;
                    if let Some(n) = self.nodes[node].as_mut() {
                        n.on_closed(conn, now);
                    }
                }
                None if !progressed => return,
                None => {}
            }
        }
        panic!("simulation did not settle");
    }

    /// Moves the clock by `ms`, ticking every node, and settles.
    pub fn advance(&mut self, ms: u64) {
        self.now += ms;
        let now = self.now;
        for n in self.nodes.iter_mut().flatten() {
            n.on_tick(now);
            // Delivery is instant here: a stream may send as much as a tick's worth.
            for conn in n.key_streams() {
                n.stream_keys(conn, crate::chord::Room { frames: 1024, bytes: 16 << 20 });
            }
        }
        self.run();
    }

    /// True when every seeding node is linked to its true successor and
    /// predecessor among the seeding nodes present.
    pub fn ring_is_consistent(&mut self) -> bool {
        let mut ids: Vec<(crate::ring::U512, usize)> = self
            .alive_nodes()
            .into_iter()
            .filter(|i| !self.nodes[*i].as_ref().is_some_and(|n| n.is_leeching()))
            .map(|i| (*self.nodes[i].as_ref().expect("alive").id().value(), i))
            .collect();
        ids.sort();
        let n = ids.len();
        if n < 2 {
            return true;
        }
        (0..n).all(|k| {
            let node = self.nodes[ids[k].1].as_ref().expect("alive");
            let succ = node.owner_id(node.successor()).map(|p| *p.value());
            let pred = node.owner_id(node.predecessor()).map(|p| *p.value());
            succ == Some(ids[(k + 1) % n].0) && pred == Some(ids[(k + n - 1) % n].0)
        })
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
