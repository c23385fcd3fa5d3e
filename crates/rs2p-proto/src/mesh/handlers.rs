//! Incoming message dispatch and the mesh handlers, in py2p's order.

use bytes::Bytes;

use super::{Mesh, PeerExt, Upcall, CAPABILITY_FLAG};
use crate::core::{ConnId, PeerId};
use crate::wire::pyjson::{self, PeerEntry};
use crate::wire::{compression, flags, DecodeError, Message};

/// Frames on one connection that may fail to parse before we give up on it.
const MAX_BAD_FRAMES: u32 = 3;

impl<X: PeerExt> Mesh<X> {
    /// A frame that could not be decoded.
    pub(crate) fn on_bad_frame(&mut self, conn: ConnId, err: DecodeError) {
        let renegotiable = matches!(
            err,
            DecodeError::BadPacketLength { .. }
                | DecodeError::MissingHeader { .. }
                | DecodeError::BadMsgType { .. }
                | DecodeError::Undecodable { .. }
        );
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.bad_frames += 1;
        if renegotiable && c.bad_frames <= MAX_BAD_FRAMES {
            // py2p's answer to a frame it cannot parse: ask for no compression, then a resend.
            self.record_error(Some(conn), format!("undecodable frame, renegotiating: {err}"));
            self.send_on(
                conn,
                flags::RENEGOTIATE,
                vec![Bytes::from_static(&[flags::COMPRESSION]), Bytes::from_static(b"[]")],
            );
            self.send_on(conn, flags::RENEGOTIATE, vec![Bytes::from_static(&[flags::RESEND])]);
        } else {
            self.record_error(Some(conn), format!("closing connection after bad frame: {err}"));
            self.counters.bad_input(crate::core::BadInput::BadFrame);
            self.close_conn(conn);
        }
    }

    /// A whole, id-checked message arrived.
    pub(crate) fn on_message(&mut self, conn: ConnId, msg: Message) {
        self.counters.frames_in += 1;
        if msg.msg_type == flags::WHISPER {
            self.note_peer_clock(conn, msg.time);
        }
        // The id is hashed only where it is used: a broadcast's relay, and a
        // message handed to the application.
        let mut id = None;
        match msg.msg_type {
            flags::BROADCAST => {
                // A broadcast without a sub-flag is not relayed (py2p drops the link
                // on one, §4.5); it falls through to the sub-flag check below.
                let text = id.insert(msg.id());
                if msg.sub_flag().is_some() && !self.waterfall(conn, &msg, text) {
                    return;
                }
            }
            flags::RENEGOTIATE => {
                if self.handle_renegotiate(conn, &msg) {
                    return;
                }
            }
            flags::WHISPER => {}
            other => {
                // py2p's resend answer puts the sub-flag here (D4); such a frame has no usable payload.
                tracing::debug!(node = %self.id.short(), conn = conn.0, msg_type = other, "ignoring message of unknown type");
                return;
            }
        }
        let Some(sub) = msg.sub_flag() else {
            self.record_error(Some(conn), "dropping message without a sub-flag".to_owned());
            return;
        };
        let n = msg.payload.len();
        match sub {
            flags::HANDSHAKE if n == 5 => self.handle_handshake(conn, &msg),
            flags::PEERS if n >= 2 => self.handle_peers(conn, &msg),
            flags::RESPONSE if n >= 3 => self.handle_response(conn, &msg),
            flags::REQUEST => self.handle_request(conn, &msg),
            flags::RS2P_PING if n >= 2 => self.handle_ping(conn, &msg.payload),
            // Not the mesh's: the protocol above's (chord), or the
            // application's (whisper and broadcast data, registered handlers).
            _ => self.upcalls.push_back(Upcall::Message { conn, msg, id }),
        }
    }

    /// A whisper's date from `conn` (whispers are sent as they are dated,
    /// unlike relayed broadcasts): the peer's clock offset. An rs2p peer
    /// whose clock is off by more than `Config::max_clock_skew_ms` is
    /// reported once per link (its broadcasts and versions are refused).
    fn note_peer_clock(&mut self, conn: ConnId, time_secs: u64) {
        let wall = self.wall_now() as i64;
        let max = self.cfg.max_clock_skew_ms as i64;
        let Some(c) = self.conns.get_mut(&conn).filter(|c| c.rs2p) else { return };
        // Seconds on the wire (any u64 a peer chooses: clamped, so that no
        // arithmetic below can overflow); an offset under a second is noise.
        let secs = i64::try_from(time_secs).unwrap_or(i64::MAX / 1000).min(i64::MAX / 1000);
        let offset = secs.saturating_mul(1000).saturating_sub(wall).clamp(-(1 << 50), 1 << 50);
        let offset = if offset.unsigned_abs() < 1500 { 0 } else { offset };
        let was = c.clock_offset_ms;
        c.clock_offset_ms = offset;
        if offset.unsigned_abs() <= max.unsigned_abs() {
            // The hybrid clock follows the fastest clock among the peers
            // (to within the second the date carries), so that a write made
            // here after one made there is versioned after it.
            let floor = time_secs.saturating_mul(1000).saturating_sub(1000) << 16;
            self.hlc.observe(floor, wall as u64, max as u64);
        }
        if offset.unsigned_abs() > max.unsigned_abs() && was.unsigned_abs() <= max.unsigned_abs() {
            let peer = c.peer.as_ref().map(|p| p.short().to_string()).unwrap_or_default();
            self.counters.clock_skew_warnings += 1;
            self.record_error(
                Some(conn),
                format!(
                    "peer {peer}'s clock is {:.1} s off ours, past the {:.0} s tolerated: its writes and broadcasts are refused; fix the clocks (NTP)",
                    offset as f64 / 1000.0,
                    max as f64 / 1000.0
                ),
            );
        }
    }

