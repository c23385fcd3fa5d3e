//! End-to-end tests of the `rs2p` binary: `rs2p node` processes in a ring with
//! a real py2p 0.5.607 node, driven by the `set`/`get`/`del`/`keys` clients.
//!
//! Every test builds its own ring on 127.0.0.1 with OS-chosen ports, so the
//! tests run in parallel without seeing each other. Every child process is
//! owned by a guard that kills it on drop, so a failing test leaves nothing
//! behind. Waiting is always a bounded poll of a condition.

mod support;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rs2p::ring::{distance, get_hashes, U512};
use rs2p::wire::base58;
use serde_json::json;
use support::py2p_node::Py2pNode;

const BIN: &str = env!("CARGO_BIN_EXE_rs2p");

/// Upper bound for one client run (`set`, `get`, ...).
const CLIENT_LIMIT: Duration = Duration::from_secs(30);
/// Budget for a ring to link up, or for data to become visible somewhere.
const SETTLE: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------

/// A child process that is killed (and reaped) on drop unless it has exited.
struct ChildGuard(Child);

impl ChildGuard {
    fn pid(&self) -> String {
        self.0.id().to_string()
    }

    /// Waits at most `limit` for the child to exit.
    fn wait_for_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            match self.0.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() >= deadline => return None,
                Ok(None) => thread::sleep(Duration::from_millis(5)),
                Err(e) => panic!("waiting for pid {}: {e}", self.0.id()),
            }
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if !matches!(self.0.try_wait(), Ok(Some(_))) {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

/// A pipe drained on its own thread into a shared buffer.
struct Drain {
    buf: Arc<Mutex<Vec<u8>>>,
    thread: Option<JoinHandle<()>>,
}

impl Drain {
    fn new(mut pipe: impl Read + Send + 'static) -> Drain {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&buf);
        let thread = thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            loop {
                match pipe.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => sink.lock().unwrap().extend_from_slice(&chunk[..n]),
                }
            }
        });
        Drain { buf, thread: Some(thread) }
    }

    /// What has arrived so far.
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.buf.lock().unwrap()).into_owned()
    }

    /// Everything, once the writer has closed the pipe (the process exited).
    fn finish(&mut self) -> String {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.text()
    }
}

/// The outcome of one finished `rs2p` run.
#[derive(Debug)]
struct Run {
    what: String,
    code: Option<i32>,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

impl Run {
    /// Asserts the exit code, with the whole run in the message.
    fn expect_code(&self, code: i32) -> &Run {
        assert_eq!(self.code, Some(code), "unexpected exit code for {self:#?}");
        self
    }

    /// Asserts a failure reported as exactly one line on stderr, nothing on stdout.
    fn expect_one_line_error(&self, code: i32) -> &str {
        self.expect_code(code);
        assert_eq!(self.stdout, "", "a failure must print nothing on stdout: {self:#?}");
        assert!(
            self.stderr.ends_with('\n') && self.stderr.lines().count() == 1,
            "expected a single line on stderr: {self:#?}"
        );
        assert!(self.stderr.starts_with("error: "), "{self:#?}");
        self.stderr.trim_end()
    }

