//! [`ChordSocket`]: the async handle of a chord DHT node (py2p's `chord_socket`).

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::oneshot;

use super::driver::now;
use super::latency::{Latencies, Outcome};
use super::mesh_socket::split_addr;
use super::metrics::MetricsSnapshot;
use super::{Error, MeshSocket};
use crate::chord::{HandoffStats, KeyListStatus, Owner, StatusReport};
use crate::core::{Config, GetError, PeerId, ReqId};
use crate::ring::{HashMethod, U512};

/// Gets in flight at once in [`ChordSocket::items`] (and `values`, `copy`).
pub const ITEMS_IN_FLIGHT: usize = 256;

/// How often [`ChordSocket::peer_status`] looks for the answer.
const STATUS_POLL: Duration = Duration::from_millis(10);

/// [`ChordSocket::set_confirmed`] sends the stores again when the value is
/// still not readable this long after the last send (a store lost with a
/// closed link is not retried by anyone else).
pub const CONFIRM_RESEND: Duration = Duration::from_secs(1);

type GetReceiver = oneshot::Receiver<Result<Bytes, GetError>>;

/// A chord DHT node on a TCP port. It derefs to [`MeshSocket`] for the mesh
/// API it inherits (connect, send, recv, peers, close ...).
///
/// ```no_run
/// # async fn demo() -> Result<(), rs2p::net::Error> {
/// use rs2p::net::ChordSocket;
/// let a = ChordSocket::bind("127.0.0.1:0").await?;
/// a.join()?;
/// let b = ChordSocket::bind("127.0.0.1:0").await?;
/// b.join()?;
/// b.connect(&a.local_addr().to_string()).await?;
/// b.set("colour", "blue")?;
/// assert_eq!(a.get("colour").await?, "blue");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ChordSocket {
    mesh: MeshSocket,
    /// Latency histograms of the gets and sets made through this socket.
    latency: Arc<Latencies>,
}

impl Deref for ChordSocket {
    type Target = MeshSocket;
    fn deref(&self) -> &MeshSocket {
        &self.mesh
    }
}

/// Who a lookup points at: this node or a connected peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Responsible {
    /// This node.
    This,
    /// A connected, seeding peer.
    Peer(PeerId),
    /// Nobody (a leeching node without seeding peers).
    Nobody,
}

impl ChordSocket {
    /// Binds a chord node with py2p's chord defaults (subnet `chord`). It starts leeching.
    pub async fn bind(addr: &str) -> Result<ChordSocket, Error> {
        let (host, port) = split_addr(addr)?;
        Self::bind_with(addr, Config::chord(&host, port)).await
    }

    /// Binds with a full configuration (see [`MeshSocket::bind_with`]).
    pub async fn bind_with(addr: &str, cfg: Config) -> Result<ChordSocket, Error> {
        Ok(ChordSocket { mesh: MeshSocket::bind_with(addr, cfg).await?, latency: Arc::default() })
    }

    /// The node id as an integer (py2p's `id_10`).
    pub fn id_10(&self) -> U512 {
        *self.id().value()
    }

    /// True while not storing data for the ring.
    pub fn is_leeching(&self) -> bool {
        self.inner.node(|n| n.is_leeching())
    }

    /// Starts seeding: announces it to every peer (meta message).
    pub fn join(&self) -> Result<(), Error> {
        Ok(self.inner.node(|n| n.join())?)
    }

    /// Stops seeding and starts handing every item to its new owner
    /// (see [`ChordSocket::leave`] to wait for the confirmations).
    pub fn unjoin(&self) -> Result<(), Error> {
        Ok(self.inner.node(|n| n.unjoin())?)
    }

