//! The fixed, deterministic simulated workload whose instructions
//! callgrind counts: the regression guard of `.ci/callgrind-guard` (which
//! runs `tests/sim/instr.rs` under callgrind) and `rs2p-lab bench-instr`.
//!
//! A ring of [`NODES`] simulated nodes (zero latency, the default config:
//! the flooded key list on) holds [`PRESET`] keys; then `ops` sets of new
//! keys ([`measured_sets`]) or `ops` gets of the preset keys
//! ([`measured_gets`]), each through the next node in turn and carried to
//! its end (`Sim::run`: every frame it causes is delivered and handled).
//! Only those two functions are counted (`valgrind --tool=callgrind
//! --toggle-collect=...`), so building the ring is not: the count divided
//! by `ops` is the instructions of one set or get, end to end, over every
//! node it touches (encoding, decoding, routing, the tables), without
//! sockets, tasks or the kernel. The same binary gives the same count:
//! virtual time, one seed, and maps keyed from it.

use bytes::Bytes;

use rs2p::core::{Config, Event};
use rs2p::sim::Sim;

use crate::sim_ring;

/// Nodes in the ring: enough that most items live on another node.
pub const NODES: usize = 8;

/// Keys set before the measured phase, the ones the gets read.
pub const PRESET: usize = 64;

/// Bytes of each value (the bench's size).
pub const VALUE_BYTES: usize = 100;

/// Virtual seconds the ring has to settle before the keys are set.
const SETTLE_S: u32 = 60;

/// Virtual time after the preset keys, for replicas and key lists to go out
/// before the measured phase (which advances no time: no tick runs in it).
const QUIET_MS: u64 = 5_000;

/// The `i`th key of the workload.
pub fn key(i: usize) -> Vec<u8> {
    format!("instr-key-{i:06}").into_bytes()
}

/// The value of the `i`th key.
pub fn value(i: usize) -> Bytes {
    let mut v = vec![b'v'; VALUE_BYTES];
    v[..8].copy_from_slice(&(i as u64).to_be_bytes());
    Bytes::from(v)
}

/// The ring with the preset keys, settled: the sim and its nodes.
pub fn ring(seed: u64) -> (Sim, Vec<usize>) {
    let cfg = |i: usize| {
        let mut cfg = Config::chord(&format!("10.7.0.{}", i + 1), 4000);
        cfg.salt = format!("instr-node-{seed}-{i}");
        cfg
    };
    let (mut sim, nodes) = sim_ring::build(Sim::with_seed(seed), NODES, SETTLE_S, cfg, sim_ring::via_first);
    for i in 0..PRESET {
        sim.node(nodes[i % NODES]).set(&key(i), value(i));
        sim.run();
    }
    sim.advance(QUIET_MS);
    sim.take_events();
    (sim, nodes)
}

/// The counted sets: each through the next node, to its end.
#[inline(never)]
pub fn measured_sets(sim: &mut Sim, nodes: &[usize], ops: usize) {
    for i in 0..ops {
        sim.node(nodes[i % nodes.len()]).set(&key(PRESET + i), value(PRESET + i));
        sim.run();
        // Its key-list batch (one key) and the replica writes of its owners
        // and of the predecessors that pass them on go out now, not after
        // their 5 ms deadline, round after round until none is left: the
        // set is counted with every frame it makes (flushing only the
        // setter left the owners' replica batches out of the count).
        loop {
            let before = sim.frames;
            for &n in nodes {
                sim.node(n).flush_announcements();
            }
            sim.run();
            if sim.frames == before {
                break;
            }
        }
        sim.take_events();
    }
}

/// The counted gets: each through the next node, to its end; how many
/// read the value that was set.
#[inline(never)]
pub fn measured_gets(sim: &mut Sim, nodes: &[usize], ops: usize) -> usize {
    let mut right = 0;
    for i in 0..ops {
        let (via, k) = (nodes[(i * 3 + 1) % nodes.len()], i % PRESET);
        let now = sim.now();
        let req = sim.node(via).get(&key(k), 10_000, now);
        sim.run();
        for (n, e) in sim.take_events() {
            if let (true, Event::GetDone { req: r, result: Ok(v) }) = (n == via, e) {
                right += usize::from(r == req && v == value(k));
            }
        }
    }
    right
}
