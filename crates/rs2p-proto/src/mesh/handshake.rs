//! The handshake: ours (id, subnet, address, compression list with the
//! rs2p capability and the markers of the protocol above), and a peer's,
//! with connection conflicts resolved by the shared rule (§6.9).

use bytes::Bytes;

use super::{Mesh, PeerExt, Upcall, CAPABILITY_FLAG, PER_LINK_KEEPALIVE_MARKER};
use crate::core::{ConnId, PeerId};
use crate::wire::{compression, flags, pyjson, Message};

impl<X: PeerExt> Mesh<X> {
    pub(super) fn handle_handshake(&mut self, conn: ConnId, msg: &Message) {
        let p = &msg.payload;
        if p[2].as_ref() != self.protocol_id.as_bytes() {
            let text = format!(
                "peer is on another subnet (protocol id {}, ours {}): disconnecting",
                String::from_utf8_lossy(&p[2]),
                self.protocol_id
            );
            self.record_error(Some(conn), text.clone());
            self.close_conn_because(conn, &text);
            return;
        }
        let Some(pid) = PeerId::parse(&p[1]) else {
            self.record_error(Some(conn), "handshake with an id that is not base58: disconnecting".to_owned());
            self.counters.bad_input(crate::core::BadInput::BadHandshake);
            self.close_conn(conn);
            return;
        };
        if pid == self.id {
            tracing::debug!(node = %self.id.short(), conn = conn.0, "connected to ourselves: closing");
            self.close_conn_because(conn, "this is our own node");
            return;
        }
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let new_outgoing = c.outgoing;
        let other = self.routing.get(&pid).or_else(|| self.dialing.get(&pid)).copied().filter(|o| *o != conn);
        if let Some(other) = other {
            // §6.9: both ends apply the same rule, so they keep the same TCP connection.
            let close_new = (self.id.value() > pid.value()) ^ new_outgoing;
            tracing::debug!(node = %self.id.short(), peer = %pid.short(), close_new, "connection conflict");
            let (survivor, loser) = if close_new { (other, conn) } else { (conn, other) };
            // The survivor inherits the D8 re-dial count, so the recovery stays bounded.
            let redials = self.conns.get(&loser).map_or(0, |c| c.d8_redials);
            self.close_conn_because(loser, "duplicate connection to the same peer");
            if let Some(c) = self.conns.get_mut(&survivor) {
                c.conflict_survivor = Some(self.now);
                c.d8_redials = c.d8_redials.max(redials);
            }
            if close_new {
                return;
            }
        }
        // Malformed JSON here is recorded, and the peer kept: without an address
        // it is left out of peer lists; without a compression list nothing is
        // compressed to it. (py2p's handler raises, which drops the link.)
        let addr = pyjson::parse_addr(&p[3]);
        if addr.is_none() {
            self.record_error(
                Some(conn),
                "handshake with a malformed address packet: peer kept, not listed".to_owned(),
            );
        }
        let list = compression::from_json(&p[4]).unwrap_or_else(|| {
            self.record_error(Some(conn), "handshake with a malformed compression list: none used".to_owned());
            Vec::new()
        });
        let rs2p = has_capability(&p[4]);
        let per_link = rs2p && has_marker(&p[4], PER_LINK_KEEPALIVE_MARKER);
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let first_time = !c.handshaken;
        let mut renamed = None;
        if let Some(old) = c.peer.replace(pid.clone()) {
            if old != pid && self.dialing.get(&old) == Some(&conn) {
                self.dialing.remove(&old);
            }
            if old != pid {
                renamed = Some(old);
            }
        }
        let was_awaiting = !c.handshaken && !c.dialing;
        c.handshaken = true;
        c.handshaken_at = self.now;
        let outgoing = c.outgoing;
        c.addr = addr;
        c.compression = list;
        c.rs2p = rs2p;
        c.per_link_keepalive = per_link;
        self.awaiting_changed(was_awaiting, false);
        if self.dialing.get(&pid) == Some(&conn) {
            self.dialing.remove(&pid);
        }
        // A repeated handshake under another id: the old id no longer routes here.
        if let Some(old) = renamed.filter(|old| self.routing.get(old) == Some(&conn)) {
            self.routing.remove(&old);
        }
        if let Some(prev) = self.routing.insert(pid.clone(), conn).filter(|prev| *prev != conn) {
            if let Some(p) = self.conns.get_mut(&prev) {
                p.routed = false;
            }
        }
        if let Some(c) = self.conns.get_mut(&conn) {
            c.routed = true;
        }
        self.routing_changes += 1;
        self.lower_live_timer();
        if outgoing {
            self.address_succeeded(conn);
        }
        if rs2p && self.own_rs2p_lists {
            self.upcalls.push_back(Upcall::PeersOffered { conn });
        } else {
            self.send_peers(conn);
        }
        if first_time {
            let first = !self.had_peer;
            self.had_peer = true;
            tracing::debug!(node = %self.id.short(), peer = %pid.short(), "peer connected");
            self.emit(crate::core::Event::Connected { conn, peer: pid.clone(), first });
            if let Some(queued) = self.deferred.remove(&conn) {
                for payload in queued {
                    self.send_on(conn, flags::WHISPER, payload);
                }
            }
        }
        self.upcalls.push_back(Upcall::Linked { conn, peer: pid, first: first_time, capabilities: p[4].clone() });
    }

    pub(crate) fn send_handshake(&mut self, conn: ConnId) {
        let (host, port) = self.cfg.out_addr.clone();
        let payload = vec![
            Bytes::from_static(&[flags::HANDSHAKE]),
            self.id.bytes(),
            Bytes::from(self.protocol_id.clone()),
            Bytes::from(pyjson::addr_packet(&host, port)),
            Bytes::from(self.advertised_json()),
        ];
        self.send_on(conn, flags::WHISPER, payload);
    }

    /// The compression list of our handshake, with the capability flag when enabled.
    pub(super) fn advertised_json(&self) -> String {
        let list = compression::to_json(&self.cfg.compression);
        if !self.cfg.advertise_capability {
            return list;
        }
        let mut flag = pyjson::string(&char::from(CAPABILITY_FLAG).to_string());
        for &marker in &self.markers {
            flag = format!("{flag}, {}", pyjson::string(&char::from(marker).to_string()));
        }
        if self.cfg.compression.is_empty() {
            format!("[{flag}]")
        } else {
            format!("{}, {flag}]", &list[..list.len() - 1])
        }
    }
}

/// True if a compression list packet carries the rs2p capability flag.
fn has_capability(text: &[u8]) -> bool {
    has_marker(text, CAPABILITY_FLAG)
}

/// True if a compression list packet carries the marker `flag` (a string
/// holding that character).
pub fn has_marker(text: &[u8], flag: u8) -> bool {
    let Ok(serde_json::Value::Array(items)) = serde_json::from_slice::<serde_json::Value>(text) else {
        return false;
    };
    items.iter().any(|i| i.as_str().is_some_and(|s| s.chars().any(|c| u32::from(c) == u32::from(flag))))
}
