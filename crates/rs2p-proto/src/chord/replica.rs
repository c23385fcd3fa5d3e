//! Replicas on predecessors: every item an rs2p node owns is also kept by
//! its [`Config::replica_depth`](crate::core::Config::replica_depth) nearest rs2p predecessors (2 by default).
//!
//! The five copies of a key sit wherever its five hashes fall, so a node
//! with a large arc may hold all five (in a ring of 6, about one key in 40):
//! its crash would leave no copy for the cross-table repair to read. When an
//! owner vanishes its arc passes to its predecessor, so that is where a
//! spare copy is useful: the predecessor answers at once from it (a lookup
//! that misses in a table it now owns promotes the replica), and the repair
//! promotes every replica it now owns before it scans the key list. Two
//! predecessors cover two adjacent crashes.
//!
//! The owner sends each write (a delete too) to its predecessor with a depth,
//! which forwards it to its own predecessor while the depth lasts; when its
//! predecessor changes, and on every anti-entropy period, it sends its whole
//! arc again, a bounded number of items per tick. Replicas live beside the
//! tables, apart, and are not written to the data directory (the owners'
//! copies are; replicas come back with the next refresh). py2p nodes hold
//! and send none (sub-flag [`RS2P_REPLICA`](crate::wire::flags::RS2P_REPLICA), rs2p peers only;
//! sent in batches, `replica_batch.rs`).

use bytes::Bytes;

use super::table_walk::TableWalk;
use super::{ItemKey, Owner};
use crate::chord::Node;
use crate::core::{ConnId, PeerId, Time, Version};
use crate::ring::HashMethod;

/// The deepest replica chain a peer may ask us to extend (its own
/// `replica_depth`, bounded: each level is a copy of its data on us).
pub(crate) const MAX_REPLICA_DEPTH: u8 = 4;

/// Items a refresh examines per tick (and so sends at most, each a frame;
/// the same bound keeps the tick short): 5,000 a second, so that a
/// refresh of a large arc never fills a write queue (65,536 frames) even
/// when the peer drains slowly; an arc of 100,000 items takes 20 s.
const REFRESH_PER_TICK: usize = 512;

/// Tells the refresh's jitter from the repair pass's.
const REFRESH_SALT: u64 = 0x7265_6672;

/// Replicas a promotion walk examines per step: each costs a lookup in a
/// table and `find` (no frame: promoted items reach the predecessor with
/// the paced refresh that follows), so a step stays within a few ms; a
/// node holding two million replicas walks them in about 250 steps.
const PROMOTE_PER_STEP: usize = 8_192;

/// A walk over the replicas that promotes those we now own, in progress.
#[derive(Debug)]
pub(crate) struct Promotion {
    /// Over the replica tables.
    walk: TableWalk,
    /// Replicas promoted so far by this walk.
    promoted: u64,
}

/// A refresh of the predecessor's replicas in progress: a walk over our
/// tables in key order, [`REFRESH_PER_TICK`] items examined per step (a
/// list of the whole arc made at once took seconds for a node holding a
/// million items, with the node's lock held: keepalives went unanswered).
#[derive(Debug)]
pub(crate) struct Refresh {
    /// Over our tables.
    walk: TableWalk,
    /// The predecessor they go to.
    to: ConnId,
}

/// Replica bookkeeping of a node.
#[derive(Debug, Default)]
pub(crate) struct ReplicaState {
    /// The predecessor our last refresh went to.
    pred: Option<PeerId>,
    refresh: Option<Refresh>,
    promotion: Option<Promotion>,
    /// When the next periodic refresh starts (0: not scheduled).
    next_refresh: crate::core::Time,
    /// Writes are not copied one by one (a burst of promotions): a paced
    /// refresh follows instead.
    hold: bool,
    /// The ring version (`Node::ring_version`) our predecessor was last
    /// looked up at: it can only have changed if that moved.
    checked: Option<u64>,
    /// The most items one refresh step examined, for tests: it must stay
    /// bounded however many items the node holds ...
    most_examined: usize,
    /// ... and the most replicas one promotion step examined.
    most_promoted_step: usize,
    /// Items sent by refreshes.
    refreshed: u64,
}

