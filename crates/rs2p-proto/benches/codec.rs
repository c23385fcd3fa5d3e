//! A small self-timed benchmark of the wire codec (no external harness).
//!
//! Encodes and decodes a whisper message with a 100-byte and a 64 KiB payload,
//! uncompressed and with zlib. Each case is warmed up, then run in batches of
//! doubling size until about 1 s has passed (0.1 s with `--quick` or
//! `BENCH_QUICK=1`). Any other non-flag argument keeps only the cases whose name
//! contains it.
//!
//! ```text
//! cargo bench --bench codec
//! cargo bench --bench codec -- --quick
//! cargo bench --bench codec -- 64KiB
//! ```
//!
//! MB/s is the uncompressed packet-list size (the message as it is before
//! compression) times the iterations, over the time of one encode plus one
//! decode: the round-trip throughput. 1 MB = 10^6 bytes.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rs2p_proto::wire::{Compression, Message, DEFAULT_MAX_FRAME};

/// A deterministic text-like payload (words from a small vocabulary picked by an
/// LCG), so zlib has something realistic to compress.
fn payload(len: usize) -> Bytes {
    const WORDS: [&str; 16] = [
        "alpha", "bravo", "chord", "delta", "echo", "frame", "gamma", "hash", "id", "key", "lookup", "mesh", "node",
        "peer", "ring", "store",
    ];
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        out.extend_from_slice(WORDS[(state >> 60) as usize].as_bytes());
        out.push(if (state >> 32).is_multiple_of(9) { b'\n' } else { b' ' });
    }
    out.truncate(len);
    Bytes::from(out)
}

struct Case {
    name: String,
    message: Message,
    compression: Option<Compression>,
}

struct Outcome {
    iterations: u64,
    encode: Duration,
    decode: Duration,
}

/// Runs `encode` and `decode` in alternating batches of doubling size until
/// `budget` has passed; the batch stops growing once it takes ~1% of the budget.
fn measure(budget: Duration, mut encode: impl FnMut(), mut decode: impl FnMut()) -> Outcome {
    let mut batch: u64 = 1;
    let mut out = Outcome { iterations: 0, encode: Duration::ZERO, decode: Duration::ZERO };
    let start = Instant::now();
    while start.elapsed() < budget {
        let t = Instant::now();
        for _ in 0..batch {
            encode();
        }
        let e = t.elapsed();
        let t = Instant::now();
        for _ in 0..batch {
            decode();
        }
        let d = t.elapsed();
        out.encode += e;
        out.decode += d;
        out.iterations += batch;
        if e + d < budget / 100 {
            batch *= 2;
        }
    }
    out
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick =
        args.iter().any(|a| a == "--quick") || std::env::var("BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
    // cargo passes `--bench`; other flags are ignored, the first plain word filters.
    let filter = args.iter().find(|a| !a.starts_with('-')).cloned();
    let budget = if quick { Duration::from_millis(100) } else { Duration::from_secs(1) };
    let warm_up = budget / 10;

    // A realistic sender: a 66-character base58 node id.
    let sender = "3dXDQ2UyzmdK7ytCcjg4U8ty8LWGQmiWP6N5n9gt7YCASE7mrQ3vvCnH85mLb5zYsr";
    let mut cases = Vec::new();
    for (size_name, size) in [("100B", 100usize), ("64KiB", 64 * 1024)] {
        for compression in [None, Some(Compression::Zlib)] {
            let method = compression.map_or("none", Compression::name);
            cases.push(Case {
                name: format!("{size_name}/{method}"),
                message: Message::new(2, sender, 1_700_000_000, vec![Bytes::from_static(b"\x02"), payload(size)]),
                compression,
            });
        }
    }

    println!(
        "rs2p codec benchmark ({} per case{})",
        if quick { "~0.1 s" } else { "~1 s" },
        if cfg!(debug_assertions) { ", DEBUG BUILD: numbers are not representative" } else { "" }
    );
    println!(
        "{:<12} {:>11} {:>12} {:>16} {:>16} {:>10}",
        "case", "frame bytes", "iterations", "encode ns/op", "decode ns/op", "MB/s"
    );
    for case in &cases {
        if filter.as_ref().is_some_and(|f| !case.name.contains(f.as_str())) {
            continue;
        }
        let m = &case.message;
        let c = case.compression;
        let methods: Vec<Compression> = c.into_iter().collect();
        let frame = m.encode(c).expect("benchmark messages encode");
        let decoded = Message::decode_frame(&frame, &methods, DEFAULT_MAX_FRAME).expect("benchmark frames decode");
        assert_eq!(&decoded, m, "{}: round trip", case.name);
        let plain_len = m.packets().expect("benchmark messages encode").len();

        let encode = || {
            black_box(black_box(m).encode(black_box(c)).expect("encode"));
        };
        let decode = || {
            black_box(
                Message::decode_frame(black_box(&frame), black_box(&methods), DEFAULT_MAX_FRAME).expect("decode"),
            );
        };
        measure(warm_up, encode, decode);
        let r = measure(budget, encode, decode);

        let n = r.iterations as f64;
        let enc_ns = r.encode.as_nanos() as f64 / n;
        let dec_ns = r.decode.as_nanos() as f64 / n;
        let mb_s = plain_len as f64 / (enc_ns + dec_ns) * 1e3;
        println!(
            "{:<12} {:>11} {:>12} {:>16.0} {:>16.0} {:>10.1}",
            case.name,
            frame.len(),
            r.iterations,
            enc_ns,
            dec_ns,
            mb_s
        );
    }
}
