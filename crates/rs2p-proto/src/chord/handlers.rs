//! The chord message handlers: meta, notify, store, retrieve, retrieved.

use bytes::Bytes;

use super::get::{parse_item, Waiter};
use super::{Full, Limits, Owner};
use crate::chord::Node;
use crate::core::{Conflict, ConnId, Event, Time, Version};
use crate::wire::{flags, Message};

/// A new item is refused once the store holds this fraction less than
/// `Config::max_store_bytes` (one eighth): the rest is headroom for
/// overwrites of items held, so that a full store still takes new values of
/// what it holds.
const OVERWRITE_HEADROOM_DIV: usize = 8;

/// The work a peer's turn to seeding sets off (a scan of the whole store,
/// key-list requests) runs at most once per this long per connection.
pub(crate) const META_WORK_MS: u64 = 5_000;

/// After our ring neighbours change, our store is scanned for items
/// another node now owns at most this often (a scan visits every item).
const RESCAN_MS: u64 = 5_000;

/// How often expired item tombstones are looked for (a scan of them all).
const TOMB_PRUNE_MS: u64 = 60_000;

impl Node {
    /// §6.2: a peer says whether it seeds.
    pub(crate) fn handle_meta(&mut self, conn: ConnId, msg: &Message) {
        let Some(leeching) = parse_meta(&msg.payload[1]) else {
            self.mesh.record_error(Some(conn), "ignoring chord meta with a non-integer value".to_owned());
            return;
        };
        let Some(c) = self.mesh.conns().get(&conn) else {
            return;
        };
        if c.ext.leeching == leeching {
            return;
        }
        self.send_meta(conn);
        if let Some(c) = self.mesh.ext_mut(&conn) {
            c.leeching = leeching;
        }
        self.chord.ring_changes += 1;
        if !leeching {
            self.seeding_peer_work(conn);
        }
        if self.mesh.outgoing_count() > self.mesh.config().max_outgoing + self.structural_outgoing() {
            self.drop_least_efficient();
        }
    }

    /// What a peer turning to seeding sets off: our peer list, a scan of the
    /// store for items it is nearer to, and a request for key lists. A peer
    /// flipping its meta flag must not make us rescan on every flip: this
    /// runs at most once per [`META_WORK_MS`] per connection, and a flip
    /// within that window is dealt with when it ends, if the peer still seeds.
    fn seeding_peer_work(&mut self, conn: ConnId) {
        let now = self.mesh.now();
        let Some(c) = self.mesh.ext_mut(&conn) else {
            return;
        };
        if c.meta_work_at.is_some_and(|at| now.saturating_sub(at) < META_WORK_MS) {
            c.meta_work_due = true;
            self.chord.meta_work_maybe = true;
            return;
        }
        c.meta_work_at = Some(now);
        c.meta_work_due = false;
        if !self.chord.leeching {
            self.offer_peers(conn);
            // A scan that ran this instant with these neighbours saw this
            // peer already (a rescan and a deferred flip due together).
            let scanned_now = self.chord.last_rescan == now
                && self.chord.handoff_stats.scans > 0
                && self.chord.scanned_with == (self.predecessor(), self.successor());
            if !scanned_now {
                self.handoff_to_closer_peers();
            }
            if self.seeding_peers().take(2).count() == 1 {
                // Our first seeding peer: find our place on the ring.
                self.find_predecessor_soon();
            }
        }
        self.ask_for_keys();
    }

    /// Runs the seeding-peer work deferred by [`Node::seeding_peer_work`].
    fn deferred_seeding_peer_work(&mut self) {
        if !self.chord.meta_work_maybe {
            return;
        }
        let now = self.mesh.now();
        let due: Vec<ConnId> = self
            .mesh
            .conns()
            .values()
            .filter(|c| {
                c.ext.meta_work_due && c.ext.meta_work_at.is_none_or(|at| now.saturating_sub(at) >= META_WORK_MS)
            })
            .map(|c| c.id)
            .collect();
        for conn in due {
            let seeding = self.mesh.ext_mut(&conn).map(|c| {
                c.meta_work_due = false;
                !c.leeching
            });
            if seeding == Some(true) {
                self.seeding_peer_work(conn);
            }
        }
        self.chord.meta_work_maybe = self.mesh.conns().values().any(|c| c.ext.meta_work_due);
    }

