//! Repair after crashes, on the deterministic in-memory network: 16 nodes,
//! 10,000 keys; one node killed, then another (silently: only keepalives
//! find it), then two adjacent ones at once. After each, all five copies of
//! every key are back at their owners, every key reads from the survivors,
//! and keys deleted before the crash stay deleted.
//!
//! Run with `--nocapture` to see the repair times and bytes.

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use rs2p::core::{Config, Event, GetError, ReqId};
use rs2p::ring::{distance, HashMethod, U512};
use rs2p::sim::Sim;
use rs2p_test_support as support;
use rs2p_test_support::sim_ring;

const NODES: usize = 16;
const KEYS: usize = 10_000;
const DELETED: usize = 200;

fn key(i: usize) -> String {
    format!("key-{i:05}")
}

fn value(i: usize) -> String {
    format!("value-{i}")
}

fn ring() -> (Sim, Vec<usize>) {
    ring_with(2)
}

/// A ring whose nodes keep replicas on `depth` predecessors.
fn ring_with(depth: u8) -> (Sim, Vec<usize>) {
    let cfg = |i: usize| {
        let mut cfg = Config::chord("10.2.0.1", 21000 + i as u16);
        cfg.salt = format!("repair-test-node-{i}");
        cfg.replica_depth = depth;
        cfg
    };
    sim_ring::build(Sim::new(), NODES, 60, cfg, sim_ring::via_half)
}

/// Alive seeding nodes sorted by id.
fn by_id(sim: &mut Sim) -> Vec<(U512, usize)> {
    let mut v: Vec<(U512, usize)> = sim.alive_nodes().into_iter().map(|i| (*sim.node(i).id().value(), i)).collect();
    v.sort();
    v
}

/// Copies of live keys missing at their true owner (among the nodes alive),
/// and copies of deleted keys still held anywhere.
fn audit(sim: &mut Sim, lost: &HashSet<usize>) -> (usize, usize) {
    let ids = by_id(sim);
    let mut missing = 0;
    for i in (DELETED..KEYS).filter(|i| !lost.contains(i)) {
        let k = key(i);
        for m in HashMethod::ALL {
            let h = m.hash(k.as_bytes());
            let owner = ids.iter().min_by_key(|(id, _)| distance(id, &h)).expect("nodes").1;
            if sim.node(owner).local_value(m, &h).map(|v| v.as_ref()) != Some(value(i).as_bytes()) {
                missing += 1;
            }
        }
    }
    let mut resurrected = 0;
    for i in 0..DELETED {
        let k = key(i);
        for m in HashMethod::ALL {
            let h = m.hash(k.as_bytes());
            resurrected += ids.iter().filter(|(_, n)| sim.node(*n).local_value(m, &h).is_some()).count();
        }
    }
    (missing, resurrected)
}

/// Live keys whose five copies all sit on `victims` (their owners now):
/// no copy would survive their crash, so no repair can bring them back.
fn doomed(sim: &mut Sim, victims: &[usize]) -> HashSet<usize> {
    let ids = by_id(sim);
    (DELETED..KEYS)
        .filter(|i| {
            HashMethod::ALL.into_iter().all(|m| {
                let h = m.hash(key(*i).as_bytes());
                victims.contains(&ids.iter().min_by_key(|(id, _)| distance(id, &h)).expect("nodes").1)
            })
        })
        .collect()
}

/// Advances time in 100 ms steps until every copy is back; returns the
/// virtual milliseconds and the bytes the network carried meanwhile.
fn until_repaired(sim: &mut Sim, lost: &HashSet<usize>, what: &str) -> (u64, u64) {
    let (t0, b0) = (sim.now(), sim.bytes);
    for _ in 0..600 {
        sim.advance(100);
        let (missing, resurrected) = audit(sim, lost);
        assert_eq!(resurrected, 0, "{what}: a deleted key's copy came back");
        if missing == 0 {
            let took = (sim.now() - t0, sim.bytes - b0);
            println!("{what}: all copies back after {} ms (virtual), {} bytes on the wire", took.0, took.1);
            return took;
        }
    }
    panic!("{what}: {} copies still missing after 60 s", audit(sim, lost).0);
}

