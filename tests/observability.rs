//! Observability: `--metrics` (scraped over HTTP, parsed by the Python
//! `prometheus_client` parsers), `rs2p status` against a mixed py2p/rs2p
//! ring, and the SVG picture of the ring (rendered with resvg).

use rs2p_test_support as support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::time::Duration;

use rs2p::net::serve_metrics;
use rs2p::ChordSocket;
use serde_json::Value;
use support::cli::*;
use support::wait;

/// Bound for one scrape.
const SCRAPE_LIMIT: Duration = Duration::from_secs(10);

/// `GET /metrics` over plain HTTP/1.1; the body. With `openmetrics`, asks
/// for OpenMetrics as Prometheus does.
fn scrape(addr: &str, openmetrics: bool) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect to metrics {addr}: {e}"));
    s.set_read_timeout(Some(SCRAPE_LIMIT)).unwrap();
    let accept = if openmetrics { "Accept: application/openmetrics-text; version=1.0.0\r\n" } else { "" };
    write!(s, "GET /metrics HTTP/1.1\r\nHost: {addr}\r\n{accept}\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read the scrape");
    let (head, body) = out.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let want = if openmetrics { "application/openmetrics-text" } else { "text/plain; version=0.0.4" };
    assert!(head.contains(want), "{head}");
    body.to_owned()
}

/// Sample name and labels → value, from `prometheus_client`'s parse.
type Samples = BTreeMap<(String, BTreeMap<String, String>), f64>;

/// Parses the text with the Python parser (`classic` or `openmetrics`);
/// returns family types by name and every sample.
fn parse(text: &str, format: &str) -> (BTreeMap<String, String>, Samples) {
    let (status, out, err) = support::run_py("parse_metrics.py", &[format], text.as_bytes());
    assert!(status.success(), "prometheus_client could not parse the {format} text: {err}\n{text}");
    let families: Vec<Value> = serde_json::from_slice(&out).expect("parser output is JSON");
    let mut types = BTreeMap::new();
    let mut samples = Samples::new();
    for f in &families {
        let name = f["name"].as_str().unwrap().to_owned();
        let ty = f["type"].as_str().unwrap().to_owned();
        assert_ne!(ty, "unknown", "{name} parsed as untyped:\n{text}");
        types.insert(name, ty);
        for s in f["samples"].as_array().unwrap() {
            let labels: BTreeMap<String, String> =
                s[1].as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned())).collect();
            samples.insert((s[0].as_str().unwrap().to_owned(), labels), s[2].as_f64().unwrap());
        }
    }
    (types, samples)
}

/// The value of one sample; `labels` as `k=v` pairs.
fn value(samples: &Samples, name: &str, labels: &[(&str, &str)]) -> f64 {
    let labels: BTreeMap<String, String> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    *samples.get(&(name.to_owned(), labels.clone())).unwrap_or_else(|| panic!("no sample {name} {labels:?}"))
}

