//! Sending and receiving the network-wide key list, whatever its size.
//!
//! py2p pushes its whole key list, one notify frame per key, to every peer on
//! every meta exchange. rs2p streams it instead, from a cursor into the sorted
//! list ([`super::KeyList::after`]), only as fast as the driver says the
//! connection drains ([`Room`]), so the list costs O(1) memory per connection
//! and never fills a write queue:
//!
//! - **to py2p peers** the list is pushed once per connection, after the
//!   handshake, as py2p expects: one notify per key, paced by the driver;
//! - **between rs2p peers** it is pulled: a node that wants the list (it
//!   seeds, or its user asked for `keys()`) sends `want` to one seeding rs2p
//!   peer, which answers with `batch` frames of many keys and a final `end`
//!   (the [`flags::RS2P_KEYLIST`] extension; an `end` marked `partial` comes
//!   from a peer still fetching its own list, and the next peer is asked too).
//!   A leeching client that never
//!   asks downloads nothing, so its first `get` is as fast in a ring of a
//!   million keys as in an empty one;
//! - **tombstones** go only to rs2p peers, ahead of the keys of a `want`, and
//!   alone to every other seeding rs2p peer of a node that wants the list
//!   (`want deleted`), so that no key deleted on an rs2p node it talks to is
//!   listed, whatever py2p peers announce (docs/PROTOCOL.md §16.11).
//!
//! Keys set while a stream runs reach the peer as they do every node: by
//! py2p's notify broadcast, or in batches between rs2p peers (`news`,
//! `chord/news.rs`); keys deleted meanwhile are no longer in the list to stream.

use bytes::Bytes;

use crate::chord::Node;
use crate::core::{ConnId, Time};
use crate::wire::flags;

/// Verb of a key-list request (rs2p → rs2p).
pub(crate) const WANT: &[u8] = b"want";
/// Verb of a frame carrying keys, one per packet after the verb.
pub(crate) const BATCH: &[u8] = b"batch";
/// Verb of the frame that ends a stream: the sender's list is all sent.
pub(crate) const END: &[u8] = b"end";

/// Marks an `end` from a peer whose own list was still arriving.
pub(crate) const PARTIAL: &[u8] = b"partial";

/// Verb of a frame carrying tombstones, an age (ms, ASCII decimal) and a key
/// per pair of packets; also marks a `want` and an `end` of tombstones only.
pub(crate) const DELETED: &[u8] = b"deleted";
/// `0x2E, sum, COUNT, DIGEST`: our key list's summary (§16.19).
pub(crate) const SUM: &[u8] = b"sum";

/// Key bytes in one `batch` frame: large enough that framing costs little,
/// small enough that one frame holds the node lock only briefly.
pub(crate) const BATCH_BYTES: usize = 64 * 1024;

/// What a stream may send at once when it starts, before the driver first
/// reports room: a small list goes out at once, with no wait for a tick.
const INITIAL_ROOM: Room = Room { frames: 64, bytes: 1 << 20 };

/// A py2p peer's notifies count as still arriving until its link is this old
/// and no notify came for [`PY2P_QUIET_MS`] (py2p sends no end marker).
const PY2P_SETTLE_MS: Time = 2_000;
/// See [`PY2P_SETTLE_MS`].
const PY2P_QUIET_MS: Time = 1_000;

/// A peer's `want` restarts its stream at most this often: a list is sent
/// in full each time, so a peer repeating a 10-byte request must not turn it
/// into a flood of our key list.
const WANT_INTERVAL_MS: Time = 10_000;

/// How much more a connection's write queue may take, as reported by the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Room {
    /// Frames.
    pub frames: usize,
    /// Bytes.
    pub bytes: usize,
}

/// Our key-list stream to one peer.
#[derive(Debug, Default)]
pub enum Outgoing {
    /// Not started.
    #[default]
    Idle,
    /// Streaming: first the tombstones (rs2p peers only), then the keys;
    /// every one after `after` (from the start when `None`) is still to send.
    Sending {
        /// The last key (or tombstone) sent.
        after: Option<Box<[u8]>>,
        /// Still sending tombstones.
        deleted: bool,
        /// The keys follow (false for a `want deleted`).
        keys: bool,
    },
    /// Sent: the keys too, or only the tombstones.
    Done {
        /// The keys were sent.
        keys: bool,
    },
}

