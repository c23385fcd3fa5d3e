//! The mesh layer on the deterministic in-memory network, and sans-IO nodes fed
//! raw frames: peering, broadcast relay ("waterfall", docs/PROTOCOL.md §8),
//! renegotiation (§7), connection conflicts (§6.9), and the py2p defects of §13
//! that touch this layer (each test named after its defect).
//!
//! Everything here is deterministic: the simulator's clock only moves when a
//! test moves it, node ids come from fixed salts where the outcome depends on
//! their order, and the interleaving tests draw from a seeded generator.

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use rs2p::core::{Action, Config, ConnId, Event, PeerId, Received, Time};
use rs2p::node::Node;
use rs2p::sim::{Sim, SIM_EPOCH};
use rs2p::wire::compression::{self, PREFERENCE};
use rs2p::wire::{flags, pyjson, Compression, Message, Protocol};
use rs2p_test_support as support;
use rs2p_test_support::sim_ring;

// ---------------------------------------------------------------------------
// helpers: simulated meshes
// ---------------------------------------------------------------------------

/// A mesh node config at a distinct simulated address.
fn mesh_cfg(i: usize) -> Config {
    let mut cfg = Config::mesh(&format!("10.2.{}.{}", i / 200, i % 200 + 1), 31000 + i as u16);
    // Fixed salts: the same test always builds the same ids.
    cfg.salt = format!("00000000-0000-4000-8000-{i:012}");
    cfg
}

/// `n` mesh nodes; node i dials node (i-1)/2 (a tree), peer lists add the rest.
fn build_mesh(n: usize, tweak: impl Fn(&mut Config)) -> (Sim, Vec<usize>) {
    let mut sim = Sim::new();
    let mut nodes = Vec::with_capacity(n);
    let cfg = |i: usize| {
        let mut cfg = mesh_cfg(i);
        tweak(&mut cfg);
        cfg
    };
    sim_ring::grow(&mut sim, &mut nodes, n, false, cfg, sim_ring::via_tree);
    sim.run();
    (sim, nodes)
}

/// Index of every node by its id.
fn index_by_id(sim: &mut Sim, nodes: &[usize]) -> HashMap<PeerId, usize> {
    nodes.iter().map(|&i| (sim.node(i).id().clone(), i)).collect()
}

/// All routed peers of a node.
fn peers_of(node: &Node) -> Vec<PeerId> {
    let mut v = node.outgoing();
    v.extend(node.incoming());
    v.sort();
    v
}

/// The connection to the node's first peer (in id order).
fn first_peer_conn(node: &Node) -> ConnId {
    node.conn_of(&peers_of(node)[0]).expect("a peer has a connection")
}

/// Undirected links both ends agree on; panics on a one-sided link.
fn agreed_links(sim: &mut Sim, nodes: &[usize]) -> HashSet<(usize, usize)> {
    let by_id = index_by_id(sim, nodes);
    let mut links = HashSet::new();
    for &a in nodes {
        let (out, inc) = (sim.node(a).outgoing(), sim.node(a).incoming());
        for p in &out {
            let b = by_id[p];
            assert!(
                sim.node(b).incoming().contains(sim.node(a).id()),
                "node {a} dials {b}, but {b} does not list it as incoming"
            );
        }
        for p in &inc {
            let b = by_id[p];
            assert!(
                sim.node(b).outgoing().contains(sim.node(a).id()),
                "node {a} was dialed by {b}, but {b} does not list it as outgoing"
            );
        }
        for p in out.iter().chain(inc.iter()) {
            let b = by_id[p];
            links.insert((a.min(b), a.max(b)));
        }
    }
    links
}

fn is_connected(nodes: &[usize], links: &HashSet<(usize, usize)>) -> bool {
    let mut seen = HashSet::from([nodes[0]]);
    let mut todo = vec![nodes[0]];
    while let Some(a) = todo.pop() {
        for &(x, y) in links {
            let other = if x == a {
                y
            } else if y == a {
                x
            } else {
                continue;
            };
            if seen.insert(other) {
                todo.push(other);
            }
        }
    }
    seen.len() == nodes.len()
}

/// User messages from a batch of simulator events.
fn user_messages(events: Vec<(usize, Event)>) -> Vec<(usize, Received)> {
    events
        .into_iter()
        .filter_map(|(n, e)| match e {
            Event::Message(m) => Some((n, m)),
            _ => None,
        })
        .collect()
}

/// How many times each node got a broadcast whose first argument is `arg`.
fn deliveries(msgs: &[(usize, Received)], arg: &[u8]) -> HashMap<usize, usize> {
    let mut counts = HashMap::new();
    for (n, m) in msgs {
        if m.sub_flag() == Some(flags::BROADCAST) && m.args().first().map(|a| a.as_ref()) == Some(arg) {
            *counts.entry(*n).or_insert(0) += 1;
        }
    }
    counts
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn secs(t: Time) -> u64 {
    t / 1000
}

// ---------------------------------------------------------------------------
// helpers: one sans-IO node and a scripted fake peer
// ---------------------------------------------------------------------------

const T0: Time = SIM_EPOCH;
const STOCK_PY2P: &str = r#"["\u0013", "\u0011", "\u0010", "\u0012"]"#;

/// What a node asked its driver to do.
#[derive(Default)]
struct Out {
    sends: Vec<(ConnId, Bytes)>,
    closes: Vec<ConnId>,
    dials: Vec<(ConnId, String, u16)>,
    events: Vec<Event>,
}

impl Out {
    fn messages(&self) -> Vec<&Received> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Message(m) => Some(m),
                _ => None,
            })
            .collect()
    }
}

fn drain(node: &mut Node) -> Out {
    let mut out = Out::default();
    for a in node.drain_actions() {
        match a {
            Action::Send { conn, frame } => out.sends.push((conn, frame)),
            Action::SendMessage { conn, out: msg } => out.sends.push((conn, msg.encode().expect("encodes"))),
            Action::Close { conn } => out.closes.push(conn),
            Action::Event(e) => out.events.push(e),
            Action::Dial { conn, host, port } => out.dials.push((conn, host, port)),
        }
    }
    out
}

/// A py2p-style id for a fake peer.
fn fake_id(tag: u16) -> String {
    rs2p::wire::node_id("10.9.9.9", tag, &Protocol::mesh_default(), "00000000-0000-4000-8000-00000000f00d")
}

fn frame(msg_type: u8, sender: &str, time: u64, payload: Vec<Bytes>, method: Option<Compression>) -> Bytes {
    Message::new(msg_type, b(sender), time, payload).encode(method).expect("small frame")
}

fn handshake(id: &str, protocol_id: &str, port: u16, comp_json: &str, time: u64) -> Bytes {
    frame(
        flags::WHISPER,
        id,
        time,
        vec![
            Bytes::from_static(&[flags::HANDSHAKE]),
            b(id),
            b(protocol_id),
            b(&pyjson::addr_packet("10.9.9.9", port)),
            b(comp_json),
        ],
        None,
    )
}

/// Which compression a frame body uses (by its container magic), and the message.
fn open_frame(frame: &[u8]) -> (Option<Compression>, Message) {
    assert!(frame.len() >= 4, "short frame");
    let len = u32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]) as usize;
    assert_eq!(len, frame.len() - 4, "one action must carry exactly one whole frame");
    let body = &frame[4..];
    let method = Compression::detect(body);
    let plain = match method {
        None => body.to_vec(),
        Some(m) => m.decompress(body, 1 << 24).unwrap_or_else(|e| panic!("frame is not valid {m:?}: {e}")),
    };
    (method, Message::from_packets(&plain).expect("node sent a frame that does not parse"))
}

/// A node with one accepted connection from a fake peer that advertised `comp_json`.
struct Bench {
    node: Node,
    conn: ConnId,
    peer: String,
    now: Time,
}

impl Bench {
    fn new(cfg: Config, comp_json: &str) -> Bench {
        Bench::with_peer(cfg, comp_json, fake_id(1))
    }

