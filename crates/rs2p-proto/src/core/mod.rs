//! The sans-IO node: one state machine for the mesh and chord protocols.
//!
//! A [`Node`] owns no sockets, tasks, clocks or randomness. The driver (the
//! tokio shell of the `rs2p` crate, or the in-memory `sim` network) feeds it events
//! (a connection opened, bytes arrived, a timer fired, a user call) and drains
//! [`Action`]s (send these bytes, dial that address, close, report an event).
//!
//! The mesh half lives in [`crate::mesh`], the chord half in [`crate::chord`];
//! both are `impl Node` blocks over the state defined here.

mod config;
pub(crate) mod hasher;
mod inbound;
mod metrics;
mod outbound;
mod stats;
mod tls_options;
mod types;
mod version;

use std::collections::VecDeque;

use bytes::Bytes;

pub use crate::chord::Owner;
pub use config::{Config, Kind};
pub use hasher::mix64;
pub(crate) use hasher::{Map, SeededState};
pub use inbound::{ConnReader, DecodeContext, Inbound};
pub use metrics::{BadInput, Conflict, Counters, LinksByKind, NodeMetrics};
pub use outbound::Outgoing;
pub use stats::NodeStats;
pub use tls_options::{Fingerprint, TlsIdentity, TlsOptions, TLS_HANDSHAKE_TIMEOUT_MS};
pub use types::{Action, ConnId, Event, GetError, PeerId, Received, ReqId, Time};
pub use version::{Hlc, Version};

use crate::chord::{ChordState, GetState};
use crate::mesh::{Conn, RecentIds};
use crate::wire::{flags, Compression, Message};

/// A peer whose link closed is not re-dialed from peer lists for this long.
pub(crate) const REDIAL_BACKOFF_MS: u64 = 10_000;

/// ... unless it would be a ring neighbour: then only for this long.
pub(crate) const NEIGHBOUR_REDIAL_MS: u64 = 1_000;

/// A py2p peer closing the survivor of a conflict this soon after it is re-dialed (D8).
const D8_REDIAL_WINDOW_MS: u64 = 10_000;

/// Re-dials in a row after D8 before giving up on the peer.
const D8_MAX_REDIALS: u8 = 3;

/// Bound on errors kept for [`Node::status`].
const MAX_ERRORS: usize = 64;

/// Longest error text kept or logged (errors may quote packets a peer sent).
const MAX_ERROR_LEN: usize = 512;

/// The protocol state of one node.
pub struct Node {
    pub(crate) cfg: Config,
    pub(crate) id: PeerId,
    pub(crate) protocol_id: String,
    pub(crate) conns: Map<ConnId, Conn>,
    /// Handshaken peers: id text → connection.
    pub(crate) routing: Map<PeerId, ConnId>,
    /// Outgoing dials made for a known id, not yet handshaken: id → connection.
    pub(crate) dialing: Map<PeerId, ConnId>,
    pub(crate) recent: RecentIds,
    /// Sends are handed to the driver unencoded ([`Node::defer_encoding`]).
    pub(crate) defer_encoding: bool,
    /// Route requests we made for `reply()`: request id → (created, payload to send).
    pub(crate) route_requests: Map<String, (Time, Vec<Bytes>)>,
    /// Whispers waiting for a connection to finish its handshake.
    pub(crate) deferred: Map<ConnId, Vec<Vec<Bytes>>>,
    pub(crate) chord: ChordState,
    pub(crate) gets: GetState,
    pub(crate) actions: VecDeque<Action>,
    pub(crate) errors: VecDeque<String>,
    pub(crate) next_conn: u64,
    pub(crate) next_req: u64,
    pub(crate) now: Time,
    pub(crate) had_peer: bool,
    pub(crate) closed: bool,
    /// When the link to a peer last closed: peer lists do not re-dial it for a while.
    pub(crate) dial_backoff: Map<PeerId, Time>,
    /// When the node was last ticked (a long gap means we, not our peers, were silent).
    pub(crate) last_tick: Time,
    /// The wall clock minus `now`: `now` is monotonic and drives every
    /// protocol timer; only message timestamps and the times kept on disk
    /// (tombstones) are wall-clock times, so a stepped system clock moves
    /// those and nothing else. Set by [`Node::set_wall_clock`]; 0 in a
    /// simulation, where both clocks are the virtual time.
    pub(crate) wall_offset: i64,
    /// Addresses that failed (dial refused, or no handshake): not dialed
    /// from peer lists until their rest ends, whatever id they come with.
    pub(crate) addr_rest: Map<(String, u16), crate::mesh::AddrRest>,
    /// Rate budget of dials from peer lists: when it was last updated, and
    /// thousandths of a dial left then (a token bucket).
    pub(crate) list_dial_budget: (Time, u64),
    /// Dials started, for any reason (stats).
    pub(crate) dials_started: u64,
    /// Event counters for [`Node::metrics`] (frames, bytes, closes, ...).
    pub(crate) counters: Counters,
    /// The hybrid logical clock that versions this node's writes.
    pub(crate) hlc: Hlc,
}

