//! `rs2p sim --split SECS`: a partition of the simulated ring and its heal.
//!
//! The ring is cut in two halves (every other node by id) for SECS virtual
//! seconds. While it is split, each side overwrites a share of the keys,
//! some keys are overwritten on both sides (side B a moment later: its
//! write must win), and side A deletes some. Then the cut heals, and every
//! virtual second every item of every key is audited at its true owner:
//! the time from the heal until every owner holds the latest write (or no
//! value, for a deleted key) is the figure, beside the bytes the network
//! carried meanwhile (the merge, handoffs, repair and the ordinary
//! maintenance) and the rejoin probes sent.

use std::collections::BTreeSet;

use bytes::Bytes;
use rs2p::ring::{reduce, HashMethod, U512};
use rs2p::sim::{Sim, SimRng};

/// Virtual seconds after the cut before the writes: each side finds the
/// other silent (6 s) and re-forms a ring (writes sent across the cut
/// before that are lost in transit, as on a real network).
const DETECT_S: u64 = 10;
/// Bound on the virtual seconds waited for agreement after the heal.
const MAX_HEAL_S: u64 = 600;
/// Shares of the keys written during the split (each side), written on
/// both sides, and deleted (side A).
const OVERWRITE_EACH_DIV: usize = 20;
const BOTH_DIV: usize = 50;
const DELETE_DIV: usize = 100;

/// What the split phase measured.
pub struct SplitReport {
    /// Virtual seconds from the heal until every owner held the latest
    /// write of every item (`None`: not within [`MAX_HEAL_S`]).
    pub agree_s: Option<f64>,
    /// Bytes and frames delivered from the heal until then.
    pub bytes: u64,
    pub frames: u64,
    /// Items not at the latest write when the wait ended (0 on success).
    pub stale_items: usize,
    /// Item copies already missing at their owner before the split (sets
    /// are fire-and-forget: a store lost while the ring formed, which
    /// without the key list nothing restores); left out of the figure.
    pub missing_before: usize,
    /// (sub-flag, frames, bytes) delivered from the heal until agreement,
    /// most bytes first (0xFF: frames without a one-byte sub-flag).
    pub by_sub_flag: Vec<(u8, u64, u64)>,
    /// Keys written during the split, and deleted.
    pub written: usize,
    pub deleted: usize,
}

/// The seeding nodes alive, sorted by their place on the 2^384 ring.
fn ring_by_id(sim: &Sim) -> Vec<(U512, usize)> {
    let mut v: Vec<(U512, usize)> = sim
        .alive_nodes()
        .into_iter()
        .filter_map(|i| sim.peek(i).filter(|n| !n.is_leeching()).map(|n| (reduce(n.id().value()), i)))
        .collect();
    v.sort();
    v
}

/// Items (key index, table) of keys meant to hold `Some(value)` (or
/// deleted: `None`) whose true owner does not hold exactly that.
fn stale_items(sim: &Sim, model: &[([U512; 5], Option<Bytes>)]) -> BTreeSet<(usize, usize)> {
    let ring = ring_by_id(sim);
    // The owner: the node nearest at or before the item on the ring.
    let owner = |h: &U512| -> usize {
        let h = reduce(h);
        match ring.partition_point(|(id, _)| *id <= h) {
            0 => ring[ring.len() - 1].1,
            i => ring[i - 1].1,
        }
    };
    let mut stale = BTreeSet::new();
    for (k, (hashes, want)) in model.iter().enumerate() {
        for (t, (m, h)) in HashMethod::ALL.iter().zip(hashes).enumerate() {
            let Some(node) = sim.peek(owner(h)) else { continue };
            if node.local_value(*m, h) != want.as_ref() {
                stale.insert((k, t));
            }
        }
    }
    stale
}