    /// Asserts a silent success.
    fn expect_quiet_ok(&self) {
        self.expect_code(0);
        assert_eq!(self.stdout, "", "{self:#?}");
        assert_eq!(self.stderr, "", "{self:#?}");
    }
}

/// A `Command` for the binary with a clean, predictable environment.
fn rs2p_command(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("RUST_LOG")
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn assert_no_panic(what: &str, stderr: &str) {
    assert!(!stderr.contains("panicked"), "`{what}` panicked; stderr:\n{stderr}");
}

/// Runs `rs2p ARGS` to completion (killed, and the test failed, after `limit`).
fn rs2p_limit(args: &[&str], limit: Duration) -> Run {
    let what = format!("rs2p {}", args.join(" "));
    let start = Instant::now();
    let mut child = rs2p_command(args).spawn().unwrap_or_else(|e| panic!("spawn `{what}`: {e}"));
    let mut out = Drain::new(child.stdout.take().expect("stdout"));
    let mut err = Drain::new(child.stderr.take().expect("stderr"));
    let mut guard = ChildGuard(child);
    let Some(status) = guard.wait_for_exit(limit) else {
        drop(guard); // kill it; the pipes close
        panic!("`{what}` did not exit within {limit:?}; stderr:\n{}", err.finish());
    };
    let elapsed = start.elapsed();
    let run = Run { what, code: status.code(), stdout: out.finish(), stderr: err.finish(), elapsed };
    assert_no_panic(&run.what, &run.stderr);
    assert_no_panic(&run.what, &run.stdout);
    run
}

fn rs2p(args: &[&str]) -> Run {
    rs2p_limit(args, CLIENT_LIMIT)
}

/// A running `rs2p node`, killed on drop. Its stderr is checked for panics on
/// drop (unless the test is already failing).
struct Node {
    /// As printed in the ready line.
    id: String,
    /// `127.0.0.1:PORT` it listens on.
    addr: String,
    stderr: Drain,
    _stdout: Drain,
    child: ChildGuard,
}

impl Node {
    /// `rs2p node --bind 127.0.0.1:0 EXTRA...`; returns once the ready line is out.
    fn start(extra: &[&str]) -> Node {
        let mut args = vec!["node", "--bind", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        let what = format!("rs2p {}", args.join(" "));
        let mut child = rs2p_command(&args).spawn().unwrap_or_else(|e| panic!("spawn `{what}`: {e}"));
        let stdout = child.stdout.take().expect("stdout");
        let stderr = Drain::new(child.stderr.take().expect("stderr"));
        let guard = ChildGuard(child);
        // The first stdout line goes through a channel, the rest is drained.
        let (tx, rx) = mpsc::channel();
        let mut reader = BufReader::new(stdout);
        let first = thread::spawn(move || {
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let _ = tx.send(line);
            reader.into_inner()
        });
        let line = match rx.recv_timeout(Duration::from_secs(15)) {
            Ok(line) if !line.is_empty() => line,
            _ => panic!("`{what}` printed no ready line; stderr:\n{}", stderr.text()),
        };
        let rest = first.join().expect("stdout reader");
        let (id, addr) =
            parse_ready_line(&line).unwrap_or_else(|| panic!("`{what}` printed an unexpected ready line: {line:?}"));
        let subnet = extra.iter().position(|a| *a == "--subnet").map_or("chord", |i| extra[i + 1]);
        let role = if extra.contains(&"--join") { "seeding" } else { "leeching" };
        assert!(
            line.ends_with(&format!(", subnet {subnet}, {role})\n")),
            "ready line does not state subnet {subnet} and {role}: {line:?}"
        );
        assert!(line.contains(&format!("(advertised {addr},")), "{line:?}");
        Node { id, addr, stderr, _stdout: Drain::new(rest), child: guard }
    }

    /// Sends a signal with the `kill` utility.
    fn signal(&self, sig: &str) {
        let status = Command::new("kill").args([format!("-{sig}"), self.child.pid()]).status().expect("run kill");
        assert!(status.success(), "kill -{sig} {} failed", self.child.pid());
    }

    /// Waits for the node to exit and returns its exit code and whole stderr.
    fn wait_exit(&mut self, limit: Duration) -> (Option<i32>, String) {
        match self.child.wait_for_exit(limit) {
            Some(status) => {
                let err = self.stderr.finish();
                assert_no_panic("rs2p node", &err);
                (status.code(), err)
            }
            None => panic!("node {} did not exit within {limit:?}; stderr:\n{}", self.addr, self.stderr.text()),
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if !matches!(self.child.0.try_wait(), Ok(Some(_))) {
            let _ = self.child.0.kill();
        }
        let _ = self.child.0.wait();
        let err = self.stderr.finish();
        if !thread::panicking() {
            assert_no_panic("rs2p node", &err);
        }
    }
}

/// `rs2p node <ID> listening on <ADDR> (advertised ..., subnet ..., seeding|leeching)`
fn parse_ready_line(line: &str) -> Option<(String, String)> {
    let rest = line.strip_suffix('\n')?.strip_prefix("rs2p node ")?;
    let (id, rest) = rest.split_once(" listening on ")?;
    let (addr, rest) = rest.split_once(" (")?;
    if id.is_empty() || id.contains(' ') || !rest.ends_with(')') {
        return None;
    }
    let port: u16 = addr.strip_prefix("127.0.0.1:")?.parse().ok()?;
    (port != 0).then(|| (id.to_owned(), addr.to_owned()))
}

// ---------------------------------------------------------------------------
// Waiting
// ---------------------------------------------------------------------------

/// Polls `f` until it returns `Ok`, for at most `budget`.
fn eventually<T>(what: &str, budget: Duration, mut f: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + budget;
    loop {
        match f() {
            Ok(v) => return v,
            Err(last) if Instant::now() >= deadline => {
                panic!("{what}: still not true after {budget:?}; last attempt: {last}")
            }
            Err(_) => thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// `rs2p get KEY --peer PEER` until it prints exactly `VALUE\n`.
fn get_eventually(key: &str, value: &str, peer: &str) {
    eventually(&format!("rs2p get {key} --peer {peer}"), SETTLE, || {
        let r = rs2p(&["get", key, "--peer", peer, "--timeout", "2"]);
        if r.code == Some(0) && r.stdout == format!("{value}\n") {
            Ok(())
        } else {
            Err(format!("{r:?}"))
        }
    });
}

/// py2p's `get` until it returns `value` (py2p links may drop under load, D24).
fn py2p_get_eventually(py: &mut Py2pNode, key: &str, value: &str) {
    eventually(&format!("py2p get {key}"), SETTLE, || match py.get(key, 2.0) {
        Ok(v) if v == value => Ok(()),
        other => Err(format!("{other:?}")),
    });
}

/// Waits until py2p counts every node in `ids` as seeding.
fn py2p_sees_seeding(py: &mut Py2pNode, ids: &[&str]) {
    eventually("py2p to see every rs2p node as seeding", SETTLE, || {
        let peers = py.peers();
        let seeding: BTreeSet<&str> =
            peers["seeding"].as_array().into_iter().flatten().filter_map(|v| v.as_str()).collect();
        if ids.iter().all(|id| seeding.contains(id)) {
            Ok(())
        } else {
            Err(format!("py2p peers: {peers}"))
        }
    });
}

/// Stores a probe key through the first node and waits until every node
/// serves it: the ring is linked.
fn ring_is_linked(nodes: &[&Node], probe: &str) {
    rs2p(&["set", probe, "linked", "--peer", &nodes[0].addr]).expect_quiet_ok();
    for n in nodes {
        get_eventually(probe, "linked", &n.addr);
    }
}

/// How many of `key`'s five items the node `ids[who]` owns in a ring of
/// exactly the seeding nodes `ids` (the owner of a hash is the nearest node
/// at or before it).
fn items_owned_by(ids: &[&str], who: usize, key: &str) -> usize {
    let values: Vec<U512> = ids.iter().map(|id| base58::decode(id.as_bytes()).expect("node id is base58")).collect();
    get_hashes(key.as_bytes())
        .iter()
        .filter(|h| {
            let owner = (0..values.len()).min_by_key(|&i| distance(&values[i], h)).expect("ids");
            owner == who
        })
        .count()
}

/// A started py2p chord node that seeds (`join`).
fn py2p_seeding() -> Py2pNode {
    let mut py = Py2pNode::start("chord", None);
    assert_eq!(py.cmd(json!({"op": "join"}))["ok"], json!(true));
    py
}

/// A TCP proxy for one connection that drops the first `drop` store frames
/// going from the client to `target` (and passes everything else through).
struct StoreDroppingProxy {
    /// `127.0.0.1:PORT` to give the client.
    addr: String,
    dropped: Arc<Mutex<usize>>,
}

impl StoreDroppingProxy {
    fn start(target: &str, drop: usize) -> StoreDroppingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let addr = listener.local_addr().unwrap().to_string();
        let dropped = Arc::new(Mutex::new(0));
        let (target, count) = (target.to_owned(), Arc::clone(&dropped));
        thread::spawn(move || {
            let Ok((client, _)) = listener.accept() else { return };
            let Ok(node) = std::net::TcpStream::connect(&target) else { return };
            let (mut client_r, mut node_w) = (client.try_clone().unwrap(), node.try_clone().unwrap());
            let (mut node_r, mut client_w) = (node, client);
            thread::spawn(move || {
                let _ = std::io::copy(&mut node_r, &mut client_w);
                let _ = client_w.shutdown(std::net::Shutdown::Both);
            });
            // Client to node, frame by frame: [4-byte length][body].
            loop {
                let mut len = [0u8; 4];
                if client_r.read_exact(&mut len).is_err() {
                    break;
                }
                let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
                if client_r.read_exact(&mut body).is_err() {
                    break;
                }
                // rs2p peers exchange uncompressed frames.
                let is_store = rs2p::wire::Message::decode_body(&body, &[], 1 << 24)
                    .is_ok_and(|m| m.payload.first().map(|p| p.as_ref()) == Some(&[rs2p::wire::flags::STORE][..]));
                let drop_it = is_store && {
                    let mut n = count.lock().unwrap();
                    let under = *n < drop;
                    if under {
                        *n += 1;
                    }
                    under
                };
                if drop_it {
                    continue;
                }
                if std::io::Write::write_all(&mut node_w, &len).is_err()
                    || std::io::Write::write_all(&mut node_w, &body).is_err()
                {
                    break;
                }
            }
            let _ = node_w.shutdown(std::net::Shutdown::Both);
        });
        StoreDroppingProxy { addr, dropped }
    }

    fn dropped(&self) -> usize {
        *self.dropped.lock().unwrap()
    }
}

/// A port on 127.0.0.1 nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().unwrap().port()
}

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
        let r = eventually("rs2p keys to list every key", SETTLE, || {
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
    // A node whose only --connect target is closed gives up with exit 3.
    let r = rs2p(&["node", "--bind", "127.0.0.1:0", "--connect", &addr]);
    r.expect_code(3);
    assert!(r.stderr.contains(&addr), "{r:#?}");
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
