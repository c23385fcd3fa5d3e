//! The tokio shell around a [`Node`]: listener, one reader and one writer task
//! per connection, a ticker, and the dispatch of the core's actions.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, mpsc, oneshot, Notify};
use tokio::task::AbortHandle;

use super::conn_io::{read_loop, write_loop, ConnIo, Outbound};
use super::persist::DataDir;
use super::recv_queue::RecvQueue;
use super::tls::Tls;
use crate::chord::Room;
use crate::core::{Action, ConnId, ConnReader, Event, GetError, PeerId, Received, ReqId, Time};
use crate::node::Node;
use crate::wire::flags;

/// Frames queued for one connection before it counts as stuck and is closed.
/// Memory is bounded by [`WRITE_QUEUE_BYTES`]; this count only has to stay
/// above what a burst of local sets queues (a set is 5 stores and notifies).
const WRITE_QUEUE: usize = 65_536;
/// Bytes queued for one connection before it counts as stuck and is closed.
const WRITE_QUEUE_BYTES: usize = 64 << 20;
/// Timer period of the core.
const TICK: Duration = Duration::from_millis(100);
/// A key-list stream is topped up each tick until this many frames wait in
/// its connection's queue: more than a py2p peer drains in a tick (one frame
/// per 1.5 ms), few enough that other frames wait behind them only briefly.
const STREAM_QUEUE_FRAMES: usize = 128;
/// A key-list stream is topped up each tick until this many bytes wait in
/// its connection's queue (4 MiB a tick: about 40 MB/s to an rs2p peer).
const STREAM_QUEUE_BYTES: usize = 4 << 20;
/// TCP keepalive: first probe after this much idle time, then one every as
/// long; a link whose probes all go unanswered is reset by the kernel.
const TCP_KEEPALIVE_IDLE: Duration = Duration::from_secs(2);
/// Unanswered TCP keepalive probes before the kernel resets the link.
#[cfg(any(target_os = "linux", target_os = "macos", target_os = "freebsd"))]
const TCP_KEEPALIVE_PROBES: u32 = 3;
/// Dial timeout.
const DIAL_TIMEOUT: Duration = Duration::from_secs(3);
/// How long the writer of a closed connection may go on flushing its queue.
const FLUSH_GRACE: Duration = Duration::from_secs(5);

