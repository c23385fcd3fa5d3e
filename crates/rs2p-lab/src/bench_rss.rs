//! The memory probe of `rs2p-lab bench`: one seeding node holding the
//! keys, measured in a process of its own (`rs2p-lab bench-rss`).

use std::process::Command;

use clap::Args;

use rs2p::ChordSocket;

use super::{net_failure, Failure, EXIT_RUNTIME};

/// Hidden helper: one node holding KEYS keys; prints its resident memory in MB.
#[derive(Args, Debug)]
pub struct RssArgs {
    #[arg(long)]
    pub keys: usize,
    #[arg(long, default_value_t = 100)]
    pub value_size: usize,
    /// Give each key a value of its own (as values arriving in frames are),
    /// not one buffer shared by every key (`rss_mb_100k_keys`).
    #[arg(long)]
    pub distinct_values: bool,
}

/// The resident memory (MB) of a node holding `keys` keys, in a process of its own.
pub(super) fn measure_rss(keys: usize, value_size: usize) -> Result<f64, Failure> {
    let exe = std::env::current_exe().map_err(|e| Failure::new(EXIT_RUNTIME, format!("cannot find rs2p: {e}")))?;
    let out = Command::new(exe)
        .args(["bench-rss", "--keys", &keys.to_string(), "--value-size", &value_size.to_string()])
        .output()
        .map_err(|e| Failure::new(EXIT_RUNTIME, format!("cannot run the memory probe: {e}")))?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim().parse().map_err(|_| {
        Failure::new(EXIT_RUNTIME, format!("memory probe failed: {}", String::from_utf8_lossy(&out.stderr).trim()))
    })
}

/// `rs2p bench-rss`: a seeding node alone holds `keys` keys; print VmRSS in MB.
pub async fn rss(args: RssArgs) -> Result<(), Failure> {
    let node = ChordSocket::bind("127.0.0.1:0").await.map_err(net_failure)?;
    node.join().map_err(net_failure)?;
    let value = bytes::Bytes::from(vec![b'v'; args.value_size]);
    for i in 0..args.keys {
        let value = if args.distinct_values {
            let mut v = value.to_vec();
            let n = 8.min(v.len());
            v[..n].copy_from_slice(&i.to_be_bytes()[..n]);
            bytes::Bytes::from(v)
        } else {
            value.clone()
        };
        node.set(format!("rss-key-{i:08}"), value).map_err(net_failure)?;
    }
    if node.item_count() != args.keys * 5 {
        return Err(Failure::new(
            EXIT_RUNTIME,
            format!("expected {} items, hold {}", args.keys * 5, node.item_count()),
        ));
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| Failure::new(EXIT_RUNTIME, "cannot read VmRSS from /proc/self/status"))?;
    println!("{:.1}", kb / 1024.0);
    Ok(())
}
