//! The status extension (PROTOCOL §16.15) in the simulator: answered to rs2p
//! peers only, one report per request.

use rs2p::core::Config;
use rs2p::sim::Sim;
use rs2p_test_support as support;

/// A seeding node `a`, an rs2p client and a client without the capability
/// (as py2p would be), each linked to `a`.
fn ring() -> (Sim, usize, usize, usize) {
    let mut sim = Sim::with_seed(7);
    let a = sim.add_node(Config::chord("10.0.0.1", 1));
    sim.node(a).join().unwrap();
    let b = sim.add_node(Config::chord("10.0.0.2", 1));
    sim.node(b).join().unwrap();
    sim.connect(b, a);
    let rs2p = sim.add_node(Config::chord("10.0.0.3", 1));
    let mut cfg = Config::chord("10.0.0.4", 1);
    cfg.advertise_capability = false;
    let plain = sim.add_node(cfg);
    sim.connect(rs2p, a);
    sim.connect(plain, a);
    sim.advance(2_000);
    (sim, a, rs2p, plain)
}

#[test]
fn an_rs2p_peer_gets_the_report_a_peer_without_the_capability_does_not() {
    let (mut sim, a, rs2p, plain) = ring();
    let a_id = sim.peek(a).unwrap().id().clone();

    let conn = sim.node(rs2p).conn_of(&a_id).expect("rs2p client linked");
    sim.node(rs2p).request_status(conn).unwrap();
    sim.advance(500);
    let report = sim.node(rs2p).take_status(conn, false).expect("a report came");
    assert_eq!(report.id, a_id.to_string());
    assert!(report.seeding);
    assert_eq!(report.ring.len(), 2, "a and b seed: {report:?}");
    let kinds: Vec<bool> = report.links.iter().map(|l| l.rs2p).collect();
    assert_eq!(kinds.iter().filter(|k| !**k).count(), 1, "one link without the capability: {report:?}");
    assert_eq!(sim.peek(a).unwrap().metrics().counters.status_answered, 1);

    // The client without the capability sees `a` as rs2p and may ask, but
    // `a` does not answer it.
    let conn = sim.node(plain).conn_of(&a_id).expect("plain client linked");
    sim.node(plain).request_status(conn).unwrap();
    sim.advance(1_000);
    assert_eq!(sim.node(plain).take_status(conn, false), None);
    assert_eq!(sim.peek(a).unwrap().metrics().counters.status_answered, 1);
    assert_eq!(sim.node(plain).take_status(conn, true), None, "cancel forgets the request");

    // Nobody asks a node without the capability.
    let plain_id = sim.peek(plain).unwrap().id().clone();
    let back = sim.node(a).conn_of(&plain_id).expect("a links to the plain client");
    assert!(sim.node(a).request_status(back).is_err());
}

#[test]
fn a_request_is_answered_once() {
    let (mut sim, a, rs2p, _) = ring();
    let a_id = sim.peek(a).unwrap().id().clone();
    let conn = sim.node(rs2p).conn_of(&a_id).unwrap();
    // Asked and answered once: the report is taken once.
    sim.node(rs2p).request_status(conn).unwrap();
    sim.advance(500);
    assert!(sim.node(rs2p).take_status(conn, false).is_some());
    assert_eq!(sim.node(rs2p).take_status(conn, false), None);
}

/// The same seed gives the same run: byte-identical frames (the trace hash
/// covers the time, ends and bytes of every frame and close) and the same
/// node ids, which the simulator derives from its seed.
#[test]
fn same_seed_same_trace() {
    support::sim_ring::assert_repeatable(|| {
        let (mut sim, a, _rs2p, _plain) = ring();
        sim.set(a, b"k", b"v");
        sim.advance(3_000);
        sim
    });
}
