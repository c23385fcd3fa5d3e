//! The harness for tests that run the `rs2p` binary: child processes killed
//! on drop, drained pipes, client runs, `rs2p node` processes parsed from
//! their ready line, and bounded polling.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rs2p::ring::{distance, get_hashes, U512};
use rs2p::wire::base58;
use serde_json::json;

use crate::py2p_node::Py2pNode;
use crate::wait;

/// Environment variable naming the `rs2p` binary to test (default: the one
/// cargo built beside the running test binary, see [`bin`]).
pub const BIN_ENV: &str = "RS2P_BIN";

/// The `rs2p` binary: `$RS2P_BIN`, else `rs2p` in the directory above the
/// running test executable's (a test is `target/<profile>/deps/<name>-<hash>`,
/// the binary `target/<profile>/rs2p`; cargo builds a package's binaries
/// before running its integration tests). Panics if it is not there.
pub fn bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let path = match std::env::var_os(BIN_ENV) {
            Some(p) => PathBuf::from(p),
            None => {
                let exe = std::env::current_exe().expect("the test executable's path");
                let profile =
                    exe.parent().and_then(Path::parent).expect("the test executable is in target/<profile>/deps");
                profile.join(format!("rs2p{}", std::env::consts::EXE_SUFFIX))
            }
        };
        assert!(path.is_file(), "no rs2p binary at {} (set {BIN_ENV} to one)", path.display());
        path
    })
}

/// Upper bound for one client run (`set`, `get`, ...).
pub const CLIENT_LIMIT: Duration = Duration::from_secs(30);
/// Budget for a ring to link up, or for data to become visible somewhere.
pub const SETTLE: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------

/// A child process that is killed (and reaped) on drop unless it has exited.
pub struct ChildGuard(pub Child);

impl ChildGuard {
    pub fn pid(&self) -> String {
        self.0.id().to_string()
    }

    /// Waits at most `limit` for the child to exit.
    pub fn wait_for_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
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
pub struct Drain {
    pub buf: Arc<Mutex<Vec<u8>>>,
    pub thread: Option<JoinHandle<()>>,
}

impl Drain {
    pub fn new(mut pipe: impl Read + Send + 'static) -> Drain {
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
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.buf.lock().unwrap()).into_owned()
    }

    /// Everything, once the writer has closed the pipe (the process exited).
    pub fn finish(&mut self) -> String {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.text()
    }
}

