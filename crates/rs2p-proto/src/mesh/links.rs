//! The node's links, side by side in one vector, found through an index.
//!
//! A hash map of links kept each link's whole state (about 500 bytes) in
//! its slots, and keeps between an eighth and over half of them empty (at
//! 63 links, 65 of 128). Here the links sit in a vector that grows by an
//! eighth at a time, and the hash map holds only their positions: a node
//! of 63 links has 63 to 71 slots, and a pass over its links (the liveness
//! pass, a send to all) walks contiguous memory. Boxing each link instead
//! saved as much memory but cost a pointer per link on every pass (10 % of
//! the simulator's CPU); boxing only its rarely read fields, on top of
//! this, saved nothing more.

use super::conn::{Conn, PeerExt};
use crate::core::ConnId;
use crate::core::{Map, SeededState};

/// A vector that is full grows by this fraction of its length (and at least
/// [`MIN_GROWTH`]): at most an eighth of the slots are ever empty, and a
/// link is moved on growth about eight times per doubling, which is rare
/// beside the frames it carries.
const GROWTH_DIVISOR: usize = 8;

/// The smallest growth: the first links come a few at a time.
const MIN_GROWTH: usize = 4;

/// The links of one node, by [`ConnId`], in an order fixed by the order of
/// their arrivals and departures (deterministic, as the simulator needs).
#[derive(Debug)]
pub struct Links<X> {
    /// The links, densely; a removal moves the last one into the hole.
    slots: Vec<Conn<X>>,
    /// Where each link is in `slots`.
    index: Map<ConnId, usize>,
}

impl<X: PeerExt> Links<X> {
    /// No links; the index hashed with `state`'s keys.
    pub(crate) fn new(state: SeededState) -> Self {
        Links { slots: Vec::new(), index: state.map() }
    }

    /// The link `id`.
    pub fn get(&self, id: &ConnId) -> Option<&Conn<X>> {
        self.index.get(id).map(|&i| &self.slots[i])
    }

    /// The link `id`, to change.
    pub fn get_mut(&mut self, id: &ConnId) -> Option<&mut Conn<X>> {
        self.index.get(id).map(|&i| &mut self.slots[i])
    }

    /// There is a link `id`.
    pub fn contains_key(&self, id: &ConnId) -> bool {
        self.index.contains_key(id)
    }

    /// How many links.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// No link at all.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Every link.
    pub fn values(&self) -> std::slice::Iter<'_, Conn<X>> {
        self.slots.iter()
    }

    /// Every link, to change.
    pub fn values_mut(&mut self) -> std::slice::IterMut<'_, Conn<X>> {
        self.slots.iter_mut()
    }

    /// Every link with its id.
    pub fn iter(&self) -> impl Iterator<Item = (&ConnId, &Conn<X>)> {
        self.slots.iter().map(|c| (&c.id, c))
    }

    /// Every link's id.
    pub fn keys(&self) -> impl Iterator<Item = &ConnId> {
        self.slots.iter().map(|c| &c.id)
    }

    /// Adds `conn` under its id, replacing and returning a link of the same
    /// id.
    pub(crate) fn insert(&mut self, conn: Conn<X>) -> Option<Conn<X>> {
        let id = conn.id;
        if let Some(&i) = self.index.get(&id) {
            return Some(std::mem::replace(&mut self.slots[i], conn));
        }
        if self.slots.len() == self.slots.capacity() {
            self.slots.reserve_exact((self.slots.len() / GROWTH_DIVISOR).max(MIN_GROWTH));
        }
        self.index.insert(id, self.slots.len());
        self.slots.push(conn);
        None
    }

    /// Removes the link `id`; the last link takes its place.
    pub(crate) fn remove(&mut self, id: &ConnId) -> Option<Conn<X>> {
        let i = self.index.remove(id)?;
        let gone = self.slots.swap_remove(i);
        if let Some(moved) = self.slots.get(i) {
            self.index.insert(moved.id, i);
        }
        // After a burst of departures (a partition, a restart of many
        // peers), fewer than half the slots used: give the rest back.
        if self.slots.capacity() > MIN_GROWTH && self.slots.len() < self.slots.capacity() / 2 {
            self.slots.shrink_to(self.slots.len() + self.slots.len() / GROWTH_DIVISOR);
        }
        Some(gone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn links() -> Links<()> {
        Links::new(SeededState::new(7, 1))
    }

    #[test]
    fn insert_get_remove_keep_the_index_true() {
        let mut l = links();
        for id in 0..100u64 {
            assert!(l.insert(Conn::new(ConnId(id), id % 2 == 0, 1 << 20, id)).is_none());
        }
        assert_eq!(l.len(), 100);
        // At most an eighth (or MIN_GROWTH) of the slots are empty.
        assert!(l.slots.capacity() <= 100 + 100 / GROWTH_DIVISOR + MIN_GROWTH, "{}", l.slots.capacity());
        // Removals from the front, middle and back: the moved link is still found.
        for id in [0u64, 50, 99, 1, 98] {
            assert_eq!(l.remove(&ConnId(id)).map(|c| c.id), Some(ConnId(id)));
            assert!(l.get(&ConnId(id)).is_none() && !l.contains_key(&ConnId(id)));
        }
        assert_eq!(l.remove(&ConnId(50)).map(|c| c.id), None);
        for id in (0..100u64).filter(|i| ![0, 50, 99, 1, 98].contains(i)) {
            let c = l.get(&ConnId(id)).expect("still there");
            assert_eq!((c.id, c.outgoing, c.opened_at), (ConnId(id), id % 2 == 0, id));
        }
        assert_eq!(l.len(), 95);
        assert_eq!(l.keys().count(), 95);
        // Replacing keeps one entry.
        let old = l.insert(Conn::new(ConnId(2), false, 1 << 20, 1_000)).expect("replaced");
        assert_eq!(old.opened_at, 2);
        assert_eq!(l.get(&ConnId(2)).map(|c| c.opened_at), Some(1_000));
        assert_eq!(l.len(), 95);
        // Emptied, the slots shrink.
        for id in 0..100u64 {
            l.remove(&ConnId(id));
        }
        assert!(l.is_empty() && l.slots.capacity() <= MIN_GROWTH * 2, "{}", l.slots.capacity());
    }
}
