//! The rs2p half of `rs2p-lab bench`: a loopback ring of rs2p nodes, the
//! workload, and what it costs.

use std::time::{Duration, Instant};

use super::bench::{pct, progress, BenchArgs, Figures};
use super::bench_floor::{cpu_us_per, process_cpu};
use super::{net_failure, Failure};

/// The rs2p half's figures beyond the py2p comparison.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Rs2pExtra {
    pub(super) concurrent_get_per_s: f64,
    pub(super) confirmed_set_per_s: f64,
    pub(super) cpu_us_per_get: f64,
    pub(super) cpu_us_per_set: f64,
    /// CPU per get with `concurrency` in flight (batching should lower it).
    pub(super) cpu_us_per_concurrent_get: f64,
    /// Sequential gets called from a task on the runtime rather than from
    /// its `block_on` thread (no set figure).
    pub(super) task: Figures,
    pub(super) cpu_us_per_task_get: f64,
}

/// The rs2p half; with `tls`, every node speaks py2p's SSL (TLS, a fresh
/// self-signed certificate per node).
pub(super) async fn bench_rs2p(args: &BenchArgs, start: Instant, tls: bool) -> Result<(Figures, Rs2pExtra), Failure> {
    let n = usize::from(args.nodes);
    let what = if tls { "rs2p with TLS" } else { "rs2p" };
    progress(start, &format!("{what}: starting a ring of {n} nodes"));
    let key_list = !args.no_key_list;
    let first_wave = usize::from(args.get_first_wave);
    let nodes = super::demo::start_ring_with(n, |cfg| {
        cfg.key_list = key_list;
        cfg.get_first_wave = first_wave;
        if let Some(depth) = args.replica_depth {
            cfg.replica_depth = depth;
        }
        if tls {
            cfg.protocol = rs2p::wire::Protocol::new("chord", rs2p::wire::protocol::SSL);
        }
    })
    .await?;
    super::demo::wait_linked(&nodes, Duration::from_secs(30)).await?;
    let value = bytes::Bytes::from(vec![b'v'; args.value_size]);
    let keys: Vec<String> = (0..args.sets).map(|i| format!("bench-key-{i}")).collect();
    progress(start, &format!("rs2p: {} sets, then {} gets", args.sets, args.gets));
    let cpu0 = process_cpu();
    let t0 = Instant::now();
    for (i, k) in keys.iter().enumerate() {
        nodes[i % n].set(k, value.clone()).map_err(net_failure)?;
    }
    let set_elapsed = t0.elapsed();
    // Sets are fire-and-forget: let the stores land before reading (their
    // CPU time counts toward the sets).
    for k in keys.iter().rev().take(20) {
        for _ in 0..200 {
            if nodes[0].get_timeout(k, Duration::from_secs(1)).await.is_ok_and(|v| v == value) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let cpu_us_per_set = cpu_us_per(cpu0, process_cpu(), keys.len());
    // The caller is the runtime's `block_on` thread (as in `#[tokio::main]`):
    // each get wakes it from a futex when the answer comes.
    let cpu0 = process_cpu();
    let t0 = Instant::now();
    let (lat, wrong) = sequential_gets(&nodes, &keys, &value, args.gets).await;
    let get_elapsed = t0.elapsed();
    let cpu_us_per_get = cpu_us_per(cpu0, process_cpu(), args.gets);
    if wrong > 0 {
        eprintln!("warning: {wrong} of {} rs2p gets did not return the value", args.gets);
    }
    let figures = Figures {
        set_per_s: args.sets as f64 / set_elapsed.as_secs_f64().max(1e-9),
        get_per_s: args.gets as f64 / get_elapsed.as_secs_f64().max(1e-9),
        get_p50_us: pct(&lat, 0.50),
        get_p99_us: pct(&lat, 0.99),
    };
    progress(start, &format!("rs2p: {} sequential gets from a task on the runtime", args.gets));
    // The same gets from a task on a worker, as a server's handler calls
    // them: no thread sleeps between the request and the answer.
    let cpu0 = process_cpu();
    let t0 = Instant::now();
    let (tnodes, tkeys, tvalue, gets) = (nodes.clone(), keys.clone(), value.clone(), args.gets);
    let (task_lat, task_wrong) = tokio::spawn(async move { sequential_gets(&tnodes, &tkeys, &tvalue, gets).await })
        .await
        .map_err(|e| Failure::new(super::EXIT_RUNTIME, format!("the sequential get task failed: {e}")))?;
    let task_elapsed = t0.elapsed();
    let cpu_us_per_task_get = cpu_us_per(cpu0, process_cpu(), args.gets);
    if task_wrong > 0 {
        eprintln!("warning: {task_wrong} of {} rs2p gets from a task did not return the value", args.gets);
    }
    let task = Figures {
        set_per_s: 0.0,
        get_per_s: args.gets as f64 / task_elapsed.as_secs_f64().max(1e-9),
        get_p50_us: pct(&task_lat, 0.50),
        get_p99_us: pct(&task_lat, 0.99),
    };
    progress(start, &format!("rs2p: {} gets with {} in flight", args.gets, args.concurrency));
    let cpu0 = process_cpu();
    let t0 = Instant::now();
    let per_task = args.gets.div_ceil(args.concurrency.max(1));
    let mut tasks = Vec::new();
    for t in 0..args.concurrency.max(1) {
        let node = nodes[t % n].clone();
        let keys = keys.clone();
        tasks.push(tokio::spawn(async move {
            let mut ok = 0usize;
            for j in 0..per_task {
                if node.get(&keys[(t * 31 + j * 7) % keys.len().max(1)]).await.is_ok() {
                    ok += 1;
                }
            }
            ok
        }));
    }
    let mut done = 0usize;
    for t in tasks {
        done += t.await.unwrap_or(0);
    }
    let concurrent_get_per_s = done as f64 / t0.elapsed().as_secs_f64().max(1e-9);
    let cpu_us_per_concurrent_get = cpu_us_per(cpu0, process_cpu(), per_task * args.concurrency.max(1));
    progress(start, &format!("rs2p: {} confirmed sets (each returns once a majority get reads it)", args.sets));
    let t0 = Instant::now();
    let mut unconfirmed = 0usize;
    for i in 0..args.sets {
        let key = format!("bench-confirmed-key-{i}");
        if nodes[i % n].set_confirmed(&key, value.clone(), Duration::from_secs(10)).await.is_err() {
            unconfirmed += 1;
        }
    }
    let confirmed_set_per_s = (args.sets - unconfirmed) as f64 / t0.elapsed().as_secs_f64().max(1e-9);
    if unconfirmed > 0 {
        eprintln!("warning: {unconfirmed} of {} confirmed sets were not confirmed", args.sets);
    }
    for s in &nodes {
        let _ = s.close();
    }
    let extra = Rs2pExtra {
        concurrent_get_per_s,
        confirmed_set_per_s,
        cpu_us_per_get,
        cpu_us_per_set,
        cpu_us_per_concurrent_get,
        task,
        cpu_us_per_task_get,
    };
    Ok((figures, extra))
}

/// `gets` gets one after the other, spread over the nodes and the keys;
/// their latencies (sorted) and how many did not return `value`.
async fn sequential_gets(
    nodes: &[rs2p::ChordSocket],
    keys: &[String],
    value: &bytes::Bytes,
    gets: usize,
) -> (Vec<Duration>, usize) {
    let mut lat = Vec::with_capacity(gets);
    let mut wrong = 0usize;
    for i in 0..gets {
        let k = &keys[(i * 7) % keys.len().max(1)];
        let t = Instant::now();
        let got = nodes[(i * 3) % nodes.len()].get(k).await;
        lat.push(t.elapsed());
        if !got.is_ok_and(|v| v == value) {
            wrong += 1;
        }
    }
    lat.sort();
    (lat, wrong)
}
