//! Shared helpers for integration tests that run the real py2p 0.5.607.
//!
//! Use from a test file with `mod support;`.
//!
//! The venv also has `prometheus_client` (pinned), whose parser checks the
//! metrics rs2p serves.
//!
//! [`py2p_python`] gives a Python interpreter that has `py2p==0.5.607` and
//! `python-snappy` installed. Unless `RS2P_PY2P_PYTHON` names such an
//! interpreter, a virtualenv is built on first use at
//! `$CARGO_TARGET_TMPDIR/py2p-venv-0.5.607` (with `python3 -m venv` and pip, so
//! PyPI must be reachable the first time). Building is guarded by an exclusive
//! lock on `py2p-venv-0.5.607.lock` beside it, so threads of one test binary and
//! separate test processes (cargo-nextest, two `cargo test` runs) may all ask at
//! once; a `.ready` marker inside the venv, written last, says it is complete.

#![allow(dead_code)]

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

/// The py2p release the tests compare against.
pub const PY2P_VERSION: &str = "0.5.607";

/// Environment variable naming an existing python that already has py2p
/// 0.5.607 and python-snappy (skips building the venv).
pub const PYTHON_OVERRIDE_ENV: &str = "RS2P_PY2P_PYTHON";

/// Default time limit for one python run in [`run_py`].
pub const DEFAULT_PY_TIMEOUT: Duration = Duration::from_secs(120);

const VENV_NAME: &str = "py2p-venv-0.5.607";
/// Renamed whenever `PIP_PACKAGES` changes, so that an older venv is rebuilt.
const READY_MARKER: &str = ".ready-3";
/// `prometheus_client` parses the `--metrics` output in tests/observability.rs;
/// `cryptography` makes py2p's SSL mode work (tests/tls.rs, interop_chord).
const PIP_PACKAGES: [&str; 4] = ["py2p==0.5.607", "python-snappy", "prometheus_client==0.21.1", "cryptography==50.0.2"];

/// The python that has py2p 0.5.607 and python-snappy, building the venv on
/// first use. Panics (with the tool's output) when that is not possible.
pub fn py2p_python() -> PathBuf {
    // The outcome, failure included, is cached so a broken install is reported
    // once per process instead of being retried by every test.
    static PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match PYTHON.get_or_init(resolve_python) {
        Ok(path) => path.clone(),
        Err(msg) => panic!("{msg}"),
    }
}

/// `$CARGO_MANIFEST_DIR/tests/py2p`: the Python scripts the tests run.
pub fn scripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("py2p")
}

/// The venv directory (whether or not it exists yet).
pub fn venv_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(VENV_NAME)
}

/// Runs `script` (a file name in [`scripts_dir`], or an absolute path) with the
/// py2p python, feeding `stdin`, and returns its exit status, stdout and stderr.
/// The child is killed, and the test panics, after [`DEFAULT_PY_TIMEOUT`].
pub fn run_py(script: &str, args: &[&str], stdin: &[u8]) -> (ExitStatus, Vec<u8>, String) {
    run_py_timeout(script, args, stdin, DEFAULT_PY_TIMEOUT)
}

/// [`run_py`] with an explicit time limit.
pub fn run_py_timeout(script: &str, args: &[&str], stdin: &[u8], timeout: Duration) -> (ExitStatus, Vec<u8>, String) {
    let python = py2p_python();
    let script_path = if Path::new(script).is_absolute() { PathBuf::from(script) } else { scripts_dir().join(script) };
    let mut cmd = Command::new(&python);
    cmd.arg(&script_path)
        .args(args)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let what = format!("{} {} {}", python.display(), script_path.display(), args.join(" "));
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start `{what}`: {e}"));

    // Feed stdin and drain both pipes on their own threads so a full pipe can
    // never block the child (or us).
    let mut child_in = child.stdin.take().expect("piped stdin");
    let input = stdin.to_vec();
    let writer = thread::spawn(move || {
        // A child that exits early closes its stdin: that is not our error.
        let _ = child_in.write_all(&input);
    });
    let mut child_out = child.stdout.take().expect("piped stdout");
    let reader_out = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = child_out.read_to_end(&mut buf);
        buf
    });
    let mut child_err = child.stderr.take().expect("piped stderr");
    let reader_err = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = child_err.read_to_end(&mut buf);
        buf
    });

    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                let _ = writer.join();
                let _ = reader_out.join();
                let err = reader_err.join().unwrap_or_default();
                panic!(
                    "`{what}` did not finish within {timeout:?} and was killed; stderr:\n{}",
                    String::from_utf8_lossy(&err)
                );
            }
            Ok(None) => thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("waiting for `{what}`: {e}"),
        }
    };
    let _ = writer.join();
    let out = reader_out.join().expect("stdout reader thread");
    let err = reader_err.join().expect("stderr reader thread");
    (status, out, String::from_utf8_lossy(&err).into_owned())
}

fn resolve_python() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os(PYTHON_OVERRIDE_ENV) {
        let p = PathBuf::from(p);
        return if p.exists() { Ok(p) } else { Err(format!("{PYTHON_OVERRIDE_ENV}={} does not exist", p.display())) };
    }
    ensure_venv(&venv_dir())
}

fn venv_python(venv: &Path) -> PathBuf {
    venv.join("bin").join("python")
}

/// Builds the venv at `venv` unless a complete one is there; safe to call from
/// many threads and processes at once.
fn ensure_venv(venv: &Path) -> Result<PathBuf, String> {
    let python = venv_python(venv);
    let marker = venv.join(READY_MARKER);
    // The marker is written after everything else, so seeing it means done.
    if marker.exists() {
        return Ok(python);
    }
    let parent = venv.parent().expect("venv dir has a parent");
    fs::create_dir_all(parent).map_err(|e| format!("creating {}: {e}", parent.display()))?;
    let lock_path = parent.join(format!("{VENV_NAME}.lock"));
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
    eprintln!("support: building the py2p {PY2P_VERSION} venv at {} (first use)", venv.display());

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
    let probe = "import snappy, py2p, py2p.base as b, py2p.ssl_wrapper, prometheus_client.parser; \
                 assert py2p.__version__ == '0.5.607', py2p.__version__; \
                 assert b.flags.snappy in b.compression, b.compression";
    let out = Command::new(&python).args(["-c", probe]).stdin(Stdio::null()).output();
    check_tool("py2p import check", out)?;

    fs::write(&marker, format!("py2p {PY2P_VERSION}\n")).map_err(|e| format!("writing {}: {e}", marker.display()))?;
    // The lock is released when `lock` is dropped.
    drop(lock);
    Ok(python)
}

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
pub mod cli;
pub mod netns;
pub mod py2p_node;

/// Waits until the peer closes `s` (EOF or reset); false after `limit`.
pub async fn closed_by_peer(s: &mut tokio::net::TcpStream, limit: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 4096];
    tokio::time::timeout(limit, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await
    .is_ok()
}

/// Polls `cond` every 50 ms for up to `limit`; false if it never held.
pub async fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