/// The peer's key-list stream to us (rs2p peers only).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Incoming {
    /// Not asked for.
    #[default]
    NotAsked,
    /// Asked for its tombstones only; their `end` has not come yet.
    DeletedAsked,
    /// Its tombstones came; its keys were not asked for.
    Deleted,
    /// Asked for its keys (and tombstones); its `end` has not come yet.
    Asked,
    /// Its `end` came: we hold every key it had.
    Complete,
}

/// How complete this node's key list is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyListStatus {
    /// Nobody was asked for it: a leeching node fetches it on first use of `keys()`.
    NotRequested,
    /// Still arriving from a peer (or no seeding peer to get it from yet).
    Arriving,
    /// Every key a seeding peer knew has arrived; new keys come by broadcast.
    Complete,
}

impl Node {
    /// Connections with a key-list stream in progress: the driver calls
    /// [`Node::stream_keys`] for each as their write queues drain.
    pub fn key_streams(&self) -> Vec<ConnId> {
        self.chord.streaming.iter().copied().collect()
    }

    /// Sends the next part of the key list on `conn`, within `room`.
    pub fn stream_keys(&mut self, conn: ConnId, room: Room) {
        let rs2p = self.mesh.is_rs2p(conn);
        let Some(c) = self.mesh.ext_mut(&conn) else {
            self.chord.streaming.remove(&conn);
            return;
        };
        let Outgoing::Sending { after, mut deleted, keys } = &mut c.keys_out else {
            self.chord.streaming.remove(&conn);
            return;
        };
        let mut cursor = after.take();
        let keys = *keys;
        // Never to py2p, which drops the link on input it does not know.
        deleted &= rs2p;
        let (mut frames, mut bytes) = (room.frames, room.bytes);
        let mut finished = false;
        while frames > 0 && bytes > 0 {
            if deleted {
                let (frame, last) = self.tombstone_frame(cursor.as_deref(), BATCH_BYTES.min(bytes));
                match last {
                    Some(last) => {
                        cursor = Some(last);
                        frames -= 1;
                        bytes = bytes.saturating_sub(frame.iter().map(|p| p.len() + 4).sum());
                        self.mesh.send_on(conn, flags::WHISPER, frame);
                    }
                    None if keys => (deleted, cursor) = (false, None),
                    None => {
                        finished = true;
                        break;
                    }
                }
                continue;
            }
            let mut chunk: Vec<Bytes> = Vec::new();
            let mut size = 0;
            for key in self.chord.keys.after(cursor.as_deref()) {
                chunk.push(Bytes::copy_from_slice(key));
                size += key.len() + 4;
                // py2p gets one key per frame; rs2p peers a batch.
                if !rs2p || size >= BATCH_BYTES.min(bytes) {
                    break;
                }
            }
            let Some(last) = chunk.last() else {
                finished = true;
                break;
            };
            cursor = Some(Box::from(&last[..]));
            frames -= 1;
            bytes = bytes.saturating_sub(size);
            if rs2p {
                let mut payload = Vec::with_capacity(chunk.len() + 2);
                payload.push(Bytes::from_static(&[flags::RS2P_KEYLIST]));
                payload.push(Bytes::from_static(BATCH));
                payload.extend(chunk);
                self.mesh.send_on(conn, flags::WHISPER, payload);
            } else {
                for key in chunk {
                    self.mesh.send_on(conn, flags::WHISPER, vec![Bytes::from_static(&[flags::NOTIFY]), key]);
                }
            }
        }
        if finished && rs2p {
            let mut payload = vec![Bytes::from_static(&[flags::RS2P_KEYLIST]), Bytes::from_static(END)];
            if !keys {
                payload.push(Bytes::from_static(DELETED));
            } else if self.key_list_status() != KeyListStatus::Complete {
                // A list still arriving here may lack keys: say so, and the
                // peer asks someone else too.
                payload.push(Bytes::from_static(PARTIAL));
            }
            self.mesh.send_on(conn, flags::WHISPER, payload);
        }
        if let Some(c) = self.mesh.ext_mut(&conn) {
            c.keys_out =
                if finished { Outgoing::Done { keys } } else { Outgoing::Sending { after: cursor, deleted, keys } };
        }
        if finished {
            self.chord.streaming.remove(&conn);
        }
    }

