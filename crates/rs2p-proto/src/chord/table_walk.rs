//! A walk over the five tables of a store in key order, a bounded number
//! of keys a step: the replica refresh (our items, to our predecessor) and
//! the promotion of replicas we now own both go this way, so that a node
//! holding a million items never examines them all in one step with its
//! lock held (keepalives went unanswered when it did).

use super::store::ItemStore;
use super::ItemKey;
use crate::ring::{HashMethod, U512};

/// Where a walk stands.
#[derive(Debug)]
pub(crate) struct TableWalk {
    /// The table being walked (an index into [`HashMethod::ALL`]) ...
    table: usize,
    /// ... and the first hash of it not examined yet.
    from: Option<U512>,
}

impl TableWalk {
    /// A walk from the first key of the first table.
    pub(crate) fn new() -> Self {
        TableWalk { table: 0, from: Some(U512::ZERO) }
    }

    /// Every table has been walked.
    pub(crate) fn done(&self) -> bool {
        self.table >= HashMethod::ALL.len()
    }

    /// The next keys of `store`, at most `budget`, going on to the next
    /// table at a table's end.
    pub(crate) fn step(&mut self, store: &mut ItemStore, budget: usize) -> Vec<ItemKey> {
        let mut out = Vec::new();
        while out.len() < budget && !self.done() {
            let m = HashMethod::ALL[self.table];
            let want = budget - out.len();
            let keys = match self.from {
                Some(from) => store.keys_between(m, &from, &U512::MAX, want),
                None => Vec::new(),
            };
            self.from = keys.last().and_then(|k| k.checked_add(U512::from(1u64)));
            if keys.len() < want || self.from.is_none() {
                self.table += 1;
                self.from = Some(U512::ZERO);
            }
            out.extend(keys.into_iter().map(|k| (m, k)));
        }
        out
    }
}
