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

use std::collections::VecDeque;

use crate::core::ConnId;

/// The other end of a link: (node index, its connection id).
pub(super) type End = (usize, ConnId);

/// One node's open ends: slot `i` is connection `base + i`.
#[derive(Default)]
struct Window {
    /// The connection id of the first slot (its oldest open end).
    base: u64,
    /// Ends by connection id from `base`; the first and last are open.
    slots: VecDeque<Option<End>>,
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
        let i = conn.0.checked_sub(w.base)?;
        *w.slots.get(usize::try_from(i).ok()?)?
    }

    /// Joins `(node, conn)` to `other` (one direction: call it for both).
    pub(super) fn insert(&mut self, node: usize, conn: ConnId, other: End) {
        if self.by_node.len() <= node {
            self.by_node.resize_with(node + 1, Window::default);
        }
        let w = &mut self.by_node[node];
        if w.slots.is_empty() {
            w.base = conn.0;
        }
        while conn.0 < w.base {
            w.slots.push_front(None);
            w.base -= 1;
        }
        let i = (conn.0 - w.base) as usize;
        if w.slots.len() <= i {
            w.slots.resize(i + 1, None);
        }
        w.slots[i] = Some(other);
    }

    /// Forgets the end `(node, conn)`; returns the end it was joined to.
    pub(super) fn remove(&mut self, node: usize, conn: ConnId) -> Option<End> {
        let w = self.by_node.get_mut(node)?;
        let i = usize::try_from(conn.0.checked_sub(w.base)?).ok()?;
        let end = w.slots.get_mut(i)?.take()?;
        // Keep the window from the oldest open end to the newest.
        while w.slots.front().is_some_and(Option::is_none) {
            w.slots.pop_front();
            w.base += 1;
        }
        while w.slots.back().is_some_and(Option::is_none) {
            w.slots.pop_back();
        }
        Some(end)
    }

    /// Forgets every end of `node`; returns them in connection order.
    pub(super) fn take_node(&mut self, node: usize) -> Vec<(ConnId, End)> {
        let Some(w) = self.by_node.get_mut(node) else { return Vec::new() };
        let w = std::mem::take(w);
        (w.base..).zip(w.slots).filter_map(|(c, e)| Some((ConnId(c), e?))).collect()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::sim::SimRng;

    /// Random joins and closes, connection ids out of order included: the
    /// same answers as one map over all ends.
    #[test]
    fn answers_as_one_map_does() {
        let mut rng = SimRng::new(25);
        let mut links = Links::default();
        let mut map: BTreeMap<(usize, ConnId), End> = BTreeMap::new();
        for _ in 0..20_000 {
            let (node, conn) = (rng.below(8) as usize, ConnId(rng.below(64)));
            let other = (rng.below(8) as usize, ConnId(rng.below(64)));
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
}
