//! The py2p 0.5.607 virtualenv, built once and shared by the integration
//! tests and `rs2p-lab bench`.
//!
//! [`ensure`] builds it (with `python3 -m venv` and pip, so PyPI must be
//! reachable the first time) unless a complete one is there. Building is
//! guarded by an exclusive lock on `py2p-venv-0.5.607.lock` beside it, so
//! threads of one process and separate processes (parallel test binaries,
//! cargo-nextest, two `cargo test` runs, `rs2p-lab bench`) may all ask at
//! once: one builds, the others wait for it; a marker inside the venv
//! ([`READY_MARKER`]), written last, says it is complete.
//!
//! Its default place, [`default_dir`], is `tmp/py2p-venv-0.5.607` in the
//! cargo target directory the running executable was built in (the
//! `$CARGO_TARGET_TMPDIR` of the integration tests), so that the tests and
//! `rs2p-lab` built into one target directory share one venv.

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The py2p release the tests compare against.
pub const PY2P_VERSION: &str = "0.5.607";

/// The venv directory's name.
pub const VENV_NAME: &str = "py2p-venv-0.5.607";

/// Written inside the venv once it is complete. Renamed whenever
/// [`PIP_PACKAGES`] changes, so that an older venv is rebuilt.
pub const READY_MARKER: &str = ".ready-6";

/// What pip installs. `prometheus_client` parses the `--metrics` output in
/// tests/observability.rs; `cryptography` makes py2p's SSL mode work
/// (tests/tls.rs, interop_chord); `maturin` builds the Python package
/// (python/), `pytest` runs its tests and py2p's own (`pytest-xdist` runs
/// py2p's test_mesh.py's 8 tests at once: they mostly sleep, on ports of
/// their own), and `mypy`'s stubtest checks its type stubs (tests/python.rs).
pub const PIP_PACKAGES: [&str; 8] = [
    "py2p==0.5.607",
    "python-snappy",
    "prometheus_client==0.21.1",
    "cryptography==50.0.2",
    "pytest==9.2.0",
    "maturin==1.16.0",
    "mypy==2.4.1",
    "pytest-xdist==3.8.0",
];

/// The cargo target directory the running executable lives in: the nearest
/// ancestor of its directory holding cargo's `CACHEDIR.TAG` (a test binary
/// is `target/<profile>/deps/<name>-<hash>`, a binary `target/<profile>/<name>`).
pub fn target_dir() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    exe.ancestors().skip(1).find(|d| d.join("CACHEDIR.TAG").is_file()).map(Path::to_path_buf)
}

/// Where the venv lives by default: `tmp/py2p-venv-0.5.607` in
/// [`target_dir`]; when the executable is not in a target directory (an
/// installed `rs2p-lab`), `target/tmp/` of the source tree it was built from
/// if that is still there, else `target/tmp/` under the current directory.
pub fn default_dir() -> PathBuf {
    if let Some(target) = target_dir() {
        return target.join("tmp").join(VENV_NAME);
    }
    // The repository root: this crate is crates/rs2p-test-support in it.
    let tree = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    let target = if tree.join("Cargo.toml").is_file() { tree.join("target") } else { PathBuf::from("target") };
    target.join("tmp").join(VENV_NAME)
}

/// The venv's python (whether or not it exists yet).
pub fn python(venv: &Path) -> PathBuf {
    venv.join("bin").join("python")
}

/// Whether a complete venv is at `venv`.
pub fn is_ready(venv: &Path) -> bool {
    venv.join(READY_MARKER).exists()
}

