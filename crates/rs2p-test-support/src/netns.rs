//! Hosts on a switch, made of Linux network namespaces, for tests that cut
//! a ring of real processes in two and heal it.
//!
//! A [`Lab`] of N hosts is N + 1 namespaces: one per host, each with a veth
//! (`eth0`, address `10.77.S.i/24`, i = 1..N) whose other end (`hI`) sits
//! in a "switch" namespace holding two bridges, `br0` and `br1`. Every host
//! starts on `br0`; [`Lab::split`] moves some hosts' switch ends to `br1`
//! (the two groups no longer reach each other: packets are dropped, nothing
//! is refused), [`Lab::heal`] moves them back. Nothing is created in the
//! caller's namespace: interface names only need to be unique within their
//! namespace, and namespace names carry the test process's pid and a
//! counter, so parallel tests and test runs do not meet. `S` varies by run
//! as well, though the labs could not see each other anyway.
//!
//! [`Lab::command`] runs a program inside a host (`ip netns exec`, which
//! execs it: the child's pid is the program's); [`Lab::start_node`] and
//! [`Lab::rs2p`] are `Node::start` and `rs2p_limit` there, the node bound
//! to the host's address.
//!
//! Dropping the lab kills whatever still runs in its namespaces (SIGCONT
//! first) and deletes them, which deletes their veths and bridges; that
//! also happens when the test panics (drop the nodes first: declare the lab
//! before them). [`lab_or_skip`] decides whether the test can run at all:
//! it needs root and `ip`; without them it is skipped (with a line saying
//! why), unless `RS2P_REQUIRE_NETNS=1`, which makes that a failure (CI).
//! Namespaces left by a test process that was SIGKILLed are deleted by the
//! next lab.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::cli::{self, Node, Run};

/// Set to `1` to make a missing capability a failure instead of a skip.
pub const REQUIRE_ENV: &str = "RS2P_REQUIRE_NETNS";

/// Every namespace a lab makes starts with this, then the pid.
const PREFIX: &str = "rs2p-t";

static LABS: AtomicUsize = AtomicUsize::new(0);

/// One host: its namespace and address.
#[derive(Debug, Clone)]
pub struct Host {
    /// The network namespace.
    pub ns: String,
    /// Its address on the switch, `10.77.S.i`.
    pub ip: String,
    /// The name of its veth's switch end (in the switch namespace).
    port: String,
}

/// N hosts on one switch (see the module documentation).
#[derive(Debug)]
pub struct Lab {
    pub hosts: Vec<Host>,
    /// The switch namespace.
    switch: String,
    /// Every namespace made so far (deleted on drop).
    made: Vec<String>,
}

/// A lab of `hosts` hosts, or `None` when the test must be skipped: then
/// `test: skipped: <why>` is printed, or, with `RS2P_REQUIRE_NETNS=1`, the
/// test panics with the reason.
pub fn lab_or_skip(test: &str, hosts: usize) -> Option<Lab> {
    match Lab::new(hosts) {
        Ok(lab) => Some(lab),
        Err(why) if std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1") => {
            panic!("{test}: network namespaces are required ({REQUIRE_ENV}=1) but unusable: {why}")
        }
        Err(why) => {
            println!("{test}: skipped: {why}");
            None
        }
    }
}

