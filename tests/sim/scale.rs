//! The scalable simulator: determinism (trace hash), rings with link
//! latency, and `rs2p sim` end to end.

use rs2p::core::Config;
use rs2p::sim::{item_names, Sim};
use rs2p_test_support::sim_ring;

/// Virtual seconds a test ring may take to become consistent.
const SETTLE_S: u32 = 300;

/// A ring of `n` nodes with fixed ids, latency `lat` and 100 ms ticks; each
/// newcomer is bootstrapped by an earlier node.
fn ring(seed: u64, n: usize, lat: (u64, u64)) -> Sim {
    let mut sim = Sim::with_seed(seed);
    sim.set_latency(lat.0, lat.1);
    sim.set_tick_ms(Some(100));
    // Eight nodes at a time, a second apart.
    let mut nodes = Vec::with_capacity(n);
    while nodes.len() < n {
        let upto = (nodes.len() + 8).min(n);
        let cfg = |i: usize| {
            let mut cfg = Config::chord(&format!("10.9.{}.{}", i / 256, i % 256), 4000);
            cfg.salt = format!("salt-{seed}-{i}");
            cfg
        };
        sim_ring::grow(&mut sim, &mut nodes, upto, true, cfg, |i, nodes| nodes[(i * 7919 + seed as usize) % i]);
        if upto % 8 == 0 {
            sim.advance(1000);
        }
    }
    sim
}

/// One short run: a ring of 12, a few sets and gets; returns the trace hash.
fn short_run(seed: u64) -> (u64, u64) {
    let mut sim = ring(seed, 12, (5, 40));
    assert!(sim.settle_ring(SETTLE_S), "ring of 12 did not settle");
    for i in 0..10 {
        sim.set(i % 12, format!("k{i}").as_bytes(), format!("v{i}").as_bytes());
    }
    sim.advance(2000);
    for i in 0..10 {
        assert_eq!(sim.get((i + 5) % 12, format!("k{i}").as_bytes()).unwrap(), format!("v{i}"));
    }
    (sim.trace_hash(), sim.frames)
}

#[test]
fn same_seed_same_trace() {
    let a = short_run(7);
    let b = short_run(7);
    assert_eq!(a, b, "two runs of seed 7 differ");
    let c = short_run(8);
    assert_ne!(a.0, c.0, "seeds 7 and 8 gave the same trace");
}

#[test]
fn zero_latency_is_instant() {
    let mut sim = ring(1, 4, (0, 0));
    assert!(sim.settle_ring(SETTLE_S));
    sim.node(0).set(b"x", "y".into());
    sim.run();
    assert_eq!(sim.in_flight(), 0, "zero latency left frames in flight after run");
    assert_eq!(sim.get(3, b"x").unwrap(), "y");
}

#[test]
fn latency_ring_of_64_answers_every_get() {
    let mut sim = ring(42, 64, (5, 50));
    assert!(sim.settle_ring(SETTLE_S), "ring of 64 with latency did not settle ({} mismatches)", sim.ring_mismatches());
    let keys = 100;
    for i in 0..keys {
        sim.node(i * 13 % 64).set(format!("key-{i}").as_bytes(), format!("value-{i}").into());
    }
    sim.advance(3000);
    sim.track_lookups(true);
    let mut hops = 0u64;
    for i in 0..keys {
        let reader = (i * 29 + 3) % 64;
        let key = format!("key-{i}");
        assert_eq!(sim.get(reader, key.as_bytes()).unwrap(), format!("value-{i}"), "key {i} via {reader}");
        // The three or more retrieves still flying when the get ended land.
        sim.advance(1000);
        let seen = sim.take_lookup_hops();
        hops += item_names(key.as_bytes()).iter().map(|it| u64::from(seen.get(it).copied().unwrap_or(0))).sum::<u64>();
    }
    // Every item is either local (0 hops) or at least one whisper away; the
    // asker owns few of the 500 items.
    assert!(hops >= 300, "only {hops} retrieve hops counted for {keys} gets");
}
