//! Range summaries before a handoff (docs/PROTOCOL.md §16.20): when two
//! rings merge, or a node comes back, nearly every item changes owner on
//! one side, and nearly all of them are already at the new owner with the
//! same version (written before the split). Instead of sending each item
//! and checking it with a retrieve, the old holder sends a summary of a
//! run of items (their count and the XOR of a 128-bit digest of each hash,
//! version and value, [`crate::chord::store::item_digest`]); the new owner
//! answers `same` when its own items in that hash range sum to the same,
//! and the run is handed over without a byte of it moving; `diff` sends
//! the run item by item (the usual handoff, where the later version wins).
//!
//! Only towards rs2p peers; at most [`MAX_SYNC_INFLIGHT`] summaries wait
//! for an answer at once (a byte budget of about 12 KiB in flight per
//! node), the rest queue; an unanswered summary falls back to the
//! item-by-item handoff after [`SYNC_TIMEOUT_MS`].

use std::collections::VecDeque;

use bytes::Bytes;

use super::{ItemKey, Owner};
use crate::chord::Node;
use crate::core::{ConnId, Map, SeededState, Time};
use crate::ring::{HashMethod, U512};
use crate::wire::{base58, flags};

/// Items per summary at first. A run that differs is cut in two and each
/// half offered again (a Merkle-style descent), down to [`MIN_RUN`] items,
/// sent one by one: a changed item costs about 2·log2(256/8) = 10
/// summaries and 8 single handoffs, an unchanged run one summary.
pub const RANGE_ITEMS: usize = 256;
/// Runs this short are sent item by item when their summary differs.
pub const MIN_RUN: usize = 8;
/// Summaries awaiting an answer at once.
pub const MAX_SYNC_INFLIGHT: usize = 64;
/// A summary unanswered this long is handed off item by item.
pub const SYNC_TIMEOUT_MS: Time = 5_000;
/// Runs wait this long before their summary goes out: while two rings
/// merge, our view of who owns what changes every second, and a summary
/// sent to a node that is only nearer (not the owner) differs for sure.
/// At send time each run is split by the owners of its items then.
pub const SYNC_SETTLE_MS: Time = 2_000;

const SUM: &[u8] = b"sum";
const SAME: &[u8] = b"same";
const DIFF: &[u8] = b"diff";

/// A run of items of one table offered to one peer.
#[derive(Debug)]
pub(crate) struct Run {
    conn: ConnId,
    table: HashMethod,
    /// Sorted hashes.
    items: Vec<U512>,
    /// When it was queued (sent no sooner than [`SYNC_SETTLE_MS`] after),
    /// then when it was sent.
    sent_at: Time,
}

/// Summaries queued and in flight, and what they saved.
#[derive(Debug)]
pub(crate) struct SyncState {
    next_id: u64,
    backlog: VecDeque<(u64, Run)>,
    inflight: Map<u64, Run>,
    /// Items in some run (a rescan does not offer them twice).
    offered: std::collections::HashSet<ItemKey>,
    /// Items handed over by a matching summary (no value sent).
    pub same_items: u64,
    /// Items whose summary differed (sent one by one).
    pub diff_items: u64,
    /// Bytes of the summaries sent and answered.
    pub bytes: u64,
}

impl SyncState {
    /// Summaries queued or awaiting an answer: the node steps them at its pace.
    pub(crate) fn busy(&self) -> bool {
        !self.backlog.is_empty() || !self.inflight.is_empty()
    }

    pub(crate) fn with_seed(seed: u64) -> Self {
        SyncState {
            next_id: 1,
            backlog: VecDeque::new(),
            inflight: SeededState::new(seed, 121).map(),
            offered: std::collections::HashSet::new(),
            same_items: 0,
            diff_items: 0,
            bytes: 0,
        }
    }

    /// Items offered and not settled yet.
    pub(crate) fn pending_items(&self) -> usize {
        self.backlog.iter().map(|(_, r)| r.items.len()).sum::<usize>()
            + self.inflight.values().map(|r| r.items.len()).sum::<usize>()
    }
}

impl Node {
    /// Range summaries so far: items handed over by a matching summary,
    /// items sent one by one after one differed, bytes of summaries.
    pub fn sync_stats(&self) -> (u64, u64, u64) {
        let s = &self.chord.sync;
        (s.same_items, s.diff_items, s.bytes)
    }

