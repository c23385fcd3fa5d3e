//! Route requests and responses: how a `reply` reaches a peer we are not
//! linked to (py2p's request/response broadcast pair), and the `*` request
//! for our peer list.

use bytes::Bytes;

use super::{Mesh, PeerExt, Upcall};
use crate::core::{ConnId, PeerId};
use crate::wire::pyjson::{self, PeerEntry};
use crate::wire::{flags, Message};

impl<X: PeerExt> Mesh<X> {
    pub(super) fn handle_request(&mut self, conn: ConnId, msg: &Message) {
        let p = &msg.payload;
        if p.len() == 2 && p[1].as_ref() == b"*" {
            // The protocol above may answer with fewer peers (chord with
            // fingers sends its ring neighbours), else `send_peers`.
            self.upcalls.push_back(Upcall::PeersWanted { conn });
            return;
        }
        if p.len() < 3 {
            tracing::debug!(node = %self.id.short(), conn = conn.0, "ignoring malformed request");
            return;
        }
        let Some(wanted) = PeerId::parse(&p[2]) else {
            return;
        };
        let Some(&target) = self.routing.get(&wanted) else {
            return;
        };
        let Some((host, port)) = self.conns.get(&target).and_then(|c| c.addr.clone()) else {
            return;
        };
        let entry = PeerEntry { host, port, id: wanted.to_string() };
        let text = pyjson::response_addr_json(&entry);
        self.send_on(conn, flags::BROADCAST, vec![Bytes::from_static(&[flags::RESPONSE]), p[1].clone(), text.into()]);
    }

    pub(super) fn handle_response(&mut self, _conn: ConnId, msg: &Message) {
        let p = &msg.payload;
        let Ok(req) = std::str::from_utf8(&p[1]) else {
            return;
        };
        if !self.route_requests.contains_key(req) {
            return;
        }
        let Some(entry) = pyjson::parse_response_addr(&p[2]) else {
            return;
        };
        let Some(pid) = PeerId::parse(entry.id.as_bytes()) else {
            return;
        };
        let Some((_, payload)) = self.route_requests.remove(req) else {
            return;
        };
        if let Some(&target) = self.routing.get(&pid) {
            self.send_on(target, flags::WHISPER, payload);
            return;
        }
        match self.connect(&entry.host, entry.port, Some(pid)) {
            Ok(target) => self.deferred.entry(target).or_default().push(payload),
            Err(e) => self.record_error(None, format!("reply not delivered: {e}")),
        }
    }
}
