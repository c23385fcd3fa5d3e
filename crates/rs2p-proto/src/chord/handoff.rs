//! Handing items to their new owners, confirmed by a retrieve before the local
//! copy is dropped (py2p hands off blind and never deletes: D20, D25).

use bytes::Bytes;

use super::get::{Answer, Waiter};
use super::handoffs::Handoff;
use super::{ItemKey, Owner};
use crate::chord::Node;
use crate::core::ConnId;

/// Items in flight at once: paces the burst so py2p peers keep up (D25).
const MAX_IN_FLIGHT: usize = 128;
/// Sends of one item before it is given up on (the local copy is then kept).
const MAX_ATTEMPTS: u32 = 5;
/// An unanswered handoff is retried after this long.
const RETRY_AFTER_MS: u64 = 5_000;

/// Handoff counters, for logs and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HandoffStats {
    /// Items queued for handoff.
    pub queued: u64,
    /// Items the new owner confirmed.
    pub confirmed: u64,
    /// Items given up on after every attempt (kept locally).
    pub failed: u64,
    /// Scans of the whole store for items a new seeding peer is nearer to.
    pub scans: u64,
    /// Value bytes of the items the new owners confirmed.
    pub bytes: u64,
}

impl Node {
    /// Queues every local item some seeding peer is now closer to.
    pub(crate) fn handoff_to_closer_peers(&mut self) {
        self.chord.handoff_stats.scans += 1;
        // This scan covers the arc as it is now: a rescan for the same
        // neighbours is not needed.
        self.chord.rescan_due = false;
        self.chord.last_rescan = self.mesh.now();
        self.chord.scanned_with = (self.predecessor(), self.successor());
        let mut items: Vec<ItemKey> = Vec::new();
        for method in crate::ring::HashMethod::ALL {
            for key in self.chord.data.keys(method) {
                if matches!(self.find(&key), Owner::Remote(_)) {
                    items.push((method, key));
                }
            }
        }
        // Deletes too: the new owner may hold a copy older than them (two
        // rings merging, a node back from a pause).
        for (item, _) in self.chord.data.tombs() {
            if matches!(self.find(&item.1), Owner::Remote(c) if self.is_rs2p(c)) {
                items.push(item);
            }
        }
        // Items for an rs2p owner are offered as range summaries first
        // (`sync.rs`): after a merge most of them are there already.
        let mut runs: std::collections::BTreeMap<ConnId, Vec<ItemKey>> = std::collections::BTreeMap::new();
        for item in items {
            match self.find(&item.1) {
                Owner::Remote(c) if self.is_rs2p(c) && !self.chord.handoff.contains(&item) => {
                    runs.entry(c).or_default().push(item);
                }
                _ => self.queue_handoff(item),
            }
        }
        for (conn, items) in runs {
            self.offer_runs(conn, items);
        }
        self.pump_handoff();
    }

    /// Queues every local item (for a leave).
    pub(crate) fn handoff_everything(&mut self) {
        let mut items: Vec<ItemKey> = crate::ring::HashMethod::ALL
            .into_iter()
            .flat_map(|m| self.chord.data.keys(m).into_iter().map(move |k| (m, k)))
            .collect();
        items.extend(self.chord.data.tombs().into_iter().map(|(item, _)| item));
        for item in items {
            self.queue_handoff(item);
        }
        self.pump_handoff();
    }

    pub(crate) fn queue_handoff(&mut self, item: ItemKey) {
        if self.chord.handoff.contains(&item) {
            return;
        }
        let (value, version) = match self.local_entry(item) {
            Some(entry) => entry,
            None => match self.chord.data.tomb(item.0, &item.1) {
                Some(deleted) => (Bytes::new(), deleted),
                None => return,
            },
        };
        if self.chord.handoff.add(item, value, version, self.mesh.now()) {
            self.chord.handoff_stats.queued += 1;
        }
    }

