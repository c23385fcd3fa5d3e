//! Direct writes: a frame for a plain-TCP rs2p peer is written to the socket
//! by the task that produced it (a caller, or a reader answering a request),
//! under the node's lock, when the connection's writer task is idle. That
//! saves waking the writer task on each hop of a request. What the socket
//! does not take at once goes to the writer task, and every later frame
//! follows it through the writer's queue until the writer finds its queue
//! empty again: frames leave a connection in the order the node queued them.
//! py2p peers (paced) and TLS connections always go through the writer.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::conn_io::Outbound;
use crate::core::ConnId;

/// Frames one pump gathers for a connection before writing them: a write
/// takes at most this many slices (Linux takes up to 1,024).
const DIRECT_BATCH_FRAMES: usize = 64;
/// Bytes one pump gathers for a connection before writing them (as the
/// writer task's batch: a larger burst goes to the writer anyway).
const DIRECT_BATCH_BYTES: usize = 256 * 1024;
/// Largest frame (as queued: its size hint before encoding) written
/// directly: a direct write encodes under the node's lock, fine for a
/// request or an answer; larger frames (key-list batches, big values) are
/// encoded and written by the writer task, outside the lock.
pub(crate) const DIRECT_FRAME_BYTES: usize = 16 * 1024;
/// Connections one pump gathers frames for before writing the first ones
/// (a pump seldom sends to more than the five owners of a key).
const DIRECT_BATCH_CONNS: usize = 16;
/// A pump whose frames go to more connections than this leaves them all to
/// the writer tasks: a fan-out (a broadcast, a flush of news) is better
/// written by the writers, beside the caller on the other cores and batched
/// with the next calls' frames, than by the caller one socket after
/// another. A get's first wave asks at most three tables; an answer goes
/// to one connection.
const DIRECT_MAX_CONNS: usize = 3;

/// The write half of a plain-TCP connection, shared by its writer task and
/// the direct writes.
pub(crate) struct DirectWrite {
    /// The socket's write half.
    half: OwnedWriteHalf,
    /// True while the writer task has frames queued or is writing one: new
    /// frames must then queue behind them. Set (under the node's lock) by
    /// whoever queues a frame for the writer; cleared by the writer when it
    /// finds its queue empty, with the lock held so that no frame is queued
    /// between its look and the change.
    busy: Mutex<bool>,
}

impl DirectWrite {
    pub fn new(half: OwnedWriteHalf) -> Arc<DirectWrite> {
        Arc::new(DirectWrite { half, busy: Mutex::new(false) })
    }

    fn busy(&self) -> std::sync::MutexGuard<'_, bool> {
        // Nothing panics while holding it; a poisoned flag is still right.
        self.busy.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the writer task is idle, so that a frame may be written
    /// directly. Only a caller holding the node's lock may act on a yes:
    /// the writer can become busy only through frames queued under it.
    pub fn writer_idle(&self) -> bool {
        !*self.busy()
    }

    /// Marks the writer busy and queues `out` for it (the two together, so
    /// the writer cannot declare itself idle in between).
    pub fn queue(&self, tx: &mpsc::Sender<Outbound>, out: Outbound) -> Result<(), mpsc::error::TrySendError<Outbound>> {
        let mut busy = self.busy();
        *busy = true;
        tx.try_send(out)
    }

    /// Called by the writer task after each write: idle again if nothing
    /// waits in its queue.
    pub fn writer_wrote(&self, rx: &mpsc::Receiver<Outbound>) {
        let mut busy = self.busy();
        if rx.is_empty() {
            *busy = false;
        }
    }

    /// Writes what the socket takes now without blocking; returns the bytes
    /// written (0 when it would block or failed: the writer task then meets
    /// the same state and handles it).
    fn try_write(&self, frames: &[Bytes]) -> usize {
        let res = match frames {
            [one] => self.half.try_write(one),
            many => {
                let slices: Vec<IoSlice<'_>> = many.iter().map(|f| IoSlice::new(f)).collect();
                writev_nosignal(self, &slices)
            }
        };
        res.unwrap_or(0)
    }

    fn stream(&self) -> &TcpStream {
        self.half.as_ref()
    }
}

/// A vectored write that raises no SIGPIPE on a reset link: tokio's
/// `try_write_vectored` is a plain `writev` (its single-buffer `try_write`
/// sends with `MSG_NOSIGNAL`), and a host process that keeps SIGPIPE's
/// default action (not a Rust binary nor Python, which ignore it) would die.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn writev_nosignal(to: &DirectWrite, slices: &[IoSlice<'_>]) -> io::Result<usize> {
    // Past tokio's readiness: a WouldBlock here only sends the frames to the
    // writer, whose own write then finds the socket full and waits.
    socket2::SockRef::from(to.stream()).send_vectored_with_flags(slices, libc::MSG_NOSIGNAL)
}