/// Gets `keys` through `reader`, all at once; the results in key order.
fn read_all(sim: &mut Sim, reader: usize, keys: &[usize]) -> Vec<Result<Bytes, GetError>> {
    let now = sim.now();
    let reqs: Vec<ReqId> = keys.iter().map(|&i| sim.node(reader).get(key(i).as_bytes(), 10_000, now)).collect();
    let mut done: HashMap<ReqId, Result<Bytes, GetError>> = HashMap::new();
    for _ in 0..200 {
        sim.run();
        for (n, e) in sim.take_events() {
            if let (true, Event::GetDone { req, result }) = (n == reader, e) {
                done.insert(req, result);
            }
        }
        if done.len() == reqs.len() {
            break;
        }
        sim.advance(100);
    }
    reqs.iter().map(|r| done.remove(r).unwrap_or(Err(GetError::Timeout))).collect()
}

/// Every live key from `full` readers, a sample from every survivor, and
/// the deleted keys "not found".
fn check_reads(sim: &mut Sim, full: &[usize], lost: &HashSet<usize>, what: &str) {
    let live: Vec<usize> = (DELETED..KEYS).filter(|i| !lost.contains(i)).collect();
    let sample: Vec<usize> = live.iter().copied().step_by(97).collect();
    let gone: Vec<usize> = (0..DELETED).step_by(7).collect();
    for reader in sim.alive_nodes() {
        let keys = if full.contains(&reader) { &live } else { &sample };
        for (i, r) in keys.iter().zip(read_all(sim, reader, keys)) {
            assert_eq!(r.as_deref(), Ok(value(*i).as_bytes()), "{what}: node {reader} reading {}", key(*i));
        }
        for (i, r) in gone.iter().zip(read_all(sim, reader, &gone)) {
            assert_eq!(r, Err(GetError::NotFound), "{what}: node {reader}: deleted {} read back", key(*i));
        }
    }
}

#[test]
fn every_copy_returns_after_single_silent_and_adjacent_crashes() {
    let (mut sim, nodes) = ring();
    for i in 0..KEYS {
        sim.node(nodes[i % NODES]).set(key(i).as_bytes(), Bytes::from(value(i)));
        if i % 100 == 99 {
            sim.run();
        }
    }
    sim.run();
    for i in 0..DELETED {
        sim.node(nodes[(i * 7) % NODES]).delete(key(i).as_bytes());
    }
    sim.run();
    sim.advance(2_000);
    let lost = HashSet::new();
    assert_eq!(audit(&mut sim, &lost), (0, 0), "copies before any crash");

    // 1. One node crashes (its sockets are reset).
    let ids = by_id(&mut sim);
    let first = ids[3].1;
    assert!(doomed(&mut sim, &[first]).is_empty(), "this seed puts no key wholly on one node");
    sim.crash(first);
    let (t1, b1) = until_repaired(&mut sim, &lost, "one crash");
    // Every replica of an item its holder now owns was promoted, in all
    // five tables (sha512's hashes lie beyond the ring's range: a walk over
    // ranges of raw hashes once skipped them).
    let owned: Vec<usize> = sim.alive_nodes().into_iter().map(|n| sim.node(n).owned_replica_count()).collect();
    assert!(owned.iter().all(|&c| c == 0), "replicas of owned items left unpromoted: {owned:?}");
    check_reads(&mut sim, &[ids[2].1, ids[9].1], &lost, "after one crash");

    // 2. A non-adjacent node vanishes silently (no socket closes).
    let ids = by_id(&mut sim);
    let second = ids[10].1;
    assert!(doomed(&mut sim, &[second]).is_empty());
    sim.isolate(second);
    let (t2, _) = until_repaired(&mut sim, &lost, "one silent crash");
    assert!(t2 >= 6_000, "a silent peer is only declared gone after the keepalive timeout ({t2} ms)");
    check_reads(&mut sim, &[ids[9].1], &lost, "after a silent crash");

    // 3. Two adjacent nodes crash at once. Some key has all five copies on
    // those two (five independent hashes): its replicas, kept by the two
    // nodes before them, bring it back.
    let ids = by_id(&mut sim);
    let pair = [ids[5].1, ids[6].1];
    let wholly_on_pair = doomed(&mut sim, &pair);
    println!(
        "two adjacent crashes: {} of {} keys had all five copies on the pair",
        wholly_on_pair.len(),
        KEYS - DELETED
    );
    assert!(!wholly_on_pair.is_empty(), "this seed is chosen to have such a key: it must survive too");
    sim.crash(pair[0]);
    sim.crash(pair[1]);
    let (t3, b3) = until_repaired(&mut sim, &lost, "two adjacent crashes");
    check_reads(&mut sim, &[ids[4].1], &lost, "after two adjacent crashes");

    // Each repair is seconds, not minutes: detection plus a 2 s settling delay.
    assert!(t1 <= 10_000 && t3 <= 10_000, "repairs took {t1} and {t3} ms");
    assert!(b1 > 0 && b3 > 0);
    let stats: Vec<_> = sim.alive_nodes().into_iter().map(|n| sim.node(n).repair_stats()).collect();
    assert!(stats.iter().map(|s| s.promoted).sum::<u64>() > 0, "replicas were promoted");
    println!("repair counters: {stats:?}");
}

