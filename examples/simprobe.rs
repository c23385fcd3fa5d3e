//! Builds an in-process ring of N nodes on the simulated network, stores keys
//! and reads every one back through every node. Prints timings.
//!
//! `cargo run --release --example simprobe -- 128 500`
use rs2p::core::Config;
use rs2p::sim::Sim;
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(32);
    let keys: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(200);
    let t = Instant::now();
    let mut sim = Sim::new();
    let mut nodes = Vec::new();
    for i in 0..n {
        let idx = sim.add_node(Config::chord("10.2.0.1", 20000 + i as u16));
        sim.node(idx).join().unwrap();
        if i > 0 {
            sim.connect(idx, nodes[i / 2]);
        }
        nodes.push(idx);
    }
    let settled = sim.settle_ring(600);
    println!("{n} nodes built, ring consistent: {settled}, {:?}, {} frames", t.elapsed(), sim.frames);
    for i in 0..keys {
        sim.set(nodes[i % n], format!("k{i}").as_bytes(), format!("v{i}").as_bytes());
    }
    println!("{keys} sets: {:?}", t.elapsed());
    let mut ok = 0;
    for i in 0..keys {
        for &r in &nodes {
            if sim.get(r, format!("k{i}").as_bytes()).as_deref() == Ok(format!("v{i}").as_bytes()) {
                ok += 1;
            }
        }
    }
    println!("{ok}/{} reads correct: {:?}, {} frames", keys * n, t.elapsed(), sim.frames);
}
