//! Ids and ring positions between Python and rs2p.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use rs2p::core::PeerId;
use rs2p::ring::U512;

pub(crate) fn peer_bytes<'py>(py: Python<'py>, p: &PeerId) -> Bound<'py, PyBytes> {
    PyBytes::new_bound(py, p.as_str().as_bytes())
}

pub(crate) fn parse_peer(id: &[u8]) -> PyResult<PeerId> {
    PeerId::parse(id).ok_or_else(|| PyValueError::new_err("not a base58 node id"))
}

pub(crate) fn parse_u512(text: &str) -> PyResult<U512> {
    text.parse::<U512>().map_err(|_| PyValueError::new_err("not an integer in [0, 2**512)"))
}
