//! The node: the mesh layer with chord plugged into it, as py2p's
//! chord_socket extends mesh_socket. It is chord's top: the mesh below
//! knows nothing of it.
//!
//! A [`Node`] owns no sockets, tasks, clocks or randomness. The driver (the
//! tokio shell of the `rs2p` crate, or the in-memory `sim` network) feeds it
//! events (a connection opened, bytes arrived, a timer fired, a user call)
//! and drains [`Action`]s (send these bytes, dial that address, close,
//! report an event).
//!
//! Each entry point hands the event to the [`Mesh`], then drains what the
//! mesh passed up ([`Upcall`]s, after every frame) into chord
//! ([`crate::chord`]), which reaches back down through `self.mesh`. The
//! mesh never names chord; chord's per-connection state rides in the
//! mesh's connections as [`ChordPeer`].

mod metrics;
mod stats;
mod timeout;

use std::net::IpAddr;

use bytes::Bytes;

use super::{ChordPeer, ChordState, GetState};
use crate::core::{
    Action, Config, ConnId, ConnReader, DecodeContext, Event, Inbound, Kind, PeerId, Received, Time, Version,
};
use crate::mesh::{ConnectError, Listed, LostCause, Mesh, Step, Upcall};
use crate::wire::{Compression, FrameDecoder};

pub use metrics::{LinksByKind, NodeMetrics};
pub use stats::NodeStats;
pub use timeout::{IDLE_WAKE_MS, PACE_MS};

/// The protocol state of one node: the mesh, and chord over it.
pub struct Node {
    /// The mesh layer, with chord's state of each connection in it.
    pub(crate) mesh: Mesh<ChordPeer>,
    /// Chord's own state: items, key list, ring, repair, rejoin.
    pub(crate) chord: ChordState,
    /// Gets in progress and the retrieves they wait for.
    pub(crate) gets: GetState,
}

impl Node {
    /// A node with the given configuration, at time `now` (ms since the Unix epoch).
    pub fn new(cfg: Config, now: Time) -> Node {
        let seed = cfg.seed;
        if seed == 0 && cfg.salt.is_empty() {
            // The shells fill both in (`MeshSocket::bind_with`, `Sim::add_node`);
            // a node made without them is predictable to its peers.
            tracing::warn!(
                "node config with no salt and seed 0: its id depends on its address alone and its hash keys are public"
            );
        }
        let mut mesh = Mesh::new(cfg, now);
        if mesh.config().kind == Kind::Chord && !mesh.config().key_list {
            // Peers learn from our handshake that our `keys()` walks the ring.
            mesh.add_marker(crate::chord::NO_KEY_LIST_MARKER);
        }
        // py2p drops the link on a relayed delete-notify (§13 D1).
        mesh.set_rs2p_only(crate::chord::is_delete_notify);
        let cfg = mesh.config();
        // With fingers, an rs2p peer gets our ring neighbours, not every
        // link (dozens, each ~100 bytes): see `Node::answer_peers`.
        let own_lists = cfg.kind == Kind::Chord && cfg.fingers && cfg.advertise_capability;
        mesh.set_own_rs2p_lists(own_lists);
        if mesh.config().kind == Kind::Chord {
            // rs2p peers get new keys in batches (chord/news.rs), py2p's
            // add-notifies included: relayed as broadcasts to py2p peers only.
            mesh.set_py2p_only(crate::chord::is_add_notify);
        }
        Node { mesh, chord: ChordState::with_seed(seed), gets: GetState::with_seed(seed) }
    }

    /// True on a chord node (a plain mesh node hands every message to the application).
    fn is_chord(&self) -> bool {
        self.mesh.config().kind == Kind::Chord
    }

    // ----- what the mesh passes up -----

    /// Hands every pending upcall to chord (or, on a mesh node, to the
    /// application), until none is left (handling one may queue others).
    pub(crate) fn pump(&mut self) {
        while let Some(up) = self.mesh.poll_upcall() {
            match up {
                Upcall::Opened { conn } => {
                    if self.is_chord() {
                        self.send_meta(conn);
                    }
                }
                Upcall::Linked { conn, peer, first, capabilities } => self.on_linked(conn, peer, first, &capabilities),
                Upcall::Message { conn, msg, id } => {
                    if !(self.is_chord() && self.chord_message(conn, &msg)) {
                        // Whisper and broadcast data go to the application's
                        // queue; other sub-flags to its registered handlers
                        // (the driver drops them if none).
                        let id = id.unwrap_or_else(|| msg.id());
                        self.mesh.emit(Event::Message(Received { conn, msg, id }));
                    }
                }
                Upcall::PeerList { conn, entries } => {
                    let ranked = if self.is_chord() {
                        self.rank_peer_list(entries)
                    } else {
                        entries
                            .into_iter()
                            .filter_map(|e| Some((PeerId::parse(e.id.as_bytes())?, e)))
                            .map(|(pid, e)| (e, pid, Listed::Other))
                            .collect()
                    };
                    self.mesh.dial_listed(conn, ranked);
                }
                Upcall::PeersWanted { conn } => self.answer_peers(conn),
                Upcall::PeersOffered { conn } => self.offer_peers(conn),
                Upcall::Lost { conn, cause } => self.on_lost(*conn, cause),
            }
        }
        self.mark_distant_links();
    }

