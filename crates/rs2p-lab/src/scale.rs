//! `rs2p bench --keys-scale N`: a ring of `rs2p node` processes loaded with
//! N keys through `rs2p import`, then a newcomer joins and fresh clients get.
//!
//! Figures: import keys/s; the time until a joining node holds the whole key
//! list; a fresh client's time to its first get, beside the same in the empty
//! ring; the resident memory of each node process; and the bytes per key a
//! node spends on the key list (the memory a client grows by when it fetches
//! the list).

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rs2p::chord::KeyListStatus;
use rs2p::ChordSocket;

use super::{net_failure, Failure, EXIT_RUNTIME};

/// A node process, killed on drop.
struct NodeProc {
    child: Child,
    addr: String,
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn fail(what: impl Into<String>) -> Failure {
    Failure::new(EXIT_RUNTIME, what)
}

/// The `rs2p` command the ring is made of: `$RS2P_BIN`, else the one
/// beside this `rs2p-lab` (as `cargo build` leaves them).
fn exe() -> Result<std::path::PathBuf, Failure> {
    if let Some(bin) = std::env::var_os("RS2P_BIN") {
        return Ok(bin.into());
    }
    let me = std::env::current_exe().map_err(|e| fail(format!("cannot find rs2p-lab: {e}")))?;
    let rs2p = me.with_file_name(format!("rs2p{}", std::env::consts::EXE_SUFFIX));
    if rs2p.is_file() {
        Ok(rs2p)
    } else {
        Err(fail(format!(
            "{} not found: build it (`cargo build --release`) or set RS2P_BIN to an rs2p binary",
            rs2p.display()
        )))
    }
}

/// Starts `rs2p node --join` on an ephemeral port; returns once it listens.
fn start_node(connect: Option<&str>) -> Result<NodeProc, Failure> {
    let mut cmd = Command::new(exe()?);
    cmd.args(["node", "--bind", "127.0.0.1:0", "--join", "--log-level", "error"]);
    if let Some(peer) = connect {
        cmd.args(["--connect", peer]);
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| fail(format!("cannot start a node: {e}")))?;
    let stdout = child.stdout.take().expect("piped stdout");
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).map_err(|e| fail(format!("node output: {e}")))?;
    let addr = line
        .split(" listening on ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .ok_or_else(|| fail(format!("unexpected node output {line:?}")))?
        .to_owned();
    Ok(NodeProc { child, addr })
}

fn rss_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("VmRSS:").map(str::to_owned)))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Time for a fresh `rs2p get` process to answer (the key must exist).
fn client_get(peer: &str, key: &str) -> Result<Duration, Failure> {
    let t = Instant::now();
    let out = Command::new(exe()?)
        .args(["get", "--peer", peer, key, "--timeout", "30"])
        .output()
        .map_err(|e| fail(format!("cannot run rs2p get: {e}")))?;
    if !out.status.success() {
        return Err(fail(format!("rs2p get {key} failed: {}", String::from_utf8_lossy(&out.stderr).trim())));
    }
    Ok(t.elapsed())
}

/// The i-th key: 20 bytes, the size the memory target is stated for.
fn key_of(i: usize) -> String {
    format!("scale-key-{i:010}")
}

/// Resident memory of this process, in MB.
fn own_rss_mb() -> f64 {
    rss_mb(std::process::id())
}