/// The outcome of one finished `rs2p` run.
#[derive(Debug)]
pub struct Run {
    pub what: String,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Run {
    /// For a `get KEY` run: Ok if it printed `want` (exit 0), or for
    /// `None` said the CLI's `error: key not found: KEY` (exit 1); else why
    /// not, naming `through` (the peer or host asked).
    pub fn got(&self, key: &str, want: Option<&str>, through: &str) -> Result<(), String> {
        let ok = match want {
            Some(v) => self.code == Some(0) && self.stdout == format!("{v}\n"),
            None => {
                self.code == Some(1)
                    && self.stdout.is_empty()
                    && self.stderr == format!("error: key not found: {key}\n")
            }
        };
        if ok {
            return Ok(());
        }
        Err(format!(
            "get {key} through {through}: want {want:?}, got exit {:?}, stdout {:?}, stderr {:?}",
            self.code, self.stdout, self.stderr
        ))
    }

    /// For an `export` run: Ok if it exited 0 and its lines that `keep`
    /// selects are exactly `want` (sorted); else what is missing or extra,
    /// naming `through`.
    pub fn exported(&self, keep: impl Fn(&str) -> bool, want: &[String], through: &str) -> Result<(), String> {
        let mut got: Vec<&str> = self.stdout.lines().filter(|l| keep(l)).collect();
        got.sort();
        if self.code == Some(0) && got == want {
            return Ok(());
        }
        let got_set: BTreeSet<&str> = got.iter().copied().collect();
        let want_set: BTreeSet<&str> = want.iter().map(String::as_str).collect();
        let missing: Vec<&&str> = want_set.difference(&got_set).collect();
        let extra: Vec<&&str> = got_set.difference(&want_set).collect();
        Err(format!(
            "export through {through}: exit {:?}; {} of {} lines missing or wrong (first {:?}), {} unexpected \
             (first {:?}); last stderr line {:?}",
            self.code,
            missing.len(),
            want.len(),
            missing.first(),
            extra.len(),
            extra.first(),
            self.stderr.lines().last().unwrap_or("")
        ))
    }

    /// Asserts the exit code, with the whole run in the message.
    pub fn expect_code(&self, code: i32) -> &Run {
        assert_eq!(self.code, Some(code), "unexpected exit code for {self:#?}");
        self
    }

    /// Asserts a failure reported as exactly one line on stderr, nothing on stdout.
    pub fn expect_one_line_error(&self, code: i32) -> &str {
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
    pub fn expect_quiet_ok(&self) {
        self.expect_code(0);
        assert_eq!(self.stdout, "", "{self:#?}");
        assert_eq!(self.stderr, "", "{self:#?}");
    }
}

/// A `Command` for the binary with a clean, predictable environment.
pub fn rs2p_command(args: &[&str]) -> Command {
    rs2p_args(Command::new(bin()), args)
}

/// `cmd` (the binary, or a wrapper that runs it) given `args`, with the
/// environment and pipes of [`rs2p_command`].
pub fn rs2p_args(mut cmd: Command, args: &[&str]) -> Command {
    cmd.args(args)
        .env_remove("RUST_LOG")
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

pub fn assert_no_panic(what: &str, stderr: &str) {
    assert!(!stderr.contains("panicked"), "`{what}` panicked; stderr:\n{stderr}");
}

/// Runs `rs2p ARGS` to completion (killed, and the test failed, after `limit`).
pub fn rs2p_limit(args: &[&str], limit: Duration) -> Run {
    run_limit(rs2p_command(args), format!("rs2p {}", args.join(" ")), limit)
}

/// Runs `cmd` (made like [`rs2p_command`]: both outputs piped) to completion,
/// described as `what`; killed, and the test failed, after `limit`.
pub fn run_limit(mut cmd: Command, what: String, limit: Duration) -> Run {
    let start = Instant::now();
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn `{what}`: {e}"));
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

pub fn rs2p(args: &[&str]) -> Run {
    rs2p_limit(args, CLIENT_LIMIT)
}

/// A running `rs2p node`, killed on drop. Its stderr is checked for panics on
/// drop (unless the test is already failing).
pub struct Node {
    /// As printed in the ready line.
    pub id: String,
    /// `127.0.0.1:PORT` it listens on.
    pub addr: String,
    pub stderr: Drain,
    pub _stdout: Drain,
    pub child: ChildGuard,
}

impl Node {
    /// `rs2p node --bind 127.0.0.1:0 EXTRA...`; returns once the ready line is out.
    pub fn start(extra: &[&str]) -> Node {
        Node::start_at("127.0.0.1:0", extra)
    }

    /// `rs2p node --bind BIND EXTRA...` (a fixed port, to restart a node where it was).
    pub fn start_at(bind: &str, extra: &[&str]) -> Node {
        let mut args = vec!["node", "--bind", bind];
        args.extend_from_slice(extra);
        Node::start_command(rs2p_command(&args), format!("rs2p {}", args.join(" ")), extra)
    }

    /// Starts `cmd`, an `rs2p node ... EXTRA...` made like [`rs2p_command`]
    /// (e.g. run in a network namespace), described as `what`; returns once
    /// the ready line is out.
    pub fn start_command(mut cmd: Command, what: String, extra: &[&str]) -> Node {
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn `{what}`: {e}"));
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
            // The reader itself, not its inner pipe: lines it already buffered stay.
            reader
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
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill").args([format!("-{sig}"), self.child.pid()]).status().expect("run kill");
        assert!(status.success(), "kill -{sig} {} failed", self.child.pid());
    }

    /// `kill -STOP`s the node; the guard sends `kill -CONT` when resumed or
    /// dropped (so a test that fails while the node is stopped lets it run
    /// again before its own guard kills it).
    pub fn pause(&self) -> Paused<'_> {
        self.signal("STOP");
        Paused { node: self, since: Instant::now(), resumed: false }
    }

    /// Waits for the node to exit and returns its exit code and whole stderr.
    pub fn wait_exit(&mut self, limit: Duration) -> (Option<i32>, String) {
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

/// A node stopped with SIGSTOP (see [`Node::pause`]); SIGCONT on drop.
pub struct Paused<'a> {
    pub node: &'a Node,
    /// When the node was stopped.
    pub since: Instant,
    resumed: bool,
}

impl Paused<'_> {
    /// Sends SIGCONT; returns when it was sent.
    pub fn resume(mut self) -> Instant {
        self.node.signal("CONT");
        self.resumed = true;
        Instant::now()
    }
}

impl Drop for Paused<'_> {
    fn drop(&mut self) {
        if !self.resumed {
            // No assert here: this may run while a test is already panicking.
            let _ = Command::new("kill").args(["-CONT".to_owned(), self.node.child.pid()]).status();
        }
    }
}

/// `rs2p node <ID> listening on <ADDR> (advertised ..., subnet ..., seeding|leeching)`,
/// ADDR an IPv4 `HOST:PORT` with a port other than 0.
pub fn parse_ready_line(line: &str) -> Option<(String, String)> {
    let rest = line.strip_suffix('\n')?.strip_prefix("rs2p node ")?;
    let (id, rest) = rest.split_once(" listening on ")?;
    let (addr, rest) = rest.split_once(" (")?;
    if id.is_empty() || id.contains(' ') || !rest.ends_with(')') {
        return None;
    }
    let (host, port) = addr.split_once(':')?;
    host.parse::<std::net::Ipv4Addr>().ok()?;
    let port: u16 = port.parse().ok()?;
    (port != 0).then(|| (id.to_owned(), addr.to_owned()))
}

// ---------------------------------------------------------------------------
// Status
// ---------------------------------------------------------------------------

/// The JSON object a `rs2p status --json` run printed.
pub fn status_json(run: &Run) -> Result<serde_json::Value, String> {
    if run.code != Some(0) {
        return Err(format!("`{}`: exit {:?}: {}", run.what, run.code, run.stderr.trim_end()));
    }
    serde_json::from_str(&run.stdout).map_err(|e| format!("`{}` printed no JSON ({e}): {}", run.what, run.stdout))
}

/// The ids of a status report's handshaken links (`links[].id`; the
/// first is the asking client's own).
pub fn link_ids(status: &serde_json::Value) -> BTreeSet<String> {
    status["links"].as_array().into_iter().flatten().filter_map(|l| l["id"].as_str()).map(str::to_owned).collect()
}

/// A status report's `predecessor` and `successor` ids (null: none linked).
pub fn ring_neighbours(status: &serde_json::Value) -> (Option<String>, Option<String>) {
    let id = |k: &str| status[k].as_str().map(str::to_owned);
    (id("predecessor"), id("successor"))
}

// ---------------------------------------------------------------------------
// Waiting
// ---------------------------------------------------------------------------

/// `rs2p get KEY --peer PEER` until it prints exactly `VALUE\n`.
pub fn get_eventually(key: &str, value: &str, peer: &str) {
    wait::until_ok(&format!("rs2p get {key} --peer {peer}"), SETTLE, || {
        let r = rs2p(&["get", key, "--peer", peer, "--timeout", "2"]);
        if r.code == Some(0) && r.stdout == format!("{value}\n") {
            Ok(())
        } else {
            Err(format!("{r:?}"))
        }
    });
}

/// py2p's `get` until it returns `value` (py2p links may drop under load, D24).
pub fn py2p_get_eventually(py: &mut Py2pNode, key: &str, value: &str) {
    wait::until_ok(&format!("py2p get {key}"), SETTLE, || match py.get(key, 2.0) {
        Ok(v) if v == value => Ok(()),
        other => Err(format!("{other:?}")),
    });
}

/// Waits until py2p counts every node in `ids` as seeding.
pub fn py2p_sees_seeding(py: &mut Py2pNode, ids: &[&str]) {
    wait::until_ok("py2p to see every rs2p node as seeding", SETTLE, || {
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
pub fn ring_is_linked(nodes: &[&Node], probe: &str) {
    rs2p(&["set", probe, "linked", "--peer", &nodes[0].addr]).expect_quiet_ok();
    for n in nodes {
        get_eventually(probe, "linked", &n.addr);
    }
}

/// How many of `key`'s five items the node `ids[who]` owns in a ring of
/// exactly the seeding nodes `ids` (the owner of a hash is the nearest node
/// at or before it).
pub fn items_owned_by(ids: &[&str], who: usize, key: &str) -> usize {
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
pub fn py2p_seeding() -> Py2pNode {
    let mut py = Py2pNode::start("chord", None);
    assert_eq!(py.cmd(json!({"op": "join"}))["ok"], json!(true));
    py
}

// ---------------------------------------------------------------------------
// Rings of processes
// ---------------------------------------------------------------------------

/// `n` nodes started one after the other: node 0 by `start(0, None)`, every
/// other one by `start(i, Some(ADDR))`, ADDR the first node's address (for
/// its `--connect`). Returns them in that order; callers check the ring is
/// linked (e.g. [`ring_is_linked`]).
pub fn ring(n: usize, mut start: impl FnMut(usize, Option<&str>) -> Node) -> Vec<Node> {
    let mut nodes = Vec::with_capacity(n);
    let mut first: Option<String> = None;
    for i in 0..n {
        let node = start(i, first.as_deref());
        first.get_or_insert_with(|| node.addr.clone());
        nodes.push(node);
    }
    nodes
}

/// [`ring`] of `n` plain `rs2p node --join` on 127.0.0.1, each but the first
/// with `--connect FIRST`.
pub fn joined_ring(n: usize) -> Vec<Node> {
    ring(n, |_, first| match first {
        None => Node::start(&["--join"]),
        Some(addr) => Node::start(&["--join", "--connect", addr]),
    })
}

/// A TCP proxy for one connection that drops the first `drop` store frames
/// going from the client to `target` (and passes everything else through).
pub struct StoreDroppingProxy {
    /// `127.0.0.1:PORT` to give the client.
    pub addr: String,
    pub dropped: Arc<Mutex<usize>>,
}

impl StoreDroppingProxy {
    pub fn start(target: &str, drop: usize) -> StoreDroppingProxy {
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
                // rs2p peers exchange uncompressed frames, whispers with an empty id.
                let is_store = rs2p::wire::Message::decode_body_ext(&body, &[], 1 << 24, true)
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

    pub fn dropped(&self) -> usize {
        *self.dropped.lock().unwrap()
    }
}

/// A port on 127.0.0.1 nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().unwrap().port()
}