/// Sum of the samples of `name` whose labels include `with`.
fn sum(samples: &Samples, name: &str, with: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|((n, l), _)| n == name && with.iter().all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v)))
        .map(|(_, v)| v)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_scraped_twice_parse_grow_and_count_the_gets() {
    let mut ring = Vec::new();
    for i in 0..3 {
        // Gets ask all five tables, so that A serves retrieves of the load
        // whatever the arcs (with three first, C may never need A).
        let mut cfg = rs2p::core::Config::chord("127.0.0.1", 0);
        cfg.get_first_wave = 5;
        let s = ChordSocket::bind_with("127.0.0.1:0", cfg).await.unwrap();
        s.join().unwrap();
        if i > 0 {
            let first: &ChordSocket = &ring[0];
            s.connect(&first.local_addr().to_string()).await.unwrap();
        }
        ring.push(s);
    }
    wait::until("every node sees two seeding peers", SETTLE, || ring.iter().all(|s| s.data_storing().len() == 2)).await;
    let a = ring[0].clone();
    let server = serve_metrics(a.clone(), "127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().to_string();

    // Load through the other nodes, all along: A serves their stores and retrieves.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (b, c, stop) = (ring[1].clone(), ring[2].clone(), stop.clone());
        tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                b.set(format!("load-{}", i % 50), format!("v{i}")).unwrap();
                let _ = c.get_timeout(format!("load-{}", i % 50), Duration::from_secs(2)).await;
                i += 1;
            }
        })
    };

    // Gets through A, counted by outcome as the caller sees them.
    let mut made = 0u64;
    let mut ok = 0u64;
    let mut sets = 0u64;
    for k in 0..20 {
        a.set(format!("key-{k}"), format!("value-{k}")).unwrap();
        sets += 1;
    }
    let gets = |a: ChordSocket, n: usize| async move {
        let (mut made, mut ok) = (0u64, 0u64);
        for k in 0..n {
            made += 1;
            if a.get_timeout(format!("key-{}", k % 20), Duration::from_secs(2)).await.is_ok() {
                ok += 1;
            }
        }
        (made, ok)
    };
    let (m, o) = gets(a.clone(), 40).await;
    made += m;
    ok += o;
    let text1 = tokio::task::spawn_blocking({
        let addr = addr.clone();
        move || scrape(&addr, false)
    })
    .await
    .unwrap();
    let (m, o) = gets(a.clone(), 40).await;
    made += m;
    ok += o;
    // A key nobody set: one get that is not "ok".
    made += 1;
    assert!(a.get_timeout("never-set", Duration::from_secs(2)).await.is_err());
    let (text2, open) = tokio::task::spawn_blocking({
        let addr = addr.clone();
        move || (scrape(&addr, false), scrape(&addr, true))
    })
    .await
    .unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    load.await.unwrap();

    let (types1, s1) = tokio::task::spawn_blocking(move || parse(&text1, "classic")).await.unwrap();
    let (types2, s2) = tokio::task::spawn_blocking(move || parse(&text2, "classic")).await.unwrap();
    let (types_open, _) = tokio::task::spawn_blocking(move || parse(&open, "openmetrics")).await.unwrap();
    assert_eq!(types1, types2);
    assert_eq!(types_open, types2, "OpenMetrics and classic text describe the same families");
    for family in
        ["rs2p_items", "rs2p_links", "rs2p_frames", "rs2p_bad_input_closes", "rs2p_get_duration_seconds", "rs2p_bound"]
    {
        assert!(types2.contains_key(family), "no {family} in {types2:?}");
    }

    // Counters (and histogram series, which are counters too) only grow.
    let growing: BTreeSet<&String> =
        types2.iter().filter(|(_, t)| *t == "counter" || *t == "histogram").map(|(n, _)| n).collect();
    let mut compared = 0;
    for ((name, labels), v1) in &s1 {
        if growing.iter().any(|f| name.starts_with(f.as_str())) {
            let v2 = s2.get(&(name.clone(), labels.clone())).unwrap_or_else(|| panic!("{name} {labels:?} vanished"));
            assert!(v2 >= v1, "{name} {labels:?} went down: {v1} -> {v2}");
            compared += 1;
        }
    }
    assert!(compared > 50, "only {compared} counter samples compared");
    assert!(
        value(&s2, "rs2p_frames_total", &[("direction", "in")])
            > value(&s1, "rs2p_frames_total", &[("direction", "in")])
    );
    assert!(value(&s2, "rs2p_retrieves_received_total", &[]) > 0.0, "the load reached A");

    // The histograms count exactly the gets made through A.
    let count = |s: &Samples, outcome: Option<&str>| match outcome {
        Some(o) => value(s, "rs2p_get_duration_seconds_count", &[("outcome", o)]),
        None => sum(s, "rs2p_get_duration_seconds_count", &[]),
    };
    assert_eq!(count(&s1, None), 40.0);
    assert_eq!(count(&s2, None), made as f64);
    assert_eq!(count(&s2, Some("ok")), ok as f64);
    assert!(ok >= 70, "only {ok} of {made} gets succeeded");
    assert_eq!(value(&s2, "rs2p_set_duration_seconds_count", &[("outcome", "ok")]), sets as f64);
    // Buckets are cumulative and end at the count.
    let inf = value(&s2, "rs2p_get_duration_seconds_bucket", &[("outcome", "ok"), ("le", "+Inf")]);
    assert_eq!(inf, ok as f64);
    let mut buckets: Vec<(f64, f64)> = s2
        .iter()
        .filter(|((n, l), _)| n == "rs2p_get_duration_seconds_bucket" && l["outcome"] == "ok")
        .map(|((_, l), v)| (l["le"].parse::<f64>().unwrap_or(f64::INFINITY), *v))
        .collect();
    buckets.sort_by(|x, y| x.0.total_cmp(&y.0));
    assert!(buckets.windows(2).all(|w| w[0].1 <= w[1].1), "{buckets:?}");
    drop(server);
    for s in ring {
        let _ = s.shutdown().await;
    }
}