    /// Sends our meta. py2p's `_send_meta` follows it with one notify per
    /// known key; rs2p streams the key list instead, once per connection, when
    /// the peer's handshake is in (see [`super::keystream`]).
    pub(crate) fn send_meta(&mut self, conn: ConnId) {
        let flag = if self.chord.leeching { "1" } else { "0" };
        self.mesh.send_on(
            conn,
            flags::WHISPER,
            vec![Bytes::from_static(&[flags::HANDSHAKE]), Bytes::from_static(flag.as_bytes())],
        );
    }

    /// §6.10: the network-wide key list.
    pub(crate) fn handle_notify(&mut self, conn: ConnId, msg: &Message) {
        let key = msg.payload[1].clone();
        self.mesh.counters_mut().notifies_in += 1;
        let now = self.mesh.now();
        if let Some(c) = self.mesh.ext_mut(&conn) {
            c.last_notify = now;
        }
        if msg.payload.len() >= 3 {
            // A delete-notify (py2p crashes on these, D1; we handle them).
            self.chord.keys.remove(&key);
            self.tombstone(&key);
            self.mesh.emit(Event::KeyDeleted(key));
            return;
        }
        if msg.msg_type == flags::WHISPER {
            // A list re-announced (py2p after every meta, D10): no news of a
            // set, so neither a tombstone nor a known set changes.
            if self.chord.keys.is_deleted(&key) {
                tracing::debug!(node = %self.mesh.id().short(), conn = conn.0, "ignoring stale notify for a deleted key");
                return;
            }
            self.add_key(key);
            return;
        }
        self.note_set(&key);
        // New here (even if our key list is full and cannot record it): our
        // rs2p peers get it in a batch, not as this broadcast.
        let known = self.chord.keys.contains(&key);
        self.add_key(key);
        if !known {
            self.notify_to_news(conn, msg);
        }
    }

    pub(crate) fn key_limits(&self) -> Limits {
        Limits { max_keys: self.mesh.config().max_keys, max_bytes: self.mesh.config().max_key_bytes }
    }

    /// Records a key in the network-wide list; true if it is new.
    pub(crate) fn add_key(&mut self, key: Bytes) -> bool {
        let (limits, data, replicas) = (self.key_limits(), &self.chord.data, &self.chord.replicas);
        let share = |k: &[u8]| data.held_key(k).or_else(|| replicas.held_key(k)).cloned().unwrap_or_else(|| k.into());
        match self.chord.keys.add_with(&key, limits, share) {
            Ok(true) => {
                self.mesh.emit(Event::KeyAdded(key));
                true
            }
            Ok(false) => false,
            Err(full) => {
                let why = match full {
                    Full::Count => format!("{} keys", self.mesh.config().max_keys),
                    Full::Bytes => format!("{} bytes", self.mesh.config().max_key_bytes),
                };
                self.mesh.record_error(None, format!("key list full ({why}): key not recorded"));
                false
            }
        }
    }

    pub(crate) fn tombstone(&mut self, key: &[u8]) {
        let limits = self.key_limits();
        self.chord.keys.tombstone(key, self.wall_now(), limits);
    }

    /// `key` was set (a local set, or an add-notify broadcast): its
    /// tombstone is cleared, and the set dated for peers' tombstones.
    pub(crate) fn note_set(&mut self, key: &[u8]) {
        let now = self.wall_now();
        self.chord.keys.note_set(key, now);
    }

