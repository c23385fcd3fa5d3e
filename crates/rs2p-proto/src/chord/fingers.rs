//! Fingers and a successor list: O(log N) routing for rs2p nodes.
//!
//! py2p routes greedily over its ring neighbours and a handful of links
//! picked from peer lists, so a lookup's path grows like a power of N. An
//! rs2p node also keeps, as ordinary mesh connections:
//!
//! * **fingers**: links to the owners of `id + 2^(383-k)` for `k` in
//!   `0..F`, with `F` about log2 of the estimated ring size. Routing is
//!   unchanged (a retrieve or store goes to the connected peer nearest at or
//!   before the key), so with fingers each hop halves the distance left, as
//!   in Chord: about ½·log2 N hops.
//! * **a successor list**: links to the `r` nodes after us (`r` about log2
//!   N, at least [`MIN_SUCCESSORS`]), learnt from our neighbours' peer lists
//!   (`handle_peers`), so that a failed successor is replaced by a link we
//!   already hold, without a lookup.
//!
//! Fingers are found with the rs2p find extension (sub-flag
//! [`flags::RS2P_FIND`], rs2p peers only, PROTOCOL §16.12): `find TARGET
//! NONCE PATH…` is forwarded greedily among rs2p seeding peers, each hop
//! appending its id to the path, until no rs2p peer is nearer the target;
//! that node answers `found TARGET NONCE ID HOST PORT PATH…` with the owner
//! of the target as it sees it (py2p peers included), and the answer walks
//! the path back, each hop popping itself. No hop keeps state. The same
//! lookup of `id - 1` finds a joining node's predecessor, so a node that
//! joins through any member finds its place in O(log N) hops.
//!
//! Links to fingers and successors are never dropped by
//! `disconnect_least_efficient`. py2p peers neither send nor receive finds;
//! they may be fingers all the same (an rs2p node answers with them).

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::chord::Node;
use crate::core::{ConnId, PeerId, Time};
use crate::ring::{distance, RING_BITS, U512};
use crate::wire::flags;

/// Upper bound on fingers: enough for rings of 2^24 nodes.
pub const MAX_FINGERS: usize = 24;

/// Lower bound on the successor list: small rings still survive a few
/// failures in a row without a lookup.
pub const MIN_SUCCESSORS: usize = 4;

/// Upper bound on the successor list (log2 of a 65,536-node ring).
pub const MAX_SUCCESSORS: usize = 16;

/// Mean pause between two finger lookups (one finger refreshed per lookup;
/// each pause is drawn between half and one and a half times this, so that
/// nodes started together do not look up in step).
pub const FINGER_LOOKUP_MS: u64 = 1_000;

/// Longest mean pause between finger lookups: while the answers change no
/// finger and no link comes or goes, the pause doubles up to this (a ring
/// that is not changing needs no fresh fingers; any change brings the
/// pause back to [`FINGER_LOOKUP_MS`]).
pub const FINGER_LOOKUP_MAX_MS: u64 = 8_000;

/// One finger lookup in this many looks up our predecessor instead
/// (through a far finger: [`Node::via_far_finger`]), so that a node that
/// took a far peer for its neighbour finds its place within a few rounds
/// rather than once per pass over all its fingers (18 lookups, up to
/// 2.4 min, at 100,000 nodes).
const PREDECESSOR_EVERY: usize = 4;

/// A finger lookup unanswered this long is forgotten.
const FIND_TIMEOUT_MS: u64 = 5_000;

/// A finger lookup unanswered this long makes the link it went out on
/// suspect (`mesh/liveness.rs`: a distant link then has the short silence
/// limit), as a retrieve does at its resend.
const FIND_SUSPECT_MS: u64 = crate::chord::get::RESEND_AFTER_MS;

/// Longest path a find may carry: a greedy walk halves the distance at each
/// hop, so an honest path is about log2 N long; a longer one is cut short
/// (answered where it is) and a longer answer is dropped.
pub const MAX_FIND_PATH: usize = 48;

