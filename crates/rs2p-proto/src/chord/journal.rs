//! The change journal: every write to the five tables and to the key list,
//! in order, for the driver to make durable (the core does no I/O).
//!
//! Off unless [`Config::journal`](crate::core::Config::journal) is set. The
//! driver drains it with [`Node::take_changes`](crate::chord::Node::take_changes)
//! and commits each batch in one transaction; a restored node is filled with
//! the journal off, so loading writes nothing back.

use bytes::Bytes;

use crate::core::{Time, Version};
use crate::ring::{HashMethod, U512};

/// One change to persist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// An item was stored (`Some`) or removed (`None`).
    Item {
        /// Its table.
        table: HashMethod,
        /// Its adjusted hash.
        hash: U512,
        /// The new value, or `None` for a removal.
        value: Option<Bytes>,
        /// The value's version ([`Version::ZERO`]: none, or a removal).
        version: Version,
    },
    /// An item's delete is remembered at this version (`Some`), or forgotten.
    ItemTombstone {
        /// Its table.
        table: HashMethod,
        /// Its adjusted hash.
        hash: U512,
        /// The delete's version; `None` when the tombstone is forgotten.
        version: Option<Version>,
    },
    /// A key entered (`true`) or left (`false`) the network-wide key list.
    Key {
        /// The key.
        key: Bytes,
        /// Whether it is now listed.
        listed: bool,
    },
    /// Every item of a table, and its tombstones, were dropped (a node back
    /// after longer than deletes are remembered).
    DropTable {
        /// The table.
        table: HashMethod,
    },
    /// A key's delete was remembered at this time (`Some`), or forgotten.
    Tombstone {
        /// The key.
        key: Bytes,
        /// When it was deleted; `None` when the tombstone is cleared.
        at: Option<Time>,
    },
}

/// A switchable list of changes.
#[derive(Debug, Default)]
pub(crate) struct Journal {
    on: bool,
    changes: Vec<Change>,
}

impl Journal {
    pub(crate) fn set_enabled(&mut self, on: bool) {
        self.on = on;
        if !on {
            self.changes = Vec::new();
        }
    }

    /// Records a change if the journal is on (the closure builds it only then).
    pub(crate) fn record(&mut self, change: impl FnOnce() -> Change) {
        if self.on {
            self.changes.push(change());
        }
    }

    pub(crate) fn put_back(&mut self, changes: Vec<Change>) {
        if self.on {
            self.changes = changes;
        }
    }

    pub(crate) fn take(&mut self) -> Vec<Change> {
        std::mem::take(&mut self.changes)
    }

    pub(crate) fn len(&self) -> usize {
        self.changes.len()
    }
}

impl crate::chord::Node {
    /// The changes recorded since the last call, oldest first (empty unless
    /// [`Config::journal`](crate::core::Config::journal) is set). Items come
    /// before key-list changes; each kind keeps its own order, which is all
    /// a store of the latest state needs.
    pub fn take_changes(&mut self) -> Vec<Change> {
        let mut out = self.chord.data.journal.take();
        out.extend(self.chord.keys.journal.take());
        out
    }

    /// Puts back changes that could not be written (they go before any
    /// recorded since, so the order is kept).
    pub fn return_changes(&mut self, mut changes: Vec<Change>) {
        let newer = self.chord.data.journal.take();
        changes.extend(newer);
        changes.extend(self.chord.keys.journal.take());
        self.chord.data.journal.put_back(changes);
    }

    /// Changes waiting to be taken.
    pub fn pending_changes(&self) -> usize {
        self.chord.data.journal.len() + self.chord.keys.journal.len()
    }

    /// Loads a node's saved state (before it connects): items, the key list
    /// and tombstones still younger than their horizon. Nothing loaded is
    /// journaled again. The node re-checks what it holds once it has peers:
    /// items it no longer owns are handed over, and an anti-entropy pass
    /// runs soon after its key list is complete.
    ///
    /// `last_alive` is when the node last recorded itself alive (wall ms):
    /// a node away longer than `Config::tombstone_horizon_ms` drops its
    /// items and item tombstones instead (the ring may have forgotten
    /// deletes it never saw; Cassandra's `gc_grace_seconds` rule), and
    /// takes the ring's copies as it rejoins.
    pub fn restore(
        &mut self,
        items: impl IntoIterator<Item = (HashMethod, U512, Bytes, Version)>,
        keys: impl IntoIterator<Item = Bytes>,
        tombstones: impl IntoIterator<Item = (Bytes, Time)>,
        item_tombs: impl IntoIterator<Item = (HashMethod, U512, Version)>,
        last_alive: Option<Time>,
    ) {
        self.chord.data.journal.set_enabled(false);
        self.chord.keys.journal.set_enabled(false);
        let away = last_alive.map(|t| self.wall_now().saturating_sub(t));
        let long_away = away.is_some_and(|a| a > self.mesh.config().tombstone_horizon_ms);
        if long_away && !self.mesh.config().drop_stale_after_horizon {
            self.warn_stale(away.unwrap_or(0));
        }
        let stale = long_away && self.mesh.config().drop_stale_after_horizon;
        let mut dropped = 0usize;
        for (table, hash, value, version) in items {
            if stale {
                dropped += 1;
                continue;
            }
            self.observe_version(version);
            self.chord.data.insert_versioned(table, &hash, value, version);
        }
        let horizon = self.wall_now().saturating_sub(self.mesh.config().tombstone_horizon_ms);
        let max = self.mesh.config().max_item_tombstones;
        for (table, hash, version) in item_tombs {
            // A value written after the delete stands (its tombstone was
            // cleared in memory; the disk may still hold it).
            let newer = self.chord.data.version(table, &hash).is_some_and(|v| v >= version);
            if !stale && !newer && version.wall_ms() >= horizon {
                self.observe_version(version);
                self.chord.data.tombstone(table, &hash, version, max);
            }
        }
        if stale {
            tracing::warn!(
                node = %self.mesh.id().short(),
                "away {:.1} h, longer than deletes are remembered ({:.1} h): dropping {dropped} items held; the ring's copies stand",
                away.unwrap_or(0) as f64 / 3.6e6,
                self.mesh.config().tombstone_horizon_ms as f64 / 3.6e6
            );
        }
        let limits = self.key_limits();
        for key in keys {
            // Past the bound, the rest arrives from peers' lists or not at all.
            let _ = self.chord.keys.add(&key, limits);
        }
        let now = self.wall_now();
        let mut expired = Vec::new();
        for (key, at) in tombstones {
            if now.saturating_sub(at) < super::keylist::TOMBSTONE_MS {
                self.chord.keys.tombstone(&key, at, limits);
            } else {
                expired.push(key);
            }
        }
        // Once peers and the key list are in, our arc is checked at once.
        self.request_repair(self.mesh.config().repair_delay_ms);
        self.set_journal(self.mesh.config().journal);
        if stale {
            // The dropped items leave the disk with the next commit.
            for m in HashMethod::ALL {
                self.chord.data.journal.record(|| Change::DropTable { table: m });
            }
        }
        // Expired tombstones leave the disk with the next commit.
        for key in expired {
            self.chord.keys.journal.record(|| Change::Tombstone { key, at: None });
        }
    }

    /// Turns the journal on or off.
    pub(crate) fn set_journal(&mut self, on: bool) {
        self.chord.data.journal.set_enabled(on);
        self.chord.keys.journal.set_enabled(on);
    }
}
