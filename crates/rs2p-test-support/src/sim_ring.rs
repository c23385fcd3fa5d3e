//! Rings of simulated nodes ([`rs2p::sim::Sim`]), grown the way the sim
//! tests grow them: node `i` gets the config the test gives it, joins
//! (chord rings) and dials an earlier node the test picks.
//!
//! Same calls in the same order for the same arguments: a test that builds
//! its ring twice from one seed gets the same run twice.

use rs2p::core::Config;
use rs2p::sim::Sim;

/// Adds nodes `nodes.len()..upto` to `sim`, appending their indices to
/// `nodes`: node `i` is `sim.add_node(cfg(i))`, then (if `join`) joins, then
/// (for `i > 0`) dials `via(i, nodes)`, the index of a node added earlier.
pub fn grow(
    sim: &mut Sim,
    nodes: &mut Vec<usize>,
    upto: usize,
    join: bool,
    mut cfg: impl FnMut(usize) -> Config,
    mut via: impl FnMut(usize, &[usize]) -> usize,
) {
    for i in nodes.len()..upto {
        let idx = sim.add_node(cfg(i));
        if join {
            sim.node(idx).join().unwrap();
        }
        if i > 0 {
            let to = via(i, nodes);
            sim.connect(idx, to);
        }
        nodes.push(idx);
    }
}

/// A chord ring of `n` joined nodes grown with [`grow`] in `sim`, then
/// settled: panics unless [`Sim::settle_ring`] reports it stable within
/// `settle_s` simulated seconds.
pub fn build(
    mut sim: Sim,
    n: usize,
    settle_s: u32,
    cfg: impl FnMut(usize) -> Config,
    via: impl FnMut(usize, &[usize]) -> usize,
) -> (Sim, Vec<usize>) {
    let mut nodes = Vec::with_capacity(n);
    grow(&mut sim, &mut nodes, n, true, cfg, via);
    assert!(sim.settle_ring(settle_s), "ring of {n} did not stabilise (seed {})", sim.seed());
    (sim, nodes)
}

/// Every node dials the first.
pub fn via_first(_i: usize, nodes: &[usize]) -> usize {
    nodes[0]
}

/// Node `i` dials node `i / 2`.
pub fn via_half(i: usize, nodes: &[usize]) -> usize {
    nodes[i / 2]
}

/// Node `i` dials node `(i - 1) / 2`: a binary tree.
pub fn via_tree(i: usize, nodes: &[usize]) -> usize {
    nodes[(i - 1) / 2]
}

/// What a run leaves to compare: the trace hash (the time, ends and bytes
/// of every frame and close) and the ids of the nodes alive, in order.
pub fn fingerprint(sim: &mut Sim) -> (u64, Vec<rs2p::ring::U512>) {
    let ids = sim.alive_nodes().into_iter().map(|i| *sim.node(i).id().value()).collect();
    (sim.trace_hash(), ids)
}

/// Runs `scenario` twice and panics unless both runs traced the same
/// frames and made the same node ids (the same seed gives the same run).
pub fn assert_repeatable(scenario: impl Fn() -> Sim) {
    let (a, b) = (fingerprint(&mut scenario()), fingerprint(&mut scenario()));
    assert!(a.0 != 0 && !a.1.is_empty(), "nothing traced");
    assert_eq!(a, b, "two runs of the same seed differ");
}
