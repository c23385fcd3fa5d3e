//! [`Mesh`]: the state of py2p's mesh layer on one node (links, handshakes,
//! peer lists, route requests, broadcast relay) and its entry points.
//!
//! The mesh knows nothing of the protocol above it. It hands that protocol
//! what is not its own as [`Upcall`]s (a message with a sub-flag it does
//! not handle, a link up, a link gone, a peer list), in order, one frame at
//! a time, and keeps the protocol's state of each connection opaquely
//! ([`Conn::ext`]). The node that composes the layers (`crate::chord::node`)
//! drains the upcalls after each frame and each call.

use std::collections::VecDeque;

use bytes::Bytes;

use super::{AwaitingLink, Conn, Links, LostCause, PeerExt, RecentIds, Upcall, PER_LINK_KEEPALIVE_MARKER};
use crate::core::{Action, BadInput, Config, ConnId, Counters, Event, Hlc, Map, PeerId, ReqId, SeededState, Time};
use crate::wire::{Compression, Message};

/// A peer whose link closed is not re-dialed from peer lists for this long.
pub(crate) const REDIAL_BACKOFF_MS: u64 = 10_000;

/// ... unless it would be a ring neighbour: then only for this long.
pub(crate) const NEIGHBOUR_REDIAL_MS: u64 = 1_000;

/// A py2p peer closing the survivor of a conflict this soon after it is re-dialed (D8).
const D8_REDIAL_WINDOW_MS: u64 = 10_000;

/// Re-dials in a row after D8 before giving up on the peer.
const D8_MAX_REDIALS: u8 = 3;

/// Route requests for `reply()` are answered for at least this long (or the
/// get timeout, if longer): a route response may take a few hops.
pub(crate) const ROUTE_REQUEST_KEEP_MS: u64 = 60_000;

/// Bound on errors kept for [`Mesh::status`].
const MAX_ERRORS: usize = 64;

/// Longest error text kept or logged (errors may quote packets a peer sent).
const MAX_ERROR_LEN: usize = 512;

