//! Rejoin and ring merging: a seeding node that lost links to members of
//! its ring keeps trying to get them back, so that a paused node, a node
//! cut off by a partition, or two islands that each formed a ring of their
//! own come back together once the network lets them.
//!
//! The design is the "passive list" of ring unification (Shafaat, Ghodsi
//! and Haridi, *Dealing with network partitions in structured overlay
//! networks*, 2009): a node remembers the ring neighbours (predecessor,
//! successor list) whose links failed
//! (id and advertised address, [`Config::max_lost_peers`] of them, for
//! [`Config::heal_forget_ms`]) and probes them with a jittered backoff that
//! doubles from [`Config::heal_backoff_min_ms`] up to
//! [`Config::heal_backoff_max_ms`] (for a peer lost long ago, up to a
//! quarter of the time it has been away, at most [`LONG_BACKOFF_MS`]). A probe is a plain dial with the
//! expected id. When it handshakes, the peer is in our ring view again:
//! peer lists flow both ways at once, each side dials the ids the other
//! offers as nearer neighbours, and stabilisation walks the two rings into
//! one (a single link between two rings is enough; the simulator checks
//! it for rings of 64 split in halves).
//!
//! Cost: a ring that loses nobody probes nobody. A node probes only peers
//! it lost, at most one probe a [`Config::heal_probe_every_ms`] while it is
//! linked (so a ring of 10,000 under churn dials at most that rate per
//! node, the cost `rs2p sim --churn` reports as maintenance), and every due
//! one while it has no seeding peer at all (then it also tries the
//! addresses it was started with, [`Node::add_bootstrap`]).
//!
//! [`Config::max_lost_peers`]: crate::core::Config::max_lost_peers
//! [`Config::heal_forget_ms`]: crate::core::Config::heal_forget_ms
//! [`Config::heal_backoff_min_ms`]: crate::core::Config::heal_backoff_min_ms
//! [`Config::heal_backoff_max_ms`]: crate::core::Config::heal_backoff_max_ms
//! [`Config::heal_probe_every_ms`]: crate::core::Config::heal_probe_every_ms

use crate::chord::Node;
use crate::core::mix64;
use crate::core::{ConnId, Map, PeerId, SeededState, Time};

/// Addresses given at start (`--connect`, the data directory) kept for
/// rejoining: a handful is all an operator passes.
pub const MAX_BOOTSTRAP: usize = 32;

/// The longest pause between two probes of a peer lost long ago: how long
/// two rings split for a day take to find each other, at worst.
pub const LONG_BACKOFF_MS: u64 = 5 * 60 * 1000;

/// One peer (or start address) to probe.
#[derive(Debug, Clone)]
pub(crate) struct Probe {
    pub addr: (String, u16),
    /// When it was lost (entries older than `heal_forget_ms` are dropped).
    pub lost_at: Time,
    /// When it is due.
    pub next_at: Time,
    /// The current pause between two probes (doubles on each failure).
    pub backoff: u64,
    /// The dial in flight, if any.
    pub conn: Option<ConnId>,
    /// Linked again since then: the entry is dropped once the link has
    /// held for `heal_backoff_max_ms`, so a peer that keeps closing our
    /// links (py2p's connection heuristic) is probed ever more slowly,
    /// not every second.
    pub linked_at: Option<Time>,
}

/// Where a node stands on its ring, as `rs2p status` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Leeching, or never had a seeding peer: nothing to rejoin.
    Unplaced,
    /// Linked to at least one seeding peer.
    Linked,
    /// Seeding, had a place on a ring, and no seeding peer is linked now:
    /// probing remembered peers (since this time, monotonic ms).
    Rejoining(Time),
}

/// Rejoin state of a node.
#[derive(Debug)]
pub(crate) struct RejoinState {
    /// Seeding peers whose links failed: id → probe.
    pub lost: Map<PeerId, Probe>,
    /// Start addresses (no id known).
    pub bootstrap: Vec<Probe>,
    /// When the last probe of a lost peer went out while we were linked.
    pub last_probe: Time,
    /// Draws of the jitter so far (the jitter is `mix64(seed, draws)`).
    pub draws: u64,
    /// The node's seed, for the jitter.
    pub seed: u64,
    /// This node has had a seeding peer once (a place to come back to).
    pub placed_once: bool,
    /// Since when no seeding peer is linked (while seeding and placed once).
    pub alone_since: Option<Time>,
    /// Times the node got back to a ring after losing it.
    pub rejoins: u64,
    /// Probes sent.
    pub probes: u64,
    /// When the node was last ticked (a gap is a pause of the process).
    pub last_tick: Time,
}

