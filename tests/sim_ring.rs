//! Chord rings on the deterministic in-memory network.

use rs2p::core::{Config, GetError};
use rs2p::sim::Sim;

fn ring(n: usize) -> (Sim, Vec<usize>) {
    let mut sim = Sim::new();
    let mut nodes = Vec::new();
    for i in 0..n {
        let idx = sim.add_node(Config::chord("10.1.0.1", 20000 + i as u16));
        sim.node(idx).join().unwrap();
        if i > 0 {
            sim.connect(idx, nodes[i / 2]);
        }
        nodes.push(idx);
    }
    assert!(sim.settle_ring(60), "ring of {n} did not stabilise");
    (sim, nodes)
}

#[test]
fn small_ring_set_get_delete() {
    let (mut sim, nodes) = ring(6);
    for (i, k) in ["a", "b", "c", "d"].iter().enumerate() {
        sim.set(nodes[i], k.as_bytes(), format!("value-{k}").as_bytes());
    }
    for &n in &nodes {
        for k in ["a", "b", "c", "d"] {
            assert_eq!(sim.get(n, k.as_bytes()).unwrap(), format!("value-{k}"), "node {n} key {k}");
        }
        assert_eq!(sim.get(n, b"missing"), Err(GetError::NotFound));
    }
    sim.node(nodes[2]).delete(b"b");
    sim.run();
    for &n in &nodes {
        assert_eq!(sim.get(n, b"b"), Err(GetError::NotFound), "node {n}");
        assert!(!sim.node(n).keys().contains(&bytes::Bytes::from_static(b"b")), "node {n} still lists b");
    }
}

#[test]
fn ring_of_32_with_1000_keys_and_churn() {
    let (mut sim, nodes) = ring(32);
    let keys: Vec<String> = (0..1000).map(|i| format!("key-{i}")).collect();
    for (i, k) in keys.iter().enumerate() {
        sim.set(nodes[i % nodes.len()], k.as_bytes(), format!("v{i}").as_bytes());
    }
    let check = |sim: &mut Sim, readers: &[usize]| {
        for (i, k) in keys.iter().enumerate() {
            for &r in readers {
                assert_eq!(sim.get(r, k.as_bytes()).as_deref(), Ok(format!("v{i}").as_bytes()), "reader {r} key {k}");
            }
        }
    };
    check(&mut sim, &nodes);
    // Graceful leaves and new joins in between: no key lost.
    for leaver in [3usize, 17, 29] {
        sim.node(nodes[leaver]).unjoin().unwrap();
        sim.run();
        for _ in 0..50 {
            if sim.node(nodes[leaver]).handoff_pending() == 0 {
                break;
            }
            sim.advance(200);
        }
        assert_eq!(sim.node(nodes[leaver]).handoff_pending(), 0);
        assert_eq!(sim.node(nodes[leaver]).item_count(), 0, "leaver kept items");
        sim.close(nodes[leaver]);
    }
    let mut alive = sim.alive_nodes();
    for j in 0..3 {
        let idx = sim.add_node(Config::chord("10.1.0.2", 21000 + j));
        sim.node(idx).join().unwrap();
        sim.connect(idx, alive[j as usize * 5]);
        alive.push(idx);
    }
    assert!(sim.settle_ring(60), "ring did not stabilise after churn");
    let sample: Vec<usize> = alive.iter().copied().step_by(4).collect();
    check(&mut sim, &sample);
}

#[test]
fn leeching_client_reads_and_writes() {
    let (mut sim, nodes) = ring(5);
    let client = sim.add_node(Config::chord("10.1.0.9", 1));
    sim.connect(client, nodes[0]);
    sim.advance(100);
    assert!(sim.node(client).is_leeching());
    sim.set(client, b"from-client", b"hello");
    assert_eq!(sim.node(client).item_count(), 0, "a leeching client stores nothing");
    for &n in &nodes {
        assert_eq!(sim.get(n, b"from-client").unwrap(), "hello");
    }
    sim.set(nodes[1], b"from-ring", b"world");
    assert_eq!(sim.get(client, b"from-ring").unwrap(), "world");
}

#[test]
fn key_list_streams_to_a_py2p_like_peer_one_notify_per_key() {
    const KEYS: usize = 5_000;
    let mut sim = Sim::new();
    let a = sim.add_node(Config::chord("10.0.0.1", 1));
    sim.node(a).join().unwrap();
    for i in 0..KEYS {
        sim.node(a).set(format!("k{i}").as_bytes(), "v".into());
    }
    sim.run();
    // Without the capability flag, b looks like py2p to a: the list is pushed,
    // one notify per key, a burst at once and the rest as ticks give room.
    let mut cfg = Config::chord("10.0.0.2", 1);
    cfg.advertise_capability = false;
    let b = sim.add_node(cfg);
    let frames = sim.frames;
    sim.connect(b, a);
    let first = sim.node(b).stats().keys;
    assert!((1..KEYS).contains(&first), "the first burst holds part of the list, not {first}");
    assert_eq!(sim.node(a).stats().key_streams, 1);
    for _ in 0..50 {
        if sim.node(b).stats().keys == KEYS {
            break;
        }
        sim.advance(100);
    }
    assert_eq!(sim.node(b).stats().keys, KEYS);
    assert_eq!(sim.node(a).stats().key_streams, 0, "the stream ended");
    assert!(sim.frames - frames >= KEYS as u64, "one frame per key to a py2p-like peer");

    // An rs2p node that asks for the list gets it in a few batches (a leech,
    // so that no handoff of items adds frames to the count).
    let c = sim.add_node(Config::chord("10.0.0.3", 1));
    sim.connect(c, a);
    let frames = sim.frames;
    sim.node(c).request_keys();
    for _ in 0..50 {
        if sim.node(c).key_list_status() == rs2p::chord::KeyListStatus::Complete {
            break;
        }
        sim.advance(100);
    }
    assert_eq!(sim.node(c).stats().keys, KEYS);
    assert!(sim.frames - frames < 500, "{} frames for a batched list of {KEYS} keys", sim.frames - frames);
    // A leech that never asks holds none.
    let d = sim.add_node(Config::chord("10.0.0.4", 1));
    sim.connect(d, a);
    sim.advance(1000);
    assert_eq!(sim.node(d).stats().keys, 0);
    assert_eq!(sim.node(d).key_list_status(), rs2p::chord::KeyListStatus::NotRequested);
}