    /// Starts (or restarts) streaming the key list to `conn` (after our
    /// tombstones, to an rs2p peer).
    pub(crate) fn start_key_stream(&mut self, conn: ConnId) {
        self.start_stream(conn, true);
    }

    /// Starts streaming our tombstones to `conn`, then our keys if `keys`.
    /// A request for the keys while only tombstones are on the way extends
    /// that stream. A stream restarts at most every [`WANT_INTERVAL_MS`]
    /// (a request for the keys after one of tombstones only excepted).
    fn start_stream(&mut self, conn: ConnId, keys: bool) {
        let now = self.mesh.now();
        let short = self.mesh.id().short().to_string();
        let Some(c) = self.mesh.ext_mut(&conn) else {
            return;
        };
        match &mut c.keys_out {
            Outgoing::Sending { keys: sending_keys, .. } => {
                *sending_keys |= keys;
                return;
            }
            Outgoing::Done { keys: sent_keys }
                if (*sent_keys || !keys) && now.saturating_sub(c.keys_out_since) < WANT_INTERVAL_MS =>
            {
                tracing::debug!(node = %short, conn = conn.0, "key list asked for again too soon: ignored");
                return;
            }
            _ => {}
        }
        c.keys_out = Outgoing::Sending { after: None, deleted: true, keys };
        c.keys_out_since = now;
        self.chord.streaming.insert(conn);
        self.stream_keys(conn, INITIAL_ROOM);
    }

    /// One `deleted` frame: the tombstones after `cursor`, up to about
    /// `max_bytes` of them, and the last key in it (`None` when there are no more).
    fn tombstone_frame(&self, cursor: Option<&[u8]>, max_bytes: usize) -> (Vec<Bytes>, Option<Box<[u8]>>) {
        let mut frame = vec![Bytes::from_static(&[flags::RS2P_KEYLIST]), Bytes::from_static(DELETED)];
        let mut size = 0;
        for (key, age) in self.chord.keys.deleted_after(cursor, self.wall_now()) {
            frame.push(Bytes::from(age.to_string()));
            frame.push(key.clone());
            size += key.len() + 32;
            if size >= max_bytes {
                break;
            }
        }
        let last = (frame.len() > 2).then(|| Box::from(&frame[frame.len() - 1][..]));
        (frame, last)
    }

    /// The user wants the key list: from now on it is fetched and kept.
    pub fn request_keys(&mut self) {
        if self.walks_keys() {
            self.chord.want_keys = true;
            self.request_walk();
            return;
        }
        if !self.chord.want_keys {
            self.chord.want_keys = true;
            self.ask_for_keys();
        }
    }

    /// Asks one seeding rs2p peer for its key list, when we want it, do not
    /// have it, and are not already waiting for one; and every other seeding
    /// rs2p peer for its tombstones, once per connection.
    pub(crate) fn ask_for_keys(&mut self) {
        if !self.chord.want_keys || self.mesh.is_closed() {
            return;
        }
        let sources = |n: &Self| -> Vec<(ConnId, Incoming)> {
            n.mesh
                .conns()
                .values()
                .filter(|c| c.handshaken && c.rs2p && !c.ext.leeching)
                .map(|c| (c.id, c.ext.keys_in))
                .collect()
        };
        let waiting = self.mesh.conns().values().any(|c| c.ext.keys_in == Incoming::Asked);
        if !self.chord.keys_complete && !waiting {
            let source = sources(self)
                .into_iter()
                .filter(|(_, k)| matches!(k, Incoming::NotAsked | Incoming::DeletedAsked | Incoming::Deleted))
                .map(|(id, _)| id)
                .min();
            if let Some(conn) = source {
                self.ask(conn, Incoming::Asked);
            }
        }
        for (conn, state) in sources(self) {
            if state == Incoming::NotAsked {
                self.ask(conn, Incoming::DeletedAsked);
            }
        }
        self.send_key_sums();
    }

