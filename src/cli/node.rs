//! `rs2p node`: one long-running node.

use std::time::Duration;

use clap::Args;
use rs2p::core::Config;
use rs2p::net::split_addr;
use rs2p::wire::Protocol;
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
}

pub async fn run(args: NodeArgs) -> Result<(), Failure> {
    // Handle SIGINT/SIGTERM from the start: one that arrives after the ready
    // line, while still connecting, must not kill the process.
    let signalled =
        shutdown_signal().map_err(|e| Failure::new(EXIT_RUNTIME, format!("cannot wait for signals: {e}")))?;
    let (host, port) = split_addr(&args.bind).map_err(net_failure)?;
    let mut cfg = Config::chord(&host, port);
    cfg.protocol = Protocol::new(args.subnet.clone(), "Plaintext");
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
    let mut connected = 0;
    for peer in &args.connect {
        match sock.connect(peer).await {
            Ok(id) => {
                connected += 1;
                tracing::info!(peer = %peer, id = %id.short(), "connected");
            }
            Err(e) => eprintln!("error: {}", net_failure(e).message),
        }
    }
    if !args.connect.is_empty() && connected == 0 {
        let _ = sock.shutdown().await;
        return Err(Failure::new(EXIT_UNREACHABLE, "could not connect to any of the given peers"));
    }
    signalled.await;
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
