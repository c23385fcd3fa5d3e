//! Replica writes sent to the predecessor in batches (`0x2C batch`,
//! docs/PROTOCOL.md §16.22).
//!
//! Each write of an item we own goes to our rs2p predecessor, which passes
//! it on to its own ([`Config::replica_depth`] deep, 2 by default): a set
//! stored by five owners made ten replica frames, and they were most of a
//! set's CPU (87 to 114 µs of CPU per set in `rs2p-lab bench`, 28 to 49 µs
//! with `--replica-depth 0`). Like the key list's news (`chord/news.rs`), the
//! copies now wait here for at most [`REPLICA_FLUSH_MS`] (or
//! [`REPLICA_BATCH_ITEMS`] items, [`REPLICA_BATCH_BYTES`] bytes) and go in
//! one frame; the deadline is in [`Node::poll_timeout`]. A batch of one
//! goes in the single-item form, so a quiet node sends what it always did.
//!
//! What the delay costs: a write's replicas leave up to 5 ms later. The
//! owners' copies are not delayed (the stores are not batched), and the
//! periodic refresh sends the whole arc again, so a crash inside the window
//! loses only the spare copies of the writes of that window, as a crash of
//! the predecessor would.
//!
//! [`Config::replica_depth`]: crate::core::Config::replica_depth
//! [`Node::poll_timeout`]: crate::chord::Node::poll_timeout

use bytes::Bytes;

use crate::chord::Node;
use crate::core::{ConnId, Time};
use crate::wire::flags;

/// The longest a replica write waits here before its batch goes out (as
/// the key list's news: a few ms, well under any failure detection).
pub const REPLICA_FLUSH_MS: Time = 5;

/// Items in one batch at most: a batch this full goes out at once, and a
/// received batch with more is refused (a refresh step sends 512 items,
/// so two frames).
pub const REPLICA_BATCH_ITEMS: usize = 256;

/// Bytes of values and keys in one batch at most: a batch this full goes
/// out at once, and an item that would take it past this goes after the
/// others (alone if it is this big), so that a batch stays far under
/// `Config::max_frame`.
pub const REPLICA_BATCH_BYTES: usize = 256 * 1024;

/// Verb of a batch, where a single replica has its table's name.
pub(crate) const BATCH: &[u8] = b"batch";

/// Packets per item in a batch: table, key text, value, depth, key (may
/// be empty), version (may be empty).
pub(crate) const ITEM_PACKETS: usize = 6;

/// Replica writes waiting to go to one peer.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    /// The peer they go to (our predecessor when they were queued), and
    /// when the first came: the batch goes out by then + [`REPLICA_FLUSH_MS`].
    head: Option<(ConnId, Time)>,
    /// [`ITEM_PACKETS`] packets per item, in the order written.
    packets: Vec<Bytes>,
    bytes: usize,
}

impl Outbox {
    fn items(&self) -> usize {
        self.packets.len() / ITEM_PACKETS
    }
}

impl Node {
    /// Queues one replica write (its [`ITEM_PACKETS`] packets) for `conn`.
    pub(crate) fn queue_replica(&mut self, conn: ConnId, item: [Bytes; ITEM_PACKETS]) {
        let size: usize = item.iter().map(Bytes::len).sum();
        let o = &self.chord.replica_out;
        if o.head.is_some_and(|(to, _)| to != conn) || (o.items() > 0 && o.bytes + size > REPLICA_BATCH_BYTES) {
            self.flush_replicas();
        }
        let now = self.mesh.now();
        let o = &mut self.chord.replica_out;
        o.head.get_or_insert((conn, now));
        o.bytes += size;
        o.packets.extend(item);
        if o.items() >= REPLICA_BATCH_ITEMS || o.bytes >= REPLICA_BATCH_BYTES {
            self.flush_replicas();
        }
    }

    /// When the batch being gathered is due to go out.
    pub(crate) fn replica_batch_due(&self) -> Option<Time> {
        self.chord.replica_out.head.map(|(_, t)| t.saturating_add(REPLICA_FLUSH_MS))
    }

    /// On a tick: sends the batch if it is due.
    pub(crate) fn replica_batch_tick(&mut self) {
        if self.replica_batch_due().is_some_and(|due| due <= self.mesh.now()) {
            self.flush_replicas();
        }
    }

    /// Sends the replica writes gathered: one item in the single form, more
    /// as a batch. If the link went away meanwhile they are dropped: the
    /// refresh to the next predecessor sends our arc again.
    pub(crate) fn flush_replicas(&mut self) {
        // Taken whole: an idle node keeps no buffer (a simulated ring of
        // 100,000 nodes would hold 100,000 of them).
        let o = std::mem::take(&mut self.chord.replica_out);
        let Some((to, _)) = o.head.filter(|_| o.items() > 0) else {
            return;
        };
        let mut payload = Vec::with_capacity(2 + o.packets.len());
        payload.push(Bytes::from_static(&[flags::RS2P_REPLICA]));
        if o.items() > 1 {
            payload.push(Bytes::from_static(BATCH));
        }
        payload.extend(o.packets);
        self.mesh.send_on(to, flags::WHISPER, payload);
    }

    /// A batch of replica writes from a successor (`[0x2C, batch, items…]`):
    /// each item as if it came alone, in order.
    pub(crate) fn handle_replica_batch(&mut self, conn: ConnId, payload: &[Bytes]) {
        let items = &payload[2..];
        if items.is_empty()
            || !items.len().is_multiple_of(ITEM_PACKETS)
            || items.len() / ITEM_PACKETS > REPLICA_BATCH_ITEMS
        {
            self.mesh.record_error(Some(conn), "ignoring a replica batch of a bad shape".to_owned());
            return;
        }
        for item in items.chunks_exact(ITEM_PACKETS) {
            self.handle_replica_item(conn, item);
        }
    }
}