/// Our own finds in flight (one per finger index at most).
const MAX_FINDS_PENDING: usize = MAX_FINGERS + 1;

/// Dials to fingers in flight at once: a lying peer answering our finds
/// with silent addresses holds at most this many of our outgoing slots.
const MAX_FINGER_DIALS: usize = 4;

/// Successors whose distance estimates the ring size.
const SIZE_SAMPLE: usize = 8;

const FIND: &[u8] = b"find";
const FOUND: &[u8] = b"found";

/// One of our finds in flight.
#[derive(Debug, Clone)]
struct PendingFind {
    /// The finger index it refreshes ([`FingerState::self_index`] for our predecessor).
    index: usize,
    /// The point looked up.
    target: U512,
    /// When it was sent (forgotten after [`FIND_TIMEOUT_MS`]).
    sent_at: Time,
    /// The link it went out on, until made suspect after [`FIND_SUSPECT_MS`].
    via: Option<ConnId>,
}

/// Counters of the finger machinery (see [`Node::finger_stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FingerStats {
    /// Finds we started.
    pub finds_sent: u64,
    /// Our finds answered.
    pub finds_answered: u64,
    /// Finds of other nodes we forwarded.
    pub finds_forwarded: u64,
    /// Finds of other nodes we answered.
    pub finds_served: u64,
    /// Dials started to reach a finger or our predecessor.
    pub finger_dials: u64,
    /// Fingers currently known (distinct peers).
    pub fingers: usize,
}

/// Finger state of a node.
#[derive(Debug, Default)]
pub(crate) struct FingerState {
    /// The peer chosen for each finger index (0: half the ring away).
    fingers: Vec<Option<PeerId>>,
    /// Our finds in flight, by nonce.
    pending: BTreeMap<u64, PendingFind>,
    /// The next nonce.
    next_nonce: u64,
    /// Lookups started by the rotation: picks the next finger index, or
    /// our predecessor once in [`PREDECESSOR_EVERY`].
    next_index: usize,
    /// Predecessor lookups so far: every other one goes through a far
    /// finger, picked by this count (see [`Node::via_far_finger`]).
    pred_rounds: usize,
    /// When the next finger lookup is due.
    next_at: Time,
    /// The mean pause before the next lookup ([`FINGER_LOOKUP_MS`] up to
    /// [`FINGER_LOOKUP_MAX_MS`]; 0 before the first).
    every: u64,
    /// The mesh's routing changes as of the last lookup: a link came or
    /// went since, and the pause starts again from the shortest.
    routing_seen: u64,
    /// splitmix64 state for the jitter, from `Config::seed`.
    rng: u64,
    /// Counters.
    pub(crate) stats: FingerStats,
    /// log2 of the ring size, as last estimated (see [`Node::ring_size_log2`]).
    size_log2: u32,
    /// The ring version of that estimate: it depends on the seeding peers only.
    size_version: Option<u64>,
}

impl FingerState {
    /// Jitter drawn from `seed`.
    pub(crate) fn with_seed(seed: u64) -> Self {
        FingerState { rng: seed ^ 0x5EED_F1A6, ..Default::default() }
    }

    pub(crate) fn next_rand(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// True if `pid` is one of our fingers.
    pub(crate) fn is_finger(&self, pid: &PeerId) -> bool {
        self.fingers.iter().flatten().any(|f| f == pid)
    }
}

/// The ids of a routed request's path (at most [`MAX_FIND_PATH`]; `None`
/// if one is not base58).
pub(crate) fn parse_path(packets: &[Bytes]) -> Option<Vec<PeerId>> {
    if packets.is_empty() || packets.len() > MAX_FIND_PATH {
        return None;
    }
    packets.iter().map(|p| PeerId::parse(p)).collect()
}

impl Node {
    /// True if this node keeps fingers and a successor list: an rs2p
    /// chord node with [`crate::core::Config::fingers`] set.
    pub(crate) fn uses_fingers(&self) -> bool {
        self.mesh.config().kind == crate::core::Kind::Chord
            && self.mesh.config().fingers
            && self.mesh.config().advertise_capability
    }