    /// Offers `items`, which `conn` (a seeding rs2p peer) now owns, as
    /// summaries of runs of [`RANGE_ITEMS`].
    pub(crate) fn offer_runs(&mut self, conn: ConnId, mut items: Vec<ItemKey>) {
        items.retain(|i| self.chord.sync.offered.insert(*i));
        items.sort();
        for table in HashMethod::ALL {
            let hashes: Vec<U512> = items.iter().filter(|(m, _)| *m == table).map(|(_, h)| *h).collect();
            for run in hashes.chunks(RANGE_ITEMS) {
                let id = self.chord.sync.next_id;
                self.chord.sync.next_id += 1;
                let run = Run { conn, table, items: run.to_vec(), sent_at: self.mesh.now() };
                self.chord.sync.backlog.push_back((id, run));
            }
        }
        self.pump_sync();
    }

    /// Sends queued summaries while fewer than [`MAX_SYNC_INFLIGHT`] wait.
    pub(crate) fn pump_sync(&mut self) {
        while self.chord.sync.inflight.len() < MAX_SYNC_INFLIGHT {
            let settled =
                self.chord.sync.backlog.front().is_some_and(|(_, r)| self.mesh.now() >= r.sent_at + SYNC_SETTLE_MS);
            if !settled {
                break;
            }
            let Some((id, mut run)) = self.chord.sync.backlog.pop_front() else { break };
            // Who owns the run's items now: one rs2p peer gets the summary;
            // a run now split between owners goes as several; items we own
            // again stay.
            let mut by_owner: std::collections::BTreeMap<ConnId, Vec<U512>> = std::collections::BTreeMap::new();
            let mut other: Vec<U512> = Vec::new();
            for h in &run.items {
                match self.find(h) {
                    Owner::Remote(c) if self.is_rs2p(c) => by_owner.entry(c).or_default().push(*h),
                    Owner::Remote(_) => other.push(*h),
                    Owner::Local | Owner::Nobody => {}
                }
            }
            for h in other {
                self.chord.sync.offered.remove(&(run.table, h));
                self.queue_handoff((run.table, h));
            }
            for h in &run.items {
                if !matches!(self.find(h), Owner::Remote(_)) {
                    self.chord.sync.offered.remove(&(run.table, *h));
                }
            }
            let mut groups = by_owner.into_iter();
            let Some((conn, items)) = groups.next() else { continue };
            for (c, items) in groups {
                let id = self.chord.sync.next_id;
                self.chord.sync.next_id += 1;
                self.chord.sync.backlog.push_front((id, Run { conn: c, table: run.table, items, sent_at: 0 }));
            }
            run.conn = conn;
            run.items = items;
            let (Some(first), Some(last)) = (run.items.first().copied(), run.items.last().copied()) else {
                continue;
            };
            let Some((count, sum)) = self.chord.data.range_summary(run.table, &first, &last, usize::MAX) else {
                continue;
            };
            let payload = vec![
                Bytes::from_static(&[flags::RS2P_SYNC]),
                Bytes::from_static(SUM),
                Bytes::from(id.to_string()),
                Bytes::from_static(run.table.name().as_bytes()),
                Bytes::from(base58::encode(&first)),
                Bytes::from(base58::encode(&last)),
                Bytes::from(count.to_string()),
                Bytes::from(format!("{sum:032x}")),
            ];
            self.chord.sync.bytes += payload.iter().map(|p| p.len() as u64 + 4).sum::<u64>();
            self.mesh.send_on(run.conn, flags::WHISPER, payload);
            run.sent_at = self.mesh.now();
            self.chord.sync.inflight.insert(id, run);
        }
    }

    /// Hands a run over item by item (its summary differed, or was never answered).
    fn handoff_run(&mut self, run: Run) {
        self.chord.sync.diff_items += run.items.len() as u64;
        for hash in run.items {
            self.chord.sync.offered.remove(&(run.table, hash));
            self.queue_handoff((run.table, hash));
        }
        self.pump_handoff();
    }

