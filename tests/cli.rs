//! End-to-end tests of the `rs2p` binary: `rs2p node` processes in a ring with
//! a real py2p 0.5.607 node, driven by the `set`/`get`/`del`/`keys` clients.
//!
//! Every test builds its own ring on 127.0.0.1 with OS-chosen ports, so the
//! tests run in parallel without seeing each other. Every child process is
//! owned by a guard that kills it on drop, so a failing test leaves nothing
//! behind. Waiting is always a bounded poll of a condition.

use rs2p_test_support as support;

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::time::Duration;

use serde_json::json;
use support::cli::*;
use support::wait;

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

/// set / get / missing get / fractional timeout / keys / del, through a ring
/// of py2p + two rs2p nodes, writing through one node and reading through another.
#[test]
fn clients_set_get_keys_del_through_a_ring_with_py2p() {
    let mut py = py2p_seeding();
    let a = Node::start(&["--join", "--connect", &py.addr()]);
    let b = Node::start(&["--join", "--connect", &a.addr]);
    py2p_sees_seeding(&mut py, &[&a.id, &b.id]);
    ring_is_linked(&[&a, &b], "probe-1");

    // set through A, get through B: exactly the value and one newline.
    rs2p(&["set", "colour", "deep blue", "--peer", &a.addr]).expect_quiet_ok();
    let r = rs2p(&["get", "colour", "--peer", &b.addr]);
    r.expect_code(0);
    assert_eq!(r.stdout, "deep blue\n", "{r:#?}");
    assert_eq!(r.stderr, "", "{r:#?}");
    // Non-ASCII text comes back byte for byte, through the py2p node too.
    rs2p(&["set", "grüße", "naïve café ☕", "--peer", &b.addr]).expect_quiet_ok();
    let r = rs2p(&["get", "grüße", "--peer", &py.addr(), "--timeout", "1.5"]);
    r.expect_code(0);
    assert_eq!(r.stdout, "naïve café ☕\n", "{r:#?}");

    // A missing key: exit 1, one line on stderr naming the key.
    let r = rs2p(&["get", "no-such-key", "--peer", &b.addr]);
    let msg = r.expect_one_line_error(1);
    assert!(msg.contains("no-such-key") && msg.contains("not found"), "{r:#?}");
    // A fractional --timeout is accepted (not a usage error).
    let r = rs2p(&["get", "no-such-key", "--peer", &a.addr, "--timeout", "0.5"]);
    r.expect_one_line_error(1);
    assert!(r.elapsed < Duration::from_secs(5), "{r:#?}");

    // keys: every set key, one per line.
    rs2p(&["set", "third", "3", "--peer", &b.addr]).expect_quiet_ok();
    let want: BTreeSet<String> = ["probe-1", "colour", "grüße", "third"].iter().map(|s| s.to_string()).collect();
    for node in [&a, &b] {
        let r = wait::until_ok("rs2p keys to list every key", SETTLE, || {
            let r = rs2p(&["keys", "--peer", &node.addr]);
            let got: BTreeSet<String> = r.stdout.lines().map(str::to_owned).collect();
            if r.code == Some(0) && got == want {
                Ok(r)
            } else {
                Err(format!("{r:?}"))
            }
        });
        assert!(r.stdout.ends_with('\n'), "{r:#?}");
        assert_eq!(r.stdout.lines().count(), want.len(), "one key per line, no repeats: {r:#?}");
        assert_eq!(r.stderr, "", "{r:#?}");
    }

    // del through B, then get through A: missing.
    rs2p(&["del", "colour", "--peer", &b.addr]).expect_quiet_ok();
    let r = rs2p(&["get", "colour", "--peer", &a.addr]);
    let msg = r.expect_one_line_error(1);
    assert!(msg.contains("colour"), "{r:#?}");
    // The other keys are untouched.
    let r = rs2p(&["get", "third", "--peer", &a.addr]);
    r.expect_code(0);
    assert_eq!(r.stdout, "3\n");
}

/// `rs2p keys --peer NODE`: the keys listed, or why the run failed.
fn keys_through(node: &Node) -> Result<BTreeSet<String>, String> {
    let r = rs2p(&["keys", "--peer", &node.addr, "--timeout", "5"]);
    if r.code == Some(0) {
        Ok(r.stdout.lines().map(str::to_owned).collect())
    } else {
        Err(format!("{r:?}"))
    }
}

