//! `rs2p node`: one long-running node.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use rs2p::core::Config;
use rs2p::net::split_addr;
use rs2p::ChordSocket;

use super::{net_failure, Failure, EXIT_RUNTIME, EXIT_UNREACHABLE};

#[derive(Args, Debug)]
pub struct NodeArgs {
    /// Address to listen on, HOST:PORT (port 0 picks a free one).
    #[arg(long, value_name = "HOST:PORT")]
    pub bind: String,
    /// A node to connect to at start (repeatable).
    #[arg(long, value_name = "HOST:PORT")]
    pub connect: Vec<String>,
    /// Seed the ring (store data for it) instead of only using it.
    #[arg(long)]
    pub join: bool,
    /// Subnet name (py2p's chord default is "chord").
    #[arg(long, default_value = "chord")]
    pub subnet: String,
    /// Address peers should dial to reach this node, if not the bound one.
    #[arg(long, value_name = "HOST:PORT")]
    pub out_addr: Option<String>,
    /// Seconds to wait for the data handoff when leaving.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = super::parse_secs)]
    pub leave_timeout: Duration,
    /// Keep the node's items, key list, tombstones, id and last peers in DIR
    /// (created if needed); restarted with the same DIR, the node comes back
    /// with its data. Without it, everything is in memory.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Longest wait, in seconds, between two attempts to reach a --connect
    /// peer that is unreachable (the wait doubles from 1 s up to this).
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = super::parse_secs)]
    pub retry_max: Duration,
    /// Do not announce every set to every node (py2p's network-wide key
    /// list, whose cost per set grows with the ring): a set costs O(log N)
    /// messages, and `keys` walks the ring instead. Only for rings of rs2p
    /// nodes: while a py2p peer is linked, sets are announced anyway.
    #[arg(long)]
    pub no_key_list: bool,
    /// Keep no fingers (py2p's routing only: lookups then take a number of
    /// hops that grows like a power of the ring's size).
    #[arg(long)]
    pub no_fingers: bool,
    /// Back after longer than deletes are remembered (26 h: its process
    /// stopped, cut off, or its data directory that old), drop what the
    /// node held instead of serving it (Cassandra's gc_grace rule). Off by
    /// default: the node keeps its data and warns.
    #[arg(long)]
    pub drop_stale_after_horizon: bool,
    #[command(flatten)]
    pub tls: super::tls_args::TlsArgs,
    /// Serve Prometheus metrics on http://HOST:PORT/metrics (port 0 picks
    /// a free one; the address is printed on stderr).
    #[arg(long, value_name = "HOST:PORT")]
    pub metrics: Option<String>,
}