    /// The largest clock offset of a linked rs2p peer (ms; positive: ahead).
    pub fn clock_skew_ms(&self) -> i64 {
        self.conns
            .values()
            .filter(|c| c.handshaken && c.rs2p)
            .map(|c| c.clock_offset_ms)
            .max_by_key(|o| o.unsigned_abs())
            .unwrap_or(0)
    }

    /// §8: age check, duplicate check, relay. True when the message is new.
    ///
    /// py2p's window is 60 s each way. A broadcast arriving from an rs2p
    /// peer is also accepted within `Config::max_clock_skew_ms` more, either
    /// way, so that rings of hosts whose clocks are minutes apart still
    /// share their key lists; ids are remembered that much longer, so a
    /// replay is caught for as long as it could be accepted.
    fn waterfall(&mut self, conn: ConnId, msg: &Message, id: &str) -> bool {
        let now = self.now_secs();
        let slack = if self.is_rs2p(conn) { self.cfg.max_clock_skew_ms / 1000 } else { 0 };
        if msg.time.saturating_add(super::recent::MAX_AGE_SECS + slack) < now {
            tracing::debug!(node = %self.id.short(), conn = conn.0, "dropping expired broadcast");
            return false;
        }
        if msg.time > now.saturating_add(super::recent::MAX_FUTURE_SECS + slack) {
            let ahead = msg.time - now;
            self.record_error(Some(conn), format!("dropping a broadcast dated {ahead} s ahead of our clock"));
            return false;
        }
        // Remembered until it can no longer be accepted (its date, plus the
        // slack any link may grant), so that a replay is always caught.
        let remembered = msg.time.saturating_add(self.cfg.max_clock_skew_ms / 1000 + 1);
        if !self.recent.insert(id, remembered) {
            return false;
        }
        let rs2p_only = (self.rs2p_only)(msg);
        for target in self.routed_conns() {
            let Some(c) = self.conns.get(&target) else {
                continue;
            };
            let to_sender = c.peer.as_ref().is_some_and(|p| p.as_str().as_bytes() == msg.sender.as_ref());
            // Some broadcasts make py2p drop the link (D1): only to rs2p peers.
            if to_sender || (rs2p_only && !c.rs2p) {
                continue;
            }
            self.relay_on(target, msg, id);
        }
        true
    }

    /// §7. True when the message was a renegotiation and is done with.
    fn handle_renegotiate(&mut self, conn: ConnId, msg: &Message) -> bool {
        match (msg.sub_flag(), msg.payload.len()) {
            (Some(flags::COMPRESSION), n) if n >= 2 => {
                let Some(list) = compression::from_json(&msg.payload[1]) else {
                    self.record_error(Some(conn), "renegotiation with a malformed compression list".to_owned());
                    return true;
                };
                let Some(c) = self.conns.get_mut(&conn) else {
                    return true;
                };
                if c.compression != list {
                    c.compression = list;
                    let agreed: Vec<_> =
                        self.cfg.compression.iter().copied().filter(|m| c.compression.contains(m)).collect();
                    let text = compression::to_json(&agreed);
                    self.send_on(
                        conn,
                        flags::RENEGOTIATE,
                        vec![Bytes::from_static(&[flags::COMPRESSION]), text.into()],
                    );
                }
                true
            }
            (Some(flags::RESEND), _) => {
                let last = self.conns.get(&conn).and_then(|c| c.last_sent.clone());
                if let Some((msg_type, payload)) = last {
                    self.send_on(conn, msg_type, payload);
                }
                true
            }
            _ => false,
        }
    }