/// Issue 13 C: in a ring of three py2p and two rs2p nodes, keys deleted with
/// `rs2p del` through one rs2p node are listed by `rs2p keys` through neither
/// rs2p node, and stay unlisted while py2p, which never drops a key (D10),
/// announces them again to every client and after every meta exchange.
#[test]
fn deleted_keys_stay_out_of_keys_in_a_ring_with_three_py2p_nodes() {
    let mut py: Vec<_> = (0..3).map(|_| py2p_seeding()).collect();
    for i in 1..3 {
        let port = py[i - 1].port;
        py[i].connect(port);
    }
    let a = Node::start(&["--join", "--connect", &py[0].addr()]);
    let b = Node::start(&["--join", "--connect", &py[2].addr()]);
    for p in &mut py {
        py2p_sees_seeding(p, &[&a.id, &b.id]);
    }
    ring_is_linked(&[&a, &b], "probe-tomb");
    let keys: Vec<String> = (0..10).map(|i| format!("tomb-{i}")).collect();
    for (i, k) in keys.iter().enumerate() {
        rs2p(&["set", k, &format!("value {i}"), "--peer", &a.addr]).expect_quiet_ok();
    }
    let mut all: BTreeSet<String> = keys.iter().cloned().collect();
    all.insert("probe-tomb".to_owned());
    for node in [&a, &b] {
        wait::until_ok(&format!("rs2p keys through {} to list every key", node.addr), SETTLE, || {
            keys_through(node).and_then(|got| if got == all { Ok(()) } else { Err(format!("{got:?}")) })
        });
    }

    // 30 s, not the default 10: py2p sometimes stops reading a link it
    // keeps open (§13 D8/D23); rs2p finds it silent only after the 6 s peer
    // timeout, and the owners it held must be reached another way.
    for k in &keys[..5] {
        rs2p(&["del", k, "--peer", &a.addr, "--timeout", "30"]).expect_quiet_ok();
    }
    let deleted: BTreeSet<String> = keys[..5].iter().cloned().collect();
    let want: BTreeSet<String> = all.difference(&deleted).cloned().collect();
    for node in [&a, &b] {
        let what = format!("rs2p keys through {} to leave out the deleted keys", node.addr);
        wait::until_ok(&what, SETTLE, || {
            keys_through(node).and_then(|got| if got == want { Ok(()) } else { Err(format!("{got:?}")) })
        });
    }
    // And it stays so: py2p announces its keys again on meta exchanges and to
    // every new client. Each run takes a few seconds (it waits for py2p's
    // notifies to settle), so this spans several.
    // Not a retry: every round must pass; each repeats the check with a new
    // client, to which py2p announces its keys (deleted ones too, D10) again.
    for round in 0..3 {
        for node in [&a, &b] {
            let got = keys_through(node).unwrap_or_else(|e| panic!("round {round}: rs2p keys failed: {e}"));
            let back: Vec<&String> = got.intersection(&deleted).collect();
            assert!(back.is_empty(), "round {round}: rs2p keys through {} lists deleted keys {back:?}", node.addr);
            assert_eq!(got, want, "round {round}: rs2p keys through {}", node.addr);
        }
    }
}

/// A value set through py2p is read by `rs2p get`; a value set by `rs2p set`
/// is read by py2p's own get.
#[test]
fn py2p_and_rs2p_read_each_others_values() {
    let mut py = py2p_seeding();
    let a = Node::start(&["--join", "--connect", &py.addr()]);
    py2p_sees_seeding(&mut py, &[&a.id]);

    assert_eq!(py.set("from-py2p", "written by py2p")["ok"], json!(true));
    // py2p's set is fire-and-forget: poll within a budget.
    get_eventually("from-py2p", "written by py2p", &a.addr);
    let r = rs2p(&["get", "from-py2p", "--peer", &a.addr]);
    r.expect_code(0);
    assert_eq!(r.stdout, "written by py2p\n", "{r:#?}");

    rs2p(&["set", "from-rs2p", "written by rs2p", "--peer", &a.addr]).expect_quiet_ok();
    py2p_get_eventually(&mut py, "from-rs2p", "written by rs2p");
    // The rs2p client can also use the py2p node as its entry point.
    let r = rs2p(&["get", "from-rs2p", "--peer", &py.addr()]);
    r.expect_code(0);
    assert_eq!(r.stdout, "written by rs2p\n", "{r:#?}");
}