pub async fn run(keys: usize, nodes: usize, value_size: usize, json: Option<&std::path::Path>) -> Result<(), Failure> {
    let start = Instant::now();
    let say = |text: &str| eprintln!("[{:>7.1}s] {text}", start.elapsed().as_secs_f64());
    say(&format!("keys-scale: starting {nodes} node processes"));
    let mut ring: Vec<NodeProc> = Vec::with_capacity(nodes);
    for i in 0..nodes {
        let peer = if i == 0 { None } else { Some(ring[i / 2].addr.clone()) };
        ring.push(start_node(peer.as_deref())?);
    }
    let first = ring[0].addr.clone();
    // The empty ring: seed one key, then time a fresh client's get.
    let seed_value = "v".repeat(value_size);
    let out = Command::new(exe()?)
        .args(["set", "--peer", &first, "seed-key", &seed_value, "--timeout", "30"])
        .output()
        .map_err(|e| fail(format!("cannot run rs2p set: {e}")))?;
    if !out.status.success() {
        return Err(fail(format!("rs2p set failed: {}", String::from_utf8_lossy(&out.stderr).trim())));
    }
    let empty_get = client_get(&ring[nodes - 1].addr, "seed-key")?;
    say(&format!("empty ring: a fresh client's get took {:.1} ms", empty_get.as_secs_f64() * 1e3));

    // The load, through `rs2p import`.
    let file = std::env::temp_dir().join(format!("rs2p-keys-scale-{}.tsv", std::process::id()));
    {
        let mut w = std::io::BufWriter::new(std::fs::File::create(&file).map_err(|e| fail(e.to_string()))?);
        let value = "x".repeat(value_size);
        for i in 0..keys {
            writeln!(w, "{}\t{value}", key_of(i)).map_err(|e| fail(e.to_string()))?;
        }
        w.flush().map_err(|e| fail(e.to_string()))?;
    }
    say(&format!("importing {keys} keys through rs2p import"));
    let t = Instant::now();
    // `--timeout` bounds the whole import: 120 s, and 1 s more per 2,000
    // keys (a million keys at 6,000 a second took 166 s: 120 s failed it).
    let timeout = (120 + keys / 2_000).to_string();
    let status = Command::new(exe()?)
        .args(["import", "--peer", &first, "--timeout", &timeout])
        .arg(&file)
        .status()
        .map_err(|e| fail(format!("cannot run rs2p import: {e}")))?;
    let import_s = t.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&file);
    if !status.success() {
        return Err(fail("rs2p import reported failures"));
    }
    let import_rate = keys as f64 / import_s;
    say(&format!("imported {keys} keys in {import_s:.1} s ({import_rate:.0} keys/s)"));
    let rss: Vec<f64> = ring.iter().map(|n| rss_mb(n.child.id())).collect();

    // A newcomer joins and fetches the list.
    let newcomer = ChordSocket::bind("127.0.0.1:0").await.map_err(net_failure)?;
    newcomer.join().map_err(net_failure)?;
    let t = Instant::now();
    newcomer.connect(&first).await.map_err(net_failure)?;
    let want = keys + 1;
    loop {
        if newcomer.stats().keys >= want && newcomer.key_list_status() == KeyListStatus::Complete {
            break;
        }
        if t.elapsed() > Duration::from_secs(600) {
            return Err(fail(format!("the newcomer holds {} of {want} keys after 600 s", newcomer.stats().keys)));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let list_s = t.elapsed().as_secs_f64();
    say(&format!("the newcomer held the whole key list ({want} keys) {list_s:.2} s after connecting"));

    // Fresh clients: a process, and one in this process.
    let loaded_get = client_get(&ring[nodes - 1].addr, &key_of(7))?;
    let t = Instant::now();
    let leech = ChordSocket::bind("127.0.0.1:0").await.map_err(net_failure)?;
    leech.connect(&ring[nodes / 2].addr).await.map_err(net_failure)?;
    while leech.data_storing().is_empty() {
        if t.elapsed() > Duration::from_secs(10) {
            return Err(fail("the fresh client found no seeding node"));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    leech.get(key_of(42)).await.map_err(net_failure)?;
    let leech_first_get = t.elapsed();
    say(&format!(
        "loaded ring: a fresh client's get took {:.1} ms (process) and {:.2} ms (in-process, bind to answer)",
        loaded_get.as_secs_f64() * 1e3,
        leech_first_get.as_secs_f64() * 1e3
    ));
    // The key list's cost in memory: what fetching it adds to a client
    // (measured before any copy of the list is taken out of it).
    let before = own_rss_mb();
    let _ = leech.keys();
    let t = Instant::now();
    while leech.key_list_status() != KeyListStatus::Complete || leech.stats().keys < want {
        if t.elapsed() > Duration::from_secs(600) {
            return Err(fail("the client's key list did not complete in 600 s"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let after = own_rss_mb();
    let stats = leech.stats();
    let per_key = (after - before).max(0.0) * 1024.0 * 1024.0 / stats.keys.max(1) as f64;
    say(&format!(
        "a client fetching the list grew by {:.1} MB: {per_key:.0} bytes per key ({} key bytes held)",
        after - before,
        stats.key_bytes
    ));
    let _ = leech.close();
    let _ = newcomer.close();

    println!("rs2p bench --keys-scale {keys}: {nodes} node processes on 127.0.0.1, values of {value_size} bytes");
    println!("{:<52} {:>12.0}", "import keys/s (rs2p import, confirmed)", import_rate);
    println!("{:<52} {:>12.2}", "newcomer has the whole key list after (s)", list_s);
    println!("{:<52} {:>12.1}", "fresh client get, empty ring (ms, process)", empty_get.as_secs_f64() * 1e3);
    println!("{:<52} {:>12.1}", "fresh client get, loaded ring (ms, process)", loaded_get.as_secs_f64() * 1e3);
    println!(
        "{:<52} {:>12.2}",
        "fresh client first get, loaded ring (ms, in-process)",
        leech_first_get.as_secs_f64() * 1e3
    );
    let mean = rss.iter().sum::<f64>() / rss.len().max(1) as f64;
    let max = rss.iter().copied().fold(0.0, f64::max);
    println!("{:<52} {:>12.1}", "node RSS after import, mean (MB)", mean);
    println!("{:<52} {:>12.1}", "node RSS after import, max (MB)", max);
    println!("{:<52} {:>12.0}", "key-list memory per key (bytes, client RSS delta)", per_key);
    if let Some(path) = json {
        let doc = serde_json::json!({
            "keys_scale": {
                "keys": keys, "nodes": nodes, "value_size": value_size,
                "import_keys_per_s": import_rate, "import_s": import_s,
                "newcomer_key_list_s": list_s,
                "client_get_empty_ms": empty_get.as_secs_f64() * 1e3,
                "client_get_loaded_ms": loaded_get.as_secs_f64() * 1e3,
                "client_first_get_in_process_ms": leech_first_get.as_secs_f64() * 1e3,
                "node_rss_mb": rss, "key_list_bytes_per_key": per_key,
            }
        });
        let text = serde_json::to_string_pretty(&doc).expect("JSON of numbers");
        std::fs::write(path, text + "\n").map_err(|e| fail(format!("cannot write {}: {e}", path.display())))?;
    }
    Ok(())
}