    /// Sends queued items while fewer than the in-flight bound are unconfirmed.
    pub(crate) fn pump_handoff(&mut self) {
        while let Some((item, value, version)) = self.chord.handoff.next_to_send(MAX_IN_FLIGHT) {
            match self.find(&item.1) {
                // py2p keeps no tombstones: ours stays here.
                Owner::Remote(conn) if value.is_empty() && !self.is_rs2p(conn) => {
                    self.drop_handoff(item);
                }
                Owner::Remote(conn) => {
                    self.mesh.counters_mut().merge_bytes += value.len() as u64;
                    self.send_store(conn, item, value, version);
                    self.chord.handoff.sent(item, conn, self.mesh.now());
                    self.route_retrieve(item, Waiter::Handoff, None);
                }
                // We own it again, or nobody else can take it: keep it.
                Owner::Local | Owner::Nobody => {
                    self.drop_handoff(item);
                }
            }
        }
    }

    /// The new owner answered our check: confirmed when it holds what we
    /// sent or something newer (a later write, a later delete).
    pub(crate) fn handoff_answer(&mut self, item: ItemKey, answer: Answer) {
        let Some(h) = self.chord.handoff.get(&item) else {
            return;
        };
        let confirmed = match &answer {
            // A py2p owner keeps no versions: it must hold the very bytes.
            Answer::Value(v, ver) if ver.is_zero() || h.version.is_zero() => *v == h.value,
            Answer::Value(v, ver) => *ver > h.version || (*ver == h.version && *v == h.value),
            // A delete at least as new as what we sent (ours, or a later one).
            Answer::Missing(ver) => !ver.is_zero() && !h.version.is_zero() && *ver >= h.version,
            _ => false,
        };
        if confirmed {
            let h = self.drop_handoff(item).expect("present");
            self.chord.handoff_stats.confirmed += 1;
            self.chord.handoff_stats.bytes += h.value.len() as u64;
            let ours = self.chord.data.current_version(item.0, &item.1);
            let same = h.value.is_empty() || self.chord.data.get(item.0, &item.1) == Some(&h.value);
            if same && ours <= h.version && !matches!(self.find(&item.1), Owner::Local) {
                self.chord.data.remove(item.0, &item.1);
                self.chord.data.clear_tomb(item.0, &item.1);
                self.forget_item_key(item);
            }
            self.pump_handoff();
        } else {
            self.handoff_unconfirmed(item);
        }
    }

    /// A check failed or went unanswered: send again, or give up and keep the item.
    pub(crate) fn handoff_unconfirmed(&mut self, item: ItemKey) {
        let Some(h) = self.chord.handoff.get(&item) else {
            return;
        };
        if h.attempts() >= MAX_ATTEMPTS {
            self.drop_handoff(item);
            self.chord.handoff_stats.failed += 1;
            self.mesh.record_error(None, format!("handoff of a {} item was never confirmed: kept locally", item.0));
        } else {
            self.requeue_handoff(item);
        }
        self.pump_handoff();
    }

    pub(crate) fn handoff_tick(&mut self) {
        let now = self.mesh.now();
        let stale = self.chord.handoff.overdue(now.saturating_sub(RETRY_AFTER_MS));
        for item in stale {
            self.handoff_unconfirmed(item);
        }
        self.pump_handoff();
    }

    pub(crate) fn handoff_conn_lost(&mut self, conn: ConnId) {
        let lost = self.chord.handoff.sent_on(conn);
        for item in lost {
            self.requeue_handoff(item);
        }
        self.pump_handoff();
    }

    /// Forgets a handoff (confirmed, or given up).
    pub(crate) fn drop_handoff(&mut self, item: ItemKey) -> Option<Handoff> {
        self.chord.handoff.remove(&item)
    }

    /// Puts a sent handoff back in the queue, to be sent again.
    fn requeue_handoff(&mut self, item: ItemKey) {
        self.chord.handoff.requeue(item);
    }

    /// Items not yet confirmed by their new owners.
    pub fn handoff_pending(&self) -> usize {
        self.chord.handoff.len() + self.chord.sync.pending_items()
    }

    /// Handoff counters.
    pub fn handoff_stats(&self) -> HandoffStats {
        self.chord.handoff_stats
    }
}
