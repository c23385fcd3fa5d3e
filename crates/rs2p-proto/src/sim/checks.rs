//! Checks and conveniences over the whole network: is the ring consistent,
//! settle it, a `get` or `set` run to the end.

use bytes::Bytes;

use super::Sim;
use crate::core::{Event, GetError};

impl Sim {
    /// True when every seeding node is linked to its true successor and
    /// predecessor among the seeding nodes present (O(N log N) plus each
    /// node's routing table once).
    pub fn ring_is_consistent(&mut self) -> bool {
        self.ring_mismatches() == 0
    }

    /// How many seeding nodes are not linked to their true successor or
    /// predecessor among the seeding nodes present (0: the ring is
    /// consistent). Progress for a large ring.
    pub fn ring_mismatches(&self) -> usize {
        let mut ids: Vec<(crate::ring::U512, usize)> = self
            .nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.as_ref().map(|n| (i, n)))
            .filter(|(_, n)| !n.is_leeching())
            .map(|(i, n)| (*n.id().value(), i))
            .collect();
        ids.sort();
        let n = ids.len();
        if n < 2 {
            return 0;
        }
        (0..n)
            .filter(|&k| {
                let node = self.nodes[ids[k].1].as_ref().expect("alive");
                let succ = node.owner_id(node.successor()).map(|p| *p.value());
                let pred = node.owner_id(node.predecessor()).map(|p| *p.value());
                !(succ == Some(ids[(k + 1) % n].0) && pred == Some(ids[(k + n - 1) % n].0))
            })
            .count()
    }

    /// Advances time in 1 s steps until the ring is consistent; false if it
    /// is not after `max_seconds`.
    pub fn settle_ring(&mut self, max_seconds: u32) -> bool {
        for _ in 0..max_seconds {
            if self.ring_is_consistent() {
                return true;
            }
            self.advance(1000);
        }
        self.ring_is_consistent()
    }

    /// A blocking `get` through node `idx` (virtual time moves until it ends).
    pub fn get(&mut self, idx: usize, key: &[u8]) -> Result<Bytes, GetError> {
        let now = self.now;
        let timeout = self.node(idx).config().get_timeout_ms;
        let req = self.node(idx).get(key, timeout, now);
        loop {
            self.run();
            let pos = self
                .events
                .iter()
                .position(|(n, e)| *n == idx && matches!(e, Event::GetDone { req: r, .. } if *r == req));
            if let Some(pos) = pos {
                if let (_, Event::GetDone { result, .. }) = self.events.remove(pos) {
                    return result;
                }
            }
            self.advance(100);
        }
    }

    /// `set` through node `idx`, settled.
    pub fn set(&mut self, idx: usize, key: &[u8], value: &[u8]) {
        self.node(idx).set(key, Bytes::copy_from_slice(value));
        self.run();
    }
}