    fn with_peer(cfg: Config, comp_json: &str, peer: String) -> Bench {
        let mut node = Node::new(cfg, T0);
        let conn = node.on_accepted(T0);
        let greeting = drain(&mut node);
        assert_eq!(greeting.sends.len(), 1, "an accepted mesh connection gets exactly the handshake");
        let (method, hs) = open_frame(&greeting.sends[0].1);
        assert_eq!(method, None, "the handshake goes out uncompressed");
        assert_eq!(hs.sub_flag(), Some(flags::HANDSHAKE));
        let pid = node.config().protocol.id();
        node.on_data(conn, &handshake(&peer, &pid, 9, comp_json, secs(T0)), T0);
        let answer = drain(&mut node);
        assert!(answer.closes.is_empty(), "the node refused a valid handshake");
        Bench { node, conn, peer, now: T0 }
    }

    fn feed(&mut self, bytes: &[u8]) -> Out {
        self.node.on_data(self.conn, bytes, self.now);
        drain(&mut self.node)
    }

    /// A frame from the fake peer, uncompressed (always accepted).
    fn send(&mut self, msg_type: u8, payload: Vec<Bytes>) -> Out {
        self.send_with(msg_type, payload, None)
    }

    /// A frame from the fake peer, compressed with `method`.
    fn send_with(&mut self, msg_type: u8, payload: Vec<Bytes>, method: Option<Compression>) -> Out {
        let f = frame(msg_type, &self.peer.clone(), secs(self.now), payload, method);
        self.feed(&f)
    }

    fn renegotiate(&mut self, list_json: &str) -> Out {
        self.send(flags::RENEGOTIATE, vec![Bytes::from_static(&[flags::COMPRESSION]), b(list_json)])
    }

    fn whisper_from_node(&mut self, text: &str) -> (Option<Compression>, Message) {
        let pid = PeerId::parse(self.peer.as_bytes()).expect("fake id is base58");
        assert!(self.node.whisper(&pid, &[b(text)]));
        let out = drain(&mut self.node);
        assert_eq!(out.sends.len(), 1);
        open_frame(&out.sends[0].1)
    }

    fn peer_id(&self) -> PeerId {
        PeerId::parse(self.peer.as_bytes()).expect("fake id is base58")
    }
}

// ---------------------------------------------------------------------------
// peering
// ---------------------------------------------------------------------------

#[test]
fn peering_builds_one_symmetric_connected_mesh_within_the_outgoing_budget() {
    let (mut sim, nodes) = build_mesh(16, |_| {});
    let links = agreed_links(&mut sim, &nodes);
    assert!(is_connected(&nodes, &links), "the mesh is split: {links:?}");
    assert!(links.len() > nodes.len() - 1, "peer lists added no links beyond the dial tree ({} links)", links.len());
    for &a in &nodes {
        let n = sim.node(a);
        let st = n.stats();
        assert!(n.outgoing().len() <= 4, "node {a} has {} outgoing links (py2p's budget is 4)", n.outgoing().len());
        assert_eq!(st.awaiting, 0, "node {a} has connections that never finished a handshake");
        assert_eq!(st.connections, st.peers, "node {a} holds connections outside its routing table");
        let peers = peers_of(n);
        let unique: HashSet<_> = peers.iter().collect();
        assert_eq!(unique.len(), peers.len(), "node {a} lists a peer twice");
        assert!(!peers.contains(n.id()), "node {a} is connected to itself");
        assert!(n.status().is_ok(), "node {a}: {:?}", n.status());
    }
}

#[test]
fn peer_list_request_is_answered_with_every_routed_peer() {
    let mut bench = Bench::new(mesh_cfg(50), STOCK_PY2P);
    let out = bench.send(flags::WHISPER, vec![Bytes::from_static(&[flags::REQUEST]), b("*")]);
    assert_eq!(out.sends.len(), 1, "request '*' must be answered once");
    let (_, m) = open_frame(&out.sends[0].1);
    assert_eq!(m.msg_type, flags::WHISPER);
    assert_eq!(m.sub_flag(), Some(flags::PEERS));
    let list = pyjson::parse_peers(&m.payload[1], 100).unwrap();
    assert_eq!(list.len(), 1, "the list holds every routed peer, the asker included: {list:?}");
    assert_eq!(list[0].id, bench.peer);
    assert_eq!((list[0].host.as_str(), list[0].port), ("10.9.9.9", 9), "the advertised address, not the socket's");
}

// ---------------------------------------------------------------------------
// waterfall (§8)
// ---------------------------------------------------------------------------

#[test]
fn waterfall_every_broadcast_reaches_every_node_exactly_once() {
    let (mut sim, nodes) = build_mesh(14, |_| {});
    let links = agreed_links(&mut sim, &nodes);
    sim.take_events();
    for &src in &nodes {
        let before = sim.frames;
        let payload = format!("from-{src}");
        sim.node(src).broadcast(&[b(&payload), b("second arg")]);
        sim.run();
        let sent = sim.frames - before;
        // Each node forwards a broadcast at most once per link direction: the
        // relay is bounded by 2 × links, and needs at least n − 1 frames.
        assert!(sent as usize <= 2 * links.len(), "broadcast from {src} used {sent} frames for {} links", links.len());
        assert!(sent as usize >= nodes.len() - 1);
        let msgs = user_messages(sim.take_events());
        let counts = deliveries(&msgs, payload.as_bytes());
        for &n in &nodes {
            let want = usize::from(n != src);
            assert_eq!(
                counts.get(&n).copied().unwrap_or(0),
                want,
                "node {n} got broadcast from {src} {:?} times",
                counts.get(&n)
            );
        }
        for (n, m) in &msgs {
            assert_eq!(
                m.msg.sender.as_ref(),
                sim.node(src).id().as_str().as_bytes(),
                "node {n}: relays keep the original sender"
            );
            assert_eq!(m.args()[1], "second arg");
        }
    }
}

#[test]
fn waterfall_duplicates_are_suppressed_and_relayed_once() {
    let (mut sim, nodes) = build_mesh(6, |_| {});
    sim.take_events();
    let x = nodes[3];
    let conn = first_peer_conn(sim.node(x));
    // A broadcast from a node outside the mesh, arriving three times on one link
    // and then once more on another link.
    let origin = fake_id(7);
    let now = sim.now();
    let f = frame(flags::BROADCAST, &origin, secs(now), vec![Bytes::from_static(&[flags::BROADCAST]), b("dup")], None);
    for _ in 0..3 {
        sim.node(x).on_data(conn, &f, now);
        sim.run();
    }
    let other_conn = {
        let peers = peers_of(sim.node(x));
        sim.node(x).conn_of(peers.last().unwrap()).unwrap()
    };
    let before = sim.frames;
    sim.node(x).on_data(other_conn, &f, now);
    sim.run();
    assert_eq!(sim.frames, before, "a duplicate must not be relayed again");
    let counts = deliveries(&user_messages(sim.take_events()), b"dup");
    for &n in &nodes {
        assert_eq!(
            counts.get(&n).copied(),
            Some(1),
            "node {n} delivered the injected broadcast {:?} times",
            counts.get(&n)
        );
    }
}

