//! [`MeshSocket`]: the async handle of a mesh node (py2p's `mesh_socket`).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, oneshot};

use super::driver::{now, Handler, Inner};
use super::tls::{self, Tls};
use super::Error;
use crate::core::{Config, Event, PeerId, Received};
use crate::node::Node;

/// How long `connect` waits for the peer's handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// A mesh node on a TCP port.
///
/// Its tasks (listener, connections, timers) run on the tokio runtime that
/// `bind` was called in, so that runtime must outlive the socket; the handle
/// itself is cheap to clone and may be used from any thread or runtime.
///
/// ```no_run
/// # async fn demo() -> Result<(), rs2p::net::Error> {
/// use rs2p::net::MeshSocket;
/// let a = MeshSocket::bind("127.0.0.1:0").await?;
/// let b = MeshSocket::bind("127.0.0.1:0").await?;
/// b.connect(&a.local_addr().to_string()).await?;
/// b.broadcast(&["hello".into()]);
/// let msg = a.next_message().await;
/// assert_eq!(msg.args()[0], "hello");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct MeshSocket {
    pub(crate) inner: Arc<Inner>,
}

/// Splits `HOST:PORT` (IPv6 hosts in brackets).
pub fn split_addr(addr: &str) -> Result<(String, u16), Error> {
    let (host, port) = addr.rsplit_once(':').ok_or_else(|| Error::BadAddress(addr.to_owned()))?;
    let port: u16 = port.parse().map_err(|_| Error::BadAddress(addr.to_owned()))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(Error::BadAddress(addr.to_owned()));
    }
    Ok((host.to_owned(), port))
}

impl MeshSocket {
    /// Binds a mesh node with py2p's mesh defaults.
    pub async fn bind(addr: &str) -> Result<MeshSocket, Error> {
        let (host, port) = split_addr(addr)?;
        Self::bind_with(addr, Config::mesh(&host, port)).await
    }

    /// Binds with a full configuration. An out address port of 0 is replaced by
    /// the bound port; an empty out host by the bound host; an empty salt by
    /// a random UUID4 and a zero seed by a random one. An encryption
    /// other than `Plaintext` and `SSL` is refused ([`Error::UnknownEncryption`]);
    /// `SSL` wraps every connection in TLS as `cfg.tls` says.
    pub async fn bind_with(addr: &str, mut cfg: Config) -> Result<MeshSocket, Error> {
        let (host, _) = split_addr(addr)?;
        if !cfg.protocol.encryption_known() {
            return Err(Error::UnknownEncryption(cfg.protocol.encryption.clone()));
        }
        let listener = TcpListener::bind(addr).await.map_err(|source| Error::Bind { addr: addr.to_owned(), source })?;
        let local = listener.local_addr().map_err(|source| Error::Bind { addr: addr.to_owned(), source })?;
        if cfg.out_addr.0.is_empty() {
            cfg.out_addr.0 = host;
        }
        if cfg.out_addr.1 == 0 {
            cfg.out_addr.1 = local.port();
        }
        // The protocol core draws no randomness: its id salt (a UUID4, one
        // per node as py2p's is one per process) and the secret keys of its
        // maps come from here.
        if cfg.salt.is_empty() {
            cfg.salt = super::random_salt();
        }
        if cfg.seed == 0 {
            cfg.seed = rand::random();
        }
        // A data directory: the node keeps its id (so its arc), items, key
        // list and tombstones across restarts.
        let data = match cfg.data_dir.clone() {
            Some(dir) => {
                let (data, saved) = super::DataDir::open(&dir)?;
                if let Some(id) = &saved.id {
                    cfg.id = Some(id.clone());
                }
                cfg.journal = true;
                Some((data, saved))
            }
            None => None,
        };
        let tls = match (cfg.protocol.is_ssl(), &cfg.tls.identity, &data) {
            (false, ..) => None,
            (true, Some(identity), _) => Some(Tls::new(&cfg.tls, identity).map_err(Error::Tls)?),
            (true, None, Some((dir, _))) => {
                let identity = tls::identity_in_dir(dir.path()).map_err(Error::Tls)?;
                Some(Tls::new(&cfg.tls, &identity).map_err(Error::Tls)?)
            }
            (true, None, None) => {
                Some(Tls::new(&cfg.tls, &tls::self_signed().map_err(Error::Tls)?).map_err(Error::Tls)?)
            }
        };
        if let Some(t) = &tls {
            tracing::info!(
                fingerprint = %tls::fingerprint_hex(&t.fingerprint()),
                peers = if cfg.tls.authenticates_peers() { "authenticated" } else { "not verified (as py2p)" },
                "TLS certificate"
            );
        }
        let mut node = Node::new(cfg, now());
        node.set_wall_clock(super::driver::wall_now());
        let data = match data {
            Some((data, saved)) => {
                if saved.id.is_none() {
                    data.save_id(node.id().as_str()).map_err(|e| super::DataDirError {
                        path: data.path().to_owned(),
                        reason: format!("cannot write: {e}"),
                    })?;
                }
                tracing::info!(
                    dir = %data.path().display(),
                    items = saved.items.len(),
                    keys = saved.keys.len(),
                    "restored from the data directory"
                );
                let peers = saved.peers.clone();
                // The last peers are a way back to the ring (chord/rejoin.rs).
                for p in &peers {
                    if let Ok((host, port)) = split_addr(p) {
                        node.add_bootstrap(&host, port);
                    }
                }
                node.restore(saved.items, saved.keys, saved.tombstones, saved.item_tombs, saved.last_alive);
                Some((std::sync::Arc::new(data), peers))
            }
            None => None,
        };
        tracing::info!(addr = %local, id = %node.id().short(), "listening");
        Ok(MeshSocket { inner: Inner::start(listener, node, data, tls).await })
    }

