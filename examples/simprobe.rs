use rs2p::core::Config;
use rs2p::sim::Sim;
use std::time::Instant;
fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().unwrap())
        .unwrap_or(32);
    let t = Instant::now();
    let mut sim = Sim::new();
    let mut nodes = Vec::new();
    for i in 0..n {
        let idx = sim.add_node(Config::chord("10.1.0.1", 20000 + i as u16));
        sim.node(idx).join().unwrap();
        if i > 0 {
            sim.connect(idx, nodes[i / 2]);
        }
        nodes.push(idx);
        if false {
            eprintln!("node {i} frames {} t {:?}", sim.frames, t.elapsed());
        }
    }
    for _ in 0..20 {
        sim.advance(1000);
    }
    eprintln!("built: frames {} {:?}", sim.frames, t.elapsed());
    for i in 0..100 {
        sim.set(nodes[i % n], format!("k{i}").as_bytes(), b"v");
    }
    eprintln!("100 sets: frames {} {:?}", sim.frames, t.elapsed());
    for i in 0..100 {
        assert_eq!(
            sim.get(nodes[(i * 7) % n], format!("k{i}").as_bytes())
                .unwrap(),
            "v"
        );
    }
    eprintln!("100 gets: frames {} {:?}", sim.frames, t.elapsed());
}
