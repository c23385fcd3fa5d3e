//! Fingers and successor lists (issue 14), in the in-memory simulator.

use std::collections::BTreeMap;

use rs2p::chord::KeyListStatus;
use rs2p::chord::Owner;
use rs2p::core::Config;
use rs2p::ring::{HashMethod, U512};
use rs2p::sim::{Sim, SimRng};
use rs2p_test_support as support;
use rs2p_test_support::sim_ring;

/// `n` seeding nodes, each joining through a random earlier one; nodes with
/// `py2p_like(i)` keep no fingers and hide the rs2p capability.
fn ring(n: usize, seed: u64, py2p_like: impl Fn(usize) -> bool) -> (Sim, Vec<usize>) {
    ring_with(n, seed, py2p_like, |_| {})
}

fn ring_with(n: usize, seed: u64, py2p_like: impl Fn(usize) -> bool, tweak: impl Fn(&mut Config)) -> (Sim, Vec<usize>) {
    let mut rng = SimRng::new(seed);
    let cfg = |i: usize| {
        let mut cfg = Config::chord(&format!("10.2.{}.{}", i / 250, 1 + i % 250), 4000);
        cfg.salt = format!("finger-test-{seed}-{i}");
        tweak(&mut cfg);
        if py2p_like(i) {
            cfg.fingers = false;
            cfg.advertise_capability = false;
        }
        cfg
    };
    let (mut sim, nodes) = sim_ring::build(Sim::with_seed(seed), n, 120, cfg, |_, nodes| *rng.pick(nodes));
    // A few rounds of finger lookups.
    for _ in 0..30 {
        sim.advance(1000);
    }
    assert!(sim.ring_is_consistent(), "the ring broke while fingers were found");
    (sim, nodes)
}

/// Hops of greedy routing from `from` to the owner of `key`, each node
/// forwarding to the peer it would send a retrieve to; `None` on a loop.
fn hops(sim: &mut Sim, by_id: &BTreeMap<U512, usize>, from: usize, key: &U512) -> Option<u32> {
    let mut at = from;
    for hop in 0..64 {
        let node = sim.node(at);
        match node.find(key) {
            Owner::Local => return Some(hop),
            Owner::Remote(c) => at = by_id[node.peer_of(c)?.value()],
            Owner::Nobody => return None,
        }
    }
    None
}

fn mean_hops(sim: &mut Sim, nodes: &[usize], seed: u64) -> f64 {
    let by_id: BTreeMap<U512, usize> = nodes.iter().map(|&i| (*sim.node(i).id().value(), i)).collect();
    let mut rng = SimRng::new(seed ^ 77);
    let mut total = 0u32;
    let lookups = 1000;
    for i in 0..lookups {
        let key = HashMethod::Sha384.hash(format!("lookup {i}").as_bytes());
        let from = *rng.pick(nodes);
        total += hops(sim, &by_id, from, &key).expect("greedy routing reached the owner");
    }
    f64::from(total) / f64::from(lookups)
}

/// 256 nodes with fingers: the mean path, counted both by walking each
/// node's routing choice and by the retrieve frames the gets really sent,
/// is within ½·log2 N + 1 hops, and every get reads the value set.
#[test]
fn a_ring_of_256_with_fingers_routes_in_half_log2_n_hops_and_reads_every_key() {
    let n = 256;
    let (mut sim, nodes) = ring(n, 14, |_| false);
    let bound = 0.5 * (n as f64).log2() + 1.0;
    let mean = mean_hops(&mut sim, &nodes, 14);
    let fingers: usize = nodes.iter().map(|&i| sim.node(i).finger_stats().fingers).sum();
    eprintln!("routing walk: mean hops {mean:.2} (bound {bound:.2}), {:.1} fingers a node", fingers as f64 / n as f64);
    assert!(mean <= bound, "mean hops {mean:.2} above ½·log2 N + 1 = {bound:.2}");
    let mut rng = SimRng::new(99);
    let keys = 60;
    for i in 0..keys {
        let via = *rng.pick(&nodes);
        sim.set(via, format!("k{i}").as_bytes(), format!("v{i}").as_bytes());
    }
    sim.track_lookups(true);
    let mut hops = Vec::new();
    for i in 0..keys {
        let via = *rng.pick(&nodes);
        let key = format!("k{i}");
        assert_eq!(sim.get(via, key.as_bytes()).unwrap(), format!("v{i}"), "{key} through {via}");
        // Frames of items still on their way when 3 tables agreed arrive now.
        sim.run();
        let seen = sim.take_lookup_hops();
        hops.extend(rs2p::sim::item_names(key.as_bytes()).iter().map(|item| seen.get(item).copied().unwrap_or(0)));
    }
    let wire_mean = f64::from(hops.iter().sum::<u32>()) / hops.len() as f64;
    eprintln!("on the wire: mean hops {wire_mean:.2} over {} item lookups", hops.len());
    assert!(wire_mean <= bound, "retrieves took {wire_mean:.2} hops on average, above {bound:.2}");
}

