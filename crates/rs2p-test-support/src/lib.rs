//! What rs2p's integration tests (and `rs2p-lab`) share:
//!
//! * [`wait`]: bounded polling, the one way the tests wait for a condition;
//! * [`sim_ring`]: rings of simulated nodes;
//! * [`instr`]: the simulated workload the callgrind guard counts;
//! * [`cli`]: the `rs2p` binary run as clients and `rs2p node` processes
//!   (found at run time, see [`cli::bin`]), and loopback rings of them;
//! * [`netns`]: hosts made of network namespaces, for partition tests;
//! * [`venv`] and [`python`]: the py2p 0.5.607 virtualenv (built once, under
//!   a lock) and runs of the scripts in `tests/py2p`;
//! * [`py2p_node`]: a py2p node in a child process.
//!
//! A test file uses it as `use rs2p_test_support as support;`.

use std::time::Duration;

pub mod cli;
pub mod instr;
pub mod netns;
pub mod py2p_node;
pub mod python;
pub mod sim_ring;
pub mod venv;
pub mod wait;

pub use python::{py2p_python, run_py, run_py_timeout, scripts_dir, DEFAULT_PY_TIMEOUT, PYTHON_OVERRIDE_ENV};
pub use venv::PY2P_VERSION;

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