/// Runs `ip ARGS`; its stderr on failure.
fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run `ip {}`: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("`ip {}` failed ({}): {}", args.join(" "), out.status, String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// Runs `ip ARGS` for its stdout (empty on failure).
fn ip_output(args: &[&str]) -> String {
    Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

impl Lab {
    /// Creates the namespaces, veths and bridges; on any failure removes
    /// what it made and says why.
    pub fn new(hosts: usize) -> Result<Lab, String> {
        assert!((1..=250).contains(&hosts), "1 to 250 hosts");
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return Err("not root (network namespaces need CAP_SYS_ADMIN and CAP_NET_ADMIN)".to_owned());
        }
        match Command::new("ip").arg("-V").stdout(Stdio::null()).stderr(Stdio::null()).status() {
            Ok(s) if s.success() => {}
            Ok(s) => return Err(format!("`ip -V` failed ({s})")),
            Err(e) => return Err(format!("no `ip` command (iproute2): {e}")),
        }
        remove_stale();
        let pid = std::process::id();
        let n = LABS.fetch_add(1, Ordering::Relaxed);
        let subnet = (pid as usize * 7 + n) % 250 + 1;
        let name = |what: &str| format!("{PREFIX}{pid}-{n}-{what}");
        let mut lab = Lab { hosts: Vec::new(), switch: name("sw"), made: Vec::new() };
        // On an error `lab` is dropped, which deletes what was made.
        lab.make_ns(&lab.switch.clone())?;
        let sw = lab.switch.clone();
        for br in ["br0", "br1"] {
            ip(&["-n", &sw, "link", "add", br, "type", "bridge"])?;
            ip(&["-n", &sw, "link", "set", br, "up"])?;
        }
        for i in 1..=hosts {
            let host = Host { ns: name(&format!("h{i}")), ip: format!("10.77.{subnet}.{i}"), port: format!("h{i}") };
            lab.make_ns(&host.ns)?;
            ip(&["link", "add", "eth0", "netns", &host.ns, "type", "veth", "peer", "name", &host.port, "netns", &sw])?;
            ip(&["-n", &sw, "link", "set", &host.port, "master", "br0"])?;
            ip(&["-n", &sw, "link", "set", &host.port, "up"])?;
            ip(&["-n", &host.ns, "addr", "add", &format!("{}/24", host.ip), "dev", "eth0"])?;
            ip(&["-n", &host.ns, "link", "set", "eth0", "up"])?;
            ip(&["-n", &host.ns, "link", "set", "lo", "up"])?;
            lab.hosts.push(host);
        }
        Ok(lab)
    }

    fn make_ns(&mut self, ns: &str) -> Result<(), String> {
        ip(&["netns", "add", ns])?;
        self.made.push(ns.to_owned());
        Ok(())
    }

    /// Moves the switch ends of `hosts` (indices) to the second bridge:
    /// they reach each other, and no longer the rest.
    pub fn split(&self, hosts: &[usize]) {
        for &i in hosts {
            ip(&["-n", &self.switch, "link", "set", &self.hosts[i].port, "master", "br1"]).unwrap();
        }
    }

    /// Every host on the first bridge again.
    pub fn heal(&self) {
        for h in &self.hosts {
            ip(&["-n", &self.switch, "link", "set", &h.port, "master", "br0"]).unwrap();
        }
    }

    /// `PROGRAM` to be run inside host `i`; the caller adds arguments.
    pub fn command(&self, i: usize, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.hosts[i].ns]).arg(program);
        cmd
    }

    /// `rs2p ARGS` inside host `i`, made like `rs2p_command`.
    pub fn rs2p_command(&self, i: usize, args: &[&str]) -> Command {
        cli::rs2p_args(self.command(i, cli::bin()), args)
    }

    /// `rs2p node --bind IP:0 EXTRA...` on host `i`, once its ready line is out.
    pub fn start_node(&self, i: usize, extra: &[&str]) -> Node {
        let bind = format!("{}:0", self.hosts[i].ip);
        let mut args = vec!["node", "--bind", &bind];
        args.extend_from_slice(extra);
        let what = format!("[{}] rs2p {}", self.hosts[i].ns, args.join(" "));
        Node::start_command(self.rs2p_command(i, &args), what, extra)
    }

    /// A client run on host `i`: `rs2p ARGS --bind IP:0` (the client's own
    /// listener on the host's address, so that the address it advertises
    /// is one the ring can reach).
    pub fn rs2p(&self, i: usize, args: &[&str], limit: Duration) -> Run {
        let bind = format!("{}:0", self.hosts[i].ip);
        let mut all = args.to_vec();
        all.extend(["--bind", &bind]);
        let what = format!("[{}] rs2p {}", self.hosts[i].ns, all.join(" "));
        cli::run_limit(self.rs2p_command(i, &all), what, limit)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in self.made.iter().rev() {
            kill_inside(ns);
            let _ = ip(&["netns", "del", ns]);
        }
    }
}

/// SIGCONT, then SIGKILL, to every process still in namespace `ns` (only
/// the lab's own children can be there).
fn kill_inside(ns: &str) {
    for pid in ip_output(&["netns", "pids", ns]).split_whitespace() {
        if pid.parse::<u32>().is_ok() {
            for sig in ["-CONT", "-KILL"] {
                let _ = Command::new("kill").args([sig, pid]).stderr(Stdio::null()).status();
            }
        }
    }
}

/// Deletes the namespaces of labs whose test process is gone (SIGKILLed
/// before its drop could run).
fn remove_stale() {
    for line in ip_output(&["netns", "list"]).lines() {
        let Some(ns) = line.split_whitespace().next() else { continue };
        let Some(pid) = ns.strip_prefix(PREFIX).and_then(|rest| rest.split('-').next()) else { continue };
        if pid.parse::<u32>().is_ok() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            kill_inside(ns);
            let _ = ip(&["netns", "del", ns]);
        }
    }
}
