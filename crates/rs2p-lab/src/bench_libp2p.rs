//! The libp2p-kad half of `rs2p bench --with-libp2p`: the crate in
//! `bench/libp2p-kad/` of the source tree, built on first use and run on the
//! same workload.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{Failure, EXIT_RUNTIME};

/// The comparison crate, relative to the source tree.
const CRATE_DIR: &str = "bench/libp2p-kad";
/// Its build directory, relative to the source tree (apart from rs2p's own
/// builds, so that neither invalidates the other).
const TARGET_DIR: &str = "target/libp2p-kad";
/// Its binary.
const BINARY: &str = "rs2p-libp2p-bench";

/// What the libp2p-kad half measured.
#[derive(Debug, Clone, Default)]
pub struct Libp2pFigures {
    pub get_p50_us: f64,
    pub get_p99_us: f64,
    pub get_per_s: f64,
    pub concurrent_get_per_s: f64,
    pub set_per_s: f64,
    pub failed_gets: u64,
    pub failed_sets: u64,
    pub version: String,
}

/// The workload, as `rs2p bench` runs it.
pub struct Workload {
    pub nodes: usize,
    pub sets: usize,
    pub gets: usize,
    pub concurrency: usize,
    pub value_size: usize,
}

/// The source tree this binary was built from, if it is still there.
fn tree() -> Result<PathBuf, Failure> {
    // The repository root: this crate is crates/rs2p-lab in it.
    let tree = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    if tree.join(CRATE_DIR).join("Cargo.toml").is_file() {
        return Ok(tree.to_path_buf());
    }
    let here = PathBuf::from(".");
    if here.join(CRATE_DIR).join("Cargo.toml").is_file() {
        return Ok(here);
    }
    Err(Failure::new(
        EXIT_RUNTIME,
        format!("--with-libp2p needs the rs2p source tree ({CRATE_DIR}/ not found); run it from a clone"),
    ))
}

/// Builds the comparison crate (a no-op once built), then runs it.
pub fn run(w: &Workload, progress: impl Fn(&str)) -> Result<Libp2pFigures, Failure> {
    let tree = tree()?;
    let target = tree.join(TARGET_DIR);
    let exe = target.join("release").join(BINARY);
    progress(&format!(
        "libp2p-kad: building {CRATE_DIR} in release{}",
        if exe.exists() { "" } else { " (first use: a few minutes)" }
    ));
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let st = Command::new(cargo)
        .args(["build", "--release", "--quiet", "--manifest-path"])
        .arg(tree.join(CRATE_DIR).join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        .stdout(Stdio::null())
        .status()
        .map_err(|e| Failure::new(EXIT_RUNTIME, format!("cannot run cargo to build {CRATE_DIR}: {e}")))?;
    if !st.success() {
        return Err(Failure::new(EXIT_RUNTIME, format!("building {CRATE_DIR} failed ({st})")));
    }
    progress(&format!(
        "libp2p-kad: {} nodes, {} puts (Quorum::Majority), {} gets sequential and {} in flight",
        w.nodes, w.sets, w.gets, w.concurrency
    ));
    let out = Command::new(&exe)
        .args(["--nodes", &w.nodes.to_string(), "--sets", &w.sets.to_string(), "--gets", &w.gets.to_string()])
        .args(["--concurrency", &w.concurrency.to_string(), "--value-size", &w.value_size.to_string()])
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| Failure::new(EXIT_RUNTIME, format!("cannot run {}: {e}", exe.display())))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(text.trim()).map_err(|_| {
        Failure::new(EXIT_RUNTIME, format!("the libp2p-kad benchmark failed ({}): {}", out.status, text.trim()))
    })?;
    let num = |k: &str| v[k].as_f64().unwrap_or(0.0);
    Ok(Libp2pFigures {
        get_p50_us: num("get_p50_us"),
        get_p99_us: num("get_p99_us"),
        get_per_s: num("get_per_s"),
        concurrent_get_per_s: num("concurrent_get_per_s"),
        set_per_s: num("set_per_s"),
        failed_gets: v["failed_gets"].as_u64().unwrap_or(0),
        failed_sets: v["failed_sets"].as_u64().unwrap_or(0),
        version: v["version"].as_str().unwrap_or("unknown").to_owned(),
    })
}
