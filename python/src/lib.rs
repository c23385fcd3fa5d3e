//! `rs2p._rs2p`: the native half of the `rs2p` Python package.
//!
//! One tokio multi-thread runtime, started on first use, runs every socket's
//! tasks. The Python-facing classes (`rs2p.mesh.mesh_socket`,
//! `rs2p.chord.chord_socket`) are thin Python wrappers around [`Socket`]: they
//! turn py2p's arguments into bytes and this module's errors into py2p's.
//!
//! Every call that may wait on the network releases the GIL and wakes every
//! 100 ms to let Python handle signals (Ctrl-C raises `KeyboardInterrupt`).
//! Calls that only take the node's lock release the GIL too, so that a
//! runtime thread holding that lock never waits on a Python thread holding
//! the GIL.

// PyO3 0.22's #[pymethods] expansion converts PyErr into PyErr, which
// clippy flags on every fallible method (fixed in PyO3 0.23).
#![allow(clippy::useless_conversion)]

mod convert;
mod errors;
mod message;
mod runtime;
mod socket;

use pyo3::prelude::*;

use message::Message;
use socket::Socket;

#[pymodule]
fn _rs2p(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Socket>()?;
    m.add_class::<Message>()?;
    Ok(())
}
