//! The simulated links: for each node, its connection ends and the end
//! each is joined to.
//!
//! Every frame sent is looked up here. One map over all the ends of the
//! network (a `BTreeMap` keyed by node and connection) grew with N: at
//! 5,000 nodes and some 200,000 ends, each look-up walked four or five
//! cold tree nodes. Each node now has its own short vector sorted by
//! connection id (its tens of links fit in a few cache lines), found by
//! the node's index. The answers, and the order in which a node's ends
//! are listed, are those of the former map.

use crate::core::ConnId;

/// The other end of a link: (node index, its connection id).
pub(super) type End = (usize, ConnId);

/// Each node's open connection ends, sorted by connection id.
#[derive(Default)]
pub(super) struct Links {
    /// Indexed by node; each vector sorted by its `ConnId`.
    by_node: Vec<Vec<(ConnId, End)>>,
}

impl Links {
    fn ends(&self, node: usize) -> &[(ConnId, End)] {
        self.by_node.get(node).map_or(&[], Vec::as_slice)
    }

    /// The end joined to `(node, conn)`, if that link is open.
    pub(super) fn get(&self, node: usize, conn: ConnId) -> Option<End> {
        let ends = self.ends(node);
        ends.binary_search_by_key(&conn, |e| e.0).ok().map(|i| ends[i].1)
    }

    /// Joins `(node, conn)` to `other` (one direction: call it for both).
    pub(super) fn insert(&mut self, node: usize, conn: ConnId, other: End) {
        if self.by_node.len() <= node {
            self.by_node.resize_with(node + 1, Vec::new);
        }
        let ends = &mut self.by_node[node];
        match ends.binary_search_by_key(&conn, |e| e.0) {
            Ok(i) => ends[i].1 = other,
            Err(i) => ends.insert(i, (conn, other)),
        }
    }

    /// Forgets the end `(node, conn)`; returns the end it was joined to.
    pub(super) fn remove(&mut self, node: usize, conn: ConnId) -> Option<End> {
        let ends = self.by_node.get_mut(node)?;
        let i = ends.binary_search_by_key(&conn, |e| e.0).ok()?;
        Some(ends.remove(i).1)
    }

    /// Forgets every end of `node`; returns them in connection order.
    pub(super) fn take_node(&mut self, node: usize) -> Vec<(ConnId, End)> {
        self.by_node.get_mut(node).map(std::mem::take).unwrap_or_default()
    }
}