    fn handle_handshake(&mut self, conn: ConnId, msg: &Message) {
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
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let first_time = !c.handshaken;
        if let Some(old) = c.peer.replace(pid.clone()) {
            if old != pid && self.dialing.get(&old) == Some(&conn) {
                self.dialing.remove(&old);
            }
        }
        c.handshaken = true;
        c.handshaken_at = self.now;
        let outgoing = c.outgoing;
        c.addr = addr;
        c.compression = list;
        c.rs2p = rs2p;
        if self.dialing.get(&pid) == Some(&conn) {
            self.dialing.remove(&pid);
        }
        self.routing.insert(pid.clone(), conn);
        if outgoing {
            self.address_succeeded(conn);
        }
        self.send_peers(conn);
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

    fn handle_peers(&mut self, conn: ConnId, msg: &Message) {
        match pyjson::parse_peers(&msg.payload[1], self.cfg.max_peer_list) {
            Ok(entries) => self.upcalls.push_back(Upcall::PeerList { conn, entries }),
            Err(e) => self.record_error(Some(conn), format!("ignoring peer list: {e}")),
        }
    }

    /// Dials from a peer list that came on `from`, as the protocol above
    /// ranked its entries. A list must not steer us: of the ids offered as
    /// nearer ring neighbours, only the nearest on each side is dialed
    /// (first, with slots and rate kept for them), then the ids the ranking
    /// wants next (nearest first), other ids only while we have fewer than
    /// `max_outgoing`; every dial waits for a free slot (dials in flight,
    /// in all and per peer sending lists, outgoing links, rate), and an
    /// address resting after a failure is passed over before choosing, so
    /// that a dead one does not hide the next candidate.
    pub(crate) fn dial_listed(&mut self, from: ConnId, entries: Vec<(PeerEntry, PeerId, Listed)>) {
        let mut nearest: [Option<(crate::ring::U512, PeerEntry, PeerId)>; 2] = [None, None];
        let mut wanted: Vec<(crate::ring::U512, PeerEntry, PeerId)> = Vec::new();
        let mut others: Vec<(PeerEntry, PeerId)> = Vec::new();
        for (entry, pid, rank) in entries {
            if self.is_known(&pid)
                || (entry.host.as_str(), entry.port) == (self.cfg.out_addr.0.as_str(), self.cfg.out_addr.1)
                || self.address_rests(&entry.host, entry.port)
                || self.in_backoff(&pid, matches!(rank, Listed::Neighbour { .. }))
            {
                continue;
            }
            match rank {
                Listed::Neighbour { after, distance } => {
                    let slot = &mut nearest[usize::from(after)];
                    if slot.as_ref().is_none_or(|(best, _, _)| distance < *best) {
                        *slot = Some((distance, entry, pid));
                    }
                }
                Listed::Wanted { distance } => wanted.push((distance, entry, pid)),
                Listed::Other => others.push((entry, pid)),
            }
        }
        for (_, entry, pid) in nearest.into_iter().flatten() {
            if self.may_dial_from_list(from, &entry.host, entry.port, true) {
                self.dial_from_list(from, &entry.host, entry.port, pid);
            }
        }
        wanted.sort_by_key(|s| s.0);
        for (_, entry, pid) in wanted {
            if !self.list_dial_slot_free(from, true) {
                break;
            }
            self.dial_from_list(from, &entry.host, entry.port, pid);
        }
        // Resting addresses were passed over above, so the first entry that
        // finds no free slot ends the loop: a long list costs no scan of the
        // connections per entry.
        for (entry, pid) in others {
            if self.outgoing_count() >= self.cfg.max_outgoing || !self.list_dial_slot_free(from, false) {
                break;
            }
            self.dial_from_list(from, &entry.host, entry.port, pid);
        }
    }

    fn handle_request(&mut self, conn: ConnId, msg: &Message) {
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

    fn handle_response(&mut self, _conn: ConnId, msg: &Message) {
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

    /// True if the link to this peer closed too recently to dial it from a peer list.
    /// True while a peer whose link closed is not to be dialed again. A
    /// would-be ring neighbour waits less: routing and repair need the ring
    /// re-linked within seconds of a crash, and a neighbour link is never
    /// the one dropped as least efficient, so no dial-close loop follows.
    fn in_backoff(&self, pid: &PeerId, neighbour: bool) -> bool {
        let wait = if neighbour { super::NEIGHBOUR_REDIAL_MS } else { super::REDIAL_BACKOFF_MS };
        self.dial_backoff.get(pid).is_some_and(|t| self.now.saturating_sub(*t) < wait)
    }

    /// True if the id is ours, routed or being dialed.
    pub(crate) fn is_known(&self, pid: &PeerId) -> bool {
        *pid == self.id || self.routing.contains_key(pid) || self.dialing.contains_key(pid)
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
    fn advertised_json(&self) -> String {
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

    /// The peer list as py2p builds it: every routed peer with a known address.
    pub(crate) fn peer_list(&self) -> Vec<PeerEntry> {
        let mut list: Vec<PeerEntry> = self
            .routing
            .iter()
            .filter_map(|(pid, c)| {
                let (host, port) = self.conns.get(c)?.addr.clone()?;
                Some(PeerEntry { host, port, id: pid.to_string() })
            })
            .collect();
        list.sort_by(|a, b| a.id.cmp(&b.id));
        list
    }

    pub(crate) fn send_peers(&mut self, conn: ConnId) {
        let text = pyjson::peers_json(&self.peer_list());
        self.send_on(conn, flags::WHISPER, vec![Bytes::from_static(&[flags::PEERS]), text.into()]);
    }
}

/// How the protocol above ranks an entry of a peer list ([`Mesh::dial_listed`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Listed {
    /// Nearer than our neighbour on one side (`after`: the successor side).
    Neighbour { after: bool, distance: crate::ring::U512 },
    /// Wanted next (chord: a successor-list gap), nearest first.
    Wanted { distance: crate::ring::U512 },
    /// Anything else: dialed only while we have few links.
    Other,
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