impl RejoinState {
    pub(crate) fn with_seed(seed: u64) -> Self {
        RejoinState {
            lost: SeededState::new(seed, 111).map(),
            bootstrap: Vec::new(),
            last_probe: 0,
            draws: 0,
            seed,
            placed_once: false,
            alone_since: None,
            rejoins: 0,
            probes: 0,
            last_tick: 0,
        }
    }

    /// `base` give or take a quarter, from the seed.
    fn jitter(&mut self, base: u64) -> u64 {
        self.draws += 1;
        jitter(self.seed, self.draws, base)
    }
}

/// `base` give or take a quarter: the `draw`th jitter of a node seeded `seed`.
fn jitter(seed: u64, draw: u64, base: u64) -> u64 {
    let span = base / 2;
    base - base / 4 + if span == 0 { 0 } else { mix64(seed ^ mix64(draw)) % span }
}

impl Node {
    /// Adds an address to try when this node has lost every seeding peer
    /// (`--connect` peers and the peers remembered in a data directory).
    /// At most [`MAX_BOOTSTRAP`] are kept; the node's own address is ignored.
    pub fn add_bootstrap(&mut self, host: &str, port: u16) {
        let addr = (host.to_owned(), port);
        let heal = &mut self.chord.rejoin;
        if addr == self.mesh.config().out_addr
            || heal.bootstrap.len() >= MAX_BOOTSTRAP
            || heal.bootstrap.iter().any(|p| p.addr == addr)
        {
            return;
        }
        let min = self.mesh.config().heal_backoff_min_ms;
        heal.bootstrap.push(Probe {
            addr,
            lost_at: self.mesh.now(),
            next_at: self.mesh.now(),
            backoff: min,
            conn: None,
            linked_at: None,
        });
    }

    /// Where this node stands on its ring (see [`Placement`]).
    pub fn placement(&self) -> Placement {
        match self.chord.rejoin.alone_since {
            Some(t) => Placement::Rejoining(t),
            None if self.chord.rejoin.placed_once && !self.chord.leeching => Placement::Linked,
            None => Placement::Unplaced,
        }
    }

    /// Times this node got back to a ring after losing every seeding peer.
    pub fn rejoins(&self) -> u64 {
        self.chord.rejoin.rejoins
    }

    /// Probes of lost peers and start addresses sent so far.
    pub fn rejoin_probes(&self) -> u64 {
        self.chord.rejoin.probes
    }

    /// Lost seeding peers being probed.
    pub fn lost_peers(&self) -> usize {
        self.chord.rejoin.lost.len()
    }

    /// A peer handshook: if it was lost, it is back (its entry goes once
    /// the link has held a while).
    pub(crate) fn rejoin_linked(&mut self, peer: &PeerId) {
        let now = self.mesh.now();
        if let Some(p) = self.chord.rejoin.lost.get_mut(peer) {
            p.linked_at = Some(now);
        }
    }

    /// Linked to a seeding peer again after being alone: one line, and the
    /// start addresses' backoff starts over for next time.
    fn back_on_ring(&mut self, via: &PeerId) {
        let now = self.mesh.now();
        let Some(since) = self.chord.rejoin.alone_since.take() else { return };
        self.chord.rejoin.rejoins += 1;
        let away = now.saturating_sub(since);
        if away > self.mesh.config().tombstone_horizon_ms {
            self.away_past_horizon(away);
        }
        tracing::info!(
            node = %self.mesh.id().short(),
            peer = %via.short(),
            "back on the ring after {:.1} s without a seeding peer",
            away as f64 / 1000.0
        );
        let min = self.mesh.config().heal_backoff_min_ms;
        for b in &mut self.chord.rejoin.bootstrap {
            b.backoff = min;
        }
    }