    /// This node's id.
    pub fn id(&self) -> PeerId {
        self.inner.node(|n| n.id().clone())
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.inner.local_addr
    }

    /// The address advertised to peers (py2p's `out_addr` / `addr`).
    pub fn out_addr(&self) -> (String, u16) {
        self.inner.node(|n| n.config().out_addr.clone())
    }

    /// SHA-256 of this node's TLS certificate (64 hex digits, the format of a
    /// trust file), or `None` when the protocol is `Plaintext`.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), rs2p::net::Error> {
    /// use rs2p::{core::Config, wire::Protocol, ChordSocket};
    /// let mut cfg = Config::chord("127.0.0.1", 0);
    /// cfg.protocol = Protocol::new("chord", "SSL");
    /// let node = ChordSocket::bind_with("127.0.0.1:0", cfg).await?;
    /// println!("trust me: {}", node.tls_fingerprint().unwrap_or_default());
    /// # Ok(()) }
    /// ```
    pub fn tls_fingerprint(&self) -> Option<String> {
        self.inner.tls_fingerprint().map(|fp| tls::fingerprint_hex(&fp))
    }

    /// The protocol id peers must share.
    pub fn protocol_id(&self) -> String {
        self.inner.node(|n| n.config().protocol.id())
    }

    /// Connects to `HOST:PORT` and waits for the peer's handshake.
    ///
    /// An address reached is remembered as a way back to the ring: a
    /// seeding node that later loses every seeding peer dials it again
    /// (with the peers it lost, `chord/rejoin.rs`).
    pub async fn connect(&self, addr: &str) -> Result<PeerId, Error> {
        let (host, port) = split_addr(addr)?;
        let peer = self.connect_to(&host, port, None).await?;
        self.inner.node(|n| n.add_bootstrap(&host, port));
        Ok(peer)
    }

