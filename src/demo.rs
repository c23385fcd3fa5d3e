//! `rs2p demo`: a local ring on loopback, sample keys, a short summary.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;
use rs2p::net::Responsible;
use rs2p::ChordSocket;

use super::progress::Progress;
use super::{net_failure, Failure, EXIT_NOT_FOUND, EXIT_RUNTIME};

/// With `--svg`, the longest wait for fingers before drawing.
const FINGER_WAIT: Duration = Duration::from_secs(10);
/// ... and the pause in finding new ones that ends it (lookups come about a
/// second apart on each node).
const FINGER_SETTLE: Duration = Duration::from_millis(2500);

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Nodes in the ring.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=200))]
    pub nodes: u16,
    /// Sample keys to store and read back.
    #[arg(long, default_value_t = 200)]
    pub keys: usize,
    /// Also draw the ring (nodes, arcs, links, fingers) into FILE (SVG).
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
}

pub async fn run(args: DemoArgs) -> Result<(), Failure> {
    let start = Instant::now();
    let n = usize::from(args.nodes);
    let mut bar = Progress::stderr("demo", Some(args.keys as u64));
    let mut progress = |text: &str| bar.event(&format!("[{:>5.1}s] {text}", start.elapsed().as_secs_f64()));
    progress(&format!("starting {n} nodes on 127.0.0.1"));
    let nodes = start_ring(n).await?;
    progress("waiting for every node to link to its ring neighbours");
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| nodes[i].id_10());
    let settle = Instant::now();
    wait_linked(&nodes, Duration::from_secs(30)).await?;
    progress(&format!("ring linked in {} ms; storing {} keys", settle.elapsed().as_millis(), args.keys));
    for k in 0..args.keys {
        let node = &nodes[k % n];
        node.set(format!("demo-key-{k}"), format!("value {k}")).map_err(net_failure)?;
    }
    // Sets are fire-and-forget: read each key back, retrying briefly while stores land.
    let mut latencies = Vec::with_capacity(args.keys * n);
    let mut failed = Vec::new();
    for k in 0..args.keys {
        let key = format!("demo-key-{k}");
        let want = format!("value {k}");
        for reader in &nodes {
            let mut ok = false;
            for _ in 0..50 {
                let t = Instant::now();
                let got = reader.get_timeout(&key, Duration::from_secs(2)).await;
                if matches!(&got, Ok(v) if v[..] == *want.as_bytes()) {
                    latencies.push(t.elapsed());
                    ok = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            if !ok {
                failed.push(key.clone());
            }
        }
        let done = k as u64 + 1;
        bar.update(Some(done), || format!("read back {done} keys through all {n} nodes"));
    }
    bar.finish();
    latencies.sort();
    println!("rs2p demo: a ring of {n} nodes on 127.0.0.1");
    println!("ring, clockwise (id prefix, address, items held, keys known):");
    for &i in &order {
        let s = &nodes[i];
        println!(
            "  {}  {:<21} items {:>5}  keys {:>5}",
            s.id().short(),
            s.local_addr().to_string(),
            s.item_count(),
            s.keys().len()
        );
    }
    let total = args.keys * n;
    println!("stored {} keys; read back {}/{} (every key through every node)", args.keys, total - failed.len(), total);
    if !latencies.is_empty() {
        let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize];
        println!(
            "get latency: p50 {} µs, p99 {} µs, max {} µs ({} gets)",
            pct(0.50).as_micros(),
            pct(0.99).as_micros(),
            latencies.last().map_or(0, |d| d.as_micros()),
            latencies.len()
        );
    }
    println!("total time {:.1} s", start.elapsed().as_secs_f64());
    if let Some(path) = &args.svg {
        // Fingers are found one lookup a second per node: wait until their
        // number has not grown for FINGER_SETTLE, so that the picture shows them.
        let deadline = Instant::now() + FINGER_WAIT;
        let (mut seen, mut since) = (0, Instant::now());
        while Instant::now() < deadline {
            let total: usize = nodes.iter().map(|s| s.fingers().len()).sum();
            if total != seen {
                (seen, since) = (total, Instant::now());
            } else if total > 0 && since.elapsed() >= FINGER_SETTLE {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let reports: Vec<_> = nodes.iter().map(|s| s.status_report()).collect();
        let picture = super::svg::Picture::from_reports(&reports, &format!("rs2p demo: {n} nodes, {} keys", args.keys));
        super::svg::write(path, &picture)?;
        println!("ring picture written to {}", path.display());
    }
    for s in &nodes {
        let _ = s.close();
    }
    if failed.is_empty() {
        Ok(())
    } else {
        failed.dedup();
        Err(Failure::new(EXIT_NOT_FOUND, format!("{} reads failed, e.g. {}", failed.len(), failed[0])))
    }
}

/// Starts `n` seeding nodes on loopback, each connected to an earlier one.
pub async fn start_ring(n: usize) -> Result<Vec<ChordSocket>, Failure> {
    start_ring_with(n, |_| {}).await
}

/// [`start_ring`] with each node's configuration adjusted by `tune`.
pub async fn start_ring_with(n: usize, tune: impl Fn(&mut rs2p::core::Config)) -> Result<Vec<ChordSocket>, Failure> {
    let mut nodes: Vec<ChordSocket> = Vec::with_capacity(n);
    for i in 0..n {
        let mut cfg = rs2p::core::Config::chord("127.0.0.1", 0);
        tune(&mut cfg);
        let s = ChordSocket::bind_with("127.0.0.1:0", cfg).await.map_err(net_failure)?;
        s.join().map_err(net_failure)?;
        if i > 0 {
            s.connect(&nodes[i / 2].local_addr().to_string()).await.map_err(net_failure)?;
        }
        nodes.push(s);
    }
    Ok(nodes)
}

/// Waits until every node is linked to its successor, or fails after `limit`.
pub async fn wait_linked(nodes: &[ChordSocket], limit: Duration) -> Result<(), Failure> {
    let mut order: Vec<usize> = (0..nodes.len()).collect();
    order.sort_by_key(|&i| nodes[i].id_10());
    let start = Instant::now();
    while !ring_is_linked(nodes, &order) {
        if start.elapsed() > limit {
            return Err(Failure::new(EXIT_RUNTIME, format!("the ring did not settle within {} s", limit.as_secs())));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// True when every node's successor is the next node in id order.
fn ring_is_linked(nodes: &[ChordSocket], order: &[usize]) -> bool {
    let n = order.len();
    if n < 2 {
        return true;
    }
    (0..n).all(|k| {
        let next = &nodes[order[(k + 1) % n]];
        nodes[order[k]].next() == Responsible::Peer(next.id())
    })
}