/// Each node keeps its successor list linked: when its successor crashes,
/// the next one is already a link (no lookup, no time needed); and
/// `disconnect_least_efficient` never drops a finger or a successor.
#[test]
fn successor_lists_replace_a_crashed_successor_and_structural_links_are_kept() {
    let n = 40;
    let (mut sim, nodes) = ring(n, 17, |_| false);
    let watcher = nodes[5];
    let succs = sim.node(watcher).successor_list();
    assert!(succs.len() >= rs2p::chord::MIN_SUCCESSORS, "only {} successors", succs.len());
    let by_id: BTreeMap<String, usize> = nodes.iter().map(|&i| (sim.node(i).id().to_string(), i)).collect();
    sim.crash(by_id[succs[0].as_str()]);
    let now = sim.node(watcher);
    let succ = now.owner_id(now.successor()).expect("a successor");
    assert_eq!(succ, succs[1], "the second successor takes over at once");

    let structural: Vec<_> = {
        let node = sim.node(watcher);
        let mut s = node.successor_list();
        s.extend(node.fingers());
        s
    };
    while sim.node(watcher).disconnect_least_efficient() {
        sim.run();
    }
    let node = sim.node(watcher);
    for p in &structural {
        assert!(node.conn_of(p).is_some(), "structural link to {} dropped", p.short());
    }
}

#[test]
fn a_mixed_ring_with_py2p_like_nodes_routes_every_lookup() {
    let n = 48;
    // Every third node behaves as py2p: no fingers, no rs2p extensions.
    let (mut sim, nodes) = ring(n, 15, |i| i % 3 == 1);
    let mean = mean_hops(&mut sim, &nodes, 15);
    eprintln!("mixed ring of {n}: mean hops {mean:.2}");
    let mut rng = SimRng::new(7);
    for i in 0..30 {
        let via = *rng.pick(&nodes);
        sim.set(via, format!("m{i}").as_bytes(), format!("w{i}").as_bytes());
    }
    for i in 0..30 {
        let via = *rng.pick(&nodes);
        assert_eq!(sim.get(via, format!("m{i}").as_bytes()).unwrap(), format!("w{i}"), "m{i} through {via}");
    }
}

/// `keys()` through `idx`, once its walk (or list) is complete.
fn walked(sim: &mut Sim, idx: usize) -> Vec<String> {
    sim.node(idx).request_keys();
    for _ in 0..600 {
        if sim.node(idx).key_list_status() == KeyListStatus::Complete {
            break;
        }
        sim.advance(100);
    }
    assert_eq!(sim.node(idx).key_list_status(), KeyListStatus::Complete, "the walk through {idx} never ended");
    let mut keys: Vec<String> = sim.node(idx).keys().iter().map(|k| String::from_utf8_lossy(k).into_owned()).collect();
    keys.sort();
    keys
}

/// Without the flooded key list, a set reaches only the five owners, and
/// `keys()` walks the ring: through a node or a client, after deletes and
/// after a crash.
#[test]
fn without_the_key_list_sets_stay_local_and_keys_walk_the_ring() {
    let n = 24;
    let (mut sim, nodes) = ring_with(n, 16, |_| false, |c| c.key_list = false);
    let mut rng = SimRng::new(16);
    let frames_before = sim.frames;
    let all: Vec<String> = (0..300).map(|i| format!("walk-key-{i:03}")).collect();
    for k in &all {
        let via = *rng.pick(&nodes);
        sim.set(via, k.as_bytes(), format!("value of {k}").as_bytes());
    }
    let per_set = (sim.frames - frames_before) as f64 / all.len() as f64;
    eprintln!("{per_set:.1} frames a set in a ring of {n}");
    assert!(per_set < 40.0, "{per_set:.1} frames a set: sets are still flooded");
    assert_eq!(walked(&mut sim, nodes[3]), all, "the walk through a node");
    assert!(!sim.node(nodes[3]).key_walk_failed());

    // A client with the default configuration walks too (its peer says so).
    let client = sim.add_node(Config::chord("10.2.9.9", 4000));
    sim.connect(client, nodes[5]);
    assert_eq!(walked(&mut sim, client), all, "the walk through a client");

    // Deleted keys leave the walk.
    for k in &all[..40] {
        let via = *rng.pick(&nodes);
        sim.node(via).delete(k.as_bytes());
    }
    sim.run();
    for _ in 0..3 {
        sim.advance(1000);
    }
    assert_eq!(walked(&mut sim, nodes[7]), all[40..], "the walk after deletes");

    // A crash loses no key: the replicas carry the keys.
    sim.crash(nodes[11]);
    for _ in 0..15 {
        sim.advance(1000);
    }
    let survivor = nodes[2];
    assert_eq!(walked(&mut sim, survivor), all[40..], "the walk after a crash");
    for k in all[40..].iter().step_by(13) {
        assert_eq!(sim.get(survivor, k.as_bytes()).unwrap(), format!("value of {k}"));
    }
}