/// Without replicas, the cross-table repair alone: every key that kept at
/// least one copy comes back whole (read from the key list and the other
/// tables); one whose five copies were all on the crashed node cannot.
#[test]
fn without_replicas_the_other_tables_restore_every_key_that_kept_a_copy() {
    let (mut sim, nodes) = ring_with(0);
    for i in 0..KEYS {
        sim.node(nodes[i % NODES]).set(key(i).as_bytes(), Bytes::from(value(i)));
        if i % 100 == 99 {
            sim.run();
        }
    }
    for i in 0..DELETED {
        sim.node(nodes[(i * 7) % NODES]).delete(key(i).as_bytes());
    }
    sim.run();
    sim.advance(2_000);
    let ids = by_id(&mut sim);
    let pair = [ids[5].1, ids[6].1];
    let lost = doomed(&mut sim, &pair);
    sim.crash(pair[0]);
    sim.crash(pair[1]);
    let (took, bytes) = until_repaired(&mut sim, &lost, "two adjacent crashes, no replicas");
    check_reads(&mut sim, &[ids[4].1], &lost, "no replicas");
    let stats: Vec<_> = sim.alive_nodes().into_iter().map(|n| sim.node(n).repair_stats()).collect();
    assert!(stats.iter().map(|s| s.restored).sum::<u64>() > 0, "copies were read back from the other tables");
    assert_eq!(stats.iter().map(|s| s.promoted).sum::<u64>(), 0);
    assert!(took <= 15_000 && bytes > 0, "{took} ms");
    // The keys with no copy left are retried a few times, then left to the
    // anti-entropy pass: the repair ends.
    assert!(!lost.is_empty());
    for _ in 0..60 {
        sim.advance(1_000);
    }
    let busy: Vec<_> =
        sim.alive_nodes().into_iter().map(|n| (n, sim.node(n).repair_stats())).filter(|(_, s)| s.active).collect();
    assert!(busy.is_empty(), "repair still running a minute later: {busy:?}");
}

/// The same seed gives the same run: repair timing and traffic are exact.
#[test]
fn repair_is_deterministic() {
    let run = || {
        let (mut sim, nodes) = ring();
        for i in 0..2_000 {
            sim.node(nodes[i % NODES]).set(key(i).as_bytes(), Bytes::from(value(i)));
        }
        sim.run();
        sim.advance(2_000);
        let victim = by_id(&mut sim)[7].1;
        sim.crash(victim);
        let (t0, b0) = (sim.now(), sim.bytes);
        let mut restored_at = 0;
        for _ in 0..100 {
            sim.advance(100);
            let s: u64 =
                sim.alive_nodes().into_iter().map(|n| sim.node(n).repair_stats().last_restored_at).max().unwrap_or(0);
            if s > 0 && restored_at == 0 {
                restored_at = sim.now() - t0;
            }
        }
        (restored_at, sim.bytes - b0)
    };
    let a = run();
    assert!(a.0 > 0, "nothing was restored");
    assert_eq!(a, run());
}

/// The same seed gives the same run: byte-identical frames (the trace hash
/// covers the time, ends and bytes of every frame and close) and the same
/// node ids, which the simulator derives from its seed.
#[test]
fn same_seed_same_trace() {
    support::sim_ring::assert_repeatable(|| {
        let (mut sim, nodes) = ring();
        for i in 0..20 {
            sim.set(nodes[i % nodes.len()], key(i).as_bytes(), value(i).as_bytes());
        }
        sim.crash(nodes[2]);
        sim.advance(15_000);
        sim
    });
}

