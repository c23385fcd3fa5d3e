//! A received user message, as rs2p.base.message wraps it.

use bytes::Bytes;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use rs2p::core::Received;
use rs2p::net::MeshSocket;

/// A received user message: its type, sender, time and packets.
#[pyclass(module = "rs2p._rs2p", frozen)]
pub(crate) struct Message {
    pub(crate) rx: Received,
    pub(crate) mesh: MeshSocket,
}

#[pymethods]
impl Message {
    /// Packet 0: the message type (py2p's flags.broadcast, flags.whisper, ...).
    #[getter]
    fn msg_type(&self) -> u8 {
        self.rx.msg.msg_type
    }

    /// The sender's id (base58 bytes).
    #[getter]
    fn sender<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new_bound(py, &self.rx.msg.sender)
    }

    /// Seconds since the epoch, on the sender's clock.
    #[getter]
    fn time(&self) -> u64 {
        self.rx.msg.time
    }

    /// The message id (py2p's `msg.id`).
    #[getter]
    fn id(&self) -> &str {
        &self.rx.id
    }

    /// The payload: the sub-flag as a one-byte bytes object, then the arguments.
    #[getter]
    fn payload<'py>(&self, py: Python<'py>) -> Vec<Bound<'py, PyBytes>> {
        self.rx.msg.payload.iter().map(|b| PyBytes::new_bound(py, b)).collect()
    }

    /// Answers the sender with user data (through a route request when not connected).
    fn reply(&self, py: Python<'_>, args: Vec<Vec<u8>>) {
        let args: Vec<Bytes> = args.into_iter().map(Bytes::from).collect();
        py.allow_threads(|| self.mesh.reply(&self.rx, &args));
    }
}
