//! The Python side: a python with py2p 0.5.607 (the shared [`venv`](crate::venv),
//! or `$RS2P_PY2P_PYTHON`), and runs of the scripts in `tests/py2p`.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use crate::venv;

/// Environment variable naming an existing python that already has py2p
/// 0.5.607 and python-snappy (skips building the venv).
pub const PYTHON_OVERRIDE_ENV: &str = "RS2P_PY2P_PYTHON";

/// Default time limit for one python run in [`run_py`].
pub const DEFAULT_PY_TIMEOUT: Duration = Duration::from_secs(120);

/// The python that has py2p 0.5.607 and python-snappy: `$RS2P_PY2P_PYTHON`,
/// else the venv at [`venv::default_dir`], built on first use. Panics (with
/// the tool's output) when that is not possible.
pub fn py2p_python() -> PathBuf {
    // The outcome, failure included, is cached so a broken install is reported
    // once per process instead of being retried by every test.
    static PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match PYTHON.get_or_init(resolve_python) {
        Ok(path) => path.clone(),
        Err(msg) => panic!("{msg}"),
    }
}

/// The repository's `tests/py2p`: the Python scripts the tests run.
pub fn scripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("..").join("tests").join("py2p")
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
    let dir = venv::default_dir();
    if !venv::is_ready(&dir) {
        eprintln!("support: building the py2p {} venv at {} (first use)", venv::PY2P_VERSION, dir.display());
    }
    venv::ensure(&dir)
}
