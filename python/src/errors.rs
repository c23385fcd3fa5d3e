//! rs2p's errors as the exceptions py2p raises.

use pyo3::exceptions::{PyKeyError, PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use rs2p::core::GetError;
use rs2p::net::Error;

/// The socket.timeout exception (`TimeoutError` on Python >= 3.10).
pub(crate) fn timeout_error(py: Python<'_>, msg: String) -> PyErr {
    match py.import_bound("socket").and_then(|m| m.getattr("timeout")) {
        Ok(cls) => PyErr::from_type_bound(cls.downcast_into().expect("socket.timeout is a type"), msg),
        Err(e) => e,
    }
}

pub(crate) fn to_py(py: Python<'_>, e: Error) -> PyErr {
    match e {
        Error::Get(GetError::NotFound) | Error::Get(GetError::NoAgreement) => PyKeyError::new_err(e.to_string()),
        Error::KeyNotFound(k) => PyKeyError::new_err(k),
        Error::Get(GetError::Timeout) | Error::Get(GetError::Unavailable) => timeout_error(py, e.to_string()),
        Error::Bind { .. } | Error::Connect { .. } | Error::BadAddress(_) => PyOSError::new_err(e.to_string()),
        Error::UnknownEncryption(_) => PyValueError::new_err(e.to_string()),
        other => PyRuntimeError::new_err(other.to_string()),
    }
}