    /// Connects with an expected id; refused if that id is already connected.
    pub async fn connect_to(&self, host: &str, port: u16, expected: Option<PeerId>) -> Result<PeerId, Error> {
        let (tx, rx) = oneshot::channel();
        self.inner.with(|st| -> Result<(), Error> {
            let conn = st.node.connect(host, port, expected)?;
            st.connect_waiters.insert(conn, tx);
            Ok(())
        })?;
        let addr = format!("{host}:{port}");
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, rx).await {
            Ok(Ok(Ok(peer))) => Ok(peer),
            Ok(Ok(Err(reason))) => Err(Error::Connect { addr, reason }),
            Ok(Err(_)) => Err(Error::Closed),
            Err(_) => Err(Error::Connect { addr, reason: "no handshake within 5 s".to_owned() }),
        }
    }

    /// Sends `[sub_flag, args...]` as `msg_type` to every peer (py2p's
    /// `send(*args, flag=msg_type, type=sub_flag)`).
    pub fn send(&self, msg_type: u8, sub_flag: u8, args: &[Bytes]) {
        self.inner.node(|n| n.send(msg_type, sub_flag, args));
    }

    /// Broadcasts user data to the whole mesh.
    pub fn broadcast(&self, args: &[Bytes]) {
        self.inner.node(|n| n.broadcast(args));
    }

    /// Whispers user data to one connected peer; false if not connected.
    pub fn whisper(&self, peer: &PeerId, args: &[Bytes]) -> bool {
        self.inner.node(|n| n.whisper(peer, args))
    }

    /// Sends `[sub_flag, args...]` as `msg_type` to one connected peer (py2p's
    /// `handler.send(msg_type, sub_flag, *args)` on that peer's connection);
    /// false if not connected.
    pub fn send_to(&self, peer: &PeerId, msg_type: u8, sub_flag: u8, args: &[Bytes]) -> bool {
        self.inner.node(|n| n.send_to(peer, msg_type, sub_flag, args))
    }

    /// Replies to a message's sender (through a route request if not connected).
    pub fn reply(&self, to: &Received, args: &[Bytes]) {
        self.inner.node(|n| n.reply(to, args));
    }

    /// Up to `quantity` queued user messages, oldest first (py2p's `recv(n)`).
    pub fn recv(&self, quantity: usize) -> Vec<Received> {
        self.inner.with(|st| st.queue.take(quantity))
    }

    /// The oldest queued user message, if any (py2p's `recv()`).
    pub fn recv_one(&self) -> Option<Received> {
        self.inner.with(|st| st.queue.pop_front())
    }

    /// Waits for the next user message. Once the socket is closed with
    /// nothing queued it never returns: use [`MeshSocket::next_message_or_closed`]
    /// to learn of the close.
    pub async fn next_message(&self) -> Received {
        match self.next_message_or_closed().await {
            Some(m) => m,
            None => std::future::pending().await,
        }
    }

    /// Waits for the next user message; `None` once the socket is closed and
    /// nothing is left queued (a close wakes every waiter).
    ///
    /// ```no_run
    /// # async fn demo(s: rs2p::net::MeshSocket) {
    /// while let Some(m) = s.next_message_or_closed().await {
    ///     println!("{:?}", m.msg.payload);
    /// }
    /// # }
    /// ```
    pub async fn next_message_or_closed(&self) -> Option<Received> {
        loop {
            let notified = self.inner.msg_notify.notified();
            let (msg, closed) = self.inner.with(|st| (st.queue.pop_front(), st.node.is_closed()));
            if msg.is_some() || closed {
                return msg;
            }
            notified.await;
        }
    }

    /// Registers a handler for messages the built-in handlers did not take
    /// (custom sub-flags, and user data before it is queued). Return true to
    /// consume the message.
    pub fn register_handler(&self, handler: impl Fn(&Received) -> bool + Send + Sync + 'static) {
        let h: Handler = Arc::new(handler);
        if let Ok(mut list) = self.inner.handlers.write() {
            list.push(h);
        }
    }

    /// Events: peers connecting and leaving, user messages, chord key changes.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    /// Ids of peers on connections we opened.
    pub fn outgoing(&self) -> Vec<PeerId> {
        self.inner.node(|n| n.outgoing())
    }

    /// Ids of peers on connections they opened.
    pub fn incoming(&self) -> Vec<PeerId> {
        self.inner.node(|n| n.incoming())
    }

    /// Connections still waiting for the peer's handshake (py2p's
    /// `awaiting_ids`): accepted ones, and ones we opened, with where we
    /// dialed.
    pub fn awaiting(&self) -> Vec<crate::mesh::AwaitingLink> {
        self.inner.node(|n| n.awaiting_links())
    }

    /// Every handshaken peer.
    pub fn peers(&self) -> Vec<PeerId> {
        self.inner.node(|n| {
            let mut v = n.outgoing();
            v.extend(n.incoming());
            v.sort();
            v
        })
    }

    /// Asks every peer for its peer list.
    pub fn request_peers(&self) {
        self.inner.node(|n| n.request_peers());
    }

    /// Closes the connection to one peer; false if not connected.
    pub fn disconnect(&self, peer: &PeerId) -> bool {
        self.inner.node(|n| n.disconnect(peer))
    }

    /// Sizes of the node's tables and queues.
    pub fn stats(&self) -> crate::node::NodeStats {
        self.inner.node(|n| n.stats())
    }

    /// `Ok(())` ("Nominal") or the recent errors.
    pub fn status(&self) -> Result<(), Vec<String>> {
        self.inner.node(|n| n.status())
    }

    /// Closes, then waits (up to 2 s) until queued frames are written out;
    /// with a data directory, commits what is pending and releases the
    /// directory, so that a node can be opened on it again at once.
    pub async fn shutdown(&self) -> Result<(), Error> {
        self.close()?;
        self.inner.flush(Duration::from_secs(2)).await;
        self.inner.persist_now().await;
        self.inner.release_data().await;
        Ok(())
    }

    /// Seeding peers this node was connected to when it last ran with its
    /// data directory (`host:port`, most recent first): where to look for
    /// the ring again after a restart.
    pub fn saved_peers(&self) -> Vec<String> {
        self.inner.saved_peers.clone()
    }

    /// Closes every connection and stops listening. A second close is an error.
    pub fn close(&self) -> Result<(), Error> {
        let res = self.inner.with(|st| {
            let r = st.node.close();
            for (_, w) in st.get_waiters.drain() {
                let _ = w.send(Err(crate::core::GetError::Closed));
            }
            r
        });
        self.inner.stop_tasks();
        // Waiters of next_message_or_closed learn of the close.
        self.inner.msg_notify.notify_waiters();
        res.map_err(|_| Error::Closed)
    }
}
