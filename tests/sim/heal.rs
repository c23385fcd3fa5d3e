//! Heal, on the deterministic in-memory network: paused nodes and
//! partitioned rings come back whole, and the latest write wins.
//!
//! * One node, then two adjacent ones, paused past the peer timeout while
//!   the ring overwrites and deletes keys; after they resume the ring is
//!   consistent again and every key reads its latest value (or "not
//!   found") through every node, the resumed ones included.
//! * A ring of 64 split in halves for 60 virtual seconds, with writes,
//!   overwrites and deletes on both sides (some keys on both: the later
//!   write must win), healed: one ring again, and every key through every
//!   node gives the later write, keys written on one side only are kept,
//!   deleted keys stay deleted. Several seeds.
//! * Clocks minutes apart: every key agrees.

use std::collections::BTreeMap;

use rs2p::core::{Config, GetError};
use rs2p::sim::Sim;
use rs2p_test_support as support;
use rs2p_test_support::sim_ring;

/// What every key should read: `Some(value)` or deleted (`None`).
type Model = BTreeMap<String, Option<String>>;

fn ring(seed: u64, n: usize) -> (Sim, Vec<usize>) {
    let cfg = |i: usize| {
        let mut cfg = Config::chord(&format!("10.3.{}.{}", i / 200, 1 + i % 200), 7000);
        cfg.salt = format!("heal-{seed}-{i}");
        cfg.get_timeout_ms = 4_000;
        cfg
    };
    sim_ring::build(Sim::with_seed(seed), n, 120, cfg, sim_ring::via_half)
}

fn set(sim: &mut Sim, via: usize, model: &mut Model, key: &str, value: Option<&str>) {
    match value {
        Some(v) => sim.set(via, key.as_bytes(), v.as_bytes()),
        None => {
            sim.node(via).delete(key.as_bytes());
            sim.run();
        }
    }
    model.insert(key.to_owned(), value.map(str::to_owned));
}

/// Keys whose reads through `via` differ from the model, with what was read.
fn wrong_reads(sim: &mut Sim, via: usize, model: &Model) -> Vec<String> {
    let mut wrong = Vec::new();
    for (k, want) in model {
        let got = sim.get(via, k.as_bytes());
        let ok = match (want, &got) {
            (Some(v), Ok(g)) => g.as_ref() == v.as_bytes(),
            (None, Err(GetError::NotFound)) => true,
            _ => false,
        };
        if !ok {
            wrong.push(format!("{k}: want {want:?}, got {got:?}"));
        }
    }
    wrong
}

/// Advances in 1 s steps until `cond` holds; the virtual seconds it took.
fn until(sim: &mut Sim, max_s: u32, mut cond: impl FnMut(&mut Sim) -> bool) -> Option<u32> {
    for s in 0..=max_s {
        if cond(sim) {
            return Some(s);
        }
        sim.advance(1000);
    }
    None
}

/// Prints who holds what of `key`'s five items (a failing test's evidence).
fn explain(sim: &mut Sim, key: &str) {
    let mut ids: Vec<(rs2p::ring::U512, usize)> =
        sim.alive_nodes().into_iter().map(|i| (*sim.node(i).id().value(), i)).collect();
    ids.sort();
    for m in rs2p::ring::HashMethod::ALL {
        let h = m.hash(key.as_bytes());
        let owner = ids.iter().rev().find(|(id, _)| *id <= h).or(ids.last()).map(|(_, i)| *i).unwrap();
        let mut held = Vec::new();
        for &(_, i) in &ids {
            let n = sim.peek(i).unwrap();
            if let Some(v) = n.local_value(m, &h) {
                held.push(format!("{i}:{}", String::from_utf8_lossy(v)));
            }
            if n.local_tomb(m, &h).is_some() {
                held.push(format!("{i}:tomb"));
            }
        }
        println!("{key} {m}: owner {owner}, held {held:?}");
    }
}

/// Checks every key through every node in `readers`, panicking with the first wrong reads.
fn check_all(sim: &mut Sim, readers: &[usize], model: &Model, what: &str) {
    for &r in readers {
        let wrong = wrong_reads(sim, r, model);
        if let Some(w) = wrong.first() {
            let key = w.split(':').next().unwrap().to_owned();
            explain(sim, &key);
        }
        assert!(
            wrong.is_empty(),
            "{what}: {} wrong reads through node {r}, e.g. {:?}",
            wrong.len(),
            &wrong[..wrong.len().min(5)]
        );
    }
}

