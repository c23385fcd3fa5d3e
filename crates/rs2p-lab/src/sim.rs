//! `rs2p sim`: an N-node chord ring in one process on the simulated network
//! (`rs2p::sim`), with virtual time and per-link latency. Builds the ring,
//! stores K keys, runs L lookups (optionally under churn), and reports hops,
//! lookup success, messages per lookup and the maintenance traffic.
//! The same seed gives the same output, wall time and memory aside.
//! See SIMULATION.md.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;
use rs2p::core::{Config, Event, ReqId};
use rs2p::sim::{item_names, ItemName, Sim, SimRng};

use super::progress::Progress;
use super::{Failure, EXIT_NOT_FOUND, EXIT_RUNTIME, EXIT_USAGE};

/// Virtual time per step of the lookup phase (gets are started, churn
/// applied and answers collected once per step): 100 ms, the former tick.
const STEP_MS: u64 = 100;
/// Virtual time given to each batch of joining nodes before the next one.
const BATCH_SETTLE_MS: u64 = 2_000;
/// Bound on the virtual seconds spent waiting for the ring to become
/// consistent after the last batch (without fingers a large ring converges slowly).
const MAX_SETTLE_S: u64 = 1_800;
/// Settling that has not lowered the count of unlinked nodes for this many
/// virtual seconds prints why (again each time as long).
const STALL_REPORT_S: u64 = 10;
/// Unlinked nodes a stall report describes.
const STALL_REPORT_NODES: usize = 12;
/// Sets issued per second of virtual time while loading keys.
const SETS_PER_STEP: usize = 256;
/// Virtual seconds the stores get to land after the last set.
const SET_SETTLE_S: u64 = 5;
/// Length of the quiet window (virtual seconds, no user operations) that
/// measures maintenance traffic.
const QUIET_S: u64 = 10;
/// How long an item's retrieve whispers are still counted after its get
/// ended: a get ends when 3 of 5 tables agree, while the other two lookups
/// may still be on their way.
const LINGER_MS: u64 = 3_000;
/// The `get` timeout (ms): the core's default.
const GET_TIMEOUT_MS: u64 = 10_000;
/// A graceful leaver that has not handed everything over after this long
/// closes anyway.
const LEAVE_MAX_MS: u64 = 10_000;
/// Bound on the lookup phase in virtual seconds, in case gets stop ending.
const MAX_LOOKUP_S: u64 = 24 * 3600;
/// Wall seconds between progress lines.
const PROGRESS_S: f64 = 5.0;
/// Port every simulated node listens on (hosts differ).
const PORT: u16 = 4444;
/// RNG streams, so that one kind of draw never shifts another.
const RNG_SALT: u64 = 1;
const RNG_BUILD: u64 = 2;
const RNG_KEYS: u64 = 3;
const RNG_LOOKUPS: u64 = 4;
const RNG_CHURN: u64 = 5;

