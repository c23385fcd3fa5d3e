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

    /// The seeding nodes present, as (id, index), in ring order.
    fn seeding_ids(&self) -> Vec<(crate::ring::U512, usize)> {
        let mut ids: Vec<(crate::ring::U512, usize)> = self
            .nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.as_ref().map(|n| (i, n)))
            .filter(|(_, n)| !n.is_leeching())
            .map(|(i, n)| (*n.id().value(), i))
            .collect();
        ids.sort();
        ids
    }

    /// How many seeding nodes are not linked to their true successor or
    /// predecessor among the seeding nodes present (0: the ring is
    /// consistent). Progress for a large ring.
    pub fn ring_mismatches(&self) -> usize {
        let ids = self.seeding_ids();
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

    /// Why the ring is not consistent, for up to `max` of the nodes
    /// [`Sim::ring_mismatches`] counts: for each, its successor and
    /// predecessor against the true ones (by node index), whether a link to
    /// each true one exists, its outgoing and total links, and whether the
    /// true neighbour's address rests (a failed dial). A diagnostic for runs
    /// whose settling stalls.
    pub fn ring_mismatch_report(&self, max: usize) -> Vec<String> {
        let ids = self.seeding_ids();
        let n = ids.len();
        // A node by index; "absent" for an id no node present has (gone,
        // or leeching), "none" for no node at all.
        let name = |v: Option<crate::ring::U512>| match v {
            None => "none".to_owned(),
            Some(v) => match ids.binary_search_by(|(id, _)| id.cmp(&v)) {
                Ok(k) => ids[k].1.to_string(),
                Err(_) => "absent".to_owned(),
            },
        };
        let mut out = Vec::new();
        for k in 0..n {
            if out.len() >= max || n < 2 {
                break;
            }
            let node = self.nodes[ids[k].1].as_ref().expect("alive");
            let succ = node.owner_id(node.successor()).map(|p| *p.value());
            let pred = node.owner_id(node.predecessor()).map(|p| *p.value());
            let (true_succ, true_pred) = (ids[(k + 1) % n], ids[(k + n - 1) % n]);
            if succ == Some(true_succ.0) && pred == Some(true_pred.0) {
                continue;
            }
            let conns = node.mesh.conns();
            let link = |idx: usize| {
                let id = self.nodes[idx].as_ref().map(|m| m.id().clone());
                let c = conns.values().find(|c| c.peer.is_some() && c.peer == id);
                match c {
                    Some(c) => format!(
                        "{}{}",
                        if c.outgoing { "out" } else { "in" },
                        if c.handshaken { "" } else { "-unfinished" }
                    ),
                    None => {
                        let addr = self.nodes[idx].as_ref().map(|m| m.config().out_addr.clone());
                        let rests = addr.is_some_and(|(h, p)| node.mesh.address_rests(&h, p));
                        format!("none{}", if rests { " (address rests)" } else { "" })
                    }
                }
            };
            let out_links = conns.values().filter(|c| c.outgoing).count();
            out.push(format!(
                "node {}: succ {} (true {}, link {}), pred {} (true {}, link {}); {} links, {} outgoing, {} rejoin probes",
                ids[k].1,
                name(succ),
                true_succ.1,
                link(true_succ.1),
                name(pred),
                true_pred.1,
                link(true_pred.1),
                conns.len(),
                out_links,
                node.rejoin_probes(),
            ));
        }
        out
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
