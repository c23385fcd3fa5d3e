//! The tokio shell around a [`Node`]: listener, one reader and one writer task
//! per connection, a ticker that sleeps until the node's next timer, and the
//! dispatch of the core's actions.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use bytes::Bytes;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, mpsc, oneshot, Notify};
use tokio::task::AbortHandle;

pub(crate) use super::clock::{now, wall_now};
use super::conn_io::{read_loop, write_loop, ConnIo, Outbound};
use super::direct_write::{DirectBatch, DirectWrite, Leftover, SharedHalf, DIRECT_FRAME_BYTES};
use super::loops::{accept_loop, dial, tick_loop};
use super::persist::DataDir;
use super::persister::persist_loop;
use super::recv_queue::RecvQueue;
use super::tls::Tls;
pub(crate) use super::tls_io::Side;
use super::tls_io::{tls_io, TlsIo};
use crate::core::{Action, ConnId, Event, GetError, PeerId, Received, ReqId, Time};
use crate::node::Node;
use crate::wire::flags;

/// Frames queued for one connection before it counts as stuck and is closed.
/// Memory is bounded by [`WRITE_QUEUE_BYTES`]; this count only has to stay
/// above what a burst of local sets queues (a set is 5 stores and notifies).
const WRITE_QUEUE: usize = 65_536;
/// Bytes queued for one connection before it counts as stuck and is closed.
const WRITE_QUEUE_BYTES: usize = 64 << 20;
/// How long the writer of a closed connection may go on flushing its queue.
const FLUSH_GRACE: Duration = Duration::from_secs(5);

/// Who writes the frames a call of the node produces.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Writes {
    /// The calling task, where it can ([`DirectBatch`]); else the writers.
    Direct,
    /// The connections' writer tasks.
    Queued,
}

/// A user message handler: returns true when it took the message.
pub(crate) type Handler = Arc<dyn Fn(&Received) -> bool + Send + Sync>;

pub(crate) struct State {
    pub node: Node,
    pub(super) conns: HashMap<ConnId, ConnIo>,
    pub get_waiters: HashMap<ReqId, oneshot::Sender<Result<Bytes, GetError>>>,
    pub connect_waiters: HashMap<ConnId, oneshot::Sender<Result<PeerId, String>>>,
    pub queue: RecvQueue,
    /// Writers of closed connections still flushing their queues.
    flushing: Vec<tokio::task::JoinHandle<()>>,
}

/// Shared by the socket handles and the tasks.
pub(crate) struct Inner {
    state: Mutex<State>,
    pub events: broadcast::Sender<Event>,
    pub msg_notify: Notify,
    pub handlers: RwLock<Vec<Handler>>,
    pub local_addr: SocketAddr,
    tasks: Mutex<Vec<AbortHandle>>,
    /// The runtime the socket was bound in: its tasks run there, whichever
    /// thread or runtime calls the handle's methods.
    pub(super) rt: tokio::runtime::Handle,
    /// The data directory, if the node keeps one.
    pub(super) data: Option<Arc<DataDir>>,
    /// TLS, when the protocol's encryption is `SSL`.
    tls: Option<Arc<Tls>>,
    /// Wakes the ticker: a call or a frame moved the node's next timer
    /// ([`Node::poll_timeout`]) before the one it sleeps until.
    pub(super) tick_notify: Arc<Notify>,
    /// The instant the ticker sleeps until (monotonic ms; `Time::MAX`: none).
    pub(super) tick_at: AtomicU64,
    /// Wakes the persister: the node has journaled changes. Shared, so the
    /// persister waits on it without keeping the socket alive.
    persist_notify: Arc<Notify>,
    /// Commits are made one at a time (the persister, or a final flush).
    pub(super) commit_lock: Arc<tokio::sync::Mutex<()>>,
    /// Peers remembered in the data directory at start.
    pub saved_peers: Vec<String>,
    /// The peers last written to the data directory (rewritten on change only).
    pub(super) written_peers: Mutex<Vec<String>>,
    /// When the data directory last recorded that the node is alive (wall ms).
    pub(super) written_alive: Mutex<Time>,
}