    /// Sends our peer list to `conn`: with fingers, an rs2p peer gets our
    /// ring neighbours only ([`Node::send_ring_peers`]: all its
    /// stabilisation and successor list look for); a py2p peer, or any
    /// peer of a node without fingers, every routed peer, as py2p sends.
    pub(crate) fn answer_peers(&mut self, conn: ConnId) {
        if self.is_chord() && self.uses_fingers() && self.mesh.is_rs2p(conn) {
            self.send_ring_peers(conn);
        } else {
            self.mesh.send_peers(conn);
        }
    }

    /// Offers our peer list on a new link, or to a peer turning to seeding.
    /// A py2p peer (or any peer of a node without fingers) gets every
    /// routed peer, as py2p sends. With fingers, an rs2p peer gets our ring
    /// neighbours once per link, and only if it is near us (among our
    /// nearest seeding peers on either side, see [`Node::is_ring_near`]):
    /// our neighbours are then its neighbours too. A far peer (a finger,
    /// the bootstrap of a joining node) has no use for them: a joining node
    /// finds its place with a find of its predecessor, whose list it gets.
    pub(crate) fn offer_peers(&mut self, conn: ConnId) {
        if !(self.is_chord() && self.uses_fingers() && self.mesh.is_rs2p(conn)) {
            self.mesh.send_peers(conn);
            return;
        }
        let Some(c) = self.mesh.conns().get(&conn) else {
            return;
        };
        if c.ext.ring_list_sent {
            return;
        }
        let near = c.peer.as_ref().is_some_and(|p| self.is_ring_near(p));
        if !near {
            return;
        }
        if let Some(c) = self.mesh.ext_mut(&conn) {
            c.ring_list_sent = true;
        }
        self.send_ring_peers(conn);
    }

    /// A peer's handshake was processed on `conn`.
    fn on_linked(&mut self, conn: ConnId, peer: PeerId, first: bool, capabilities: &[u8]) {
        let rs2p = self.mesh.is_rs2p(conn);
        let Some(c) = self.mesh.ext_mut(&conn) else {
            return;
        };
        c.no_key_list = rs2p && crate::mesh::has_marker(capabilities, crate::chord::NO_KEY_LIST_MARKER);
        if c.probe {
            self.probe_done(conn, true);
        }
        self.rejoin_linked(&peer);
        // py2p expects every key pushed to it; rs2p peers ask when they want the list.
        if first && self.is_chord() && !rs2p {
            self.start_key_stream(conn);
        }
    }

    /// A connection is gone. If the peer closed it or fell silent while
    /// seeding, its items may be gone with it (repair). (A lost ring
    /// neighbour is remembered to be probed again by the entry points that
    /// see it go, `on_closed` and `on_tick`, while its link is still there.)
    fn on_lost(&mut self, c: crate::mesh::Conn<ChordPeer>, cause: LostCause) {
        if c.ext.probe && !c.handshaken {
            self.probe_done(c.id, false);
        }
        self.chord_conn_lost(c.id, c.ext.keys_in);
        if cause == LostCause::Local {
            return;
        }
        if c.handshaken && !c.ext.leeching {
            self.seeder_vanished();
        }
        // Only a close by the peer asks the ring again, as py2p does after
        // every disconnect; a silent peer's loss is the stabilisation's.
        if cause != LostCause::Peer || self.mesh.is_closed() {
            return;
        }
        // py2p asks its remaining peers for their peer lists after every
        // disconnect. With fingers (dozens of links, each list kilobytes)
        // only the ring neighbours are asked, and the stabilisation goes
        // back to every second.
        if self.is_chord() && self.uses_fingers() {
            self.chord.stabilize_every = crate::chord::STABILIZE_MS;
            self.stabilize();
        } else {
            self.mesh.request_peers();
        }
    }