    /// True if `peer` is our predecessor or in our successor list: the
    /// links whose loss damages the ring, and whose return mends it (a
    /// finger or a link the connection heuristic pruned is not probed:
    /// its loss harms nothing, and probing it back would only have it
    /// pruned again).
    pub(crate) fn is_ring_neighbour(&self, peer: &PeerId) -> bool {
        self.owner_id(self.predecessor()).as_ref() == Some(peer)
            || self.owner_id(self.successor()).as_ref() == Some(peer)
            || self.successor_list().contains(peer)
    }

    /// The user dropped `peer`: it is no longer a way back to the ring.
    /// `addrs`: where it said it listens, and where we dialed it (a start
    /// address may be either).
    pub(crate) fn forget_for_rejoin(&mut self, peer: &PeerId, addrs: &[(String, u16)]) {
        let heal = &mut self.chord.rejoin;
        heal.lost.remove(peer);
        heal.bootstrap.retain(|p| !addrs.contains(&p.addr));
    }

    /// The link to a seeding peer was lost while we seed: remember it.
    pub(crate) fn rejoin_lost(&mut self, peer: PeerId, addr: Option<(String, u16)>) {
        if self.chord.leeching || self.mesh.is_closed() {
            return;
        }
        let Some(addr) = addr else { return };
        let min = self.mesh.config().heal_backoff_min_ms;
        let first = self.chord.rejoin.jitter(min);
        let now = self.mesh.now();
        let heal = &mut self.chord.rejoin;
        if heal.lost.len() >= self.mesh.config().max_lost_peers && !heal.lost.contains_key(&peer) {
            // The one lost longest ago goes (a ring that lost that many has
            // the others to come back through).
            if let Some(oldest) =
                heal.lost.iter().min_by_key(|(p, e)| (e.lost_at, (*p).clone())).map(|(p, _)| p.clone())
            {
                heal.lost.remove(&oldest);
            }
        }
        match heal.lost.get_mut(&peer) {
            // Lost again soon after a probe got it back: keep backing off.
            Some(p) => {
                p.linked_at = None;
                p.addr = addr;
                p.lost_at = now;
                p.next_at = now.saturating_add(p.backoff);
            }
            None => {
                let probe = Probe {
                    addr,
                    lost_at: now,
                    next_at: now.saturating_add(first),
                    backoff: min,
                    conn: None,
                    linked_at: None,
                };
                heal.lost.insert(peer, probe);
            }
        }
    }

    /// A probe's dial failed or never handshook: back off.
    pub(crate) fn probe_failed(&mut self, conn: ConnId) {
        let (max, now) = (self.mesh.config().heal_backoff_max_ms, self.mesh.now());
        let heal = &mut self.chord.rejoin;
        heal.draws += 1;
        let (seed, draw) = (heal.seed, heal.draws);
        if let Some(p) = heal.lost.values_mut().chain(heal.bootstrap.iter_mut()).find(|p| p.conn == Some(conn)) {
            p.conn = None;
            // A peer gone for long is tried less often: a quarter of the
            // time it has been away, up to LONG_BACKOFF_MS (a ring that lost
            // many peers for good does not keep dialing them every 16 s).
            let cap = max.max((now.saturating_sub(p.lost_at) / 4).min(LONG_BACKOFF_MS));
            p.backoff = p.backoff.saturating_mul(2).min(cap);
            p.next_at = now.saturating_add(jitter(seed, draw, p.backoff));
        }
    }

