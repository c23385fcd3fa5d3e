//! `rs2p-libp2p-bench`: rust-libp2p Kademlia on the same workload as `rs2p bench`.
//!
//! N Kademlia nodes run in one process, each a Swarm (TCP + noise + yamux, MemoryStore,
//! server mode, replication factor 5) owned by its own tokio task. The bench sends commands
//! to those tasks over mpsc channels and waits on a oneshot reply, then times confirmed sets
//! (`Quorum::Majority`), sequential majority gets and concurrent majority gets.

use std::collections::{HashMap, HashSet};
use std::num::NonZeroUsize;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use libp2p::futures::StreamExt;
use libp2p::kad::{self, store::MemoryStore, store::MemoryStoreConfig, GetRecordOk, QueryId, QueryResult, Quorum};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::SwarmEvent;
use libp2p::{noise, tcp, yamux, Multiaddr, PeerId, Swarm};
use tokio::sync::{mpsc, oneshot};

/// Resolved from Cargo.lock by build.rs.
const VERSIONS: &str = env!("RS2P_LIBP2P_VERSIONS");
/// Copies kept per key (rs2p keeps 5).
const REPLICATION: usize = 5;
/// Matching copies a get must see before it counts (a majority of 5).
const READ_MAJORITY: usize = REPLICATION / 2 + 1;
/// Bound on every set and get, both inside Kademlia (query timeout) and around the reply.
const OP_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on bringing the network up (connections, routing tables, bootstrap).
const SETUP_TIMEOUT: Duration = Duration::from_secs(60);

struct Args {
    nodes: usize,
    sets: usize,
    gets: usize,
    concurrency: usize,
    value_size: usize,
    json: Option<String>,
}

const USAGE: &str = "usage: rs2p-libp2p-bench [--nodes N (8)] [--sets N (2000)] [--gets N (10000)] \
                     [--concurrency N (64)] [--value-size N (100)] [--json FILE]";

fn parse_args() -> Result<Args, String> {
    let mut a = Args { nodes: 8, sets: 2000, gets: 10000, concurrency: 64, value_size: 100, json: None };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            return Err(USAGE.to_string());
        }
        let val = it.next().ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let num = || val.parse::<usize>().map_err(|_| format!("{flag}: not a number: {val}"));
        match flag.as_str() {
            "--nodes" => a.nodes = num()?,
            "--sets" => a.sets = num()?,
            "--gets" => a.gets = num()?,
            "--concurrency" => a.concurrency = num()?,
            "--value-size" => a.value_size = num()?,
            "--json" => a.json = Some(val),
            _ => return Err(format!("unknown option {flag}\n{USAGE}")),
        }
    }
    // A put needs acks from READ_MAJORITY *other* nodes (the publisher's own copy is not counted).
    if a.nodes <= READ_MAJORITY {
        return Err(format!("--nodes must be at least {} so a majority put can succeed", READ_MAJORITY + 1));
    }
    if a.sets == 0 || a.concurrency == 0 {
        return Err("--sets and --concurrency must be at least 1".to_string());
    }
    Ok(a)
}

/// What the bench can ask of a node task.
enum Cmd {
    /// Add every given peer to the routing table.
    AddPeers(Vec<(PeerId, Multiaddr)>, oneshot::Sender<()>),
    /// Dial the given peers (if not yet connected).
    Dial(Vec<(PeerId, Multiaddr)>, oneshot::Sender<()>),
    /// Start one bootstrap query; `Status::bootstrapped` turns true when it finishes.
    Bootstrap(oneshot::Sender<bool>),
    Status(oneshot::Sender<Status>),
    /// `put_record(.., Quorum::Majority)`; replies whether the query reported Ok.
    Put(String, Vec<u8>, oneshot::Sender<bool>),
    /// `get_record`; replies with the value once `READ_MAJORITY` sources agree, `None` if the
    /// query finished before that.
    Get(String, oneshot::Sender<Option<Vec<u8>>>),
}

#[derive(Clone, Copy, Debug)]
struct Status {
    routing_entries: usize,
    connected_peers: usize,
    bootstrapped: bool,
}

/// A get in flight: distinct sources seen per value.
struct PendingGet {
    seen: HashMap<Vec<u8>, HashSet<Option<PeerId>>>,
    reply: oneshot::Sender<Option<Vec<u8>>>,
}

struct Node {
    tx: mpsc::Sender<Cmd>,
    peer: PeerId,
    addr: Multiaddr,
}

