//! The chord message handlers: meta, notify, store, retrieve, retrieved.

use bytes::Bytes;

use super::get::{parse_item, Waiter};
use super::{Owner, TOMBSTONE_MS};
use crate::core::{ConnId, Event, Node};
use crate::wire::{flags, Message};

impl Node {
    /// §6.2: a peer says whether it seeds.
    pub(crate) fn handle_meta(&mut self, conn: ConnId, msg: &Message) {
        let Some(leeching) = parse_meta(&msg.payload[1]) else {
            self.record_error(Some(conn), "ignoring chord meta with a non-integer value".to_owned());
            return;
        };
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        if c.leeching == leeching {
            return;
        }
        self.send_meta(conn);
        if let Some(c) = self.conns.get_mut(&conn) {
            c.leeching = leeching;
        }
        if !self.chord.leeching && !leeching {
            self.send_peers(conn);
            self.handoff_to_closer_peers();
        }
        if self.outgoing_count() > self.cfg.max_outgoing {
            self.disconnect_least_efficient();
        }
    }

    /// Sends our meta, then one notify per known key (py2p's `_send_meta`).
    /// The notifies are whispers; a receiver ignores those for keys it saw deleted.
    pub(crate) fn send_meta(&mut self, conn: ConnId) {
        let flag = if self.chord.leeching { "1" } else { "0" };
        self.send_on(
            conn,
            flags::WHISPER,
            vec![Bytes::from_static(&[flags::HANDSHAKE]), Bytes::from_static(flag.as_bytes())],
        );
        let keys: Vec<Bytes> = self.chord.keys.iter().cloned().collect();
        for key in keys {
            self.send_on(conn, flags::WHISPER, vec![Bytes::from_static(&[flags::NOTIFY]), key]);
        }
    }

    /// §6.10: the network-wide key list.
    pub(crate) fn handle_notify(&mut self, conn: ConnId, msg: &Message) {
        let key = msg.payload[1].clone();
        if msg.payload.len() >= 3 {
            // A delete-notify (py2p crashes on these, D1; we handle them).
            self.chord.keys.remove(&key);
            self.tombstone(key.clone());
            self.emit(Event::KeyDeleted(key));
            return;
        }
        if msg.msg_type == flags::WHISPER && self.chord.tombstones.contains_key(&key) {
            tracing::debug!(node = %self.id.short(), conn = conn.0, "ignoring stale notify for a deleted key");
            return;
        }
        self.chord.tombstones.remove(&key);
        self.add_key(key);
    }

    pub(crate) fn add_key(&mut self, key: Bytes) -> bool {
        if self.chord.keys.contains(&key) {
            return false;
        }
        if self.chord.keys.len() >= self.cfg.max_keys {
            self.record_error(None, format!("key list full ({} keys): key not recorded", self.cfg.max_keys));
            return false;
        }
        self.chord.keys.insert(key.clone());
        self.emit(Event::KeyAdded(key));
        true
    }

    pub(crate) fn tombstone(&mut self, key: Bytes) {
        if self.chord.tombstones.len() >= self.cfg.max_keys {
            let horizon = self.now.saturating_sub(TOMBSTONE_MS);
            self.chord.tombstones.retain(|_, t| *t > horizon);
            if self.chord.tombstones.len() >= self.cfg.max_keys {
                return;
            }
        }
        self.chord.tombstones.insert(key, self.now);
    }

    /// §6.7: store (forward to a closer node, else keep; empty deletes).
    pub(crate) fn handle_store(&mut self, conn: ConnId, msg: &Message) {
        let p = &msg.payload;
        let Some(item) = parse_item(&p[1], &p[2]) else {
            self.record_error(Some(conn), "ignoring store with an unknown table or a bad key".to_owned());
            return;
        };
        self.route_store(item, p[3].clone(), Some(conn));
    }