/// Options of `rs2p sim`.
#[derive(Args, Debug)]
pub struct SimArgs {
    /// Nodes in the ring.
    #[arg(long, default_value_t = 100)]
    pub nodes: usize,
    /// Keys stored before the lookups.
    #[arg(long, default_value_t = 100)]
    pub keys: usize,
    /// Gets of random stored keys through random nodes.
    #[arg(long, default_value_t = 200)]
    pub lookups: usize,
    /// Fraction of the nodes replaced per simulated minute during the
    /// lookups (half crash, half leave gracefully; as many join).
    #[arg(long, default_value_t = 0.0)]
    pub churn: f64,
    /// Seed of every random choice (node ids, keys, latencies, churn).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Write the summary as one JSON object to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Exit 1 if the lookup success rate is below this (0..1).
    #[arg(long)]
    pub min_success: Option<f64>,
    /// Link latency range in ms, MIN,MAX (each link gets a fixed value in it).
    #[arg(long, default_value = "5,50", value_parser = parse_range)]
    pub latency: (u64, u64),
    /// Nodes joining per batch (0: about 2% of the ring, at least 8).
    #[arg(long, default_value_t = 0)]
    pub batch: usize,
    /// Gets in flight at once.
    #[arg(long, default_value_t = 16)]
    pub parallel: usize,
    /// Gets started per simulated second (0: as fast as --parallel allows);
    /// pacing makes the lookup phase last long enough for churn to act.
    #[arg(long, default_value_t = 0.0)]
    pub lookups_per_s: f64,
    /// Keep py2p's flooded key list (every set announced to every node).
    /// Off by default here: its cost per set grows with N, and rs2p-only
    /// rings do without it (`rs2p node --no-key-list`).
    #[arg(long)]
    pub key_list: bool,
    /// Keep no fingers (py2p's routing only), to compare.
    #[arg(long)]
    pub no_fingers: bool,
    /// Before the lookups, split the ring in two halves for SECS virtual
    /// seconds with writes, overwrites and deletes on both sides, heal it,
    /// and report the time until every owner holds the latest write of
    /// every item, and the bytes spent (see `sim_split.rs`).
    #[arg(long, value_name = "SECS", default_value_t = 0)]
    pub split: u64,
    /// Also tick every node every MS of virtual time, as every node did
    /// before nodes said when they need the clock (0, the default: each
    /// node wakes only for its own timers). For before/after comparisons.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub tick_ms: u64,
    /// Virtual seconds to wait after the last batch for every node to be
    /// linked to both ring neighbours; the keys and lookups run after it
    /// either way (the summary's `ring_consistent` says which).
    #[arg(long, value_name = "SECS", default_value_t = MAX_SETTLE_S)]
    pub max_settle_s: u64,
}

fn parse_range(text: &str) -> Result<(u64, u64), String> {
    let (a, b) = text.split_once(',').ok_or_else(|| format!("{text:?}: expected MIN,MAX"))?;
    let a: u64 = a.trim().parse().map_err(|_| format!("{a:?} is not a number of ms"))?;
    let b: u64 = b.trim().parse().map_err(|_| format!("{b:?} is not a number of ms"))?;
    if a > b {
        return Err(format!("{text:?}: MIN exceeds MAX"));
    }
    Ok((a, b))
}

/// The host of the `serial`-th node ever added: 10.x.y.z.
fn host_of(serial: usize) -> String {
    format!("10.{}.{}.{}", (serial >> 16) & 0xff, (serial >> 8) & 0xff, serial & 0xff)
}

/// A UUID4-shaped salt drawn from the seed, so node ids are reproducible.
fn salt_of(seed: u64, serial: usize) -> String {
    let mut r = SimRng::fork(seed ^ RNG_SALT.rotate_left(32), serial as u64);
    let (a, b) = (r.next_u64(), r.next_u64());
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | (b >> 48) & 0x3fff,
        b & 0xffff_ffff_ffff
    )
}

/// `/proc/self/status` field in kB (Linux; 0 elsewhere).
fn proc_status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(field)).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(0)
}

/// The running simulation and its bookkeeping.
struct World {
    sim: Sim,
    seed: u64,
    /// `--key-list`.
    key_list: bool,
    /// Not `--no-fingers`.
    fingers: bool,
    start: Instant,
    /// Progress: a bar on a terminal, else a line every [`PROGRESS_S`] (stdout).
    progress: Progress,
}

impl World {
    fn add(&mut self) -> usize {
        let serial = self.sim.len();
        let mut cfg = Config::chord(&host_of(serial), PORT);
        cfg.salt = salt_of(self.seed, serial);
        cfg.key_list = self.key_list;
        cfg.fingers = self.fingers;
        let idx = self.sim.add_node(cfg);
        let _ = self.sim.node(idx).join();
        idx
    }

