//! `rs2p bench`: the same workload on an rs2p ring and a py2p ring, side by side.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use clap::Args;
use rs2p::ChordSocket;

use super::{net_failure, Failure, EXIT_RUNTIME};

/// The py2p half, shipped with the binary.
const PY2P_SCRIPT: &str = include_str!("../../scripts/py2p_bench.py");
/// Where the tests (and this command) keep the py2p venv.
const VENV: &str = "target/tmp/py2p-venv-0.5.607";

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

fn progress(start: Instant, text: &str) {
    eprintln!("[{:>6.1}s] {text}", start.elapsed().as_secs_f64());
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
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
    let (rs, concurrent) = bench_rs2p(&args, start).await?;
    let rss = if args.rss_keys > 0 {
        progress(start, &format!("rs2p: resident memory of one node holding {} keys", args.rss_keys));
        Some(measure_rss(args.rss_keys, args.value_size)?)
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
    println!("rs2p bench: {} nodes on 127.0.0.1, values of {} bytes", args.nodes, args.value_size);
    println!("machine: {machine}");
    println!("{:<28} {:>14} {:>14} {:>10}", "", "rs2p", "py2p 0.5.607", "ratio");
    let row = |name: &str, r: f64, p: Option<f64>, higher_better: bool| {
        let (ps, ratio) = match p {
            Some(p) if p > 0.0 => {
                (format!("{p:.1}"), format!("{:.0}x", if higher_better { r / p } else { p / r.max(1e-9) }))
            }
            _ => ("-".to_owned(), "-".to_owned()),
        };
        println!("{name:<28} {r:>14.1} {ps:>14} {ratio:>10}");
    };
    row("set/s", rs.set_per_s, py.map(|p| p.set_per_s), true);
    row("get/s (sequential)", rs.get_per_s, py.map(|p| p.get_per_s), true);
    row("get p50 (µs)", rs.get_p50_us, py.map(|p| p.get_p50_us), false);
    row("get p99 (µs)", rs.get_p99_us, py.map(|p| p.get_p99_us), false);
    println!("{:<28} {:>14.1}", format!("get/s ({} in flight)", args.concurrency), concurrent);
    if let Some(mb) = rss {
        println!("{:<28} {:>14.1}", format!("RSS MB, 1 node, {} keys", args.rss_keys), mb);
    }
    if let Some(path) = &args.json {
        let py = py.unwrap_or_default();
        let ratio = if py.get_per_s > 0.0 { rs.get_per_s / py.get_per_s } else { 0.0 };
        let doc = serde_json::json!({
            "rs2p": {
                "get_p50_us": rs.get_p50_us, "get_p99_us": rs.get_p99_us, "get_per_s": rs.get_per_s,
                "set_per_s": rs.set_per_s, "concurrent_get_per_s": concurrent,
                "rss_mb_100k_keys": rss.unwrap_or(0.0),
                "nodes": args.nodes, "sets": args.sets, "gets": args.gets, "concurrency": args.concurrency,
            },
            "py2p": {
                "get_p50_us": py.get_p50_us, "get_per_s": py.get_per_s, "set_per_s": py.set_per_s,
                "get_p99_us": py.get_p99_us, "sets": args.py2p_sets, "gets": args.py2p_gets,
            },
            "ratio": { "get_per_s": ratio },
            "machine": machine,
        });
        let text = serde_json::to_string_pretty(&doc).expect("JSON of numbers");
        std::fs::write(path, text + "\n")
            .map_err(|e| Failure::new(EXIT_RUNTIME, format!("cannot write {}: {e}", path.display())))?;
    }
    Ok(())
}

async fn bench_rs2p(args: &BenchArgs, start: Instant) -> Result<(Figures, f64), Failure> {
    let n = usize::from(args.nodes);
    progress(start, &format!("rs2p: starting a ring of {n} nodes"));
    let nodes = super::demo::start_ring(n).await?;
    super::demo::wait_linked(&nodes, Duration::from_secs(30)).await?;
    let value = bytes::Bytes::from(vec![b'v'; args.value_size]);
    let keys: Vec<String> = (0..args.sets).map(|i| format!("bench-key-{i}")).collect();
    progress(start, &format!("rs2p: {} sets, then {} gets", args.sets, args.gets));
    let t0 = Instant::now();
    for (i, k) in keys.iter().enumerate() {
        nodes[i % n].set(k, value.clone()).map_err(net_failure)?;
    }
    let set_elapsed = t0.elapsed();
    // Sets are fire-and-forget on both sides: let the stores land before reading.
    for k in keys.iter().rev().take(20) {
        for _ in 0..200 {
            if nodes[0].get_timeout(k, Duration::from_secs(1)).await.is_ok_and(|v| v == value) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let mut lat = Vec::with_capacity(args.gets);
    let mut wrong = 0usize;
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
    let concurrent = done as f64 / t0.elapsed().as_secs_f64().max(1e-9);
    for s in &nodes {
        let _ = s.close();
    }
    Ok((figures, concurrent))
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
    let line = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(line.trim()).map_err(|_| {
        Failure::new(
            EXIT_RUNTIME,
            format!("the py2p benchmark failed: {}", String::from_utf8_lossy(&out.stderr).trim()),
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

/// Where the venv lives: the test venv of the source tree this binary was
/// built from, when that tree is still there; else `target/tmp/` under the
/// current directory.
fn venv_dir() -> PathBuf {
    let tree = Path::new(env!("CARGO_MANIFEST_DIR"));
    if tree.join("Cargo.toml").is_file() {
        tree.join(VENV)
    } else {
        PathBuf::from(VENV)
    }
}

/// The test venv with py2p 0.5.607, created on first use.
fn ensure_venv(start: Instant) -> Result<PathBuf, Failure> {
    let dir = venv_dir();
    let dir = dir.as_path();
    let python = dir.join("bin").join("python");
    if dir.join(".ready").exists() && python.exists() {
        return Ok(python);
    }
    progress(start, &format!("creating a venv with py2p 0.5.607 in {}", dir.display()));
    let fail = |what: &str, detail: String| Failure::new(EXIT_RUNTIME, format!("{what}: {detail}"));
    let st = Command::new("python3")
        .args(["-m", "venv"])
        .arg(dir)
        .output()
        .map_err(|e| fail("cannot run python3 -m venv", e.to_string()))?;
    if !st.status.success() {
        return Err(fail("python3 -m venv failed", String::from_utf8_lossy(&st.stderr).trim().to_owned()));
    }
    let st = Command::new(&python)
        .args(["-m", "pip", "install", "--disable-pip-version-check", "-q", "py2p==0.5.607", "python-snappy"])
        .output()
        .map_err(|e| fail("cannot run pip", e.to_string()))?;
    if !st.status.success() {
        return Err(fail("pip install py2p==0.5.607 failed", String::from_utf8_lossy(&st.stderr).trim().to_owned()));
    }
    let _ = std::fs::write(dir.join(".ready"), b"ok");
    Ok(python)
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
