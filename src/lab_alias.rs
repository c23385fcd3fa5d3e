//! `rs2p bench|soak|sim`: the lab commands moved to the `rs2p-lab` binary
//! (same subcommands, flags and JSON). These aliases say so, and run
//! `rs2p-lab` when it is installed beside `rs2p` (as `cargo build` leaves it).

use std::ffi::OsString;
use std::path::PathBuf;

use clap::Args;

use super::{Failure, EXIT_USAGE};

/// Everything after the subcommand, handed to `rs2p-lab` unchanged.
#[derive(Args, Debug)]
pub struct LabArgs {
    /// The arguments of `rs2p-lab <command>` (see `rs2p-lab <command> --help`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "ARGS")]
    pub args: Vec<OsString>,
}

/// `rs2p-lab` beside this executable, if it is there.
fn lab_binary() -> Option<PathBuf> {
    let me = std::env::current_exe().ok()?;
    let lab = me.parent()?.join(format!("rs2p-lab{}", std::env::consts::EXE_SUFFIX));
    lab.is_file().then_some(lab)
}

/// Under `cargo run` from the source tree (cargo sets `CARGO`), builds
/// `rs2p-lab` beside this executable (same profile, same target folder), so
/// that `cargo run --release -- bench` goes on working; then finds it.
fn build_lab(command: &str) -> Option<PathBuf> {
    let cargo = std::env::var_os("CARGO")?;
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    if !manifest.is_file() {
        return None;
    }
    let me = std::env::current_exe().ok()?;
    let release = me.parent()?.file_name().is_some_and(|d| d == "release");
    eprintln!("note: `rs2p {command}` moved to `rs2p-lab {command}`; building rs2p-lab first (once)");
    let mut build = std::process::Command::new(cargo);
    build.args(["build", "--quiet", "-p", "rs2p-lab", "--manifest-path"]).arg(&manifest);
    if release {
        build.arg("--release");
    }
    let built = build.status().ok()?.success();
    if built {
        lab_binary()
    } else {
        None
    }
}

/// Runs `rs2p-lab <command> <args>` in place of this process, or fails
/// with where the command went.
pub fn run(command: &str, args: LabArgs, log_level: Option<&str>) -> Result<(), Failure> {
    let Some(lab) = lab_binary().or_else(|| build_lab(command)) else {
        return Err(Failure::new(
            EXIT_USAGE,
            format!(
                "`rs2p {command}` moved to `rs2p-lab {command}` (same flags and JSON); \
                 run `cargo run --release -p rs2p-lab -- {command} ...` from the repository, \
                 or `cargo build --release` and then target/release/rs2p-lab {command}"
            ),
        ));
    };
    eprintln!("note: `rs2p {command}` moved to `rs2p-lab {command}`; running {}", lab.display());
    let mut cmd = std::process::Command::new(&lab);
    if let Some(level) = log_level {
        cmd.args(["--log-level", level]);
    }
    cmd.arg(command).args(&args.args);
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        let e = cmd.exec();
        Err(Failure::new(EXIT_USAGE, format!("cannot run {}: {e}", lab.display())))
    }
    #[cfg(not(unix))]
    {
        let status =
            cmd.status().map_err(|e| Failure::new(EXIT_USAGE, format!("cannot run {}: {e}", lab.display())))?;
        std::process::exit(status.code().unwrap_or(super::EXIT_RUNTIME.into()));
    }
}
