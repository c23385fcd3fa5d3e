//! `rs2p-lab bench-instr`: the callgrind guard's workload
//! ([`rs2p_test_support::instr`]) run once, for a count by hand:
//!
//! ```sh
//! valgrind --tool=callgrind --toggle-collect='*instr::measured_*' \
//!     target/release/rs2p-lab bench-instr --phase gets --ops 200
//! ```
//!
//! (instructions collected / ops = instructions per get). CI counts the
//! same workload in the test build (`.ci/callgrind-guard`).

use clap::{Args, ValueEnum};

use rs2p_test_support::instr::{key, measured_gets, measured_sets, ring, value, NODES, PRESET};

use super::{Failure, EXIT_RUNTIME};

/// What to count.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Phase {
    /// `--ops` sets of new keys.
    Sets,
    /// `--ops` gets of the preset keys.
    Gets,
}

/// Hidden helper: the guard's workload.
#[derive(Args, Debug)]
pub struct InstrArgs {
    #[arg(long, value_enum)]
    pub phase: Phase,
    #[arg(long, default_value_t = 200)]
    pub ops: usize,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// `rs2p-lab bench-instr`: runs the workload; fails unless every get read its value.
pub fn run(args: InstrArgs) -> Result<(), Failure> {
    let (mut sim, nodes) = ring(args.seed);
    let frames = sim.frames;
    match args.phase {
        Phase::Sets => {
            measured_sets(&mut sim, &nodes, args.ops);
            // Every set is readable (outside the count).
            for i in (0..args.ops).step_by(17) {
                match sim.get(nodes[(i + 3) % NODES], &key(PRESET + i)) {
                    Ok(v) if v == value(PRESET + i) => {}
                    other => return Err(Failure::new(EXIT_RUNTIME, format!("set {i} reads back as {other:?}"))),
                }
            }
        }
        Phase::Gets => {
            let right = measured_gets(&mut sim, &nodes, args.ops);
            if right != args.ops {
                return Err(Failure::new(
                    EXIT_RUNTIME,
                    format!("{right} of {} gets read their value within the phase", args.ops),
                ));
            }
        }
    }
    println!("{{\"phase\": \"{:?}\", \"ops\": {}, \"frames\": {}}}", args.phase, args.ops, sim.frames - frames);
    Ok(())
}