    /// An rs2p peer's tombstone (§16.11): `key` was deleted `age` ms ago.
    pub(crate) fn receive_tombstone(&mut self, key: &Bytes, age: Time) {
        let (limits, now) = (self.key_limits(), self.wall_now());
        if self.chord.keys.tombstone_received(key, age, now, limits) {
            self.mesh.emit(Event::KeyDeleted(key.clone()));
        }
    }

    /// §6.7: store (forward to a closer node, else keep; empty deletes).
    pub(crate) fn handle_store(&mut self, conn: ConnId, msg: &Message) {
        self.mesh.counters_mut().stores_in += 1;
        let p = &msg.payload;
        let Some(item) = parse_item(&p[1], &p[2]) else {
            self.mesh.record_error(Some(conn), "ignoring store with an unknown table or a bad key".to_owned());
            return;
        };
        self.chord.texts.note(item, &p[2]);
        // An rs2p peer sends the key beside the hash (§16.13); one that does
        // not hash to the item is ignored, the store is not.
        let rs2p = self.is_rs2p(conn);
        let key = p.get(4).filter(|k| rs2p && !k.is_empty() && item.0.hash(k) == item.1).cloned();
        // ... and the write's version (§16.17); py2p's stores have none.
        let version = match p.get(5).filter(|_| rs2p) {
            Some(v) => match Version::from_bytes(v) {
                Some(v) => v,
                None => {
                    self.mesh.record_error(Some(conn), "ignoring store with a malformed version".to_owned());
                    return;
                }
            },
            None => Version::ZERO,
        };
        if !self.observe_version(version) {
            return;
        }
        self.route_store_keyed(item, p[3].clone(), Some(conn), key, version);
    }

    /// Routes a store: to the owner, or into the local table.
    ///
    /// A delete bound for a py2p peer is preceded by a retrieve and sent only
    /// if the answer shows the item is held: py2p drops the link on a delete
    /// of an item it does not hold (D9). A newer value for the item cancels
    /// such a delete still waiting for its answer.
    ///
    /// With the item's key, when it is known, rs2p owners keep the key
    /// beside the item (`keys()` without the flooded list walks them).
    pub(crate) fn route_store_keyed(
        &mut self,
        item: super::ItemKey,
        value: Bytes,
        from: Option<ConnId>,
        key: Option<Bytes>,
        version: Version,
    ) {
        if !value.is_empty() {
            self.cancel_checked_deletes(item);
        }
        match self.find(&item.1) {
            Owner::Remote(c) if Some(c) != from => {
                if value.is_empty() && !self.is_rs2p(c) {
                    self.route_retrieve(item, Waiter::DeleteIfHeld(c), None);
                } else {
                    self.send_store_keyed(c, item, value, key, version);
                }
            }
            _ => {
                // Noted first, so that the replica of the item carries it.
                if let Some(key) = key.as_ref().filter(|_| !value.is_empty()) {
                    self.note_item_key(item, key);
                }
                self.store_versioned(item, value, version);
                if !self.chord.data.contains(item.0, &item.1) {
                    self.forget_item_key(item);
                }
            }
        }
    }

    /// Sends a store; to an rs2p peer with the item's key if we know it,
    /// and its version.
    pub(crate) fn send_store(&mut self, conn: ConnId, item: super::ItemKey, value: Bytes, version: Version) {
        let key = self.item_key(&item);
        self.send_store_keyed(conn, item, value, key, version);
    }

    fn send_store_keyed(
        &mut self,
        conn: ConnId,
        item: super::ItemKey,
        value: Bytes,
        key: Option<Bytes>,
        version: Version,
    ) {
        let mut payload = vec![
            Bytes::from_static(&[flags::STORE]),
            Bytes::from_static(item.0.name().as_bytes()),
            self.chord.texts.text(item),
            value,
        ];
        // py2p expects exactly four packets; an rs2p peer gets the key
        // (empty when unknown) and the version (§16.13, §16.17).
        if self.is_rs2p(conn) {
            payload.push(key.unwrap_or_default());
            if !version.is_zero() {
                payload.push(Bytes::copy_from_slice(&version.to_bytes()));
            }
        }
        self.mesh.send_on(conn, flags::WHISPER, payload);
        // Stores are not answered: a quiet finger is checked now.
        self.mesh.doubt_if_quiet(conn);
    }