impl Node {
    /// A node with the given configuration, at time `now` (ms since the Unix epoch).
    pub fn new(cfg: Config, now: Time) -> Node {
        let protocol_id = cfg.protocol.id();
        let id_text = match &cfg.id {
            Some(id) => id.clone(),
            None => crate::wire::node_id(&cfg.out_addr.0, cfg.out_addr.1, &cfg.protocol, &cfg.salt),
        };
        let id = PeerId::parse(id_text.as_bytes()).unwrap_or_else(|| {
            // A configured id that is not base58 is replaced by a derived one.
            let derived = crate::wire::node_id(&cfg.out_addr.0, cfg.out_addr.1, &cfg.protocol, &cfg.salt);
            PeerId::parse(derived.as_bytes()).expect("derived ids are base58")
        });
        let seed = cfg.seed;
        let state = |purpose: u64| SeededState::new(seed, purpose);
        Node {
            recent: RecentIds::new(cfg.max_recent_ids, seed),
            defer_encoding: false,
            chord: ChordState::with_seed(seed),
            gets: GetState::with_seed(seed),
            cfg,
            id,
            protocol_id,
            conns: state(1).map(),
            routing: state(2).map(),
            dialing: state(3).map(),
            route_requests: state(4).map(),
            deferred: state(5).map(),
            actions: VecDeque::new(),
            errors: VecDeque::new(),
            next_conn: 1,
            next_req: 1,
            now,
            had_peer: false,
            closed: false,
            dial_backoff: state(6).map(),
            last_tick: now,
            wall_offset: 0,
            addr_rest: state(7).map(),
            list_dial_budget: (now, crate::mesh::LIST_DIAL_BURST * 1000),
            dials_started: 0,
            counters: Counters::default(),
            hlc: Hlc::default(),
        }
    }

    /// A version for a write made here now.
    pub(crate) fn next_version(&mut self) -> Version {
        // The id's low 64 bits (ids are 384-bit hashes: the high bytes of
        // the 512-bit integer are zero).
        let writer = self.id.value().as_limbs()[0];
        Version { hlc: self.hlc.tick(self.wall_now()), writer }
    }

    /// Takes in a version from the wire: false (refused, counted and
    /// logged) if it is dated too far ahead of our clock.
    pub(crate) fn observe_version(&mut self, v: Version) -> bool {
        if v.is_zero() {
            return true;
        }
        let (wall, skew) = (self.wall_now(), self.cfg.max_clock_skew_ms);
        if self.hlc.observe(v.hlc, wall, skew) {
            return true;
        }
        self.counters.versions_refused += 1;
        let ahead = v.wall_ms().saturating_sub(wall);
        self.record_error(
            None,
            format!(
                "refusing a write dated {ahead} ms ahead of this node's clock (tolerance {skew} ms): check the clocks"
            ),
        );
        false
    }