    fn seeding(&self) -> Vec<usize> {
        self.sim.alive_nodes().into_iter().filter(|&i| self.sim.peek(i).is_some_and(|n| !n.is_leeching())).collect()
    }

    fn progress(&mut self, what: impl FnOnce(&Sim) -> String) {
        let (wall, virt, sim) = (self.start.elapsed().as_secs_f64(), self.virtual_s(), &self.sim);
        self.progress.update(None, || {
            let line = what(sim);
            format!(
                "{wall:7.1} s wall, {virt:7.1} s virtual: {line} ({} frames, {} MiB)",
                sim.frames,
                proc_status_kib("VmRSS:") / 1024
            )
        });
    }

    fn virtual_s(&self) -> f64 {
        (self.sim.now() - rs2p::sim::SIM_EPOCH) as f64 / 1000.0
    }
}

/// A get in flight or lingering for its last hops.
struct Lookup {
    key: usize,
    items: [ItemName; 5],
    hops: [u32; 5],
    ended_at: Option<u64>,
}

/// Per-get outcome totals of the lookup phase.
#[derive(Default)]
struct Tally {
    hops: Vec<u32>,
    gets: u64,
    correct: u64,
    failed: BTreeMap<String, u64>,
    crashed: u64,
    left: u64,
    joined: u64,
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    f64::from(sorted[rank - 1])
}

