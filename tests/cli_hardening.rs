//! Hardening of a real `rs2p node` process, driven through the CLI.
//!
//! 1,024 connections that never handshake (py2p's default connection limit,
//! and ours) used to fill the node's table for good and lock every honest
//! peer out. Now a newcomer takes the slot of the oldest unfinished
//! handshake at once, and the silent connections are closed at the
//! handshake deadline (5 s).

use rs2p_test_support as support;

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use support::cli::*;

/// The node's handshake deadline (`Config::handshake_timeout_ms`).
const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(5);
/// Slack for a loaded machine.
const MARGIN: Duration = Duration::from_secs(10);

/// A TCP connection to `to` from the loopback address `source` (any
/// 127.x.y.z works on Linux), so that the node sees many hosts.
fn silent_from(source: [u8; 4], to: SocketAddr) -> TcpStream {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    sock.bind(&SocketAddr::from((source, 0)).into()).expect("bind a loopback source address");
    sock.connect(&to.into()).expect("connect to the node");
    sock.into()
}

#[test]
fn a_thousand_silent_connections_do_not_lock_out_an_honest_client() {
    let node = Node::start(&["--join"]);
    rs2p(&["set", "hardening/key", "still served", "--peer", &node.addr]).expect_quiet_ok();
    let to: SocketAddr = node.addr.parse().unwrap();
    // 64 sources of 16 connections: within the per-source cap, so all 1,024
    // stay open until the deadline and fill the table.
    let mut silent = Vec::with_capacity(1024);
    let opened = Instant::now();
    for i in 0..1024u32 {
        let source = [127, 0, 5, 1 + (i / 16) as u8];
        silent.push(silent_from(source, to));
    }
    let get =
        rs2p_limit(&["get", "hardening/key", "--peer", &node.addr, "--timeout", "5"], HANDSHAKE_DEADLINE + MARGIN);
    get.expect_code(0);
    assert_eq!(get.stdout, "still served\n", "{get:#?}");
    eprintln!("get through a node holding 1,024 silent connections: {:?}", get.elapsed);

    // Every silent connection is closed by the node by the deadline (plus
    // slack): either to make room, or as late.
    let budget = HANDSHAKE_DEADLINE + MARGIN;
    let mut buf = [0u8; 4096];
    for (i, s) in silent.iter_mut().enumerate() {
        loop {
            let left = budget.saturating_sub(opened.elapsed()).max(Duration::from_millis(1));
            s.set_read_timeout(Some(left)).unwrap();
            match s.read(&mut buf) {
                Ok(0) => break,
                // The node's greeting (handshake, meta) comes first.
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
                Err(e) => panic!("silent connection {i} still open {:?} after it opened: {e}", opened.elapsed()),
            }
        }
    }
    eprintln!("all 1,024 silent connections closed {:?} after they opened", opened.elapsed());
    // And the node keeps serving.
    get_eventually("hardening/key", "still served", &node.addr);
}
