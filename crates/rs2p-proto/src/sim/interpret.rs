//! The action interpreter: what a node asks for (send, dial, close,
//! events) carried out on the simulated network, and deliveries handed to
//! the node they are for.

use super::lookups::{lookup_frame, Lookup};
use super::queue::Delivery;
use super::{Sim, TRACE_CLOSED};
use crate::core::Action;
use crate::wire::peek_sub_flag;

/// Actions the reused buffer of [`Sim::apply_actions`] may keep room for
/// (a node's burst, a handoff of thousands of items, is not kept).
const ACTIONS_KEEP: usize = 256;

impl Sim {
    pub(super) fn apply_actions(&mut self, idx: usize) -> bool {
        let Some(node) = self.nodes[idx].as_mut() else {
            return false;
        };
        // The buffer of the previous call, reused: one allocation fewer per visit.
        let mut actions = std::mem::take(&mut self.actions);
        actions.extend(node.drain_actions());
        let any = !actions.is_empty();
        for action in actions.drain(..) {
            match action {
                Action::Send { conn, frame } => {
                    if let Some((peer, peer_conn)) = self.links.get(idx, conn).filter(|l| self.reachable(idx, l.0)) {
                        let at = self.now + self.link_latency(idx, peer);
                        self.schedule(at, Delivery::Data { node: peer, conn: peer_conn, bytes: frame });
                    }
                }
                Action::SendMessage { conn, out } => {
                    let Ok(frame) = out.encode() else { continue };
                    if let Some((peer, peer_conn)) = self.links.get(idx, conn).filter(|l| self.reachable(idx, l.0)) {
                        let at = self.now + self.link_latency(idx, peer);
                        self.schedule(at, Delivery::Data { node: peer, conn: peer_conn, bytes: frame });
                    }
                }
                Action::Dial { conn, host, port } => {
                    self.dials += 1;
                    let now = self.now;
                    let target = self.listeners.get(&(host, port)).copied();
                    let cut = target.is_some_and(|t| !self.reachable(idx, t) || self.paused.contains_key(&t));
                    if cut {
                        self.node(idx).on_dial_failed(conn, "connection timed out", now);
                        continue;
                    }
                    match target.filter(|t| self.alive(*t)) {
                        Some(target) => {
                            let accepted = self.node(target).on_accepted(now);
                            self.links.insert(idx, conn, (target, accepted));
                            self.links.insert(target, accepted, (idx, conn));
                            self.node(idx).on_dialed(conn, now);
                        }
                        None => self.node(idx).on_dial_failed(conn, "connection refused", now),
                    }
                }
                Action::Close { conn } => {
                    if let Some(other) = self.links.remove(idx, conn) {
                        self.links.remove(other.0, other.1);
                        // Across a partition the FIN is lost: the other end
                        // finds the link silent, and its writes go nowhere.
                        if self.reachable(idx, other.0) {
                            let at = self.now + self.link_latency(idx, other.0);
                            self.schedule(at, Delivery::Closed { node: other.0, conn: other.1 });
                        }
                    }
                }
                Action::Event(e) => self.events.push((idx, e)),
            }
        }
        if actions.capacity() <= ACTIONS_KEEP {
            self.actions = actions;
        }
        self.arm(idx);
        any
    }

    /// Carries out the actions of every marked node, in index order; a node
    /// marked during the pass below the cursor waits for the next pass (as
    /// a scan of all nodes would). True if any node had actions.
    pub(super) fn apply_dirty(&mut self) -> bool {
        let mut any = false;
        let mut cursor = 0;
        while let Some(&idx) = self.dirty.range(cursor..).next() {
            self.dirty.remove(&idx);
            any |= self.apply_actions(idx);
            cursor = idx + 1;
        }
        any
    }

    /// Hands one delivery to its node, counting and hashing it.
    pub(super) fn deliver(&mut self, what: Delivery) {
        let now = self.now;
        let to = match &what {
            Delivery::Data { node, .. } | Delivery::Closed { node, .. } => *node,
            &Delivery::Timer { node, at } => return self.fire(node, at),
        };
        if let Some(held) = self.paused.get_mut(&to) {
            held.push(what);
            return;
        }
        match what {
            Delivery::Data { node, conn, bytes } => {
                self.frames += 1;
                self.bytes += bytes.len() as u64;
                let sub = bytes.get(4..).and_then(peek_sub_flag).flatten().unwrap_or(0xFF);
                let slot = self.by_sub_flag.entry(sub).or_default();
                slot.0 += 1;
                slot.1 += bytes.len() as u64;
                self.trace.word(now);
                self.trace.word(node as u64);
                self.trace.word(conn.0);
                self.trace.bytes(&bytes);
                if self.track_lookups {
                    match lookup_frame(&bytes) {
                        Some(Lookup::Retrieve(item)) => {
                            *self.lookup_hops.entry(item).or_default() += 1;
                            self.lookup_frames.0 += 1;
                            self.lookup_frames.1 += bytes.len() as u64;
                        }
                        Some(Lookup::Retrieved) => {
                            self.lookup_frames.0 += 1;
                            self.lookup_frames.1 += bytes.len() as u64;
                        }
                        None => {}
                    }
                }
                if let Some(n) = self.nodes[node].as_mut() {
                    n.on_data(conn, &bytes, now);
                    self.dirty.insert(node);
                }
            }
            Delivery::Timer { .. } => {}
            Delivery::Closed { node, conn } => {
                self.trace.word(now);
                self.trace.word(node as u64);
                self.trace.word(conn.0);
                self.trace.word(TRACE_CLOSED);
                if let Some(n) = self.nodes[node].as_mut() {
                    n.on_closed(conn, now);
                    self.dirty.insert(node);
                }
            }
        }
    }
}