pub fn run(args: SimArgs) -> Result<(), Failure> {
    if args.nodes < 2 || args.keys == 0 || args.parallel == 0 {
        return Err(Failure::new(EXIT_USAGE, "need --nodes >= 2, --keys >= 1 and --parallel >= 1"));
    }
    if !(0.0..=1.0).contains(&args.churn) {
        return Err(Failure::new(EXIT_USAGE, "--churn is a fraction of the nodes per minute, 0..1"));
    }
    let start = Instant::now();
    let mut sim = Sim::with_seed(args.seed);
    sim.set_latency(args.latency.0, args.latency.1);
    sim.set_tick_ms((args.tick_ms > 0).then_some(args.tick_ms));
    let progress = Progress::stdout("sim", None, "sim: ").every(Duration::from_secs_f64(PROGRESS_S));
    let mut w = World { sim, seed: args.seed, key_list: args.key_list, fingers: !args.no_fingers, start, progress };

    // 1. The ring, in batches, each newcomer bootstrapped by a random node
    //    already present.
    let batch = if args.batch == 0 { (args.nodes / 50).max(8) } else { args.batch };
    let mut rng = SimRng::fork(args.seed, RNG_BUILD);
    w.add();
    while w.sim.len() < args.nodes {
        let present = w.seeding();
        for _ in 0..batch.min(args.nodes - w.sim.len()) {
            let idx = w.add();
            let boot = *rng.pick(&present);
            w.sim.connect(idx, boot);
        }
        w.sim.advance(BATCH_SETTLE_MS);
        // Nothing reads the events of the build: drop them as they come
        // (kept, the links' comings and goings were most of the memory).
        w.sim.take_events();
        let n = w.sim.len();
        w.progress(|s| {
            format!("building: {n}/{} nodes, {} not yet linked to both neighbours", args.nodes, s.ring_mismatches())
        });
    }
    let built_at = w.virtual_s();
    let built_wall_s = start.elapsed().as_secs_f64();
    let mut consistent = false;
    // (mismatches, virtual seconds it has not fallen): a stall is reported.
    let mut stall = (usize::MAX, 0u64);
    for _ in 0..args.max_settle_s {
        let mismatches = w.sim.ring_mismatches();
        if mismatches == 0 {
            consistent = true;
            break;
        }
        stall = if mismatches < stall.0 { (mismatches, 0) } else { (stall.0, stall.1 + 1) };
        if stall.1 > 0 && stall.1 % STALL_REPORT_S == 0 {
            for line in w.sim.ring_mismatch_report(STALL_REPORT_NODES) {
                println!("sim: settling stalled {} s: {line}", stall.1);
            }
        }
        w.sim.advance(1000);
        w.sim.take_events();
        w.progress(|s| format!("settling: {} nodes not yet linked to both neighbours", s.ring_mismatches()));
    }
    let settle_s = w.virtual_s() - built_at;
    // What building (and settling) the ring cost, per joining node and by sub-flag.
    let build_frames = w.sim.frames;
    let build_bytes = w.sim.bytes;
    let build_dials = w.sim.dials;
    let per_node = args.nodes.max(1) as f64;
    let (mut finger_dials, mut links, mut probes) = (0u64, 0usize, 0u64);
    for i in w.sim.alive_nodes() {
        if let Some(n) = w.sim.peek(i) {
            finger_dials += n.finger_stats().finger_dials;
            links += n.stats().peers;
            probes += n.rejoin_probes();
        }
    }
    println!(
        "sim: build: {:.1} finger dials, {:.1} rejoin probes per node; {:.1} links per node at the end",
        finger_dials as f64 / per_node,
        probes as f64 / per_node,
        links as f64 / per_node
    );
    let build_by_sub_flag: serde_json::Map<String, serde_json::Value> = w
        .sim
        .by_sub_flag
        .iter()
        .filter(|(_, &(frames, _))| frames > 0)
        .map(|(flag, &(frames, bytes))| {
            (
                format!("0x{flag:02x}"),
                serde_json::json!({"frames_per_node": frames as f64 / per_node, "bytes_per_node": bytes as f64 / per_node}),
            )
        })
        .collect();
    println!(
        "sim: ring of {} nodes {} after {:.0} s virtual ({:.0} s after the last batch), {:.1} s wall",
        args.nodes,
        if consistent { "consistent" } else { "NOT consistent" },
        w.virtual_s(),
        settle_s,
        start.elapsed().as_secs_f64()
    );
    println!(
        "sim: build: {build_frames} frames, {:.1} MB, {build_dials} dials ({:.0} frames, {:.0} bytes, {:.1} dials per node); by sub-flag (frames, bytes per node): {}",
        build_bytes as f64 / 1e6,
        build_frames as f64 / per_node,
        build_bytes as f64 / per_node,
        build_dials as f64 / per_node,
        build_by_sub_flag
            .iter()
            .map(|(k, v)| format!("{k} {:.0}, {:.0}", v["frames_per_node"].as_f64().unwrap_or(0.0), v["bytes_per_node"].as_f64().unwrap_or(0.0)))
            .collect::<Vec<_>>()
            .join("; ")
    );

    // 2. Keys, through random nodes.
    let mut krng = SimRng::fork(args.seed, RNG_KEYS);
    let mut keys: Vec<(String, String)> = (0..args.keys)
        .map(|i| (format!("key-{:016x}", krng.next_u64()), format!("value-{i}-{:08x}", krng.next_u64() as u32)))
        .collect();
    for chunk in keys.chunks(SETS_PER_STEP) {
        let seeding = w.seeding();
        for (k, v) in chunk {
            let via = *krng.pick(&seeding);
            w.sim.node(via).set(k.as_bytes(), bytes::Bytes::copy_from_slice(v.as_bytes()));
        }
        w.sim.advance(1000);
        w.sim.take_events();
    }
    w.sim.advance(SET_SETTLE_S * 1000);
    w.sim.take_events();
    println!("sim: {} keys set, {:.1} s wall", args.keys, start.elapsed().as_secs_f64());

    // 3. A quiet window: the maintenance traffic alone.
    let (f0, b0, t0) = (w.sim.frames, w.sim.bytes, w.sim.now());
    let by_flag0 = w.sim.by_sub_flag.clone();
    w.sim.advance(QUIET_S * 1000);
    w.sim.take_events();
    let quiet_s = (w.sim.now() - t0) as f64 / 1000.0;
    let nodes_now = w.sim.alive_nodes().len() as f64;
    let maint_frames_per_s = (w.sim.frames - f0) as f64 / quiet_s;
    let maint_bytes_per_s = (w.sim.bytes - b0) as f64 / quiet_s;
    let maint_bytes_per_node_s = maint_bytes_per_s / nodes_now;
    println!(
        "sim: maintenance {maint_frames_per_s:.0} frames/s, {maint_bytes_per_node_s:.1} bytes per node per second"
    );
    // Bytes per node per second of each sub-flag in the window (0xFF: no sub-flag).
    let maint_by_sub_flag: serde_json::Map<String, serde_json::Value> = w
        .sim
        .by_sub_flag
        .iter()
        .map(|(flag, &(_, bytes))| (flag, bytes - by_flag0.get(flag).map_or(0, |&(_, b)| b)))
        .filter(|&(_, bytes)| bytes > 0)
        .map(|(flag, bytes)| (format!("0x{flag:02x}"), serde_json::json!(bytes as f64 / quiet_s / nodes_now)))
        .collect();
    println!(
        "sim: maintenance bytes per node per second by sub-flag: {}",
        serde_json::Value::Object(maint_by_sub_flag.clone())
    );

    // 3b. A partition and its heal, if asked.
    let split = (args.split > 0).then(|| {
        let probes0: u64 = w.sim.alive_nodes().iter().filter_map(|&i| w.sim.peek(i)).map(|n| n.rejoin_probes()).sum();
        let r = super::sim_split::run(&mut w.sim, &mut keys, args.seed, args.split);
        let probes: u64 =
            w.sim.alive_nodes().iter().filter_map(|&i| w.sim.peek(i)).map(|n| n.rejoin_probes()).sum::<u64>() - probes0;
        match r.agree_s {
            Some(s) => println!(
                "sim: split {} s ({} keys written, {} deleted); every owner held the latest write {s:.0} s after the heal, {:.1} MiB and {} frames meanwhile, {probes} rejoin probes ({} copies missing before the split left out)",
                args.split, r.written, r.deleted, r.bytes as f64 / (1 << 20) as f64, r.frames, r.missing_before
            ),
            None => println!(
                "sim: split {} s: {} items still not at the latest write after the wait",
                args.split, r.stale_items
            ),
        }
        let top: Vec<String> = r
            .by_sub_flag
            .iter()
            .take(6)
            .map(|(s, f, b)| format!("0x{s:02x} {f} frames {:.1} MiB", *b as f64 / (1 << 20) as f64))
            .collect();
        println!("sim: heal traffic by sub-flag: {}", top.join(", "));
        let (same, diff, sync_bytes) = w.sim.alive_nodes().iter().filter_map(|&i| w.sim.peek(i)).map(|n| n.sync_stats()).fold(
            (0, 0, 0),
            |a, s| (a.0 + s.0, a.1 + s.1, a.2 + s.2),
        );
        println!("sim: range summaries: {same} items matched at their new owner, {diff} sent one by one, {sync_bytes} bytes of summaries");
        (r, probes)
    });
    w.sim.take_events();

    // 4. Lookups, several in flight, under churn if asked.
    let mut lrng = SimRng::fork(args.seed, RNG_LOOKUPS);
    let mut crng = SimRng::fork(args.seed, RNG_CHURN);
    let mut tally = Tally::default();
    let mut inflight: BTreeMap<(usize, ReqId), Lookup> = BTreeMap::new();
    let mut lingering: Vec<Lookup> = Vec::new();
    let mut busy_keys = std::collections::BTreeSet::new();
    let mut leaving: BTreeMap<usize, u64> = BTreeMap::new();
    let mut churn_due = 0.0f64;
    let (f1, b1, t1) = (w.sim.frames, w.sim.bytes, w.sim.now());
    let d1 = w.sim.dials;
    let probes_of =
        |sim: &Sim| -> u64 { sim.alive_nodes().iter().filter_map(|&i| sim.peek(i)).map(|n| n.rejoin_probes()).sum() };
    let p1 = probes_of(&w.sim);
    w.sim.track_lookups(true);
    let mut issued = 0usize;
    let max_steps = MAX_LOOKUP_S * 1000 / STEP_MS;
    for _ in 0..max_steps {
        if issued >= args.lookups && inflight.is_empty() && lingering.is_empty() {
            break;
        }
        // Issue gets up to the parallelism, each of a key no other get holds.
        let askers: Vec<usize> = w.seeding().into_iter().filter(|i| !leaving.contains_key(i)).collect();
        let allowed = if args.lookups_per_s > 0.0 {
            (args.lookups_per_s * (w.sim.now() - t1) as f64 / 1000.0).ceil() as usize
        } else {
            usize::MAX
        };
        while issued < args.lookups.min(allowed) && inflight.len() < args.parallel && busy_keys.len() < keys.len() {
            let key = loop {
                let k = lrng.below(keys.len() as u64) as usize;
                if !busy_keys.contains(&k) {
                    break k;
                }
            };
            let via = *lrng.pick(&askers);
            let now = w.sim.now();
            let req = w.sim.node(via).get(keys[key].0.as_bytes(), GET_TIMEOUT_MS, now);
            busy_keys.insert(key);
            inflight.insert(
                (via, req),
                Lookup { key, items: item_names(keys[key].0.as_bytes()), hops: [0; 5], ended_at: None },
            );
            issued += 1;
        }
        // Churn: replace nodes at the asked rate, never one with a get in flight.
        churn_due += args.churn * nodes_now * STEP_MS as f64 / 60_000.0;
        while churn_due >= 1.0 {
            churn_due -= 1.0;
            let candidates: Vec<usize> =
                askers.iter().copied().filter(|i| !inflight.keys().any(|(n, _)| n == i) && w.sim.alive(*i)).collect();
            if candidates.len() < 3 {
                break;
            }
            let victim = *crng.pick(&candidates);
            if crng.chance(0.5) {
                w.sim.crash(victim);
                tally.crashed += 1;
            } else if let std::collections::btree_map::Entry::Vacant(slot) = leaving.entry(victim) {
                let _ = w.sim.node(victim).unjoin();
                slot.insert(w.sim.now() + LEAVE_MAX_MS);
                tally.left += 1;
            }
            let boot = *crng.pick(&candidates.iter().copied().filter(|&i| i != victim).collect::<Vec<_>>());
            let idx = w.add();
            w.sim.connect(idx, boot);
            tally.joined += 1;
        }
        w.sim.advance(STEP_MS);
        // Leavers that handed everything over (or ran out of time) close.
        let now = w.sim.now();
        let done: Vec<usize> = leaving
            .iter()
            .filter(|(&i, &deadline)| now >= deadline || w.sim.peek(i).is_none_or(|n| n.handoff_pending() == 0))
            .map(|(&i, _)| i)
            .collect();
        for i in done {
            leaving.remove(&i);
            if w.sim.alive(i) {
                w.sim.close(i);
            }
        }
        // Hops seen this step, then the gets that ended.
        let seen = w.sim.take_lookup_hops();
        for l in inflight.values_mut().chain(lingering.iter_mut()) {
            for (slot, item) in l.items.iter().enumerate() {
                l.hops[slot] += seen.get(item).copied().unwrap_or(0);
            }
        }
        for (node, e) in w.sim.take_events() {
            if let Event::GetDone { req, result } = e {
                if let Some(mut l) = inflight.remove(&(node, req)) {
                    tally.gets += 1;
                    match result {
                        Ok(v) if v.as_ref() == keys[l.key].1.as_bytes() => tally.correct += 1,
                        Ok(_) => *tally.failed.entry("wrong value".into()).or_default() += 1,
                        Err(e) => *tally.failed.entry(format!("{e:?}")).or_default() += 1,
                    }
                    l.ended_at = Some(now);
                    lingering.push(l);
                }
            }
        }
        lingering.retain(|l| {
            let keep = now < l.ended_at.expect("ended") + LINGER_MS;
            if !keep {
                tally.hops.extend_from_slice(&l.hops);
                busy_keys.remove(&l.key);
            }
            keep
        });
        let (g, c) = (tally.gets, tally.correct);
        w.progress(|s| format!("lookups: {g}/{} done, {c} correct, {} nodes", args.lookups, s.alive_nodes().len()));
    }
    w.sim.track_lookups(false);
    let phase_s = (w.sim.now() - t1) as f64 / 1000.0;
    let phase_frames = (w.sim.frames - f1) as f64;
    let phase_bytes = (w.sim.bytes - b1) as f64;
    let gets = tally.gets.max(1) as f64;
    let (lookup_frames, lookup_bytes) = w.sim.lookup_frames();
    let msgs_per_lookup = lookup_frames as f64 / gets;
    let bytes_per_lookup = lookup_bytes as f64 / gets;
    // The other measure: everything in the phase, less the quiet window's rate.
    let net_msgs_per_lookup = (phase_frames - maint_frames_per_s * phase_s) / gets;
    let net_bytes_per_lookup = (phase_bytes - maint_bytes_per_s * phase_s) / gets;
    let mut hops = tally.hops.clone();
    hops.sort_unstable();
    let hops_mean =
        if hops.is_empty() { 0.0 } else { hops.iter().map(|&h| f64::from(h)).sum::<f64>() / hops.len() as f64 };
    let lookup_success = tally.correct as f64 / gets;
    let wall_s = start.elapsed().as_secs_f64();
    let peak_rss_mib = proc_status_kib("VmHWM:") as f64 / 1024.0;
    let half_log2 = 0.5 * (args.nodes as f64).log2();

    println!(
        "sim: {} nodes, {} keys, {} gets ({} correct, {:.4} success){}",
        args.nodes,
        args.keys,
        tally.gets,
        tally.correct,
        lookup_success,
        if tally.failed.is_empty() { String::new() } else { format!(", failures {:?}", tally.failed) }
    );
    println!(
        "sim: hops per item lookup: mean {hops_mean:.2}, p50 {}, p99 {} (1/2 log2 N = {half_log2:.2}), {} item lookups",
        percentile(&hops, 0.5),
        percentile(&hops, 0.99),
        hops.len()
    );
    println!(
        "sim: per get: {msgs_per_lookup:.1} messages, {bytes_per_lookup:.0} bytes of retrieve/retrieved (all frames less the quiet rate: {net_msgs_per_lookup:.1} messages, {net_bytes_per_lookup:.0} bytes)"
    );
    println!("sim: maintenance {maint_bytes_per_node_s:.1} bytes per node per second");
    let lookup_s = ((w.sim.now() - t1) as f64 / 1000.0).max(1e-3);
    let dials_per_node_s = (w.sim.dials - d1) as f64 / lookup_s / w.sim.alive_nodes().len().max(1) as f64;
    // (Probes of nodes that crashed meanwhile are not counted: a lower bound.)
    let probes_per_node_s =
        probes_of(&w.sim).saturating_sub(p1) as f64 / lookup_s / w.sim.alive_nodes().len().max(1) as f64;
    println!(
        "sim: dials during the lookups (churn joins, fingers, rejoin probes): {dials_per_node_s:.3} per node per second, of which rejoin probes {probes_per_node_s:.3}"
    );
    if args.churn > 0.0 {
        println!("sim: churn: {} crashed, {} left, {} joined", tally.crashed, tally.left, tally.joined);
    }
    println!(
        "sim: {} node ticks ({:.2} per node per virtual second)",
        w.sim.ticks,
        w.sim.ticks as f64 / w.virtual_s().max(1e-3) / args.nodes.max(1) as f64
    );
    println!(
        "sim: {:.0} s virtual, {wall_s:.1} s wall, peak memory {peak_rss_mib:.0} MiB, trace {:016x}",
        w.virtual_s(),
        w.sim.trace_hash()
    );

    if let Some(path) = &args.json {
        let summary = serde_json::json!({
            "nodes": args.nodes,
            "keys": args.keys,
            "lookups": tally.gets,
            "churn": args.churn,
            "lookups_per_s": args.lookups_per_s,
            "seed": args.seed,
            "latency_ms": [args.latency.0, args.latency.1],
            "key_list": args.key_list,
            "fingers": !args.no_fingers,
            "ring_consistent": consistent,
            "build_sim_s": built_at,
            "build_wall_s": built_wall_s,
            "tick_ms": args.tick_ms,
            "node_ticks": w.sim.ticks,
            "ticks_per_node_s": w.sim.ticks as f64 / w.virtual_s().max(1e-3) / args.nodes.max(1) as f64,
            "settle_sim_s": settle_s,
            "hops_mean": hops_mean,
            "hops_p50": percentile(&hops, 0.5),
            "hops_p99": percentile(&hops, 0.99),
            "half_log2_n": half_log2,
            "lookup_success": lookup_success,
            "msgs_per_lookup": msgs_per_lookup,
            "bytes_per_lookup": bytes_per_lookup,
            "net_msgs_per_lookup": net_msgs_per_lookup,
            "net_bytes_per_lookup": net_bytes_per_lookup,
            "maint_frames_per_s": maint_frames_per_s,
            "maint_bytes_per_node_s": maint_bytes_per_node_s,
            "maint_by_sub_flag": maint_by_sub_flag,
            "dials_per_node_s": dials_per_node_s,
            "rejoin_probes_per_node_s": probes_per_node_s,
            "crashed": tally.crashed,
            "left": tally.left,
            "joined": tally.joined,
            "sim_seconds": w.virtual_s(),
            "frames": w.sim.frames,
            "bytes": w.sim.bytes,
            "trace_hash": format!("{:016x}", w.sim.trace_hash()),
            "wall_s": wall_s,
            "peak_rss_mib": peak_rss_mib,
        });
        let mut summary = summary;
        summary["build_frames"] = serde_json::json!(build_frames);
        summary["build_bytes"] = serde_json::json!(build_bytes);
        summary["build_dials"] = serde_json::json!(build_dials);
        summary["build_by_sub_flag"] = serde_json::Value::Object(build_by_sub_flag);
        if let Some((r, probes)) = &split {
            summary["split_s"] = serde_json::json!(args.split);
            summary["heal_agree_s"] = serde_json::json!(r.agree_s);
            summary["heal_bytes"] = serde_json::json!(r.bytes);
            summary["heal_frames"] = serde_json::json!(r.frames);
            summary["heal_stale_items"] = serde_json::json!(r.stale_items);
            summary["missing_before_split"] = serde_json::json!(r.missing_before);
            summary["heal_by_sub_flag"] = serde_json::json!(r
                .by_sub_flag
                .iter()
                .map(|(s, f, b)| serde_json::json!({"sub_flag": s, "frames": f, "bytes": b}))
                .collect::<Vec<_>>());
            summary["heal_probes"] = serde_json::json!(probes);
            summary["split_written"] = serde_json::json!(r.written);
            summary["split_deleted"] = serde_json::json!(r.deleted);
        }
        std::fs::write(path, format!("{summary}\n"))
            .map_err(|e| Failure::new(EXIT_RUNTIME, format!("cannot write {}: {e}", path.display())))?;
    }
    if let Some(min) = args.min_success {
        if lookup_success < min {
            return Err(Failure::new(EXIT_NOT_FOUND, format!("lookup success {lookup_success:.4} is below {min}")));
        }
    }
    Ok(())
}
