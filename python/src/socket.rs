//! `Socket`: one mesh or chord node, the native object behind
//! rs2p.mesh.mesh_socket and rs2p.chord.chord_socket.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use pyo3::exceptions::{PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use rs2p::core::TlsIdentity;
use rs2p::core::{Config, Received};
use rs2p::mesh::ConnectError;
use rs2p::net::{serve_metrics, tls, ChordSocket, Error, MeshSocket, MetricsServer, Responsible};
use rs2p::wire::Protocol;

use crate::convert::{parse_peer, parse_u512, peer_bytes};
use crate::errors::to_py;
use crate::message::Message;
use crate::runtime::{awaitable, runtime, wait, Incoming};

/// Messages waiting for the Python handlers' dispatcher thread; beyond it
/// they go to the socket's receive queue.
const HANDLED_QUEUE: usize = 4096;

/// A mesh or chord node.
#[pyclass(module = "rs2p._rs2p", frozen)]
pub(crate) struct Socket {
    mesh: MeshSocket,
    chord: Option<ChordSocket>,
    handled: Mutex<Option<Arc<Mutex<mpsc::Receiver<Received>>>>>,
    /// The Prometheus endpoint (extra `metrics_addr`), stopped on close.
    metrics: Mutex<Option<MetricsServer>>,
}

impl Socket {
    fn chord(&self) -> PyResult<&ChordSocket> {
        self.chord.as_ref().ok_or_else(|| PyRuntimeError::new_err("not a chord socket"))
    }

    fn responsible<'py>(&self, py: Python<'py>, r: Responsible) -> PyObject {
        match r {
            Responsible::This => "self".into_py(py),
            Responsible::Peer(p) => peer_bytes(py, &p).into_py(py),
            Responsible::Nobody => py.None(),
        }
    }
}

#[pymethods]
impl Socket {
    /// Binds a node. `kind` is "mesh" or "chord".
    #[staticmethod]
    #[pyo3(signature = (kind, host, port, subnet=None, encryption=None, out_host=None, out_port=None, data_dir=None, key_list=None, id=None, tls_cert=None, tls_key=None, tls_trust=None, tls_ca=None, metrics_addr=None))]
    #[allow(clippy::too_many_arguments)]
    fn bind(
        py: Python<'_>,
        kind: &str,
        host: String,
        port: u16,
        subnet: Option<String>,
        encryption: Option<String>,
        out_host: Option<String>,
        out_port: Option<u16>,
        data_dir: Option<std::path::PathBuf>,
        key_list: Option<bool>,
        id: Option<String>,
        tls_cert: Option<std::path::PathBuf>,
        tls_key: Option<std::path::PathBuf>,
        tls_trust: Option<String>,
        tls_ca: Option<std::path::PathBuf>,
        metrics_addr: Option<String>,
    ) -> PyResult<Socket> {
        let mut cfg = match kind {
            "mesh" => Config::mesh(&host, port),
            "chord" => Config::chord(&host, port),
            _ => return Err(PyValueError::new_err("kind must be 'mesh' or 'chord'")),
        };
        if subnet.is_some() || encryption.is_some() {
            cfg.protocol = Protocol::new(
                subnet.unwrap_or_else(|| cfg.protocol.subnet.clone()),
                encryption.unwrap_or_else(|| cfg.protocol.encryption.clone()),
            );
        }
        if let Some(h) = out_host {
            cfg.out_addr.0 = h;
        }
        if let Some(p) = out_port {
            cfg.out_addr.1 = p;
        }
        cfg.data_dir = data_dir;
        if let Some(k) = key_list {
            cfg.key_list = k;
        }
        cfg.id = id;
        let read =
            |p: &std::path::Path| std::fs::read(p).map_err(|e| PyOSError::new_err(format!("{}: {e}", p.display())));
        match (tls_cert, tls_key) {
            (Some(c), Some(k)) => {
                cfg.tls.identity = Some(TlsIdentity { cert_pem: read(&c)?, key_pem: read(&k)? });
            }
            (None, None) => {}
            _ => return Err(PyValueError::new_err("tls_cert and tls_key go together")),
        }
        if let Some(text) = tls_trust {
            cfg.tls.trusted = Some(tls::parse_trust_list(&text).map_err(PyValueError::new_err)?);
        }
        if let Some(ca) = tls_ca {
            cfg.tls.ca_pem = Some(read(&ca)?);
        }
        if metrics_addr.is_some() && kind != "chord" {
            return Err(PyValueError::new_err("metrics_addr is for chord sockets"));
        }
        let addr = if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
        let is_chord = kind == "chord";
        let res = wait(py, async move {
            if is_chord {
                let c = ChordSocket::bind_with(&addr, cfg).await?;
                let metrics = match metrics_addr {
                    Some(m) => match serve_metrics(c.clone(), &m).await {
                        Ok(server) => Some(server),
                        Err(e) => {
                            let _ = c.shutdown().await;
                            return Err(e);
                        }
                    },
                    None => None,
                };
                Ok(((*c).clone(), Some(c), metrics))
            } else {
                MeshSocket::bind_with(&addr, cfg).await.map(|m| (m, None, None))
            }
        })?;
        let (mesh, chord, metrics) = res.map_err(|e| to_py(py, e))?;
        Ok(Socket { mesh, chord, handled: Mutex::new(None), metrics: Mutex::new(metrics) })
    }