/// The periodic passes (the replica refresh, the anti-entropy scan and its
/// promotion of the replicas a node now owns) examine a bounded number of
/// items per step, however many the node holds, and the refresh still
/// covers every item the node owns. A node of a million items once listed
/// its whole arc (and every replica it held) in the one step that started
/// the pass, its lock held for seconds: its peers' keepalives went
/// unanswered, links closed, and a `rs2p import` of a million keys stalled
/// when every node's pass came due together (BENCHMARKS.md).
#[test]
fn periodic_passes_examine_a_bounded_number_of_items_per_step() {
    const PERIOD_MS: u64 = 10_000;
    const ITEMS_KEYS: usize = 6_000;
    let cfg = |i: usize| {
        let mut cfg = Config::chord("10.2.0.1", 22000 + i as u16);
        cfg.salt = format!("pass-test-node-{i}");
        cfg.anti_entropy_ms = PERIOD_MS;
        cfg
    };
    let (mut sim, nodes) = sim_ring::build(Sim::new(), 4, 60, cfg, sim_ring::via_half);
    for i in 0..ITEMS_KEYS {
        sim.node(nodes[i % nodes.len()]).set(key(i).as_bytes(), Bytes::from(value(i)));
        if i % 100 == 99 {
            sim.run();
        }
    }
    sim.run();
    let before: Vec<u64> = nodes.iter().map(|&n| sim.node(n).replica_refreshed()).collect();
    // Two periods and a quarter: every node's passes came due at least once
    // (each is jittered by a quarter of the period) and had time to finish.
    sim.advance(2 * PERIOD_MS + PERIOD_MS / 4);
    let most_held = nodes.iter().map(|&n| sim.node(n).stats().items).max().unwrap_or(0);
    assert!(most_held > 10_000, "the largest node holds {most_held} items: the test needs many");
    let most_replicas = nodes.iter().map(|&n| sim.node(n).replica_count()).max().unwrap_or(0);
    assert!(most_replicas > 8_192, "the largest node holds {most_replicas} replicas: a promotion walk needs two steps");
    for (j, &n) in nodes.iter().enumerate() {
        let node = sim.node(n);
        let held = node.stats().items;
        let (most, most_promoted) = node.replica_step_most();
        assert!(
            most <= 512 && most_promoted <= 8_192,
            "node {n}, holding {held} items and {} replicas, examined {most} in one refresh step, {most_promoted} in \
             one promotion step",
            node.replica_count()
        );
        let refreshed = node.replica_refreshed() - before[j];
        assert!(refreshed >= held as u64, "node {n} refreshed {refreshed} of the {held} items it owns");
        assert!(node.repair_stats().scans >= 1, "node {n} ran no anti-entropy pass");
    }
}

/// Replica writes go to the predecessor in batches (`chord/replica_batch.rs`):
/// 400 sets made at once give 4,000 replica writes (five owners, two
/// predecessors each) in a few frames per node, every one of them kept,
/// and a lone set later still goes as one frame per write (or per owner).
#[test]
fn replica_writes_go_in_batches_and_all_arrive() {
    let (mut sim, nodes) = ring_with(2);
    // Let the periodic refreshes of the build pass, so that only the
    // writes below send replica frames.
    sim.advance(200_000);
    let frames = |sim: &Sim| sim.by_sub_flag.get(&rs2p::wire::flags::RS2P_REPLICA).map_or(0, |e| e.0);
    let held = |sim: &mut Sim| nodes.iter().map(|&n| sim.node(n).replica_count()).sum::<usize>();
    let (frames0, held0) = (frames(&sim), held(&mut sim));
    const SETS: usize = 400;
    for i in 0..SETS {
        sim.node(nodes[i % NODES]).set(format!("batched-{i}").as_bytes(), Bytes::from(value(i)));
    }
    sim.advance(100);
    let (sent, kept) = (frames(&sim) - frames0, held(&mut sim) - held0);
    assert_eq!(kept, SETS * 5 * 2, "every write kept by two predecessors");
    // One frame per write before; now at most a few per node for the burst
    // (each node's batch goes when full, 256 items, or 5 ms after its first).
    assert!(sent <= 4 * NODES as u64, "{sent} replica frames for {} writes", SETS * 10);
    eprintln!("{} replica writes in {sent} frames", SETS * 10);
    // One set alone: ten writes in at most ten frames (an owner of two of
    // its tables sends both in one), all kept.
    let frames1 = frames(&sim);
    sim.node(nodes[0]).set(b"alone", Bytes::from_static(b"v"));
    sim.advance(100);
    assert_eq!(held(&mut sim) - held0, SETS * 10 + 10, "the lone set's ten replicas kept");
    let lone = frames(&sim) - frames1;
    assert!((2..=10).contains(&lone), "{lone} frames for a lone set's ten replica writes");
}
