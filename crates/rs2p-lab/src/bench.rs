//! `rs2p bench`: the same workload on an rs2p ring and a py2p ring, side by side.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;

use super::bench_floor::{tcp_floor, tokio_floor, Floor};
use super::bench_libp2p::{self, Libp2pFigures, Workload};
use super::bench_py2p::bench_py2p;
use super::bench_rs2p::{bench_rs2p, Rs2pExtra};
use super::bench_rss::measure_rss;
use super::progress::Progress;
use super::{Failure, EXIT_RUNTIME};

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Nodes per ring.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=100))]
    pub nodes: u16,
    /// rs2p: keys set before the gets.
    #[arg(long, default_value_t = 2000)]
    pub sets: usize,
    /// rs2p: sequential gets.
    #[arg(long, default_value_t = 10_000)]
    pub gets: usize,
    /// rs2p: gets in flight in the concurrent mode.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// py2p: keys set (py2p is slow: about 100 ms per get).
    #[arg(long, default_value_t = 100)]
    pub py2p_sets: usize,
    /// py2p: sequential gets.
    #[arg(long, default_value_t = 100)]
    pub py2p_gets: usize,
    /// Value size in bytes.
    #[arg(long, default_value_t = 100)]
    pub value_size: usize,
    /// Keys held by one node for the memory figure (0 skips it).
    #[arg(long, default_value_t = 100_000)]
    pub rss_keys: usize,
    /// Skip the py2p half.
    #[arg(long)]
    pub no_py2p: bool,
    /// Run the rs2p ring without the flooded key list (`rs2p node
    /// --no-key-list`): an rs2p-only ring, where a set is its five stores.
    #[arg(long)]
    pub no_key_list: bool,
    /// Tables an rs2p get asks at first (3 to 5; see `Config::get_first_wave`).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(3..=5))]
    pub get_first_wave: u8,
    /// Predecessors that keep a replica of each item (`rs2p node
    /// --replica-depth`; default: `Config`'s, 2); 0 shows what replicas cost.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(0..=4))]
    pub replica_depth: Option<u8>,
    /// Worker threads of the runtime the in-process rs2p rings run on
    /// (default: one per core, tokio's default, as `rs2p node`).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub workers: Option<u16>,
    /// Also run the rs2p half with py2p's SSL (TLS on every link), and
    /// report it beside plaintext.
    #[arg(long)]
    pub tls: bool,
    /// Also run the same workload on rust-libp2p's Kademlia (the crate in
    /// bench/libp2p-kad, built on first use; needs the source tree).
    #[arg(long)]
    pub with_libp2p: bool,
    /// Python with py2p 0.5.607 installed (default: $RS2P_PY2P_PYTHON, else the
    /// test venv, created if missing).
    #[arg(long, value_name = "PATH")]
    pub py2p_python: Option<PathBuf>,
    /// Instead of the comparison: load N keys into a ring of `rs2p node`
    /// processes with `rs2p import`, then time a joining node's key list and
    /// fresh clients' first gets (see BENCHMARKS.md).
    #[arg(long, value_name = "N")]
    pub keys_scale: Option<usize>,
    /// Instead of the comparison: the set rate in memory and with a data
    /// directory, then the repair after one of `--nodes` nodes holding N
    /// keys crashes (see BENCHMARKS.md).
    #[arg(long, value_name = "N")]
    pub repair: Option<usize>,
    /// Also write the figures as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// What each half of the bench measures.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Figures {
    pub(super) set_per_s: f64,
    pub(super) get_per_s: f64,
    pub(super) get_p50_us: f64,
    pub(super) get_p99_us: f64,
}

/// The bench's progress: on a terminal, a spinner showing the current
/// phase (with the lines above it); otherwise plain lines.
static PROGRESS: std::sync::Mutex<Option<Progress>> = std::sync::Mutex::new(None);

pub(super) fn progress(start: Instant, text: &str) {
    let line = format!("[{:>6.1}s] {text}", start.elapsed().as_secs_f64());
    let mut p = PROGRESS.lock().unwrap_or_else(|e| e.into_inner());
    let p = p.get_or_insert_with(|| Progress::stderr("rs2p bench", None));
    p.event(&line);
    if p.is_bar() {
        p.update(None, || text.to_owned());
    }
}