    /// Before a connection the peer closed (or that fell silent) is
    /// forgotten: if it was a seeding ring neighbour, the peer and its
    /// address, to be probed again.
    fn lost_neighbour(&self, conn: ConnId) -> Option<(PeerId, Option<(String, u16)>)> {
        let c = self.mesh.conns().get(&conn)?;
        let peer = c.peer.clone()?;
        (c.handshaken && !c.ext.leeching && self.is_ring_neighbour(&peer)).then(|| (peer, c.addr.clone()))
    }

    // ----- versions -----

    /// A version for a write made here now.
    pub(crate) fn next_version(&mut self) -> Version {
        // The id's low 64 bits (ids are 384-bit hashes: the high bytes of
        // the 512-bit integer are zero).
        let writer = self.mesh.id().value().as_limbs()[0];
        let wall = self.mesh.wall_now();
        Version { hlc: self.mesh.hlc_mut().tick(wall), writer }
    }

    /// Takes in a version from the wire: false (refused, counted and
    /// logged) if it is dated too far ahead of our clock.
    pub(crate) fn observe_version(&mut self, v: Version) -> bool {
        if v.is_zero() {
            return true;
        }
        let (wall, skew) = (self.mesh.wall_now(), self.mesh.config().max_clock_skew_ms);
        if self.mesh.hlc_mut().observe(v.hlc, wall, skew) {
            return true;
        }
        self.mesh.counters_mut().versions_refused += 1;
        let ahead = v.wall_ms().saturating_sub(wall);
        self.mesh.record_error(
            None,
            format!(
                "refusing a write dated {ahead} ms ahead of this node's clock (tolerance {skew} ms): check the clocks"
            ),
        );
        false
    }

    /// The last version this node issued or saw (its hybrid clock).
    pub fn clock(&self) -> Version {
        Version { hlc: self.mesh.hlc().last(), writer: 0 }
    }

    // ----- what the node is -----

    /// This node's id.
    pub fn id(&self) -> &PeerId {
        self.mesh.id()
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        self.mesh.config()
    }

    /// The next action for the driver, if any.
    pub fn poll_action(&mut self) -> Option<Action> {
        // Whatever closed links since the last entry point (a user call
        // such as `disconnect_least_efficient`): chord hears of it before
        // the driver acts.
        self.pump();
        self.mesh.poll_action()
    }

