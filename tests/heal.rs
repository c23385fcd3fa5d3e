//! Heal, with real processes: a node stopped (SIGSTOP) for longer than the
//! peer timeout, while the rest of the ring overwrites and deletes keys,
//! comes back into the ring once resumed and serves the latest writes; and
//! the bulk clients end by their `--timeout` when the ring stops answering.
//!
//! Every node is an `rs2p node` process on 127.0.0.1 (ephemeral ports) owned
//! by a guard that kills it on drop; a stopped node's [`Paused`] guard sends
//! SIGCONT first, also when a test fails. Waits are bounded polls of the
//! clients (`rs2p status --json`, `get`, `export`); the pause itself is held
//! for [`PAUSE`] while polling that the node stays cut off.

use rs2p_test_support as support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::cli::*;
use support::wait;

/// How long a node is kept stopped: twice the 6 s after which its peers
/// close the links of a peer that answers no keepalive.
const PAUSE: Duration = Duration::from_secs(12);
/// Budget for the stopped node's peers to drop their links to it.
const CUT: Duration = Duration::from_secs(30);
/// Budget, from SIGCONT, for the resumed node to be back in the ring and
/// serve the latest writes.
const REJOIN: Duration = Duration::from_secs(45);

/// A fresh directory for a test's files, removed on drop (also on failure).
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("rs2p-heal-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `KEY<TAB>VALUE` lines, as import reads and export prints them.
fn tsv(pairs: &[(String, String)]) -> String {
    pairs.iter().map(|(k, v)| format!("{k}\t{v}\n")).collect()
}

/// Imports `pairs` through `peer` (every key confirmed readable).
fn import(dir: &Path, name: &str, pairs: &[(String, String)], peer: &str) {
    let input = dir.join(format!("{name}.tsv"));
    std::fs::write(&input, tsv(pairs)).unwrap();
    let run =
        rs2p_limit(&["import", input.to_str().unwrap(), "--peer", peer, "--timeout", "60"], Duration::from_secs(120));
    assert_eq!(run.code, Some(0), "import {name} through {peer}: {run:#?}");
}

/// `rs2p status --json --peer PEER`, parsed.
fn status(peer: &str) -> Result<Value, String> {
    status_json(&rs2p_limit(&["status", "--json", "--peer", peer, "--timeout", "3"], Duration::from_secs(30)))
}

/// A line on stdout with the time since `t0` (seen with `--nocapture`).
fn step(t0: Instant, what: &str) {
    println!("heal: [{:5.1} s] {what}", t0.elapsed().as_secs_f64());
}

/// Polls `f` every 200 ms until it returns `Ok` or `deadline` passes; the
/// last error otherwise. Unlike [`wait::until_ok`] it does not panic, so that
/// a test can report every condition that failed.
fn poll<T>(deadline: Instant, f: impl FnMut() -> Result<T, String>) -> Result<T, String> {
    wait::ok_by(deadline, Duration::from_millis(200), f)
}

/// Waits until no node of `running` has a link to, or a neighbour among,
/// the stopped nodes `gone`: they missed the keepalives and were dropped.
fn wait_until_cut_off(running: &[&Node], gone: &[&str]) {
    for n in running {
        wait::until_ok(&format!("{} to drop its links to the stopped nodes", n.addr), CUT, || {
            let st = status(&n.addr)?;
            let links = link_ids(&st);
            let (pred, succ) = ring_neighbours(&st);
            let still: Vec<&&str> = gone
                .iter()
                .filter(|g| links.contains(**g) || pred.as_deref() == Some(**g) || succ.as_deref() == Some(**g))
                .collect();
            if still.is_empty() {
                Ok(())
            } else {
                Err(format!("still linked to {still:?}"))
            }
        });
    }
}

/// Keeps the nodes of `paused` stopped until [`PAUSE`] has passed since the
/// first was stopped, checking meanwhile through `watcher` that none of them
/// came back into its links (a stopped process answers nothing).
fn hold(paused: &[&Paused<'_>], watcher: &Node) {
    let since = paused.iter().map(|p| p.since).min().expect("a paused node");
    while since.elapsed() < PAUSE {
        if let Ok(st) = status(&watcher.addr) {
            let links = link_ids(&st);
            for p in paused {
                assert!(!links.contains(&p.node.id), "{} linked to the stopped {} again", watcher.addr, p.node.addr);
            }
        }
        thread::sleep(Duration::from_millis(250).min(PAUSE.saturating_sub(since.elapsed())));
    }
}

/// The resumed node's status shows a predecessor and a successor, both
/// among `others`.
fn back_in_ring(node: &Node, others: &BTreeSet<String>) -> Result<(), String> {
    let st = status(&node.addr)?;
    match ring_neighbours(&st) {
        (Some(p), Some(s)) if others.contains(&p) && others.contains(&s) => Ok(()),
        (p, s) => Err(format!(
            "status --json of the resumed {}: predecessor {p:?}, successor {s:?}, links {:?}",
            node.addr,
            link_ids(&st)
        )),
    }
}

/// What a key should read.
#[derive(Clone, Debug, PartialEq)]
enum Want {
    Value(String),
    Deleted,
}

/// `rs2p get KEY --peer PEER` gives `want`: the value (exit 0), or for a
/// deleted key exit 1 with the CLI's `error: key not found: KEY`.
fn reads(peer: &str, key: &str, want: &Want) -> Result<(), String> {
    let run = rs2p(&["get", key, "--peer", peer, "--timeout", "3"]);
    let want = match want {
        Want::Value(v) => Some(v.as_str()),
        Want::Deleted => None,
    };
    run.got(key, want, peer)
}

/// Every key of `want` reads right through `peer` (stops at the first that does not).
fn all_read(peer: &str, want: &[(String, Want)]) -> Result<(), String> {
    for (i, (k, w)) in want.iter().enumerate() {
        reads(peer, k, w).map_err(|e| format!("{e} ({i} of {} keys read right before it)", want.len()))?;
    }
    Ok(())
}

/// `rs2p export` through `peer` lists exactly `want` (sorted lines) among
/// the keys starting with `prefix`; the export's own `--timeout` is what is
/// left until `deadline` (5 to 60 s).
fn export_is(peer: &str, prefix: &str, want: &[String], deadline: Instant) -> Result<(), String> {
    let secs = deadline.saturating_duration_since(Instant::now()).as_secs().clamp(5, 60);
    let run = rs2p_limit(&["export", "--peer", peer, "--timeout", &secs.to_string()], Duration::from_secs(secs + 30));
    run.exported(|l| l.starts_with(prefix), want, peer)
}

/// A ring of three; one node (not the one written through) is stopped for
/// 12 s while 20 of 50 keys are overwritten and 10 deleted through the
/// others, then resumed: within 45 s it is linked on both sides again and
/// every key read through it is the latest write (deleted: not found).
#[test]
fn a_paused_node_rejoins_and_serves_the_latest_writes() {
    let dir = Scratch::new("one");
    let t0 = Instant::now();
    let a = Node::start(&["--join"]);
    let b = Node::start(&["--join", "--connect", &a.addr]);
    let c = Node::start(&["--join", "--connect", &a.addr]);
    ring_is_linked(&[&a, &b, &c], "probe-heal-one");
    let key = |i: usize| format!("heal1-{i:02}");
    let first: Vec<(String, String)> = (0..50).map(|i| (key(i), format!("first {i}"))).collect();
    import(&dir, "first", &first, &a.addr);
    // All three see the first values before anyone is stopped.
    for n in [&a, &b, &c] {
        all_read(&n.addr, &first.iter().map(|(k, v)| (k.clone(), Want::Value(v.clone()))).collect::<Vec<_>>()).unwrap();
    }

    step(t0, "ring of 3 linked, 50 keys set");
    let paused = c.pause();
    wait_until_cut_off(&[&a, &b], &[&c.id]);
    step(t0, "c stopped, and dropped by a and b");
    // Only now, so that nothing of it can wait in c's socket buffers.
    let second: Vec<(String, String)> = (0..20).map(|i| (key(i), format!("second {i}"))).collect();
    import(&dir, "second", &second, &a.addr);
    for i in 20..30 {
        rs2p(&["del", &key(i), "--peer", &b.addr, "--timeout", "20"]).expect_quiet_ok();
    }
    let want: Vec<(String, Want)> = (0..50)
        .map(|i| {
            let w = match i {
                0..20 => Want::Value(format!("second {i}")),
                20..30 => Want::Deleted,
                _ => Want::Value(format!("first {i}")),
            };
            (key(i), w)
        })
        .collect();
    // The ring without c serves the latest writes (so what follows tests c).
    all_read(&b.addr, &want).unwrap();
    step(t0, "20 keys overwritten, 10 deleted, read back through b");
    hold(&[&paused], &a);
    let resumed = paused.resume();
    step(t0, "c resumed");
    let deadline = resumed + REJOIN;

    let others: BTreeSet<String> = [a.id.clone(), b.id.clone()].into();
    let linked = poll(deadline, || back_in_ring(&c, &others));
    let served = poll(deadline, || all_read(&c.addr, &want));
    step(t0, "checked c");
    assert!(
        linked.is_ok() && served.is_ok(),
        "{:.1} s after SIGCONT the resumed node is not healed:\n  ring: {}\n  reads: {}",
        resumed.elapsed().as_secs_f64(),
        linked.err().unwrap_or_else(|| "ok".into()),
        served.err().unwrap_or_else(|| "ok".into())
    );
}

/// A ring of eight with 2,000 keys; two nodes are stopped for 12 s while
/// every key is overwritten and 100 are deleted, then resumed: within 45 s
/// an export through each lists exactly the current keys and values, and
/// deleted keys read through them are not found.
#[test]
fn two_paused_nodes_of_eight_rejoin_and_export_the_current_data() {
    let dir = Scratch::new("two");
    let t0 = Instant::now();
    let nodes = joined_ring(8);
    ring_is_linked(&nodes.iter().collect::<Vec<_>>(), "probe-heal-two");
    let key = |i: usize| format!("heal8-{i:04}");
    let v1: Vec<(String, String)> = (0..2000).map(|i| (key(i), format!("first {i}"))).collect();
    import(&dir, "first", &v1, &nodes[0].addr);

    // Two nodes apart on the list (not the ones written through).
    let (s1, s2) = (&nodes[3], &nodes[6]);
    let running: Vec<&Node> = nodes.iter().filter(|n| n.id != s1.id && n.id != s2.id).collect();
    step(t0, "ring of 8 linked, 2,000 keys set");
    let p1 = s1.pause();
    let p2 = s2.pause();
    wait_until_cut_off(&running, &[&s1.id, &s2.id]);
    step(t0, "two nodes stopped, and dropped by the other six");
    let v2: Vec<(String, String)> = (0..2000).map(|i| (key(i), format!("second {i}"))).collect();
    import(&dir, "second", &v2, &nodes[1].addr);
    step(t0, "2,000 keys overwritten");
    let deleted: Vec<String> = (0..2000).filter(|i| i % 20 == 7).map(key).collect();
    assert_eq!(deleted.len(), 100);
    // Ten clients at once, through the running nodes in turn: each delete
    // takes a second or two here (its first send is not readable yet; it
    // is sent again after 1 s).
    thread::scope(|s| {
        for (t, part) in deleted.chunks(10).enumerate() {
            let peer = running[t % running.len()].addr.clone();
            s.spawn(move || {
                for k in part {
                    rs2p(&["del", k, "--peer", &peer, "--timeout", "20"]).expect_quiet_ok();
                }
            });
        }
    });
    let gone: BTreeSet<&String> = deleted.iter().collect();
    let want: Vec<String> =
        v2.iter().filter(|(k, _)| !gone.contains(k)).map(|(k, v)| format!("{k}\t{v}")).collect::<Vec<_>>();
    // Sorted as export_is compares (the keys are zero-padded).
    let mut want = want;
    want.sort();
    step(t0, "100 keys deleted");
    hold(&[&p1, &p2], running[0]);
    let r1 = p1.resume();
    let _ = p2.resume();
    step(t0, "both resumed");
    let deadline = r1 + REJOIN;

    let mut failures = Vec::new();
    for n in [s1, s2] {
        if let Err(e) = poll(deadline, || export_is(&n.addr, "heal8-", &want, deadline)) {
            failures.push(e);
        }
        // A sample of the deleted keys (every fifth), read one by one.
        let sample: Vec<(String, Want)> = deleted.iter().step_by(5).map(|k| (k.clone(), Want::Deleted)).collect();
        if let Err(e) = poll(deadline, || all_read(&n.addr, &sample)) {
            failures.push(e);
        }
    }
    step(t0, "checked both");
    assert!(
        failures.is_empty(),
        "{:.1} s after SIGCONT the resumed nodes do not serve the current data:\n  {}",
        r1.elapsed().as_secs_f64(),
        failures.join("\n  ")
    );
}

/// `--timeout` bounds the whole of `import` and `export`: through a node
/// whose five peers are stopped (and dropped: the node is alone, and a
/// client hears no answer to the gets it cannot serve), both end by their timeout, exit 1
/// and say why on stderr's last line. Before, each batch of 256 gets had
/// the whole timeout to itself (2,000 keys: 8 times the timeout; an export
/// through a lone node at `--timeout 60` ran over 200 s).
#[test]
fn import_and_export_end_by_their_timeout_when_no_peer_answers() {
    let dir = Scratch::new("timeout");
    let nodes = joined_ring(6);
    let (a, others) = nodes.split_first().expect("six nodes");
    ring_is_linked(&nodes.iter().collect::<Vec<_>>(), "probe-heal-timeout");
    let pairs: Vec<(String, String)> = (0..2000).map(|i| (format!("bound-{i:04}"), format!("value {i}"))).collect();
    import(&dir, "first", &pairs, &a.addr);
    let input = dir.join("again.tsv");
    std::fs::write(&input, tsv(&pairs)).unwrap();

    // Alone, `a` holds its own arc and its replicas of the next two: about
    // half of the items, so most keys have no majority it can reach.
    let _paused: Vec<Paused<'_>> = others.iter().map(Node::pause).collect();
    const TIMEOUT: u64 = 4;
    const SLACK: Duration = Duration::from_secs(5);
    let check = |run: &Run| {
        let last = run.stderr.lines().last().unwrap_or("");
        println!("`{}` ended after {:.1} s; stderr ends: {last}", run.what, run.elapsed.as_secs_f64());
        let what = format!(
            "`{}`: exit {:?} after {:.1} s, {} lines on stdout, last stderr line {last:?}",
            run.what,
            run.code,
            run.elapsed.as_secs_f64(),
            run.stdout.lines().count()
        );
        assert!(run.elapsed <= Duration::from_secs(TIMEOUT) + SLACK, "took longer than --timeout {TIMEOUT}: {what}");
        assert_eq!(run.code, Some(1), "{what}");
        assert!(last.starts_with("error: ") && last.contains("timeout"), "{what}");
    };
    let t = TIMEOUT.to_string();
    // At once: `a` still counts its stopped peers as linked, and routes the
    // sets and the gets that confirm them there.
    let import =
        rs2p_limit(&["import", input.to_str().unwrap(), "--peer", &a.addr, "--timeout", &t], Duration::from_secs(300));
    wait_until_cut_off(&[a], &others.iter().map(|n| n.id.as_str()).collect::<Vec<_>>());
    let export = rs2p_limit(&["export", "--peer", &a.addr, "--timeout", &t], Duration::from_secs(300));
    check(&import);
    check(&export);
}

/// libfaketime (Debian's `faketime` package), when it is installed: what
/// `faketime +120s` preloads, used directly so that the node is the test's
/// own child (the `faketime` wrapper forks, and a killed wrapper would leave
/// the node running). Without it the test is skipped with a line saying so,
/// unless `RS2P_REQUIRE_FAKETIME=1` (set by `.ci/run`, which installs it).
fn faketime() -> Option<PathBuf> {
    let found = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .map(|d| d.path().join("faketime/libfaketimeMT.so.1"))
        .chain([PathBuf::from("/usr/lib/faketime/libfaketimeMT.so.1")])
        .find(|p| p.exists());
    if found.is_none() {
        let why = "libfaketime is not installed (apt-get install faketime)";
        assert!(std::env::var_os("RS2P_REQUIRE_FAKETIME").is_none(), "RS2P_REQUIRE_FAKETIME=1 but {why}");
        eprintln!("clocks_two_minutes_apart: skipped: {why}");
    }
    found
}

/// Five nodes, two of them running with their clock 120 s ahead: sets,
/// overwrites and deletes through both kinds confirm, and every node
/// exports the same, right data (before versions and the clock tolerance
/// between rs2p nodes, the fast nodes dropped every key-list broadcast of
/// the others as too old, and the others 18 of 50 keys set through a fast
/// node as dated ahead). A write through a slow node seconds after one
/// through a fast node wins, whatever the clocks say.
#[test]
fn clocks_two_minutes_apart_agree_on_every_key() {
    let Some(faketime) = faketime() else { return };
    let t0 = Instant::now();
    let nodes = ring(5, |i, first| {
        let Some(connect) = first else { return Node::start(&["--join"]) };
        let args = ["node", "--bind", "127.0.0.1:0", "--join", "--connect", connect];
        if i >= 3 {
            let mut cmd = rs2p_command(&args);
            cmd.env("LD_PRELOAD", &faketime).env("FAKETIME", "+120s");
            Node::start_command(cmd, format!("FAKETIME=+120s rs2p {}", args.join(" ")), &["--join"])
        } else {
            Node::start(&["--join", "--connect", connect])
        }
    });
    let addrs: Vec<String> = nodes.iter().map(|n| n.addr.clone()).collect();
    let refs: Vec<&Node> = nodes.iter().collect();
    ring_is_linked(&refs, &addrs[0]);
    step(t0, "five nodes linked, two 120 s ahead");
    let mut model: std::collections::BTreeMap<String, Option<String>> = std::collections::BTreeMap::new();
    let set = |key: &str, value: &str, via: &str| {
        rs2p(&["set", key, value, "--peer", via, "--timeout", "10"]).expect_quiet_ok();
    };
    for i in 0..50 {
        let (k, v) = (format!("skew-{i:02}"), format!("v{i}"));
        set(&k, &v, &addrs[i % 5]);
        model.insert(k, Some(v));
    }
    for i in 0..10 {
        // Overwrites through the fast nodes, deletes through the slow ones.
        let (k, v) = (format!("skew-{i:02}"), format!("fast{i}"));
        set(&k, &v, &addrs[3 + i % 2]);
        model.insert(k, Some(v));
        let k = format!("skew-{:02}", 20 + i);
        rs2p(&["del", &k, "--peer", &addrs[i % 3], "--timeout", "10"]).expect_quiet_ok();
        model.insert(k, None);
    }
    // A fast node writes, a slow one overwrites 5 s later: the later wins.
    set("skew-later", "from-fast", &addrs[3]);
    thread::sleep(Duration::from_secs(5));
    set("skew-later", "from-slow-later", &addrs[1]);
    model.insert("skew-later".to_owned(), Some("from-slow-later".to_owned()));
    step(t0, "written");
    let want: Vec<String> =
        model.iter().filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}\t{v}"))).collect::<Vec<_>>();
    let deadline = Instant::now() + Duration::from_secs(30);
    for addr in &addrs {
        poll(deadline, || export_is(addr, "skew-", &want, deadline)).unwrap_or_else(|e| panic!("{e}"));
    }
    for (k, v) in &model {
        for addr in [&addrs[0], &addrs[4]] {
            poll(deadline, || reads(addr, k, &v.clone().map_or(Want::Deleted, Want::Value)))
                .unwrap_or_else(|e| panic!("{e}"));
        }
    }
    step(t0, "every node agrees");
    // The fast nodes' clocks show in status (heal.clock_skew_ms).
    let st = status(&addrs[0]).unwrap_or_else(|e| panic!("{e}"));
    let skew = st["heal"]["clock_skew_ms"].as_i64().unwrap_or(0);
    assert!(skew > 100_000, "status of a slow node shows no skew: {}", st["heal"]);
}
