//! `rs2p bench`: the same workload on an rs2p ring and a py2p ring, side by side.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use clap::Args;
use rs2p::ChordSocket;
use rs2p_test_support::venv;

use super::bench_floor::{cpu_us_per, process_cpu, tcp_floor, tokio_floor, Floor};
use super::bench_libp2p::{self, Libp2pFigures, Workload};
use super::progress::Progress;
use super::{net_failure, Failure, EXIT_RUNTIME};

/// The py2p half, shipped with the binary.
const PY2P_SCRIPT: &str = include_str!("../../../scripts/py2p_bench.py");

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

/// Hidden helper: one node holding KEYS keys; prints its resident memory in MB.
#[derive(Args, Debug)]
pub struct RssArgs {
    #[arg(long)]
    pub keys: usize,
    #[arg(long, default_value_t = 100)]
    pub value_size: usize,
}

#[derive(Debug, Default, Clone, Copy)]
struct Figures {
    set_per_s: f64,
    get_per_s: f64,
    get_p50_us: f64,
    get_p99_us: f64,
}

/// The bench's progress: on a terminal, a spinner showing the current
/// phase (with the lines above it); otherwise plain lines.
static PROGRESS: std::sync::Mutex<Option<Progress>> = std::sync::Mutex::new(None);

fn progress(start: Instant, text: &str) {
    let line = format!("[{:>6.1}s] {text}", start.elapsed().as_secs_f64());
    let mut p = PROGRESS.lock().unwrap_or_else(|e| e.into_inner());
    let p = p.get_or_insert_with(|| Progress::stderr("rs2p bench", None));
    p.event(&line);
    if p.is_bar() {
        p.update(None, || text.to_owned());
    }
}