#[test]
/// py2p drops broadcasts a minute old; rs2p also drops those dated more
/// than a minute ahead of its clock (they would stay in the seen-id memory
/// for as long as they are dated ahead).
fn waterfall_age_limit_is_sixty_seconds_either_way() {
    // py2p's window: no slack for clocks apart (rs2p peers get
    // `max_clock_skew_ms` more, see the next test).
    let (mut sim, nodes) = build_mesh(5, |c| c.max_clock_skew_ms = 0);
    sim.take_events();
    let x = nodes[0];
    let conn = first_peer_conn(sim.node(x));
    let now = sim.now();
    let origin = fake_id(8);
    let cases = [
        ("61s-old", secs(now) - 61, false),
        ("60s-old", secs(now) - 60, true),
        ("60s-ahead", secs(now) + 60, true),
        ("61s-ahead", secs(now) + 61, false),
        ("an-hour-ahead", secs(now) + 3600, false),
    ];
    for (name, time, accepted) in cases {
        let f = frame(flags::BROADCAST, &origin, time, vec![Bytes::from_static(&[flags::BROADCAST]), b(name)], None);
        let before = sim.frames;
        sim.node(x).on_data(conn, &f, now);
        sim.run();
        let counts = deliveries(&user_messages(sim.take_events()), name.as_bytes());
        if accepted {
            for &n in &nodes {
                assert_eq!(counts.get(&n).copied(), Some(1), "{name}: node {n}");
            }
        } else {
            assert!(counts.is_empty(), "{name} broadcast was delivered: {counts:?}");
            assert_eq!(sim.frames, before, "{name} broadcast was relayed");
        }
    }
}

#[test]
fn waterfall_memory_of_seen_ids_is_bounded_and_pruned_by_age() {
    let mut sim = Sim::new();
    let mut cfg = mesh_cfg(0);
    cfg.max_clock_skew_ms = 0;
    let a = sim.add_node(cfg);
    let mut cfg = mesh_cfg(1);
    cfg.max_recent_ids = 50;
    cfg.max_clock_skew_ms = 0;
    let bn = sim.add_node(cfg);
    sim.connect(bn, a);
    sim.take_events();
    let first = Message::new(
        flags::BROADCAST,
        sim.node(a).id().bytes(),
        secs(sim.now()),
        vec![Bytes::from_static(&[0]), b("flood-0")],
    );
    for i in 0..500 {
        sim.node(a).broadcast(&[b(&format!("flood-{i}"))]);
        sim.run();
        assert!(sim.node(bn).stats().recent_ids <= 50, "seen-id memory passed its bound");
    }
    let got = user_messages(sim.take_events()).into_iter().filter(|(n, _)| *n == bn).count();
    assert_eq!(got, 500, "distinct broadcasts are all delivered");
    // Entries older than 60 s can never be accepted again, so they are pruned.
    sim.advance(61_000);
    assert_eq!(sim.node(bn).stats().recent_ids, 0, "ids older than 60 s are kept");
    assert_eq!(sim.node(a).stats().recent_ids, 0);
    // ...and a replay of a pruned id is refused by the age check instead.
    let id_a = sim.node(a).id().clone();
    let conn = sim.node(bn).conn_of(&id_a).unwrap();
    let replay = first.encode(None).unwrap();
    let now = sim.now();
    sim.node(bn).on_data(conn, &replay, now);
    sim.run();
    assert!(user_messages(sim.take_events()).is_empty(), "a 61 s old replay was delivered");
}

/// Between rs2p peers a broadcast is accepted `max_clock_skew_ms` (5 min)
/// beyond py2p's minute either way, for hosts whose clocks are apart, and
/// remembered as long: a replay is still dropped.
#[test]
fn waterfall_from_rs2p_peers_tolerates_clocks_minutes_apart() {
    let (mut sim, nodes) = build_mesh(3, |_| {});
    sim.take_events();
    let x = nodes[0];
    let conn = first_peer_conn(sim.node(x));
    let origin = fake_id(9);
    let now = sim.now();
    let cases = [
        ("4min-old", secs(now) - 240, true),
        ("4min-ahead", secs(now) + 240, true),
        ("7min-old", secs(now) - 420, false),
        ("7min-ahead", secs(now) + 420, false),
    ];
    let mut frames = Vec::new();
    for (name, time, accepted) in cases {
        let f = frame(flags::BROADCAST, &origin, time, vec![Bytes::from_static(&[flags::BROADCAST]), b(name)], None);
        sim.node(x).on_data(conn, &f, now);
        sim.run();
        let counts = deliveries(&user_messages(sim.take_events()), name.as_bytes());
        assert_eq!(!counts.is_empty(), accepted, "{name}: {counts:?}");
        frames.push(f);
    }
    // Replays two minutes later are still recognised.
    sim.advance(120_000);
    sim.take_events();
    let now = sim.now();
    for f in &frames[..2] {
        sim.node(x).on_data(conn, f, now);
        sim.run();
    }
    let replayed = user_messages(sim.take_events());
    assert!(replayed.is_empty(), "a replay within the window was delivered again: {replayed:?}");
}

#[test]
fn waterfall_own_broadcast_echo_is_dropped() {
    let (mut sim, nodes) = build_mesh(3, |_| {});
    sim.take_events();
    let a = nodes[0];
    let now = sim.now();
    sim.node(a).broadcast(&[b("mine")]);
    sim.run();
    // A peer relays our own message back to us (py2p relays to every peer but the sender;
    // a misbehaving relay could still echo it): it is remembered, so not delivered.
    let echo =
        Message::new(flags::BROADCAST, sim.node(a).id().bytes(), secs(now), vec![Bytes::from_static(&[0]), b("mine")]);
    let conn = first_peer_conn(sim.node(a));
    sim.node(a).on_data(conn, &echo.encode(None).unwrap(), now);
    sim.run();
    let counts = deliveries(&user_messages(sim.take_events()), b"mine");
    assert_eq!(counts.get(&a), None, "the sender received its own broadcast");
    assert_eq!(counts.len(), nodes.len() - 1);
}

// ---------------------------------------------------------------------------
// renegotiation (§7)
// ---------------------------------------------------------------------------