    /// Unjoins and waits until every item is confirmed by its new owner (or
    /// the timeout passes). Returns the handoff counters.
    pub async fn leave(&self, timeout: Duration) -> Result<HandoffStats, Error> {
        self.unjoin()?;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let (pending, stats) = self.inner.node(|n| (n.handoff_pending(), n.handoff_stats()));
            if pending == 0 || tokio::time::Instant::now() >= deadline {
                return Ok(stats);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Seeding peers (py2p's `data_storing`).
    pub fn data_storing(&self) -> Vec<PeerId> {
        self.inner.node(|n| n.data_storing().into_iter().map(|(p, _)| p).collect())
    }

    fn responsible(&self, f: impl FnOnce(&crate::node::Node) -> Owner) -> Responsible {
        self.inner.node(|n| match f(n) {
            Owner::Local => Responsible::This,
            Owner::Remote(c) => n.peer_of(c).cloned().map_or(Responsible::Nobody, Responsible::Peer),
            Owner::Nobody => Responsible::Nobody,
        })
    }

    /// The node this one would route `key` to (py2p's `find`).
    pub fn find(&self, key: &U512) -> Responsible {
        self.responsible(|n| n.find(key))
    }

    /// py2p's `find_prev`: the candidate nearest at or after `key`.
    pub fn find_prev(&self, key: &U512) -> Responsible {
        self.responsible(|n| n.find_prev(key))
    }

    /// Our successor on the ring (py2p names this `prev`, D19).
    pub fn next(&self) -> Responsible {
        self.responsible(|n| n.successor())
    }

    /// Our predecessor on the ring (py2p names this `next`, D19).
    pub fn prev(&self) -> Responsible {
        self.responsible(|n| n.predecessor())
    }

    /// Outgoing connections made from peer lists (py2p: 4).
    pub fn max_outgoing(&self) -> usize {
        self.inner.node(|n| n.config().max_outgoing)
    }

    /// Local items a node with id `start` is closer to than one with id `end`
    /// (all items when `end` is `None`).
    pub fn dump_data(&self, start: &U512, end: Option<&U512>) -> Vec<(HashMethod, U512, Bytes)> {
        self.inner.node(|n| n.dump_data(start, end))
    }

    /// Closes the outgoing link that adds least to the ring; true if one was closed.
    pub fn disconnect_least_efficient(&self) -> bool {
        self.inner.node(|n| n.disconnect_least_efficient())
    }

    /// Items stored on this node, over the five tables.
    pub fn item_count(&self) -> usize {
        self.inner.node(|n| n.item_count())
    }

    /// True if this node's own table holds the item (no network).
    pub fn holds(&self, method: HashMethod, hash: &U512) -> bool {
        self.inner.node(|n| n.local_value(method, hash).is_some())
    }

    /// Repair counters: copies restored after failures, scans, bytes.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), rs2p::net::Error> {
    /// use rs2p::core::Config;
    /// use rs2p::ChordSocket;
    /// // A node that keeps its data in ./node-a across restarts.
    /// let mut cfg = Config::chord("127.0.0.1", 4444);
    /// cfg.data_dir = Some("node-a".into());
    /// let node = ChordSocket::bind_with("127.0.0.1:4444", cfg).await?;
    /// node.join()?;
    /// let stats = node.repair_stats();
    /// println!("{} copies restored, {} from replicas", stats.restored, stats.promoted);
    /// # Ok(()) }
    /// ```
    pub fn repair_stats(&self) -> crate::chord::RepairStats {
        self.inner.node(|n| n.repair_stats())
    }

    /// Counters of handoffs: items queued, confirmed and failed, and the
    /// store scans that looked for items new seeding peers are nearer to.
    pub fn handoff_stats(&self) -> HandoffStats {
        self.inner.node(|n| n.handoff_stats())
    }

    /// Counters of finger lookups, and how many fingers this node keeps
    /// (see `chord/fingers.rs`).
    pub fn finger_stats(&self) -> crate::chord::FingerStats {
        self.inner.node(|n| n.finger_stats())
    }

    /// The ids of this node's fingers (distinct peers).
    pub fn fingers(&self) -> Vec<String> {
        self.inner.node(|n| n.fingers().iter().map(ToString::to_string).collect())
    }

    /// The ids of this node's nearest successors, nearest first.
    pub fn successor_list(&self) -> Vec<String> {
        self.inner.node(|n| n.successor_list().iter().map(ToString::to_string).collect())
    }

    /// Replicas this node keeps for its successors.
    pub fn replica_count(&self) -> usize {
        self.inner.node(|n| n.replica_count())
    }

    /// The value at `key`, agreed by at least 3 of the 5 tables (10 s timeout).
    pub async fn get(&self, key: impl AsRef<[u8]>) -> Result<Bytes, Error> {
        let timeout = self.inner.node(|n| n.config().get_timeout_ms);
        self.get_timeout(key, Duration::from_millis(timeout)).await
    }

    /// [`ChordSocket::get`] with a timeout.
    pub async fn get_timeout(&self, key: impl AsRef<[u8]>, timeout: Duration) -> Result<Bytes, Error> {
        let mut started = self.start_gets(&[key.as_ref()], timeout);
        let (req, rx, at) = started.pop().expect("one get started");
        self.finish_get(req, rx, timeout, at).await
    }

    /// Starts a get for each key under one lock of the node.
    fn start_gets<K: AsRef<[u8]>>(&self, keys: &[K], timeout: Duration) -> Vec<(ReqId, GetReceiver, Instant)> {
        let ms = timeout.as_millis().min(u128::from(u64::MAX)) as u64;
        self.inner.with(|st| {
            let t = now();
            keys.iter()
                .map(|key| {
                    let (tx, rx) = oneshot::channel();
                    let req = st.node.get(key.as_ref(), ms, t);
                    st.get_waiters.insert(req, tx);
                    (req, rx, Instant::now())
                })
                .collect()
        })
    }

    /// Waits for the outcome of a started get, and records its latency.
    async fn finish_get(&self, req: ReqId, rx: GetReceiver, timeout: Duration, at: Instant) -> Result<Bytes, Error> {
        let result = self.await_get(req, rx, timeout).await;
        let outcome = match &result {
            Ok(_) => Outcome::Ok,
            Err(Error::Get(e)) => Outcome::of(e),
            Err(_) => Outcome::Closed,
        };
        self.latency.get(outcome, at.elapsed());
        result
    }

    async fn await_get(&self, req: ReqId, rx: GetReceiver, timeout: Duration) -> Result<Bytes, Error> {
        // The core times the request out itself; this is a safety net.
        match tokio::time::timeout(timeout + Duration::from_secs(1), rx).await {
            Ok(Ok(result)) => Ok(result?),
            Ok(Err(_)) => Err(Error::Closed),
            Err(_) => {
                self.inner.with(|st| {
                    st.node.cancel_get(req);
                    st.get_waiters.remove(&req);
                });
                Err(GetError::Timeout.into())
            }
        }
    }

    /// The value at `key`, or `default` on any failure (py2p's `get(key, ifError)`).
    pub async fn get_or(&self, key: impl AsRef<[u8]>, default: impl Into<Bytes>) -> Bytes {
        self.get(key).await.unwrap_or_else(|_| default.into())
    }

    /// Stores `value` at `key` in the five tables; an empty value deletes.
    /// Sets are not acknowledged by the protocol (py2p's neither): the
    /// latency recorded for [`ChordSocket::metrics`] is that of queuing
    /// the five stores.
    pub fn set(&self, key: impl AsRef<[u8]>, value: impl Into<Bytes>) -> Result<(), Error> {
        let at = Instant::now();
        let value = value.into();
        // Its stores go to the writer tasks: the call returns at once, and
        // the writers send them beside the caller (written by the caller,
        // one socket after another, sets ran at half the rate).
        let result = self.inner.node_queued(|n| {
            if n.is_closed() {
                return Err(Error::Closed);
            }
            n.set(key.as_ref(), value);
            Ok(())
        });
        self.latency.set(if result.is_ok() { Outcome::Ok } else { Outcome::Closed }, at.elapsed());
        result
    }

    /// Counters, sizes, bounds and latency histograms of this node, as
    /// `rs2p node --metrics` serves them (no exporter needed).
    ///
    /// ```no_run
    /// # async fn demo(sock: rs2p::ChordSocket) {
    /// let m = sock.metrics();
    /// println!("{} frames in, {} gets ok", m.node.counters.frames_in, m.gets[0].count);
    /// print!("{}", rs2p::net::render_prometheus(&m, rs2p::net::TextFormat::OpenMetrics));
    /// # }
    /// ```
    pub fn metrics(&self) -> MetricsSnapshot {
        let (node, id) = self.inner.node(|n| (n.metrics(), n.id().to_string()));
        let (gets, sets) = self.latency.snapshot();
        MetricsSnapshot { id, node, gets, sets }
    }

    /// What this node sees: its links, neighbours and the ring (what
    /// `rs2p status` prints).
    pub fn status_report(&self) -> StatusReport {
        self.inner.node(|n| n.status_report())
    }

    /// Asks a linked rs2p peer what it sees (PROTOCOL §16.15); waits up to
    /// `timeout` for the answer.
    pub async fn peer_status(&self, peer: &PeerId, timeout: Duration) -> Result<StatusReport, Error> {
        let conn = self.inner.node(|n| {
            let conn = n.conn_of(peer).ok_or_else(|| Error::Status(format!("{} is not linked", peer.short())))?;
            n.request_status(conn).map_err(|e| Error::Status(e.to_owned()))?;
            Ok::<_, Error>(conn)
        })?;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let late = tokio::time::Instant::now() >= deadline;
            if let Some(report) = self.inner.node(|n| n.take_status(conn, late)) {
                return Ok(report);
            }
            if late {
                return Err(GetError::Timeout.into());
            }
            if self.inner.node(|n| n.peer_of(conn).is_none()) {
                self.inner.node(|n| n.take_status(conn, true));
                return Err(Error::Status("the peer closed the connection".to_owned()));
            }
            tokio::time::sleep(STATUS_POLL).await;
        }
    }

    /// [`ChordSocket::set`], then returns once a majority get reads the value
    /// back: at least 3 of the 5 owners hold it (the confirmed form of a set,
    /// like a Kademlia put with `Quorum::Majority`). The stores are sent again
    /// if the value is still not readable after [`CONFIRM_RESEND`]; gives
    /// [`GetError::Timeout`] if it is not readable by `timeout`.
    ///
    /// ```no_run
    /// # async fn demo(sock: rs2p::ChordSocket) -> Result<(), rs2p::Error> {
    /// sock.set_confirmed("k", "v", std::time::Duration::from_secs(5)).await?;
    /// assert_eq!(sock.get("k").await?, "v");
    /// # Ok(()) }
    /// ```
    pub async fn set_confirmed(
        &self,
        key: impl AsRef<[u8]>,
        value: impl Into<Bytes>,
        timeout: Duration,
    ) -> Result<(), Error> {
        let (key, value) = (key.as_ref(), value.into());
        self.set(key, value.clone())?;
        let start = tokio::time::Instant::now();
        let deadline = start + timeout;
        let (mut sent_at, mut pause) = (start, Duration::from_millis(1));
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Err(GetError::Timeout.into());
            }
            match self.get_timeout(key, left).await {
                Ok(read) if read == value => return Ok(()),
                Err(Error::Get(GetError::Closed)) => return Err(Error::Closed),
                // Not there yet, another value, or no majority yet: try again.
                Ok(_) | Err(Error::Get(_)) => {}
                Err(e) => return Err(e),
            }
            if sent_at.elapsed() >= CONFIRM_RESEND {
                self.set(key, value.clone())?;
                sent_at = tokio::time::Instant::now();
            }
            tokio::time::sleep(pause.min(left)).await;
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }

    /// The values of many keys, with [`ITEMS_IN_FLIGHT`] gets in flight at
    /// once; the results come in the order of `keys`.
    ///
    /// ```no_run
    /// # async fn demo(sock: rs2p::ChordSocket) {
    /// let got = sock.get_many(&["a", "b"], std::time::Duration::from_secs(5)).await;
    /// assert_eq!(got.len(), 2);
    /// # }
    /// ```
    pub async fn get_many<K: AsRef<[u8]>>(&self, keys: &[K], timeout: Duration) -> Vec<Result<Bytes, Error>> {
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(ITEMS_IN_FLIGHT) {
            for (req, rx, at) in self.start_gets(chunk, timeout) {
                out.push(self.finish_get(req, rx, timeout, at).await);
            }
        }
        out
    }

    /// `set` for every pair (py2p's `update`).
    pub fn update<K: AsRef<[u8]>, V: Into<Bytes>>(&self, pairs: impl IntoIterator<Item = (K, V)>) -> Result<(), Error> {
        for (k, v) in pairs {
            self.set(k, v)?;
        }
        Ok(())
    }

    /// Deletes `key` (stores an empty value).
    pub fn delete(&self, key: impl AsRef<[u8]>) -> Result<(), Error> {
        self.set(key, Bytes::new())
    }

    /// The network-wide key list as this node knows it now, sorted. A
    /// leeching node fetches the list from a seeding peer on the first call
    /// (before it, it holds none: a client that only gets and sets never
    /// downloads it); [`ChordSocket::key_list_status`] says whether it is
    /// all in, and [`ChordSocket::all_keys`] waits until it is.
    pub fn keys(&self) -> Vec<Bytes> {
        self.inner.node(|n| {
            n.request_keys();
            n.keys()
        })
    }

    /// True if the last walk of the ring (`keys()` without the flooded key
    /// list) gave up on a node that did not answer: its list is partial.
    pub fn key_walk_failed(&self) -> bool {
        self.inner.node(|n| n.walks_keys() && n.key_walk_failed())
    }

    /// Whether the key list is complete, still arriving, or not asked for.
    pub fn key_list_status(&self) -> KeyListStatus {
        self.inner.node(|n| n.key_list_status())
    }

    /// The whole key list, once it has all arrived; `Err(Timeout)` if it is
    /// still arriving after `timeout`.
    pub async fn all_keys(&self, timeout: Duration) -> Result<Vec<Bytes>, Error> {
        let deadline = tokio::time::Instant::now() + timeout;
        self.inner.node(|n| n.request_keys());
        loop {
            if self.key_list_status() == KeyListStatus::Complete {
                // A walk of the ring that could not reach a node has a
                // partial list: no list rather than a wrong one.
                if self.key_walk_failed() {
                    return Err(GetError::Unavailable.into());
                }
                return Ok(self.keys());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(GetError::Timeout.into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The value of every known key (keys whose get fails are skipped).
    pub async fn values(&self) -> Vec<Bytes> {
        self.items().await.into_iter().map(|(_, v)| v).collect()
    }

    /// Every known key with its value (keys whose get fails are skipped).
    /// The key list is awaited first (up to the get timeout); the gets run
    /// [`ITEMS_IN_FLIGHT`] at a time.
    pub async fn items(&self) -> Vec<(Bytes, Bytes)> {
        let timeout = Duration::from_millis(self.inner.node(|n| n.config().get_timeout_ms));
        let keys = match self.all_keys(timeout).await {
            Ok(keys) => keys,
            Err(_) => self.keys(),
        };
        let values = self.get_many(&keys, timeout).await;
        keys.into_iter().zip(values).filter_map(|(k, v)| Some((k, v.ok()?))).collect()
    }

    /// A map of every known key to its value (py2p's `copy`).
    pub async fn copy(&self) -> HashMap<Bytes, Bytes> {
        self.items().await.into_iter().collect()
    }

    /// Removes `key` and returns its value.
    pub async fn pop(&self, key: impl AsRef<[u8]>) -> Result<Bytes, Error> {
        let v = self.get(key.as_ref()).await?;
        self.delete(key)?;
        Ok(v)
    }

    /// Removes `key` and returns its value, or `default` if it has none.
    pub async fn pop_or(&self, key: impl AsRef<[u8]>, default: impl Into<Bytes>) -> Bytes {
        match self.pop(key).await {
            Ok(v) => v,
            Err(_) => default.into(),
        }
    }

    /// Removes and returns some key with its value.
    pub async fn popitem(&self) -> Result<(Bytes, Bytes), Error> {
        for k in self.keys() {
            if let Ok(v) = self.pop(&k).await {
                return Ok((k, v));
            }
        }
        Err(Error::KeyNotFound("the key list is empty".to_owned()))
    }
}