fn build_swarm() -> Result<Swarm<kad::Behaviour<MemoryStore>>, String> {
    let swarm = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(tcp::Config::default().nodelay(true), noise::Config::new, yamux::Config::default)
        .map_err(|e| format!("transport: {e}"))?
        .with_behaviour(|key| {
            let id = key.public().to_peer_id();
            let mut cfg = kad::Config::new(kad::PROTOCOL_NAME);
            cfg.set_replication_factor(NonZeroUsize::new(REPLICATION).expect("5 != 0"))
                .set_query_timeout(OP_TIMEOUT)
                .set_periodic_bootstrap_interval(None);
            // The default store holds only 1024 records; the bench stores up to sets * 6 / nodes.
            let store_cfg = MemoryStoreConfig { max_records: usize::MAX, ..Default::default() };
            let mut kad = kad::Behaviour::with_config(id, MemoryStore::with_config(id, store_cfg), cfg);
            // Loopback addresses are never confirmed as external, so server mode must be forced.
            kad.set_mode(Some(kad::Mode::Server));
            kad
        })
        .map_err(|e| format!("behaviour: {e:?}"))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3600)))
        .build();
    Ok(swarm)
}

/// Starts a node task; returns once it listens on 127.0.0.1.
async fn spawn_node() -> Result<Node, String> {
    let mut swarm = build_swarm()?;
    swarm.listen_on("/ip4/127.0.0.1/tcp/0".parse().expect("valid multiaddr")).map_err(|e| format!("listen: {e}"))?;
    let addr = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
                return address;
            }
        }
    })
    .await
    .map_err(|_| "no listen address within 10 s".to_string())?;
    let peer = *swarm.local_peer_id();
    let (tx, rx) = mpsc::channel(1024);
    tokio::spawn(run_node(swarm, rx));
    Ok(Node { tx, peer, addr })
}

/// The node task: owns the Swarm, serves commands, turns query events into replies.
/// Ends when every command sender is dropped.
async fn run_node(mut swarm: Swarm<kad::Behaviour<MemoryStore>>, mut rx: mpsc::Receiver<Cmd>) {
    let mut puts: HashMap<QueryId, oneshot::Sender<bool>> = HashMap::new();
    let mut gets: HashMap<QueryId, PendingGet> = HashMap::new();
    let mut bootstrap: Option<QueryId> = None;
    let mut bootstrapped = false;
    loop {
        tokio::select! {
            cmd = rx.recv() => {
                let Some(cmd) = cmd else { return };
                match cmd {
                    Cmd::AddPeers(peers, reply) => {
                        for (p, a) in peers {
                            swarm.behaviour_mut().add_address(&p, a);
                        }
                        let _ = reply.send(());
                    }
                    Cmd::Dial(peers, reply) => {
                        for (p, a) in peers {
                            let opts = DialOpts::peer_id(p)
                                .addresses(vec![a])
                                .condition(PeerCondition::DisconnectedAndNotDialing)
                                .build();
                            let _ = swarm.dial(opts);
                        }
                        let _ = reply.send(());
                    }
                    Cmd::Bootstrap(reply) => {
                        bootstrapped = false;
                        bootstrap = swarm.behaviour_mut().bootstrap().ok();
                        let _ = reply.send(bootstrap.is_some());
                    }
                    Cmd::Status(reply) => {
                        let routing_entries = swarm.behaviour_mut().kbuckets().map(|b| b.num_entries()).sum();
                        let connected_peers = swarm.connected_peers().count();
                        let _ = reply.send(Status { routing_entries, connected_peers, bootstrapped });
                    }
                    Cmd::Put(key, value, reply) => {
                        let record = kad::Record::new(kad::RecordKey::new(&key), value);
                        match swarm.behaviour_mut().put_record(record, Quorum::Majority) {
                            Ok(id) => {
                                puts.insert(id, reply);
                            }
                            Err(_) => {
                                let _ = reply.send(false);
                            }
                        }
                    }
                    Cmd::Get(key, reply) => {
                        let id = swarm.behaviour_mut().get_record(kad::RecordKey::new(&key));
                        gets.insert(id, PendingGet { seen: HashMap::new(), reply });
                    }
                }
            }
            event = swarm.select_next_some() => {
                let SwarmEvent::Behaviour(kad::Event::OutboundQueryProgressed { id, result, step, .. }) = event else {
                    continue;
                };
                match result {
                    QueryResult::PutRecord(res) => {
                        if let Some(reply) = puts.remove(&id) {
                            let _ = reply.send(res.is_ok());
                        }
                    }
                    QueryResult::GetRecord(res) => {
                        let Some(pending) = gets.get_mut(&id) else { continue };
                        let mut agreed = None;
                        if let Ok(GetRecordOk::FoundRecord(found)) = res {
                            let sources = pending.seen.entry(found.record.value).or_default();
                            sources.insert(found.peer);
                            if sources.len() >= READ_MAJORITY {
                                agreed = pending.seen.iter().find(|(_, s)| s.len() >= READ_MAJORITY).map(|(v, _)| v.clone());
                            }
                        }
                        if agreed.is_some() || step.last {
                            let pending = gets.remove(&id).expect("present above");
                            let _ = pending.reply.send(agreed);
                            if let Some(mut q) = swarm.behaviour_mut().query_mut(&id) {
                                q.finish();
                            }
                        }
                    }
                    QueryResult::Bootstrap(_) if bootstrap == Some(id) && step.last => bootstrapped = true,
                    _ => {}
                }
            }
        }
    }
}