/// `rs2p set` sends its value again while it is not readable: through a
/// proxy that drops the client's first five stores (a whole set), the set
/// still succeeds, and the value is readable through the node directly.
#[test]
fn set_sends_again_a_value_lost_on_the_way() {
    let a = Node::start(&["--join"]);
    let proxy = StoreDroppingProxy::start(&a.addr, 5);
    let r = rs2p(&["set", "resent", "lost once", "--peer", &proxy.addr, "--timeout", "8"]);
    r.expect_quiet_ok();
    assert_eq!(proxy.dropped(), 5, "the proxy did not drop the first set's five stores");
    let r = rs2p(&["get", "resent", "--peer", &a.addr]);
    r.expect_code(0);
    assert_eq!(r.stdout, "lost once\n", "{r:#?}");
}

/// SIGTERM to a seeding node that holds data: it hands its items over, exits
/// 0, and every key stays readable through the remaining rs2p and py2p nodes.
#[test]
fn sigterm_seeding_node_hands_over_and_keys_stay_readable() {
    let mut py = py2p_seeding();
    let mut a = Node::start(&["--join", "--connect", &py.addr()]);
    let b = Node::start(&["--join", "--connect", &a.addr]);
    let c = Node::start(&["--join", "--connect", &a.addr]);
    py2p_sees_seeding(&mut py, &[&a.id, &b.id, &c.id]);
    ring_is_linked(&[&a, &b, &c], "probe-3");

    // Ten keys, the first four chosen so that A owns at least one of their
    // five items: with random ids A's arc can be empty of 55 random hashes
    // (about one ring in twenty), and the test is about A's handoff.
    let ids = [py.id.as_str(), a.id.as_str(), b.id.as_str(), c.id.as_str()];
    let (mut mine, mut rest) = (Vec::new(), Vec::new());
    for i in 0.. {
        let k = format!("handoff-{i}");
        if items_owned_by(&ids, 1, &k) > 0 && mine.len() < 4 {
            mine.push(k);
        } else if rest.len() < 6 {
            rest.push(k);
        }
        if mine.len() == 4 && rest.len() == 6 {
            break;
        }
    }
    let keys: Vec<(String, String)> =
        mine.into_iter().chain(rest).enumerate().map(|(i, k)| (k, format!("value {i}"))).collect();
    for (i, (k, v)) in keys.iter().enumerate() {
        let via = [&a, &b, &c][i % 3];
        rs2p(&["set", k, v, "--peer", &via.addr]).expect_quiet_ok();
    }

    a.signal("TERM");
    let (code, err) = a.wait_exit(Duration::from_secs(30));
    assert_eq!(code, Some(0), "SIGTERM must end the node with exit 0; stderr:\n{err}");
    assert!(err.contains("rs2p node: shutting down"), "{err}");
    // "handed over N of M items (K not confirmed)": A held data (at least the
    // four keys chosen above) and handed it over.
    let stats = err
        .lines()
        .find_map(|l| l.strip_prefix("rs2p node: handed over "))
        .unwrap_or_else(|| panic!("no handoff summary on stderr:\n{err}"));
    let nums: Vec<u64> =
        stats.split(|c: char| !c.is_ascii_digit()).filter(|s| !s.is_empty()).map(|s| s.parse().unwrap()).collect();
    assert_eq!(nums.len(), 3, "{stats}");
    assert!(nums[1] >= 4, "the leaving node held fewer items than the four keys chosen for it: {stats}");

    // After it left, its keys are readable through the rest of the ring.
    for (k, v) in &keys {
        for node in [&b, &c] {
            get_eventually(k, v, &node.addr);
        }
        py2p_get_eventually(&mut py, k, v);
    }
    // The leaver is gone: it is not an entry point any more.
    let r = rs2p(&["get", "handoff-0", "--peer", &a.addr]);
    assert!(r.expect_one_line_error(3).contains(&a.addr), "{r:#?}");
}