    /// Sends our key list's summary once on each seeding rs2p link: a peer
    /// whose list differs asks for ours (two rings that merged, a node
    /// back from a pause: keys set on one side only reach the other).
    /// Not before our own list is complete: the summary of a list still
    /// arriving differs from every peer's, and each would download it.
    fn send_key_sums(&mut self) {
        if self.walks_keys() || !self.chord.keys_complete {
            return;
        }
        let (count, sum) = self.chord.keys.summary();
        let targets: Vec<ConnId> = self
            .mesh
            .conns()
            .values()
            .filter(|c| c.handshaken && c.rs2p && !c.ext.leeching && !c.ext.keys_sum_sent)
            .map(|c| c.id)
            .collect();
        for conn in targets {
            if let Some(c) = self.mesh.ext_mut(&conn) {
                c.keys_sum_sent = true;
            }
            let payload = vec![
                Bytes::from_static(&[flags::RS2P_KEYLIST]),
                Bytes::from_static(SUM),
                Bytes::from(count.to_string()),
                Bytes::from(format!("{sum:032x}")),
            ];
            self.mesh.send_on(conn, flags::WHISPER, payload);
        }
    }

    /// A peer's key-list summary: if its list differs from ours, ask for
    /// its whole list (ours goes to it when it asks, on the same rule).
    fn handle_key_sum(&mut self, conn: ConnId, payload: &[Bytes]) {
        let count = payload.get(2).and_then(|p| std::str::from_utf8(p).ok()?.parse::<usize>().ok());
        let sum = payload.get(3).and_then(|p| u128::from_str_radix(std::str::from_utf8(p).ok()?, 16).ok());
        let (Some(count), Some(sum)) = (count, sum) else {
            self.mesh.record_error(Some(conn), "ignoring a malformed key-list summary".to_owned());
            return;
        };
        self.handle_key_sum_values(conn, (count, sum));
    }

    /// [`Node::handle_key_sum`], parsed.
    fn handle_key_sum_values(&mut self, conn: ConnId, (count, sum): (usize, u128)) {
        if !self.chord.want_keys || self.walks_keys() || (count, sum) == self.chord.keys.summary() {
            return;
        }
        // Our list is still arriving (a newcomer's, from one peer, when
        // every peer's summary comes in): the peer's waits for it, instead
        // of a second whole list from each peer (issue 26: a newcomer
        // fetched a million keys from each of seven peers at once).
        if !self.chord.keys_complete || self.mesh.conns().values().any(|c| c.ext.keys_in == Incoming::Asked) {
            if let Some(c) = self.mesh.ext_mut(&conn) {
                c.keys_sum_held = Some(Box::new((count, sum)));
            }
            return;
        }
        let asking = self.mesh.conns().get(&conn).is_some_and(|c| c.ext.keys_in == Incoming::Asked);
        if !asking && self.mesh.conns().get(&conn).is_some_and(|c| c.handshaken && !c.ext.leeching) {
            self.ask(conn, Incoming::Asked);
        }
    }

    /// Our list is complete: our summary goes to the links that have not
    /// had it, and the peers' summaries held meanwhile are compared now
    /// (a peer whose list still differs is asked for it).
    fn keys_completed(&mut self) {
        self.send_key_sums();
        let held: Vec<(ConnId, (usize, u128))> =
            self.mesh.conns().values().filter_map(|c| c.ext.keys_sum_held.as_deref().map(|s| (c.id, *s))).collect();
        for (conn, sum) in held {
            if let Some(c) = self.mesh.ext_mut(&conn) {
                c.keys_sum_held = None;
            }
            self.handle_key_sum_values(conn, sum);
        }
    }

    /// Sends `want` (for `Asked`) or `want deleted` (for `DeletedAsked`).
    fn ask(&mut self, conn: ConnId, what: Incoming) {
        if let Some(c) = self.mesh.ext_mut(&conn) {
            c.keys_in = what;
        }
        let mut payload = vec![Bytes::from_static(&[flags::RS2P_KEYLIST]), Bytes::from_static(WANT)];
        if what == Incoming::DeletedAsked {
            payload.push(Bytes::from_static(DELETED));
        }
        self.mesh.send_on(conn, flags::WHISPER, payload);
    }