fn pause_case(seed: u64, paused: &[usize]) {
    let (mut sim, nodes) = ring(seed, 12);
    let mut model = Model::new();
    for i in 0..200 {
        set(&mut sim, nodes[0], &mut model, &format!("k{i}"), Some(&format!("v{i}")));
    }
    sim.advance(3000);
    let victims: Vec<usize> = paused.iter().map(|&p| nodes[p]).collect();
    for &v in &victims {
        sim.pause(v);
    }
    // Past the peer timeout: the others close the links and take over.
    for _ in 0..8 {
        sim.advance(1000);
    }
    let writer = *nodes.iter().find(|n| !victims.contains(n)).unwrap();
    for i in 0..200 {
        let k = format!("k{i}");
        match i % 4 {
            0 => set(&mut sim, writer, &mut model, &k, Some(&format!("new{i}"))),
            1 => set(&mut sim, writer, &mut model, &k, None),
            _ => {}
        }
    }
    for _ in 0..4 {
        sim.advance(1000);
    }
    for &v in &victims {
        sim.resume(v);
    }
    let back = until(&mut sim, 45, |sim| sim.ring_is_consistent());
    assert!(back.is_some(), "seed {seed}: ring not whole 45 s after resuming {paused:?}");
    println!("seed {seed}: paused {paused:?} back in the ring {} s after resuming", back.unwrap());
    sim.advance(5000);
    let readers: Vec<usize> = victims.iter().copied().chain([writer]).collect();
    check_all(&mut sim, &readers, &model, &format!("seed {seed}, paused {paused:?}"));
}

#[test]
fn a_paused_node_rejoins_and_serves_the_latest_values() {
    for seed in 1..=6 {
        pause_case(seed, &[5]);
    }
}

#[test]
fn two_adjacent_paused_nodes_rejoin_and_serve_the_latest_values() {
    for seed in 7..=11 {
        let (sim, nodes) = ring(seed, 12);
        // Two nodes adjacent on the ring: the first and its successor by id.
        let mut by_id: Vec<(rs2p::ring::U512, usize)> =
            nodes.iter().map(|&i| (*sim.peek(i).unwrap().id().value(), i)).collect();
        by_id.sort();
        drop(sim);
        let a = nodes.iter().position(|&n| n == by_id[3].1).unwrap();
        let b = nodes.iter().position(|&n| n == by_id[4].1).unwrap();
        pause_case(seed, &[a, b]);
    }
}

fn partition_case(seed: u64, n: usize) {
    let (mut sim, nodes) = ring(seed, n);
    let mut model = Model::new();
    for i in 0..300 {
        set(&mut sim, nodes[0], &mut model, &format!("k{i}"), Some(&format!("v{i}")));
    }
    sim.advance(3000);
    let (a, b): (Vec<usize>, Vec<usize>) = nodes.iter().partition(|&&i| i % 2 == 0);
    sim.partition(&b);
    // Each side finds the other silent (6 s) and re-forms a ring of its
    // own; writes sent across the cut before that are lost in transit.
    for _ in 0..10 {
        sim.advance(1000);
    }
    // Writes on both sides: side A first, then side B (later) on shared keys.
    for i in 0..300 {
        let k = format!("k{i}");
        match i % 6 {
            0 => set(&mut sim, a[i % a.len()], &mut model, &k, Some(&format!("a{i}"))),
            1 => set(&mut sim, b[i % b.len()], &mut model, &k, Some(&format!("b{i}"))),
            2 => set(&mut sim, a[i % a.len()], &mut model, &k, None),
            _ => {}
        }
    }
    sim.advance(1000);
    for i in 0..300 {
        let k = format!("k{i}");
        match i % 6 {
            // Both sides: B's write comes later and must win.
            3 => {
                set(&mut sim, a[i % a.len()], &mut model, &k, Some(&format!("a{i}")));
                sim.advance(10);
                set(&mut sim, b[i % b.len()], &mut model, &k, Some(&format!("b-later{i}")));
            }
            4 => {
                set(&mut sim, b[i % b.len()], &mut model, &k, None);
            }
            _ => {}
        }
    }
    for i in 300..340 {
        let side = if i % 2 == 0 { &a } else { &b };
        set(&mut sim, side[i % side.len()], &mut model, &format!("k{i}"), Some(&format!("only{i}")));
    }
    // The split lasts 60 virtual seconds in all.
    for _ in 0..48 {
        sim.advance(1000);
    }
    sim.heal();
    let whole = until(&mut sim, 60, |sim| sim.ring_is_consistent());
    assert!(whole.is_some(), "seed {seed}: one ring again within 60 s of the heal");
    println!("seed {seed}: {n} nodes one ring again {} s after the heal", whole.unwrap());
    sim.advance(10_000);
    let readers: Vec<usize> = vec![a[0], b[0], a[a.len() - 1], b[b.len() - 1]];
    check_all(&mut sim, &readers, &model, &format!("seed {seed}, partition of {n}"));
    // Most runs of items changing owner were already at the new owner:
    // range summaries handed them over without sending them.
    let matched: u64 = nodes.iter().map(|&n| sim.node(n).sync_stats().0).sum();
    assert!(matched > 0, "seed {seed}: no item was handed over by a matching range summary");
    // Every node lists the keys of both sides, deleted ones left out.
    let mut live: Vec<String> = model.iter().filter(|(_, v)| v.is_some()).map(|(k, _)| k.clone()).collect();
    live.sort();
    for &r in &nodes {
        let mut listed: Vec<String> =
            sim.node(r).keys().iter().map(|k| String::from_utf8_lossy(k).into_owned()).collect();
        listed.sort();
        assert_eq!(listed, live, "seed {seed}: node {r}'s key list after the heal");
    }
}

