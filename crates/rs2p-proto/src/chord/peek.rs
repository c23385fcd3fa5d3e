//! Second opinions before "not found" (the rs2p peek extension, 0x2D).
//!
//! A node handing an item to a new owner keeps its copy until the owner
//! confirms it, so during a join or a slow handoff (py2p owners take seconds,
//! and drop some stores) the owner says "missing" while the item still sits
//! one or two nodes before it. Before a get answers "not found", each table
//! that said "missing" is peeked at on the nearest seeding rs2p peers before
//! the item (other than its owner): a peek is answered from the peer's own
//! table, never routed. One value among the answers is the table's answer;
//! only when every peek says "missing" does the table count as missing.

use bytes::Bytes;

use super::get::{Answer, Waiter};
use super::{ItemKey, Owner};
use crate::chord::Node;
use crate::core::{ConnId, ReqId, Version};
use crate::ring::distance;
use crate::wire::{flags, Message};

/// Peers peeked at per table: the node that handed an item over may sit a
/// few nodes before the owner when several joined meanwhile.
const PEEKS_PER_TABLE: usize = 3;

impl Node {
    /// The rs2p peers to peek at for `item`, whose owner said "missing": the
    /// seeding rs2p peers nearest before it, its owner aside (none when we
    /// own it: our own table was checked, and `previous_owner` applies).
    pub(crate) fn second_opinions(&self, item: ItemKey) -> Vec<ConnId> {
        let Owner::Remote(owner) = self.find(&item.1) else {
            return Vec::new();
        };
        let mut peers: Vec<_> = self
            .mesh
            .routing()
            .iter()
            .filter(|(_, c)| **c != owner)
            .filter(|(_, c)| self.mesh.conns().get(c).is_some_and(|c| c.handshaken && !c.ext.leeching && c.rs2p))
            .map(|(pid, c)| (distance(pid.value(), &item.1), *c))
            .collect();
        peers.sort();
        peers.into_iter().take(PEEKS_PER_TABLE).map(|(_, c)| c).collect()
    }

    /// Peeks at `item` for table answer of `req`; false if there is nobody
    /// to peek at (the table is then asked of its owner again).
    pub(crate) fn start_peeks(&mut self, req: ReqId, item: ItemKey) -> bool {
        if let Some((value, version)) = self.local_entry(item) {
            // We hold it ourselves (we handed it over, or own it again).
            self.deliver(item, Waiter::Local(req), Answer::Value(value, version));
            return true;
        }
        let targets = self.second_opinions(item);
        let Some(g) = self.gets.gets.get_mut(&req) else {
            return true;
        };
        if targets.is_empty() {
            return false;
        }
        g.peeks_left[item.0.index()] = targets.len() as u8;
        for conn in targets {
            self.gets.peeks.insert((item, conn), req);
            self.send_lookup(conn, item, flags::RS2P_PEEK);
        }
        true
    }

    /// A `retrieved` from `conn`: true if it answered one of our peeks.
    pub(crate) fn peek_answer(&mut self, conn: ConnId, item: ItemKey, value: &Bytes, version: Version) -> bool {
        let Some(req) = self.gets.peeks.remove(&(item, conn)) else {
            return false;
        };
        let Some(g) = self.gets.gets.get_mut(&req) else {
            return true;
        };
        let i = item.0.index();
        if g.answers[i] != Answer::Open {
            return true;
        }
        if !value.is_empty() {
            g.answers[i] = Answer::Value(value.clone(), version);
        } else if !version.is_zero() {
            // The node before the owner remembers the delete.
            g.answers[i] = Answer::Missing(version);
        } else {
            g.peeks_left[i] = g.peeks_left[i].saturating_sub(1);
            if g.peeks_left[i] == 0 {
                g.answers[i] = Answer::Missing(Version::ZERO);
            }
        }
        self.check_get(req);
        true
    }

    /// A connection went away: its peeks count as "missing".
    pub(crate) fn peeks_conn_lost(&mut self, conn: ConnId) {
        let lost: Vec<ItemKey> = self.gets.peeks.keys().filter(|(_, c)| *c == conn).map(|(i, _)| *i).collect();
        for item in lost {
            self.peek_answer(conn, item, &Bytes::new(), Version::ZERO);
        }
    }

    /// Forgets peeks of gets that are over.
    pub(crate) fn prune_peeks(&mut self) {
        let gets = &self.gets.gets;
        self.gets.peeks.retain(|_, req| gets.contains_key(req));
    }

    /// rs2p peek: answer from our own table, whoever owns the item now.
    pub(crate) fn handle_peek(&mut self, conn: ConnId, msg: &Message) {
        let p = &msg.payload;
        let Some(item) = super::get::parse_item(&p[1], &p[2]) else {
            self.mesh.record_error(Some(conn), "ignoring peek with an unknown table or a bad key".to_owned());
            return;
        };
        let answer = self.table_answer(item);
        self.deliver(item, Waiter::Remote(conn), answer);
    }
}