impl Node {
    /// Copies a write of an item we own to our predecessor.
    pub(crate) fn replicate(&mut self, item: ItemKey, value: &Bytes, version: Version) {
        if self.mesh.config().replica_depth == 0 || self.chord.replica.hold {
            return;
        }
        if let Owner::Remote(c) = self.predecessor() {
            if self.is_rs2p(c) {
                self.send_replica(
                    c,
                    item,
                    value.clone(),
                    self.mesh.config().replica_depth.min(MAX_REPLICA_DEPTH),
                    version,
                );
            }
        }
    }

    /// Queues a replica write for `conn` (`replica_batch.rs` sends it).
    pub(crate) fn send_replica(&mut self, conn: ConnId, item: ItemKey, value: Bytes, depth: u8, version: Version) {
        self.send_replica_keyed(conn, item, value, depth, version, None);
    }

    /// [`Node::send_replica`] with the item's key when the caller has it
    /// (a replica passed on: two lookups fewer per item).
    fn send_replica_keyed(
        &mut self,
        conn: ConnId,
        item: ItemKey,
        value: Bytes,
        depth: u8,
        version: Version,
        key: Option<Bytes>,
    ) {
        // The key, when known, rides along (§16.13): a promoted replica
        // keeps it; then the version (§16.17). Either may be empty.
        let key = key
            .or_else(|| self.item_key(&item))
            .or_else(|| self.chord.replicas.item_key(item.0, &item.1))
            .filter(|_| !value.is_empty());
        let version = if version.is_zero() { Bytes::new() } else { Bytes::copy_from_slice(&version.to_bytes()) };
        let text = self.chord.texts.text(item);
        self.queue_replica(
            conn,
            [
                Bytes::from_static(item.0.name().as_bytes()),
                text,
                value,
                Bytes::from(depth.to_string()),
                key.unwrap_or_default(),
                version,
            ],
        );
    }

    /// A successor's item (or its delete), to keep and pass on: table, key
    /// text, value, depth, then the key and the version if any (empty
    /// packets for none). A batch of them: `replica_batch.rs`.
    pub(crate) fn handle_replica_item(&mut self, conn: ConnId, payload: &[Bytes]) {
        let item = super::get::parse_item(&payload[0], &payload[1]);
        let depth = std::str::from_utf8(&payload[3]).ok().and_then(|d| d.parse::<u8>().ok());
        let (Some(item), Some(depth @ 1..=MAX_REPLICA_DEPTH)) = (item, depth) else {
            self.mesh.record_error(Some(conn), "ignoring a replica with a bad table, key or depth".to_owned());
            return;
        };
        self.chord.texts.note(item, &payload[1]);
        if !self.is_rs2p(conn) || self.chord.leeching {
            return;
        }
        // Only a seeding successor's items: the sender lies after us, and the
        // item after the sender (its arc, or one further on when it passes a
        // replica along). Anything else is not ours to keep.
        let sender =
            self.mesh.conns().get(&conn).filter(|c| !c.ext.leeching).and_then(|c| c.peer.as_ref()).map(|p| *p.value());
        let me = *self.mesh.id().value();
        let plausible = sender.is_some_and(|s| {
            crate::ring::distance(&me, &s) <= crate::ring::distance(&me, &item.1) && self.find(&item.1) != Owner::Local
        });
        if !plausible {
            self.mesh.record_error(
                Some(conn),
                "ignoring a replica from a peer that is not a seeding successor of it".to_owned(),
            );
            return;
        }
        // The key, checked, is kept with the copy (a promoted replica
        // keeps it) in the node's one allocation of it; without one, the
        // copy keeps the key it had.
        let key =
            payload.get(4).filter(|k| !k.is_empty() && item.0.hash(k) == item.1).map(|k| self.shared_key(k, false));
        let version = payload.get(5).and_then(|v| Version::from_bytes(v)).unwrap_or_default();
        let value = self.shared_value(key.as_ref(), version, payload[2].clone(), false);
        if !self.observe_version(version) {
            return;
        }
        let replicas = &mut self.chord.replicas;
        // An empty unversioned replica is the owner dropping a copy it
        // could not keep up to date (its store was full): always dropped.
        let drop = value.is_empty() && version.is_zero();
        if !drop && replicas.current_version(item.0, &item.1) > version {
            // An older copy arriving late (reordered refreshes): ours stands.
        } else if value.is_empty() {
            replicas.remove(item.0, &item.1);
        } else if (replicas.len(item.0) < self.mesh.config().max_items || replicas.contains(item.0, &item.1))
            && replicas.stored_bytes().saturating_add(replicas.added_cost(item.0, &item.1, &value))
                <= self.mesh.config().max_store_bytes
        {
            replicas.insert_keyed(item.0, &item.1, value.clone(), version, key.clone());
        } else {
            self.mesh.record_error(None, "replica store full: a replica not kept".to_owned());
        }
        if depth > 1 {
            if let Owner::Remote(p) = self.predecessor() {
                if p != conn && self.is_rs2p(p) {
                    let key = key.map(Bytes::from_owner);
                    self.send_replica_keyed(p, item, value, depth - 1, version, key);
                }
            }
        }
    }

