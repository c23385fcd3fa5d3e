//! The table of items being handed to their new owners, with its
//! invariant kept in one place: `in_flight` is the number of items sent
//! and not yet confirmed or requeued (those with a target), and bounds how
//! many are sent at once. Its fields are private: every change goes
//! through the methods below.

use std::collections::VecDeque;

use bytes::Bytes;

use super::ItemKey;
use crate::core::{ConnId, Map, SeededState, Time, Version};

/// An item being handed to its new owner, until a retrieve confirms it.
#[derive(Debug, Clone)]
pub(crate) struct Handoff {
    /// The value (empty: a tombstone, handed to rs2p owners only).
    pub value: Bytes,
    /// Its version (zero: unversioned).
    pub version: Version,
    /// The connection it was last sent on, while it awaits confirmation.
    target: Option<ConnId>,
    /// When it was last sent (a check unanswered past the retry time fails).
    sent_at: Time,
    /// Sends so far (it is kept here after the last one fails).
    attempts: u32,
}

impl Handoff {
    /// Sends so far.
    pub(crate) fn attempts(&self) -> u32 {
        self.attempts
    }
}

/// Items in flight to their new owners, and the queue of those to send.
#[derive(Debug)]
pub(crate) struct Handoffs {
    items: Map<ItemKey, Handoff>,
    /// Items to send (again), in order; an item dropped meanwhile is skipped.
    queue: VecDeque<ItemKey>,
    /// Items sent and not yet confirmed or requeued (those with a target).
    in_flight: usize,
}

impl Handoffs {
    /// An empty table, its map keyed from `seed`.
    pub(crate) fn with_seed(seed: u64) -> Self {
        Handoffs { items: SeededState::new(seed, 101).map(), queue: VecDeque::new(), in_flight: 0 }
    }

    /// Items in the table (queued or in flight).
    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    /// True if `item` is being handed over.
    pub(crate) fn contains(&self, item: &ItemKey) -> bool {
        self.items.contains_key(item)
    }

    /// The handoff of `item`, if any.
    pub(crate) fn get(&self, item: &ItemKey) -> Option<&Handoff> {
        self.items.get(item)
    }

    /// Queues `item` with its value and version; false if already there.
    pub(crate) fn add(&mut self, item: ItemKey, value: Bytes, version: Version, now: Time) -> bool {
        if self.items.contains_key(&item) {
            return false;
        }
        self.items.insert(item, Handoff { value, version, target: None, sent_at: now, attempts: 0 });
        self.queue.push_back(item);
        true
    }

    /// The next queued item to send, while fewer than `max_in_flight` are
    /// unconfirmed: its value and version.
    pub(crate) fn next_to_send(&mut self, max_in_flight: usize) -> Option<(ItemKey, Bytes, Version)> {
        while self.in_flight < max_in_flight {
            let item = self.queue.pop_front()?;
            match self.items.get(&item) {
                Some(h) if h.target.is_none() => return Some((item, h.value.clone(), h.version)),
                _ => continue,
            }
        }
        None
    }

    /// `item` was sent on `conn` at `now`: it counts as in flight.
    pub(crate) fn sent(&mut self, item: ItemKey, conn: ConnId, now: Time) {
        if let Some(h) = self.items.get_mut(&item) {
            if h.target.replace(conn).is_none() {
                self.in_flight += 1;
            }
            h.sent_at = now;
            h.attempts += 1;
        }
    }

    /// Forgets `item` (confirmed, or given up); returns what it carried.
    pub(crate) fn remove(&mut self, item: &ItemKey) -> Option<Handoff> {
        let h = self.items.remove(item)?;
        if h.target.is_some() {
            self.in_flight -= 1;
        }
        Some(h)
    }

    /// Puts a sent item back in the queue, to be sent again.
    pub(crate) fn requeue(&mut self, item: ItemKey) {
        if let Some(h) = self.items.get_mut(&item) {
            if h.target.take().is_some() {
                self.in_flight -= 1;
            }
            self.queue.push_back(item);
        }
    }

    /// Items sent before `before` and still unconfirmed.
    pub(crate) fn overdue(&self, before: Time) -> Vec<ItemKey> {
        self.items.iter().filter(|(_, h)| h.target.is_some() && h.sent_at < before).map(|(k, _)| *k).collect()
    }

    /// Items in flight on `conn`.
    pub(crate) fn sent_on(&self, conn: ConnId) -> Vec<ItemKey> {
        self.items.iter().filter(|(_, h)| h.target == Some(conn)).map(|(k, _)| *k).collect()
    }

    /// Forgets everything.
    pub(crate) fn clear(&mut self) {
        self.items.clear();
        self.queue.clear();
        self.in_flight = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ring::{HashMethod, U512};

    fn item(n: u64) -> ItemKey {
        (HashMethod::Sha256, U512::from(n))
    }

    #[test]
    fn in_flight_counts_sent_items_whatever_happens_to_them() {
        let mut h = Handoffs::with_seed(1);
        for n in 0..4 {
            assert!(h.add(item(n), Bytes::from_static(b"v"), Version::ZERO, 0));
        }
        assert!(!h.add(item(0), Bytes::new(), Version::ZERO, 0), "added twice");
        let (a, _, _) = h.next_to_send(2).unwrap();
        h.sent(a, ConnId(7), 10);
        let (b, _, _) = h.next_to_send(2).unwrap();
        h.sent(b, ConnId(8), 10);
        assert!(h.next_to_send(2).is_none(), "two in flight is the bound");
        assert_eq!(h.sent_on(ConnId(7)), vec![a]);
        assert_eq!(h.overdue(11).len(), 2);
        h.requeue(a);
        assert!(h.remove(&b).is_some());
        // Both slots are free again; the requeued item comes after the queue.
        let order: Vec<ItemKey> = std::iter::from_fn(|| {
            let (i, _, _) = h.next_to_send(2)?;
            h.sent(i, ConnId(9), 20);
            Some(i)
        })
        .collect();
        assert_eq!(order.len(), 2);
        assert!(!order.contains(&a), "{order:?}");
        assert!(h.remove(&order[0]).is_some() && h.remove(&order[1]).is_some());
        assert_eq!(h.next_to_send(2).map(|x| x.0), Some(a));
        h.sent(a, ConnId(9), 30);
        h.remove(&a);
        assert_eq!(h.len(), 0);
        assert!(h.next_to_send(1).is_none());
        assert_eq!(h.in_flight, 0);
    }
}