/// Runs the split: `keys` are the (key, value) pairs stored; they are
/// updated to what the ring must now hold (deleted keys removed).
pub fn run(sim: &mut Sim, keys: &mut Vec<(String, String)>, seed: u64, split_s: u64) -> SplitReport {
    let before: Vec<([U512; 5], Option<Bytes>)> = keys
        .iter()
        .map(|(k, v)| (HashMethod::ALL.map(|m| m.hash(k.as_bytes())), Some(Bytes::from(v.clone()))))
        .collect();
    let missing = stale_items(sim, &before);
    let ring = ring_by_id(sim);
    let a: Vec<usize> = ring.iter().step_by(2).map(|(_, n)| *n).collect();
    let b: Vec<usize> = ring.iter().skip(1).step_by(2).map(|(_, n)| *n).collect();
    sim.partition(&b);
    for _ in 0..DETECT_S {
        sim.advance(1000);
    }
    let mut rng = SimRng::fork(seed, 77);
    let n = keys.len();
    let mut model: Vec<Option<String>> = keys.iter().map(|(_, v)| Some(v.clone())).collect();
    let (mut written, mut deleted) = (0, 0);
    for (i, (key, _)) in keys.iter().enumerate() {
        let slot = i % OVERWRITE_EACH_DIV;
        let via_a = a[rng.below(a.len() as u64) as usize];
        let via_b = b[rng.below(b.len() as u64) as usize];
        let value = |side: &str| format!("{side}-{i}-{:08x}", rng_value(seed, i));
        if slot == 1 {
            let v = value("a");
            sim.node(via_a).set(key.as_bytes(), Bytes::from(v.clone()));
            model[i] = Some(v);
            written += 1;
        } else if slot == 2 {
            let v = value("b");
            sim.node(via_b).set(key.as_bytes(), Bytes::from(v.clone()));
            model[i] = Some(v);
            written += 1;
        } else if i % BOTH_DIV == 3 {
            sim.node(via_a).set(key.as_bytes(), Bytes::from(value("a-first")));
            sim.run();
            sim.advance(5);
            let v = value("b-later");
            sim.node(via_b).set(key.as_bytes(), Bytes::from(v.clone()));
            model[i] = Some(v);
            written += 1;
        } else if i % DELETE_DIV == 4 {
            sim.node(via_a).delete(key.as_bytes());
            model[i] = None;
            deleted += 1;
        }
        if i % 256 == 255 {
            sim.advance(100);
        }
    }
    let spent = DETECT_S + (n as u64 / 256) / 10;
    for _ in spent..split_s.max(spent) {
        sim.advance(1000);
    }
    let audit: Vec<([U512; 5], Option<Bytes>)> = before
        .into_iter()
        .zip(&model)
        .map(|((hashes, _), v)| (hashes, v.as_ref().map(|v| Bytes::from(v.clone()))))
        .collect();
    // Copies missing before the split, of keys the split left alone, are
    // not the heal's to restore.
    let untouched = |k: usize| model[k].as_deref() == Some(keys[k].1.as_str());
    let stale_now = |sim: &Sim| -> usize {
        stale_items(sim, &audit).iter().filter(|&&(k, t)| !(missing.contains(&(k, t)) && untouched(k))).count()
    };
    sim.heal();
    let (f0, b0, t0) = (sim.frames, sim.bytes, sim.now());
    let by0 = sim.by_sub_flag.clone();
    let mut agree_s = None;
    let mut stale = stale_now(sim);
    for _ in 0..MAX_HEAL_S {
        sim.advance(1000);
        sim.take_events();
        stale = stale_now(sim);
        if stale == 0 {
            agree_s = Some((sim.now() - t0) as f64 / 1000.0);
            break;
        }
    }
    let mut by_sub_flag: Vec<(u8, u64, u64)> = sim
        .by_sub_flag
        .iter()
        .map(|(k, (f, b))| {
            let (f0, b0) = by0.get(k).copied().unwrap_or_default();
            (*k, f - f0, b - b0)
        })
        .filter(|(_, f, _)| *f > 0)
        .collect();
    by_sub_flag.sort_by_key(|e| std::cmp::Reverse(e.2));
    let report = SplitReport {
        by_sub_flag,
        agree_s,
        bytes: sim.bytes - b0,
        frames: sim.frames - f0,
        stale_items: stale,
        missing_before: missing.len(),
        written,
        deleted,
    };
    let mut next = Vec::with_capacity(n);
    for ((k, _), v) in keys.drain(..).zip(model) {
        if let Some(v) = v {
            next.push((k, v));
        }
    }
    *keys = next;
    report
}

/// A value's random part, from the seed and the key's index.
fn rng_value(seed: u64, i: usize) -> u32 {
    SimRng::fork(seed ^ 0x5117, i as u64).next_u64() as u32
}
