//! The chord user API on the core: join, unjoin, set, delete, keys, dump_data.

use bytes::Bytes;

use crate::chord::Node;
use crate::core::{ConnId, Event};
use crate::ring::{distance, HashMethod, U512};

/// Why a chord operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChordError {
    /// `unjoin` with items to hand over and no seeding peer to take them (py2p loses them, D12).
    #[error("no seeding peer to hand {items} items to")]
    NoSeedingPeer {
        /// Items held.
        items: usize,
    },
    /// The node is closed.
    #[error("the node is closed")]
    Closed,
    /// The node is a mesh node.
    #[error("not a chord node")]
    NotChord,
}

impl Node {
    /// True when this node does not store data for the ring.
    pub fn is_leeching(&self) -> bool {
        self.chord.leeching
    }

    fn announce_all(&mut self) {
        let conns: Vec<ConnId> = self.mesh.conns().iter().filter(|(_, c)| !c.dialing).map(|(id, _)| *id).collect();
        for conn in conns {
            self.mesh.send_handshake(conn);
            self.mesh.send_peers(conn);
            self.send_meta(conn);
        }
    }

    /// Starts seeding: tells every connection (handshake, peers, meta + notifies).
    pub fn join(&mut self) -> Result<(), ChordError> {
        if self.mesh.is_closed() {
            return Err(ChordError::Closed);
        }
        if self.chord.leeching {
            // Our arc is new: what we lack may still be with its previous owner.
            self.chord.fallback_until = self.mesh.now().saturating_add(super::FALLBACK_MS);
        }
        self.chord.leeching = false;
        self.chord.ring_changes += 1;
        self.chord.want_keys = true;
        self.announce_all();
        self.ask_for_keys();
        self.find_predecessor_soon();
        Ok(())
    }

    /// Stops seeding and hands every item to its new owner; items are dropped
    /// locally only once the new owner confirms them ([`Node::handoff_pending`]).
    /// Refused, with nothing changed, when items are held and no seeding peer exists.
    pub fn unjoin(&mut self) -> Result<(), ChordError> {
        if self.mesh.is_closed() {
            return Err(ChordError::Closed);
        }
        let items = self.chord.item_count();
        if items > 0 && self.data_storing().is_empty() {
            return Err(ChordError::NoSeedingPeer { items });
        }
        self.chord.leeching = true;
        self.chord.ring_changes += 1;
        self.announce_all();
        self.handoff_everything();
        Ok(())
    }

    /// Stores `value` under `key` in all five tables (an empty value deletes),
    /// and announces a new key to the network.
    pub fn set(&mut self, key: &[u8], value: Bytes) {
        let key = Bytes::copy_from_slice(key);
        // One version for the five copies: the write is one event.
        let version = self.next_version();
        for method in HashMethod::ALL {
            self.route_store_keyed((method, method.hash(&key)), value.clone(), None, Some(key.clone()), version);
        }
        if value.is_empty() {
            self.forget_key(key);
        } else {
            self.note_set(&key);
            if self.add_key(key.clone()) && self.floods_keys() {
                self.announce_key(key, true);
            }
        }
    }

    /// Deletes `key` from all five tables.
    pub fn delete(&mut self, key: &[u8]) {
        self.set(key, Bytes::new());
    }

    /// True if sets and deletes are announced to every node (py2p's
    /// network-wide key list): always with a py2p peer linked, else as
    /// [`crate::core::Config::key_list`] says.
    pub(crate) fn floods_keys(&self) -> bool {
        self.mesh.config().key_list || self.mesh.conns().values().any(|c| c.handshaken && !c.rs2p)
    }

    fn forget_key(&mut self, key: Bytes) {
        let known = self.chord.keys.remove(&key);
        self.tombstone(&key);
        if known {
            self.mesh.emit(Event::KeyDeleted(key.clone()));
        }
        if !self.floods_keys() {
            return;
        }
        // Only to rs2p peers: a delete-notify makes py2p drop the link (D1).
        self.announce_key(key, false);
    }

    /// The network-wide key list as known here, sorted. A leeching node
    /// fetches the list only once asked ([`Node::request_keys`]); see
    /// [`Node::key_list_status`] for whether it is all in.
    pub fn keys(&self) -> Vec<Bytes> {
        if self.walks_keys() {
            return self.walked_keys();
        }
        self.chord.keys.iter().map(Bytes::copy_from_slice).collect()
    }

    /// Local items with `distance(start, key) < distance(end, key)`: those a
    /// node with id `start` is closer to than one with id `end`. `start = 0`
    /// and `end = None` selects everything (py2p's `dump_data`).
    pub fn dump_data(&self, start: &U512, end: Option<&U512>) -> Vec<(HashMethod, U512, Bytes)> {
        let mut out = Vec::new();
        for method in HashMethod::ALL {
            for (key, value) in self.chord.data.items(method) {
                let take = match end {
                    None => true,
                    Some(end) => distance(start, &key) < distance(end, &key),
                };
                if take {
                    out.push((method, key, value));
                }
            }
        }
        out.sort_by_key(|a| (a.0, a.1));
        out
    }

    /// Items held locally, over all five tables.
    pub fn item_count(&self) -> usize {
        self.chord.item_count()
    }

    /// The version of a local table's value of an item, if held.
    pub fn local_version(&self, method: HashMethod, key: &U512) -> Option<crate::core::Version> {
        self.chord.data.version(method, key)
    }

    /// The version of a local table's delete of an item, if remembered.
    pub fn local_tomb(&self, method: HashMethod, key: &U512) -> Option<crate::core::Version> {
        self.chord.data.tomb(method, key)
    }

    /// A local table lookup (no network).
    pub fn local_value(&self, method: HashMethod, key: &U512) -> Option<&Bytes> {
        self.chord.data.get(method, key)
    }
}