    /// Writes the local table (an empty value deletes; deleting a missing item is a no-op).
    ///
    /// A write refused for lack of room must not leave the table answering
    /// as if it had not happened: an old value would be read as current, and
    /// "missing" could make a get say "not found" for a key that exists. So
    /// the item's old value is dropped and the item is marked unsure: until
    /// it is written again, this table answers it as unavailable (a peer's
    /// retrieve gets no answer), which a get reports as such.
    /// Writes the local table if `version` is not older than what the table
    /// knows of the item (its value's version or its tombstone's): the
    /// latest write wins, and an empty value leaves a tombstone. A write
    /// without a version (a py2p store) is dated here, as it lands. True
    /// if the write was applied.
    pub(crate) fn store_versioned(&mut self, item: super::ItemKey, value: Bytes, version: Version) -> bool {
        let version = if version.is_zero() { self.next_version() } else { version };
        let current = self.chord.data.current_version(item.0, &item.1);
        if version < current {
            self.mesh.counters_mut().conflict(Conflict::StaleWrite);
            return false;
        }
        if !current.is_zero() && version > current {
            self.mesh.counters_mut().conflict(if value.is_empty() { Conflict::Delete } else { Conflict::NewerWrite });
        }
        // The bytes of a replica of the same write, if we hold one, are
        // kept once (`chord/shared_value.rs`).
        let value = self.shared_value(self.chord.data.staged_key(item.0, &item.1), version, value, true);
        let data = &mut self.chord.data;
        let exists = data.contains(item.0, &item.1);
        // New items stop short of the bound; overwrites may use the rest.
        let max = self.mesh.config().max_store_bytes;
        let bound = if exists { max } else { max - max / OVERWRITE_HEADROOM_DIV };
        let refused = if value.is_empty() {
            if !data.tombstone(item.0, &item.1, version, self.mesh.config().max_item_tombstones) {
                self.mesh.record_error(
                    None,
                    format!(
                        "item tombstones full ({}): a delete is not remembered",
                        self.mesh.config().max_item_tombstones
                    ),
                );
            }
            self.forget_item_key(item);
            None
        } else if data.len(item.0) >= self.mesh.config().max_items && !exists {
            Some(format!("table {} is full: item not stored", item.0))
        } else if data.stored_bytes_after(item.0, &item.1, &value) > bound
            && data.stored_bytes_after(item.0, &item.1, &value) > data.stored_bytes()
        {
            Some(format!(
                "store full ({} of {max} bytes held, values and items): a value of {} bytes not stored",
                data.stored_bytes(),
                value.len()
            ))
        } else {
            data.insert_versioned(item.0, &item.1, value.clone(), version);
            None
        };
        match refused {
            Some(why) => {
                self.chord.data.remove(item.0, &item.1);
                self.forget_item_key(item);
                self.mark_unsure(item);
                // Our predecessor's replica is as outdated as our old value.
                if exists && !self.chord.leeching && self.find(&item.1) == Owner::Local {
                    self.replicate(item, &Bytes::new(), Version::ZERO);
                }
                self.mesh.record_error(None, format!("{why}; the item reads as unavailable here until written again"));
                false
            }
            // A newer value supersedes any handoff in flight for the item.
            None => {
                if !self.chord.unsure.is_empty() {
                    self.chord.unsure.remove(&item);
                }
                self.drop_handoff(item);
                if !self.chord.leeching && self.find(&item.1) == Owner::Local {
                    self.replicate(item, &value, version);
                }
                true
            }
        }
    }