/// The node a lookup for `key` from `from` ends at (greedy routing).
fn owner_of(sim: &mut Sim, by_id: &BTreeMap<U512, usize>, from: usize, key: &U512) -> usize {
    let mut at = from;
    for _ in 0..64 {
        let node = sim.node(at);
        match node.find(key) {
            Owner::Local => return at,
            Owner::Remote(c) => at = by_id[node.peer_of(c).expect("a linked peer").value()],
            Owner::Nobody => panic!("no owner for a key in a settled ring"),
        }
    }
    panic!("routing loops");
}

/// A get asks 3 of its 5 tables first (`Config::get_first_wave`): the same
/// ring and gets cost a quarter fewer lookup frames or better than asking
/// all five; and when the owner of a table falls silent, the other tables
/// are asked after the hedge delay, so the get still reads the value, long
/// before the silent link is given up.
#[test]
fn a_get_asks_three_tables_first_and_the_others_when_an_owner_is_silent() {
    let keys: Vec<String> = (0..40).map(|i| format!("wave-{i}")).collect();
    let mut frames = Vec::new();
    for wave in [5usize, 3] {
        let (mut sim, nodes) = ring_with(16, 11, |_| false, |cfg| cfg.get_first_wave = wave);
        for (i, k) in keys.iter().enumerate() {
            sim.set(nodes[i % 16], k.as_bytes(), b"v");
        }
        sim.track_lookups(true);
        let before = sim.lookup_frames().0;
        for (i, k) in keys.iter().enumerate() {
            let got = sim.get(nodes[(i * 7 + 3) % 16], k.as_bytes());
            assert_eq!(got.as_deref(), Ok(&b"v"[..]), "{k}, first wave {wave}");
        }
        frames.push(sim.lookup_frames().0 - before);
    }
    assert!(frames[0] >= 2 * 40, "the lookups were not counted: {frames:?}");
    assert!(frames[1] * 4 <= frames[0] * 3, "3 tables first: {} lookup frames; all 5: {}", frames[1], frames[0]);

    let (mut sim, nodes) = ring(16, 12, |_| false);
    for (i, k) in keys.iter().enumerate() {
        sim.set(nodes[i % 16], k.as_bytes(), b"v");
    }
    let by_id: BTreeMap<U512, usize> = nodes.iter().map(|&i| (*sim.node(i).id().value(), i)).collect();
    let (reader, victim) = (nodes[0], nodes[5]);
    let on_victim: Vec<usize> = keys
        .iter()
        .map(|k| {
            HashMethod::ALL
                .iter()
                .filter(|m| owner_of(&mut sim, &by_id, reader, &m.hash(k.as_bytes())) == victim)
                .count()
        })
        .collect();
    let exercised = on_victim.iter().filter(|&&n| (1..=2).contains(&n)).count();
    assert!(exercised >= 5, "only {exercised} keys have a table on the silent node: pick another");
    sim.isolate(victim);
    for (k, &n) in keys.iter().zip(&on_victim).filter(|(_, &n)| n <= 2) {
        let t0 = sim.now();
        let got = sim.get(reader, k.as_bytes());
        assert_eq!(got.as_deref(), Ok(&b"v"[..]), "{k} ({n} of its tables on the silent node)");
        let took = sim.now() - t0;
        assert!(took < 1_000, "{k}: {took} ms; the hedge should ask the other tables within a tick or two");
    }
}

/// The same seed gives the same run: byte-identical frames (the trace hash
/// covers the time, ends and bytes of every frame and close) and the same
/// node ids, which the simulator derives from its seed.
#[test]
fn same_seed_same_trace() {
    support::sim_ring::assert_repeatable(|| {
        let (mut sim, nodes) = ring(24, 3, |i| i % 5 == 0);
        sim.crash(nodes[4]);
        sim.advance(10_000);
        sim
    });
}
