//! `rs2p soak`: a ring under honest load while misbehaving peers attack it.
//!
//! An in-process ring of rs2p nodes on real loopback sockets. Honest
//! clients set, read back, read and delete keys of their own, and check
//! every answer against what they wrote: a value that differs, or "not
//! found" for a key that exists, is a wrong answer. Meanwhile attackers pick
//! misbehaviours at random from a seed: garbage bytes, half frames, silent
//! connections (one at a time and by the hundred), peer-list spam pointing
//! at a silent service, broadcast floods (some dated an hour ahead), store,
//! retrieve and notify floods, and meta flips. The report gives the
//! operations done, honest failures by kind, attacks by kind, the nodes'
//! largest counters against their bounds, links between ring nodes
//! dropped, and the process's memory high-water mark.
//!
//! Exit 0 when every honest operation was answered correctly, 1 otherwise.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Args;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rs2p::core::{Config, Event, GetError};
use rs2p::node::NodeStats;
use rs2p::ring::U512;
use rs2p::wire::{base58, flags, pyjson, Message, Protocol};
use rs2p::ChordSocket;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{net_failure, Failure, EXIT_NOT_FOUND, EXIT_RUNTIME, EXIT_USAGE};

/// Keys each honest client cycles through (its own: the expected answer is known).
const KEYS_PER_CLIENT: usize = 64;
/// How long a set or delete may take to become readable.
const CONFIRM: Duration = Duration::from_secs(10);
/// Timeout of one honest get.
const GET_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound on each soak node's key list (count; bytes below).
const SOAK_KEYS: usize = 20_000;
/// Bound on the bytes of each soak node's key list.
const SOAK_KEY_BYTES: usize = 4 << 20;
/// Bound on each soak node's memory of broadcast ids.
const SOAK_RECENT_IDS: usize = 20_000;
/// Items one store flood sends (1 KiB each): with three copies of each
/// (owner and two replicas), a 10-minute run stores some tens of MB in all,
/// within the bounds; `bad_input` tests drive the store to its bound.
const STORE_FLOOD_ITEMS: usize = 100;
/// Seconds between progress lines.
const PROGRESS_EVERY: Duration = Duration::from_secs(30);

#[derive(Args, Debug)]
pub struct SoakArgs {
    /// Minutes to run (fractions allowed).
    #[arg(long, default_value = "10", value_parser = parse_minutes)]
    pub minutes: Duration,
    /// rs2p nodes in the ring.
    #[arg(long, default_value_t = 5)]
    pub nodes: usize,
    /// Honest clients, each with its own keys.
    #[arg(long, default_value_t = 4)]
    pub clients: usize,
    /// Misbehaving peers attacking at once.
    #[arg(long, default_value_t = 6)]
    pub attackers: usize,
    /// Also let attackers flip their meta flag, which makes them seeding
    /// owners half the time: stores routed to them then are lost, as with any
    /// peer that takes a place on the ring and drops what it is sent (the
    /// trust model's limit, see README). Off by default: it measures the
    /// trust model, not hardening.
    #[arg(long)]
    pub lying_owners: bool,
    /// Bound on each node's tables (and, apart, its replicas), MiB. Small
    /// enough and store floods fill it: honest writes are then refused
    /// (reported as failures, never as wrong answers).
    #[arg(long, default_value_t = 16)]
    pub store_mib: usize,
    /// Seed of every random choice (keys, attacks, targets).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Also write the report as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

fn parse_minutes(text: &str) -> Result<Duration, String> {
    let m: f64 = text.trim().parse().map_err(|_| format!("{text:?} is not a number of minutes"))?;
    if !m.is_finite() || m <= 0.0 || m > 10_000.0 {
        return Err(format!("{text:?} must be a positive number of minutes"));
    }
    Ok(Duration::from_secs_f64(m * 60.0))
}

/// Counters shared by the tasks.
#[derive(Default)]
struct Tally {
    ops: AtomicU64,
    wrong: AtomicU64,
    /// Honest failures by kind (timeouts, unavailable, unconfirmed ...).
    failures: Mutex<BTreeMap<String, u64>>,
    attacks: Mutex<BTreeMap<&'static str, u64>>,
    links_dropped: AtomicU64,
    /// Connections the silent service (peer-list spam target) received.
    steered_dials: AtomicU64,
    /// Largest node counters seen.
    peak: Mutex<Peak>,
}

#[derive(Default, Clone)]
struct Peak {
    connections: usize,
    awaiting: usize,
    recent_ids: usize,
    pending_retrieves: usize,
    keys: usize,
    stored_bytes: usize,
    buffered_bytes: usize,
    rss_kib: u64,
    /// The resident set at the last sample.
    rss_now_kib: u64,
}

impl Tally {
    fn fail(&self, kind: impl Into<String>) {
        *self.failures.lock().unwrap_or_else(|e| e.into_inner()).entry(kind.into()).or_default() += 1;
    }