/// The kinds (`rs2p`/`py2p`) of the links and ring a `--json` report lists, by id.
fn kinds(report: &Value, list: &str) -> BTreeMap<String, String> {
    report[list]
        .as_array()
        .into_iter()
        .flatten()
        .map(|n| (n["id"].as_str().unwrap().to_owned(), n["kind"].as_str().unwrap().to_owned()))
        .collect()
}

#[test]
fn status_lists_a_mixed_ring_with_the_right_kinds() {
    let p1 = py2p_seeding();
    let a = Node::start(&["--join", "--connect", &p1.addr(), "--metrics", "127.0.0.1:0"]);
    let mut p2 = py2p_seeding();
    let port = a.addr.rsplit(':').next().unwrap().parse().unwrap();
    assert_eq!(p2.connect(port)["ok"], serde_json::json!(true));
    let b = Node::start(&["--join", "--connect", &a.addr]);
    let want: BTreeMap<String, String> =
        [(a.id.clone(), "rs2p"), (b.id.clone(), "rs2p"), (p1.id.clone(), "py2p"), (p2.id.clone(), "py2p")]
            .into_iter()
            .map(|(id, k)| (id, k.to_owned()))
            .collect();

    // --json: every node of the ring, with its kind, seeding.
    let report: Value = wait::until_ok("A's status to list the whole ring", SETTLE, || {
        let r = rs2p(&["status", "--peer", &a.addr, "--json", "--timeout", "5"]);
        if r.code != Some(0) {
            return Err(format!("{r:?}"));
        }
        let v: Value = serde_json::from_str(&r.stdout).map_err(|e| format!("{e}: {}", r.stdout))?;
        let ring = kinds(&v, "ring");
        if ring == want {
            Ok(v)
        } else {
            Err(format!("ring {ring:?}, want {want:?}"))
        }
    });
    assert_eq!(report["id"], a.id.as_str());
    assert_eq!(report["seeding"], true);
    let links = kinds(&report, "links");
    for (id, kind) in want.iter().filter(|(id, _)| **id != a.id) {
        assert_eq!(links.get(id), Some(kind), "link to {id} in {report:#}");
    }
    let share: f64 = report["ring"].as_array().unwrap().iter().map(|n| n["share"].as_f64().unwrap()).sum();
    assert!((share - 1.0).abs() < 1e-6, "the shares add up to {share}");
    assert!(report["predecessor"].is_string() && report["successor"].is_string(), "{report:#}");

    // Text: each node on a line with its kind, in the links and in the ring; and a picture.
    let svg_path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("status-{}.svg", std::process::id()));
    let svg_arg = svg_path.to_str().unwrap();
    // (Polled: py2p may re-dial a link meanwhile, D8.)
    let text = wait::until_ok("the text report to list every node with its kind", SETTLE, || {
        let r = rs2p(&["status", "--peer", &a.addr, "--timeout", "5", "--svg", svg_arg]);
        if r.code != Some(0) {
            return Err(format!("{r:?}"));
        }
        for (id, kind) in &want {
            let short = &id[..8];
            let lines: Vec<&str> = r.stdout.lines().filter(|l| l.trim_start().starts_with(short)).collect();
            let expected = if *id == a.id { 1 } else { 2 }; // ring (and links, for a peer)
            if lines.len() != expected || !lines.iter().all(|l| l.split_whitespace().nth(2) == Some(kind.as_str())) {
                return Err(format!("lines for {short} ({kind}): {lines:?} in:\n{}", r.stdout));
            }
        }
        Ok(r.stdout)
    });
    assert!(text.contains(&format!("node {}", a.id)), "{text}");
    let svg = std::fs::read_to_string(&svg_path).expect("the SVG was written");
    let _ = std::fs::remove_file(&svg_path);
    let png = render::check(&svg, "status");
    assert!(png.has_colour(render::RS2P) && png.has_colour(render::PY2P), "both kinds of node are drawn");

    // A py2p node has no status request: exit 3, one line.
    let r = rs2p(&["status", "--peer", &p1.addr(), "--timeout", "5"]);
    let line = r.expect_one_line_error(3);
    assert!(line.contains("not an rs2p node"), "{line}");

    // The node's --metrics: parsed, with its links by kind.
    let url = wait::until_ok("the metrics address on stderr", SETTLE, || {
        let err = a.stderr.text();
        err.lines()
            .find_map(|l| l.strip_prefix("rs2p node: metrics on http://"))
            .map(|l| l.trim_end_matches("/metrics").to_owned())
            .ok_or(err)
    });
    let s = wait::until_ok("the metrics to count two py2p and an rs2p seeding link", SETTLE, || {
        let (_, s) = parse(&scrape(&url, false), "classic");
        let py2p = sum(&s, "rs2p_links", &[("kind", "py2p"), ("role", "seeding")]);
        let rs2p = sum(&s, "rs2p_links", &[("kind", "rs2p"), ("role", "seeding")]);
        if py2p == 2.0 && rs2p >= 1.0 {
            Ok(s)
        } else {
            Err(format!("py2p {py2p}, rs2p {rs2p}"))
        }
    });
    assert!(value(&s, "rs2p_status_answered_total", &[]) >= 2.0);
}