/// Elsewhere tokio's write (no `MSG_NOSIGNAL` flag there).
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn writev_nosignal(to: &DirectWrite, slices: &[IoSlice<'_>]) -> io::Result<usize> {
    to.half.try_write_vectored(slices)
}

/// The writer task's side of a [`DirectWrite`].
pub(crate) struct SharedHalf(pub Arc<DirectWrite>);

impl AsyncWrite for SharedHalf {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let stream = self.0.stream();
        loop {
            std::task::ready!(stream.poll_write_ready(cx))?;
            match stream.try_write(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                res => return Poll::Ready(res),
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(socket2::SockRef::from(self.0.stream()).shutdown(std::net::Shutdown::Write))
    }
}

/// Frames gathered during one pump of the node's actions, per connection
/// whose writer was idle, written when the pump ends (or sooner, when a
/// batch is full or the connection is about to close).
pub(crate) struct DirectBatch {
    /// Direct writes allowed in this pump.
    enabled: bool,
    conns: Vec<Pending>,
}

struct Pending {
    conn: ConnId,
    to: Arc<DirectWrite>,
    frames: Vec<Bytes>,
    bytes: usize,
}

/// Frames of a direct batch for the connection's writer task, in order:
/// what the socket did not take, or a fan-out's.
pub(crate) struct Leftover {
    pub conn: ConnId,
    pub frames: Vec<Bytes>,
}

impl DirectBatch {
    pub fn new(enabled: bool) -> DirectBatch {
        DirectBatch { enabled, conns: Vec::new() }
    }

    /// Whether frames may be gathered for direct writes in this pump.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Whether frames for `conn` are gathered (later frames join them).
    pub fn holds(&self, conn: ConnId) -> bool {
        self.conns.iter().any(|p| p.conn == conn)
    }

    /// Adds a frame for `conn`, whose writer is idle. Returns what a write
    /// forced by the bounds left over.
    pub fn push(&mut self, conn: ConnId, to: &Arc<DirectWrite>, frame: Bytes) -> Option<Leftover> {
        let i = match self.conns.iter().position(|p| p.conn == conn) {
            Some(i) => i,
            None => {
                if self.conns.len() >= DIRECT_BATCH_CONNS {
                    // A fan-out: to the writer (the connection is then
                    // busy, so its later frames follow this one there).
                    return Some(Leftover { conn, frames: vec![frame] });
                }
                self.conns.push(Pending { conn, to: Arc::clone(to), frames: Vec::new(), bytes: 0 });
                self.conns.len() - 1
            }
        };
        let p = &mut self.conns[i];
        p.bytes += frame.len();
        p.frames.push(frame);
        if p.frames.len() >= DIRECT_BATCH_FRAMES || p.bytes >= DIRECT_BATCH_BYTES {
            let p = self.conns.swap_remove(i);
            return write(p.conn, p.to, p.frames);
        }
        None
    }

    /// Writes what is gathered for `conn` now (a frame that must go through
    /// the writer follows); returns what the socket did not take.
    pub fn write_conn(&mut self, conn: ConnId) -> Option<Leftover> {
        let i = self.conns.iter().position(|p| p.conn == conn)?;
        let p = self.conns.swap_remove(i);
        write(p.conn, p.to, p.frames)
    }

    /// Writes everything gathered; returns what the sockets did not take,
    /// or everything when the pump fanned out ([`DIRECT_MAX_CONNS`]).
    pub fn write_all(&mut self) -> Vec<Leftover> {
        if self.conns.len() > DIRECT_MAX_CONNS {
            return self.conns.drain(..).map(|p| Leftover { conn: p.conn, frames: p.frames }).collect();
        }
        self.conns.drain(..).filter_map(|p| write(p.conn, p.to, p.frames)).collect()
    }
}

/// Writes `frames` directly; what is left goes back, the first one cut
/// where the socket stopped.
fn write(conn: ConnId, to: Arc<DirectWrite>, mut frames: Vec<Bytes>) -> Option<Leftover> {
    let mut written = to.try_write(&frames);
    let whole = frames.iter().take_while(|f| {
        let done = f.len() <= written;
        if done {
            written -= f.len();
        }
        done
    });
    let whole = whole.count();
    frames.drain(..whole);
    let first = frames.first_mut()?;
    *first = first.slice(written..);
    Some(Leftover { conn, frames })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize};

    use tokio::io::AsyncReadExt;

    use super::*;
    use crate::net::conn_io::write_loop;

    /// Frames queued behind the busy writer before the reader starts: more
    /// than one batch of the writer's, so that frames still wait in its
    /// queue after its first write.
    const BEHIND: u32 = 20_000;
    /// Frames sent directly after the writer drained, before the test ends.
    const RESUMED: u32 = 2_000;
    /// Bound on the frames of the test stream.
    const MAX_FRAMES: u32 = 100_000;
    /// The producer's pause after a frame that went to the writer's queue.
    const QUEUED_PAUSE: std::time::Duration = std::time::Duration::from_micros(20);
    /// Frames the test's producer sends per "pump" (a batched write).
    const FRAMES_PER_PUMP: u32 = 3;
    /// Rounds of the ordering test.
    const ROUNDS: usize = 5;
    /// Bytes a test frame (its number, repeated).
    const FRAME_BYTES: usize = 1_000;

    fn frame(i: u32) -> Bytes {
        i.to_be_bytes().iter().copied().cycle().take(FRAME_BYTES).collect::<Vec<u8>>().into()
    }

    /// Sends numbered frames on one connection as the driver does.
    struct Producer {
        to: Arc<DirectWrite>,
        tx: mpsc::Sender<Outbound>,
        batch: DirectBatch,
        next: u32,
    }

    impl Producer {
        /// Sends the next frame; true when it went the direct way.
        fn send(&mut self) -> bool {
            let conn = ConnId(1);
            let i = self.next;
            self.next += 1;
            let direct = self.batch.holds(conn) || self.to.writer_idle();
            let left = match direct {
                true => self.batch.push(conn, &self.to, frame(i)),
                false => Some(Leftover { conn, frames: vec![frame(i)] }),
            };
            self.queue(left.into_iter().collect());
            if i.is_multiple_of(FRAMES_PER_PUMP) {
                self.flush();
            }
            direct
        }

        /// Writes the gathered frames, queues what is left.
        fn flush(&mut self) {
            let left = self.batch.write_all();
            self.queue(left);
        }

        fn queue(&self, left: Vec<Leftover>) {
            for f in left.into_iter().flat_map(|l| l.frames) {
                self.to.queue(&self.tx, Outbound::Frame(f)).unwrap();
            }
        }
    }

    /// A producer that writes directly whenever the writer is idle: it
    /// fills the socket (the rest goes to the writer task), queues frames
    /// behind the busy writer, then goes on while a reader drains the
    /// socket, until the writer has gone idle and direct writes resumed.
    /// Every frame arrives whole and in order.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn frames_keep_their_order_across_direct_and_queued_writes() {
        // A reorder needs the socket to have room at the wrong moment:
        // several rounds make a wrong hand-over show almost surely.
        for _ in 0..ROUNDS {
            one_round().await;
        }
    }

    /// A loopback connection: the server's end, and the client's write
    /// half as a [`DirectWrite`], known writable.
    async fn connection() -> (TcpStream, Arc<DirectWrite>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        // The read half is dropped: only the server reads.
        let (_, w) = client.into_split();
        let to = DirectWrite::new(w);
        to.stream().writable().await.unwrap();
        (server, to)
    }

    async fn one_round() {
        let (mut server, to) = connection().await;
        let (tx, rx) = mpsc::channel(MAX_FRAMES as usize);
        let pace = Arc::new(AtomicBool::new(false));
        let queued = Arc::new(AtomicUsize::new(0));
        let writer = tokio::spawn(write_loop(SharedHalf(Arc::clone(&to)), rx, pace, queued, Some(Arc::clone(&to))));
        // One producer at a time, as every producer holds the node's lock.
        let mut p = Producer { to, tx, batch: DirectBatch::new(true), next: 0 };
        // Until the socket is full and the writer busy.
        while p.send() || !p.batch.conns.is_empty() {
            assert!(p.next < MAX_FRAMES, "the socket never filled");
        }
        for _ in 0..BEHIND {
            assert!(!p.send(), "the writer went idle with nobody reading");
        }
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            server.read_to_end(&mut got).await.unwrap();
            got
        });
        let producer = std::thread::spawn(move || {
            let mut resumed = 0;
            while resumed < RESUMED && p.next < MAX_FRAMES {
                if p.send() {
                    resumed += 1;
                } else {
                    // Give the writer room to drain its queue: a producer
                    // that outpaces it on a loaded machine would keep it
                    // busy to the end (the test would then show nothing).
                    std::thread::sleep(QUEUED_PAUSE);
                }
            }
            p.flush();
            (resumed, p.next)
        });
        let (resumed, frames) = tokio::task::spawn_blocking(move || producer.join().unwrap()).await.unwrap();
        writer.await.unwrap();
        let got = reader.await.unwrap();
        assert!(resumed >= RESUMED, "direct writes did not resume after the writer drained");
        let want: Vec<u8> = (0..frames).flat_map(|i| frame(i).to_vec()).collect();
        assert_eq!(got.len(), want.len());
        assert!(got == want, "frames out of order");
    }

    /// What a partial write leaves: the rest of the cut frame, then the
    /// frames after it, in order.
    #[tokio::test]
    async fn a_partial_write_leaves_the_rest_in_order() {
        let (mut server, to) = connection().await;
        let big: Vec<Bytes> = (0..64).map(|i| Bytes::from(vec![i as u8; 256 * 1024])).collect();
        let want: Vec<u8> = big.iter().flat_map(|f| f.to_vec()).collect();
        let left = write(ConnId(1), Arc::clone(&to), big).expect("16 MiB do not fit a socket buffer");
        let rest: Vec<u8> = left.frames.iter().flat_map(|f| f.to_vec()).collect();
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            server.read_to_end(&mut got).await.unwrap();
            got
        });
        let sent = want.len() - rest.len();
        let mut w = SharedHalf(to);
        tokio::io::AsyncWriteExt::write_all(&mut w, &rest).await.unwrap();
        tokio::io::AsyncWriteExt::shutdown(&mut w).await.unwrap();
        let got = reader.await.unwrap();
        assert!(sent > 0);
        assert!(got == want);
    }
}