    /// When rejoining next has timer work: at once when we lost or regained
    /// our place since the last tick, else the next probe due.
    pub(crate) fn rejoin_due(&self) -> Option<Time> {
        if self.mesh.is_closed() || self.chord.leeching || self.mesh.config().kind != crate::core::Kind::Chord {
            return None;
        }
        let now = self.mesh.now();
        let heal = &self.chord.rejoin;
        let linked = self.has_seeding_peer();
        let changed = if linked {
            !heal.placed_once || heal.alone_since.is_some()
        } else {
            heal.placed_once && heal.alone_since.is_none()
        };
        if changed {
            return Some(now);
        }
        let alone = heal.alone_since.is_some();
        let (forget, stable) = (self.mesh.config().heal_forget_ms, self.mesh.config().heal_backoff_max_ms);
        let mut due: Option<Time> = None;
        let mut at = |t: Time| due = Some(due.map_or(t, |d| d.min(t)));
        for (pid, p) in &heal.lost {
            at(p.lost_at.saturating_add(forget));
            if let Some(t) = p.linked_at {
                at(t.saturating_add(stable));
            } else if p.conn.is_none() && !self.mesh.is_known(pid) {
                let probe = if alone {
                    p.next_at
                } else {
                    p.next_at.max(heal.last_probe.saturating_add(self.mesh.config().heal_probe_every_ms))
                };
                at(probe);
            }
        }
        if alone {
            for p in heal.bootstrap.iter().filter(|p| p.conn.is_none()) {
                at(p.next_at);
            }
        }
        due
    }

    /// Each tick: notice losing or regaining a place, and send the probes due.
    pub(crate) fn rejoin_tick(&mut self) {
        if self.mesh.is_closed() || self.chord.leeching || self.mesh.config().kind != crate::core::Kind::Chord {
            return;
        }
        let now = self.mesh.now();
        let paused = if self.chord.rejoin.last_tick == 0 { 0 } else { now.saturating_sub(self.chord.rejoin.last_tick) };
        self.chord.rejoin.last_tick = now;
        if paused > self.mesh.config().tombstone_horizon_ms {
            self.away_past_horizon(paused);
        }
        let linked = self.has_seeding_peer();
        if linked {
            self.chord.rejoin.placed_once = true;
        }
        let heal = &mut self.chord.rejoin;
        match (linked, heal.alone_since) {
            (false, None) if heal.placed_once => {
                heal.alone_since = Some(now);
                tracing::warn!(
                    node = %self.mesh.id().short(),
                    "no seeding peer linked: lost our place on the ring; rejoining through {} remembered peers and {} start addresses",
                    heal.lost.len(),
                    heal.bootstrap.len()
                );
            }
            (true, Some(_)) => {
                let via = self.seeding_peers().next().map(|(p, _)| p.clone());
                if let Some(pid) = via {
                    self.back_on_ring(&pid);
                }
            }
            _ => {}
        }
        let (forget, stable) = (self.mesh.config().heal_forget_ms, self.mesh.config().heal_backoff_max_ms);
        self.chord.rejoin.lost.retain(|_, p| {
            now.saturating_sub(p.lost_at) < forget && p.linked_at.is_none_or(|t| now.saturating_sub(t) < stable)
        });
        let alone = self.chord.rejoin.alone_since.is_some();
        // Due lost peers, in a fixed order (longest lost first).
        let mut due: Vec<(Time, PeerId)> = self
            .chord
            .rejoin
            .lost
            .iter()
            .filter(|(pid, p)| {
                p.conn.is_none() && p.linked_at.is_none() && p.next_at <= now && !self.mesh.is_known(pid)
            })
            .map(|(pid, p)| (p.lost_at, pid.clone()))
            .collect();
        due.sort();
        if !alone {
            // Linked: one probe per `heal_probe_every_ms` at most.
            if now.saturating_sub(self.chord.rejoin.last_probe) < self.mesh.config().heal_probe_every_ms {
                due.clear();
            }
            due.truncate(1);
        }
        for (_, pid) in due {
            let Some((host, port)) = self.chord.rejoin.lost.get(&pid).map(|p| p.addr.clone()) else { continue };
            match self.connect(&host, port, Some(pid.clone())) {
                Ok(conn) => {
                    if let Some(c) = self.mesh.ext_mut(&conn) {
                        c.probe = true;
                    }
                    self.mesh.mark_quiet(conn);
                    let heal = &mut self.chord.rejoin;
                    heal.probes += 1;
                    heal.last_probe = now;
                    if let Some(p) = heal.lost.get_mut(&pid) {
                        p.conn = Some(conn);
                    }
                }
                Err(e) => {
                    tracing::debug!(node = %self.mesh.id().short(), peer = %pid.short(), "probe not sent: {e}");
                    let backoff = self.chord.rejoin.lost.get(&pid).map_or(0, |p| p.backoff);
                    let wait = self.chord.rejoin.jitter(backoff);
                    if let Some(p) = self.chord.rejoin.lost.get_mut(&pid) {
                        p.next_at = now.saturating_add(wait);
                    }
                }
            }
        }
        if alone {
            let due: Vec<usize> = (0..self.chord.rejoin.bootstrap.len())
                .filter(|&i| {
                    let p = &self.chord.rejoin.bootstrap[i];
                    p.conn.is_none() && p.next_at <= now
                })
                .collect();
            for i in due {
                let (host, port) = self.chord.rejoin.bootstrap[i].addr.clone();
                match self.connect(&host, port, None) {
                    Ok(conn) => {
                        if let Some(c) = self.mesh.ext_mut(&conn) {
                            c.probe = true;
                        }
                        self.mesh.mark_quiet(conn);
                        self.chord.rejoin.probes += 1;
                        self.chord.rejoin.bootstrap[i].conn = Some(conn);
                    }
                    Err(e) => {
                        tracing::debug!(node = %self.mesh.id().short(), "start address not dialed: {e}");
                        let wait = {
                            let b = self.chord.rejoin.bootstrap[i].backoff;
                            self.chord.rejoin.jitter(b)
                        };
                        self.chord.rejoin.bootstrap[i].next_at = now.saturating_add(wait);
                    }
                }
            }
        }
    }