    /// log2 of the ring size as this node estimates it, from how far its
    /// nearest successors are (k successors within a distance d: about
    /// k·2^384/d nodes); 0 when it knows no seeding peer.
    pub fn ring_size_log2(&self) -> u32 {
        self.chord.fingers.size_log2
    }

    /// Estimates the ring size again (on each tick: it changes slowly, and
    /// is read on every peer list).
    fn estimate_ring_size(&mut self) {
        let version = Some(self.ring_version());
        if self.chord.fingers.size_version == version {
            return;
        }
        self.chord.fingers.size_version = version;
        let me = self.mesh.id().value();
        let mut after: Vec<U512> = self.seeding_peers().map(|(p, _)| distance(me, p.value())).collect();
        if after.is_empty() {
            self.chord.fingers.size_log2 = 0;
            return;
        }
        let k = after.len().min(SIZE_SAMPLE);
        after.select_nth_unstable(k - 1);
        let d = after[k - 1];
        let gap_bits = d.bit_len().max(1) as u32;
        let k_bits = usize::BITS - k.leading_zeros() - 1;
        self.chord.fingers.size_log2 = (RING_BITS as u32 + k_bits).saturating_sub(gap_bits).max(1);
    }

    /// How many successors we keep linked.
    pub fn successor_target(&self) -> usize {
        (self.ring_size_log2() as usize).clamp(MIN_SUCCESSORS, MAX_SUCCESSORS)
    }

    /// How many fingers we keep.
    fn finger_count(&self) -> usize {
        (self.ring_size_log2() as usize + 1).clamp(1, MAX_FINGERS)
    }

    /// The distance to the farthest of our `r` nearest seeding successors
    /// (`U512::MAX` if we know fewer): a peer nearer than that belongs in
    /// our successor list.
    pub(crate) fn successor_list_gap(&self) -> U512 {
        let me = self.mesh.id().value();
        let mut after: Vec<U512> = self.seeding_peers().map(|(p, _)| distance(me, p.value())).collect();
        let r = self.successor_target();
        if after.len() < r {
            return U512::MAX;
        }
        after.select_nth_unstable(r - 1);
        after[r - 1]
    }

    /// Our `r` nearest seeding successors, nearest first.
    pub fn successor_list(&self) -> Vec<PeerId> {
        let me = *self.mesh.id().value();
        let mut peers: Vec<(U512, &PeerId)> =
            self.seeding_peers().map(|(p, _)| (distance(&me, p.value()), p)).collect();
        peers.sort_unstable_by_key(|(d, _)| *d);
        peers.into_iter().take(self.successor_target()).map(|(_, p)| p.clone()).collect()
    }

    /// Our fingers (distinct peers, by finger index).
    pub fn fingers(&self) -> Vec<PeerId> {
        let mut out: Vec<PeerId> = Vec::new();
        for f in self.chord.fingers.fingers.iter().flatten() {
            if !out.contains(f) {
                out.push(f.clone());
            }
        }
        out
    }

    /// Counters of finger lookups and dials.
    pub fn finger_stats(&self) -> FingerStats {
        FingerStats { fingers: self.fingers().len(), ..self.chord.fingers.stats }
    }

    /// True if the link to `pid` carries routing structure: a finger, or one
    /// of our successors (`successors` from [`Node::successor_list`]).
    pub(crate) fn is_structural(&self, pid: &PeerId, successors: &[PeerId]) -> bool {
        self.chord.fingers.is_finger(pid) || successors.contains(pid)
    }

    /// The point finger `index` looks up; the last index looks up `id - 1`,
    /// whose owner is our predecessor.
    fn finger_target(&self, index: usize, count: usize) -> U512 {
        let me = *self.mesh.id().value();
        if index >= count {
            return crate::ring::reduce(&me.wrapping_sub(U512::from(1u64)));
        }
        let step = U512::from(1u64) << (RING_BITS - 1 - index);
        crate::ring::reduce(&me.wrapping_add(step))
    }

