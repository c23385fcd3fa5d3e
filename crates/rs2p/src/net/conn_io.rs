//! The I/O of one connection: its reader task (which decodes frames outside
//! the node's lock) and its writer task (which encodes, batches and, for
//! py2p peers, paces them), over plain TCP or TLS.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use super::direct_write::DirectWrite;
use super::driver::{now, Inner};
use crate::core::{ConnId, ConnReader, Inbound, Outgoing};

/// Gap between frames written to a py2p peer, so that its reader sees them one
/// at a time (py2p mis-reads a buffer left holding exactly 4 bytes, D2).
const PY2P_PACING: Duration = Duration::from_micros(1500);
/// Delay before a py2p peer is sent the first frame after a quiet spell. py2p's
/// lookup sends its retrieve *before* registering the pending answer; an answer
/// that comes back before py2p's user thread runs again (common on a busy
/// machine) is dropped as unsolicited and the py2p `get` times out. py2p polls
/// for answers every 100 ms, so a 20 ms later answer costs it nothing.
const PY2P_ANSWER_DELAY: Duration = Duration::from_millis(20);
/// Largest batch of frames written to an rs2p peer with one system call.
const WRITE_BATCH: usize = 256 * 1024;

/// What the node queues for a connection's writer.
#[derive(Debug)]
pub(crate) enum Outbound {
    /// A frame encoded by the node.
    Frame(Bytes),
    /// A message the writer encodes.
    Message(Box<Outgoing>),
}

impl Outbound {
    /// The bytes it counts for in the queue bound (the same on queueing and
    /// on taking out).
    pub fn len(&self) -> usize {
        match self {
            Outbound::Frame(f) => f.len(),
            Outbound::Message(m) => m.len_hint(),
        }
    }

    /// The frame's bytes, encoding it if the node did not.
    pub fn into_frame(self) -> Option<Bytes> {
        match self {
            Outbound::Frame(f) => Some(f),
            Outbound::Message(m) => match m.encode() {
                Ok(f) => Some(f),
                Err(e) => {
                    tracing::warn!("frame not sent: {e}");
                    None
                }
            },
        }
    }
}

pub(crate) struct ConnIo {
    pub tx: mpsc::Sender<Outbound>,
    pub writer: tokio::task::JoinHandle<()>,
    /// Aborting it stops the reading: the reader task; while the TLS
    /// handshake of an accepted connection runs, the task making it (which
    /// then becomes the writer); none while a dialed one's runs.
    pub reader: Option<AbortHandle>,
    /// The peer is py2p: one frame per write, spaced.
    pub pace: Arc<AtomicBool>,
    /// Bytes in the write queue.
    pub queued: Arc<AtomicUsize>,
    /// Plain TCP: the socket, for direct writes while the writer is idle.
    pub direct: Option<Arc<DirectWrite>>,
}

/// Reads a connection: splits, decompresses, parses and checks the ids of
/// its frames here, outside the node's lock, and hands the node finished
/// messages.
pub(crate) async fn read_loop(
    inner: std::sync::Weak<Inner>,
    conn: ConnId,
    mut r: impl AsyncRead + Unpin,
    mut reader: ConnReader,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let res = r.read(&mut buf).await;
        let Some(inner) = inner.upgrade() else { return };
        match res {
            Ok(0) | Err(_) => {
                inner.node(|n| n.on_closed(conn, now()));
                return;
            }
            Ok(k) => {
                let frames = reader.feed(&buf[..k]);
                let broken = frames.iter().any(|f| matches!(f, Inbound::Broken(_)));
                let pending = reader.pending();
                let ctx = inner.node(|n| n.on_frames(conn, frames, k, pending, now()));
                if broken {
                    // The node closed the connection.
                    return;
                }
                reader.update(ctx);
            }
        }
    }
}

pub(crate) async fn write_loop(
    mut w: impl AsyncWrite + Unpin,
    mut rx: mpsc::Receiver<Outbound>,
    pace: Arc<AtomicBool>,
    queued: Arc<AtomicUsize>,
    direct: Option<Arc<DirectWrite>>,
) {
    // Idle again (direct writes may resume) once a write leaves the queue empty.
    let wrote = |rx: &mpsc::Receiver<Outbound>| {
        if let Some(d) = &direct {
            d.writer_wrote(rx);
        }
    };
    let mut batch: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut last_write = tokio::time::Instant::now();
    while let Some(out) = rx.recv().await {
        queued.fetch_sub(out.len(), Ordering::Relaxed);
        let Some(frame) = out.into_frame() else {
            wrote(&rx);
            continue;
        };
        if pace.load(Ordering::Relaxed) {
            // A burst to py2p starts PY2P_ANSWER_DELAY late (py2p's lookup race).
            if last_write.elapsed() >= PY2P_ANSWER_DELAY {
                tokio::time::sleep(PY2P_ANSWER_DELAY).await;
            }
            // One frame per write, spaced, for py2p's reader.
            last_write = tokio::time::Instant::now();
            // The flush sends what TLS buffered (a no-op on plain TCP).
            if w.write_all(&frame).await.is_err() || w.flush().await.is_err() {
                break;
            }
            wrote(&rx);
            if !rx.is_empty() {
                tokio::time::sleep(PY2P_PACING).await;
            }
            continue;
        }
        batch.clear();
        batch.extend_from_slice(&frame);
        while batch.len() < WRITE_BATCH {
            match rx.try_recv() {
                Ok(out) => {
                    queued.fetch_sub(out.len(), Ordering::Relaxed);
                    if let Some(f) = out.into_frame() {
                        batch.extend_from_slice(&f);
                    }
                }
                Err(_) => break,
            }
        }
        if w.write_all(&batch).await.is_err() || w.flush().await.is_err() {
            break;
        }
        wrote(&rx);
    }
    let _ = w.shutdown().await;
}
