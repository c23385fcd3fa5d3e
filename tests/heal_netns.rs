//! Heal across a real partition: six `rs2p node` processes on six hosts
//! (Linux network namespaces on one switch, crates/rs2p-test-support/src/netns.rs) are cut
//! 3 | 3 by moving three hosts to another bridge, written to on both sides,
//! and joined again. Nothing is refused while cut (packets are dropped, as
//! when a link fails): each side has to find out by itself, and after the
//! heal the two islands have to find each other and agree on the latest
//! write of every key.
//!
//! Needs root and `ip` (iproute2): skipped otherwise, unless
//! `RS2P_REQUIRE_NETNS=1` (CI), which makes that a failure. Every process
//! is killed and every namespace deleted at the end, also on failure.

use rs2p_test_support as support;

use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use support::cli::*;
use support::netns::{lab_or_skip, Lab};
use support::wait;

/// Budget for each side to drop its links across the cut.
const CUT: Duration = Duration::from_secs(30);
/// How long the ring stays cut.
const SPLIT: Duration = Duration::from_secs(20);
/// Budget, from the heal, for every node to serve the latest writes.
const HEAL: Duration = Duration::from_secs(60);

const SIDE_A: [usize; 3] = [0, 1, 2];
const SIDE_B: [usize; 3] = [3, 4, 5];

/// A fresh directory for the test's files.
fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rs2p-heal-netns-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The ring as the test sees it: host `i` runs `nodes[i]`, and every
/// client goes through the node of its own host. Dropping it kills the
/// nodes and removes `dir`.
struct Ring<'a> {
    lab: &'a Lab,
    nodes: Vec<Node>,
    dir: PathBuf,
    t0: Instant,
}

impl Drop for Ring<'_> {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Ring<'_> {
    /// A line on stdout with the time since the start (`--nocapture`).
    fn step(&self, what: &str) {
        println!("heal_netns: [{:5.1} s] {what}", self.t0.elapsed().as_secs_f64());
    }

    fn client(&self, i: usize, args: &[&str], limit: Duration) -> Run {
        let mut all = args.to_vec();
        all.extend(["--peer", &self.nodes[i].addr]);
        self.lab.rs2p(i, &all, limit)
    }

    fn status(&self, i: usize) -> Result<serde_json::Value, String> {
        status_json(&self.client(i, &["status", "--json", "--timeout", "3"], Duration::from_secs(30)))
    }

    /// Imports `pairs` through host `i` (every key confirmed readable).
    fn import(&self, i: usize, name: &str, pairs: &[(String, String)]) {
        let input = self.dir.join(format!("{name}.tsv"));
        let text: String = pairs.iter().map(|(k, v)| format!("{k}\t{v}\n")).collect();
        std::fs::write(&input, text).unwrap();
        let run = self.client(i, &["import", input.to_str().unwrap(), "--timeout", "60"], Duration::from_secs(120));
        assert_eq!(run.code, Some(0), "import {name} through host {i}: {run:#?}");
    }

    fn del(&self, i: usize, key: &str) {
        self.client(i, &["del", key, "--timeout", "20"], Duration::from_secs(60)).expect_quiet_ok();
    }

    /// `get KEY` through host `i` gives `want` (`None`: exit 1, the CLI's
    /// `error: key not found: KEY`).
    fn reads(&self, i: usize, key: &str, want: Option<&str>) -> Result<(), String> {
        let run = self.client(i, &["get", key, "--timeout", "3"], Duration::from_secs(30));
        run.got(key, want, &format!("host {i}"))
    }

    /// `export` through host `i` lists exactly `want` (sorted lines) among
    /// the test's keys; its `--timeout` is what is left until `deadline`.
    fn exports(&self, i: usize, want: &[String], deadline: Instant) -> Result<(), String> {
        let secs = deadline.saturating_duration_since(Instant::now()).as_secs().clamp(5, 60);
        let run = self.client(i, &["export", "--timeout", &secs.to_string()], Duration::from_secs(secs + 30));
        run.exported(|l| l.starts_with("part-") || l.starts_with("only"), want, &format!("host {i}"))
    }

    /// The hosts of the other side that host `i`'s node has a link to, or
    /// as a neighbour.
    fn across(&self, i: usize) -> Result<Vec<usize>, String> {
        let other = if SIDE_A.contains(&i) { &SIDE_B } else { &SIDE_A };
        let st = self.status(i)?;
        let links = link_ids(&st);
        let (pred, succ) = ring_neighbours(&st);
        Ok(other
            .iter()
            .copied()
            .filter(|&j| {
                let id = &self.nodes[j].id;
                links.contains(id) || pred.as_ref() == Some(id) || succ.as_ref() == Some(id)
            })
            .collect())
    }

    /// Host `i`'s node has dropped every link across the cut.
    fn cut(&self, i: usize) -> Result<(), String> {
        match self.across(i)? {
            across if across.is_empty() => Ok(()),
            across => Err(format!("host {i} still linked to hosts {across:?} across the cut")),
        }
    }
}

/// Polls `f` every 200 ms until `Ok` or `deadline`; the last error.
fn poll(deadline: Instant, f: impl FnMut() -> Result<(), String>) -> Result<(), String> {
    wait::ok_by(deadline, Duration::from_millis(200), f)
}

