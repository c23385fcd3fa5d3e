//! A stepped system clock, on the deterministic in-memory network.
//!
//! Protocol timers (stabilisation, keepalives and peer timeouts, resends,
//! handoff retries, repair) run on the monotonic clock the driver passes to
//! every entry point; the wall clock ([`Node::set_wall_clock`]) only dates
//! messages and tombstones. Here one node's wall clock is stepped back an
//! hour and another's forward an hour (as `date -s` or a bad NTP step would
//! do) while the ring runs: no link is closed as silent, the ring keeps
//! stabilising, gets and sets through both nodes work, and a crash is still
//! repaired on time.
//!
//! [`Node::set_wall_clock`]: rs2p::node::Node::set_wall_clock

use rs2p::core::{Config, Event};
use rs2p::sim::Sim;
use rs2p_test_support as support;
use rs2p_test_support::sim_ring;

const NODES: usize = 6;
const KEYS: usize = 300;
const HOUR_MS: u64 = 3_600_000;

fn ring() -> (Sim, Vec<usize>) {
    let cfg = |i: usize| {
        let mut cfg = Config::chord("10.3.0.1", 22000 + i as u16);
        cfg.salt = format!("clock-test-node-{i}");
        cfg
    };
    sim_ring::build(Sim::with_seed(7), NODES, 60, cfg, sim_ring::via_first)
}

fn closes(events: &[(usize, Event)]) -> Vec<String> {
    events
        .iter()
        .filter_map(|(n, e)| match e {
            Event::Disconnected { reason, .. } => Some(format!("node {n}: {reason}")),
            _ => None,
        })
        .collect()
}

#[test]
fn wall_clock_steps_leave_timers_running() {
    let (mut sim, nodes) = ring();
    for i in 0..KEYS {
        sim.set(nodes[i % NODES], format!("k{i}").as_bytes(), format!("v{i}").as_bytes());
    }
    sim.advance(2_000);
    sim.take_events();

    // Node 0's wall clock goes back an hour, node 1's forward an hour.
    let (back, ahead) = (nodes[0], nodes[1]);
    let now = sim.now();
    sim.node(back).set_wall_clock(now - HOUR_MS);
    sim.node(ahead).set_wall_clock(now + HOUR_MS);
    assert_eq!(sim.node(back).wall_now(), now - HOUR_MS);

    // Twenty seconds: well past the keepalive and peer timeouts. Had the
    // timers followed the wall clock, the node ahead would close every link
    // as silent at once, and the node behind would stop stabilising, sending
    // keepalives and resending for an hour.
    for _ in 0..20 {
        sim.advance(1_000);
    }
    let events = sim.take_events();
    assert!(closes(&events).is_empty(), "links closed after the clock steps: {:?}", closes(&events));
    assert!(sim.ring_is_consistent(), "the ring stopped stabilising");

    // Gets through both nodes (whispers carry no age check, and an
    // answer is taken whatever the date of its version).
    for (n, who) in [(back, "behind"), (ahead, "ahead")] {
        for i in (0..KEYS).step_by(7) {
            let got = sim.get(n, format!("k{i}").as_bytes());
            assert_eq!(got.as_deref(), Ok(format!("v{i}").as_bytes()), "k{i} through the node {who}");
        }
    }
    // A set through the node behind lands (its versions are old, not
    // ahead); one through the node an hour ahead is refused by the other
    // owners, loudly (versions dated past `max_clock_skew_ms`), and reads
    // back as no wrong value.
    let reader = nodes[3];
    sim.set(back, b"set-through-behind", b"fresh");
    assert_eq!(sim.get(reader, b"set-through-behind").as_deref(), Ok(&b"fresh"[..]));
    let refused_before: u64 = nodes.iter().map(|&n| sim.node(n).metrics().counters.versions_refused).sum();
    sim.set(ahead, b"set-through-ahead", b"fresh");
    let refused: u64 = nodes.iter().map(|&n| sim.node(n).metrics().counters.versions_refused).sum();
    assert!(refused > refused_before, "writes dated an hour ahead were taken silently");
    match sim.get(reader, b"set-through-ahead") {
        Ok(v) => assert_eq!(&v[..], b"fresh"),
        Err(e) => assert_eq!(e, rs2p::core::GetError::NotFound, "a refused write reads as missing"),
    }

    // A crash: the failure is detected and repaired by the timers of every
    // node, the stepped ones included.
    let victim = nodes[4];
    sim.crash(victim);
    for _ in 0..15 {
        sim.advance(1_000);
    }
    assert!(sim.ring_is_consistent(), "the ring did not re-link after the crash");
    for i in 0..KEYS {
        for n in [back, ahead] {
            let got = sim.get(n, format!("k{i}").as_bytes());
            assert_eq!(got.as_deref(), Ok(format!("v{i}").as_bytes()), "k{i} after the crash, through node {n}");
        }
    }
    let repaired: u64 = sim.alive_nodes().into_iter().map(|n| sim.node(n).repair_stats().scans).sum();
    assert!(repaired > 0, "no repair scan ran after the crash");

    // The node an hour ahead and the node behind see each other's clock off
    // and say so (once per link).
    let warned: u64 = [back, ahead].iter().map(|&n| sim.node(n).metrics().counters.clock_skew_warnings).sum();
    assert!(warned > 0, "clocks an hour apart went unreported");

    // Back to the true time: still one ring, no link lost.
    let now = sim.now();
    sim.node(back).set_wall_clock(now);
    sim.node(ahead).set_wall_clock(now);
    for _ in 0..10 {
        sim.advance(1_000);
    }
    let events = sim.take_events();
    // (Dials refused are the probes of the crashed node, which the others
    // keep trying to get back: chord/rejoin.rs.)
    let lost: Vec<String> = closes(&events)
        .into_iter()
        .filter(|c| !c.contains("closed by the peer") && !c.contains("connection refused"))
        .collect();
    assert!(lost.is_empty(), "links closed after the clocks were set back: {lost:?}");
    assert!(sim.ring_is_consistent());
}

/// The same seed gives the same run: byte-identical frames (the trace hash
/// covers the time, ends and bytes of every frame and close) and the same
/// node ids, which the simulator derives from its seed.
#[test]
fn same_seed_same_trace() {
    support::sim_ring::assert_repeatable(|| {
        let (mut sim, nodes) = ring();
        sim.set_clock_offset(nodes[1], -90_000);
        sim.advance(10_000);
        sim
    });
}
