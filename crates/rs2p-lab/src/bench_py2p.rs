//! The py2p half of `rs2p-lab bench`: the same workload on a ring of real
//! py2p 0.5.607 nodes, driven by `scripts/py2p_bench.py` in the tests' venv.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use rs2p_test_support::venv;

use super::bench::{progress, BenchArgs, Figures};
use super::{Failure, EXIT_RUNTIME};

/// The py2p half, shipped with the binary.
const PY2P_SCRIPT: &str = include_str!("../../../scripts/py2p_bench.py");

/// The py2p half: the workload on a ring of real py2p nodes.
pub(super) fn bench_py2p(args: &BenchArgs, start: Instant) -> Result<Figures, Failure> {
    let python = match args.py2p_python.clone().or_else(|| std::env::var_os("RS2P_PY2P_PYTHON").map(PathBuf::from)) {
        Some(p) => p,
        None => ensure_venv(start)?,
    };
    let script = std::env::temp_dir().join(format!("rs2p-py2p-bench-{}.py", std::process::id()));
    std::fs::write(&script, PY2P_SCRIPT)
        .map_err(|e| Failure::new(EXIT_RUNTIME, format!("cannot write {}: {e}", script.display())))?;
    let out = Command::new(&python)
        .arg(&script)
        .args([
            args.nodes.to_string(),
            args.py2p_sets.max(1).to_string(),
            args.py2p_gets.max(1).to_string(),
            args.value_size.to_string(),
        ])
        .output();
    let _ = std::fs::remove_file(&script);
    let out = out.map_err(|e| Failure::new(EXIT_RUNTIME, format!("cannot run {}: {e}", python.display())))?;
    let text = String::from_utf8_lossy(&out.stdout);
    // The figures are the script's last line: py2p itself may print to
    // stdout before it (its handler of an exception in a peer does).
    let line = text.lines().rev().find(|l| l.trim_start().starts_with('{')).unwrap_or(&text);
    let v: serde_json::Value = serde_json::from_str(line.trim()).map_err(|_| {
        Failure::new(
            EXIT_RUNTIME,
            format!(
                "the py2p benchmark failed ({}): {} {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim(),
                text.trim()
            ),
        )
    })?;
    let num = |k: &str| v[k].as_f64().unwrap_or(0.0);
    progress(start, &format!("py2p: {} of {} gets correct", num("gets_correct"), args.py2p_gets));
    Ok(Figures {
        set_per_s: num("set_per_s"),
        get_per_s: num("get_per_s"),
        get_p50_us: num("get_p50_us"),
        get_p99_us: num("get_p99_us"),
    })
}

/// The test venv with py2p 0.5.607 ([`venv::default_dir`]: the one the
/// tests of this target directory use), created on first use under its lock.
fn ensure_venv(start: Instant) -> Result<PathBuf, Failure> {
    let dir = venv::default_dir();
    if !venv::is_ready(&dir) {
        progress(start, &format!("creating a venv with py2p {} in {}", venv::PY2P_VERSION, dir.display()));
    }
    venv::ensure(&dir).map_err(|e| Failure::new(EXIT_RUNTIME, e))
}