/// Sends a command and waits for its reply, bounded by `limit`.
async fn ask<T>(node: &Node, limit: Duration, make: impl FnOnce(oneshot::Sender<T>) -> Cmd) -> Option<T> {
    let (tx, rx) = oneshot::channel();
    node.tx.send(make(tx)).await.ok()?;
    tokio::time::timeout(limit, rx).await.ok()?.ok()
}

async fn put(node: &Node, key: &str, value: &[u8]) -> bool {
    ask(node, OP_TIMEOUT + Duration::from_secs(1), |r| Cmd::Put(key.to_string(), value.to_vec(), r))
        .await
        .unwrap_or(false)
}

/// A majority get that returned the expected value.
async fn get(node: &Node, key: &str, expected: &[u8]) -> bool {
    let got = ask(node, OP_TIMEOUT + Duration::from_secs(1), |r| Cmd::Get(key.to_string(), r)).await;
    matches!(got, Some(Some(v)) if v == expected)
}

/// Polls every node until `done` holds for all of them, or `limit` passes.
async fn wait_all(nodes: &[Node], limit: Duration, done: impl Fn(&Status) -> bool) -> Result<(), String> {
    let t0 = Instant::now();
    loop {
        let mut last = None;
        let mut all = true;
        for n in nodes {
            let s = ask(n, Duration::from_secs(5), Cmd::Status).await.ok_or("a node task stopped")?;
            if !done(&s) {
                all = false;
                last = Some(s);
                break;
            }
        }
        if all {
            return Ok(());
        }
        if t0.elapsed() > limit {
            return Err(format!("network not ready after {limit:?}; last status {last:?}"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// xorshift64*: deterministic key choice without an extra dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n
    }
}

fn pct_us(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

fn per_s(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64().max(1e-9)
}

fn progress(start: Instant, msg: &str) {
    eprintln!("[{:>7.2}s] {msg}", start.elapsed().as_secs_f64());
}

async fn run(args: Args) -> Result<String, String> {
    let start = Instant::now();
    let n = args.nodes;
    progress(start, &format!("{VERSIONS}: starting {n} kad nodes on 127.0.0.1"));
    let mut nodes = Vec::with_capacity(n);
    for _ in 0..n {
        nodes.push(spawn_node().await?);
    }
    let book: Vec<(PeerId, Multiaddr)> = nodes.iter().map(|x| (x.peer, x.addr.clone())).collect();
    for (i, node) in nodes.iter().enumerate() {
        let others: Vec<_> = book.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, p)| p.clone()).collect();
        ask(node, Duration::from_secs(5), |r| Cmd::AddPeers(others, r)).await.ok_or("add_address failed")?;
    }
    // Each pair is dialled once (lower index dials higher), so every node ends up connected to all.
    for (i, node) in nodes.iter().enumerate() {
        let higher = book[i + 1..].to_vec();
        ask(node, Duration::from_secs(5), |r| Cmd::Dial(higher, r)).await.ok_or("dial failed")?;
    }
    // k-buckets hold 20 peers each, so past 20 other nodes a table need not hold every peer.
    let full =
        move |s: &Status| s.connected_peers == n - 1 && (s.routing_entries == n - 1 || n > kad::K_VALUE.get() + 1);
    wait_all(&nodes, SETUP_TIMEOUT, full).await?;
    for node in &nodes {
        let ok = ask(node, Duration::from_secs(5), Cmd::Bootstrap).await.unwrap_or(false);
        if !ok {
            return Err("bootstrap could not start (no known peers)".to_string());
        }
    }
    wait_all(&nodes, SETUP_TIMEOUT, |s| s.bootstrapped && full(s)).await?;
    progress(start, &format!("routing tables full ({} peers each), bootstrapped", n - 1));

    let value = vec![b'v'; args.value_size];
    let keys: Vec<String> = (0..args.sets).map(|i| format!("bench-key-{i}")).collect();

    progress(start, &format!("{} confirmed sets (Quorum::Majority), one at a time", args.sets));
    let mut failed_sets = 0usize;
    let t0 = Instant::now();
    for (i, k) in keys.iter().enumerate() {
        if !put(&nodes[i % n], k, &value).await {
            failed_sets += 1;
        }
    }
    let set_elapsed = t0.elapsed();
    progress(start, &format!("sets: {:.1}/s, {failed_sets} failed", per_s(args.sets, set_elapsed)));

    progress(start, &format!("{} sequential majority gets ({READ_MAJORITY} of {REPLICATION})", args.gets));
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut lat = Vec::with_capacity(args.gets);
    let mut failed_seq = 0usize;
    let t0 = Instant::now();
    for i in 0..args.gets {
        let k = &keys[rng.below(keys.len())];
        let t = Instant::now();
        let ok = get(&nodes[i % n], k, &value).await;
        lat.push(t.elapsed());
        if !ok {
            failed_seq += 1;
        }
    }
    let get_elapsed = t0.elapsed();
    lat.sort();
    let (p50, p99) = (pct_us(&lat, 0.50), pct_us(&lat, 0.99));
    progress(
        start,
        &format!("gets: {:.1}/s, p50 {p50:.0} µs, p99 {p99:.0} µs, {failed_seq} failed", per_s(args.gets, get_elapsed)),
    );

    progress(start, &format!("{} concurrent majority gets, {} in flight", args.gets, args.concurrency));
    let nodes = Arc::new(nodes);
    let keys = Arc::new(keys);
    let value = Arc::new(value);
    let issued = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now();
    let mut tasks = Vec::with_capacity(args.concurrency);
    for t in 0..args.concurrency {
        let (nodes, keys, value, issued) = (nodes.clone(), keys.clone(), value.clone(), issued.clone());
        let gets = args.gets;
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng(0x2545_f491_4f6c_dd1d ^ ((t as u64 + 1) * 0x9e37_79b9));
            let node = &nodes[t % nodes.len()];
            let mut failed = 0usize;
            while issued.fetch_add(1, Ordering::Relaxed) < gets {
                if !get(node, &keys[rng.below(keys.len())], &value).await {
                    failed += 1;
                }
            }
            failed
        }));
    }
    let mut failed_conc = 0usize;
    for task in tasks {
        failed_conc += task.await.unwrap_or(0);
    }
    let conc_elapsed = t0.elapsed();
    progress(start, &format!("concurrent gets: {:.1}/s, {failed_conc} failed", per_s(args.gets, conc_elapsed)));

    let json = format!(
        concat!(
            "{{\"get_p50_us\": {:.1}, \"get_p99_us\": {:.1}, \"get_per_s\": {:.1}, \"concurrent_get_per_s\": {:.1}, ",
            "\"set_per_s\": {:.1}, \"version\": \"{}\", \"nodes\": {}, \"sets\": {}, \"gets\": {}, ",
            "\"concurrency\": {}, \"value_size\": {}, \"replication_factor\": {}, \"quorum\": \"majority\", ",
            "\"read_majority\": {}, \"transport\": \"tcp+noise+yamux\", \"failed_gets\": {}, ",
            "\"failed_sequential_gets\": {}, \"failed_concurrent_gets\": {}, \"failed_sets\": {}, ",
            "\"set_seconds\": {:.3}, \"get_seconds\": {:.3}, \"concurrent_get_seconds\": {:.3}}}"
        ),
        p50,
        p99,
        per_s(args.gets, get_elapsed),
        per_s(args.gets, conc_elapsed),
        per_s(args.sets, set_elapsed),
        VERSIONS,
        n,
        args.sets,
        args.gets,
        args.concurrency,
        args.value_size,
        REPLICATION,
        READ_MAJORITY,
        failed_seq + failed_conc,
        failed_seq,
        failed_conc,
        failed_sets,
        set_elapsed.as_secs_f64(),
        get_elapsed.as_secs_f64(),
        conc_elapsed.as_secs_f64(),
    );
    Ok(json)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let json_path = args.json.clone();
    match run(args).await {
        Ok(json) => {
            println!("{json}");
            if let Some(path) = json_path {
                if let Err(e) = std::fs::write(&path, format!("{json}\n")) {
                    eprintln!("cannot write {path}: {e}");
                    return ExitCode::from(1);
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