pub async fn run(args: NodeArgs) -> Result<(), Failure> {
    // Handle SIGINT/SIGTERM from the start: one that arrives after the ready
    // line, while still connecting, must not kill the process.
    let signalled =
        shutdown_signal().map_err(|e| Failure::new(EXIT_RUNTIME, format!("cannot wait for signals: {e}")))?;
    let (host, port) = split_addr(&args.bind).map_err(net_failure)?;
    let mut cfg = Config::chord(&host, port);
    args.tls.apply(&args.subnet, &mut cfg)?;
    cfg.data_dir = args.data_dir.clone();
    cfg.key_list = !args.no_key_list;
    cfg.fingers = !args.no_fingers;
    cfg.drop_stale_after_horizon = args.drop_stale_after_horizon;
    if let Some(out) = &args.out_addr {
        cfg.out_addr = split_addr(out).map_err(net_failure)?;
    } else if host == "0.0.0.0" || host == "::" {
        cfg.out_addr.0 = lan_ip().unwrap_or_else(|| "127.0.0.1".to_owned());
    }
    let sock = ChordSocket::bind_with(&args.bind, cfg).await.map_err(net_failure)?;
    let (out_host, out_port) = sock.out_addr();
    if args.join {
        sock.join().map_err(net_failure)?;
    }
    println!(
        "rs2p node {} listening on {} (advertised {out_host}:{out_port}, subnet {}, {})",
        sock.id(),
        sock.local_addr(),
        args.subnet,
        if args.join { "seeding" } else { "leeching" }
    );
    if let Some(fingerprint) = sock.tls_fingerprint() {
        println!("rs2p node TLS certificate sha256 {fingerprint}");
    }
    // Kept alive until the node exits.
    let _metrics = match &args.metrics {
        Some(addr) => {
            let server = rs2p::net::serve_metrics(sock.clone(), addr)
                .await
                .map_err(|e| Failure::new(EXIT_RUNTIME, format!("cannot serve metrics: {}", net_failure(e).message)));
            let server = match server {
                Ok(s) => s,
                Err(f) => {
                    let _ = sock.shutdown().await;
                    return Err(f);
                }
            };
            eprintln!("rs2p node: metrics on http://{}/metrics", server.local_addr());
            Some(server)
        }
        None => None,
    };
    if let Some(dir) = &args.data_dir {
        eprintln!("rs2p node: data directory {} ({} items held)", dir.display(), sock.item_count());
    }
    // --connect peers first, then peers remembered in the data directory.
    let own = format!("{out_host}:{out_port}");
    let mut targets: Vec<(String, bool)> = args.connect.iter().map(|p| (p.clone(), true)).collect();
    for p in sock.saved_peers() {
        if p != own && !targets.iter().any(|(t, _)| *t == p) {
            targets.push((p, false));
        }
    }
    // Runs until a signal; ends early only on a misconfiguration.
    let bootstrap = {
        let sock = sock.clone();
        async move {
            bootstrap(sock, targets, args.retry_max).await?;
            std::future::pending::<Result<(), Failure>>().await
        }
    };
    tokio::select! {
        _ = signalled => {}
        res = bootstrap => {
            if let Err(failure) = res {
                let _ = sock.shutdown().await;
                return Err(failure);
            }
        }
    }
    eprintln!("rs2p node: shutting down");
    if !sock.is_leeching() {
        match sock.leave(args.leave_timeout).await {
            Ok(stats) => eprintln!(
                "rs2p node: handed over {} of {} items ({} not confirmed)",
                stats.confirmed,
                stats.queued,
                stats.queued.saturating_sub(stats.confirmed)
            ),
            Err(e) => eprintln!("warning: leaving without a handoff: {e}"),
        }
    }
    let _ = sock.shutdown().await;
    Ok(())
}

/// Connects to every target, retrying the unreachable ones with a doubling
/// wait (1 s up to `retry_max`), each failure reported once per attempt,
/// until each was reached once. A `--connect` peer on another subnet is a
/// misconfiguration: exit 3 with the reason. A remembered peer that fails is
/// only retried while the node has no peer at all.
async fn bootstrap(sock: ChordSocket, targets: Vec<(String, bool)>, retry_max: Duration) -> Result<(), Failure> {
    let mut pending = targets;
    let mut wait = Duration::from_secs(1);
    let mut first = true;
    while !pending.is_empty() {
        let mut left = Vec::new();
        for (peer, given) in pending {
            match sock.connect(&peer).await {
                Ok(id) => {
                    if !first {
                        eprintln!("rs2p node: connected to {peer}");
                    }
                    tracing::info!(peer = %peer, id = %id.short(), "connected");
                }
                Err(e) if given && e.is_wrong_subnet() => {
                    return Err(Failure::new(EXIT_UNREACHABLE, net_failure(e).message));
                }
                Err(e) if !given && !sock.peers().is_empty() => {
                    tracing::debug!(peer = %peer, "remembered peer not reached: {e}");
                }
                Err(e) => {
                    eprintln!(
                        "rs2p node: cannot reach {peer} ({}); retrying in {} s",
                        net_failure(e).message,
                        wait.as_secs_f64()
                    );
                    left.push((peer, given));
                }
            }
        }
        pending = left;
        first = false;
        if !pending.is_empty() {
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(retry_max);
        }
    }
    Ok(())
}

/// Installs the SIGINT/SIGTERM handlers now; the future completes on the first signal.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}

/// The address of the interface that routes outwards (no packet is sent).
fn lan_ip() -> Option<String> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("192.0.2.1:9").ok()?;
    Some(s.local_addr().ok()?.ip().to_string())
}