/// Builds the venv at `venv` unless a complete one is there, and returns its
/// python; safe to call from many threads and processes at once. The error
/// says which step failed, with the tool's output.
pub fn ensure(venv: &Path) -> Result<PathBuf, String> {
    let python = python(venv);
    let marker = venv.join(READY_MARKER);
    // The marker is written after everything else, so seeing it means done.
    if marker.exists() {
        return Ok(python);
    }
    let parent = venv.parent().ok_or_else(|| format!("venv dir {} has no parent", venv.display()))?;
    fs::create_dir_all(parent).map_err(|e| format!("creating {}: {e}", parent.display()))?;
    let name = venv.file_name().map_or_else(|| VENV_NAME.into(), |n| n.to_string_lossy());
    let lock_path = parent.join(format!("{name}.lock"));
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| format!("opening lock file {}: {e}", lock_path.display()))?;
    lock_exclusive(&lock, &lock_path)?;
    // Someone else may have finished while we waited for the lock.
    if marker.exists() {
        return Ok(python);
    }
    // Anything here without the marker is a build that died half way.
    if venv.exists() {
        fs::remove_dir_all(venv).map_err(|e| format!("removing incomplete venv {}: {e}", venv.display()))?;
    }

    let out = Command::new("python3").args(["-m", "venv"]).arg(venv).stdin(Stdio::null()).output();
    check_tool("python3 -m venv", out)?;

    let out = Command::new(&python)
        .args(["-m", "pip", "install", "--disable-pip-version-check", "--no-input", "-q"])
        .args(PIP_PACKAGES)
        .env("PIP_NO_INPUT", "1")
        .stdin(Stdio::null())
        .output();
    check_tool(&format!("pip install {}", PIP_PACKAGES.join(" ")), out)?;

    // Prove the install is the one we want before declaring it ready.
    let probe = "import snappy, py2p, py2p.base as b, py2p.ssl_wrapper, prometheus_client.parser, pytest; \
                 assert py2p.__version__ == '0.5.607', py2p.__version__; \
                 assert b.flags.snappy in b.compression, b.compression";
    let out = Command::new(&python).args(["-c", probe]).stdin(Stdio::null()).output();
    check_tool("py2p import check", out)?;

    fs::write(&marker, format!("py2p {PY2P_VERSION}\n")).map_err(|e| format!("writing {}: {e}", marker.display()))?;
    // The lock is released when `lock` is dropped (or the process exits).
    drop(lock);
    Ok(python)
}

/// Blocks until this process holds `lock` exclusively (`flock(2)`: released
/// when the file is closed, also when the holder dies).
fn lock_exclusive(lock: &File, path: &Path) -> Result<(), String> {
    lock.lock().map_err(|e| format!("locking {}: {e}", path.display()))
}

fn check_tool(what: &str, out: std::io::Result<Output>) -> Result<(), String> {
    let out = out.map_err(|e| format!("py2p venv: cannot run {what}: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "py2p venv: {what} failed ({}).\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn default_dir_is_in_the_target_dir_of_the_test() {
        let target = target_dir().expect("a test binary runs from a cargo target directory");
        assert_eq!(default_dir(), target.join("tmp").join(VENV_NAME));
    }

    /// While another holder has the lock, `ensure` waits for it, then finds
    /// the venv that holder completed instead of building a second one.
    #[test]
    fn ensure_waits_for_the_lock_holder_and_takes_its_venv() {
        let parent = std::env::temp_dir().join(format!("rs2p-venv-lock-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&parent);
        let venv = parent.join("venv");
        fs::create_dir_all(&venv).unwrap();
        let lock = File::create(parent.join("venv.lock")).unwrap();
        lock.lock().unwrap();
        let start = Instant::now();
        let waiter = {
            let venv = venv.clone();
            std::thread::spawn(move || (ensure(&venv), start.elapsed()))
        };
        std::thread::sleep(Duration::from_millis(300));
        assert!(!waiter.is_finished(), "ensure did not wait for the lock");
        fs::write(venv.join(READY_MARKER), "test\n").unwrap();
        drop(lock);
        let (got, waited) = waiter.join().unwrap();
        assert_eq!(got, Ok(python(&venv)));
        assert!(waited >= Duration::from_millis(300), "returned after {waited:?}");
        assert!(venv.join(READY_MARKER).exists(), "the completed venv was rebuilt");
        fs::remove_dir_all(&parent).unwrap();
    }
}