    /// The rs2p seeding peer nearest at or before `target`, if it is nearer
    /// than we are (the next hop of a find; a leeching node, which owns
    /// nothing, takes the nearest one).
    pub(crate) fn find_next_hop(&self, target: &U512) -> Option<ConnId> {
        let ours = if self.chord.leeching { U512::MAX } else { distance(self.mesh.id().value(), target) };
        self.mesh
            .routed()
            .filter(|(_, c)| c.handshaken && !c.ext.leeching && c.rs2p)
            .map(|(p, c)| (distance(p.value(), target), c.id))
            .filter(|(d, _)| *d < ours)
            .min()
            .map(|(_, c)| c)
    }

    /// When the next finger lookup is due (never while no peer is linked:
    /// there is nobody to ask).
    pub(crate) fn finger_due(&self) -> Option<Time> {
        let linked = !self.mesh.routing().is_empty();
        (self.uses_fingers() && !self.chord.leeching && linked).then_some(self.chord.fingers.next_at)
    }

    /// Finger maintenance, on each tick: one lookup per
    /// [`FINGER_LOOKUP_MS`] (jittered), rotating over the fingers with our
    /// predecessor every [`PREDECESSOR_EVERY`]-th; finds unanswered for
    /// long are forgotten.
    pub(crate) fn finger_tick(&mut self) {
        if !self.uses_fingers() || self.chord.leeching {
            return;
        }
        self.estimate_ring_size();
        let now = self.mesh.now();
        self.chord.fingers.pending.retain(|_, p| now.saturating_sub(p.sent_at) < FIND_TIMEOUT_MS);
        let mut late = Vec::new();
        for p in self.chord.fingers.pending.values_mut() {
            if now.saturating_sub(p.sent_at) >= FIND_SUSPECT_MS {
                late.extend(p.via.take());
            }
        }
        for conn in late {
            self.mesh.suspect(conn);
        }
        if now < self.chord.fingers.next_at {
            return;
        }
        let changes = self.mesh.routing_changes();
        let fs = &mut self.chord.fingers;
        if fs.every == 0 || changes != fs.routing_seen {
            fs.every = FINGER_LOOKUP_MS;
            fs.routing_seen = changes;
        }
        let jitter = fs.next_rand() % fs.every;
        fs.next_at = now + fs.every / 2 + jitter;
        let count = self.finger_count();
        self.chord.fingers.fingers.resize(count, None);
        let k = self.chord.fingers.next_index;
        self.chord.fingers.next_index = k.wrapping_add(1);
        let index = if k % PREDECESSOR_EVERY == PREDECESSOR_EVERY - 1 {
            count
        } else {
            // The fingers in turn: `k - k / PREDECESSOR_EVERY` counts the
            // finger lookups before this one.
            (k - k / PREDECESSOR_EVERY) % count
        };
        self.start_find(index, count);
    }

    /// Looks up finger `index` (of `count`; `count` itself: our
    /// predecessor, every other time looked up through one of our far
    /// fingers, so that the answer does not come from our own corner of
    /// the ring: see [`Node::via_far_finger`]).
    fn start_find(&mut self, index: usize, count: usize) {
        let target = self.finger_target(index, count);
        let via = if index >= count { self.via_far_finger(count) } else { None };
        let Some(conn) = via.or_else(|| self.find_next_hop(&target)) else {
            // No rs2p peer is nearer: as far as we can tell, the owner is
            // one we are linked to, or us.
            let owner = self.find(&target);
            let pid = self.owner_id(owner).filter(|p| p != self.mesh.id());
            self.set_finger(index, pid);
            return;
        };
        let fs = &mut self.chord.fingers;
        if fs.pending.len() >= MAX_FINDS_PENDING || fs.pending.values().any(|p| p.index == index) {
            return;
        }
        let nonce = fs.next_nonce;
        fs.next_nonce += 1;
        fs.pending.insert(nonce, PendingFind { index, target, sent_at: self.mesh.now(), via: Some(conn) });
        fs.stats.finds_sent += 1;
        let payload = vec![
            Bytes::from_static(&[flags::RS2P_FIND]),
            Bytes::from_static(FIND),
            Bytes::from(crate::wire::base58::encode(&target)),
            Bytes::from(nonce.to_string()),
            self.mesh.id().bytes(),
        ];
        self.mesh.send_on(conn, flags::WHISPER, payload);
    }