/// Clears the spinner before the results are printed.
fn progress_done() {
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
    let name = format!("get/s ({} in flight)", args.concurrency);
    row(&name, extra.concurrent_get_per_s, lp.map(|l| l.concurrent_get_per_s), None, true);
    row("confirmed set/s", extra.confirmed_set_per_s, lp.map(|l| l.set_per_s), None, true);
    row("set/s (fire-and-forget)", rs.set_per_s, None, py.map(|p| p.set_per_s), true);
    row("CPU µs per get", extra.cpu_us_per_get, None, None, false);
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

/// The rs2p half's figures beyond the py2p comparison.
#[derive(Debug, Default, Clone, Copy)]
struct Rs2pExtra {
    concurrent_get_per_s: f64,
    confirmed_set_per_s: f64,
    cpu_us_per_get: f64,
    cpu_us_per_set: f64,
    /// CPU per get with `concurrency` in flight (batching should lower it).
    cpu_us_per_concurrent_get: f64,
}

/// The rs2p half; with `tls`, every node speaks py2p's SSL (TLS, a fresh
/// self-signed certificate per node).
async fn bench_rs2p(args: &BenchArgs, start: Instant, tls: bool) -> Result<(Figures, Rs2pExtra), Failure> {
    let n = usize::from(args.nodes);
    let what = if tls { "rs2p with TLS" } else { "rs2p" };
    progress(start, &format!("{what}: starting a ring of {n} nodes"));
    let key_list = !args.no_key_list;
    let first_wave = usize::from(args.get_first_wave);
    let nodes = super::demo::start_ring_with(n, |cfg| {
        cfg.key_list = key_list;
        cfg.get_first_wave = first_wave;
        if tls {
            cfg.protocol = rs2p::wire::Protocol::new("chord", rs2p::wire::protocol::SSL);
        }
    })
    .await?;
    super::demo::wait_linked(&nodes, Duration::from_secs(30)).await?;
    let value = bytes::Bytes::from(vec![b'v'; args.value_size]);
    let keys: Vec<String> = (0..args.sets).map(|i| format!("bench-key-{i}")).collect();
    progress(start, &format!("rs2p: {} sets, then {} gets", args.sets, args.gets));
    let cpu0 = process_cpu();
    let t0 = Instant::now();
    for (i, k) in keys.iter().enumerate() {
        nodes[i % n].set(k, value.clone()).map_err(net_failure)?;
    }
    let set_elapsed = t0.elapsed();
    // Sets are fire-and-forget: let the stores land before reading (their
    // CPU time counts toward the sets).
    for k in keys.iter().rev().take(20) {
        for _ in 0..200 {
            if nodes[0].get_timeout(k, Duration::from_secs(1)).await.is_ok_and(|v| v == value) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let cpu_us_per_set = cpu_us_per(cpu0, process_cpu(), keys.len());
    let mut lat = Vec::with_capacity(args.gets);
    let mut wrong = 0usize;
    let cpu0 = process_cpu();
    let t0 = Instant::now();
    for i in 0..args.gets {
        let k = &keys[(i * 7) % keys.len().max(1)];
        let t = Instant::now();
        let got = nodes[(i * 3) % n].get(k).await;
        lat.push(t.elapsed());
        if !got.is_ok_and(|v| v == value) {
            wrong += 1;
        }
    }
    let get_elapsed = t0.elapsed();
    let cpu_us_per_get = cpu_us_per(cpu0, process_cpu(), args.gets);
    if wrong > 0 {
        eprintln!("warning: {wrong} of {} rs2p gets did not return the value", args.gets);
    }
    lat.sort();
    let figures = Figures {
        set_per_s: args.sets as f64 / set_elapsed.as_secs_f64().max(1e-9),
        get_per_s: args.gets as f64 / get_elapsed.as_secs_f64().max(1e-9),
        get_p50_us: pct(&lat, 0.50),
        get_p99_us: pct(&lat, 0.99),
    };
    progress(start, &format!("rs2p: {} gets with {} in flight", args.gets, args.concurrency));
    let cpu0 = process_cpu();
    let t0 = Instant::now();
    let per_task = args.gets.div_ceil(args.concurrency.max(1));
    let mut tasks = Vec::new();
    for t in 0..args.concurrency.max(1) {
        let node = nodes[t % n].clone();
        let keys = keys.clone();
        tasks.push(tokio::spawn(async move {
            let mut ok = 0usize;
            for j in 0..per_task {
                if node.get(&keys[(t * 31 + j * 7) % keys.len().max(1)]).await.is_ok() {
                    ok += 1;
                }
            }
            ok
        }));
    }
    let mut done = 0usize;
    for t in tasks {
        done += t.await.unwrap_or(0);
    }
    let concurrent_get_per_s = done as f64 / t0.elapsed().as_secs_f64().max(1e-9);
    let cpu_us_per_concurrent_get = cpu_us_per(cpu0, process_cpu(), per_task * args.concurrency.max(1));
    progress(start, &format!("rs2p: {} confirmed sets (each returns once a majority get reads it)", args.sets));
    let t0 = Instant::now();
    let mut unconfirmed = 0usize;
    for i in 0..args.sets {
        let key = format!("bench-confirmed-key-{i}");
        if nodes[i % n].set_confirmed(&key, value.clone(), Duration::from_secs(10)).await.is_err() {
            unconfirmed += 1;
        }
    }
    let confirmed_set_per_s = (args.sets - unconfirmed) as f64 / t0.elapsed().as_secs_f64().max(1e-9);
    if unconfirmed > 0 {
        eprintln!("warning: {unconfirmed} of {} confirmed sets were not confirmed", args.sets);
    }
    for s in &nodes {
        let _ = s.close();
    }
    let extra = Rs2pExtra {
        concurrent_get_per_s,
        confirmed_set_per_s,
        cpu_us_per_get,
        cpu_us_per_set,
        cpu_us_per_concurrent_get,
    };
    Ok((figures, extra))
}

fn measure_rss(keys: usize, value_size: usize) -> Result<f64, Failure> {
    let exe = std::env::current_exe().map_err(|e| Failure::new(EXIT_RUNTIME, format!("cannot find rs2p: {e}")))?;
    let out = Command::new(exe)
        .args(["bench-rss", "--keys", &keys.to_string(), "--value-size", &value_size.to_string()])
        .output()
        .map_err(|e| Failure::new(EXIT_RUNTIME, format!("cannot run the memory probe: {e}")))?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim().parse().map_err(|_| {
        Failure::new(EXIT_RUNTIME, format!("memory probe failed: {}", String::from_utf8_lossy(&out.stderr).trim()))
    })
}

/// `rs2p bench-rss`: a seeding node alone holds `keys` keys; print VmRSS in MB.
pub async fn rss(args: RssArgs) -> Result<(), Failure> {
    let node = ChordSocket::bind("127.0.0.1:0").await.map_err(net_failure)?;
    node.join().map_err(net_failure)?;
    let value = bytes::Bytes::from(vec![b'v'; args.value_size]);
    for i in 0..args.keys {
        node.set(format!("rss-key-{i:08}"), value.clone()).map_err(net_failure)?;
    }
    if node.item_count() != args.keys * 5 {
        return Err(Failure::new(
            EXIT_RUNTIME,
            format!("expected {} items, hold {}", args.keys * 5, node.item_count()),
        ));
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| Failure::new(EXIT_RUNTIME, "cannot read VmRSS from /proc/self/status"))?;
    println!("{:.1}", kb / 1024.0);
    Ok(())
}

fn bench_py2p(args: &BenchArgs, start: Instant) -> Result<Figures, Failure> {
    let python = match args.py2p_python.clone().or_else(|| std::env::var_os("RS2P_PY2P_PYTHON").map(PathBuf::from)) {
        Some(p) => p,
        None => ensure_venv(start)?,
    };
    let script = std::env::temp_dir().join(format!("rs2p-py2p-bench-{}.py", std::process::id()));
    std::fs::write(&script, PY2P_SCRIPT)
        .map_err(|e| Failure::new(EXIT_RUNTIME, format!("cannot write {}: {e}", script.display())))?;
    let out = Command::new(&python)
        .arg(&script)
        .args([
            args.nodes.to_string(),
            args.py2p_sets.max(1).to_string(),
            args.py2p_gets.max(1).to_string(),
            args.value_size.to_string(),
        ])
        .output();
    let _ = std::fs::remove_file(&script);
    let out = out.map_err(|e| Failure::new(EXIT_RUNTIME, format!("cannot run {}: {e}", python.display())))?;
    let text = String::from_utf8_lossy(&out.stdout);
    // The figures are the script's last line: py2p itself may print to
    // stdout before it (its handler of an exception in a peer does).
    let line = text.lines().rev().find(|l| l.trim_start().starts_with('{')).unwrap_or(&text);
    let v: serde_json::Value = serde_json::from_str(line.trim()).map_err(|_| {
        Failure::new(
            EXIT_RUNTIME,
            format!(
                "the py2p benchmark failed ({}): {} {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim(),
                text.trim()
            ),
        )
    })?;
    let num = |k: &str| v[k].as_f64().unwrap_or(0.0);
    progress(start, &format!("py2p: {} of {} gets correct", num("gets_correct"), args.py2p_gets));
    Ok(Figures {
        set_per_s: num("set_per_s"),
        get_per_s: num("get_per_s"),
        get_p50_us: num("get_p50_us"),
        get_p99_us: num("get_p99_us"),
    })
}

/// The test venv with py2p 0.5.607 ([`venv::default_dir`]: the one the
/// tests of this target directory use), created on first use under its lock.
fn ensure_venv(start: Instant) -> Result<PathBuf, Failure> {
    let dir = venv::default_dir();
    if !venv::is_ready(&dir) {
        progress(start, &format!("creating a venv with py2p {} in {}", venv::PY2P_VERSION, dir.display()));
    }
    venv::ensure(&dir).map_err(|e| Failure::new(EXIT_RUNTIME, e))
}

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
