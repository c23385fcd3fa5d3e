//! `rs2p bench --repair N`: what a crash costs, and what a data directory
//! costs, on real TCP links between nodes in this process.
//!
//! 1. Sets per second into a ring, in memory and with `--data-dir`, beside
//!    the floor of one durable redb commit measured in the same run.
//! 2. A ring holding N keys loses one node without a leave (its links close
//!    as a SIGKILL would close them): the time until every copy is back at
//!    its owner, checked item by item, and what the repair moved.

use std::time::{Duration, Instant};

use rs2p::core::Config;
use rs2p::ring::{distance, HashMethod, U512};
use rs2p::ChordSocket;

use super::{net_failure, Failure, EXIT_RUNTIME};

/// Sets sent before waiting for the ring to store them: keeps the write
/// queues well under their bounds.
const SET_BATCH: usize = 2_000;

fn fail(msg: String) -> Failure {
    Failure::new(EXIT_RUNTIME, msg)
}

fn say(start: Instant, msg: &str) {
    eprintln!("[{:6.1} s] {msg}", start.elapsed().as_secs_f64());
}

async fn ring(nodes: usize, data: Option<&std::path::Path>, replicas: u8) -> Result<Vec<ChordSocket>, Failure> {
    let mut socks: Vec<ChordSocket> = Vec::new();
    for i in 0..nodes {
        let mut cfg = Config::chord("127.0.0.1", 0);
        cfg.data_dir = data.map(|d| d.join(format!("node{i}")));
        cfg.replica_depth = replicas;
        let s = ChordSocket::bind_with("127.0.0.1:0", cfg).await.map_err(net_failure)?;
        s.join().map_err(net_failure)?;
        if let Some(first) = socks.first() {
            s.connect(&first.local_addr().to_string()).await.map_err(net_failure)?;
        }
        socks.push(s);
    }
    // Linked: every node sees at least two seeding peers (or all, if fewer).
    let want = (nodes - 1).min(2);
    wait(Duration::from_secs(60), || socks.iter().all(|s| s.data_storing().len() >= want)).await?;
    Ok(socks)
}

