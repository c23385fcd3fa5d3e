//! `rs2p-lab`: rs2p's laboratory. `bench` compares rs2p with py2p 0.5.607
//! (and rust-libp2p's Kademlia) beside the TCP floor, `soak` runs a ring
//! under attack, `sim` simulates large rings in virtual time. These were
//! `rs2p bench|soak|sim`; their flags and JSON are unchanged.

mod bench;
mod bench_floor;
mod bench_instr;
mod bench_libp2p;
mod bench_py2p;
mod bench_rs2p;
mod bench_rss;
mod durability_bench;
mod scale;
mod sim;
mod sim_split;
mod soak;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

// What the lab shares with the `rs2p` command: exit codes, failures, the
// local ring of `rs2p demo`, progress lines.
pub use rs2p_cli::{demo, net_failure, progress, Failure, EXIT_NOT_FOUND, EXIT_RUNTIME, EXIT_USAGE};

/// rs2p-lab: benchmarks, the soak and the simulator of rs2p.
#[derive(Parser, Debug)]
#[command(name = "rs2p-lab", version, about)]
struct Cli {
    /// Log level (error, warn, info, debug, trace); RUST_LOG overrides it.
    #[arg(long, global = true)]
    log_level: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the same workload on an rs2p ring and a py2p 0.5.607 ring and compare.
    Bench(bench::BenchArgs),
    /// Run a ring under honest load while misbehaving peers attack it, and
    /// report what was answered, what the attacks cost, and memory.
    Soak(soak::SoakArgs),
    /// Simulate an N-node ring in one process (virtual time, latency, churn)
    /// and report hops, lookup success and traffic.
    Sim(sim::SimArgs),
    /// (internal) Memory probe used by `bench`.
    #[command(hide = true)]
    BenchRss(bench_rss::RssArgs),
    /// (internal) The callgrind guard's workload (`.ci/callgrind-guard`).
    #[command(hide = true)]
    BenchInstr(bench_instr::InstrArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default = match cli.command {
        // The attacks make every node log; only a wrong answer is news.
        Command::Soak(_) => "error",
        _ => "warn",
    };
    rs2p_cli::init_logging_with(cli.log_level.as_deref(), default);
    // The guard's workload runs without the async runtime: no other thread
    // is there to change what callgrind counts.
    let cli = match cli.command {
        Command::BenchInstr(args) => return finish(bench_instr::run(args)),
        command => Cli { command, ..cli },
    };
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Command::Bench(bench::BenchArgs { workers: Some(w), .. }) = &cli.command {
        builder.worker_threads(usize::from(*w));
    }
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Bench(args) => bench::run(args).await,
            Command::BenchRss(args) => bench_rss::rss(args).await,
            Command::Soak(args) => soak::run(args).await,
            Command::Sim(args) => sim::run(args),
            Command::BenchInstr(args) => bench_instr::run(args),
        }
    });
    finish(result)
}

fn finish(result: Result<(), Failure>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("error: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}
