//! `rs2p status`: what a node sees (its links, neighbours and the ring), asked
//! over the protocol by a short-lived leeching client (PROTOCOL §16.15).

use std::path::PathBuf;

use clap::Args;
use rs2p::chord::StatusReport;
use rs2p::core::{Config, GetError};
use rs2p::net::split_addr;
use rs2p::ring::HashMethod;
use rs2p::wire::Protocol;
use rs2p::{ChordSocket, Error};

use super::svg::Picture;
use super::{net_failure, ClientArgs, Failure, EXIT_NOT_FOUND, EXIT_RUNTIME, EXIT_UNREACHABLE};

#[derive(Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Also draw the ring as the node knows it into FILE (SVG).
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
}

/// For `--svg`, the other rs2p nodes of the ring asked for their own
/// reports (their items, links and fingers), at most this many.
const MAX_PICTURE_REPORTS: usize = 64;

pub async fn run(args: StatusArgs) -> Result<(), Failure> {
    let (sock, report) = fetch(&args.client).await?;
    let mut reports = vec![report];
    if args.svg.is_some() {
        reports.extend(ring_reports(&sock, &reports[0], args.client.timeout()).await);
    }
    let _ = sock.shutdown().await;
    let report = &reports[0];
    if let Some(path) = &args.svg {
        let subtitle =
            format!("as {} ({}) sees it; {} rs2p nodes reported", short(&report.id), report.addr, reports.len());
        super::svg::write(path, &Picture::from_reports(&reports, &subtitle))?;
    }
    let text = if args.json { format!("{:#}\n", report.to_json()) } else { format_report(report) };
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|_| out.flush())
        .map_err(|e| Failure::new(EXIT_RUNTIME, format!("cannot write to stdout: {e}")))
}

/// The reports of the other rs2p nodes in `report`'s ring, each asked
/// through a link of its own; nodes that do not answer are left out.
async fn ring_reports(sock: &ChordSocket, report: &StatusReport, timeout: std::time::Duration) -> Vec<StatusReport> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut out = Vec::new();
    for node in report.ring.iter().filter(|n| n.rs2p && n.id != report.id).take(MAX_PICTURE_REPORTS) {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            break;
        }
        let asked = async {
            // Linked already (the client follows peer lists), or dialed now.
            let linked = rs2p::core::PeerId::parse(node.id.as_bytes()).filter(|p| sock.peers().contains(p));
            let peer = match linked {
                Some(p) => p,
                None => sock.connect(&node.addr).await.ok()?,
            };
            sock.peer_status(&peer, left).await.ok()
        };
        if let Ok(Some(r)) = tokio::time::timeout(left, asked).await {
            out.push(r);
        }
    }
    out
}

/// Connects a leeching client to the peer and asks for its status; the
/// client is returned for further requests (shut it down after).
async fn fetch(args: &ClientArgs) -> Result<(ChordSocket, StatusReport), Failure> {
    let (host, port) = split_addr(&args.bind).map_err(net_failure)?;
    let mut cfg = Config::chord(&host, port);
    cfg.protocol = Protocol::new(args.subnet.clone(), "Plaintext");
    let sock = ChordSocket::bind_with(&args.bind, cfg).await.map_err(net_failure)?;
    let result = async {
        let peer = sock.connect(&args.peer).await.map_err(net_failure)?;
        sock.peer_status(&peer, args.timeout()).await.map_err(|e| match e {
            Error::Get(GetError::Timeout) => {
                Failure::new(EXIT_NOT_FOUND, format!("no status from {} within the timeout", args.peer))
            }
            Error::Status(why) => Failure::new(EXIT_UNREACHABLE, format!("no status from {}: {why}", args.peer)),
            other => net_failure(other),
        })
    }
    .await;
    match result {
        Ok(report) => Ok((sock, report)),
        Err(f) => {
            let _ = sock.shutdown().await;
            Err(f)
        }
    }
}

fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

fn kind(rs2p: bool) -> &'static str {
    if rs2p {
        "rs2p"
    } else {
        "py2p"
    }
}

fn bytes(n: u64) -> String {
    match n {
        n if n < 1 << 10 => format!("{n} B"),
        n if n < 1 << 20 => format!("{:.1} KiB", n as f64 / 1024.0),
        n if n < 1 << 30 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n => format!("{:.1} GiB", n as f64 / (1u64 << 30) as f64),
    }
}

/// The report as text, one section per part.
pub fn format_report(r: &StatusReport) -> String {
    let mut s = String::new();
    let addr_of = |id: &str| r.links.iter().find(|l| l.id == id).map(|l| format!(" {}", l.addr)).unwrap_or_default();
    let neighbour = |n: &Option<String>| match n {
        Some(id) => format!("{}{}", short(id), addr_of(id)),
        None => "none".to_owned(),
    };
    let tables: Vec<String> = HashMethod::ALL.iter().zip(r.items).map(|(m, n)| format!("{} {n}", m.name())).collect();
    s.push_str(&format!("node {}\n", r.id));
    s.push_str(&format!("  address     {}\n", r.addr));
    s.push_str(&format!("  subnet      {}\n", r.subnet));
    s.push_str(&format!("  role        {}\n", if r.seeding { "seeding" } else { "leeching" }));
    s.push_str(&format!("  items       {} ({})\n", r.total_items(), tables.join(", ")));
    s.push_str(&format!("  keys known  {}\n", r.keys));
    s.push_str(&format!("  predecessor {}\n", neighbour(&r.predecessor)));
    s.push_str(&format!("  successor   {}\n", neighbour(&r.successor)));
    s.push_str(&format!("  fingers     {}; successor list {}\n", r.fingers.len(), r.successors.len()));
    if let Some(h) = &r.heal {
        let alone = if h.state == "rejoining" { format!(" for {:.1} s", h.alone_s) } else { String::new() };
        s.push_str(&format!(
            "  heal        {}{alone}; lost peers {}, rejoins {}; item tombstones {}; clock skew {} ms\n",
            h.state, h.lost_peers, h.rejoins, h.item_tombstones, h.clock_skew_ms
        ));
    }
    let more = if r.links_left_out > 0 { format!(", {} more not listed", r.links_left_out) } else { String::new() };
    s.push_str(&format!("links ({}{more}):\n", r.links.len()));
    s.push_str(&format!(
        "  {:<8}  {:<21}  {:<4}  {:<8}  {:<3}  {:>9}  {:>10}  {:>10}\n",
        "id", "address", "kind", "role", "dir", "age", "in", "out"
    ));
    for l in &r.links {
        s.push_str(&format!(
            "  {:<8}  {:<21}  {:<4}  {:<8}  {:<3}  {:>7.1} s  {:>10}  {:>10}\n",
            short(&l.id),
            l.addr,
            kind(l.rs2p),
            if l.seeding { "seeding" } else { "leeching" },
            if l.outgoing { "out" } else { "in" },
            l.age_ms as f64 / 1000.0,
            bytes(l.bytes_in),
            bytes(l.bytes_out),
        ));
    }
    s.push_str(&format!("ring, clockwise from this node ({} nodes):\n", r.ring.len()));
    s.push_str(&format!("  {:<8}  {:<21}  {:<4}  {:>7}  {:>6}\n", "id", "address", "kind", "share", "items"));
    for n in &r.ring {
        let items = n.items.map_or_else(|| "-".to_owned(), |i| i.to_string());
        let me = if n.id == r.id { "  (this node)" } else { "" };
        s.push_str(&format!(
            "  {:<8}  {:<21}  {:<4}  {:>6.2}%  {:>6}{me}\n",
            short(&n.id),
            n.addr,
            kind(n.rs2p),
            n.share * 100.0,
            items
        ));
    }
    s
}
