//! Sets and deletes announced to rs2p peers in batches (`0x2E news`).
//!
//! py2p announces each new key with a notify broadcast that every node
//! relays to all its peers: in a ring of n fully linked nodes, about n²
//! frames per set, each hashed (its sha384 id), decoded and checked. Between
//! rs2p peers the key list travels instead in batches (docs/PROTOCOL.md
//! §16.21):
//!
//! - the keys set or deleted here are gathered for at most [`NEWS_FLUSH_MS`]
//!   (or [`NEWS_MAX_KEYS`] keys, [`NEWS_MAX_BYTES`] bytes, or until the
//!   second of their date changes), then go in one `news` frame to every
//!   rs2p peer; the deadline is reported by [`Node::poll_timeout`], there is
//!   no clock here;
//! - a batch lists the nodes it was sent to (8-byte digests of their ids):
//!   a node relays it only to its rs2p peers not listed, and adds those. In
//!   a fully linked ring nobody relays; in a sparse one each batch follows a
//!   spanning tree, more or less. Duplicates (two relays racing) are dropped
//!   by a bounded memory of batch ids ([`MAX_NEWS_SEEN`]);
//! - py2p peers still get py2p's notify broadcast per key, exactly as the
//!   flood would bring it: a batch carries its origin's id and date, so any
//!   rs2p node can rebuild the origin's broadcast (same sender, date,
//!   payload, so the same message id) and hand it to its py2p peers once.
//!   Deletes never go to py2p (it drops the link on a delete-notify, D1).

use bytes::Bytes;

use crate::chord::Node;
use crate::core::{ConnId, Event, PeerId, SeededState, Time};
use crate::mesh::RecentIds;
use crate::wire::{flags, Message};

/// Verb of a batch of sets and deletes (rs2p → rs2p).
pub(crate) const NEWS: &[u8] = b"news";

/// The longest a set or delete waits here before its batch goes out.
pub const NEWS_FLUSH_MS: Time = 5;

/// Keys in one batch at most: a batch this full goes out at once.
pub const NEWS_MAX_KEYS: usize = 256;

/// Key bytes in one batch at most: a batch this full goes out at once.
pub const NEWS_MAX_BYTES: usize = 64 * 1024;

/// Batch ids remembered to drop duplicates (oldest forgotten first). A batch
/// is accepted only while its date is within the broadcast window, so this
/// many batches in that window (about 130 a second) are told apart.
pub const MAX_NEWS_SEEN: usize = 8_192;

/// Nodes listed in a batch as already sent it, at most: past this, the
/// relays' targets are not listed (duplicates, dropped, rather than misses).
pub const MAX_NEWS_VISITED: usize = 256;

/// Fixed packets before a batch's keys: sub-flag, verb, origin, date, id,
/// visited, count of sets.
const HEAD: usize = 7;

