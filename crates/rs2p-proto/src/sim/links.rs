//! The simulated links: for each node, its connection ends and the end
//! each is joined to.
//!
//! Every frame sent is looked up here. One map over all the ends of the
//! network (a `BTreeMap` keyed by node and connection) grew with N: at
//! 5,000 nodes and some 200,000 ends, each look-up walked four or five
//! cold tree nodes. A node's connection ids are handed out in order, so
//! each node now has a window of slots indexed by connection id, from its
//! oldest open connection to its newest: a look-up reads one slot. The
//! answers, and the order in which a node's ends are listed, are those of
//! the former map.

use std::collections::{BTreeMap, VecDeque};

use crate::core::ConnId;

/// The other end of a link: (node index, its connection id).
pub(super) type End = (usize, ConnId);

/// A window wider than this many slots, and more than [`SPARSE_DIV`] times
/// its open ends, moves its oldest open ends to the side map: one link
/// that stays open must not keep a slot for every connection opened and
/// closed since (a churning ring's windows grew threefold in 25 minutes).
const SPARSE_MIN_SLOTS: usize = 64;
/// See [`SPARSE_MIN_SLOTS`].
const SPARSE_DIV: usize = 4;

/// One node's open ends: slot `i` is connection `base + i`; ends older
/// than `base` (a few long-lived links) are in `old`.
#[derive(Default)]
struct Window {
    /// The connection id of the first slot.
    base: u64,
    /// Ends by connection id from `base`; the first and last are open.
    slots: VecDeque<Option<End>>,
    /// Open ends in `slots`.
    open: usize,
    /// Open ends with connection ids below `base`.
    old: BTreeMap<u64, End>,
}

impl Window {
    /// Drops the empty slots at both ends of the window.
    fn trim(&mut self) {
        while self.slots.front().is_some_and(Option::is_none) {
            self.slots.pop_front();
            self.base += 1;
        }
        while self.slots.back().is_some_and(Option::is_none) {
            self.slots.pop_back();
        }
    }

    /// Moves the oldest open ends to `old` while the window is sparse.
    fn compact(&mut self) {
        if self.slots.len() <= SPARSE_MIN_SLOTS || self.slots.len() <= SPARSE_DIV * self.open {
            return;
        }
        while self.slots.len() > 2 * self.open.max(1) {
            let Some(slot) = self.slots.pop_front() else { break };
            if let Some(end) = slot {
                self.old.insert(self.base, end);
                self.open -= 1;
            }
            self.base += 1;
        }
        self.trim();
    }
}

/// Each node's open connection ends.
#[derive(Default)]
pub(super) struct Links {
    /// Indexed by node.
    by_node: Vec<Window>,
}

impl Links {
    /// The end joined to `(node, conn)`, if that link is open.
    pub(super) fn get(&self, node: usize, conn: ConnId) -> Option<End> {
        let w = self.by_node.get(node)?;
        let Some(i) = conn.0.checked_sub(w.base) else {
            return w.old.get(&conn.0).copied();
        };
        *w.slots.get(usize::try_from(i).ok()?)?
    }

    /// Joins `(node, conn)` to `other` (one direction: call it for both).
    pub(super) fn insert(&mut self, node: usize, conn: ConnId, other: End) {
        if self.by_node.len() <= node {
            self.by_node.resize_with(node + 1, Window::default);
        }
        let w = &mut self.by_node[node];
        if w.slots.is_empty() {
            // Every id in `old` stays below `base`.
            w.base = conn.0.max(w.old.last_key_value().map_or(0, |(c, _)| c + 1));
        }
        if conn.0 < w.base && (!w.old.is_empty() || w.slots.is_empty()) {
            w.old.insert(conn.0, other);
            return;
        }
        while conn.0 < w.base {
            w.slots.push_front(None);
            w.base -= 1;
        }
        let i = (conn.0 - w.base) as usize;
        if w.slots.len() <= i {
            w.slots.resize(i + 1, None);
        }
        if w.slots[i].replace(other).is_none() {
            w.open += 1;
        }
    }

    /// Forgets the end `(node, conn)`; returns the end it was joined to.
    pub(super) fn remove(&mut self, node: usize, conn: ConnId) -> Option<End> {
        let w = self.by_node.get_mut(node)?;
        let Some(i) = conn.0.checked_sub(w.base) else {
            return w.old.remove(&conn.0);
        };
        let end = w.slots.get_mut(usize::try_from(i).ok()?)?.take()?;
        w.open -= 1;
        w.trim();
        w.compact();
        Some(end)
    }

    /// Forgets every end of `node`; returns them in connection order.
    pub(super) fn take_node(&mut self, node: usize) -> Vec<(ConnId, End)> {
        let Some(w) = self.by_node.get_mut(node) else { return Vec::new() };
        let w = std::mem::take(w);
        let old = w.old.into_iter().map(|(c, e)| (ConnId(c), e));
        old.chain((w.base..).zip(w.slots).filter_map(|(c, e)| Some((ConnId(c), e?)))).collect()
    }

    /// Slots held for `node` (open or not, the side map's included).
    #[cfg(test)]
    fn slots(&self, node: usize) -> usize {
        self.by_node.get(node).map_or(0, |w| w.slots.len() + w.old.len())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::sim::SimRng;

    /// Random joins and closes, connection ids out of order included: the
    /// same answers as one map over all ends.
    /// Connection ids drawn: wide enough for sparse windows to compact.
    const IDS: u64 = 400;

    #[test]
    fn answers_as_one_map_does() {
        let mut rng = SimRng::new(25);
        let mut links = Links::default();
        let mut map: BTreeMap<(usize, ConnId), End> = BTreeMap::new();
        for _ in 0..20_000 {
            let (node, conn) = (rng.below(8) as usize, ConnId(rng.below(IDS)));
            let other = (rng.below(8) as usize, ConnId(rng.below(IDS)));
            match rng.below(3) {
                0 => {
                    links.insert(node, conn, other);
                    map.insert((node, conn), other);
                }
                1 => assert_eq!(links.remove(node, conn), map.remove(&(node, conn))),
                _ => assert_eq!(links.get(node, conn), map.get(&(node, conn)).copied()),
            }
            if rng.below(500) == 0 {
                let mine: Vec<(ConnId, End)> =
                    map.range((node, ConnId(0))..=(node, ConnId(u64::MAX))).map(|(k, v)| (k.1, *v)).collect();
                map.retain(|k, _| k.0 != node);
                assert_eq!(links.take_node(node), mine);
            }
        }
    }

    /// One link that stays open while thousands come and go: the node
    /// keeps slots for about its open links, not for every id since.
    #[test]
    fn a_long_lived_link_does_not_keep_a_slot_per_later_connection() {
        let mut links = Links::default();
        links.insert(0, ConnId(0), (1, ConnId(0)));
        for c in 1..10_000u64 {
            links.insert(0, ConnId(c), (2, ConnId(c)));
            if c > 3 {
                assert_eq!(links.remove(0, ConnId(c - 3)), Some((2, ConnId(c - 3))));
            }
        }
        assert!(links.slots(0) <= SPARSE_MIN_SLOTS + 2, "{} slots for 4 open links", links.slots(0));
        assert_eq!(links.get(0, ConnId(0)), Some((1, ConnId(0))));
        let all = links.take_node(0);
        assert_eq!(all.first(), Some(&(ConnId(0), (1, ConnId(0)))));
        assert_eq!(all.len(), 4);
    }
}