/// The mesh state of one node; `X` is what the protocol above keeps per
/// connection.
pub struct Mesh<X: PeerExt = ()> {
    pub(super) cfg: Config,
    pub(super) id: PeerId,
    pub(super) protocol_id: String,
    pub(super) conns: Links<X>,
    /// Handshaken peers: id text → connection.
    pub(super) routing: Map<PeerId, ConnId>,
    /// Outgoing dials made for a known id, not yet handshaken: id → connection.
    pub(super) dialing: Map<PeerId, ConnId>,
    pub(super) recent: RecentIds,
    /// Sends are handed to the driver unencoded ([`Mesh::defer_encoding`]).
    pub(super) defer_encoding: bool,
    /// Route requests we made for `reply()`: request id → (created, payload to send).
    pub(super) route_requests: Map<String, (Time, Vec<Bytes>)>,
    /// Whispers waiting for a connection to finish its handshake.
    pub(super) deferred: Map<ConnId, Vec<Vec<Bytes>>>,
    pub(super) actions: VecDeque<Action>,
    /// What the protocol above has to handle, in order (see [`Upcall`]).
    pub(super) upcalls: VecDeque<Upcall<X>>,
    /// Markers of our handshake's capability list, as characters: the
    /// mesh's own (per-link keepalive periods), and those the protocol
    /// above adds (chord's "no key list").
    pub(super) markers: Vec<u8>,
    pub(super) errors: VecDeque<String>,
    pub(super) next_conn: u64,
    pub(super) next_req: u64,
    pub(super) now: Time,
    pub(super) had_peer: bool,
    pub(super) closed: bool,
    /// When the link to a peer last closed: peer lists do not re-dial it for a while.
    pub(super) dial_backoff: Map<PeerId, Time>,
    /// Changes of `routing` so far (a link handshaken or gone): the layer
    /// above recomputes what depends on its peers only when it moved.
    pub(super) routing_changes: u64,
    /// When the node was last ticked (a long gap means we, not our peers, were silent).
    pub(super) last_tick: Time,
    /// The earliest liveness deadline as of the last scan: woken much
    /// later than it, the node was starved, not its peers silent.
    pub(super) liveness_at: Option<Time>,
    /// The earliest silence deadline (`alive_at` plus the link's limit)
    /// among the links the last scan kept.
    pub(super) scan_deadline: Option<Time>,
    /// A lower bound on the earliest liveness deadline (exact after a
    /// tick; a link handshaken since lowers it): `next_timeout` reads it
    /// instead of passing over the links after every frame. Frames only
    /// move a link's deadline later, so waking at it is at worst early.
    pub(super) live_timer: Option<Time>,
    /// The last tick's liveness scan found nothing due and passed over no
    /// link (its deadlines stand).
    pub(super) liveness_skipped: bool,
    /// A lower bound on the earliest handshake or half-frame deadline of a
    /// connection (exact after a tick; lowered as connections open and
    /// partial frames arrive), for the same reason.
    pub(super) conn_timer: Option<Time>,
    /// Connections holding bytes of a partial frame (`Conn::buffered() >
    /// 0`): a tick passes over the connections for idle half-sent frames
    /// only when there is one (the pass touched every cold connection).
    pub(super) partial_conns: usize,
    /// Connections whose dial is complete (or that we accepted) still
    /// awaiting the peer's handshake, for the same pass (`mesh/sweep.rs`).
    pub(super) awaiting_conns: usize,
    /// When the next keepalive round is due (`mesh/liveness.rs`).
    pub(super) next_round: Time,
    /// Keepalive rounds so far (draws each round's jitter).
    pub(super) rounds: u64,
    /// The wall clock minus `now`: `now` is monotonic and drives every
    /// protocol timer; only message timestamps and the times kept on disk
    /// (tombstones) are wall-clock times, so a stepped system clock moves
    /// those and nothing else. Set by [`Mesh::set_wall_clock`]; 0 in a
    /// simulation, where both clocks are the virtual time.
    pub(super) wall_offset: i64,
    /// Addresses that failed (dial refused, or no handshake): not dialed
    /// from peer lists until their rest ends, whatever id they come with.
    pub(super) addr_rest: Map<(String, u16), super::AddrRest>,
    /// Rate budget of dials from peer lists: when it was last updated, and
    /// thousandths of a dial left then (a token bucket).
    pub(super) list_dial_budget: (Time, u64),
    /// Dials started, for any reason (stats).
    pub(super) dials_started: u64,
    /// Event counters for the node's metrics (frames, bytes, closes, ...).
    pub(super) counters: Counters,
    /// The hybrid logical clock: it versions the writes of the protocol
    /// above, and follows the dates of the peers' messages.
    pub(super) hlc: Hlc,
    /// Broadcasts only rs2p peers may be relayed (the protocol above says
    /// which: py2p drops the link on some, §13 D1).
    pub(super) rs2p_only: fn(&Message) -> bool,
    /// The protocol above answers rs2p peers with a list of its own (chord
    /// with fingers: its ring neighbours): a handshake from one asks it
    /// ([`Upcall::PeersOffered`]) instead of sending every routed peer.
    pub(super) own_rs2p_lists: bool,
    /// Broadcasts relayed to py2p peers only: the protocol above carries
    /// them to rs2p peers its own way (chord's key-list batches).
    pub(super) py2p_only: fn(&Message) -> bool,
}

impl<X: PeerExt> Mesh<X> {
    /// The mesh state of a node with the given configuration, at time `now`.
    /// Made by the node that plugs a protocol into it (`chord::Node::new`),
    /// which drains its actions and upcalls.
    pub(crate) fn new(cfg: Config, now: Time) -> Mesh<X> {
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
        Mesh {
            recent: RecentIds::new(cfg.max_recent_ids, seed),
            defer_encoding: false,
            cfg,
            id,
            protocol_id,
            conns: Links::new(state(1)),
            routing: state(2).map(),
            dialing: state(3).map(),
            route_requests: state(4).map(),
            deferred: state(5).map(),
            actions: VecDeque::new(),
            upcalls: VecDeque::new(),
            markers: vec![PER_LINK_KEEPALIVE_MARKER],
            errors: VecDeque::new(),
            next_conn: 1,
            next_req: 1,
            now,
            had_peer: false,
            closed: false,
            dial_backoff: state(6).map(),
            last_tick: now,
            routing_changes: 0,
            liveness_at: None,
            scan_deadline: None,
            live_timer: None,
            liveness_skipped: false,
            conn_timer: None,
            partial_conns: 0,
            awaiting_conns: 0,
            next_round: now,
            rounds: 0,
            wall_offset: 0,
            addr_rest: state(7).map(),
            list_dial_budget: (now, super::LIST_DIAL_BURST * 1000),
            dials_started: 0,
            counters: Counters::default(),
            hlc: Hlc::default(),
            rs2p_only: |_| false,
            own_rs2p_lists: false,
            py2p_only: |_| false,
        }
    }