/// Six hosts, 300 keys; cut 3 | 3 for 20 s while each side writes keys of
/// its own, overwrites shared keys (side B after side A: B's must win) and
/// deletes some; healed, within 60 s every node serves the latest write of
/// every key, keeps both sides' own keys, and reads the deleted keys as
/// not found.
#[test]
fn a_ring_cut_in_two_across_six_hosts_heals_to_the_latest_writes() {
    // Declared first, dropped last: the nodes die before their namespaces.
    let Some(lab) = lab_or_skip("heal_netns", 6) else { return };
    let mut ring = Ring { lab: &lab, nodes: Vec::new(), dir: scratch(), t0: Instant::now() };
    ring.nodes = support::cli::ring(6, |i, first| match first {
        None => lab.start_node(i, &["--join"]),
        Some(seed) => lab.start_node(i, &["--join", "--connect", seed]),
    });
    ring.step(&format!("six nodes up: {:?}", ring.nodes.iter().map(|n| n.addr.as_str()).collect::<Vec<_>>()));
    ring.client(0, &["set", "probe-netns", "linked"], CLIENT_LIMIT).expect_quiet_ok();
    for i in 0..6 {
        wait::until_ok(&format!("probe-netns through host {i}"), SETTLE, || {
            ring.reads(i, "probe-netns", Some("linked"))
        });
    }
    let part = |i: usize| format!("part-{i:03}");
    let first: Vec<(String, String)> = (0..300).map(|i| (part(i), format!("first {i}"))).collect();
    ring.import(0, "first", &first);
    ring.step("ring linked, 300 keys set");

    lab.split(&SIDE_B);
    let split_at = Instant::now();
    for i in 0..6 {
        wait::until_ok(&format!("host {i} to drop its links across the cut"), CUT, || ring.cut(i));
    }
    ring.step("cut: each side dropped its links to the other");

    // Side A first, then side B; each through its own nodes.
    let a_shared: Vec<(String, String)> = (0..50).map(|i| (part(i), format!("A {i}"))).collect();
    let a_own: Vec<(String, String)> = (50..70).map(|i| (part(i), format!("A only {i}"))).collect();
    let a_new: Vec<(String, String)> = (0..20).map(|i| (format!("onlyA-{i:02}"), format!("new on A {i}"))).collect();
    ring.import(1, "a", &[a_shared, a_own.clone(), a_new.clone()].concat());
    for i in 100..105 {
        ring.del(2, &part(i));
    }
    ring.step("side A wrote 90 keys and deleted 5");
    let b_shared: Vec<(String, String)> = (0..50).map(|i| (part(i), format!("B {i}"))).collect();
    let b_own: Vec<(String, String)> = (70..90).map(|i| (part(i), format!("B only {i}"))).collect();
    let b_new: Vec<(String, String)> = (0..20).map(|i| (format!("onlyB-{i:02}"), format!("new on B {i}"))).collect();
    ring.import(4, "b", &[b_shared.clone(), b_own.clone(), b_new.clone()].concat());
    for i in 105..110 {
        ring.del(5, &part(i));
    }
    ring.step("side B wrote 90 keys and deleted 5");
    // Each side reads its own writes: the cut is real.
    ring.reads(0, &part(7), Some("A 7")).unwrap();
    ring.reads(3, &part(7), Some("B 7")).unwrap();
    ring.reads(5, &part(101), Some("first 101")).unwrap();
    ring.reads(1, &part(106), Some("first 106")).unwrap();
    // Held: the cut stays (no link across) until SPLIT has passed.
    while split_at.elapsed() < SPLIT {
        for i in [0, 3] {
            if let Ok(across) = ring.across(i) {
                assert!(across.is_empty(), "host {i} linked to hosts {across:?} across the cut");
            }
        }
        thread::sleep(Duration::from_millis(500).min(SPLIT.saturating_sub(split_at.elapsed())));
    }
    lab.heal();
    let healed = Instant::now();
    let deadline = healed + HEAL;
    ring.step("healed");

    let deleted: Vec<String> = (100..110).map(part).collect();
    let mut latest: Vec<(String, String)> = first.into_iter().filter(|(k, _)| !deleted.contains(k)).collect();
    for (k, v) in b_shared.iter().chain(&a_own).chain(&b_own) {
        latest.iter_mut().find(|(key, _)| key == k).expect("a shared key").1 = v.clone();
    }
    latest.extend(a_new);
    latest.extend(b_new);
    let mut want: Vec<String> = latest.iter().map(|(k, v)| format!("{k}\t{v}")).collect();
    want.sort();

    let mut failures = Vec::new();
    for i in 0..6 {
        if let Err(e) = poll(deadline, || ring.exports(i, &want, deadline)) {
            failures.push(e);
        }
        if let Err(e) = poll(deadline, || deleted.iter().try_for_each(|k| ring.reads(i, k, None))) {
            failures.push(e);
        }
    }
    ring.step(&format!("checked every node ({} failures)", failures.len()));
    assert!(
        failures.is_empty(),
        "{:.1} s after the heal the ring does not serve the latest writes everywhere:\n  {}",
        healed.elapsed().as_secs_f64(),
        failures.join("\n  ")
    );
}