    /// Drains every pending action.
    pub fn drain_actions(&mut self) -> std::collections::vec_deque::Drain<'_, Action> {
        self.pump();
        self.mesh.drain_actions()
    }

    /// `"Nominal"` when nothing went wrong, otherwise the recent errors.
    pub fn status(&self) -> Result<(), Vec<String>> {
        self.mesh.status()
    }

    /// The monotonic clock as last passed in (ms).
    pub fn now_ms(&self) -> Time {
        self.mesh.now()
    }

    /// Milliseconds since the epoch by the wall clock (see [`Node::set_wall_clock`]).
    pub fn wall_now(&self) -> Time {
        self.mesh.wall_now()
    }

    /// Tells the node the wall-clock time (ms since the Unix epoch). The
    /// times passed to the other entry points are a monotonic clock and drive
    /// every timer; the wall clock only dates messages and tombstones, so a
    /// system clock stepped by an hour leaves stabilisation, keepalives,
    /// resends and timeouts running as before. The driver calls this on each
    /// tick; without a call both clocks are the same. `wall` is read at the
    /// node's current monotonic time: move that first ([`Node::advance_clock`])
    /// to the instant `wall` was read.
    pub fn set_wall_clock(&mut self, wall: Time) {
        self.mesh.set_wall_clock(wall);
    }

    /// Moves the node's clock to `now` (never backwards) before a user call
    /// that takes no time (`set`, `delete`, ...), so that the version of a
    /// write is dated when it is made, not at the last event.
    pub fn advance_clock(&mut self, now: Time) {
        self.mesh.set_now(now);
    }

    /// The peer id behind a connection, if handshaken.
    pub fn peer_of(&self, conn: ConnId) -> Option<&PeerId> {
        self.mesh.peer_of(conn)
    }

    /// The connection to a peer, if handshaken.
    pub fn conn_of(&self, peer: &PeerId) -> Option<ConnId> {
        self.mesh.conn_of(peer)
    }

    /// Ids of handshaken peers on connections we opened.
    pub fn outgoing(&self) -> Vec<PeerId> {
        self.mesh.outgoing()
    }

    /// Ids of handshaken peers on connections they opened.
    pub fn incoming(&self) -> Vec<PeerId> {
        self.mesh.incoming()
    }

    /// Ids of the peers whose links have the distant keepalive timers now
    /// (`mesh/liveness.rs`: fingers that are no ring neighbour of ours).
    pub fn distant_peers(&self) -> Vec<PeerId> {
        self.mesh.conns().values().filter(|c| c.handshaken && c.is_distant()).filter_map(|c| c.peer.clone()).collect()
    }

    /// Connections not yet handshaken (accepted or dialed).
    pub fn awaiting(&self) -> Vec<ConnId> {
        self.mesh.awaiting()
    }

    /// Connections not yet handshaken, with where we dialed the ones we
    /// opened (py2p's `awaiting_ids`).
    pub fn awaiting_links(&self) -> Vec<crate::mesh::AwaitingLink> {
        self.mesh.awaiting_links()
    }

    /// True if the peer on this connection advertised the rs2p capability.
    pub fn is_rs2p(&self, conn: ConnId) -> bool {
        self.mesh.is_rs2p(conn)
    }

    /// The compression list this node advertises.
    pub fn advertised_compression(&self) -> &[Compression] {
        self.mesh.advertised_compression()
    }

    /// The largest clock offset seen from a linked peer (ms; see `rs2p status`).
    pub fn clock_skew_ms(&self) -> i64 {
        self.mesh.clock_skew_ms()
    }

    /// True once [`Node::close`] ran.
    pub fn is_closed(&self) -> bool {
        self.mesh.is_closed()
    }

    /// True while another inbound connection fits in
    /// [`Config::max_connections`] without closing one
    /// ([`Node::on_accepted_from`] makes room by closing unfinished handshakes).
    pub fn accepts_more(&self) -> bool {
        self.mesh.accepts_more()
    }

    /// With `on`, sends become [`Action::SendMessage`] (encoded by the
    /// driver) instead of [`Action::Send`]. Off by default.
    pub fn defer_encoding(&mut self, on: bool) {
        self.mesh.defer_encoding(on);
    }

    /// A receive side for a new connection (see [`ConnReader`]).
    pub fn reader(&self, conn: ConnId) -> ConnReader {
        ConnReader::new(FrameDecoder::new(self.mesh.config().max_frame), self.mesh.decode_context(conn))
    }

    // ----- driver entry points -----

    /// The driver accepted a connection. Returns its id; the handshake (and for
    /// chord the meta) are queued at once, uncompressed; the key stream to a
    /// py2p peer starts once its handshake is in.
    pub fn on_accepted(&mut self, now: Time) -> ConnId {
        let conn = self.mesh.on_accepted(now);
        self.pump();
        conn
    }

    /// The driver accepted a connection from `source`. Returns its id, or
    /// `None` when it must be closed at once (the node is closed, or every
    /// slot it could take holds a handshaken peer). To make room it may
    /// close the oldest unfinished handshake (of this source first).
    pub fn on_accepted_from(&mut self, source: IpAddr, now: Time) -> Option<ConnId> {
        let conn = self.mesh.on_accepted_from(source, now);
        self.pump();
        conn
    }

    /// An outgoing dial requested by [`Action::Dial`] completed.
    pub fn on_dialed(&mut self, conn: ConnId, now: Time) {
        self.mesh.on_dialed(conn, now);
        self.pump();
    }

    /// An outgoing dial failed.
    pub fn on_dial_failed(&mut self, conn: ConnId, reason: &str, now: Time) {
        self.mesh.on_dial_failed(conn, reason, now);
        self.pump();
    }

    /// A connection failed below the protocol before its handshake (the
    /// driver's TLS handshake: refused, broken or too slow). It is
    /// forgotten with `reason`; a dialed address rests as after a failed
    /// dial, so a peer that is not trusted is not dialed again at once.
    pub fn on_transport_failed(&mut self, conn: ConnId, reason: &str, now: Time) {
        self.mesh.on_transport_failed(conn, reason, now);
        self.pump();
    }

    /// Bytes arrived on a connection.
    pub fn on_data(&mut self, conn: ConnId, data: &[u8], now: Time) {
        self.mesh.on_data(conn, data, now);
        while let Step::Frame = self.mesh.next_frame(conn) {
            self.pump();
        }
        self.pump();
    }

    /// Frames decoded by the driver ([`ConnReader::feed`]) arrived on `conn`,
    /// from `bytes` bytes read; `pending` bytes of a partial frame are held by
    /// the reader. Returns the new decoding context when it changed (give it
    /// to [`ConnReader::update`]).
    ///
    /// Equivalent to [`Node::on_data`] with the same bytes.
    pub fn on_frames(
        &mut self,
        conn: ConnId,
        frames: Vec<Inbound>,
        bytes: usize,
        pending: usize,
        now: Time,
    ) -> Option<DecodeContext> {
        let before = self.mesh.frames_read(conn, bytes, pending, now)?;
        for frame in frames {
            if !self.mesh.conns().contains_key(&conn) {
                self.pump();
                return None;
            }
            let whole = self.mesh.on_inbound(conn, frame);
            self.pump();
            if !whole {
                return None;
            }
        }
        let ctx = self.mesh.frames_done(conn, pending, before);
        self.pump();
        ctx
    }

    /// The connection was closed by the peer or failed.
    pub fn on_closed(&mut self, conn: ConnId, now: Time) {
        let lost = self.lost_neighbour(conn);
        self.mesh.on_closed(conn, now);
        self.pump();
        if let Some((peer, addr)) = lost {
            self.rejoin_lost(peer, addr);
        }
    }

    /// Timer: expire half-received frames, pending requests, close silent
    /// peers, and run chord's maintenance.
    ///
    /// Call it at or after [`Node::poll_timeout`] (earlier is harmless: it
    /// does only what is due).
    pub fn on_tick(&mut self, now: Time) {
        self.mesh.on_tick(now);
        self.pump();
        let silent = self.mesh.liveness_scan();
        // Only ring neighbours are probed again once lost (chord/rejoin.rs);
        // which they are is known only while their links are still there.
        let lost: Vec<_> = silent.iter().filter_map(|&(conn, _)| self.lost_neighbour(conn)).collect();
        for (conn, quiet) in silent {
            self.mesh.close_silent(conn, quiet);
            self.pump();
        }
        self.mesh.liveness_scanned();
        for (peer, addr) in lost {
            self.rejoin_lost(peer, addr);
        }
        self.chord_tick();
        self.pump();
    }

    /// Closes every connection (after a graceful chord leave, if the caller did one).
    pub fn close(&mut self) -> Result<(), &'static str> {
        if !self.mesh.is_closed() {
            // Sets and deletes not yet announced, and replica writes, go
            // out before the links close.
            self.flush_news();
            self.flush_replicas();
        }
        if !self.mesh.close() {
            return Err("already closed");
        }
        self.pump();
        self.fail_all_gets();
        Ok(())
    }

    // ----- the mesh user API -----

    /// Dials a peer (py2p's `connect`); `expected` is the id it should have.
    pub fn connect(&mut self, host: &str, port: u16, expected: Option<PeerId>) -> Result<ConnId, ConnectError> {
        self.mesh.connect(host, port, expected)
    }

    /// Sends to every linked peer (`msg_type` whisper or broadcast).
    pub fn send(&mut self, msg_type: u8, sub_flag: u8, args: &[Bytes]) {
        self.mesh.send(msg_type, sub_flag, args);
    }

    /// Broadcasts `args` to the whole network (relayed by every peer).
    pub fn broadcast(&mut self, args: &[Bytes]) {
        self.mesh.broadcast(args);
    }

    /// Whispers to one linked peer; false if it is not linked.
    pub fn whisper(&mut self, peer: &PeerId, args: &[Bytes]) -> bool {
        self.mesh.whisper(peer, args)
    }

    /// Sends `[sub_flag, args...]` as `msg_type` to one linked peer (py2p's
    /// `handler.send`); false if it is not linked.
    pub fn send_to(&mut self, peer: &PeerId, msg_type: u8, sub_flag: u8, args: &[Bytes]) -> bool {
        self.mesh.send_to(peer, msg_type, sub_flag, args)
    }

    /// Answers a received message (routed through the network if the
    /// sender is not linked, as py2p's `reply`).
    pub fn reply(&mut self, to: &Received, args: &[Bytes]) {
        self.mesh.reply(to, args);
        self.pump();
    }

    /// Asks every peer for its peer list.
    pub fn request_peers(&mut self) {
        self.mesh.request_peers();
    }

    /// Closes the connection to a peer. The peer is not dialed again to
    /// rejoin the ring (`chord/rejoin.rs`): the user chose to drop it.
    pub fn disconnect(&mut self, peer: &PeerId) -> bool {
        let conn = self.mesh.conn_of(peer).or_else(|| self.mesh.dialing_conn(peer));
        if let Some(c) = conn.and_then(|c| self.mesh.conns().get(&c)) {
            let mut addrs: Vec<(String, u16)> = c.addr.iter().cloned().collect();
            if c.outgoing {
                addrs.push(c.dial_addr.clone());
            }
            self.forget_for_rejoin(peer, &addrs);
        }
        let done = self.mesh.disconnect(peer);
        self.pump();
        done
    }

    /// Closes a connection by handle.
    pub fn disconnect_conn(&mut self, conn: ConnId) {
        self.mesh.disconnect_conn(conn);
        self.pump();
    }
}