/// SIGINT also means a graceful leave with exit 0; a signal that arrives just
/// after the ready line (while the node is still connecting to its peers) too.
#[test]
fn sigint_and_early_signals_exit_zero() {
    let mut py = py2p_seeding();
    let mut a = Node::start(&["--join", "--connect", &py.addr()]);
    let b = Node::start(&["--join", "--connect", &a.addr]);
    py2p_sees_seeding(&mut py, &[&a.id, &b.id]);
    ring_is_linked(&[&a, &b], "probe-4");
    rs2p(&["set", "survivor", "still here", "--peer", &a.addr]).expect_quiet_ok();

    a.signal("INT");
    let (code, err) = a.wait_exit(Duration::from_secs(30));
    assert_eq!(code, Some(0), "SIGINT must end the node with exit 0; stderr:\n{err}");
    assert!(err.contains("rs2p node: shutting down") && err.contains("handed over"), "{err}");
    get_eventually("survivor", "still here", &b.addr);

    // Signals right after the ready line: seeding and leeching, TERM and INT.
    for (extra, sig) in [("--join", "TERM"), ("--join", "INT"), ("", "TERM"), ("", "INT")] {
        let py_addr = py.addr();
        let mut args = vec!["--connect", &py_addr];
        if !extra.is_empty() {
            args.push(extra);
        }
        let mut n = Node::start(&args);
        n.signal(sig);
        let (code, err) = n.wait_exit(Duration::from_secs(30));
        assert_eq!(code, Some(0), "SIG{sig} just after start ({args:?}) must exit 0; stderr:\n{err}");
    }
}

/// A leeching-only peer offers no seeding node: exit 3 naming that; the
/// leeching node itself stops on SIGTERM with exit 0.
#[test]
fn no_seeding_node_exits_3() {
    let mut leech = Node::start(&[]);
    let r = rs2p(&["get", "k", "--peer", &leech.addr, "--timeout", "0.5"]);
    let msg = r.expect_one_line_error(3);
    assert!(msg.contains("seeding") && msg.contains(&leech.addr), "{r:#?}");
    // It waited for a seeding node for the fractional --timeout, not 0 s or 10 s.
    assert!(r.elapsed >= Duration::from_millis(450) && r.elapsed < Duration::from_secs(5), "{r:#?}");
    leech.signal("TERM");
    let (code, err) = leech.wait_exit(Duration::from_secs(15));
    assert_eq!(code, Some(0), "{err}");
}

/// Every client against a closed port: exit 3 and the address in the one-line message.
#[test]
fn closed_port_exits_3_naming_the_address() {
    let addr = format!("127.0.0.1:{}", closed_port());
    for args in [
        vec!["get", "k", "--peer", &addr],
        vec!["get", "k", "--peer", &addr, "--timeout", "0.5"],
        vec!["set", "k", "v", "--peer", &addr],
        vec!["del", "k", "--peer", &addr],
        vec!["keys", "--peer", &addr],
    ] {
        let r = rs2p(&args);
        let msg = r.expect_one_line_error(3);
        assert!(msg.contains(&addr), "the message must name {addr}: {r:#?}");
    }
}

/// A node whose --connect target is down keeps running and retries with a
/// doubling wait, reporting each failure once; it joins the peer once it is up.
#[test]
fn node_retries_an_unreachable_peer_until_it_is_up() {
    let port = closed_port();
    let addr = format!("127.0.0.1:{port}");
    let mut late = Node::start(&["--join", "--connect", &addr, "--retry-max", "2"]);
    wait::until_ok("two failed attempts reported", SETTLE, || {
        let err = late.stderr.text();
        let n = err.matches(&format!("cannot reach {addr}")).count();
        if n >= 2 && err.contains("retrying in 1 s") && err.contains("retrying in 2 s") {
            Ok(())
        } else {
            Err(err)
        }
    });
    // It keeps running after the failures (a failed --connect is not fatal)...
    let status = late.child.0.try_wait().expect("try_wait on the late node");
    assert!(status.is_none(), "the node exited after failing to reach {addr}: {status:?}\n{}", late.stderr.text());
    // ...and reports each failure once: one "retrying in 1 s", then doubling.
    let err = late.stderr.text();
    assert_eq!(err.matches("retrying in 1 s").count(), 1, "the first wait must be reported once:\n{err}");
    // The peer comes up where it was expected: the node reaches it.
    let peer = Node::start_at(&addr, &["--join"]);
    wait::until_ok("the retry to reach the peer", SETTLE, || {
        let err = late.stderr.text();
        if err.contains(&format!("connected to {addr}")) {
            Ok(())
        } else {
            Err(err)
        }
    });
    ring_is_linked(&[&late, &peer], "late-probe");
}

