//! The mesh user API on the core: connect, send, whisper, reply, disconnect.

use bytes::Bytes;
use sha2::{Digest, Sha384};

use super::{Conn, Mesh, PeerExt};
use crate::core::{Action, ConnId, PeerId, Received};
use crate::wire::{base58, flags};

/// Why a connect was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    /// The address is our own.
    #[error("refusing to connect to our own address {0}:{1}")]
    OwnAddress(String, u16),
    /// The expected id is ours.
    #[error("refusing to connect to our own id")]
    OwnId,
    /// The expected id is already connected or being dialed.
    #[error("already connected to peer {0}")]
    AlreadyConnected(String),
    /// The node is closed.
    #[error("the node is closed")]
    Closed,
    /// Too many dials in progress.
    #[error("too many connections in progress")]
    TooManyDials,
}

/// Bound on dials in progress at once.
const MAX_DIALS: usize = 32;

impl<X: PeerExt> Mesh<X> {
    /// Dials `host:port`. With an expected id, a second dial to the same peer is refused.
    pub fn connect(&mut self, host: &str, port: u16, expected: Option<PeerId>) -> Result<ConnId, ConnectError> {
        if self.closed {
            return Err(ConnectError::Closed);
        }
        if (host, port) == (self.cfg.out_addr.0.as_str(), self.cfg.out_addr.1) {
            return Err(ConnectError::OwnAddress(host.to_owned(), port));
        }
        if let Some(pid) = &expected {
            if *pid == self.id {
                return Err(ConnectError::OwnId);
            }
            if self.routing.contains_key(pid) || self.dialing.contains_key(pid) {
                return Err(ConnectError::AlreadyConnected(pid.to_string()));
            }
        }
        if self.conns.values().filter(|c| c.dialing).count() >= MAX_DIALS {
            return Err(ConnectError::TooManyDials);
        }
        let conn = self.alloc_conn();
        let mut c = Conn::new(conn, true, self.cfg.max_frame, self.now);
        c.dialing = true;
        c.dial_addr = (host.to_owned(), port);
        if let Some(pid) = expected {
            self.dialing.insert(pid.clone(), conn);
            c.peer = Some(pid);
        }
        self.conns.insert(c);
        self.dials_started += 1;
        self.actions.push_back(Action::Dial { conn, host: host.to_owned(), port });
        Ok(conn)
    }

    /// Sends `[sub_flag, args...]` with type `msg_type` to every handshaken peer
    /// (py2p's `send(*args, flag=msg_type, type=sub_flag)`).
    pub fn send(&mut self, msg_type: u8, sub_flag: u8, args: &[Bytes]) {
        let mut payload = Vec::with_capacity(args.len() + 1);
        payload.push(Bytes::copy_from_slice(&[sub_flag]));
        payload.extend(args.iter().cloned());
        // Remember our own broadcast so its echo is dropped (with no peer, it cannot echo).
        if msg_type == flags::BROADCAST && !self.routing.is_empty() {
            let id = crate::wire::message_id(&payload, self.now_secs());
            self.recent.insert(&id, self.now_secs());
        }
        for conn in self.routed_conns() {
            self.send_on(conn, msg_type, payload.clone());
        }
    }

    /// A user broadcast: reaches every node of the mesh once.
    pub fn broadcast(&mut self, args: &[Bytes]) {
        self.send(flags::BROADCAST, flags::BROADCAST, args);
    }

    /// A whisper to one connected peer.
    pub fn whisper(&mut self, peer: &PeerId, args: &[Bytes]) -> bool {
        let Some(conn) = self.conn_of(peer) else {
            return false;
        };
        let mut payload = vec![Bytes::from_static(&[flags::WHISPER])];
        payload.extend(args.iter().cloned());
        self.send_on(conn, flags::WHISPER, payload);
        true
    }

    /// Sends `[sub_flag, args...]` with type `msg_type` to one connected peer
    /// (py2p's `handler.send(msg_type, sub_flag, *args)` on that peer's
    /// connection); false if it is not connected.
    pub fn send_to(&mut self, peer: &PeerId, msg_type: u8, sub_flag: u8, args: &[Bytes]) -> bool {
        let Some(conn) = self.conn_of(peer) else {
            return false;
        };
        let mut payload = Vec::with_capacity(args.len() + 1);
        payload.push(Bytes::copy_from_slice(&[sub_flag]));
        payload.extend(args.iter().cloned());
        self.send_on(conn, msg_type, payload);
        true
    }

    /// Replies to a received message's sender: directly when connected, else
    /// through a route request (the reply is sent once a path is found).
    pub fn reply(&mut self, to: &Received, args: &[Bytes]) {
        let mut payload = vec![Bytes::from_static(&[flags::WHISPER])];
        payload.extend(args.iter().cloned());
        if let Some(pid) = PeerId::parse(&to.msg.sender) {
            if let Some(conn) = self.conn_of(&pid) {
                self.send_on(conn, flags::WHISPER, payload);
                return;
            }
        }
        if self.route_requests.len() >= self.cfg.max_pending {
            self.record_error(None, "too many route requests pending: reply dropped".to_owned());
            return;
        }
        let mut h = Sha384::new();
        h.update(&to.msg.sender);
        h.update(base58::encode_u64(self.now_secs()).as_bytes());
        let req = base58::encode_be_bytes(&h.finalize());
        self.route_requests.insert(req.clone(), (self.now, payload));
        self.send(flags::BROADCAST, flags::REQUEST, &[Bytes::from(req), to.msg.sender.clone()]);
    }

    /// Asks every peer for its peer list.
    pub fn request_peers(&mut self) {
        self.send(flags::WHISPER, flags::REQUEST, &[Bytes::from_static(b"*")]);
    }

    /// Closes the connection to a peer.
    pub fn disconnect(&mut self, peer: &PeerId) -> bool {
        match self.conn_of(peer).or_else(|| self.dialing.get(peer).copied()) {
            Some(conn) => {
                self.close_conn(conn);
                true
            }
            None => false,
        }
    }

    /// Closes a connection by handle.
    pub fn disconnect_conn(&mut self, conn: ConnId) {
        self.close_conn(conn);
    }
}