/// A stable 64-bit digest of a node id (FNV-1a): how a batch lists the
/// nodes it reached. Not keyed, as every node must compute the same one; a
/// collision only makes one node skip one relay target.
fn node_digest(id: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The batch being gathered, and the ids of batches seen.
#[derive(Debug)]
pub(crate) struct NewsState {
    /// Keys in the order set (true) or deleted (false); a key appears once,
    /// with its last operation.
    pending: Vec<(Bytes, bool)>,
    pending_bytes: usize,
    /// The date (wall-clock seconds) of the batch: that of its first key.
    pending_secs: u64,
    /// When (monotonic ms) its first key came: it goes out by then + [`NEWS_FLUSH_MS`].
    pending_since: Option<Time>,
    /// The next batch's number.
    seq: u64,
    /// Keys the batch ids drawn from `seq` (secret, from the node's seed):
    /// a peer that saw one of our batches cannot name our next ones and
    /// have them dropped as seen.
    ids: SeededState,
    /// (origin digest, batch id) of batches seen, kept as broadcast ids
    /// are, bounded by [`MAX_NEWS_SEEN`].
    seen: RecentIds,
}

impl NewsState {
    pub(crate) fn with_seed(seed: u64) -> Self {
        NewsState {
            pending: Vec::new(),
            pending_bytes: 0,
            pending_secs: 0,
            pending_since: None,
            seq: crate::core::mix64(seed ^ 0x6e65_7773),
            ids: SeededState::new(seed, 0x6e65_7773_0000_0002),
            seen: RecentIds::new(MAX_NEWS_SEEN, seed ^ 0x6e65_7773_0000_0001),
        }
    }

    /// Records a batch id, remembered until `until` (seconds: see
    /// [`crate::mesh::Mesh::remembered_until`]); false if it was seen
    /// already. Ids past their time are forgotten first (`now_secs`).
    fn first_sight(&mut self, id: (u64, u64), until: u64, now_secs: u64) -> bool {
        if self.seen.next_expiry().is_some_and(|t| t <= now_secs) {
            self.seen.prune(now_secs);
        }
        self.seen.insert_fingerprint((u128::from(id.0) << 64) | u128::from(id.1), until)
    }

    /// Batch ids held.
    #[cfg(test)]
    pub(crate) fn seen_len(&self) -> usize {
        self.seen.len()
    }
}

impl Node {
    /// Announces a set (`set`) or delete of `key` made here: py2p peers get
    /// py2p's notify broadcast of a set now; rs2p peers get it in the next batch.
    pub(crate) fn announce_key(&mut self, key: Bytes, set: bool) {
        let secs = self.mesh.now_secs();
        if set {
            let msg = Message {
                msg_type: flags::BROADCAST,
                sender: self.mesh.id().bytes(),
                time: secs,
                payload: vec![Bytes::from_static(&[flags::NOTIFY]), key.clone()],
            };
            self.mesh.broadcast_to_py2p(&msg);
        }
        if !self.mesh.has_rs2p_peer() {
            return;
        }
        let n = &mut self.chord.news;
        if n.pending_since.is_some() && n.pending_secs != secs {
            // One date per batch: py2p peers further on get broadcasts
            // rebuilt with it, which must match the ones sent above.
            self.flush_news();
        }
        let n = &mut self.chord.news;
        if let Some(i) = n.pending.iter().position(|(k, _)| *k == key) {
            if n.pending[i].1 && !set {
                // A delete of a key whose set is pending: the set went to
                // our py2p peers already, so our rs2p peers must get it
                // first too (then a py2p relay of that set reaching them
                // is a broadcast they have seen, not a set after the
                // delete that would bring the key back).
                self.flush_news();
            } else {
                let (k, _) = n.pending.remove(i);
                n.pending_bytes -= k.len();
            }
        }
        let n = &mut self.chord.news;
        if n.pending_since.is_none() {
            n.pending_since = Some(self.mesh.now());
            n.pending_secs = secs;
        }
        n.pending_bytes += key.len();
        n.pending.push((key, set));
        if n.pending.len() >= NEWS_MAX_KEYS || n.pending_bytes >= NEWS_MAX_BYTES {
            self.flush_news();
        }
    }

    /// A notify broadcast (from py2p: rs2p nodes relay add-notifies to py2p
    /// peers only) brought a key new here: our rs2p peers get it as a
    /// one-key batch from the broadcast's sender and date, so that they can
    /// rebuild the broadcast for their own py2p peers. Its id is derived
    /// from the broadcast (its date and key), so that rs2p nodes turning
    /// the same broadcast into a batch make the same one, and it spreads once.
    pub(crate) fn notify_to_news(&mut self, conn: ConnId, msg: &Message) {
        if !self.mesh.has_rs2p_peer() {
            return;
        }
        let key = &msg.payload[1];
        let origin = node_digest(&msg.sender);
        let id = crate::core::mix64(node_digest(key) ^ crate::core::mix64(msg.time ^ 0x6e6f_7469_6679));
        let (until, now) = (self.mesh.remembered_until(msg.time), self.mesh.now_secs());
        if !self.chord.news.first_sight((origin, id), until, now) {
            return;
        }
        let payload = vec![
            Bytes::from_static(&[flags::RS2P_KEYLIST]),
            Bytes::from_static(NEWS),
            msg.sender.clone(),
            Bytes::from(msg.time.to_string()),
            Bytes::copy_from_slice(&id.to_be_bytes()),
            Bytes::new(),
            Bytes::from_static(b"1"),
            key.clone(),
        ];
        let me = node_digest(self.mesh.id().as_str().as_bytes());
        self.relay_news(Some(conn), vec![me], payload);
    }

    /// When the batch being gathered is due to go out.
    pub(crate) fn news_due(&self) -> Option<Time> {
        self.chord.news.pending_since.map(|t| t.saturating_add(NEWS_FLUSH_MS))
    }

    /// On a tick: sends the batch if it is due.
    pub(crate) fn news_tick(&mut self) {
        if self.news_due().is_some_and(|due| due <= self.mesh.now()) {
            self.flush_news();
        }
    }

    /// Sends the sets and deletes gathered for rs2p peers, and the replica
    /// writes, now, without waiting for their deadline (a driver need not
    /// call it: the deadline is in [`Node::poll_timeout`]). The callgrind
    /// workload calls it after each set, so that a set is counted with the
    /// frames that announce and replicate it.
    pub fn flush_announcements(&mut self) {
        self.flush_news();
        self.flush_replicas();
    }

    /// Sends the batch gathered to every rs2p peer.
    pub(crate) fn flush_news(&mut self) {
        let n = &mut self.chord.news;
        if n.pending_since.take().is_none() {
            return;
        }
        let pending = std::mem::take(&mut n.pending);
        n.pending_bytes = 0;
        let id = {
            use std::hash::BuildHasher;
            n.ids.hash_one(n.seq)
        };
        n.seq = n.seq.wrapping_add(1);
        let secs = n.pending_secs;
        let me = self.mesh.id().bytes();
        let sets: Vec<Bytes> = pending.iter().filter(|(_, s)| *s).map(|(k, _)| k.clone()).collect();
        let dels = pending.into_iter().filter(|(_, s)| !*s).map(|(k, _)| k);
        let mut payload = Vec::with_capacity(HEAD + sets.len());
        payload.push(Bytes::from_static(&[flags::RS2P_KEYLIST]));
        payload.push(Bytes::from_static(NEWS));
        payload.push(me.clone());
        payload.push(Bytes::from(secs.to_string()));
        payload.push(Bytes::copy_from_slice(&id.to_be_bytes()));
        payload.push(Bytes::new());
        payload.push(Bytes::from(sets.len().to_string()));
        payload.extend(sets);
        payload.extend(dels);
        let (until, now) = (self.mesh.remembered_until(secs), self.mesh.now_secs());
        self.chord.news.first_sight((node_digest(&me), id), until, now);
        self.relay_news(None, vec![node_digest(&me)], payload);
    }

    /// Sends a batch to every rs2p peer but `from` whose digest is not in
    /// `visited`, listing them in the copy sent.
    fn relay_news(&mut self, from: Option<ConnId>, mut visited: Vec<u64>, mut payload: Vec<Bytes>) {
        let targets: Vec<(ConnId, u64)> = self
            .mesh
            .routing()
            .iter()
            .filter(|(_, c)| Some(**c) != from && self.mesh.conns().get(c).is_some_and(|c| c.rs2p))
            .map(|(peer, c)| (*c, node_digest(peer.as_str().as_bytes())))
            .filter(|(_, d)| !visited.contains(d))
            .collect();
        for (_, d) in &targets {
            if visited.len() < MAX_NEWS_VISITED {
                visited.push(*d);
            }
        }
        if targets.is_empty() {
            return;
        }
        let mut list = Vec::with_capacity(visited.len() * 8);
        for d in &visited {
            list.extend_from_slice(&d.to_be_bytes());
        }
        payload[5] = Bytes::from(list);
        for (conn, _) in targets {
            self.mesh.counters_mut().key_batches_out += 1;
            self.mesh.send_on(conn, flags::WHISPER, payload.clone());
        }
    }

    /// A peer's batch: the keys are applied as the broadcasts they stand
    /// for, our py2p peers get the sets as py2p's broadcasts, and the batch
    /// goes on to our rs2p peers it has not reached.
    pub(crate) fn handle_news(&mut self, conn: ConnId, payload: &[Bytes]) {
        let parsed = (payload.len() >= HEAD)
            .then(|| {
                let secs: u64 = std::str::from_utf8(&payload[3]).ok()?.parse().ok()?;
                let id = u64::from_be_bytes(payload[4].as_ref().try_into().ok()?);
                let visited = &payload[5];
                if !visited.len().is_multiple_of(8) || visited.len() / 8 > MAX_NEWS_VISITED {
                    return None;
                }
                let sets: usize = std::str::from_utf8(&payload[6]).ok()?.parse().ok()?;
                // No more keys than a batch of ours holds: each set key
                // may become a frame to every py2p peer.
                let keys = payload.len() - HEAD;
                (sets <= keys && keys <= NEWS_MAX_KEYS).then_some((secs, id, sets))
            })
            .flatten();
        let Some((secs, id, sets)) = parsed else {
            self.mesh.record_error(Some(conn), "ignoring a malformed key-list batch".to_owned());
            return;
        };
        self.mesh.counters_mut().key_batches_in += 1;
        if !self.mesh.broadcast_date_ok(secs) {
            tracing::debug!(node = %self.mesh.id().short(), conn = conn.0, "dropping a key-list batch out of the window");
            return;
        }
        let origin = &payload[2];
        let (until, now) = (self.mesh.remembered_until(secs), self.mesh.now_secs());
        if !self.chord.news.first_sight((node_digest(origin), id), until, now) {
            return;
        }
        // Our py2p peers get each set as the origin's own broadcast.
        let to_py2p = self.mesh.has_py2p_peer() && PeerId::parse(origin).is_some();
        for key in &payload[HEAD..HEAD + sets] {
            self.note_set(key);
            self.add_key(key.clone());
            if to_py2p {
                let msg = Message {
                    msg_type: flags::BROADCAST,
                    sender: origin.clone(),
                    time: secs,
                    payload: vec![Bytes::from_static(&[flags::NOTIFY]), key.clone()],
                };
                self.mesh.broadcast_to_py2p(&msg);
            }
        }
        for key in &payload[HEAD + sets..] {
            let known = self.chord.keys.remove(key);
            self.tombstone(key);
            if known {
                self.mesh.emit(Event::KeyDeleted(key.clone()));
            }
        }
        let visited: Vec<u64> =
            payload[5].chunks_exact(8).map(|c| u64::from_be_bytes(c.try_into().unwrap_or_default())).collect();
        self.relay_news(Some(conn), visited, payload.to_vec());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_ids_are_forgotten_once_their_date_is_out_of_the_window() {
        let mut n = NewsState::with_seed(3);
        // Remembered until 1,000 and 1,010 (the window: 60 s past that).
        assert!(n.first_sight((1, 1), 1_000, 1_000));
        assert!(n.first_sight((1, 2), 1_010, 1_000));
        assert!(!n.first_sight((1, 1), 1_000, 1_050), "a duplicate within the window is dropped");
        assert_eq!(n.seen_len(), 2);
        // The window has moved past the first batch's date: its id goes.
        assert!(n.first_sight((2, 1), 1_100, 1_065));
        assert_eq!(n.seen_len(), 2);
        // Past the bound, the oldest seen go first.
        for i in 0..MAX_NEWS_SEEN as u64 + 10 {
            n.first_sight((3, i), 1_100, 1_065);
        }
        assert_eq!(n.seen_len(), MAX_NEWS_SEEN);
    }
}
