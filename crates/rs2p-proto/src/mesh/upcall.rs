//! What the mesh hands the protocol above it: py2p's chord_socket registers
//! handlers on mesh_socket; here the mesh queues [`Upcall`]s, one frame at a
//! time, and the node that composes the layers hands them to chord (or, on
//! a plain mesh node, to the application).

use bytes::Bytes;

use super::Conn;
use crate::core::{ConnId, PeerId};
use crate::wire::pyjson::PeerEntry;
use crate::wire::Message;

/// One thing for the protocol above the mesh to handle.
#[derive(Debug)]
pub enum Upcall<X> {
    /// A connection opened (accepted, or our dial completed); our handshake
    /// is queued on it.
    Opened {
        /// The connection.
        conn: ConnId,
    },
    /// A peer's handshake was processed.
    Linked {
        /// The connection.
        conn: ConnId,
        /// The peer.
        peer: PeerId,
        /// Its first handshake on this connection (not a repeat).
        first: bool,
        /// The capability list packet of its handshake (markers of the
        /// protocol above may be in it).
        capabilities: Bytes,
    },
    /// A message whose sub-flag the mesh does not handle: the protocol
    /// above's, or the application's.
    Message {
        /// The connection it came on.
        conn: ConnId,
        /// The message.
        msg: Message,
        /// Its id, when the mesh computed it (broadcasts).
        id: Option<String>,
    },
    /// A peer list arrived; the protocol above chooses what to dial from it
    /// (through `Mesh::dial_listed`).
    PeerList {
        /// The connection it came on.
        conn: ConnId,
        /// Its entries (bounded by `Config::max_peer_list`).
        entries: Vec<PeerEntry>,
    },
    /// A peer asked for our peer list (`request *`).
    PeersWanted {
        /// The connection that asked.
        conn: ConnId,
    },
    /// An rs2p peer's handshake came in and the protocol above keeps its
    /// own peer lists for rs2p peers (`Mesh::set_own_rs2p_lists`): it may
    /// offer one (py2p peers are sent every routed peer by the mesh).
    PeersOffered {
        /// The connection.
        conn: ConnId,
    },
    /// A connection is gone; its state is handed back.
    Lost {
        /// The connection as it was.
        conn: Box<Conn<X>>,
        /// Why it is gone.
        cause: LostCause,
    },
}

/// Why a connection is gone ([`Upcall::Lost`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LostCause {
    /// We closed it, or it never made it (a failed dial or TLS handshake,
    /// bad input, a duplicate, an eviction).
    Local,
    /// The peer closed it, or it failed under us (a reset).
    Peer,
    /// We closed it because the peer fell silent past the deadline.
    Silent,
}