    /// Routes a store: to the owner, or into the local table.
    pub(crate) fn route_store(&mut self, item: super::ItemKey, value: Bytes, from: Option<ConnId>) {
        match self.find(&item.1) {
            Owner::Remote(c) if Some(c) != from => self.send_store(c, item, value),
            _ => self.store_local(item, value),
        }
    }

    pub(crate) fn send_store(&mut self, conn: ConnId, item: super::ItemKey, value: Bytes) {
        let payload = vec![
            Bytes::from_static(&[flags::STORE]),
            Bytes::from_static(item.0.name().as_bytes()),
            Bytes::from(crate::wire::base58::encode(&item.1)),
            value,
        ];
        self.send_on(conn, flags::WHISPER, payload);
    }

    /// Writes the local table (an empty value deletes; deleting a missing item is a no-op).
    pub(crate) fn store_local(&mut self, item: super::ItemKey, value: Bytes) {
        let data = &mut self.chord.data;
        if value.is_empty() {
            data.remove(item.0, &item.1);
        } else if data.len(item.0) >= self.cfg.max_items && !data.contains(item.0, &item.1) {
            self.record_error(None, format!("table {} is full: item not stored", item.0));
        } else {
            data.insert(item.0, &item.1, value);
        }
        // A newer value supersedes any handoff in flight for the item.
        self.chord.handoff.remove(&item);
    }

    /// §6.8: retrieve.
    pub(crate) fn handle_retrieve(&mut self, conn: ConnId, msg: &Message) {
        let p = &msg.payload;
        let Some(item) = parse_item(&p[1], &p[2]) else {
            self.record_error(Some(conn), "ignoring retrieve with an unknown table or a bad key".to_owned());
            return;
        };
        self.route_retrieve(item, Waiter::Remote(conn), Some(conn));
    }

    /// §6.8: retrieved; unsolicited answers are dropped.
    pub(crate) fn handle_retrieved(&mut self, conn: ConnId, msg: &Message) {
        let p = &msg.payload;
        let Some(item) = parse_item(&p[1], &p[2]) else {
            self.record_error(Some(conn), "ignoring retrieved with an unknown table or a bad key".to_owned());
            return;
        };
        if !self.answer_pending(item, p[3].clone()) {
            tracing::debug!(node = %self.id.short(), conn = conn.0, "dropping an answer nobody asked for");
        }
    }

    /// Chord maintenance on each tick.
    pub(crate) fn chord_tick(&mut self) {
        if self.cfg.kind == crate::core::Kind::Chord
            && self.now.saturating_sub(self.chord.last_stabilize) >= super::STABILIZE_MS
        {
            self.chord.last_stabilize = self.now;
            self.stabilize();
        }
        self.get_tick();
        self.handoff_tick();
        if self.chord.tombstones.len() > 1024 {
            let horizon = self.now.saturating_sub(TOMBSTONE_MS);
            self.chord.tombstones.retain(|_, t| *t > horizon);
        }
    }

    /// Chord cleanup when a connection is gone.
    pub(crate) fn chord_conn_lost(&mut self, conn: ConnId) {
        self.get_conn_lost(conn);
        self.handoff_conn_lost(conn);
    }
}

/// py2p reads the meta value with Python's `int()`: surrounding spaces, a sign
/// and leading zeros are accepted; non-zero means leeching.
fn parse_meta(packet: &[u8]) -> Option<bool> {
    let text = std::str::from_utf8(packet).ok()?.trim();
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit() || b == b'_') || digits.starts_with('_') {
        return None;
    }
    Some(digits.bytes().any(|b| (b'1'..=b'9').contains(&b)))
}

#[cfg(test)]
mod tests {
    use super::parse_meta;

    #[test]
    fn meta_is_parsed_like_python_int() {
        assert_eq!(parse_meta(b"0"), Some(false));
        assert_eq!(parse_meta(b"1"), Some(true));
        assert_eq!(parse_meta(b" +01 "), Some(true));
        assert_eq!(parse_meta(b"-0"), Some(false));
        assert_eq!(parse_meta(b"x"), None);
        assert_eq!(parse_meta(b""), None);
    }
}
