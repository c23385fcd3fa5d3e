//! The workload the callgrind guard counts (`.ci/callgrind-guard` runs
//! these two tests under callgrind, collecting only `measured_sets` and
//! `measured_gets`): here, that it does what it says (every get reads its
//! value, every set reads back) and is the same run twice.

use rs2p_test_support as support;
use support::instr::{key, measured_gets, measured_sets, ring, value, NODES, PRESET};

/// Operations the guard counts: the count divided by this is one operation's.
pub const OPS: usize = 200;

/// The guard's seed.
const SEED: u64 = 1;

#[test]
fn sets_to_count() {
    let (mut sim, nodes) = ring(SEED);
    measured_sets(&mut sim, &nodes, OPS);
    for i in (0..OPS).step_by(17) {
        let got = sim.get(nodes[(i + 3) % NODES], &key(PRESET + i));
        assert_eq!(got.as_ref().ok(), Some(&value(PRESET + i)), "set {i} reads back");
    }
}

#[test]
fn gets_to_count() {
    let (mut sim, nodes) = ring(SEED);
    assert_eq!(measured_gets(&mut sim, &nodes, OPS), OPS, "every get reads its value within its run");
}

#[test]
fn same_seed_same_trace() {
    support::sim_ring::assert_repeatable(|| {
        let (mut sim, nodes) = ring(SEED);
        measured_sets(&mut sim, &nodes, 20);
        measured_gets(&mut sim, &nodes, 20);
        sim
    });
}