async fn wait(limit: Duration, mut f: impl FnMut() -> bool) -> Result<(), Failure> {
    let deadline = Instant::now() + limit;
    while !f() {
        if Instant::now() >= deadline {
            return Err(fail(format!("a condition was not met within {limit:?}")));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Sets `keys` keys through the first node; returns once every node's
/// tables together hold all their copies, and the time it took.
async fn load(socks: &[ChordSocket], keys: usize, value_size: usize, tag: &str) -> Result<Duration, Failure> {
    let t0 = Instant::now();
    let value = vec![b'v'; value_size];
    let base: usize = socks.iter().map(|s| s.item_count()).sum();
    for chunk in (0..keys).collect::<Vec<_>>().chunks(SET_BATCH) {
        for i in chunk {
            socks[i % socks.len()].set(format!("{tag}-{i}"), value.clone()).map_err(net_failure)?;
        }
        let want = base + 5 * (chunk[chunk.len() - 1] + 1);
        wait(Duration::from_secs(120), || socks.iter().map(|s| s.item_count()).sum::<usize>() >= want).await?;
    }
    Ok(t0.elapsed())
}

/// The index of the owner of `hash` among `socks`.
fn owner(ids: &[(U512, usize)], hash: &U512) -> usize {
    ids.iter().min_by_key(|(id, _)| distance(id, hash)).map_or(0, |x| x.1)
}

fn ids_of(socks: &[ChordSocket]) -> Vec<(U512, usize)> {
    let mut ids: Vec<(U512, usize)> = socks.iter().enumerate().map(|(i, s)| (s.id_10(), i)).collect();
    ids.sort();
    ids
}

/// Keys whose five copies are all owned by `socks[victim]`.
fn wholly_on(socks: &[ChordSocket], victim: usize, keys: usize, tag: &str) -> Vec<usize> {
    let ids = ids_of(socks);
    (0..keys)
        .filter(|i| {
            let k = format!("{tag}-{i}");
            HashMethod::ALL.into_iter().all(|m| owner(&ids, &m.hash(k.as_bytes())) == victim)
        })
        .collect()
}

/// Copies missing at their owner among `socks`, `lost` keys aside.
fn missing(socks: &[ChordSocket], keys: usize, tag: &str, lost: &[usize]) -> usize {
    let ids = ids_of(socks);
    let mut n = 0;
    for i in (0..keys).filter(|i| lost.binary_search(i).is_err()) {
        let k = format!("{tag}-{i}");
        for m in HashMethod::ALL {
            let h = m.hash(k.as_bytes());
            if !socks[owner(&ids, &h)].holds(m, &h) {
                n += 1;
            }
        }
    }
    n
}

/// The floor of a durable write on this disk: one redb commit of one item.
fn commit_floor(dir: &std::path::Path) -> Result<Duration, Failure> {
    let (data, _) = rs2p::net::DataDir::open(&dir.join("floor")).map_err(|e| fail(e.to_string()))?;
    let mut best = Duration::MAX;
    for i in 0..20u64 {
        let change = rs2p::chord::Change::Item {
            table: HashMethod::Sha1,
            hash: U512::from(i),
            value: Some(bytes::Bytes::from_static(b"floor")),
            version: rs2p::core::Version { hlc: i + 1, writer: 1 },
        };
        let t = Instant::now();
        data.commit(&[change]).map_err(|e| fail(e.to_string()))?;
        best = best.min(t.elapsed());
    }
    Ok(best)
}

pub async fn run(keys: usize, nodes: usize, value_size: usize) -> Result<(), Failure> {
    let start = Instant::now();
    let nodes = nodes.max(3);
    let dir = std::env::temp_dir().join(format!("rs2p-bench-repair-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| fail(format!("{}: {e}", dir.display())))?;
    let result = measure(keys, nodes, value_size, &dir, start).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn measure(
    keys: usize,
    nodes: usize,
    value_size: usize,
    dir: &std::path::Path,
    start: Instant,
) -> Result<(), Failure> {
    // 1. The cost of a data directory.
    let sets = keys.min(20_000);
    let floor = commit_floor(dir)?;
    say(start, &format!("one durable redb commit (the floor): {:.2} ms", floor.as_secs_f64() * 1e3));
    let mut rates = Vec::new();
    for durable in [false, true] {
        let data = dir.join(if durable { "durable" } else { "memory" });
        let socks = ring(4, durable.then_some(data.as_path()), 2).await?;
        let took = load(&socks, sets, value_size, "rate").await?;
        let rate = sets as f64 / took.as_secs_f64();
        say(
            start,
            &format!(
                "{} sets into 4 nodes {}: {:.1} s, {rate:.0} sets/s",
                sets,
                if durable { "with --data-dir" } else { "in memory" },
                took.as_secs_f64()
            ),
        );
        rates.push(rate);
        for s in &socks {
            let _ = s.shutdown().await;
        }
    }
    say(start, &format!("a data directory costs a factor of {:.2} in set rate", rates[0] / rates[1].max(1e-9)));

    // 2. A crash, with replicas (the default) and without (the other
    // tables alone: the repair reads every key it must restore).
    for replicas in [2u8, 0] {
        crash(keys, nodes, value_size, replicas, start).await?;
    }
    Ok(())
}

/// Loads a ring, crashes one node, and times the repair.
async fn crash(keys: usize, nodes: usize, value_size: usize, replicas: u8, start: Instant) -> Result<(), Failure> {
    say(start, &format!("ring of {nodes} nodes, replica depth {replicas}, loading {keys} keys of {value_size} bytes"));
    let mut socks = ring(nodes, None, replicas).await?;
    let took = load(&socks, keys, value_size, "repair").await?;
    say(start, &format!("loaded in {:.1} s", took.as_secs_f64()));
    // Replicas settle: each node's count stops moving.
    let mut last = 0;
    wait(Duration::from_secs(120), || {
        let now: usize = socks.iter().map(|s| s.replica_count()).sum();
        let settled = now == last && (now > 0 || replicas == 0);
        last = now;
        settled
    })
    .await?;
    // Without replicas, a key whose five copies were all on the victim has
    // no copy left anywhere: counted, and left out of the check.
    let lost = if replicas == 0 { wholly_on(&socks, nodes / 2, keys, "repair") } else { Vec::new() };
    let victim = socks.remove(nodes / 2);
    let share = victim.item_count();
    say(start, &format!("crashing a node holding {share} of {} copies ({last} replicas in the ring)", 5 * keys));
    let before: Vec<_> = socks.iter().map(|s| s.repair_stats()).collect();
    let t0 = Instant::now();
    let crashed_at =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    victim.close().map_err(net_failure)?;
    drop(victim);
    let mut checks = 0;
    let mut last_progress = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let busy = socks.iter().any(|s| s.repair_stats().active);
        if busy && last_progress.elapsed() >= Duration::from_secs(5) {
            last_progress = Instant::now();
            let now: Vec<_> = socks.iter().map(|s| s.repair_stats()).collect();
            let total = |f: fn(&rs2p::chord::RepairStats) -> u64| now.iter().map(f).sum::<u64>();
            say(
                start,
                &format!(
                    "repairing: {} keys scanned, {} read, {} copies restored, {} unsettled; \
                     {} nodes waiting for a scan, {} scanning, {} reads in flight",
                    total(|s| s.keys_scanned),
                    total(|s| s.lookups),
                    total(|s| s.restored),
                    total(|s| s.unsettled),
                    total(|s| u64::from(s.due)),
                    total(|s| u64::from(s.scanning)),
                    total(|s| s.in_flight),
                ),
            );
        }
        if busy && t0.elapsed() > Duration::from_secs(600) {
            return Err(fail("the repair was still running 600 s after the crash".to_owned()));
        }
        if !busy {
            checks += 1;
            let m = missing(&socks, keys, "repair", &lost);
            if m == 0 {
                break;
            }
            if t0.elapsed() > Duration::from_secs(300) {
                return Err(fail(format!("{m} copies still missing 300 s after the crash")));
            }
        }
    }
    let all_back = t0.elapsed();
    let after: Vec<_> = socks.iter().map(|s| s.repair_stats()).collect();
    let sum = |f: fn(&rs2p::chord::RepairStats) -> u64| -> u64 {
        after.iter().map(f).sum::<u64>() - before.iter().map(f).sum::<u64>()
    };
    let last_restore = after.iter().map(|s| s.last_restored_at).max().unwrap_or(0).saturating_sub(crashed_at);
    say(
        start,
        &format!(
            "last copy restored {:.2} s after the crash; repair scans done and every copy checked \
             at its owner {:.2} s after it (checked {checks} times); \
             {} replicas promoted, {} copies read back from other tables, {} pushed to py2p, \
             {} keys read, {} value bytes moved, {} unsettled; {} keys had all five copies on the \
             crashed node",
            last_restore as f64 / 1e3,
            all_back.as_secs_f64(),
            sum(|s| s.promoted),
            sum(|s| s.restored),
            sum(|s| s.pushed),
            sum(|s| s.lookups),
            sum(|s| s.bytes),
            sum(|s| s.unsettled),
            lost.len(),
        ),
    );
    for s in &socks {
        let _ = s.shutdown().await;
    }
    Ok(())
}