impl Inner {
    /// Binds, starts the listener and ticker tasks.
    pub async fn start(
        listener: TcpListener,
        mut node: Node,
        data: Option<(Arc<DataDir>, Vec<String>)>,
        tls: Option<Tls>,
    ) -> Arc<Inner> {
        // Frames are encoded by the connections' writer tasks, outside the lock.
        node.defer_encoding(true);
        let (data, saved_peers) = match data {
            Some((d, p)) => (Some(d), p),
            None => (None, Vec::new()),
        };
        let local_addr = listener.local_addr().expect("bound listener has an address");
        let (events, _) = broadcast::channel(1024);
        let inner = Arc::new(Inner {
            state: Mutex::new(State {
                node,
                conns: HashMap::new(),
                get_waiters: HashMap::new(),
                connect_waiters: HashMap::new(),
                queue: RecvQueue::default(),
                flushing: Vec::new(),
            }),
            events,
            msg_notify: Notify::new(),
            handlers: RwLock::new(Vec::new()),
            local_addr,
            tasks: Mutex::new(Vec::new()),
            rt: tokio::runtime::Handle::current(),
            data,
            tls: tls.map(Arc::new),
            tick_notify: Arc::new(Notify::new()),
            tick_at: AtomicU64::new(Time::MAX),
            persist_notify: Arc::new(Notify::new()),
            commit_lock: Arc::new(tokio::sync::Mutex::new(())),
            written_peers: Mutex::new(saved_peers.clone()),
            written_alive: Mutex::new(0),
            saved_peers,
        });
        let accept = inner.rt.spawn(accept_loop(Arc::downgrade(&inner), listener));
        let tick = inner.rt.spawn(tick_loop(Arc::downgrade(&inner), Arc::clone(&inner.tick_notify)));
        let mut tasks = vec![accept.abort_handle(), tick.abort_handle()];
        if inner.data.is_some() {
            let wake = Arc::clone(&inner.persist_notify);
            tasks.push(inner.rt.spawn(persist_loop(Arc::downgrade(&inner), wake)).abort_handle());
        }
        inner.tasks.lock().expect("tasks lock").extend(tasks);
        inner
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock would be a bug in the core; keep serving.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the state, then carries out the actions it produced.
    pub fn with<R>(self: &Arc<Self>, f: impl FnOnce(&mut State) -> R) -> R {
        self.with_writes(Writes::Direct, f)
    }

    /// Runs `f` on the node, leaving the frames it sends to the writer
    /// tasks: for calls that return once their frames are queued (a set),
    /// which writing them would make wait for the sockets.
    pub fn node_queued<R>(self: &Arc<Self>, f: impl FnOnce(&mut Node) -> R) -> R {
        self.with_writes(Writes::Queued, |st| f(&mut st.node))
    }

    fn with_writes<R>(self: &Arc<Self>, writes: Writes, f: impl FnOnce(&mut State) -> R) -> R {
        let mut st = self.lock();
        // A user call happens now (a write's version is dated by it).
        st.node.advance_clock(now());
        let r = f(&mut st);
        let messages = self.pump(&mut st, writes);
        let journaled = st.node.pending_changes() > 0;
        let next = st.node.poll_timeout().unwrap_or(Time::MAX);
        drop(st);
        if next < self.tick_at.load(Ordering::Relaxed) {
            self.tick_at.store(next, Ordering::Relaxed);
            self.tick_notify.notify_one();
        }
        if journaled {
            self.persist_notify.notify_one();
        }
        if !messages.is_empty() {
            self.deliver_messages(messages);
        }
        r
    }

    /// Runs `f` on the node.
    pub fn node<R>(self: &Arc<Self>, f: impl FnOnce(&mut Node) -> R) -> R {
        self.with(|st| f(&mut st.node))
    }

    /// Carries out the node's actions. User messages are returned, to be
    /// handed to handlers outside the lock.
    /// With [`Writes::Direct`], frames for connections whose writer is
    /// idle are written directly when the pump ends ([`DirectBatch`]), or
    /// before a connection closes.
    fn pump(self: &Arc<Self>, st: &mut State, writes: Writes) -> Vec<Received> {
        let mut messages = Vec::new();
        let mut direct = DirectBatch::new(writes == Writes::Direct);
        while let Some(action) = st.node.poll_action() {
            match action {
                Action::Send { conn, frame } => self.queue_send(st, &mut direct, conn, Outbound::Frame(frame)),
                Action::SendMessage { conn, out } => self.queue_send(st, &mut direct, conn, Outbound::Message(out)),
                Action::Dial { conn, host, port } => {
                    self.rt.spawn(dial(Arc::clone(self), conn, host, port));
                }
                Action::Close { conn } => {
                    self.write_direct(st, &mut direct);
                    drop_io(&self.rt, st, conn)
                }
                Action::Event(event) => match event {
                    Event::GetDone { req, result } => {
                        if let Some(w) = st.get_waiters.remove(&req) {
                            let _ = w.send(result);
                        }
                    }
                    Event::Message(m) => messages.push(m),
                    Event::Connected { conn, peer, first } => {
                        if let Some(io) = st.conns.get(&conn) {
                            io.pace.store(!st.node.is_rs2p(conn), Ordering::Relaxed);
                        }
                        if let Some(w) = st.connect_waiters.remove(&conn) {
                            let _ = w.send(Ok(peer.clone()));
                        }
                        let _ = self.events.send(Event::Connected { conn, peer, first });
                    }
                    Event::Disconnected { conn, peer, reason } => {
                        self.write_direct(st, &mut direct);
                        drop_io(&self.rt, st, conn);
                        if let Some(w) = st.connect_waiters.remove(&conn) {
                            let _ = w.send(Err(reason.clone()));
                        }
                        let _ = self.events.send(Event::Disconnected { conn, peer, reason });
                    }
                    other => {
                        let _ = self.events.send(other);
                    }
                },
            }
        }
        self.write_direct(st, &mut direct);
        messages
    }

    /// Sends a frame: written directly when the connection allows it, the
    /// frame is small and the writer is idle (or frames for it are already
    /// gathered), else queued for its writer.
    fn queue_send(&self, st: &mut State, direct: &mut DirectBatch, conn: ConnId, out: Outbound) {
        let Some(io) = st.conns.get(&conn) else { return };
        if out.len() > DIRECT_FRAME_BYTES {
            // Behind what this pump gathered for the connection.
            if let Some(left) = direct.write_conn(conn) {
                self.queue_leftover(st, left);
            }
            self.enqueue(st, conn, out);
            return;
        }
        if let Some(to) = io.direct.as_ref().filter(|_| !io.pace.load(Ordering::Relaxed)) {
            if direct.holds(conn) || (direct.enabled() && to.writer_idle()) {
                // Encoded here, under the lock: a direct write needs the bytes.
                let Some(frame) = out.into_frame() else { return };
                let to = Arc::clone(to);
                if let Some(left) = direct.push(conn, &to, frame) {
                    self.queue_leftover(st, left);
                }
                return;
            }
        }
        self.enqueue(st, conn, out);
    }

    /// Writes the gathered direct frames; queues what the sockets did not take.
    fn write_direct(&self, st: &mut State, direct: &mut DirectBatch) {
        for left in direct.write_all() {
            self.queue_leftover(st, left);
        }
    }

    /// Queues, in order, the frames a direct write left.
    fn queue_leftover(&self, st: &mut State, left: Leftover) {
        for frame in left.frames {
            self.enqueue(st, left.conn, Outbound::Frame(frame));
        }
    }

    /// Queues a frame for a connection's writer; a connection whose queue is
    /// full is not reading, and is closed.
    fn enqueue(&self, st: &mut State, conn: ConnId, out: Outbound) {
        let Some(io) = st.conns.get(&conn) else { return };
        // Counted before the send, so the writer's decrement never runs first.
        let len = out.len();
        let before = io.queued.fetch_add(len, Ordering::Relaxed);
        let sent = if before.saturating_add(len) > WRITE_QUEUE_BYTES {
            Err(false)
        } else {
            let res = match &io.direct {
                // Marks the writer busy: later frames queue behind this one.
                Some(to) => to.queue(&io.tx, out),
                None => io.tx.try_send(out),
            };
            match res {
                Ok(()) => Ok(()),
                Err(mpsc::error::TrySendError::Full(_)) => Err(false),
                Err(mpsc::error::TrySendError::Closed(_)) => Err(true),
            }
        };
        if let Err(writer_gone) = sent {
            io.queued.fetch_sub(len, Ordering::Relaxed);
            if writer_gone {
                // Its writer ended (the link failed or is closing; the node
                // hears of it next): nothing to blame the peer for.
                tracing::debug!(conn = conn.0, "connection's writer is gone: closing the connection");
            } else {
                tracing::warn!(conn = conn.0, "peer is not reading: closing the connection");
            }
            st.node.disconnect_conn(conn);
        }
    }

    fn deliver_messages(self: &Arc<Self>, messages: Vec<Received>) {
        let handlers: Vec<Handler> = self.handlers.read().map(|h| h.clone()).unwrap_or_default();
        let mut queued = false;
        for m in messages {
            if handlers.iter().any(|h| h(&m)) {
                continue;
            }
            match m.sub_flag() {
                Some(flags::WHISPER) | Some(flags::BROADCAST) => {
                    // Queued before the event goes out: a subscriber that sees
                    // the event finds the message in `recv`.
                    let event = Event::Message(m.clone());
                    let mut st = self.lock();
                    let max_bytes = st.node.config().max_recv_queue_bytes;
                    let dropped = st.queue.push(m, max_bytes);
                    drop(st);
                    if dropped > 0 {
                        tracing::warn!(dropped, "receive queue full: dropping the oldest messages");
                    }
                    let _ = self.events.send(event);
                    queued = true;
                }
                other => tracing::debug!(sub_flag = ?other, "no handler took a message: dropped"),
            }
        }
        if queued {
            self.msg_notify.notify_waiters();
        }
    }

    /// Our TLS certificate's fingerprint, when the node speaks TLS.
    pub fn tls_fingerprint(&self) -> Option<crate::core::Fingerprint> {
        self.tls.as_ref().map(|t| t.fingerprint())
    }

    /// Registers a connected stream with the node and starts its tasks.
    /// With TLS, one task makes the handshake first (frames the node queues
    /// meanwhile wait in the channel), then reads in a new task and writes.
    pub(super) fn attach(self: &Arc<Self>, st: &mut State, conn: ConnId, stream: TcpStream, side: Side) {
        super::socket_opts::tune(&stream, conn);
        let (tx, rx) = mpsc::channel(WRITE_QUEUE);
        let pace = Arc::new(AtomicBool::new(true));
        let queued = Arc::new(AtomicUsize::new(0));
        let reader = st.node.reader(conn);
        let (writer, stop_reading, direct) = match &self.tls {
            None => {
                let (r, w) = stream.into_split();
                let to = DirectWrite::new(w);
                let w = SharedHalf(Arc::clone(&to));
                let writer =
                    self.rt.spawn(write_loop(w, rx, Arc::clone(&pace), Arc::clone(&queued), Some(Arc::clone(&to))));
                let reader = self.rt.spawn(read_loop(Arc::downgrade(self), conn, r, reader));
                (writer, Some(reader.abort_handle()), Some(to))
            }
            Some(tls) => {
                // An accepted handshake is aborted when the node drops the
                // connection (a flood's slots come back at once). A dialed
                // one is left to finish (bounded by the TLS deadline and
                // FLUSH_GRACE) and then closed cleanly: py2p makes its TLS
                // accept on its network thread, and one that fails kills
                // that thread (D32).
                let accepted = matches!(side, Side::Accepted);
                let io =
                    TlsIo { tls: Arc::clone(tls), rx, pace: Arc::clone(&pace), queued: Arc::clone(&queued), reader };
                let task = self.rt.spawn(tls_io(Arc::downgrade(self), conn, stream, side, io));
                let stop = accepted.then(|| task.abort_handle());
                (task, stop, None)
            }
        };
        st.conns.insert(conn, ConnIo { tx, writer, reader: stop_reading, pace, queued, direct });
    }

    /// Waits (up to `limit`) for the writers of closed connections to flush.
    pub async fn flush(self: &Arc<Self>, limit: Duration) {
        let handles: Vec<tokio::task::JoinHandle<()>> = self.with(|st| st.flushing.drain(..).collect());
        let _ = tokio::time::timeout(limit, async {
            for h in handles {
                let _ = h.await;
            }
        })
        .await;
    }

    /// Releases the data directory (after a last commit): a node restarted
    /// on it, in this process or another, can open it at once.
    pub async fn release_data(self: &Arc<Self>) {
        if let Some(data) = &self.data {
            let _one_at_a_time = self.commit_lock.lock().await;
            data.close();
        }
    }

    /// Stops the listener and ticker.
    pub fn stop_tasks(&self) {
        for t in self.tasks.lock().expect("tasks lock").drain(..) {
            t.abort();
        }
    }
}

fn drop_io(rt: &tokio::runtime::Handle, st: &mut State, conn: ConnId) {
    if let Some(io) = st.conns.remove(&conn) {
        // Dropping the sender lets the writer flush what is queued, then shut down.
        if let Some(r) = io.reader {
            r.abort();
        }
        // ... for a while only: a writer blocked on a peer that stopped reading would
        // otherwise keep the socket and every queued frame until the peer reads.
        let writer = io.writer.abort_handle();
        rt.spawn(async move {
            tokio::time::sleep(FLUSH_GRACE).await;
            writer.abort();
        });
        st.flushing.retain(|h| !h.is_finished());
        st.flushing.push(io.writer);
    }
}