    /// The link to one of our far fingers (the first half of the table:
    /// half the ring away, a quarter, and so on), a different one at
    /// each other call; `None` at the others (a path through a far finger
    /// is ½·log2 N hops of growing frames, the greedy one a single hop)
    /// and if none is linked. A node that joined late may
    /// know only peers far from its place, take one of them for its ring
    /// neighbour and, estimating the ring as small from that gap, keep only
    /// coarse fingers: a greedy lookup of its predecessor then ends at that
    /// false neighbour, which knows no better, and the node never finds its
    /// place (seen at 100,000 nodes). Entering the ring through a far finger,
    /// the lookup walks well-linked nodes down to the true predecessor.
    fn via_far_finger(&mut self, count: usize) -> Option<ConnId> {
        let far = count.div_ceil(2);
        let mut links: Vec<ConnId> = Vec::new();
        for pid in self.chord.fingers.fingers.iter().take(far).flatten() {
            let conn = self.mesh.routing().get(pid).copied();
            let usable =
                conn.and_then(|c| self.mesh.conns().get(&c)).is_some_and(|c| c.handshaken && c.rs2p && !c.ext.leeching);
            if let Some(c) = conn.filter(|c| usable && !links.contains(c)) {
                links.push(c);
            }
        }
        let fs = &mut self.chord.fingers;
        fs.pred_rounds = fs.pred_rounds.wrapping_add(1);
        // Every other one goes the cheap way, to our nearest peer before
        // the target (one hop in a settled ring).
        if links.is_empty() || fs.pred_rounds.is_multiple_of(2) {
            return None;
        }
        Some(links[(fs.pred_rounds / 2) % links.len()])
    }

    /// A joining node looks its predecessor up at once (rather than at its
    /// first finger round), so that it finds its place in O(log N) hops.
    pub(crate) fn find_predecessor_soon(&mut self) {
        if self.uses_fingers() && !self.chord.leeching {
            self.estimate_ring_size();
            let count = self.finger_count();
            self.chord.fingers.fingers.resize(count, None);
            self.start_find(count, count);
        }
    }

    /// The rs2p find extension (§16.12): forward or answer a find, or walk
    /// an answer back along its path.
    pub(crate) fn handle_find(&mut self, conn: ConnId, payload: &[Bytes]) {
        let verb = payload[1].as_ref();
        let fixed = if verb == FIND { 4 } else { 7 };
        if (verb != FIND && verb != FOUND) || payload.len() <= fixed || payload.len() - fixed > MAX_FIND_PATH {
            self.mesh.record_error(Some(conn), "ignoring a malformed find".to_owned());
            return;
        }
        let target = crate::wire::base58::decode(&payload[2]).ok();
        let (Some(target), Some(path)) = (target, parse_path(&payload[fixed..])) else {
            self.mesh.record_error(Some(conn), "ignoring a find with a bad target or path".to_owned());
            return;
        };
        let target = crate::ring::reduce(&target);
        if verb == FIND {
            // The path ends with the peer that sent it to us.
            if self.peer_of(conn) != path.last() || self.chord.leeching {
                return;
            }
            match self.find_next_hop(&target).filter(|_| path.len() < MAX_FIND_PATH) {
                Some(next) if !path.contains(self.mesh.id()) => {
                    self.chord.fingers.stats.finds_forwarded += 1;
                    let mut out = payload.to_vec();
                    out.push(self.mesh.id().bytes());
                    self.mesh.send_on(next, flags::WHISPER, out);
                }
                _ => self.answer_find(conn, payload, &target),
            }
            return;
        }
        if self.answer_back(payload, fixed, path) {
            self.finish_find(&target, payload);
        }
    }