    /// The last version this node issued or saw (its hybrid clock).
    pub fn clock(&self) -> Version {
        Version { hlc: self.hlc.last(), writer: 0 }
    }

    /// This node's id.
    pub fn id(&self) -> &PeerId {
        &self.id
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The next action for the driver, if any.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// Drains every pending action.
    pub fn drain_actions(&mut self) -> std::collections::vec_deque::Drain<'_, Action> {
        self.actions.drain(..)
    }

    /// `"Nominal"` when nothing went wrong, otherwise the recent errors.
    pub fn status(&self) -> Result<(), Vec<String>> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(self.errors.iter().cloned().collect())
        }
    }

    /// Records an error for [`Node::status`] and logs it.
    pub(crate) fn record_error(&mut self, conn: Option<ConnId>, mut text: String) {
        // A quoted packet can be a whole frame long: keep a short prefix only, and
        // release the rest (64 kept errors must not pin 64 frames).
        if text.len() > MAX_ERROR_LEN {
            let mut end = MAX_ERROR_LEN;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
            text.push_str("...");
            text.shrink_to_fit();
        }
        match conn {
            Some(c) => tracing::warn!(node = %self.id.short(), conn = c.0, "{text}"),
            None => tracing::warn!(node = %self.id.short(), "{text}"),
        }
        if self.errors.len() == MAX_ERRORS {
            self.errors.pop_front();
        }
        self.errors.push_back(text);
    }

    pub(crate) fn alloc_conn(&mut self) -> ConnId {
        let id = ConnId(self.next_conn);
        self.next_conn += 1;
        id
    }

    pub(crate) fn alloc_req(&mut self) -> ReqId {
        let id = ReqId(self.next_req);
        self.next_req += 1;
        id
    }

    pub(crate) fn emit(&mut self, event: Event) {
        self.actions.push_back(Action::Event(event));
    }

    /// Seconds since the epoch by the wall clock, for message timestamps.
    pub(crate) fn now_secs(&self) -> u64 {
        self.wall_now() / 1000
    }

    /// The monotonic clock as last passed in (ms).
    pub fn now_ms(&self) -> Time {
        self.now
    }

    /// Milliseconds since the epoch by the wall clock (see [`Node::set_wall_clock`]).
    pub fn wall_now(&self) -> Time {
        self.now.saturating_add_signed(self.wall_offset)
    }

    /// Tells the node the wall-clock time (ms since the Unix epoch). The
    /// times passed to the other entry points are a monotonic clock and drive
    /// every timer; the wall clock only dates messages and tombstones, so a
    /// system clock stepped by an hour leaves stabilisation, keepalives,
    /// resends and timeouts running as before. The driver calls this on each
    /// tick; without a call both clocks are the same.
    pub fn set_wall_clock(&mut self, wall: Time) {
        self.wall_offset = i64::try_from(i128::from(wall) - i128::from(self.now)).unwrap_or(0);
    }

    /// Moves the node's clock to `now` (never backwards) before a user call
    /// that takes no time (`set`, `delete`, ...), so that the version of a
    /// write is dated when it is made, not at the last event.
    pub fn advance_clock(&mut self, now: Time) {
        self.set_now(now);
    }

    /// Advances the clock (never backwards).
    pub(crate) fn set_now(&mut self, now: Time) {
        if now > self.now {
            self.now = now;
        }
    }

    // ----- driver entry points -----

    /// The driver accepted a connection. Returns its id; the handshake (and for
    /// chord the meta and notifies) are queued at once, uncompressed.
    pub fn on_accepted(&mut self, now: Time) -> ConnId {
        self.set_now(now);
        let conn = self.alloc_conn();
        self.conns.insert(conn, Conn::new(conn, false, self.cfg.max_frame, now));
        self.greet(conn);
        conn
    }

    /// True while another inbound connection fits in
    /// [`Config::max_connections`] without closing one
    /// ([`Node::on_accepted_from`] makes room by closing unfinished handshakes).
    pub fn accepts_more(&self) -> bool {
        !self.closed && self.conns.values().filter(|c| !c.outgoing).count() < self.cfg.max_connections
    }

    /// An outgoing dial requested by [`Action::Dial`] completed.
    pub fn on_dialed(&mut self, conn: ConnId, now: Time) {
        self.set_now(now);
        match self.conns.get_mut(&conn) {
            Some(c) if c.dialing => {
                c.dialing = false;
                c.last_rx = now;
                c.alive_at = now;
                c.opened_at = now;
                self.greet(conn);
            }
            _ => {
                // Closed meanwhile: tell the driver to drop the socket.
                self.actions.push_back(Action::Close { conn });
            }
        }
    }

    /// An outgoing dial failed.
    pub fn on_dial_failed(&mut self, conn: ConnId, reason: &str, now: Time) {
        self.set_now(now);
        if let Some(c) = self.conns.get(&conn) {
            let text = format!("could not connect to {}:{}: {reason}", c.dial_addr.0, c.dial_addr.1);
            if c.probe {
                // Expected while a peer is away: one line per state change, not per try.
                tracing::debug!(node = %self.id.short(), conn = conn.0, "rejoin probe: {text}");
            } else {
                self.record_error(Some(conn), text);
            }
            self.address_failed(conn);
            self.forget_conn(conn, reason);
        }
    }

    /// A connection failed below the protocol before its handshake (the
    /// driver's TLS handshake: refused, broken or too slow). It is
    /// forgotten with `reason`; a dialed address rests as after a failed
    /// dial, so a peer that is not trusted is not dialed again at once.
    pub fn on_transport_failed(&mut self, conn: ConnId, reason: &str, now: Time) {
        self.set_now(now);
        let Some(c) = self.conns.get(&conn) else { return };
        if c.outgoing {
            self.on_dial_failed(conn, reason, now);
        } else {
            self.record_error(Some(conn), format!("closing connection: {reason}"));
            self.forget_conn(conn, reason);
        }
    }

    /// Bytes arrived on a connection.
    pub fn on_data(&mut self, conn: ConnId, data: &[u8], now: Time) {
        self.set_now(now);
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.last_rx = now;
        c.alive_at = now;
        c.bytes_in += data.len() as u64;
        self.counters.bytes_in += data.len() as u64;
        c.decoder.extend(data);
        loop {
            let Some(c) = self.conns.get_mut(&conn) else {
                return;
            };
            match c.decoder.next_body() {
                Ok(Some(body)) => self.on_body(conn, &body),
                Ok(None) => {
                    // While every connection holds at most its share of the bound,
                    // the total is within it: sum only when one holds more.
                    let share = self.cfg.max_buffered_bytes / self.cfg.max_connections.max(1);
                    if c.decoder.pending() > share {
                        self.bound_buffered();
                    }
                    return;
                }
                Err(e) => {
                    self.on_broken_stream(conn, e);
                    return;
                }
            }
        }
    }

    /// Decodes one frame body with the connection's compression list and handles it.
    fn on_body(&mut self, conn: ConnId, body: &[u8]) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let (methods, rs2p) = (c.compression.clone(), c.rs2p);
        let mut decoded = Message::decode_body_ext(body, &methods, self.cfg.max_frame, rs2p);
        if decoded.is_err() {
            // A renegotiation may have just changed the list while the peer
            // still uses the method agreed before: py2p sends `renegotiate
            // "[]"` and then its resend request, both compressed with the old
            // method (§7.2). Any method we advertised is one the peer may
            // use; each container is recognisable and an uncompressed body
            // was already tried, so this cannot misread a valid frame.
            let others: Vec<_> = self.cfg.compression.iter().copied().filter(|m| !methods.contains(m)).collect();
            if !others.is_empty() {
                if let Ok(msg) = Message::decode_body_ext(body, &others, self.cfg.max_frame, rs2p) {
                    decoded = Ok(msg);
                }
            }
        }
        match decoded {
            Ok(msg) => self.on_message(conn, msg),
            Err(e) => self.on_bad_frame(conn, e),
        }
    }

    /// The byte stream of `conn` cannot be split into frames any more: close it.
    fn on_broken_stream(&mut self, conn: ConnId, e: crate::wire::DecodeError) {
        self.counters.bad_input(BadInput::FrameHeader);
        let text = format!("closing connection: {e}");
        self.record_error(Some(conn), text.clone());
        self.close_conn_because(conn, &text);
    }

    /// Keeps the bytes of partial frames over all connections within
    /// `max_buffered_bytes` by closing the connection holding the most.
    fn bound_buffered(&mut self) {
        let total: usize = self.conns.values().map(|c| c.buffered()).sum();
        if total <= self.cfg.max_buffered_bytes {
            return;
        }
        let Some((hog, held)) = self.conns.values().map(|c| (c.id, c.buffered())).max_by_key(|&(_, n)| n) else {
            return;
        };
        let text = format!(
            "closing connection: its partial frame holds {held} bytes, partial frames {total} in all (bound {})",
            self.cfg.max_buffered_bytes
        );
        self.record_error(Some(hog), text.clone());
        self.counters.bad_input(BadInput::BufferBound);
        self.close_conn_because(hog, &text);
    }

    /// The connection was closed by the peer or failed.
    pub fn on_closed(&mut self, conn: ConnId, now: Time) {
        self.set_now(now);
        if let Some(c) = self.conns.get(&conn) {
            let reason = if c.handshaken {
                "connection closed by the peer".to_owned()
            } else {
                "connection closed by the peer during the handshake (is it on another subnet?)".to_owned()
            };
            // D8: after a conflict, py2p registers the connection it closed and then
            // drops (and frees) the one both ends kept, leaving the pair unlinked for
            // good (D23). So when a py2p peer closes our survivor soon after the
            // conflict, dial it again, a bounded number of times.
            let redial = match (c.conflict_survivor, &c.peer, &c.addr) {
                (Some(t), Some(pid), Some(addr))
                    if c.handshaken
                        && !c.rs2p
                        && now.saturating_sub(t) <= D8_REDIAL_WINDOW_MS
                        && c.d8_redials < D8_MAX_REDIALS =>
                {
                    Some((pid.clone(), addr.clone(), c.d8_redials + 1))
                }
                _ => None,
            };
            let seeder = c.handshaken && !c.leeching;
            let addr = c.addr.clone();
            let lost = c.peer.clone().filter(|p| seeder && self.is_ring_neighbour(p)).map(|p| (p, addr));
            self.forget_conn(conn, &reason);
            if seeder {
                self.seeder_vanished();
            }
            if let Some((peer, addr)) = lost {
                self.rejoin_lost(peer, addr);
            }
            if !self.closed {
                if let Some((pid, (host, port), redials)) = redial.filter(|(pid, ..)| !self.is_known(pid)) {
                    match self.connect(&host, port, Some(pid)) {
                        Ok(new) => {
                            if let Some(c) = self.conns.get_mut(&new) {
                                c.d8_redials = redials;
                            }
                        }
                        Err(e) => self.record_error(None, format!("could not re-dial after a conflict: {e}")),
                    }
                }
                // py2p asks its remaining peers for their peer lists after
                // every disconnect. With fingers (dozens of links, each
                // list kilobytes) only the ring neighbours are asked, and
                // the stabilisation goes back to every second.
                if self.uses_fingers() {
                    self.chord.stabilize_every = crate::chord::STABILIZE_MS;
                    self.stabilize();
                } else {
                    self.request_peers();
                }
            }
        }
    }

    /// Timer: expire half-received frames, pending requests, and run maintenance.
    pub fn on_tick(&mut self, now: Time) {
        self.set_now(now);
        let stale: Vec<ConnId> = self
            .conns
            .values()
            .filter(|c| c.buffered() > 0 && now.saturating_sub(c.last_rx) > self.cfg.half_frame_timeout_ms)
            .map(|c| c.id)
            .collect();
        for conn in stale {
            self.record_error(Some(conn), "closing connection: half-sent frame idle too long".to_owned());
            self.counters.bad_input(BadInput::HalfFrameIdle);
            self.close_conn(conn);
        }
        self.recent.prune(self.now_secs());
        let horizon = now.saturating_sub(self.cfg.get_timeout_ms.max(60_000));
        self.route_requests.retain(|_, (t, _)| *t >= horizon);
        let backoff_horizon = now.saturating_sub(REDIAL_BACKOFF_MS);
        self.dial_backoff.retain(|_, t| *t > backoff_horizon);
        self.prune_address_rests();
        self.check_handshakes();
        self.check_liveness();
        self.chord_tick();
    }

    /// Closes every connection (after a graceful chord leave, if the caller did one).
    pub fn close(&mut self) -> Result<(), &'static str> {
        if self.closed {
            return Err("already closed");
        }
        self.closed = true;
        let all: Vec<ConnId> = self.conns.keys().copied().collect();
        for conn in all {
            self.close_conn(conn);
        }
        self.fail_all_gets();
        Ok(())
    }

    /// True once [`Node::close`] ran.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    // ----- connection bookkeeping -----

    /// Closes a connection on our side and forgets it.
    pub(crate) fn close_conn(&mut self, conn: ConnId) {
        self.close_conn_because(conn, "closed by this node");
    }

    /// Closes a connection on our side, with the reason reported in the event.
    pub(crate) fn close_conn_because(&mut self, conn: ConnId, reason: &str) {
        if self.conns.contains_key(&conn) {
            self.actions.push_back(Action::Close { conn });
            self.forget_conn(conn, reason);
        }
    }

    /// Drops all state of a connection (no action emitted but the event).
    pub(crate) fn forget_conn(&mut self, conn: ConnId, reason: &str) {
        let Some(c) = self.conns.remove(&conn) else {
            return;
        };
        self.deferred.remove(&conn);
        if let Some(pid) = &c.peer {
            if self.dial_backoff.len() >= self.cfg.max_pending {
                self.dial_backoff.clear();
            }
            self.dial_backoff.insert(pid.clone(), self.now);
            if self.routing.get(pid) == Some(&conn) {
                self.routing.remove(pid);
                tracing::debug!(node = %self.id.short(), peer = %pid.short(), reason, "peer disconnected");
            }
            if self.dialing.get(pid) == Some(&conn) {
                self.dialing.remove(pid);
            }
        }
        if c.probe && !c.handshaken {
            self.probe_done(conn, false);
        }
        let peer = if c.handshaken { c.peer.clone() } else { None };
        self.emit(Event::Disconnected { conn, peer, reason: reason.to_owned() });
        self.chord_conn_lost(conn, c.keys_in);
    }

    /// Sends the opening messages on a fresh connection.
    fn greet(&mut self, conn: ConnId) {
        self.send_handshake(conn);
        if self.cfg.kind == Kind::Chord {
            self.send_meta(conn);
        }
    }

    /// Frames and queues a message on one connection.
    pub(crate) fn send_on(&mut self, conn: ConnId, msg_type: u8, payload: Vec<Bytes>) {
        let time = self.now_secs();
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if c.dialing {
            return;
        }
        let method = Self::send_method(&self.cfg.compression, c);
        if msg_type == flags::WHISPER || msg_type == flags::BROADCAST {
            c.last_sent = Some((msg_type, payload.clone()));
        }
        // Whispers to rs2p peers carry an empty id: nothing reads a
        // whisper's id, and hashing it at both ends was a tenth of a get's
        // CPU (docs/PROTOCOL.md §16.16).
        let id = (c.rs2p && self.cfg.advertise_capability && msg_type == flags::WHISPER).then_some("");
        let msg = Message { msg_type, sender: self.id.bytes(), time, payload };
        self.push_send(conn, msg, id, method);
    }

    /// Sends an already-built message (a relay) on one connection, keeping its id.
    pub(crate) fn relay_on(&mut self, conn: ConnId, msg: &Message, id: &str) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let method = Self::send_method(&self.cfg.compression, c);
        self.push_send(conn, msg.clone(), Some(id), method);
    }

    /// The compression for frames on a connection: py2p's rule (our first
    /// preference the peer listed), except that rs2p peers get uncompressed
    /// frames: on loopback and LANs compressing small frames costs more time
    /// than it saves, and an rs2p receiver always accepts raw frames.
    fn send_method(preference: &[Compression], c: &Conn) -> Option<Compression> {
        if c.rs2p {
            return None;
        }
        crate::wire::compression::choose(preference, &c.compression)
    }

    /// Handshaken connections, in routing order.
    pub(crate) fn routed_conns(&self) -> Vec<ConnId> {
        self.routing.values().copied().collect()
    }

    /// The peer id behind a connection, if handshaken.
    pub fn peer_of(&self, conn: ConnId) -> Option<&PeerId> {
        self.conns.get(&conn).filter(|c| c.handshaken).and_then(|c| c.peer.as_ref())
    }

    /// The connection to a peer, if handshaken.
    pub fn conn_of(&self, peer: &PeerId) -> Option<ConnId> {
        self.routing.get(peer).copied()
    }

    /// Ids of handshaken peers on connections we opened.
    pub fn outgoing(&self) -> Vec<PeerId> {
        self.routing_filter(true)
    }

    /// Ids of handshaken peers on connections they opened.
    pub fn incoming(&self) -> Vec<PeerId> {
        self.routing_filter(false)
    }

    fn routing_filter(&self, outgoing: bool) -> Vec<PeerId> {
        let mut v: Vec<PeerId> = self
            .routing
            .iter()
            .filter(|(_, c)| self.conns.get(c).is_some_and(|c| c.outgoing == outgoing))
            .map(|(p, _)| p.clone())
            .collect();
        v.sort();
        v
    }

    /// Connections not yet handshaken (accepted or dialed).
    pub fn awaiting(&self) -> Vec<ConnId> {
        let mut v: Vec<ConnId> = self.conns.values().filter(|c| !c.handshaken).map(|c| c.id).collect();
        v.sort();
        v
    }

    /// Number of outgoing links, counting dials in progress (py2p's budget rule).
    pub(crate) fn outgoing_count(&self) -> usize {
        self.conns.values().filter(|c| c.outgoing).count()
    }

    /// Advertised addresses (`host:port`) of the seeding peers, nearest
    /// neighbours first: where a restarted node looks for the ring.
    pub fn seeding_peer_addrs(&self) -> Vec<String> {
        let me = self.id.value();
        let mut peers: Vec<(crate::ring::U512, String)> = self
            .data_storing()
            .into_iter()
            .filter_map(|(pid, conn)| {
                let (host, port) = self.conns.get(&conn)?.addr.clone()?;
                let gap = crate::ring::distance(me, pid.value()).min(crate::ring::distance(pid.value(), me));
                Some((gap, format!("{host}:{port}")))
            })
            .collect();
        peers.sort();
        peers.into_iter().map(|(_, a)| a).collect()
    }

    /// True if the peer on this connection advertised the rs2p capability.
    pub fn is_rs2p(&self, conn: ConnId) -> bool {
        self.conns.get(&conn).is_some_and(|c| c.rs2p)
    }

    /// The compression list this node advertises.
    pub fn advertised_compression(&self) -> &[Compression] {
        &self.cfg.compression
    }
}
