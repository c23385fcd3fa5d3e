//! The deterministic in-memory network: every simulated test family in one
//! test binary (one link instead of eight, and the families run in
//! parallel). Each module is one family; each checks that the same seed
//! gives the same run (`same_seed_same_trace`).

mod clock;
mod fingers;
mod heal;
mod instr;
mod mesh;
mod repair;
mod ring;
mod scale;
mod status;