    /// The rs2p sync extension: `sum` (answer it), `same`, `diff`.
    pub(crate) fn handle_sync(&mut self, conn: ConnId, payload: &[Bytes]) {
        if !self.is_rs2p(conn) {
            return;
        }
        let id = payload.get(2).and_then(|p| std::str::from_utf8(p).ok()?.parse::<u64>().ok());
        match (payload[1].as_ref(), id) {
            (SUM, Some(id)) if payload.len() >= 8 => {
                let table = HashMethod::from_name(&payload[3]);
                let first = base58::decode(&payload[4]).ok();
                let last = base58::decode(&payload[5]).ok();
                let count = std::str::from_utf8(&payload[6]).ok().and_then(|c| c.parse::<u64>().ok());
                let sum = std::str::from_utf8(&payload[7]).ok().and_then(|s| u128::from_str_radix(s, 16).ok());
                let (Some(table), Some(first), Some(last), Some(count), Some(sum)) = (table, first, last, count, sum)
                else {
                    self.mesh.record_error(Some(conn), "ignoring a malformed range summary".to_owned());
                    return;
                };
                // A range holding far more than a run (a peer asking for a
                // scan of the whole store) is answered `diff` unscanned.
                let same = first <= last
                    && count <= RANGE_ITEMS as u64
                    && self.chord.data.range_summary(table, &first, &last, 4 * RANGE_ITEMS) == Some((count, sum));
                let verdict = if same { SAME } else { DIFF };
                let payload = vec![
                    Bytes::from_static(&[flags::RS2P_SYNC]),
                    Bytes::from_static(verdict),
                    Bytes::from(id.to_string()),
                ];
                self.mesh.send_on(conn, flags::WHISPER, payload);
            }
            (SAME, Some(id)) => {
                // Only the peer asked may answer for a run.
                if self.chord.sync.inflight.get(&id).is_none_or(|r| r.conn != conn) {
                    return;
                }
                let Some(run) = self.chord.sync.inflight.remove(&id) else { return };
                self.chord.sync.same_items += run.items.len() as u64;
                self.chord.handoff_stats.confirmed += run.items.len() as u64;
                for hash in run.items {
                    let item = (run.table, hash);
                    self.chord.sync.offered.remove(&item);
                    // The new owner holds exactly our copy: ours can go,
                    // unless the item came back to us meanwhile.
                    if self.find(&hash) == Owner::Remote(conn) {
                        self.chord.data.remove(item.0, &item.1);
                        self.chord.data.clear_tomb(item.0, &item.1);
                        self.forget_item_key(item);
                    }
                }
                self.pump_sync();
            }
            (DIFF, Some(id)) => {
                if self.chord.sync.inflight.get(&id).is_none_or(|r| r.conn != conn) {
                    return;
                }
                let Some(mut run) = self.chord.sync.inflight.remove(&id) else { return };
                if run.items.len() <= MIN_RUN {
                    self.handoff_run(run);
                } else {
                    // Each half is offered again at once (the owners settled).
                    let back = run.items.split_off(run.items.len() / 2);
                    for items in [back, run.items] {
                        let id = self.chord.sync.next_id;
                        self.chord.sync.next_id += 1;
                        let half = Run { conn, table: run.table, items, sent_at: 0 };
                        self.chord.sync.backlog.push_front((id, half));
                    }
                }
                self.pump_sync();
            }
            _ => self.mesh.record_error(Some(conn), "ignoring a malformed sync message".to_owned()),
        }
    }

    /// Unanswered summaries fall back to the item-by-item handoff.
    pub(crate) fn sync_tick(&mut self) {
        let now = self.mesh.now();
        let late: Vec<u64> = self
            .chord
            .sync
            .inflight
            .iter()
            .filter(|(_, r)| now.saturating_sub(r.sent_at) >= SYNC_TIMEOUT_MS)
            .map(|(id, _)| *id)
            .collect();
        for id in late {
            if let Some(run) = self.chord.sync.inflight.remove(&id) {
                self.handoff_run(run);
            }
        }
        self.pump_sync();
    }

    /// The peer of some summaries is gone: their items are handed to
    /// whoever owns them now, item by item.
    pub(crate) fn sync_conn_lost(&mut self, conn: ConnId) {
        let ids: Vec<u64> =
            self.chord.sync.inflight.iter().filter(|(_, r)| r.conn == conn).map(|(id, _)| *id).collect();
        for id in ids {
            if let Some(run) = self.chord.sync.inflight.remove(&id) {
                self.handoff_run(run);
            }
        }
        self.pump_sync();
    }
}