    /// The node id (base58, as bytes like py2p's).
    #[getter]
    fn id<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        let id = py.allow_threads(|| self.mesh.id());
        peer_bytes(py, &id)
    }

    /// The node id as a decimal string (py2p's id_10, made an int in Python).
    #[getter]
    fn id_10(&self, py: Python<'_>) -> String {
        py.allow_threads(|| self.mesh.id().value().to_string())
    }

    /// The advertised (host, port).
    #[getter]
    fn out_addr(&self, py: Python<'_>) -> (String, u16) {
        py.allow_threads(|| self.mesh.out_addr())
    }

    /// The port the listener is bound to.
    #[getter]
    fn local_port(&self) -> u16 {
        self.mesh.local_addr().port()
    }

    /// The protocol id peers must share.
    #[getter]
    fn protocol_id(&self, py: Python<'_>) -> String {
        py.allow_threads(|| self.mesh.protocol_id())
    }

    /// SHA-256 of the TLS certificate, when the encryption is SSL.
    #[getter]
    fn tls_fingerprint(&self) -> Option<String> {
        self.mesh.tls_fingerprint()
    }

    /// Where the Prometheus endpoint listens ("host:port"), if it was asked for.
    #[getter]
    fn metrics_addr(&self) -> Option<String> {
        self.metrics.lock().ok()?.as_ref().map(|m| m.local_addr().to_string())
    }

    /// Connects to host:port and waits for the handshake; returns the peer's
    /// id, or None when that peer is already connected (the new link lost
    /// to the existing one, or the id was known) or is on another subnet.
    fn connect<'py>(&self, py: Python<'py>, host: String, port: u16) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let mesh = self.mesh.clone();
        let addr = if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
        match wait(py, async move { mesh.connect(&addr).await })? {
            Ok(peer) => Ok(Some(peer_bytes(py, &peer))),
            Err(Error::Refused(ConnectError::AlreadyConnected(_))) => Ok(None),
            Err(Error::Connect { reason, .. }) if reason.contains("duplicate connection") => Ok(None),
            // py2p's connect does not wait for the handshake, so a peer on
            // another subnet is no error there either: it just never links.
            Err(e) if e.is_wrong_subnet() => Ok(None),
            Err(e) => Err(to_py(py, e)),
        }
    }

    /// `connect` as an awaitable (rs2p.aio).
    fn connect_async<'py>(&self, py: Python<'py>, host: String, port: u16) -> PyResult<Bound<'py, PyAny>> {
        let mesh = self.mesh.clone();
        let addr = if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
        awaitable(py, async move {
            match mesh.connect(&addr).await {
                Ok(peer) => Ok(Some(peer)),
                Err(Error::Refused(ConnectError::AlreadyConnected(_))) => Ok(None),
                Err(Error::Connect { reason, .. }) if reason.contains("duplicate connection") => Ok(None),
                Err(e) if e.is_wrong_subnet() => Ok(None),
                Err(e) => Err(e),
            }
        })
    }

    /// `close` as an awaitable (rs2p.aio).
    fn close_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        if let Ok(mut m) = self.metrics.lock() {
            m.take();
        }
        let mesh = self.mesh.clone();
        awaitable(py, async move {
            let _ = mesh.shutdown().await;
            Ok(())
        })
    }

    /// `get` as an awaitable (rs2p.aio): KeyError, socket.timeout as `get`.
    fn get_async<'py>(&self, py: Python<'py>, key: Vec<u8>, timeout: f64) -> PyResult<Bound<'py, PyAny>> {
        let c = self.chord()?.clone();
        let d = Duration::from_secs_f64(timeout.max(0.0));
        awaitable(py, async move { c.get_timeout(&key, d).await })
    }

    /// `leave` as an awaitable (rs2p.aio).
    fn leave_async<'py>(&self, py: Python<'py>, timeout: f64) -> PyResult<Bound<'py, PyAny>> {
        let c = self.chord()?.clone();
        let d = Duration::from_secs_f64(timeout.max(0.0));
        awaitable(py, async move { c.leave(d).await.map(|_| ()) })
    }

    /// None when nominal, else the recent errors.
    fn status(&self, py: Python<'_>) -> Option<Vec<String>> {
        py.allow_threads(|| self.mesh.status()).err()
    }

    /// Ids of peers on connections we opened.
    fn outgoing<'py>(&self, py: Python<'py>) -> Vec<Bound<'py, PyBytes>> {
        let v = py.allow_threads(|| self.mesh.outgoing());
        v.iter().map(|p| peer_bytes(py, p)).collect()
    }

    /// Ids of peers on connections they opened.
    fn incoming<'py>(&self, py: Python<'py>) -> Vec<Bound<'py, PyBytes>> {
        let v = py.allow_threads(|| self.mesh.incoming());
        v.iter().map(|p| peer_bytes(py, p)).collect()
    }

    /// Sends [sub_flag, *args] as msg_type to every peer.
    /// Links awaiting the peer's handshake: (we opened it, dialed address
    /// or None) each.
    fn awaiting(&self, py: Python<'_>) -> Vec<(bool, Option<(String, u16)>)> {
        let mesh = self.mesh.clone();
        py.allow_threads(|| mesh.awaiting().into_iter().map(|l| (l.outgoing, l.dial_addr)).collect())
    }

    fn send(&self, py: Python<'_>, msg_type: u8, sub_flag: u8, args: Vec<Vec<u8>>) {
        let args: Vec<Bytes> = args.into_iter().map(Bytes::from).collect();
        py.allow_threads(|| self.mesh.send(msg_type, sub_flag, &args));
    }

    /// Whispers user data to one connected peer; False if not connected.
    fn whisper(&self, py: Python<'_>, peer: &[u8], args: Vec<Vec<u8>>) -> PyResult<bool> {
        let peer = parse_peer(peer)?;
        let args: Vec<Bytes> = args.into_iter().map(Bytes::from).collect();
        Ok(py.allow_threads(|| self.mesh.whisper(&peer, &args)))
    }

    /// Sends [sub_flag, *args] as msg_type to one connected peer; False if not connected.
    fn send_to(&self, py: Python<'_>, peer: &[u8], msg_type: u8, sub_flag: u8, args: Vec<Vec<u8>>) -> PyResult<bool> {
        let peer = parse_peer(peer)?;
        let args: Vec<Bytes> = args.into_iter().map(Bytes::from).collect();
        Ok(py.allow_threads(|| self.mesh.send_to(&peer, msg_type, sub_flag, &args)))
    }

    /// Up to `quantity` queued user messages, oldest first.
    fn recv(&self, py: Python<'_>, quantity: usize) -> Vec<Message> {
        let v = py.allow_threads(|| self.mesh.recv(quantity));
        v.into_iter().map(|rx| Message { rx, mesh: self.mesh.clone() }).collect()
    }

    /// The next queued user message, as an awaitable (rs2p.aio's `recv`):
    /// no thread waits for it. None once the socket is closed with nothing queued.
    fn recv_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let mesh = self.mesh.clone();
        awaitable(py, async move {
            let rx = mesh.next_message_or_closed().await;
            Ok(rx.map(|rx| Incoming(rx, mesh)))
        })
    }

    /// Routes every message the built-in handlers did not take to this
    /// module's queue instead of the receive queue: `next_handled` gives them
    /// to the Python dispatcher thread, which runs the Python handlers.
    fn enable_handlers(&self) {
        let mut h = self.handled.lock().expect("handled lock");
        if h.is_some() {
            return;
        }
        // Bounded: a peer that floods faster than the Python handlers run
        // fills it, and then its messages stay in the socket's own bounded
        // receive queue (recv) instead: none lost, no memory without bound.
        let (tx, rx) = mpsc::sync_channel::<Received>(HANDLED_QUEUE);
        self.mesh.register_handler(move |m| tx.try_send(m.clone()).is_ok());
        *h = Some(Arc::new(Mutex::new(rx)));
    }

    /// The next message for the Python handlers, or None after `timeout` seconds.
    fn next_handled(&self, py: Python<'_>, timeout: f64) -> Option<Message> {
        let rx = self.handled.lock().expect("handled lock").clone()?;
        let d = Duration::from_secs_f64(timeout.max(0.0));
        let m = py.allow_threads(|| rx.lock().ok()?.recv_timeout(d).ok())?;
        Some(Message { rx: m, mesh: self.mesh.clone() })
    }

    /// Asks every peer for its peer list.
    fn request_peers(&self, py: Python<'_>) {
        py.allow_threads(|| self.mesh.request_peers());
    }

    /// Closes the link to one peer; False if not connected.
    fn disconnect(&self, py: Python<'_>, peer: &[u8]) -> PyResult<bool> {
        let peer = parse_peer(peer)?;
        Ok(py.allow_threads(|| self.mesh.disconnect(&peer)))
    }

    /// Closes every connection and stops listening, waiting (up to 2 s) for
    /// queued frames to go out. A second close does nothing.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        if let Ok(mut m) = self.metrics.lock() {
            m.take();
        }
        let mesh = self.mesh.clone();
        let _ = wait(py, async move { mesh.shutdown().await })?;
        Ok(())
    }

    // --- chord ---

    /// Starts seeding.
    fn join(&self, py: Python<'_>) -> PyResult<()> {
        let c = self.chord()?;
        py.allow_threads(|| c.join()).map_err(|e| to_py(py, e))
    }

    /// Stops seeding and hands items to their new owners.
    fn unjoin(&self, py: Python<'_>) -> PyResult<()> {
        let c = self.chord()?;
        py.allow_threads(|| c.unjoin()).map_err(|e| to_py(py, e))
    }

    /// Unjoins and waits (up to `timeout` seconds) for every handoff to be confirmed.
    fn leave(&self, py: Python<'_>, timeout: f64) -> PyResult<()> {
        let c = self.chord()?.clone();
        let d = Duration::from_secs_f64(timeout.max(0.0));
        wait(py, async move { c.leave(d).await })?.map_err(|e| to_py(py, e))?;
        Ok(())
    }

    /// True while not storing data for the ring.
    #[getter]
    fn leeching(&self, py: Python<'_>) -> PyResult<bool> {
        let c = self.chord()?;
        Ok(py.allow_threads(|| c.is_leeching()))
    }

    /// The value at `key`: KeyError when not found, socket.timeout on timeout.
    fn get<'py>(&self, py: Python<'py>, key: Vec<u8>, timeout: f64) -> PyResult<Bound<'py, PyBytes>> {
        let c = self.chord()?.clone();
        let d = Duration::from_secs_f64(timeout.max(0.0));
        let v = wait(py, async move { c.get_timeout(&key, d).await })?.map_err(|e| to_py(py, e))?;
        Ok(PyBytes::new_bound(py, &v))
    }

    /// Stores `value` at `key`; an empty value deletes.
    fn set(&self, py: Python<'_>, key: Vec<u8>, value: Vec<u8>) -> PyResult<()> {
        let c = self.chord()?;
        py.allow_threads(|| c.set(&key, value)).map_err(|e| to_py(py, e))
    }

    /// The network-wide key list as this node knows it now.
    fn keys<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyBytes>>> {
        let c = self.chord()?;
        let v = py.allow_threads(|| c.keys());
        Ok(v.iter().map(|k| PyBytes::new_bound(py, k)).collect())
    }

    /// Ids of the seeding peers.
    fn data_storing<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyBytes>>> {
        let c = self.chord()?;
        let v = py.allow_threads(|| c.data_storing());
        Ok(v.iter().map(|p| peer_bytes(py, p)).collect())
    }

    /// Who is responsible for a key (decimal text of an int): "self", a peer id, or None.
    fn find(&self, py: Python<'_>, key: &str) -> PyResult<PyObject> {
        let c = self.chord()?;
        let k = parse_u512(key)?;
        let r = py.allow_threads(|| c.find(&k));
        Ok(self.responsible(py, r))
    }

    /// py2p's find_prev.
    fn find_prev(&self, py: Python<'_>, key: &str) -> PyResult<PyObject> {
        let c = self.chord()?;
        let k = parse_u512(key)?;
        let r = py.allow_threads(|| c.find_prev(&k));
        Ok(self.responsible(py, r))
    }

    /// The successor: "self", a peer id, or None.
    fn next(&self, py: Python<'_>) -> PyResult<PyObject> {
        let c = self.chord()?;
        let r = py.allow_threads(|| c.next());
        Ok(self.responsible(py, r))
    }

    /// The predecessor: "self", a peer id, or None.
    fn prev(&self, py: Python<'_>) -> PyResult<PyObject> {
        let c = self.chord()?;
        let r = py.allow_threads(|| c.prev());
        Ok(self.responsible(py, r))
    }

    /// Closes the outgoing link that adds least to the ring.
    fn disconnect_least_efficient(&self, py: Python<'_>) -> PyResult<bool> {
        let c = self.chord()?;
        Ok(py.allow_threads(|| c.disconnect_least_efficient()))
    }

    /// Items this node holds, as (method, key as decimal text, value).
    #[pyo3(signature = (start="0", end=None))]
    fn dump_data<'py>(
        &self,
        py: Python<'py>,
        start: &str,
        end: Option<&str>,
    ) -> PyResult<Vec<(String, String, Bound<'py, PyBytes>)>> {
        let c = self.chord()?;
        let s = parse_u512(start)?;
        let e = end.map(parse_u512).transpose()?;
        let v = py.allow_threads(|| c.dump_data(&s, e.as_ref()));
        Ok(v.into_iter().map(|(m, k, val)| (format!("{m}"), k.to_string(), PyBytes::new_bound(py, &val))).collect())
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        let _g = runtime().enter();
        let _ = self.mesh.close();
    }
}