#[test]
fn a_ring_split_in_halves_heals_and_the_later_write_wins() {
    for seed in 12..=15 {
        partition_case(seed, 64);
    }
}

/// Five nodes, two of them with clocks 2 minutes ahead: sets, overwrites
/// and deletes through both kinds agree everywhere, every node lists every
/// key, and a write made after another (seconds later, on a host whose
/// clock is behind) wins.
#[test]
fn clocks_two_minutes_apart_agree_on_every_key() {
    for seed in 21..=24 {
        let (mut sim, nodes) = ring(seed, 5);
        sim.set_clock_offset(nodes[3], 120_000);
        sim.set_clock_offset(nodes[4], 120_000);
        sim.advance(3000);
        let mut model = Model::new();
        for i in 0..100 {
            let via = nodes[i % 5];
            set(&mut sim, via, &mut model, &format!("k{i}"), Some(&format!("v{i}")));
        }
        sim.advance(2000);
        for i in 0..100 {
            let k = format!("k{i}");
            match i % 5 {
                // A fast host writes, then a slow one overwrites 2 s later: the later wins.
                0 => {
                    set(&mut sim, nodes[3], &mut model, &k, Some(&format!("fast{i}")));
                    sim.advance(2000);
                    set(&mut sim, nodes[1], &mut model, &k, Some(&format!("slow-later{i}")));
                }
                1 => set(&mut sim, nodes[4], &mut model, &k, None),
                2 => set(&mut sim, nodes[0], &mut model, &k, None),
                _ => {}
            }
        }
        sim.advance(5000);
        check_all(&mut sim, &nodes, &model, &format!("seed {seed}, skewed clocks"));
        let live: Vec<String> = model.iter().filter(|(_, v)| v.is_some()).map(|(k, _)| k.clone()).collect();
        for &n in &nodes {
            let mut listed: Vec<String> =
                sim.node(n).keys().iter().map(|k| String::from_utf8_lossy(k).into_owned()).collect();
            listed.sort();
            let mut want = live.clone();
            want.sort();
            assert_eq!(listed, want, "seed {seed}: node {n}'s key list");
        }
    }
}

/// A node stopped for longer than deletes are remembered: with
/// `drop_stale_after_horizon` it drops what it held when it resumes, so a
/// key deleted (and forgotten) meanwhile does not come back; without it,
/// it keeps its data and says so.
#[test]
fn a_node_away_past_the_tombstone_horizon_brings_no_deleted_key_back() {
    for drop in [true, false] {
        let mut sim = Sim::with_seed(31);
        let mut nodes = Vec::new();
        for i in 0..8 {
            let mut cfg = Config::chord(&format!("10.4.0.{}", i + 1), 7000);
            cfg.salt = format!("horizon-{i}");
            cfg.get_timeout_ms = 4_000;
            cfg.tombstone_horizon_ms = 30_000;
            cfg.drop_stale_after_horizon = drop;
            let idx = sim.add_node(cfg);
            sim.node(idx).join().unwrap();
            if i > 0 {
                sim.connect(idx, nodes[i / 2]);
            }
            nodes.push(idx);
        }
        assert!(sim.settle_ring(60));
        for i in 0..40 {
            sim.set(nodes[0], format!("h{i}").as_bytes(), b"old");
        }
        sim.advance(3000);
        let away = nodes[5];
        let held = sim.node(away).item_count();
        assert!(held > 0, "the node to pause holds nothing");
        sim.pause(away);
        for _ in 0..10 {
            sim.advance(1000);
        }
        for i in 0..40 {
            sim.node(nodes[1]).delete(format!("h{i}").as_bytes());
            sim.run();
        }
        // Past the horizon: the ring forgets the deletes.
        for _ in 0..70 {
            sim.advance(1000);
        }
        sim.resume(away);
        assert!(until(&mut sim, 45, |sim| sim.ring_is_consistent()).is_some());
        sim.advance(10_000);
        if drop {
            assert_eq!(sim.node(away).item_count(), 0, "the stale node kept its items");
            for i in 0..40 {
                let got = sim.get(nodes[2], format!("h{i}").as_bytes());
                assert_eq!(got, Err(GetError::NotFound), "h{i} came back after the horizon");
            }
        } else {
            let errors = sim.node(away).status().err().unwrap_or_default();
            assert!(
                errors.iter().any(|e| e.contains("longer than deletes are remembered")),
                "no warning from a node back after the horizon: {errors:?}"
            );
        }
    }
}

/// The same seed gives the same run: byte-identical frames (the trace hash
/// covers the time, ends and bytes of every frame and close) and the same
/// node ids, which the simulator derives from its seed.
#[test]
fn same_seed_same_trace() {
    support::sim_ring::assert_repeatable(|| {
        let (mut sim, nodes) = ring(4, 8);
        let mut model = Model::new();
        set(&mut sim, nodes[0], &mut model, "k", Some("old"));
        sim.pause(nodes[3]);
        set(&mut sim, nodes[1], &mut model, "k", Some("new"));
        sim.advance(12_000);
        sim.resume(nodes[3]);
        sim.advance(20_000);
        sim
    });
}