    /// A lookup missed in a table we own: a replica of the item, if we hold
    /// one, becomes our copy (its owner is gone or has not handed it over).
    pub(crate) fn promote_replica(&mut self, item: ItemKey) -> Option<(Bytes, Version)> {
        let value = self.chord.replicas.get(item.0, &item.1)?.clone();
        let version = self.chord.replicas.version(item.0, &item.1).unwrap_or_default();
        if let Some(key) = self.chord.replicas.item_key(item.0, &item.1) {
            self.note_item_key(item, &key);
        }
        self.store_versioned(item, value.clone(), version);
        // Kept as a replica if the table had no room for it (or held a newer delete).
        if self.chord.data.contains(item.0, &item.1) {
            self.chord.replicas.remove(item.0, &item.1);
            self.local_entry(item)
        } else {
            self.forget_item_key(item);
            None
        }
    }

    /// Starts a walk over every replica we hold that moves those we now
    /// own into our tables (our arc grew, or the periodic pass): it runs
    /// [`PROMOTE_PER_STEP`] replicas a step ([`Node::promotion_step`]).
    pub(crate) fn start_promotion(&mut self) {
        self.chord.replica.promotion = Some(Promotion { walk: TableWalk::new(), promoted: 0 });
    }

    /// Whether a walk started by [`Node::start_promotion`] is still going.
    pub(crate) fn promoting(&self) -> bool {
        self.chord.replica.promotion.is_some()
    }

    /// The next step of the promotion walk: examines at most
    /// [`PROMOTE_PER_STEP`] replicas; returns how many the whole walk
    /// promoted once it ends, `None` while it goes on. Ownership is
    /// `find`'s (a sha512 hash is reduced to the ring first: its raw
    /// value lies outside the ring's range, so no range of raw hashes is
    /// an arc).
    pub(crate) fn promotion_step(&mut self) -> Option<u64> {
        let mut p = self.chord.replica.promotion.take()?;
        // One frame per promoted item at once could overflow the link to
        // our predecessor (a crashed neighbour's arc is a whole node's
        // share): they go out with a paced refresh of the whole arc instead.
        self.chord.replica.hold = true;
        let items = p.walk.step(&mut self.chord.replicas, PROMOTE_PER_STEP);
        let examined = items.len();
        for (m, key) in items {
            if self.find(&key) == Owner::Local
                && !self.chord.data.contains(m, &key)
                && self.promote_replica((m, key)).is_some()
            {
                p.promoted += 1;
            }
        }
        self.chord.replica.hold = false;
        let r = &mut self.chord.replica;
        r.most_promoted_step = r.most_promoted_step.max(examined);
        if !p.walk.done() {
            r.promotion = Some(p);
            return None;
        }
        if p.promoted > 0 {
            // Our predecessor gets them with a refresh of the whole arc.
            r.pred = None;
        }
        Some(p.promoted)
    }

    /// Replicas we hold of items we now own (a promotion walk moves them
    /// into our tables: none are left once it has run). Examines every
    /// replica: for tests and diagnostics.
    pub fn owned_replica_count(&self) -> usize {
        HashMethod::ALL
            .into_iter()
            .map(|m| self.chord.replicas.keys(m).into_iter().filter(|k| self.find(k) == Owner::Local).count())
            .sum()
    }

    /// The most items one step of replica work examined so far: a refresh
    /// step, then a promotion step.
    pub fn replica_step_most(&self) -> (usize, usize) {
        (self.chord.replica.most_examined, self.chord.replica.most_promoted_step)
    }