    /// Walks an answer of a routed rs2p request (`payload[..fixed]`, then
    /// the path) one hop back: we must be the path's last id; without us the
    /// path is empty when the answer is ours (true), else the answer goes to
    /// the peer now last (dropped if we are no longer linked to it).
    pub(crate) fn answer_back(&mut self, payload: &[Bytes], fixed: usize, mut path: Vec<PeerId>) -> bool {
        if path.pop().as_ref() != Some(self.mesh.id()) {
            return false;
        }
        let Some(back) = path.last() else {
            return true;
        };
        if let Some(&c) = self.mesh.routing().get(back) {
            let mut out = payload[..fixed].to_vec();
            out.extend(path.iter().map(PeerId::bytes));
            self.mesh.send_on(c, flags::WHISPER, out);
        }
        false
    }

    /// Answers a find on `conn` with the owner of `target` as we see it.
    fn answer_find(&mut self, conn: ConnId, payload: &[Bytes], target: &U512) {
        let owner = self.find(target);
        let (id, (host, port)) = match owner {
            crate::chord::Owner::Remote(c) => {
                match (self.peer_of(c).cloned(), self.mesh.conns().get(&c).and_then(|c| c.addr.clone())) {
                    (Some(p), Some(addr)) => (p, addr),
                    _ => (self.mesh.id().clone(), self.mesh.config().out_addr.clone()),
                }
            }
            _ => (self.mesh.id().clone(), self.mesh.config().out_addr.clone()),
        };
        self.chord.fingers.stats.finds_served += 1;
        let mut out = vec![
            Bytes::from_static(&[flags::RS2P_FIND]),
            Bytes::from_static(FOUND),
            payload[2].clone(),
            payload[3].clone(),
            id.bytes(),
            Bytes::from(host),
            Bytes::from(port.to_string()),
        ];
        out.extend(payload[4..].iter().cloned());
        self.mesh.send_on(conn, flags::WHISPER, out);
    }

    /// Our find came back: the owner becomes the finger (dialed if new).
    fn finish_find(&mut self, target: &U512, payload: &[Bytes]) {
        let nonce = std::str::from_utf8(&payload[3]).ok().and_then(|n| n.parse::<u64>().ok());
        let Some(p) = nonce.and_then(|n| self.chord.fingers.pending.remove(&n)) else {
            return;
        };
        if p.target != *target {
            return;
        }
        self.chord.fingers.stats.finds_answered += 1;
        let (Some(pid), Ok(host), Some(port)) = (
            PeerId::parse(&payload[4]),
            std::str::from_utf8(&payload[5]),
            std::str::from_utf8(&payload[6]).ok().and_then(|p| p.parse::<u16>().ok()),
        ) else {
            return;
        };
        if pid == *self.mesh.id() {
            self.set_finger(p.index, None);
            return;
        }
        // An answer farther from the target than we are is no finger.
        if distance(pid.value(), target) >= distance(self.mesh.id().value(), target) {
            return;
        }
        self.set_finger(p.index, Some(pid.clone()));
        if self.mesh.is_known(&pid) || self.mesh.address_rests(host, port) || self.finger_dials_full() {
            return;
        }
        self.chord.fingers.stats.finger_dials += 1;
        // Failures are recorded by connect itself.
        let _ = self.connect(host, port, Some(pid));
    }

    /// Sets finger `index` (if within the table) to what a lookup found: the
    /// pause before the next lookup doubles (up to [`FINGER_LOOKUP_MAX_MS`])
    /// when it was already so, and goes back to [`FINGER_LOOKUP_MS`] when
    /// the finger changed.
    fn set_finger(&mut self, index: usize, pid: Option<PeerId>) {
        let fs = &mut self.chord.fingers;
        let Some(slot) = fs.fingers.get_mut(index) else {
            return;
        };
        if *slot == pid {
            fs.every = (fs.every * 2).clamp(FINGER_LOOKUP_MS, FINGER_LOOKUP_MAX_MS);
        } else {
            *slot = pid;
            fs.every = FINGER_LOOKUP_MS;
        }
    }