/// Clears the spinner before the results are printed.
pub(super) fn progress_done() {
    if let Some(mut p) = PROGRESS.lock().unwrap_or_else(|e| e.into_inner()).take() {
        p.finish();
    }
}

pub(super) fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p) as usize].as_secs_f64() * 1e6
}

pub async fn run(args: BenchArgs) -> Result<(), Failure> {
    if let Some(keys) = args.repair {
        return super::durability_bench::run(keys, usize::from(args.nodes), args.value_size).await;
    }
    if let Some(keys) = args.keys_scale {
        return super::scale::run(keys, usize::from(args.nodes), args.value_size, args.json.as_deref()).await;
    }
    let start = Instant::now();
    let machine = machine_info();
    progress(start, &format!("machine: {machine}"));
    progress(start, "floor: TCP loopback round trips between two threads");
    let floor = tcp_floor().map_err(|e| Failure::new(EXIT_RUNTIME, format!("cannot measure the TCP floor: {e}")))?;
    progress(start, &format!("floor: p50 {:.1} µs, p99 {:.1} µs", floor.rtt_p50_us, floor.rtt_p99_us));
    let tokio_floor =
        tokio_floor().await.map_err(|e| Failure::new(EXIT_RUNTIME, format!("cannot measure the tokio floor: {e}")))?;
    progress(start, &format!("floor between two tokio tasks: p50 {:.1} µs", tokio_floor.rtt_p50_us));
    let (rs, extra) = bench_rs2p(&args, start, false).await?;
    let tls = if args.tls { Some(bench_rs2p(&args, start, true).await?) } else { None };
    let rss = if args.rss_keys > 0 {
        progress(start, &format!("rs2p: resident memory of one node holding {} keys", args.rss_keys));
        Some(measure_rss(args.rss_keys, args.value_size)?)
    } else {
        None
    };
    let lp = if args.with_libp2p {
        let w = Workload {
            nodes: usize::from(args.nodes),
            sets: args.sets,
            gets: args.gets,
            concurrency: args.concurrency,
            value_size: args.value_size,
        };
        Some(bench_libp2p::run(&w, |t| progress(start, t))?)
    } else {
        None
    };
    let py = if args.no_py2p {
        None
    } else {
        progress(
            start,
            &format!(
                "py2p 0.5.607: {} nodes, {} sets, {} gets (about 100 ms per get; this takes a while)",
                args.nodes, args.py2p_sets, args.py2p_gets
            ),
        );
        Some(bench_py2p(&args, start)?)
    };
    progress_done();
    report(&args, &machine, [floor, tokio_floor], (rs, extra), tls, lp.as_ref(), py, rss)
}