#[test]
fn renegotiate_compression_list_changes_the_method_and_is_answered_once() {
    let mut bench = Bench::new(mesh_cfg(0), STOCK_PY2P);
    // The stock py2p list makes zlib our method (first of ours that it lists).
    assert_eq!(bench.whisper_from_node("before").0, Some(Compression::Zlib));

    // gzip only: the list changed, so the node answers with the intersection in
    // its own preference order, already compressed with the new method.
    let out = bench.renegotiate(r#"["\u0011"]"#);
    assert!(out.closes.is_empty());
    assert_eq!(out.sends.len(), 1, "a changed list is answered exactly once");
    let (method, answer) = open_frame(&out.sends[0].1);
    assert_eq!(method, Some(Compression::Gzip), "the answer is sent with the newly agreed method");
    assert_eq!(answer.msg_type, flags::RENEGOTIATE);
    assert_eq!(answer.payload, vec![Bytes::from_static(&[flags::COMPRESSION]), b(r#"["\u0011"]"#)]);
    assert_eq!(bench.whisper_from_node("after").0, Some(Compression::Gzip));

    // The same list again: nothing changed, no answer (this ends the exchange).
    let out = bench.renegotiate(r#"["\u0011"]"#);
    assert!(out.sends.is_empty() && out.closes.is_empty(), "an unchanged list must not be answered");

    // The vector `renegotiate_compression_reply`: ["\u0012","\u0013"] is answered
    // with ["\u0013", "\u0012"] (our order), zlib-compressed.
    let out = bench.renegotiate(r#"["\u0012","\u0013"]"#);
    let (method, answer) = open_frame(&out.sends[0].1);
    assert_eq!(method, Some(Compression::Zlib));
    assert_eq!(answer.payload[1], r#"["\u0013", "\u0012"]"#);
    // The comparison is order-sensitive: the same methods reordered is a change.
    let out = bench.renegotiate(r#"["\u0013", "\u0012"]"#);
    assert_eq!(out.sends.len(), 1, "a reordered list is a change and is answered");
    assert_eq!(open_frame(&out.sends[0].1).1.payload[1], r#"["\u0013", "\u0012"]"#);

    // Unknown flags are ignored; "[]" turns compression off.
    let out = bench.renegotiate(r#"["\u0099", "\u0015"]"#);
    let (method, answer) = open_frame(&out.sends[0].1);
    assert_eq!((method, answer.payload[1].as_ref()), (None, b"[]".as_ref()));
    assert_eq!(bench.whisper_from_node("plain").0, None);

    // A malformed list is reported, not fatal, and changes nothing.
    let out = bench.renegotiate("{not json");
    assert!(out.sends.is_empty() && out.closes.is_empty());
    assert_eq!(bench.whisper_from_node("still plain").0, None);
    assert!(bench.node.status().is_err(), "the malformed list should be recorded");
}

#[test]
fn renegotiate_resend_repeats_the_last_message_correctly() {
    let mut bench = Bench::new(mesh_cfg(0), STOCK_PY2P);
    let (_, original) = bench.whisper_from_node("hello");
    bench.now += 5_000;
    let out = bench.send(flags::RENEGOTIATE, vec![Bytes::from_static(&[flags::RESEND])]);
    assert_eq!(out.sends.len(), 1, "resend is answered with exactly one frame");
    let (_, again) = open_frame(&out.sends[0].1);
    // Unlike py2p (D4), the type stays a whisper and the sub-flag stays in the payload.
    assert_eq!(again.msg_type, flags::WHISPER);
    assert_eq!(again.payload, original.payload);
    assert_eq!(again.time, secs(bench.now), "a resend carries a fresh time");

    // After a broadcast, the broadcast is what is resent.
    bench.node.broadcast(&[b("bcast")]);
    drain(&mut bench.node);
    let out = bench.send(flags::RENEGOTIATE, vec![Bytes::from_static(&[flags::RESEND])]);
    let (_, again) = open_frame(&out.sends[0].1);
    assert_eq!(again.msg_type, flags::BROADCAST);
    assert_eq!(again.payload, vec![Bytes::from_static(&[flags::BROADCAST]), b("bcast")]);
}

#[test]
fn py2p_renegotiation_after_a_decode_failure_is_followed_correctly() {
    // What py2p sends when it cannot parse our frame (vector
    // `renegotiate_on_decode_failure`): renegotiate "[]" then resend, *both*
    // compressed with the method in force before — so the resend request
    // arrives compressed although the list it just set is empty.
    let mut bench = Bench::new(mesh_cfg(0), STOCK_PY2P);
    let (_, last) = bench.whisper_from_node("my last whisper");
    let zlib = Some(Compression::Zlib);
    let out = bench.send_with(flags::RENEGOTIATE, vec![Bytes::from_static(&[flags::COMPRESSION]), b("[]")], zlib);
    assert_eq!(out.sends.len(), 1, "the list changed: one answer");
    let (method, answer) = open_frame(&out.sends[0].1);
    assert_eq!((method, answer.payload[1].as_ref()), (None, b"[]".as_ref()));
    let out = bench.send_with(flags::RENEGOTIATE, vec![Bytes::from_static(&[flags::RESEND])], zlib);
    assert!(out.closes.is_empty());
    let sent: Vec<Message> = out.sends.iter().map(|(_, f)| open_frame(f).1).collect();
    assert_eq!(sent.len(), 1, "the resend request must be answered with the last whisper only, got {sent:?}");
    assert_eq!((sent[0].msg_type, &sent[0].payload), (flags::WHISPER, &last.payload));
    assert!(
        bench.node.status().is_ok(),
        "a frame compressed with the previous method was taken as garbage: {:?}",
        bench.node.status()
    );
}

#[test]
fn undecodable_frame_triggers_renegotiation_as_py2p_does() {
    let mut bench = Bench::new(mesh_cfg(0), STOCK_PY2P);
    // A frame holding a single packet (the case of vector `renegotiate_on_decode_failure`).
    let bad = [0, 0, 0, 5, 0, 0, 0, 1, 2];
    let out = bench.feed(&bad);
    assert!(out.closes.is_empty(), "a frame that fails to parse renegotiates, it does not close");
    assert_eq!(out.sends.len(), 2, "renegotiate [] then resend");
    let (m1, first) = open_frame(&out.sends[0].1);
    let (m2, second) = open_frame(&out.sends[1].1);
    assert_eq!(
        (m1, m2),
        (Some(Compression::Zlib), Some(Compression::Zlib)),
        "both use the connection's current method"
    );
    assert_eq!(first.msg_type, flags::RENEGOTIATE);
    assert_eq!(first.payload, vec![Bytes::from_static(&[flags::COMPRESSION]), b("[]")]);
    assert_eq!(second.msg_type, flags::RENEGOTIATE);
    assert_eq!(second.payload, vec![Bytes::from_static(&[flags::RESEND])]);
    assert!(bench.node.status().is_err(), "the bad frame is recorded");
    // The connection is still usable.
    let out = bench.send(flags::WHISPER, vec![Bytes::from_static(&[flags::WHISPER]), b("ok")]);
    assert_eq!(out.messages().len(), 1);

    // A peer that keeps sending garbage is eventually dropped.
    let mut closed = false;
    for _ in 0..10 {
        if !bench.feed(&bad).closes.is_empty() {
            closed = true;
            break;
        }
    }
    assert!(closed, "a stream of undecodable frames must end in a close");
}

#[test]
fn renegotiation_between_two_rs2p_nodes_recovers_the_link() {
    let mut sim = Sim::new();
    let a = sim.add_node(mesh_cfg(0));
    let c = sim.add_node(mesh_cfg(1));
    sim.connect(c, a);
    sim.take_events();
    let peer = sim.node(c).id().clone();
    sim.node(a).whisper(&peer, &[b("last whisper of a")]);
    sim.run();
    assert_eq!(user_messages(sim.take_events()).len(), 1, "the whisper itself");
    let id_a = sim.node(a).id().clone();
    let conn = sim.node(c).conn_of(&id_a).unwrap();
    let now = sim.now();
    // Garbage arriving on c's link to a (as if a's frame had been corrupted).
    sim.node(c).on_data(conn, &[0, 0, 0, 5, 0, 0, 0, 1, 2], now);
    sim.run();
    let msgs = user_messages(sim.take_events());
    // a answered the resend with its last whisper, the correct way.
    let resent: Vec<_> = msgs
        .iter()
        .filter(|(n, m)| *n == c && m.args().first().map(|x| x.as_ref()) == Some(b"last whisper of a".as_ref()))
        .collect();
    assert_eq!(resent.len(), 1, "the resend answer should deliver a's last whisper again: {msgs:?}");
    assert_eq!(resent[0].1.msg.msg_type, flags::WHISPER);
    // Both still linked, traffic flows both ways.
    sim.node(a).broadcast(&[b("after-a")]);
    sim.node(c).broadcast(&[b("after-c")]);
    sim.run();
    let msgs = user_messages(sim.take_events());
    assert_eq!(deliveries(&msgs, b"after-a").get(&c), Some(&1));
    assert_eq!(deliveries(&msgs, b"after-c").get(&a), Some(&1));
}

#[test]
fn id_mismatch_and_bad_time_close_without_renegotiation() {
    for case in ["id", "time"] {
        let mut bench = Bench::new(mesh_cfg(0), STOCK_PY2P);
        let good = frame(flags::WHISPER, &bench.peer.clone(), secs(T0), vec![Bytes::from_static(&[2]), b("x")], None);
        let mut bytes = good.to_vec();
        match case {
            // The id packet starts at 4 (length) + 4 + 1 (type) + 4 + sender + 4.
            "id" => {
                let at = 4 + 5 + 4 + bench.peer.len() + 4;
                bytes[at] = if bytes[at] == b'2' { b'3' } else { b'2' };
            }
            _ => {
                // Replace the time packet's first character with '0' (not base58).
                let at = 4 + 5 + 4 + bench.peer.len() + 4;
                let id_len = u32::from_be_bytes([bytes[at - 4], bytes[at - 3], bytes[at - 2], bytes[at - 1]]) as usize;
                let t = at + id_len + 4;
                bytes[t] = b'0';
            }
        }
        let out = bench.feed(&bytes);
        assert_eq!(out.closes, vec![bench.conn], "{case}: py2p disconnects on this fault and so do we");
        assert!(out.sends.is_empty(), "{case}: no renegotiation for a bad {case}");
        assert!(out.messages().is_empty());
    }
}

// ---------------------------------------------------------------------------
// connection conflicts (§6.9)
// ---------------------------------------------------------------------------

/// Two sans-IO nodes whose deliveries are interleaved by a seeded generator,
/// keeping each connection's byte order (as TCP does).
struct Duo {
    nodes: [Node; 2],
    addrs: [(String, u16); 2],
    links: HashMap<(usize, ConnId), (usize, ConnId)>,
    pending: Vec<Item>,
    rng: u64,
    now: Time,
    events: Vec<(usize, Event)>,
}

enum Item {
    Dial { from: usize, conn: ConnId, to: usize },
    Data { to: (usize, ConnId), bytes: Bytes },
    Closed { to: (usize, ConnId) },
}

impl Duo {
    fn new(seed: u64) -> Duo {
        let cfgs = [0, 1].map(|i| {
            let mut c = Config::mesh(&format!("10.3.0.{}", i + 1), 32000);
            c.salt = format!("seed-{seed}-node-{i}");
            c
        });
        let addrs = [cfgs[0].out_addr.clone(), cfgs[1].out_addr.clone()];
        let [c0, c1] = cfgs;
        Duo {
            nodes: [Node::new(c0, T0), Node::new(c1, T0)],
            addrs,
            links: HashMap::new(),
            pending: Vec::new(),
            rng: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            now: T0,
            events: Vec::new(),
        }
    }

    fn next(&mut self) -> u64 {
        // xorshift64*
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn collect(&mut self, idx: usize) {
        let actions: Vec<Action> = self.nodes[idx].drain_actions().collect();
        for a in actions {
            match a {
                Action::Send { conn, frame } => {
                    if let Some(&to) = self.links.get(&(idx, conn)) {
                        self.pending.push(Item::Data { to, bytes: frame });
                    }
                }
                Action::SendMessage { conn, out } => {
                    if let Some(&to) = self.links.get(&(idx, conn)) {
                        self.pending.push(Item::Data { to, bytes: out.encode().expect("encodes") });
                    }
                }
                Action::Dial { conn, host, port } => {
                    let to =
                        self.addrs.iter().position(|a| *a == (host.clone(), port)).expect("dial to a known address");
                    self.pending.push(Item::Dial { from: idx, conn, to });
                }
                Action::Close { conn } => {
                    if let Some(other) = self.links.remove(&(idx, conn)) {
                        self.links.remove(&other);
                        self.pending.push(Item::Closed { to: other });
                    }
                }
                Action::Event(e) => self.events.push((idx, e)),
            }
        }
    }

    fn channel(item: &Item) -> Option<(usize, ConnId)> {
        match item {
            Item::Dial { .. } => None,
            Item::Data { to, .. } | Item::Closed { to } => Some(*to),
        }
    }

    /// Delivers everything, in a random order that keeps each connection FIFO.
    fn run(&mut self) {
        self.collect(0);
        self.collect(1);
        for _ in 0..100_000 {
            if self.pending.is_empty() {
                return;
            }
            let mut eligible = Vec::new();
            let mut seen = HashSet::new();
            for (i, item) in self.pending.iter().enumerate() {
                match Self::channel(item) {
                    None => eligible.push(i),
                    Some(ch) => {
                        if seen.insert(ch) {
                            eligible.push(i);
                        }
                    }
                }
            }
            let pick = eligible[(self.next() % eligible.len() as u64) as usize];
            let item = self.pending.remove(pick);
            self.now += 1;
            let now = self.now;
            match item {
                Item::Dial { from, conn, to } => {
                    let accepted = self.nodes[to].on_accepted(now);
                    self.links.insert((from, conn), (to, accepted));
                    self.links.insert((to, accepted), (from, conn));
                    self.nodes[from].on_dialed(conn, now);
                }
                Item::Data { to, bytes } => self.nodes[to.0].on_data(to.1, &bytes, now),
                Item::Closed { to } => self.nodes[to.0].on_closed(to.1, now),
            }
            self.collect(0);
            self.collect(1);
        }
        panic!("the pair did not settle");
    }
}

/// Checks that the pair ended with one link, both ends registered on it, kept
/// by the rule of §6.9 (the connection dialed by the larger id survives).
fn assert_one_agreed_link(duo: &Duo, what: &str) {
    let ids = [duo.nodes[0].id().clone(), duo.nodes[1].id().clone()];
    let c0 = duo.nodes[0].conn_of(&ids[1]).unwrap_or_else(|| panic!("{what}: node 0 ended without a link"));
    let c1 = duo.nodes[1].conn_of(&ids[0]).unwrap_or_else(|| panic!("{what}: node 1 ended without a link"));
    for i in 0..2 {
        let st = duo.nodes[i].stats();
        assert_eq!(st.connections, 1, "{what}: node {i} holds {} connections", st.connections);
        assert_eq!(st.awaiting, 0, "{what}: node {i} has an unfinished handshake");
    }
    assert_eq!(duo.links.get(&(0, c0)), Some(&(1, c1)), "{what}: the two ends registered different TCP connections");
    let larger = usize::from(ids[1].value() > ids[0].value());
    assert_eq!(
        duo.nodes[larger].outgoing(),
        vec![ids[1 - larger].clone()],
        "{what}: the survivor must be the one dialed by the larger id"
    );
    assert_eq!(duo.nodes[1 - larger].incoming(), vec![ids[larger].clone()], "{what}");
}

#[test]
fn simultaneous_dial_in_any_interleaving_ends_with_one_agreed_connection() {
    for seed in 0..400u64 {
        for mode in 0..3 {
            let mut duo = Duo::new(seed);
            let ids = [duo.nodes[0].id().clone(), duo.nodes[1].id().clone()];
            // mode 0: user dials (no expected id); 1: both dial from peer lists
            // (expected id, registered as dialing); 2: one of each.
            let expect = |i: usize| match mode {
                0 => None,
                1 => Some(ids[1 - i].clone()),
                _ => (i == 0).then(|| ids[1].clone()),
            };
            let (h1, p1) = duo.addrs[1].clone();
            let (h0, p0) = duo.addrs[0].clone();
            duo.nodes[0].connect(&h1, p1, expect(0)).unwrap();
            duo.nodes[1].connect(&h0, p0, expect(1)).unwrap();
            duo.run();
            let what = format!("seed {seed} mode {mode}");
            assert_one_agreed_link(&duo, &what);
            // The link works both ways.
            assert!(duo.nodes[0].whisper(&ids[1], &[b("ping")]));
            assert!(duo.nodes[1].whisper(&ids[0], &[b("pong")]));
            duo.events.clear();
            duo.run();
            let got: Vec<usize> =
                duo.events.iter().filter(|(_, e)| matches!(e, Event::Message(_))).map(|(n, _)| *n).collect();
            assert_eq!(got.len(), 2, "{what}: whispers lost on the surviving link: {got:?}");
        }
    }
}

#[test]
fn d23_simultaneous_dial_in_the_simulator_keeps_exactly_one_link() {
    // D23: two py2p nodes dialing each other can both close and stay unlinked.
    // Two rs2p nodes must end with exactly one link, whatever their ids.
    for k in 0..50 {
        let mut sim = Sim::new();
        let a = sim.add_node(mesh_cfg(2 * k));
        let c = sim.add_node(mesh_cfg(2 * k + 1));
        let (ha, pa) = sim.node(a).config().out_addr.clone();
        let (hc, pc) = sim.node(c).config().out_addr.clone();
        sim.node(a).connect(&hc, pc, None).unwrap();
        sim.node(c).connect(&ha, pa, None).unwrap();
        sim.run();
        let (ia, ic) = (sim.node(a).id().clone(), sim.node(c).id().clone());
        assert_eq!(peers_of(sim.node(a)), vec![ic.clone()], "pair {k}");
        assert_eq!(peers_of(sim.node(c)), vec![ia.clone()], "pair {k}");
        assert_eq!(sim.node(a).stats().connections, 1, "pair {k}");
        assert_eq!(sim.node(c).stats().connections, 1, "pair {k}");
        // Both agree which one survived: it is a's outgoing iff it is c's incoming.
        assert_eq!(sim.node(a).outgoing().is_empty(), sim.node(c).incoming().is_empty(), "pair {k}");
        let a_dialed = !sim.node(a).outgoing().is_empty();
        assert_eq!(a_dialed, ia.value() > ic.value(), "pair {k}: the larger id's connection survives");
    }
}

#[test]
fn d8_conflict_keeps_the_survivor_registered() {
    // D8: py2p registers the *new* connection even when it closed it. rs2p keeps
    // the survivor in its routing table, whichever one that is.
    let small = "2".to_owned(); // base58 for 1: smaller than any derived id
    let large = fake_id(3);
    for (own_small, second_outgoing) in [(true, false), (false, false), (true, true), (false, true)] {
        let mut cfg = mesh_cfg(0);
        let peer = if own_small {
            cfg.id = Some(small.clone());
            large.clone()
        } else {
            cfg.id = Some("z".repeat(70)); // above any 384-bit id
            large.clone()
        };
        let mut node = Node::new(cfg, T0);
        let peer_id = PeerId::parse(peer.as_bytes()).unwrap();
        let mine_larger = node.id().value() > peer_id.value();
        assert_ne!(mine_larger, own_small);
        let pid = node.config().protocol.id();
        // First connection: accepted, handshaken.
        let first = node.on_accepted(T0);
        node.on_data(first, &handshake(&peer, &pid, 9, STOCK_PY2P, secs(T0)), T0);
        drain(&mut node);
        assert_eq!(node.conn_of(&peer_id), Some(first));
        // Second connection to the same peer: accepted, or dialed by us.
        let second = if second_outgoing {
            let c = node.connect("10.9.9.9", 9, None).unwrap();
            node.on_dialed(c, T0);
            c
        } else {
            node.on_accepted(T0)
        };
        drain(&mut node);
        node.on_data(second, &handshake(&peer, &pid, 9, STOCK_PY2P, secs(T0)), T0);
        let out = drain(&mut node);
        let close_new = mine_larger ^ second_outgoing;
        let (survivor, loser) = if close_new { (first, second) } else { (second, first) };
        let what = format!(
            "own id {}, second connection {}",
            if own_small { "smaller" } else { "larger" },
            if second_outgoing { "outgoing" } else { "incoming" }
        );
        assert_eq!(out.closes, vec![loser], "{what}: wrong connection closed");
        assert_eq!(node.conn_of(&peer_id), Some(survivor), "{what}: the survivor must stay registered");
        assert_eq!(node.stats().connections, 1, "{what}");
        assert!(node.whisper(&peer_id, &[b("x")]));
        let out = drain(&mut node);
        assert_eq!(
            out.sends.iter().map(|(c, _)| *c).collect::<Vec<_>>(),
            vec![survivor],
            "{what}: whisper went elsewhere"
        );
    }
}

/// A node holding a link to `peer` that survived a conflict: returns the node
/// and the surviving connection.
fn survivor_of_conflict(peer: &str, comp_json: &str) -> (Node, ConnId) {
    let mut cfg = mesh_cfg(0);
    cfg.id = Some("2222".to_owned()); // smaller than the peer: our second dial loses
    let mut node = Node::new(cfg, T0);
    let pid = node.config().protocol.id();
    let first = node.on_accepted(T0);
    node.on_data(first, &handshake(peer, &pid, 9, comp_json, secs(T0)), T0);
    drain(&mut node);
    let second = node.connect("10.9.9.9", 9, None).unwrap();
    node.on_dialed(second, T0);
    node.on_data(second, &handshake(peer, &pid, 9, comp_json, secs(T0)), T0);
    let out = drain(&mut node);
    assert_eq!(out.closes, vec![second], "the conflict should close our second dial");
    (node, first)
}

#[test]
fn d8_survivor_closed_by_py2p_is_redialed() {
    // D8: py2p registers the connection it closed, and then drops (and frees)
    // the one both ends kept. rs2p re-dials a py2p peer that closes the
    // survivor of a conflict soon after it.
    let peer = fake_id(3);
    let peer_id = PeerId::parse(peer.as_bytes()).unwrap();
    let (mut node, survivor) = survivor_of_conflict(&peer, STOCK_PY2P);
    node.on_closed(survivor, T0 + 50);
    let out = drain(&mut node);
    assert_eq!(out.dials.len(), 1, "the peer should be dialed again");
    let (redial, host, port) = out.dials[0].clone();
    assert_eq!((host.as_str(), port), ("10.9.9.9", 9), "dial the address the peer advertised");
    node.on_dialed(redial, T0 + 60);
    let pid = node.config().protocol.id();
    node.on_data(redial, &handshake(&peer, &pid, 9, STOCK_PY2P, secs(T0)), T0 + 70);
    drain(&mut node);
    assert_eq!(node.conn_of(&peer_id), Some(redial), "the re-dialed link is routed");

    // Not after the window, and not for rs2p peers (they do not have D8).
    let (mut node, survivor) = survivor_of_conflict(&peer, STOCK_PY2P);
    node.on_closed(survivor, T0 + 11_000);
    assert!(drain(&mut node).dials.is_empty(), "a late close is an ordinary disconnect");
    let rs2p_list = r#"["\u0013", "/"]"#;
    let (mut node, survivor) = survivor_of_conflict(&peer, rs2p_list);
    assert!(node.is_rs2p(survivor));
    node.on_closed(survivor, T0 + 50);
    assert!(drain(&mut node).dials.is_empty(), "an rs2p peer closing the survivor is not re-dialed");

    // The recovery is bounded: a peer that keeps closing the survivor is given up.
    let (mut node, mut survivor) = survivor_of_conflict(&peer, STOCK_PY2P);
    let mut redials = 0;
    // Not a retry: each round is one more close of the survivor, until rs2p
    // gives up; the count is asserted below (at least one, at most three).
    for round in 0..10 {
        let now = T0 + 100 * (round + 1);
        node.on_closed(survivor, now);
        let out = drain(&mut node);
        let Some((redial, _, _)) = out.dials.first().cloned() else { break };
        redials += 1;
        node.on_dialed(redial, now);
        node.on_data(redial, &handshake(&peer, &pid, 9, STOCK_PY2P, secs(now)), now);
        // ...and another conflict on it, which it survives again.
        let extra = node.on_accepted(now);
        node.on_data(extra, &handshake(&peer, &pid, 9, STOCK_PY2P, secs(now)), now);
        let out = drain(&mut node);
        assert!(out.closes.contains(&extra) || out.closes.contains(&redial), "no conflict resolution");
        survivor = node.conn_of(&peer_id).expect("a survivor is routed");
    }
    assert!((1..=3).contains(&redials), "{redials} re-dials: the chain must be bounded");
}

// ---------------------------------------------------------------------------
// replies through route requests, and D16
// ---------------------------------------------------------------------------

/// Three mesh nodes in a line 0 - 1 - 2 (no peer-list dials): 0 and 2 are not linked.
fn line_of_three() -> (Sim, usize, usize, usize) {
    let (mut sim, nodes) = build_mesh(3, |c| c.max_outgoing = 0);
    let (n0, n1, n2) = (nodes[0], nodes[1], nodes[2]);
    // build_mesh links 1→0 and 2→0; rewire as a line.
    let id0 = sim.node(n0).id().clone();
    sim.node(n2).disconnect(&id0);
    sim.run();
    sim.connect(n2, n1);
    (sim, n0, n1, n2)
}

#[test]
fn d16_reply_through_route_request_registers_the_peer_once() {
    // Line 0 - 1 - 2 (no peer-list dials): 2 broadcasts, 0 replies; 0 is not
    // linked to 2, so the reply goes through a route request that 1 answers.
    let (mut sim, n0, _n1, n2) = line_of_three();
    let id0 = sim.node(n0).id().clone();
    let id2 = sim.node(n2).id().clone();
    assert!(sim.node(n0).conn_of(&id2).is_none());
    sim.take_events();
    sim.node(n2).broadcast(&[b("question")]);
    sim.run();
    let msgs = user_messages(sim.take_events());
    let (_, q) = msgs.into_iter().find(|(n, _)| *n == n0).expect("node 0 got the broadcast via node 1");
    sim.node(n0).reply(&q, &[b("answer")]);
    sim.run();
    let msgs = user_messages(sim.take_events());
    let answers: Vec<_> = msgs
        .iter()
        .filter(|(n, m)| *n == n2 && m.args().first().map(|a| a.as_ref()) == Some(b"answer".as_ref()))
        .collect();
    assert_eq!(answers.len(), 1, "the reply must arrive once: {msgs:?}");
    assert_eq!(answers[0].1.msg.msg_type, flags::WHISPER);
    assert_eq!(answers[0].1.msg.sender.as_ref(), id0.as_str().as_bytes());
    // D16: py2p stores such a peer under a text id *and* a bytes id. rs2p: once.
    let peers0 = peers_of(sim.node(n0));
    assert_eq!(peers0.iter().filter(|p| **p == id2).count(), 1, "{peers0:?}");
    assert_eq!(sim.node(n0).stats().connections, sim.node(n0).stats().peers);
    assert_eq!(sim.node(n0).stats().route_requests, 0, "the answered route request is forgotten");
    // Later handshakes are still answered with a well-formed peer list.
    let newcomer = sim.add_node(mesh_cfg(9));
    sim.connect(newcomer, n0);
    assert!(sim.node(newcomer).conn_of(&id0).is_some(), "a handshake after the route reply failed");
    assert!(sim.node(n0).status().is_ok(), "{:?}", sim.node(n0).status());
}

// ---------------------------------------------------------------------------
// D2, D4, D5, D18, D22
// ---------------------------------------------------------------------------

#[test]
fn d2_four_byte_leftover_is_the_next_header_not_a_frame() {
    // docs/PROTOCOL.md §13 D2 / vector defect_probes `D2_read_leaves_exactly_4_bytes`: one read
    // ends with exactly the next frame's 4-byte length header. py2p treats those
    // 4 bytes as a frame and drops the link; rs2p must wait for the body.
    let mut bench = Bench::new(mesh_cfg(0), STOCK_PY2P);
    let peer = bench.peer.clone();
    let f1 = frame(flags::WHISPER, &peer, 1_700_000_000, vec![Bytes::from_static(&[2]), b("a")], None);
    let f2 = frame(flags::WHISPER, &peer, 1_700_000_000, vec![Bytes::from_static(&[2]), b("b")], None);
    let mut stream = f1.to_vec();
    stream.extend_from_slice(&f2);
    let cut = f1.len() + 4;
    let out = bench.feed(&stream[..cut]);
    assert!(out.closes.is_empty(), "4 leftover bytes closed the connection");
    assert_eq!(out.messages().len(), 1);
    assert_eq!(out.messages()[0].args()[0], "a");
    let out = bench.feed(&stream[cut..]);
    assert_eq!(out.messages().len(), 1);
    assert_eq!(out.messages()[0].args()[0], "b");
    // Every other two-read split, and byte-at-a-time, deliver both in order.
    for cut in (0..=stream.len()).chain([usize::MAX]) {
        let mut got = Vec::new();
        let chunks: Vec<&[u8]> =
            if cut == usize::MAX { stream.chunks(1).collect() } else { vec![&stream[..cut], &stream[cut..]] };
        for chunk in chunks {
            let out = bench.feed(chunk);
            assert!(out.closes.is_empty(), "split at {cut} closed the connection");
            got.extend(out.messages().iter().map(|m| m.args()[0].clone()));
        }
        assert_eq!(got, vec![b("a"), b("b")], "split at {cut}");
    }
    assert!(bench.node.status().is_ok());
}

#[test]
fn d4_resend_answer_with_msg_type_0x07_is_ignored_not_fatal() {
    // D4: py2p answers a resend with the old sub-flag as msg_type (vector
    // `resend_reply_defect`: type 0x07, payload ["[]"]).
    let mut bench = Bench::new(mesh_cfg(0), STOCK_PY2P);
    for payload in [vec![b("[]")], vec![Bytes::from_static(&[flags::WHISPER]), b("looks like data")], vec![]] {
        let out = bench.send(0x07, payload.clone());
        assert!(out.closes.is_empty(), "type 0x07 {payload:?} closed the link");
        assert!(out.sends.is_empty(), "type 0x07 {payload:?} was answered");
        assert!(out.messages().is_empty(), "type 0x07 {payload:?} reached the application");
    }
    // A resend answer after a user whisper: type 0x02 but the sub-flag is gone.
    let out = bench.send(flags::WHISPER, vec![b("hello")]);
    assert!(out.closes.is_empty() && out.messages().is_empty());
    // The link still works.
    let out = bench.send(flags::WHISPER, vec![Bytes::from_static(&[flags::WHISPER]), b("fine")]);
    assert_eq!(out.messages().len(), 1);
    assert_eq!(bench.whisper_from_node("and back").1.payload[1], "and back");
}

#[test]
fn d4_resend_answer_shaped_like_a_broadcast_is_not_relayed() {
    // After a py2p broadcast, D4 turns a resend answer into type 0x00 with the
    // user data where the sub-flag should be. It must not spread.
    let (mut sim, nodes) = build_mesh(4, |_| {});
    sim.take_events();
    let x = nodes[0];
    let conn = first_peer_conn(sim.node(x));
    let now = sim.now();
    let f = frame(flags::BROADCAST, &fake_id(5), secs(now), vec![b("user data")], None);
    let before = sim.frames;
    sim.node(x).on_data(conn, &f, now);
    sim.run();
    assert_eq!(sim.frames, before, "a broadcast without a sub-flag was relayed");
    assert!(user_messages(sim.take_events()).is_empty());
    assert_eq!(peers_of(sim.node(x)).len(), sim.node(x).stats().connections, "the link was dropped");
}

#[test]
fn d5_desynchronised_stream_is_closed_and_delivers_no_garbage() {
    // D5: py2p may write a large frame only in part and carry on with the next
    // frame, so the length header no longer matches the bytes that follow.
    for (claimed, partial) in [(5_000usize, 300usize), (400, 120)] {
        let mut bench = Bench::new(mesh_cfg(0), STOCK_PY2P);
        let peer = bench.peer.clone();
        let big = frame(
            flags::WHISPER,
            &peer,
            secs(T0),
            vec![Bytes::from_static(&[2]), Bytes::from(vec![b'x'; claimed])],
            None,
        );
        // Only `partial` bytes of the big frame's body make it out...
        let mut stream = big[..4 + partial].to_vec();
        // ...and then whole frames follow.
        let mut genuine = HashSet::new();
        for i in 0..30 {
            let text = format!("after-{i}");
            genuine.insert(b(&text));
            stream.extend_from_slice(&frame(
                flags::WHISPER,
                &peer,
                secs(T0),
                vec![Bytes::from_static(&[2]), b(&text)],
                None,
            ));
        }
        let mut closed = false;
        let mut delivered = Vec::new();
        for chunk in stream.chunks(97) {
            let out = bench.feed(chunk);
            delivered.extend(out.messages().iter().map(|m| m.args().first().cloned().unwrap_or_default()));
            if !out.closes.is_empty() {
                closed = true;
                break;
            }
        }
        if !closed {
            // Whatever is left is a half frame: closed once it idles past the limit.
            bench.node.on_tick(T0 + 61_000);
            closed = !drain(&mut bench.node).closes.is_empty();
        }
        assert!(closed, "claimed {claimed}: a desynchronised stream must end in a close");
        for d in &delivered {
            assert!(genuine.contains(d), "claimed {claimed}: garbage reached the application: {d:?}");
        }
    }
}

#[test]
fn d18_relays_keep_sender_time_and_id() {
    // Line 0 - 1 - 2: 2 hears 0's broadcast only through 1's relay.
    let (mut sim, n0, n1, n2) = line_of_three();
    let id0 = sim.node(n0).id().clone();
    let id1 = sim.node(n1).id().clone();
    sim.take_events();
    sim.node(n0).broadcast(&[b("relayed")]);
    sim.run();
    let msgs = user_messages(sim.take_events());
    let at1 = &msgs.iter().find(|(n, _)| *n == n1).expect("1 got it").1;
    let at2 = &msgs.iter().find(|(n, _)| *n == n2).expect("2 got it").1;
    assert_eq!(sim.node(n2).peer_of(at2.conn), Some(&id1), "2 heard it from 1");
    assert_eq!(at2.msg.sender.as_ref(), id0.as_str().as_bytes(), "the relay keeps the sender");
    assert_eq!(at2.msg.time, at1.msg.time, "the relay keeps the time");
    assert_eq!(at2.id, at1.id, "the relay keeps the id");
    assert_eq!(at2.msg.msg_type, flags::BROADCAST);
}

#[test]
fn d18_same_payload_in_the_same_second_from_two_nodes_is_merged() {
    // D18: the id covers only payload and time, so the same broadcast made by two
    // nodes in the same second is one message to everyone else (kept for
    // compatibility: py2p nodes would drop the second anyway).
    let (mut sim, nodes) = build_mesh(5, |_| {});
    sim.take_events();
    sim.node(nodes[1]).broadcast(&[b("same")]);
    sim.node(nodes[3]).broadcast(&[b("same")]);
    sim.run();
    let counts = deliveries(&user_messages(sim.take_events()), b"same");
    for &n in &nodes {
        assert!(counts.get(&n).copied().unwrap_or(0) <= 1, "node {n} got the merged broadcast twice");
    }
    for n in [nodes[0], nodes[2], nodes[4]] {
        assert_eq!(counts.get(&n), Some(&1), "node {n}");
    }
    // One second later the same payload is a new message.
    sim.advance(1_000);
    sim.node(nodes[1]).broadcast(&[b("same")]);
    sim.run();
    let counts = deliveries(&user_messages(sim.take_events()), b"same");
    assert_eq!(counts.len(), nodes.len() - 1);
}

#[test]
fn d22_half_frame_stalls_nothing_and_is_closed_after_sixty_seconds() {
    // D22: py2p blocks its only network thread on a half-received frame. In rs2p
    // a half frame on one connection holds up nothing else, idle whole-frame
    // connections are never closed, and the half frame is dropped after 60 s.
    let mut bench = Bench::new(mesh_cfg(0), STOCK_PY2P);
    let other_peer = fake_id(2);
    let pid = bench.node.config().protocol.id();
    let other = bench.node.on_accepted(T0);
    bench.node.on_data(other, &handshake(&other_peer, &pid, 10, STOCK_PY2P, secs(T0)), T0);
    drain(&mut bench.node);
    let peer = bench.peer.clone();
    let f = frame(flags::WHISPER, &peer, secs(T0), vec![Bytes::from_static(&[2]), b("half")], None);
    bench.feed(&f[..f.len() / 2]);
    // The other connection is served at once.
    let g = frame(flags::WHISPER, &other_peer, secs(T0), vec![Bytes::from_static(&[2]), b("whole")], None);
    bench.node.on_data(other, &g, T0 + 10);
    let out = drain(&mut bench.node);
    assert_eq!(out.messages().len(), 1, "a half frame on another link stalled this one");
    // 59 s later: still open.
    bench.node.on_tick(T0 + 59_000);
    assert!(drain(&mut bench.node).closes.is_empty(), "closed a half frame before 60 s");
    bench.node.on_tick(T0 + 61_000);
    let out = drain(&mut bench.node);
    assert_eq!(out.closes, vec![bench.conn], "the half frame's link must close after 60 s, the idle one stay");
    bench.node.on_tick(T0 + 600_000);
    assert!(drain(&mut bench.node).closes.is_empty(), "an idle connection was closed");
    assert!(bench.node.conn_of(&PeerId::parse(other_peer.as_bytes()).unwrap()).is_some());
}

#[test]
fn d3_rs2p_renegotiates_whatever_the_number_of_shared_methods() {
    // D3: py2p only renegotiates when exactly one method is shared (otherwise its
    // log line raises and it disconnects). rs2p does it for any number.
    let lists: [&[Compression]; 4] = [&[], &[Compression::Zlib], &[Compression::Zlib, Compression::Gzip], &PREFERENCE];
    for list in lists {
        let json = compression::to_json(list);
        let mut bench = Bench::new(mesh_cfg(0), &json);
        let out = bench.feed(&[0, 0, 0, 5, 0, 0, 0, 1, 2]);
        assert!(out.closes.is_empty(), "{json}: a bad frame closed the link");
        let sent: Vec<Vec<Bytes>> = out.sends.iter().map(|(_, f)| open_frame(f).1.payload).collect();
        assert_eq!(
            sent,
            vec![vec![Bytes::from_static(&[flags::COMPRESSION]), b("[]")], vec![Bytes::from_static(&[flags::RESEND])]],
            "{json}"
        );
    }
}

#[test]
fn bench_helper_registers_the_fake_peer() {
    // Guards the helpers above: the fake peer is routed under its id.
    let bench = Bench::new(mesh_cfg(0), "[]");
    assert_eq!(bench.node.conn_of(&bench.peer_id()), Some(bench.conn));
}

/// The id packet of the whisper in `frame` (uncompressed).
fn id_packet(frame: &[u8]) -> Vec<u8> {
    let mut at = 4;
    let mut packets = Vec::new();
    while at + 4 <= frame.len() && packets.len() < 3 {
        let len = u32::from_be_bytes([frame[at], frame[at + 1], frame[at + 2], frame[at + 3]]) as usize;
        packets.push(frame[at + 4..at + 4 + len].to_vec());
        at += 4 + len;
    }
    packets.pop().expect("a header")
}

/// Whispers between rs2p peers carry an empty id, unchecked (PROTOCOL
/// §16.16): a node sends one to a peer with the capability and takes one
/// from it; a py2p peer gets real ids, and its whisper with an empty id is a
/// bad frame.
#[test]
fn whispers_between_rs2p_peers_carry_an_empty_id() {
    let cfg = || {
        let mut cfg = Config::mesh("10.0.0.1", 4000);
        cfg.compression = vec![];
        cfg
    };
    for (comp, rs2p) in [("[\"/\"]", true), ("[]", false)] {
        let mut bench = Bench::new(cfg(), comp);
        let pid = bench.peer_id();
        assert!(bench.node.whisper(&pid, &[b("hello")]));
        let out = drain(&mut bench.node);
        let id = id_packet(&out.sends[0].1);
        assert_eq!(
            id.is_empty(),
            rs2p,
            "id packet {:?} to a peer with capability {rs2p}",
            String::from_utf8_lossy(&id)
        );
        // The peer's own whisper with an empty id.
        let msg = Message::new(flags::WHISPER, b(&bench.peer), secs(bench.now), vec![b("\u{10}"), b("hi")]);
        let out = bench.feed(&msg.encode_with_id("", None).expect("small frame"));
        assert_eq!(out.messages().len(), usize::from(rs2p), "empty-id whisper from a peer with capability {rs2p}");
    }
}

/// The same seed gives the same run: byte-identical frames (the trace hash
/// covers the time, ends and bytes of every frame and close) and the same
/// node ids, which the simulator derives from its seed.
#[test]
fn same_seed_same_trace() {
    support::sim_ring::assert_repeatable(|| {
        let (mut sim, _nodes) = build_mesh(10, |_| {});
        sim.advance(10_000);
        sim
    });
}