    /// Away (cut off, or the process stopped) for `away_ms`, longer than
    /// deletes are remembered: drop what we hold if
    /// `Config::drop_stale_after_horizon`, else say so loudly.
    fn away_past_horizon(&mut self, away_ms: u64) {
        if self.mesh.config().drop_stale_after_horizon {
            self.drop_stale_data(away_ms);
        } else {
            self.warn_stale(away_ms);
        }
    }

    /// The warning of a node back after longer than the horizon that keeps its data.
    pub(crate) fn warn_stale(&mut self, away_ms: u64) {
        self.mesh.record_error(
            None,
            format!(
                "away {:.1} h, longer than deletes are remembered ({:.1} h): keys the ring deleted meanwhile may come back from this node's {} items; if the rest of the ring ran meanwhile, restart it with an empty data directory (or with --drop-stale-after-horizon)",
                away_ms as f64 / 3.6e6,
                self.mesh.config().tombstone_horizon_ms as f64 / 3.6e6,
                self.chord.data.total()
            ),
        );
    }

    /// Away (cut off, or the process stopped) for `away_ms`, longer than
    /// deletes are remembered: what we hold may include keys the ring
    /// deleted and has since forgotten deleting, so it is dropped and the
    /// ring's copies come back by handoff and repair (Cassandra's
    /// `gc_grace_seconds` rule).
    pub(crate) fn drop_stale_data(&mut self, away_ms: u64) {
        let items = self.chord.data.total();
        tracing::warn!(
            node = %self.mesh.id().short(),
            "away {:.1} h, longer than deletes are remembered ({:.1} h): dropping the {items} items held",
            away_ms as f64 / 3.6e6,
            self.mesh.config().tombstone_horizon_ms as f64 / 3.6e6
        );
        for m in crate::ring::HashMethod::ALL {
            for k in self.chord.data.keys(m) {
                self.chord.data.remove(m, &k);
                self.forget_item_key((m, k));
            }
        }
        self.chord.replicas = super::replica_store(self.chord.rejoin.seed);
        let before = self.wall_now().saturating_add(1);
        self.chord.data.prune_tombs(before);
        // Handoffs and summaries in flight carry the dropped copies too.
        self.chord.handoff.clear();
        self.chord.sync = super::sync::SyncState::with_seed(self.chord.rejoin.seed);
    }

    /// A probe's connection closed or handshook: it is no longer in flight.
    pub(crate) fn probe_done(&mut self, conn: ConnId, handshook: bool) {
        if handshook {
            let heal = &mut self.chord.rejoin;
            for p in heal.lost.values_mut().chain(heal.bootstrap.iter_mut()) {
                if p.conn == Some(conn) {
                    p.conn = None;
                }
            }
        } else {
            self.probe_failed(conn);
        }
    }
}