/// Prints the table and writes the JSON.
#[allow(clippy::too_many_arguments)]
fn report(
    args: &BenchArgs,
    machine: &str,
    [floor, tokio_floor]: [Floor; 2],
    (rs, extra): (Figures, Rs2pExtra),
    tls: Option<(Figures, Rs2pExtra)>,
    lp: Option<&Libp2pFigures>,
    py: Option<Figures>,
    rss: Option<f64>,
) -> Result<(), Failure> {
    let rtts = |us: f64| us / floor.rtt_p50_us.max(1e-9);
    println!(
        "rs2p bench: {} nodes on 127.0.0.1, values of {} bytes, key list {}",
        args.nodes,
        args.value_size,
        if args.no_key_list { "off" } else { "on (py2p's flood)" }
    );
    println!("machine: {machine}");
    println!(
        "floor: TCP loopback round trip p50 {:.1} µs, p99 {:.1} µs (two threads, TCP_NODELAY, {} bytes)",
        floor.rtt_p50_us,
        floor.rtt_p99_us,
        super::bench_floor::FLOOR_MESSAGE
    );
    println!(
        "       the same between two tokio tasks: p50 {:.1} µs, p99 {:.1} µs",
        tokio_floor.rtt_p50_us, tokio_floor.rtt_p99_us
    );
    let dash = || "-".to_owned();
    let cell = |v: Option<f64>| v.filter(|v| *v > 0.0).map_or_else(dash, |v| format!("{v:.1}"));
    let ratio = |r: f64, o: Option<f64>, higher_better: bool| match o {
        Some(o) if o > 0.0 && r > 0.0 => format!("{:.1}x", if higher_better { r / o } else { o / r }),
        _ => dash(),
    };
    println!(
        "{:<30} {:>12} {:>12} {:>12} {:>10} {:>10}",
        "", "rs2p", "libp2p-kad", "py2p 0.5.607", "vs libp2p", "vs py2p"
    );
    let row = |name: &str, r: f64, l: Option<f64>, p: Option<f64>, higher_better: bool| {
        println!(
            "{name:<30} {r:>12.1} {:>12} {:>12} {:>10} {:>10}",
            cell(l),
            cell(p),
            ratio(r, l, higher_better),
            ratio(r, p, higher_better)
        );
    };
    row("get p50 (µs)", rs.get_p50_us, lp.map(|l| l.get_p50_us), py.map(|p| p.get_p50_us), false);
    row("get p50 (TCP round trips)", rtts(rs.get_p50_us), lp.map(|l| rtts(l.get_p50_us)), None, false);
    row("get p99 (µs)", rs.get_p99_us, lp.map(|l| l.get_p99_us), py.map(|p| p.get_p99_us), false);
    row("get/s (sequential)", rs.get_per_s, lp.map(|l| l.get_per_s), py.map(|p| p.get_per_s), true);
    row("get p50, caller a task (µs)", extra.task.get_p50_us, None, None, false);
    row("get p50, caller a task (RTTs)", rtts(extra.task.get_p50_us), None, None, false);
    row("get/s (sequential, a task)", extra.task.get_per_s, None, None, true);
    let name = format!("get/s ({} in flight)", args.concurrency);
    row(&name, extra.concurrent_get_per_s, lp.map(|l| l.concurrent_get_per_s), None, true);
    row("confirmed set/s", extra.confirmed_set_per_s, lp.map(|l| l.set_per_s), None, true);
    row("set/s (fire-and-forget)", rs.set_per_s, None, py.map(|p| p.set_per_s), true);
    row("CPU µs per get", extra.cpu_us_per_get, None, None, false);
    row("CPU µs per get (a task)", extra.cpu_us_per_task_get, None, None, false);
    let name = format!("CPU µs per get ({} in flight)", args.concurrency);
    row(&name, extra.cpu_us_per_concurrent_get, None, None, false);
    row("CPU µs per set", extra.cpu_us_per_set, None, None, false);
    if let Some(mb) = rss {
        println!("{:<30} {:>12.1}", format!("RSS MB, 1 node, {} keys", args.rss_keys), mb);
    }
    if let Some((t, te)) = tls {
        println!("rs2p with TLS (encryption SSL, TLS 1.3, rustls) beside plaintext, same ring size and workload:");
        println!("{:<30} {:>12} {:>12} {:>10}", "", "TLS", "plaintext", "TLS cost");
        let cost = |tv: f64, pv: f64, higher_better: bool| {
            if tv > 0.0 && pv > 0.0 {
                format!("{:.2}x", if higher_better { pv / tv } else { tv / pv })
            } else {
                dash()
            }
        };
        for (name, tv, pv, hb) in [
            ("get p50 (µs)", t.get_p50_us, rs.get_p50_us, false),
            ("get/s (sequential)", t.get_per_s, rs.get_per_s, true),
            ("get/s (in flight)", te.concurrent_get_per_s, extra.concurrent_get_per_s, true),
            ("confirmed set/s", te.confirmed_set_per_s, extra.confirmed_set_per_s, true),
            ("set/s (fire-and-forget)", t.set_per_s, rs.set_per_s, true),
            ("CPU µs per get", te.cpu_us_per_get, extra.cpu_us_per_get, false),
        ] {
            println!("{name:<30} {tv:>12.1} {pv:>12.1} {:>10}", cost(tv, pv, hb));
        }
    }
    if let Some(l) = lp {
        println!("libp2p-kad: {} (TCP + noise + yamux, replication 5, Quorum::Majority)", l.version);
        if l.failed_gets + l.failed_sets > 0 {
            println!("libp2p-kad: {} gets and {} puts failed", l.failed_gets, l.failed_sets);
        }
    }
    let Some(path) = &args.json else { return Ok(()) };
    let pyf = py.unwrap_or_default();
    let py_ratio = if pyf.get_per_s > 0.0 { rs.get_per_s / pyf.get_per_s } else { 0.0 };
    let mut doc = serde_json::json!({
        "floor": {
            "tcp_rtt_p50_us": floor.rtt_p50_us, "tcp_rtt_p99_us": floor.rtt_p99_us,
            "tokio_rtt_p50_us": tokio_floor.rtt_p50_us, "tokio_rtt_p99_us": tokio_floor.rtt_p99_us,
        },
        "rs2p": {
            "get_p50_us": rs.get_p50_us, "get_p99_us": rs.get_p99_us, "get_per_s": rs.get_per_s,
            "set_per_s": rs.set_per_s, "concurrent_get_per_s": extra.concurrent_get_per_s,
            "get_p50_rtts": rtts(rs.get_p50_us),
            "cpu_us_per_get": extra.cpu_us_per_get, "cpu_us_per_set": extra.cpu_us_per_set,
            "confirmed_set_per_s": extra.confirmed_set_per_s,
            "cpu_us_per_concurrent_get": extra.cpu_us_per_concurrent_get,
            "task_get_p50_us": extra.task.get_p50_us, "task_get_p99_us": extra.task.get_p99_us,
            "task_get_p50_rtts": rtts(extra.task.get_p50_us), "task_get_per_s": extra.task.get_per_s,
            "cpu_us_per_task_get": extra.cpu_us_per_task_get,
            "replica_depth": args.replica_depth.map_or(i64::from(rs2p::core::Config::chord("127.0.0.1", 0).replica_depth), i64::from),
            "workers": args.workers.map_or_else(default_workers, usize::from),
            "key_list": !args.no_key_list, "get_first_wave": args.get_first_wave,
            "rss_mb_100k_keys": rss.unwrap_or(0.0),
            "nodes": args.nodes, "sets": args.sets, "gets": args.gets, "concurrency": args.concurrency,
            "value_size": args.value_size, "version": env!("CARGO_PKG_VERSION"),
        },
        "py2p": {
            "get_p50_us": pyf.get_p50_us, "get_per_s": pyf.get_per_s, "set_per_s": pyf.set_per_s,
            "get_p99_us": pyf.get_p99_us, "sets": args.py2p_sets, "gets": args.py2p_gets,
            "version": "0.5.607",
        },
        "ratio": { "get_per_s": py_ratio },
        "machine": machine,
    });
    if let Some(l) = lp {
        doc["libp2p_kad"] = serde_json::json!({
            "get_p50_us": l.get_p50_us, "get_p99_us": l.get_p99_us, "get_per_s": l.get_per_s,
            "concurrent_get_per_s": l.concurrent_get_per_s, "set_per_s": l.set_per_s,
            "get_p50_rtts": rtts(l.get_p50_us),
            "failed_gets": l.failed_gets, "failed_sets": l.failed_sets, "version": l.version,
        });
        let over = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
        doc["ratio"]["vs_libp2p"] = serde_json::json!({
            "get_per_s": over(rs.get_per_s, l.get_per_s),
            "concurrent_get_per_s": over(extra.concurrent_get_per_s, l.concurrent_get_per_s),
            "confirmed_set_per_s": over(extra.confirmed_set_per_s, l.set_per_s),
            "get_p50": over(l.get_p50_us, rs.get_p50_us),
        });
    }
    if let Some((t, te)) = tls {
        doc["rs2p_tls"] = serde_json::json!({
            "get_p50_us": t.get_p50_us, "get_p99_us": t.get_p99_us, "get_per_s": t.get_per_s,
            "set_per_s": t.set_per_s, "concurrent_get_per_s": te.concurrent_get_per_s,
            "confirmed_set_per_s": te.confirmed_set_per_s, "get_p50_rtts": rtts(t.get_p50_us),
            "cpu_us_per_get": te.cpu_us_per_get, "cpu_us_per_set": te.cpu_us_per_set,
            "encryption": "SSL",
        });
    }
    let text = serde_json::to_string_pretty(&doc).expect("JSON of numbers");
    std::fs::write(path, text + "\n")
        .map_err(|e| Failure::new(EXIT_RUNTIME, format!("cannot write {}: {e}", path.display())))
}

/// The worker threads tokio starts without `--workers`: `TOKIO_WORKER_THREADS`
/// if set, else one per core.
fn default_workers() -> usize {
    std::env::var("TOKIO_WORKER_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(0, |n| n.get()))
}

/// The machine, for the report: CPUs and the kernel.
fn machine_info() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name").map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned()))
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("MemTotal:").map(|v| v.trim().to_owned())))
        .unwrap_or_default();
    format!("{cpus} cores, {model}, {mem} RAM, {} {}", std::env::consts::OS, std::env::consts::ARCH)
}