    /// True if no more finger dials may start: [`MAX_FINGER_DIALS`]
    /// unfinished outgoing connections, or the outgoing links are full.
    fn finger_dials_full(&self) -> bool {
        let (mut unfinished, mut outgoing) = (0usize, 0usize);
        for c in self.mesh.conns().values().filter(|c| c.outgoing) {
            outgoing += 1;
            unfinished += usize::from(!c.handshaken);
        }
        unfinished >= MAX_FINGER_DIALS || outgoing >= self.mesh.config().max_outgoing_links
    }
}

impl Node {
    /// How far the ring neighbours on the short timers reach: the distance
    /// to the `r`-th nearest seeding peer after us (our successor and the
    /// replica holders of our items) and from the `r`-th nearest before us
    /// (our predecessor and the owners whose replicas we hold), `r` being
    /// [`Config::short_timer_neighbours`](crate::core::Config) (or the
    /// successor list, if shorter; the rest of it rides the distant timers,
    /// which at 100,000 nodes halves a node's keepalives);
    /// `U512::MAX` on a side with `r` peers or fewer (all of them are
    /// neighbours).
    fn ring_neighbour_reach(&self) -> (U512, U512) {
        let me = *self.mesh.id().value();
        let r = self.successor_target().min(self.mesh.config().short_timer_neighbours).max(1);
        let mut after: Vec<U512> = self.seeding_peers().map(|(p, _)| distance(&me, p.value())).collect();
        let mut before: Vec<U512> = self.seeding_peers().map(|(p, _)| distance(p.value(), &me)).collect();
        let reach = |side: &mut Vec<U512>| {
            if side.len() <= r {
                return U512::MAX;
            }
            *side.select_nth_unstable(r - 1).1
        };
        (reach(&mut after), reach(&mut before))
    }

    /// Marks which links the mesh may keep alive at the distant period
    /// (`mesh/liveness.rs`): with fingers on and while we seed, the links to
    /// seeding rs2p peers that are no ring neighbour of ours (beyond
    /// [`Node::ring_neighbour_reach`] on both sides): fingers, and the
    /// peers whose fingers we are, and the far end of our successor list.
    /// Every other link keeps the short timers:
    /// ring neighbours, whose loss repair, replicas and rejoin must learn
    /// of fast; py2p and leeching peers; all links of a node without
    /// fingers. Done again only when the ring version or the size estimate
    /// moved (a link that becomes a ring neighbour gets the short limit at
    /// once); called after every batch of upcalls.
    pub(crate) fn mark_distant_links(&mut self) {
        let key = (self.ring_version(), self.ring_size_log2());
        if self.chord.distant_marked == Some(key) {
            return;
        }
        self.chord.distant_marked = Some(key);
        let fingers = self.uses_fingers() && !self.chord.leeching;
        let (after, before) = if fingers { self.ring_neighbour_reach() } else { (U512::MAX, U512::MAX) };
        let me = *self.mesh.id().value();
        self.mesh.mark_distant(|p, c| {
            fingers
                && c.rs2p
                && !c.ext.leeching
                && distance(&me, p.value()) > after
                && distance(p.value(), &me) > before
        });
    }

    /// Outgoing links to fingers and successors: py2p's bound on outgoing
    /// links (`max_outgoing`) counts the others only.
    pub(crate) fn structural_outgoing(&self) -> usize {
        if !self.uses_fingers() {
            return 0;
        }
        let successors = self.successor_list();
        self.data_storing()
            .iter()
            .filter(|(p, c)| self.mesh.conns().get(c).is_some_and(|c| c.outgoing) && self.is_structural(p, &successors))
            .count()
    }
}