/// Milliseconds since the Unix epoch by the wall clock: dates messages and
/// tombstones, and may jump when the system clock is set.
pub(crate) fn wall_now() -> Time {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// The monotonic clock every protocol timer runs on, in milliseconds. It
/// starts at the wall-clock time of its first use (so that its values read
/// like dates in logs) and then only moves forward with [`Instant`].
pub(crate) fn now() -> Time {
    static ORIGIN: std::sync::OnceLock<(Instant, Time)> = std::sync::OnceLock::new();
    let (origin, base) = ORIGIN.get_or_init(|| (Instant::now(), wall_now()));
    base.saturating_add(origin.elapsed().as_millis() as u64)
}

/// A user message handler: returns true when it took the message.
pub(crate) type Handler = Arc<dyn Fn(&Received) -> bool + Send + Sync>;

pub(crate) struct State {
    pub node: Node,
    conns: HashMap<ConnId, ConnIo>,
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
    rt: tokio::runtime::Handle,
    /// The data directory, if the node keeps one.
    data: Option<Arc<DataDir>>,
    /// TLS, when the protocol's encryption is `SSL`.
    tls: Option<Arc<Tls>>,
    /// Wakes the persister: the node has journaled changes. Shared, so the
    /// persister waits on it without keeping the socket alive.
    persist_notify: Arc<Notify>,
    /// Commits are made one at a time (the persister, or a final flush).
    commit_lock: tokio::sync::Mutex<()>,
    /// Peers remembered in the data directory at start.
    pub saved_peers: Vec<String>,
    /// The peers last written to the data directory (rewritten on change only).
    written_peers: Mutex<Vec<String>>,
    /// When the data directory last recorded that the node is alive (wall ms).
    written_alive: Mutex<Time>,
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
            persist_notify: Arc::new(Notify::new()),
            commit_lock: tokio::sync::Mutex::new(()),
            written_peers: Mutex::new(saved_peers.clone()),
            written_alive: Mutex::new(0),
            saved_peers,
        });
        let accept = inner.rt.spawn(accept_loop(Arc::downgrade(&inner), listener));
        let tick = inner.rt.spawn(tick_loop(Arc::downgrade(&inner)));
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
        let mut st = self.lock();
        // A user call happens now (a write's version is dated by it).
        st.node.advance_clock(now());
        let r = f(&mut st);
        let messages = self.pump(&mut st);
        let journaled = st.node.pending_changes() > 0;
        drop(st);
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
    fn pump(self: &Arc<Self>, st: &mut State) -> Vec<Received> {
        let mut messages = Vec::new();
        while let Some(action) = st.node.poll_action() {
            match action {
                Action::Send { conn, frame } => self.queue_send(st, conn, Outbound::Frame(frame)),
                Action::SendMessage { conn, out } => self.queue_send(st, conn, Outbound::Message(out)),
                Action::Dial { conn, host, port } => {
                    self.rt.spawn(dial(Arc::clone(self), conn, host, port));
                }
                Action::Close { conn } => drop_io(&self.rt, st, conn),
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
        messages
    }

    /// Queues a frame for a connection's writer; a connection whose queue is
    /// full is not reading, and is closed.
    fn queue_send(&self, st: &mut State, conn: ConnId, out: Outbound) {
        let Some(io) = st.conns.get(&conn) else { return };
        // Counted before the send, so the writer's decrement never runs first.
        let len = out.len();
        let before = io.queued.fetch_add(len, Ordering::Relaxed);
        let sent = before.saturating_add(len) <= WRITE_QUEUE_BYTES && io.tx.try_send(out).is_ok();
        if !sent {
            io.queued.fetch_sub(len, Ordering::Relaxed);
            tracing::warn!(conn = conn.0, "peer is not reading: closing the connection");
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
    fn attach(self: &Arc<Self>, st: &mut State, conn: ConnId, stream: TcpStream, side: Side) {
        let _ = stream.set_nodelay(true);
        // The kernel's keepalive backs the core's: it also probes a link
        // whose peer host vanished while our queue toward it is not empty.
        let keepalive = socket2::TcpKeepalive::new().with_time(TCP_KEEPALIVE_IDLE).with_interval(TCP_KEEPALIVE_IDLE);
        #[cfg(any(target_os = "linux", target_os = "macos", target_os = "freebsd"))]
        let keepalive = keepalive.with_retries(TCP_KEEPALIVE_PROBES);
        if let Err(e) = socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive) {
            tracing::debug!(conn = conn.0, "TCP keepalive not set: {e}");
        }
        let (tx, rx) = mpsc::channel(WRITE_QUEUE);
        let pace = Arc::new(AtomicBool::new(true));
        let queued = Arc::new(AtomicUsize::new(0));
        let reader = st.node.reader(conn);
        let (writer, stop_reading) = match &self.tls {
            None => {
                let (r, w) = stream.into_split();
                let writer = self.rt.spawn(write_loop(w, rx, Arc::clone(&pace), Arc::clone(&queued)));
                let reader = self.rt.spawn(read_loop(Arc::downgrade(self), conn, r, reader));
                (writer, Some(reader.abort_handle()))
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
                (task, stop)
            }
        };
        st.conns.insert(conn, ConnIo { tx, writer, reader: stop_reading, pace, queued });
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

    /// Commits every journaled change now (the persister may be stopped).
    pub async fn persist_now(self: &Arc<Self>) {
        if self.data.is_some() {
            self.commit_pending().await;
        }
    }

    /// Takes the journal and commits it in one transaction, off the
    /// runtime's threads. Returns false if the commit failed (logged; the
    /// batch is kept for the next try).
    async fn commit_pending(self: &Arc<Self>) -> bool {
        let Some(data) = self.data.clone() else { return true };
        let _one_at_a_time = self.commit_lock.lock().await;
        let (changes, mut peers) = self.with(|st| (st.node.take_changes(), st.node.seeding_peer_addrs()));
        peers.truncate(super::MAX_SAVED_PEERS);
        {
            let mut written = self.written_peers.lock().unwrap_or_else(|e| e.into_inner());
            if peers.is_empty() || *written == peers {
                peers.clear();
            } else {
                *written = peers.clone();
            }
        }
        let wall = wall_now();
        let alive = {
            let mut written = self.written_alive.lock().unwrap_or_else(|e| e.into_inner());
            let due = wall.saturating_sub(*written) >= ALIVE_EVERY_MS;
            if due {
                *written = wall;
            }
            due
        };
        if changes.is_empty() && peers.is_empty() && !alive {
            return true;
        }
        let res = tokio::task::spawn_blocking(move || {
            if alive {
                if let Err(e) = data.save_alive(wall) {
                    tracing::warn!("could not record the time in the data directory: {e}");
                }
            }
            let res = if changes.is_empty() { Ok(()) } else { data.commit(&changes) };
            if !peers.is_empty() {
                if let Err(e) = data.save_peers(&peers, wall_now()) {
                    tracing::warn!("could not record peers in the data directory: {e}");
                }
            }
            res.map_err(|e| (e, changes))
        })
        .await;
        match res {
            Ok(Ok(())) => true,
            Ok(Err((e, changes))) => {
                tracing::error!("could not write to the data directory: {e}; will retry");
                self.with(|st| st.node.return_changes(changes));
                false
            }
            Err(e) => {
                tracing::error!("data directory writer failed: {e}");
                false
            }
        }
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

/// Which end of a connection we are: with TLS, the acceptor is the server
/// and the dialer the client, as in py2p.
pub(crate) enum Side {
    /// Accepted by our listener.
    Accepted,
    /// Dialed by us, to this host.
    Dialed(String),
}

/// What a TLS connection's task needs besides the stream.
struct TlsIo {
    tls: Arc<Tls>,
    rx: mpsc::Receiver<Outbound>,
    pace: Arc<AtomicBool>,
    queued: Arc<AtomicUsize>,
    reader: ConnReader,
}

/// The TLS handshake of one connection (bounded by the TLS deadline; the
/// node's handshake deadline and connection limits count the connection
/// from its TCP start, and closing it aborts this task), then its reader
/// task and, in this task, its writer.
async fn tls_io(inner: std::sync::Weak<Inner>, conn: ConnId, tcp: TcpStream, side: Side, io: TlsIo) {
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
        write_loop(w, io.rx, io.pace, io.queued).await;
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

/// How often the data directory records that the node is alive: a node
/// restarted after longer than `Config::tombstone_horizon_ms` away drops
/// its items, and this is how it knows (to within this much).
const ALIVE_EVERY_MS: Time = 60_000;

/// Commits journaled changes as they come: each commit takes everything
/// gathered while the previous one ran (group commit: one fsync per batch).
async fn persist_loop(inner: std::sync::Weak<Inner>, wake: Arc<Notify>) {
    let mut failures = 0u32;
    loop {
        let wait = if failures > 0 { Duration::from_millis(500 << failures.min(5)) } else { Duration::from_secs(1) };
        // A periodic pass also records the peers, which change without a journal entry.
        let _ = tokio::time::timeout(wait, wake.notified()).await;
        let Some(strong) = inner.upgrade() else { return };
        if strong.commit_pending().await {
            failures = 0;
        } else {
            failures += 1;
        }
    }
}

async fn accept_loop(inner: std::sync::Weak<Inner>, listener: TcpListener) {
    loop {
        let (stream, from) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(inner) = inner.upgrade() else { return };
        tracing::debug!(%from, "incoming connection");
        inner.with(|st| match st.node.on_accepted_from(from.ip(), now()) {
            Some(conn) => inner.attach(st, conn, stream, Side::Accepted),
            None if !st.node.is_closed() => tracing::warn!(%from, "connection limits reached: refusing a connection"),
            None => {}
        });
    }
}

async fn tick_loop(inner: std::sync::Weak<Inner>) {
    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        inner.with(|st| {
            st.node.set_wall_clock(wall_now());
            st.node.on_tick(now());
            feed_key_streams(st);
        });
    }
}

/// Tops up every key-list stream to what its connection's queue can take.
fn feed_key_streams(st: &mut State) {
    for conn in st.node.key_streams() {
        let Some(io) = st.conns.get(&conn) else {
            continue;
        };
        let queued_frames = io.tx.max_capacity() - io.tx.capacity();
        let queued_bytes = io.queued.load(Ordering::Relaxed);
        let room = Room {
            frames: STREAM_QUEUE_FRAMES.saturating_sub(queued_frames),
            bytes: STREAM_QUEUE_BYTES.saturating_sub(queued_bytes),
        };
        if room.frames > 0 && room.bytes > 0 {
            st.node.stream_keys(conn, room);
        }
    }
}

async fn dial(inner: Arc<Inner>, conn: ConnId, host: String, port: u16) {
    let res = tokio::time::timeout(DIAL_TIMEOUT, TcpStream::connect((host.as_str(), port))).await;
    match res {
        Ok(Ok(stream)) => inner.with(|st| {
            inner.attach(st, conn, stream, Side::Dialed(host));
            st.node.on_dialed(conn, now());
        }),
        Ok(Err(e)) => inner.node(|n| n.on_dial_failed(conn, &e.to_string(), now())),
        Err(_) => inner.node(|n| n.on_dial_failed(conn, "timed out", now())),
    }
}