/// `rs2p node --bind` on a port in use: exit 4, "address already in use".
#[test]
fn node_on_a_port_in_use_exits_4() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().unwrap().to_string();
    let r = rs2p(&["node", "--bind", &addr, "--join"]);
    r.expect_code(4);
    assert_eq!(r.stdout, "", "no ready line when it cannot listen: {r:#?}");
    let last = r.stderr.lines().last().unwrap_or_default();
    assert!(last.starts_with("error: ") && last.contains("address already in use"), "{r:#?}");
    assert!(last.contains(&addr), "{r:#?}");

    // The same when the port is held by another rs2p node.
    let other = Node::start(&["--join"]);
    let r = rs2p(&["node", "--bind", &other.addr]);
    r.expect_code(4);
    assert!(r.stderr.contains("address already in use"), "{r:#?}");
    drop(taken);
}

/// A peer on another subnet: exit 3 with a message about the subnet / handshake,
/// against both an rs2p node and a py2p node. The matching --subnet works.
#[test]
fn wrong_subnet_exits_3() {
    let blue = Node::start(&["--join", "--subnet", "blue"]);
    // Default subnet ("chord") against a "blue" node.
    let r = rs2p(&["get", "k", "--peer", &blue.addr, "--timeout", "2"]);
    let msg = r.expect_one_line_error(3).to_lowercase();
    assert!(msg.contains("subnet") || msg.contains("handshake"), "{r:#?}");
    let r = rs2p(&["set", "k", "v", "--peer", &blue.addr, "--subnet", "red", "--timeout", "2"]);
    let msg = r.expect_one_line_error(3).to_lowercase();
    assert!(msg.contains("subnet") || msg.contains("handshake"), "{r:#?}");
    // The right subnet works.
    rs2p(&["set", "k", "sky", "--peer", &blue.addr, "--subnet", "blue"]).expect_quiet_ok();
    let r = rs2p(&["get", "k", "--peer", &blue.addr, "--subnet", "blue"]);
    r.expect_code(0);
    assert_eq!(r.stdout, "sky\n");

    // A py2p node on the default subnet refuses a "blue" client.
    let py = py2p_seeding();
    let r = rs2p(&["get", "k", "--peer", &py.addr(), "--subnet", "blue", "--timeout", "2"]);
    let msg = r.expect_one_line_error(3).to_lowercase();
    assert!(msg.contains("subnet") || msg.contains("handshake"), "{r:#?}");
}

/// Bad arguments exit 2 with a message on stderr and nothing on stdout;
/// `--help` documents the exit codes.
#[test]
fn bad_arguments_exit_2() {
    let peer = format!("127.0.0.1:{}", closed_port());
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["get", "k", "--peer", &peer, "--timeout", "abc"], "abc"),
        (vec!["get", "k", "--peer", &peer, "--timeout", "0"], "--timeout"),
        (vec!["get", "k", "--peer", &peer, "--timeout=-1"], "--timeout"),
        (vec!["get", "k"], "--peer"),
        (vec!["set", "k", "v"], "--peer"),
        (vec!["del", "k"], "--peer"),
        (vec!["keys"], "--peer"),
        (vec!["set", "k", "--peer", &peer], "VALUE"),
        (vec!["set", "k", "", "--peer", &peer], "del"),
        (vec!["get", "k", "--peer", "no-port-here"], "no-port-here"),
        (vec!["node"], "--bind"),
        (vec!["node", "--bind", "127.0.0.1:notaport"], "notaport"),
        (vec!["node", "--bind", "127.0.0.1:0", "--leave-timeout", "soon"], "soon"),
        (vec!["demo", "--nodes", "0"], "--nodes"),
        (vec!["frobnicate"], "frobnicate"),
        (vec![], "Usage"),
    ];
    for (args, needle) in cases {
        let r = rs2p(&args);
        r.expect_code(2);
        assert_eq!(r.stdout, "", "{r:#?}");
        assert!(r.stderr.starts_with("error: ") || args.is_empty(), "{r:#?}");
        assert!(r.stderr.contains(needle), "stderr should mention {needle:?}: {r:#?}");
    }
    for args in [&["--help"][..], &["get", "--help"], &["node", "--help"]] {
        let r = rs2p(args);
        r.expect_code(0);
        for line in ["Exit codes:", "0  success", "1  get", "2  bad arguments", "3  the peer", "4  cannot listen"] {
            assert!(r.stdout.contains(line), "{args:?} --help lacks {line:?}: {r:#?}");
        }
    }
}