    /// Marks an item whose write was refused (see [`Node::store_local`]).
    fn mark_unsure(&mut self, item: super::ItemKey) {
        let unsure = &mut self.chord.unsure;
        if unsure.len() >= self.mesh.config().max_pending && !unsure.contains_key(&item) {
            // Any one goes (a scan for the oldest would cost a flood dearly).
            if let Some(some) = unsure.keys().next().copied() {
                unsure.remove(&some);
            }
        }
        unsure.insert(item, self.mesh.now());
    }

    /// §6.8: retrieve.
    pub(crate) fn handle_retrieve(&mut self, conn: ConnId, msg: &Message) {
        self.mesh.counters_mut().retrieves_in += 1;
        let p = &msg.payload;
        let Some(item) = parse_item(&p[1], &p[2]) else {
            self.mesh.record_error(Some(conn), "ignoring retrieve with an unknown table or a bad key".to_owned());
            return;
        };
        self.chord.texts.note(item, &p[2]);
        self.route_retrieve(item, Waiter::Remote(conn), Some(conn));
    }

    /// §6.8: retrieved; unsolicited answers are dropped.
    pub(crate) fn handle_retrieved(&mut self, conn: ConnId, msg: &Message) {
        let p = &msg.payload;
        let Some(item) = parse_item(&p[1], &p[2]) else {
            self.mesh.record_error(Some(conn), "ignoring retrieved with an unknown table or a bad key".to_owned());
            return;
        };
        // An rs2p owner adds the version of what it holds (§16.17). An
        // answer is what the owner holds, whatever its date: it is taken,
        // but a date too far ahead does not move our clock.
        let version = p.get(4).filter(|_| self.is_rs2p(conn)).and_then(|v| Version::from_bytes(v)).unwrap_or_default();
        let (wall, skew) = (self.wall_now(), self.mesh.config().max_clock_skew_ms);
        self.mesh.hlc_mut().observe(version.hlc, wall, skew);
        if !self.peek_answer(conn, item, &p[3], version) && !self.answer_pending(item, p[3].clone(), version) {
            tracing::debug!(node = %self.mesh.id().short(), conn = conn.0, "dropping an answer nobody asked for");
        }
    }

    /// When chord's own periodic work is next due: stabilisation, a store
    /// rescan, the seeding-peer work a meta deferred, the tombstone pruning.
    pub(crate) fn chord_periodic_due(&self) -> Option<Time> {
        let c = &self.chord;
        let now = self.mesh.now();
        // A round asks linked ring neighbours: a leeching or lone node has
        // none (a round when it ticks anyway still notices a change).
        let linked = !c.leeching && !self.mesh.routing().is_empty();
        let stabilize = (self.mesh.config().kind == crate::core::Kind::Chord && linked)
            .then(|| c.last_stabilize.saturating_add(c.stabilize_every + c.stabilize_jitter));
        let rescan = c.rescan_due.then(|| c.last_rescan.saturating_add(RESCAN_MS));
        let tombs = (c.data.tomb_count() > 0).then(|| c.last_tomb_prune.saturating_add(TOMB_PRUNE_MS));
        // No pass over the connections unless some meta work was deferred.
        let meta = c.meta_work_maybe.then(|| {
            self.mesh
                .conns()
                .values()
                .filter(|c| c.ext.meta_work_due)
                .map(|c| c.ext.meta_work_at.map_or(now, |at| at.saturating_add(META_WORK_MS)))
                .min()
        });
        let meta = meta.flatten();
        [stabilize, rescan, tombs, meta].into_iter().flatten().min()
    }