    fn attack(&self, kind: &'static str) {
        *self.attacks.lock().unwrap_or_else(|e| e.into_inner()).entry(kind).or_default() += 1;
    }

    fn failed(&self) -> u64 {
        self.failures.lock().unwrap_or_else(|e| e.into_inner()).values().sum()
    }
}

pub async fn run(args: SoakArgs) -> Result<(), Failure> {
    if args.nodes < 2 || args.nodes > 64 {
        return Err(Failure::new(EXIT_USAGE, "--nodes must be between 2 and 64"));
    }
    let start = Instant::now();
    let ring = build_ring(args.nodes, args.store_mib << 20).await?;
    let addrs: Vec<std::net::SocketAddr> = ring.iter().map(|s| s.local_addr()).collect();
    let tally = Arc::new(Tally::default());
    let stop = start + args.minutes;
    println!(
        "soak: {} nodes, {} honest clients, {} attackers, {:.1} min, seed {}",
        args.nodes,
        args.clients,
        args.attackers,
        args.minutes.as_secs_f64() / 60.0,
        args.seed
    );

    // Links between ring nodes that drop.
    let ids: Vec<rs2p::core::PeerId> = ring.iter().map(|s| s.id()).collect();
    for s in &ring {
        let mut events = s.subscribe();
        let (ids, tally) = (ids.clone(), tally.clone());
        tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(Event::Disconnected { peer: Some(p), .. }) if ids.contains(&p) => {
                        tally.links_dropped.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(_) => return,
                }
            }
        });
    }

    // The silent service peer lists point at.
    let silent = TcpListener::bind("127.0.0.1:0").await.map_err(|e| Failure::new(EXIT_RUNTIME, e.to_string()))?;
    let silent_port = silent.local_addr().map_err(|e| Failure::new(EXIT_RUNTIME, e.to_string()))?.port();
    {
        let tally = tally.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = silent.accept().await {
                tally.steered_dials.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
                });
            }
        });
    }

    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..args.clients {
        let (ring, tally) = (ring.clone(), tally.clone());
        let seed = args.seed.wrapping_mul(1000).wrapping_add(c as u64);
        tasks.spawn(honest_client(c, ring, tally, seed, stop));
    }
    for a in 0..args.attackers {
        let (addrs, tally) = (addrs.clone(), tally.clone());
        let seed = args.seed.wrapping_mul(1000).wrapping_add(500 + a as u64);
        let kinds = if args.lying_owners { &ATTACKS[..] } else { &ATTACKS[..ATTACKS.len() - 1] };
        tasks.spawn(attacker(addrs, tally, seed, stop, silent_port, kinds));
    }

    let mut next_report = start + PROGRESS_EVERY;
    while Instant::now() < stop {
        sample(&ring, &tally);
        if Instant::now() >= next_report {
            next_report += PROGRESS_EVERY;
            progress(start, &tally);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    while tasks.join_next().await.is_some() {}
    sample(&ring, &tally);
    let report = report(&args, start, &tally, &ring);
    println!("{report}");
    if let Some(path) = &args.json {
        std::fs::write(path, format!("{report}\n"))
            .map_err(|e| Failure::new(EXIT_RUNTIME, format!("cannot write {}: {e}", path.display())))?;
    }
    for s in &ring {
        let _ = s.close();
    }
    let (wrong, failed) = (tally.wrong.load(Ordering::Relaxed), tally.failed());
    if wrong > 0 || failed > 0 {
        return Err(Failure::new(EXIT_NOT_FOUND, format!("{wrong} wrong answers, {failed} honest operations failed")));
    }
    Ok(())
}

async fn build_ring(nodes: usize, store_bytes: usize) -> Result<Vec<ChordSocket>, Failure> {
    let mut ring: Vec<ChordSocket> = Vec::new();
    for _ in 0..nodes {
        let mut cfg = Config::chord("127.0.0.1", 0);
        cfg.max_store_bytes = store_bytes;
        cfg.max_keys = SOAK_KEYS;
        cfg.max_key_bytes = SOAK_KEY_BYTES;
        cfg.max_recent_ids = SOAK_RECENT_IDS;
        let s = ChordSocket::bind_with("127.0.0.1:0", cfg).await.map_err(net_failure)?;
        s.join().map_err(net_failure)?;
        if let Some(first) = ring.first() {
            s.connect(&first.local_addr().to_string()).await.map_err(net_failure)?;
        }
        ring.push(s);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ring.iter().all(|s| s.data_storing().len() == nodes - 1) {
        if Instant::now() > deadline {
            return Err(Failure::new(EXIT_RUNTIME, "the soak ring did not link up within 60 s"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(ring)
}

/// Records the nodes' counters and the process's memory.
fn sample(ring: &[ChordSocket], tally: &Tally) {
    let mut p = tally.peak.lock().unwrap_or_else(|e| e.into_inner());
    for s in ring {
        let st: NodeStats = s.stats();
        p.connections = p.connections.max(st.connections);
        p.awaiting = p.awaiting.max(st.awaiting);
        p.recent_ids = p.recent_ids.max(st.recent_ids);
        p.pending_retrieves = p.pending_retrieves.max(st.pending_retrieves);
        p.keys = p.keys.max(st.keys);
        p.stored_bytes = p.stored_bytes.max(st.stored_bytes);
        p.buffered_bytes = p.buffered_bytes.max(st.buffered_bytes);
    }
    p.rss_kib = p.rss_kib.max(proc_status_kib("VmHWM:").unwrap_or(0));
    p.rss_now_kib = proc_status_kib("VmRSS:").unwrap_or(0);
}

/// A `kB` field of /proc/self/status (Linux; `None` elsewhere).
fn proc_status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn progress(start: Instant, t: &Tally) {
    let peak = t.peak.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let attacks: u64 = t.attacks.lock().unwrap_or_else(|e| e.into_inner()).values().sum();
    println!(
        "soak: {:5.0} s: {} honest ops ({} wrong, {} failed), {attacks} attacks, memory {} MiB (high-water {} MiB), ring links dropped {}",
        start.elapsed().as_secs_f64(),
        t.ops.load(Ordering::Relaxed),
        t.wrong.load(Ordering::Relaxed),
        t.failed(),
        peak.rss_now_kib / 1024,
        peak.rss_kib / 1024,
        t.links_dropped.load(Ordering::Relaxed),
    );
}

fn report(args: &SoakArgs, start: Instant, t: &Tally, ring: &[ChordSocket]) -> String {
    let peak = t.peak.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let failures = t.failures.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let attacks = t.attacks.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let cfg = Config::chord("127.0.0.1", 0);
    let errors: usize = ring.iter().map(|s| s.status().err().map_or(0, |e| e.len())).sum();
    serde_json::json!({
        "seconds": start.elapsed().as_secs_f64(),
        "nodes": args.nodes,
        "clients": args.clients,
        "attackers": args.attackers,
        "seed": args.seed,
        "honest_ops": t.ops.load(Ordering::Relaxed),
        "wrong_answers": t.wrong.load(Ordering::Relaxed),
        "honest_failures": failures,
        "attacks": attacks,
        "ring_links_dropped": t.links_dropped.load(Ordering::Relaxed),
        "dials_to_the_silent_service": t.steered_dials.load(Ordering::Relaxed),
        "memory_high_water_mib": peak.rss_kib as f64 / 1024.0,
        "memory_at_end_mib": peak.rss_now_kib as f64 / 1024.0,
        "lying_owners": args.lying_owners,
        "node_errors_recorded": errors,
        "peaks": {
            "connections": peak.connections,
            "connections_bound": cfg.max_connections,
            "awaiting_handshake": peak.awaiting,
            "recent_ids": peak.recent_ids,
            "recent_ids_bound": SOAK_RECENT_IDS,
            "pending_retrieves": peak.pending_retrieves,
            "pending_bound": cfg.max_pending,
            "keys": peak.keys,
            "keys_bound": SOAK_KEYS,
            "replicas_bound_bytes": args.store_mib << 20,
            "stored_bytes": peak.stored_bytes,
            "stored_bytes_bound": args.store_mib << 20,
            "partial_frame_bytes": peak.buffered_bytes,
            "partial_frame_bytes_bound": cfg.max_buffered_bytes,
        },
    })
    .to_string()
}

// ---------------------------------------------------------------------------
// Honest clients
// ---------------------------------------------------------------------------

async fn honest_client(c: usize, ring: Vec<ChordSocket>, tally: Arc<Tally>, seed: u64, stop: Instant) {
    let mut rng = StdRng::seed_from_u64(seed);
    // What each of our keys holds (None: deleted or never set), and whether
    // that is known: after a write that could not be confirmed it is not,
    // and reads are not judged until the next confirmed write.
    let mut model: Vec<Option<String>> = vec![None; KEYS_PER_CLIENT];
    let mut known = [true; KEYS_PER_CLIENT];
    let mut version = 0u64;
    while Instant::now() < stop {
        let k = rng.gen_range(0..KEYS_PER_CLIENT);
        let key = format!("soak/{c}/{k}");
        let via = &ring[rng.gen_range(0..ring.len())];
        let reader = &ring[rng.gen_range(0..ring.len())];
        let roll = rng.gen_range(0..10);
        if roll < 5 {
            version += 1;
            let value = format!("v{version} of {key}");
            if via.set(&key, value.clone()).is_err() {
                tally.fail("set refused");
                continue;
            }
            model[k] = Some(value.clone());
            known[k] = confirm(reader, &key, Some(&value), &tally).await;
        } else if roll < 9 {
            let want = model[k].clone();
            match reader.get_timeout(&key, GET_TIMEOUT).await {
                _ if !known[k] => {}
                Ok(v) if want.as_deref().is_some_and(|w| w.as_bytes() == &v[..]) => {}
                Err(rs2p::Error::Get(GetError::NotFound)) if want.is_none() => {}
                Ok(_) | Err(rs2p::Error::Get(GetError::NotFound)) => {
                    tally.wrong.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(key, ?want, "soak: wrong answer");
                }
                Err(e) => tally.fail(format!("get: {e}")),
            }
        } else {
            if via.delete(&key).is_err() {
                tally.fail("delete refused");
                continue;
            }
            model[k] = None;
            known[k] = confirm(reader, &key, None, &tally).await;
        }
        tally.ops.fetch_add(1, Ordering::Relaxed);
    }
}

/// Reads `key` until it holds `want` (`None`: gone), within [`CONFIRM`];
/// false (and counted as a failure) if it did not.
async fn confirm(s: &ChordSocket, key: &str, want: Option<&str>, tally: &Tally) -> bool {
    let deadline = Instant::now() + CONFIRM;
    loop {
        let got = s.get_timeout(key, GET_TIMEOUT.min(deadline.saturating_duration_since(Instant::now()))).await;
        let done = match (&got, want) {
            (Ok(v), Some(w)) => &v[..] == w.as_bytes(),
            (Err(rs2p::Error::Get(GetError::NotFound)), None) => true,
            _ => false,
        };
        if done {
            return true;
        }
        if Instant::now() >= deadline {
            tally.fail(if want.is_some() { "set not readable in time" } else { "delete not visible in time" });
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------------------
// Attackers
// ---------------------------------------------------------------------------

/// The attacks; the last, meta flips, only with `--lying-owners`.
const ATTACKS: [&str; 11] = [
    "garbage",
    "half_frame",
    "silent",
    "silent_hundred",
    "peer_list_spam",
    "broadcast_flood",
    "future_broadcasts",
    "store_flood",
    "retrieve_flood",
    "notify_flood",
    "meta_flips",
];

async fn attacker(
    addrs: Vec<std::net::SocketAddr>,
    tally: Arc<Tally>,
    seed: u64,
    stop: Instant,
    silent_port: u16,
    kinds: &'static [&'static str],
) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut n = 0u64;
    while Instant::now() < stop {
        let target = addrs[rng.gen_range(0..addrs.len())];
        let kind = kinds[rng.gen_range(0..kinds.len())];
        n += 1;
        tally.attack(kind);
        let salt = format!("soak-attacker-{seed}-{n}");
        let hold = Duration::from_millis(rng.gen_range(500..8_000));
        // Failures of the attack itself (the node closed on us) are the point.
        let _ = tokio::time::timeout(Duration::from_secs(20), attack(kind, target, &salt, hold, seed ^ n, silent_port))
            .await;
        tokio::time::sleep(Duration::from_millis(rng.gen_range(50..500))).await;
    }
}

async fn attack(
    kind: &str,
    to: std::net::SocketAddr,
    salt: &str,
    hold: Duration,
    seed: u64,
    silent_port: u16,
) -> std::io::Result<()> {
    let mut rng = StdRng::seed_from_u64(seed);
    match kind {
        "garbage" => {
            let mut s = TcpStream::connect(to).await?;
            let junk: Vec<u8> = (0..rng.gen_range(1..4096)).map(|_| rng.gen()).collect();
            s.write_all(&junk).await?;
            drain_until_closed(s, hold).await;
        }
        "half_frame" => {
            let mut s = TcpStream::connect(to).await?;
            let mut frame = 100_000u32.to_be_bytes().to_vec();
            frame.extend((0..1_000).map(|_| rng.gen::<u8>()));
            s.write_all(&frame).await?;
            drain_until_closed(s, hold).await;
        }
        "silent" => drain_until_closed(TcpStream::connect(to).await?, hold).await,
        "silent_hundred" => {
            let mut held = Vec::new();
            for _ in 0..100 {
                held.push(TcpStream::connect(to).await?);
            }
            tokio::time::sleep(hold).await;
        }
        _ => {
            let mut peer = RawPeer::handshake(to, salt, silent_port).await?;
            match kind {
                "peer_list_spam" => {
                    for _ in 0..20 {
                        let list: Vec<pyjson::PeerEntry> = (0..100)
                            .map(|_| pyjson::PeerEntry {
                                host: "127.0.0.1".into(),
                                port: silent_port,
                                id: base58::encode(&(U512::from(rng.gen::<u64>()) << rng.gen_range(0..440))),
                            })
                            .collect();
                        peer.send(flags::WHISPER, vec![b(&[flags::PEERS]), pyjson::peers_json(&list).into()]).await?;
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
                "broadcast_flood" | "future_broadcasts" => {
                    let ahead = if kind == "future_broadcasts" { 3_600 } else { 0 };
                    let mut batch = Vec::new();
                    for i in 0..2_000u32 {
                        let text = format!("junk {seed} {i}");
                        batch.extend_from_slice(&peer.frame(
                            flags::BROADCAST,
                            ahead,
                            vec![b(&[flags::BROADCAST]), text.into()],
                        ));
                    }
                    peer.write(&batch).await?;
                }
                "store_flood" => {
                    let mut batch = Vec::new();
                    for _ in 0..STORE_FLOOD_ITEMS {
                        let key = base58::encode(&(U512::from(rng.gen::<u64>()) << 320));
                        let value: Vec<u8> = (0..1024).map(|_| rng.gen()).collect();
                        batch.extend_from_slice(&peer.frame(
                            flags::WHISPER,
                            0,
                            vec![b(&[flags::STORE]), b(b"sha384"), key.into(), value.into()],
                        ));
                    }
                    peer.write(&batch).await?;
                }
                "retrieve_flood" => {
                    let mut batch = Vec::new();
                    for _ in 0..2_000 {
                        let key = base58::encode(&(U512::from(rng.gen::<u64>()) << 320));
                        batch.extend_from_slice(&peer.frame(
                            flags::WHISPER,
                            0,
                            vec![b(&[flags::RETRIEVE]), b(b"sha384"), key.into()],
                        ));
                    }
                    peer.write(&batch).await?;
                }
                "notify_flood" => {
                    let mut batch = Vec::new();
                    for i in 0..2_000u32 {
                        let key = format!("junk-key {seed} {i}");
                        batch.extend_from_slice(&peer.frame(
                            flags::BROADCAST,
                            0,
                            vec![b(&[flags::NOTIFY]), key.into()],
                        ));
                    }
                    peer.write(&batch).await?;
                }
                "meta_flips" => {
                    for i in 0..200 {
                        let flag: &[u8] = if i % 2 == 0 { b"0" } else { b"1" };
                        peer.send(flags::WHISPER, vec![b(&[flags::HANDSHAKE]), b(flag)]).await?;
                    }
                }
                _ => {}
            }
            drain_until_closed(peer.stream, hold).await;
        }
    }
    Ok(())
}

fn b(bytes: &[u8]) -> Bytes {
    Bytes::copy_from_slice(bytes)
}

/// Reads and discards until the node closes the link or `hold` passes.
async fn drain_until_closed(mut s: TcpStream, hold: Duration) {
    let mut buf = [0u8; 16 * 1024];
    let _ = tokio::time::timeout(hold, async { while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {} }).await;
}

/// A peer that handshakes properly (as a py2p node: no capability flag) and
/// then misbehaves.
struct RawPeer {
    id: String,
    stream: TcpStream,
}

impl RawPeer {
    async fn handshake(to: std::net::SocketAddr, salt: &str, advertised_port: u16) -> std::io::Result<RawPeer> {
        let stream = TcpStream::connect(to).await?;
        stream.set_nodelay(true)?;
        let protocol = Protocol::chord_default();
        let id = rs2p::wire::node_id("127.0.0.1", advertised_port, &protocol, salt);
        let mut peer = RawPeer { id, stream };
        let payload = vec![
            b(&[flags::HANDSHAKE]),
            Bytes::from(peer.id.clone()),
            Bytes::from(protocol.id()),
            Bytes::from(pyjson::addr_packet("127.0.0.1", advertised_port)),
            b(b"[]"),
        ];
        peer.send(flags::WHISPER, payload).await?;
        Ok(peer)
    }

    fn frame(&self, msg_type: u8, ahead_secs: u64, payload: Vec<Bytes>) -> Bytes {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        Message::new(msg_type, self.id.clone(), now + ahead_secs, payload).encode(None).unwrap_or_default()
    }

    async fn send(&mut self, msg_type: u8, payload: Vec<Bytes>) -> std::io::Result<()> {
        let frame = self.frame(msg_type, 0, payload);
        self.write(&frame).await
    }

    async fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await
    }
}
