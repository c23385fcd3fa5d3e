//! One TLS connection's task: the handshake (as server when we accepted,
//! as client when we dialed, as py2p), then its reader task and, in this
//! task, its writer.

use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::conn_io::{read_loop, write_loop, Outbound};
use super::driver::{now, Inner};
use super::tls::Tls;
use crate::core::{ConnId, ConnReader};

/// Which end of a connection we are: with TLS, the acceptor is the server
/// and the dialer the client, as in py2p.
pub(crate) enum Side {
    /// Accepted by our listener.
    Accepted,
    /// Dialed by us, to this host.
    Dialed(String),
}

/// What a TLS connection's task needs besides the stream.
pub(super) struct TlsIo {
    pub(super) tls: Arc<Tls>,
    pub(super) rx: mpsc::Receiver<Outbound>,
    pub(super) pace: Arc<AtomicBool>,
    pub(super) queued: Arc<AtomicUsize>,
    pub(super) reader: ConnReader,
}

/// The TLS handshake of one connection (bounded by the TLS deadline; the
/// node's handshake deadline and connection limits count the connection
/// from its TCP start, and closing it aborts this task), then its reader
/// task and, in this task, its writer.
pub(super) async fn tls_io(inner: std::sync::Weak<Inner>, conn: ConnId, tcp: TcpStream, side: Side, io: TlsIo) {
    let res = match &side {
        Side::Accepted => io.tls.accept(tcp).await,
        Side::Dialed(host) => io
            .tls
            .connect(host, tcp)
            .await
            .map_err(|e| format!("{e} (is the peer on another subnet, without TLS, or not trusting us?)")),
    };
    let Some(strong) = inner.upgrade() else { return };
    let mut stream = match res {
        Ok(s) => s,
        Err(reason) => {
            tracing::debug!(conn = conn.0, "{reason}");
            strong.node(|n| n.on_transport_failed(conn, &reason, now()));
            return;
        }
    };
    if !strong.with(|st| st.conns.contains_key(&conn)) {
        // Dropped by the node while the handshake ran: close cleanly.
        drop(strong);
        let _ = stream.shutdown().await;
        return;
    }
    let (r, w) = tokio::io::split(stream);
    let reader = io.reader;
    let started = strong.with(|st| match st.conns.get_mut(&conn) {
        Some(c) => {
            let task = strong.rt.spawn(read_loop(inner, conn, r, reader));
            c.reader = Some(task.abort_handle());
            true
        }
        None => false,
    });
    drop(strong);
    if started {
        write_loop(w, io.rx, io.pace, io.queued, None).await;
    }
}