    /// Chord maintenance on each tick. Work in progress that advances by
    /// batches (a replica refresh, a repair scan) takes one step per
    /// [`super::node::PACE_MS`], however often the node is ticked.
    pub(crate) fn chord_tick(&mut self) {
        let step = self.mesh.now() >= self.chord.last_step.saturating_add(super::node::PACE_MS);
        if step {
            self.chord.last_step = self.mesh.now();
        }
        if self.mesh.config().kind == crate::core::Kind::Chord
            && self.mesh.now().saturating_sub(self.chord.last_stabilize)
                >= self.chord.stabilize_every + self.chord.stabilize_jitter
        {
            self.chord.last_stabilize = self.mesh.now();
            self.stabilize();
            // With fingers, a ring whose neighbours stay the same is asked
            // less and less often (up to STABILIZE_MAX_MS); any change of
            // neighbour brings it back to every second.
            let neighbours = (self.predecessor(), self.successor());
            self.chord.stabilize_every = if self.uses_fingers() && neighbours == self.chord.stabilize_seen {
                (self.chord.stabilize_every * 2).min(super::STABILIZE_MAX_MS)
            } else {
                super::STABILIZE_MS
            };
            self.chord.stabilize_jitter = self.chord.fingers.next_rand() % (self.chord.stabilize_every / 8 + 1);
            if neighbours != self.chord.stabilize_seen && neighbours != self.chord.scanned_with && !self.chord.leeching
            {
                // Our arc changed (a neighbour came or went: a merge, a
                // rejoin) since the last scan: items we hold may now be
                // another's.
                self.chord.rescan_due = true;
            }
            self.chord.stabilize_seen = neighbours;
        }
        if self.chord.rescan_due && self.mesh.now().saturating_sub(self.chord.last_rescan) >= RESCAN_MS {
            self.handoff_to_closer_peers();
        }
        self.deferred_seeding_peer_work();
        self.news_tick();
        self.replica_batch_tick();
        self.get_tick();
        self.handoff_tick();
        self.sync_tick();
        self.repair_tick(step);
        self.replica_tick(step);
        self.finger_tick();
        self.walk_tick();
        self.rejoin_tick();
        if self.chord.keys.tombstone_count() > 1024 {
            self.chord.keys.prune(self.wall_now());
        }
        if self.chord.data.tomb_count() > 0
            && self.mesh.now().saturating_sub(self.chord.last_tomb_prune) >= TOMB_PRUNE_MS
        {
            self.chord.last_tomb_prune = self.mesh.now();
            let before = self.wall_now().saturating_sub(self.mesh.config().tombstone_horizon_ms);
            self.chord.data.prune_tombs(before);
        }
    }

    /// Chord cleanup when a connection is gone.
    pub(crate) fn chord_conn_lost(&mut self, conn: ConnId, keys_in: super::KeysIn) {
        self.get_conn_lost(conn);
        self.peeks_conn_lost(conn);
        self.handoff_conn_lost(conn);
        self.sync_conn_lost(conn);
        self.keys_conn_lost(conn, keys_in);
    }

    /// A seeding peer's link failed or was closed by the peer while it
    /// still seeded: its items may be gone with it.
    pub(crate) fn seeder_vanished(&mut self) {
        if !self.chord.leeching {
            self.chord.lost_seeder = true;
            self.chord.fallback_until = self.mesh.now().saturating_add(super::FALLBACK_MS);
            self.request_repair(self.mesh.config().repair_delay_ms);
        }
    }
}

/// py2p reads the meta value with Python's `int()`: surrounding spaces, a sign
/// and leading zeros are accepted; non-zero means leeching.
fn parse_meta(packet: &[u8]) -> Option<bool> {
    let text = std::str::from_utf8(packet).ok()?.trim();
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit() || b == b'_') || digits.starts_with('_') {
        return None;
    }
    Some(digits.bytes().any(|b| (b'1'..=b'9').contains(&b)))
}

#[cfg(test)]
mod tests {
    use super::parse_meta;

    #[test]
    fn meta_is_parsed_like_python_int() {
        assert_eq!(parse_meta(b"0"), Some(false));
        assert_eq!(parse_meta(b"1"), Some(true));
        assert_eq!(parse_meta(b" +01 "), Some(true));
        assert_eq!(parse_meta(b"-0"), Some(false));
        assert_eq!(parse_meta(b"x"), None);
        assert_eq!(parse_meta(b""), None);
    }
}