/// `rs2p demo --nodes 4 --keys 20` reads back every key through every node.
#[test]
fn demo_reads_back_everything() {
    let r = rs2p_limit(&["demo", "--nodes", "4", "--keys", "20"], Duration::from_secs(45));
    r.expect_code(0);
    assert!(r.stdout.contains("rs2p demo: a ring of 4 nodes"), "{r:#?}");
    assert!(r.stdout.contains("stored 20 keys; read back 80/80"), "{r:#?}");
}

#[test]
fn import_then_export_round_trips_any_bytes() {
    let a = Node::start(&["--join"]);
    let b = Node::start(&["--join", "--connect", &a.addr]);
    let c = Node::start(&["--join", "--connect", &a.addr]);
    ring_is_linked(&[&a, &b, &c], "probe-import");
    // 300 plain keys, and some whose bytes need escapes.
    let mut lines: Vec<String> = (0..300).map(|i| format!("bulk-{i}\tvalue {i}")).collect();
    lines.push("tab\\there\tnew\\nline\\r".to_owned());
    lines.push("back\\\\slash\tbin\\x00\\xff\\x7f".to_owned());
    lines.push("h\u{e9}llo\t\u{1F600}".to_owned());
    let dir = std::env::temp_dir().join(format!("rs2p-cli-import-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("in.tsv");
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let run = rs2p_limit(&["import", input.to_str().unwrap(), "--peer", &b.addr], Duration::from_secs(120));
    run.expect_code(0);
    assert!(run.stderr.contains("imported 303 keys"), "summary: {}", run.stderr);
    get_eventually("bulk-7", "value 7", &c.addr);
    // A bad line fails the import (exit 1) with its reason, the good ones land.
    std::fs::write(&input, "good-key\tgood\nno tab here\n").unwrap();
    let bad = rs2p_limit(&["import", input.to_str().unwrap(), "--peer", &a.addr], Duration::from_secs(60));
    bad.expect_code(1);
    assert!(bad.stderr.contains("line 2: no TAB"), "{}", bad.stderr);
    lines.push("good-key\tgood".to_owned());

    let run = rs2p_limit(&["export", "--peer", &c.addr], Duration::from_secs(120));
    run.expect_code(0);
    let mut got: Vec<&str> = run.stdout.lines().filter(|l| !l.starts_with("probe-import\t")).collect();
    got.sort();
    let mut want: Vec<&str> = lines.iter().map(String::as_str).collect();
    want.sort();
    assert_eq!(got, want, "export differs from what was imported");
    // The JSON form round-trips too.
    let json = rs2p_limit(&["export", "--peer", &a.addr, "--json"], Duration::from_secs(120));
    json.expect_code(0);
    let bin = json.stdout.lines().find(|l| l.contains("slash")).expect("the binary value is exported");
    assert!(bin.contains("\"value_hex\":\"62696e00ff7f\""), "{bin}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn get_through_a_node_that_lost_its_peers_never_says_not_found() {
    let a = Node::start(&["--join"]);
    let mut b = Node::start(&["--join", "--connect", &a.addr]);
    ring_is_linked(&[&a, &b], "probe-unavailable");
    b.signal("KILL");
    let _ = b.wait_exit(Duration::from_secs(10));
    // a is alone and lost a seeding peer: it cannot tell "missing" from
    // "held by the dead node". Over the wire a client hears no answer (py2p's
    // protocol has no "unavailable"), so the client's get times out.
    for key in ["never-set-key", "probe-unavailable"] {
        let run = rs2p(&["get", key, "--peer", &a.addr, "--timeout", "2"]);
        if run.code == Some(0) {
            assert_eq!(run.stdout, "linked\n", "{run:?}");
            continue;
        }
        let line = run.expect_one_line_error(1);
        assert!(!line.contains("not found"), "a get through a node without its peers said: {line}");
        assert!(line.contains("unavailable") || line.contains("timed out"), "{line}");
    }
}

/// Issue 14: a ring of `--no-key-list` nodes announces no set to every node;
/// `keys` and `export` walk the ring instead (through a default client), and
/// deleted keys leave the walk.
#[test]
fn a_ring_without_the_key_list_lists_and_exports_keys_by_walking() {
    let a = Node::start(&["--join", "--no-key-list"]);
    let b = Node::start(&["--join", "--no-key-list", "--connect", &a.addr]);
    let c = Node::start(&["--join", "--no-key-list", "--connect", &a.addr]);
    let d = Node::start(&["--join", "--no-key-list", "--connect", &b.addr]);
    ring_is_linked(&[&a, &b, &c, &d], "probe-walk");
    let lines: Vec<String> = (0..200).map(|i| format!("walk-{i:03}\tvalue {i}")).collect();
    let dir = std::env::temp_dir().join(format!("rs2p-cli-walk-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("in.tsv");
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    rs2p_limit(&["import", input.to_str().unwrap(), "--peer", &b.addr], Duration::from_secs(120)).expect_code(0);
    let want: BTreeSet<String> = (0..200).map(|i| format!("walk-{i:03}")).collect();
    let listed = |peer: &str| -> BTreeSet<String> {
        let run = rs2p_limit(&["keys", "--peer", peer], Duration::from_secs(60));
        run.expect_code(0);
        run.stdout.lines().filter(|k| !k.starts_with("probe-walk")).map(str::to_owned).collect()
    };
    assert_eq!(listed(&c.addr), want, "keys through c");
    let run = rs2p_limit(&["export", "--peer", &d.addr], Duration::from_secs(120));
    run.expect_code(0);
    let mut got: Vec<&str> = run.stdout.lines().filter(|l| !l.starts_with("probe-walk")).collect();
    got.sort();
    assert_eq!(got, lines.iter().map(String::as_str).collect::<Vec<_>>(), "export by walking");
    for i in 0..10 {
        rs2p(&["del", &format!("walk-{i:03}"), "--peer", &a.addr]).expect_code(0);
    }
    let after: BTreeSet<String> = want.iter().skip(10).cloned().collect();
    wait::until_ok("deleted keys to leave the walk", Duration::from_secs(30), || {
        let l = listed(&b.addr);
        if l == after {
            Ok(())
        } else {
            Err(format!("{} keys listed", l.len()))
        }
    });
    let _ = std::fs::remove_dir_all(&dir);
}

/// `rs2p bench|soak|sim` moved to `rs2p-lab`: the alias says so, and runs
/// `rs2p-lab` when it was built beside `rs2p` (a whole-workspace build).
#[test]
fn lab_commands_say_where_they_moved() {
    let lab = bin().with_file_name(format!("rs2p-lab{}", std::env::consts::EXE_SUFFIX));
    // Without CARGO in its environment the alias does not build rs2p-lab
    // (under `cargo run` it would): it runs the one beside it, or says where it went.
    let mut cmd = rs2p_command(&["sim", "--help"]);
    cmd.env_remove("CARGO");
    let run = run_limit(cmd, "rs2p sim --help".to_owned(), Duration::from_secs(30));
    assert!(run.stderr.contains("moved to `rs2p-lab sim`"), "no word of the move: {}", run.stderr);
    if lab.is_file() {
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        assert!(run.stdout.contains("--churn"), "not rs2p-lab sim's help: {}", run.stdout);
    } else {
        assert_eq!(run.code, Some(2), "{}", run.stderr);
        assert!(run.stderr.contains("cargo run --release -p rs2p-lab"), "{}", run.stderr);
    }
}