    /// This node's id.
    pub fn id(&self) -> &PeerId {
        &self.id
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    // ----- what the protocol above reads and may change -----

    /// The monotonic clock as last passed in (ms).
    pub fn now(&self) -> Time {
        self.now
    }

    /// Every connection, with the upper layer's state of each.
    pub(crate) fn conns(&self) -> &Links<X> {
        &self.conns
    }

    /// The upper layer's state of a connection, to change.
    pub(crate) fn ext_mut(&mut self, conn: &ConnId) -> Option<&mut X> {
        self.conns.get_mut(conn).map(|c| &mut c.ext)
    }

    /// Marks a dial whose failure is expected (logged at debug level only).
    pub(crate) fn mark_quiet(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.quiet = true;
        }
    }

    /// Handshaken peers: id → connection.
    pub(crate) fn routing(&self) -> &Map<PeerId, ConnId> {
        &self.routing
    }

    /// The peers of [`Mesh::routing`] with their connections, in no
    /// particular order, without a look-up per peer.
    pub(crate) fn routed(&self) -> impl Iterator<Item = (&PeerId, &Conn<X>)> + '_ {
        self.conns.values().filter(|c| c.routed).filter_map(|c| Some((c.peer.as_ref()?, c)))
    }

    /// The connection of a dial in progress toward `peer`, if any.
    pub(crate) fn dialing_conn(&self, peer: &PeerId) -> Option<ConnId> {
        self.dialing.get(peer).copied()
    }

    /// The event counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The event counters, to count an event of the layer above.
    pub(crate) fn counters_mut(&mut self) -> &mut Counters {
        &mut self.counters
    }

    /// The hybrid clock.
    pub(crate) fn hlc(&self) -> &Hlc {
        &self.hlc
    }

    /// The hybrid clock, to tick or move.
    pub(crate) fn hlc_mut(&mut self) -> &mut Hlc {
        &mut self.hlc
    }

    /// Adds a marker (a character) to our handshake's capability list.
    pub(crate) fn add_marker(&mut self, marker: u8) {
        self.markers.push(marker);
    }

    /// Sets which broadcasts go to rs2p peers only (see [`Mesh::rs2p_only`]).
    pub(crate) fn set_rs2p_only(&mut self, rule: fn(&Message) -> bool) {
        self.rs2p_only = rule;
    }

    /// Lets the protocol above answer the handshakes of rs2p peers with
    /// its own peer list (see [`Mesh::own_rs2p_lists`]); py2p peers still
    /// get every routed peer.
    pub(crate) fn set_own_rs2p_lists(&mut self, on: bool) {
        self.own_rs2p_lists = on;
    }

    /// Sets which broadcasts go to py2p peers only (see [`Mesh::py2p_only`]).
    pub(crate) fn set_py2p_only(&mut self, rule: fn(&Message) -> bool) {
        self.py2p_only = rule;
    }

    /// The next action for the driver, if any.
    pub(crate) fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// Drains every pending action.
    pub(crate) fn drain_actions(&mut self) -> std::collections::vec_deque::Drain<'_, Action> {
        self.actions.drain(..)
    }

    /// Route requests awaiting a response.
    pub(crate) fn route_requests_len(&self) -> usize {
        self.route_requests.len()
    }

    /// Errors kept for [`Mesh::status`].
    pub(crate) fn errors_len(&self) -> usize {
        self.errors.len()
    }

    /// Remembered broadcast ids.
    pub(crate) fn recent_len(&self) -> usize {
        self.recent.len()
    }

    /// Dials started since the node began.
    pub(crate) fn dials_started(&self) -> u64 {
        self.dials_started
    }

    /// The next upcall for the protocol above, if any.
    pub(crate) fn poll_upcall(&mut self) -> Option<Upcall<X>> {
        self.upcalls.pop_front()
    }

    /// `"Nominal"` when nothing went wrong, otherwise the recent errors.
    pub fn status(&self) -> Result<(), Vec<String>> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(self.errors.iter().cloned().collect())
        }
    }

    /// Records an error for [`Mesh::status`] and logs it.
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

    /// Milliseconds since the epoch by the wall clock (see [`Mesh::set_wall_clock`]).
    pub fn wall_now(&self) -> Time {
        self.now.saturating_add_signed(self.wall_offset)
    }

    /// Tells the node the wall-clock time (ms since the Unix epoch); see
    /// `Node::set_wall_clock`.
    pub fn set_wall_clock(&mut self, wall: Time) {
        self.wall_offset = i64::try_from(i128::from(wall) - i128::from(self.now)).unwrap_or(0);
    }

    /// Advances the clock (never backwards).
    pub(crate) fn set_now(&mut self, now: Time) {
        if now > self.now {
            self.now = now;
        }
    }

    // ----- driver entry points -----

    /// The driver accepted a connection. Returns its id; the handshake is
    /// queued at once, uncompressed, and an [`Upcall::Opened`] (the protocol
    /// above may greet too).
    pub fn on_accepted(&mut self, now: Time) -> ConnId {
        self.set_now(now);
        let conn = self.alloc_conn();
        self.conns.insert(Conn::new(conn, false, self.cfg.max_frame, now));
        self.awaiting_changed(false, true);
        self.lower_conn_timer(now.saturating_add(self.cfg.handshake_timeout_ms).saturating_add(1));
        self.greet(conn);
        conn
    }

    /// True while another inbound connection fits in
    /// [`Config::max_connections`] without closing one.
    pub fn accepts_more(&self) -> bool {
        !self.closed && self.conns.values().filter(|c| !c.outgoing).count() < self.cfg.max_connections
    }

    /// An outgoing dial requested by [`Action::Dial`] completed.
    pub fn on_dialed(&mut self, conn: ConnId, now: Time) {
        self.set_now(now);
        match self.conns.get_mut(&conn) {
            Some(c) if c.dialing => {
                c.dialing = false;
                let awaiting = !c.handshaken;
                c.last_rx = now;
                c.alive_at = now;
                c.opened_at = now;
                self.awaiting_changed(false, awaiting);
                self.lower_conn_timer(now.saturating_add(self.cfg.handshake_timeout_ms).saturating_add(1));
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
            if c.quiet {
                // Expected while a peer is away: one line per state change, not per try.
                tracing::debug!(node = %self.id.short(), conn = conn.0, "quiet dial: {text}");
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

    /// The connection was closed by the peer or failed: forgotten, with an
    /// [`Upcall::Lost`] whose cause is [`LostCause::Peer`].
    pub(crate) fn on_closed(&mut self, conn: ConnId, now: Time) {
        self.set_now(now);
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
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
        self.forget_conn_by(conn, &reason, LostCause::Peer);
        if self.closed {
            return;
        }
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
    }

    /// Timer, first half: expire half-received frames, pending requests,
    /// rests and handshakes. The liveness check is the second half
    /// ([`Mesh::liveness_scan`], [`Mesh::close_silent`]).
    pub(crate) fn on_tick(&mut self, now: Time) {
        self.set_now(now);
        let sweep = self.sweep_conns(now);
        for conn in sweep.stale {
            self.record_error(Some(conn), "closing connection: half-sent frame idle too long".to_owned());
            self.counters.bad_input(BadInput::HalfFrameIdle);
            self.close_conn(conn);
        }
        self.recent.prune(self.now_secs());
        let horizon = now.saturating_sub(self.cfg.get_timeout_ms.max(ROUTE_REQUEST_KEEP_MS));
        self.route_requests.retain(|_, (t, _)| *t >= horizon);
        let backoff_horizon = now.saturating_sub(REDIAL_BACKOFF_MS);
        self.dial_backoff.retain(|_, t| *t > backoff_horizon);
        self.prune_address_rests();
        self.close_late_handshakes(sweep.late);
        self.conn_timer = sweep.deadline;
    }

    /// Closes every connection. False if it was closed already.
    pub(crate) fn close(&mut self) -> bool {
        if self.closed {
            return false;
        }
        self.closed = true;
        let all: Vec<ConnId> = self.conns.keys().copied().collect();
        for conn in all {
            self.close_conn(conn);
        }
        true
    }

    /// True once the node was closed.
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
        self.forget_conn_by(conn, reason, LostCause::Local);
    }

    /// Drops all state of a connection, lost for `cause`.
    /// The protocol above gets the connection back ([`Upcall::Lost`]).
    pub(crate) fn forget_conn_by(&mut self, conn: ConnId, reason: &str, cause: LostCause) {
        let Some(c) = self.conns.remove(&conn) else {
            return;
        };
        self.partial_changed(c.buffered() > 0, false);
        self.awaiting_changed(!c.handshaken && !c.dialing, false);
        self.deferred.remove(&conn);
        if let Some(pid) = &c.peer {
            if self.dial_backoff.len() >= self.cfg.max_pending {
                self.dial_backoff.clear();
            }
            self.dial_backoff.insert(pid.clone(), self.now);
            if self.routing.get(pid) == Some(&conn) {
                self.routing.remove(pid);
                self.routing_changes += 1;
                tracing::debug!(node = %self.id.short(), peer = %pid.short(), reason, "peer disconnected");
            }
            if self.dialing.get(pid) == Some(&conn) {
                self.dialing.remove(pid);
            }
        }
        let peer = if c.handshaken { c.peer.clone() } else { None };
        self.emit(Event::Disconnected { conn, peer, reason: reason.to_owned() });
        self.upcalls.push_back(Upcall::Lost { conn: Box::new(c), cause });
    }

    /// Sends the opening messages on a fresh connection.
    pub(super) fn greet(&mut self, conn: ConnId) {
        self.send_handshake(conn);
        self.upcalls.push_back(Upcall::Opened { conn });
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

    pub(super) fn routing_filter(&self, outgoing: bool) -> Vec<PeerId> {
        let mut v: Vec<PeerId> = self
            .routing
            .iter()
            .filter(|(_, c)| self.conns.get(c).is_some_and(|c| c.outgoing == outgoing))
            .map(|(p, _)| p.clone())
            .collect();
        v.sort();
        v
    }

    /// How many times the handshaken peers changed (see [`Mesh::routing`]).
    pub(crate) fn routing_changes(&self) -> u64 {
        self.routing_changes
    }

    /// Connections not yet handshaken (accepted or dialed).
    pub fn awaiting(&self) -> Vec<ConnId> {
        let mut v: Vec<ConnId> = self.conns.values().filter(|c| !c.handshaken).map(|c| c.id).collect();
        v.sort();
        v
    }

    /// Connections not yet handshaken, with where we dialed the ones we opened.
    pub fn awaiting_links(&self) -> Vec<AwaitingLink> {
        let mut v: Vec<AwaitingLink> = self
            .conns
            .values()
            .filter(|c| !c.handshaken)
            .map(|c| AwaitingLink {
                conn: c.id,
                outgoing: c.outgoing,
                dial_addr: c.outgoing.then(|| c.dial_addr.clone()),
            })
            .collect();
        v.sort_by_key(|l| l.conn);
        v
    }

    /// Number of outgoing links, counting dials in progress (py2p's budget rule).
    pub(crate) fn outgoing_count(&self) -> usize {
        self.conns.values().filter(|c| c.outgoing).count()
    }

    /// True if the peer on this connection advertised the rs2p capability.
    pub fn is_rs2p(&self, conn: ConnId) -> bool {
        self.conns.get(&conn).is_some_and(|c| c.rs2p)
    }

    /// The compression list this node advertises.
    pub fn advertised_compression(&self) -> &[Compression] {
        &self.cfg.compression
    }

    // ----- frames decoded and encoded by the driver -----
}