    /// Items sent to our predecessor by replica refreshes so far.
    pub fn replica_refreshed(&self) -> u64 {
        self.chord.replica.refreshed
    }

    /// Our rs2p predecessor, to which our replicas go.
    fn replica_target(&self) -> Option<(PeerId, ConnId)> {
        match self.predecessor() {
            Owner::Remote(c) if self.is_rs2p(c) => self.peer_of(c).cloned().map(|p| (p, c)),
            _ => None,
        }
    }

    /// When replication next has timer work: at once when our predecessor
    /// changed, the periodic refresh, or (`paced`) the next step of one in
    /// progress.
    pub(crate) fn replica_due(&self, paced: Time) -> Option<Time> {
        if self.chord.leeching || self.mesh.config().replica_depth == 0 {
            return None;
        }
        let r = &self.chord.replica;
        if r.next_refresh == 0 || r.checked != Some(self.ring_version()) {
            return Some(self.mesh.now());
        }
        Some(if r.refresh.is_some() { paced.min(r.next_refresh) } else { r.next_refresh })
    }

    /// Starts a refresh when our predecessor changed or the period came,
    /// and sends the next items of one in progress (when `step`: one batch
    /// per pace of [`super::node::PACE_MS`]).
    pub(crate) fn replica_tick(&mut self, step: bool) {
        if self.chord.leeching || self.mesh.config().replica_depth == 0 {
            return;
        }
        let now = self.mesh.now();
        let version = self.ring_version();
        let r = &mut self.chord.replica;
        // Our predecessor can only have changed if the ring version moved:
        // it is looked up (a pass over the links) only then, or when the
        // refresh is due.
        let moved = r.checked != Some(version);
        r.checked = Some(version);
        if r.next_refresh == 0 {
            let first = now.saturating_add(self.pass_period(REFRESH_SALT));
            self.chord.replica.next_refresh = first;
        }
        let r = &self.chord.replica;
        let pred = if moved || now >= r.next_refresh { self.replica_target() } else { None };
        let r = &mut self.chord.replica;
        let changed = (moved || now >= r.next_refresh) && pred.as_ref().map(|(p, _)| p) != r.pred.as_ref();
        if changed || now >= r.next_refresh {
            let period = self.pass_period(REFRESH_SALT);
            let r = &mut self.chord.replica;
            r.pred = pred.as_ref().map(|(p, _)| p.clone());
            r.next_refresh = now.saturating_add(period);
            r.refresh = pred.map(|(_, to)| Refresh { walk: TableWalk::new(), to });
        }
        if !step {
            return;
        }
        let Some(mut refresh) = self.chord.replica.refresh.take() else {
            return;
        };
        let depth = self.mesh.config().replica_depth.min(MAX_REPLICA_DEPTH);
        let items = refresh.walk.step(&mut self.chord.data, REFRESH_PER_TICK);
        let examined = items.len();
        for item in items {
            if self.find(&item.1) != Owner::Local {
                continue;
            }
            if let Some((value, version)) = self.local_entry(item) {
                self.send_replica(refresh.to, item, value, depth, version);
                self.chord.replica.refreshed += 1;
            }
        }
        let r = &mut self.chord.replica;
        r.most_examined = r.most_examined.max(examined);
        if !refresh.walk.done() && self.mesh.conns().contains_key(&refresh.to) {
            self.chord.replica.refresh = Some(refresh);
        }
    }

    /// [`Config::anti_entropy_ms`](crate::core::Config::anti_entropy_ms)
    /// give or take a quarter, drawn from the node's seed, its id and the
    /// time: nodes started together would otherwise run their periodic
    /// passes together ever after.
    pub(crate) fn pass_period(&self, salt: u64) -> u64 {
        use crate::core::mix64;
        let base = self.mesh.config().anti_entropy_ms;
        let span = base / 2;
        if span == 0 {
            return base;
        }
        let id = self.mesh.id().value().as_limbs()[0];
        let draw = mix64(self.mesh.config().seed ^ salt ^ mix64(id ^ mix64(self.mesh.now())));
        base - base / 4 + draw % span
    }

    /// Replicas held for successors.
    pub fn replica_count(&self) -> usize {
        self.chord.replicas.total()
    }
}
