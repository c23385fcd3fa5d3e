//! Where the extension's work runs: one tokio runtime, blocking waits that
//! release the GIL and let Ctrl-C through, and awaitables for rs2p.aio.

use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use rs2p::core::{PeerId, Received};
use rs2p::net::{Error, MeshSocket};

use crate::convert::peer_bytes;
use crate::errors::to_py;
use crate::message::Message;

pub(crate) fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("rs2p-runtime")
            .build()
            .expect("the rs2p tokio runtime starts")
    })
}

/// `fut` as a Python awaitable of the running asyncio loop, driven on the
/// extension's runtime (rs2p.aio): no thread waits for it.
pub(crate) fn awaitable<'py, F, T>(py: Python<'py>, fut: F) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = Result<T, Error>> + Send + 'static,
    T: Send + 'static,
    T: for<'a> ToPy<'a>,
{
    static INIT: OnceLock<()> = OnceLock::new();
    INIT.get_or_init(|| {
        let _ = pyo3_async_runtimes::tokio::init_with_runtime(runtime());
    });
    pyo3_async_runtimes::tokio::future_into_py(py, async move {
        let r = fut.await;
        Python::with_gil(|py| match r {
            Ok(v) => Ok(v.to_py(py)),
            Err(e) => Err(to_py(py, e)),
        })
    })
}

/// What an awaitable resolves to.
pub(crate) trait ToPy<'a> {
    fn to_py(self, py: Python<'a>) -> PyObject;
}

impl<'a> ToPy<'a> for Bytes {
    fn to_py(self, py: Python<'a>) -> PyObject {
        PyBytes::new_bound(py, &self).into_py(py)
    }
}

impl<'a> ToPy<'a> for Option<PeerId> {
    fn to_py(self, py: Python<'a>) -> PyObject {
        match self {
            Some(p) => peer_bytes(py, &p).into_py(py),
            None => py.None(),
        }
    }
}

/// A received message and the socket that answers it.
pub(crate) struct Incoming(pub(crate) Received, pub(crate) MeshSocket);

impl<'a> ToPy<'a> for Incoming {
    fn to_py(self, py: Python<'a>) -> PyObject {
        Message { rx: self.0, mesh: self.1 }.into_py(py)
    }
}

impl<'a> ToPy<'a> for Option<Incoming> {
    fn to_py(self, py: Python<'a>) -> PyObject {
        match self {
            Some(m) => m.to_py(py),
            None => py.None(),
        }
    }
}

impl<'a> ToPy<'a> for () {
    fn to_py(self, py: Python<'a>) -> PyObject {
        py.None()
    }
}

/// Runs `fut` on the runtime with the GIL released, checking for signals
/// (Ctrl-C) every 100 ms.
pub(crate) fn wait<F>(py: Python<'_>, fut: F) -> PyResult<F::Output>
where
    F: Future + Send,
    F::Output: Send,
{
    let mut fut = Box::pin(fut);
    loop {
        let slice = py.allow_threads(|| {
            runtime().block_on(async { tokio::time::timeout(Duration::from_millis(100), &mut fut).await })
        });
        match slice {
            Ok(v) => return Ok(v),
            Err(_) => py.check_signals()?,
        }
    }
}