    /// How complete our key list is.
    pub fn key_list_status(&self) -> KeyListStatus {
        if !self.chord.want_keys {
            return KeyListStatus::NotRequested;
        }
        if self.walks_keys() {
            return self.walk_status();
        }
        let now = self.mesh.now();
        let mut seeding_peers = 0;
        for c in self.mesh.conns().values().filter(|c| c.handshaken && !c.ext.leeching) {
            seeding_peers += 1;
            if matches!(c.ext.keys_in, Incoming::Asked | Incoming::DeletedAsked) {
                return KeyListStatus::Arriving;
            }
            let py2p_busy = !c.rs2p
                && (now.saturating_sub(c.handshaken_at) < PY2P_SETTLE_MS
                    || now.saturating_sub(c.ext.last_notify) < PY2P_QUIET_MS);
            if py2p_busy {
                return KeyListStatus::Arriving;
            }
        }
        let has_rs2p_source = self.mesh.conns().values().any(|c| c.handshaken && !c.ext.leeching && c.rs2p);
        if (has_rs2p_source && !self.chord.keys_complete) || (seeding_peers == 0 && self.chord.leeching) {
            // A source we have not heard `end` from, or nobody to ask yet.
            return KeyListStatus::Arriving;
        }
        KeyListStatus::Complete
    }

    /// The rs2p key-list extension: `want`, `batch`, `deleted` and `end`.
    pub(crate) fn handle_keylist(&mut self, conn: ConnId, payload: &[Bytes]) {
        let marked = |what: &[u8]| payload[2..].iter().any(|p| p.as_ref() == what);
        match payload[1].as_ref() {
            WANT => self.start_stream(conn, !marked(DELETED)),
            SUM => self.handle_key_sum(conn, payload),
            super::news::NEWS => self.handle_news(conn, payload),
            BATCH => {
                for key in &payload[2..] {
                    if !self.chord.keys.is_deleted(key) {
                        self.add_key(key.clone());
                    }
                }
            }
            DELETED => {
                let pairs = &payload[2..];
                let mut bad = pairs.len() % 2;
                for pair in pairs.chunks_exact(2) {
                    match parse_age(&pair[0]) {
                        Some(age) => self.receive_tombstone(&pair[1], age),
                        None => bad += 1,
                    }
                }
                if bad > 0 {
                    self.mesh
                        .record_error(Some(conn), format!("ignoring {bad} malformed tombstone(s) in a key-list frame"));
                }
            }
            END => {
                let (partial, deleted_only) = (marked(PARTIAL), marked(DELETED));
                let Some(c) = self.mesh.ext_mut(&conn) else {
                    return;
                };
                match c.keys_in {
                    // Our tombstones-only request, answered.
                    Incoming::DeletedAsked if deleted_only => {
                        c.keys_in = Incoming::Deleted;
                        return;
                    }
                    // A whole list (from a peer that took `want deleted` for
                    // `want`, if we asked for tombstones only).
                    Incoming::Asked | Incoming::DeletedAsked if !deleted_only => {}
                    _ => return,
                }
                c.keys_in = Incoming::Complete;
                if !partial {
                    self.chord.keys_complete = true;
                    self.keys_completed();
                    return;
                }
                // Ask the next peer; when every seeding rs2p peer has answered
                // with what it had, that is all there is to know.
                self.ask_for_keys();
                if !self.mesh.conns().values().any(|c| c.ext.keys_in == Incoming::Asked) {
                    self.chord.keys_complete = true;
                    self.keys_completed();
                }
            }
            other => {
                let text =
                    format!("ignoring key-list message with an unknown verb {:?}", String::from_utf8_lossy(other));
                self.mesh.record_error(Some(conn), text);
            }
        }
    }

    /// Key-list bookkeeping when a connection is gone: its stream stops, and
    /// a list it was sending us is asked of another peer.
    pub(crate) fn keys_conn_lost(&mut self, conn: ConnId, was: Incoming) {
        self.chord.streaming.remove(&conn);
        if !self.mesh.conns().values().any(|c| c.handshaken && !c.ext.leeching) {
            // No seeding peer left: broadcasts of new keys may be missed from now on.
            self.chord.keys_complete = false;
        }
        if was == Incoming::Asked {
            self.ask_for_keys();
        }
    }
}

/// A tombstone's age: ms as ASCII decimal digits (at most 19, so it fits).
fn parse_age(packet: &[u8]) -> Option<Time> {
    if packet.is_empty() || packet.len() > 19 || !packet.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(packet).ok()?.parse().ok()
}