#[test]
fn demo_draws_the_ring() {
    let svg_path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("demo-{}.svg", std::process::id()));
    let r = rs2p_limit(&["demo", "--nodes", "6", "--keys", "30", "--svg", svg_path.to_str().unwrap()], CLIENT_LIMIT);
    r.expect_code(0);
    assert!(r.stdout.contains("ring picture written to"), "{}", r.stdout);
    let svg = std::fs::read_to_string(&svg_path).expect("the SVG was written");
    let _ = std::fs::remove_file(&svg_path);
    assert_eq!(svg.matches(r#"r="9""#).count(), 6 + 2, "six nodes and two legend dots");
    assert!(svg.matches("stroke-dasharray").count() > 1, "fingers are drawn dashed (besides the legend's)");
    let png = render::check(&svg, "demo");
    assert!(png.has_colour(render::RS2P));
}

/// Rendering with resvg (no text: the `text` feature, with its fonts, is off).
mod render {
    use resvg::{tiny_skia, usvg};

    /// The node colours of `src/cli/svg.rs`.
    pub const RS2P: [u8; 3] = [0xd9, 0x64, 0x1e];
    pub const PY2P: [u8; 3] = [0x2f, 0x6d, 0xb5];

    pub struct Png(tiny_skia::Pixmap);

    impl Png {
        /// True if some pixel has exactly this colour.
        pub fn has_colour(&self, rgb: [u8; 3]) -> bool {
            self.0.pixels().iter().any(|p| {
                let c = p.demultiply();
                [c.red(), c.green(), c.blue()] == rgb
            })
        }
    }

    /// Renders the SVG, saves it as PNG under the target's tmp directory,
    /// and checks it is a picture: many pixels off the white background,
    /// several distinct colours.
    pub fn check(svg: &str, name: &str) -> Png {
        let tree = usvg::Tree::from_str(svg, &usvg::Options::default()).expect("the SVG parses");
        let size = tree.size().to_int_size();
        assert!(size.width() >= 600 && size.height() >= 600, "{size:?}");
        let mut pixmap = tiny_skia::Pixmap::new(size.width(), size.height()).expect("a pixmap");
        resvg::render(&tree, tiny_skia::Transform::default(), &mut pixmap.as_mut());
        let total = pixmap.pixels().len();
        let mut colours = std::collections::BTreeSet::new();
        let mut ink = 0;
        for p in pixmap.pixels() {
            let c = p.demultiply();
            let rgb = [c.red(), c.green(), c.blue()];
            if rgb != [255, 255, 255] {
                ink += 1;
            }
            colours.insert(rgb.map(|v| v >> 4));
        }
        assert!(ink * 20 > total, "only {ink} of {total} pixels are not background");
        assert!(colours.len() >= 6, "only {} distinct colours", colours.len());
        let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("ring-{name}.png"));
        pixmap.save_png(&out).expect("write the PNG");
        Png(pixmap)
    }
}
