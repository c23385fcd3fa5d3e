//! Small value types shared by the core, the drivers and the public API.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;

use crate::ring::U512;
use crate::wire::{base58, Message};

/// Milliseconds since the Unix epoch. The core never reads a clock; drivers pass it in.
pub type Time = u64;

/// A connection handle, allocated by the core.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// A request handle for an asynchronous operation (a `get`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReqId(pub u64);

/// A node id: its base58 text and its integer value on the ring.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId {
    value: U512,
    text: Arc<str>,
}

impl PeerId {
    /// Parses base58 text; `None` when it is not base58 or over 512 bits.
    ///
    /// ```
    /// let id = rs2p_proto::core::PeerId::parse(b"21").unwrap();
    /// assert_eq!(id.value(), &rs2p_proto::ring::U512::from(58u64));
    /// ```
    pub fn parse(text: &[u8]) -> Option<PeerId> {
        if text.is_empty() {
            return None;
        }
        let value = base58::decode(text).ok()?;
        let text = std::str::from_utf8(text).ok()?;
        Some(PeerId { value, text: Arc::from(text) })
    }

    /// The integer value (py2p's `id_10`).
    pub fn value(&self) -> &U512 {
        &self.value
    }

    /// The base58 text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The text as bytes for a packet.
    pub fn bytes(&self) -> Bytes {
        Bytes::copy_from_slice(self.text.as_bytes())
    }

    /// The first 8 characters, for logs and summaries.
    pub fn short(&self) -> &str {
        let end = self.text.char_indices().nth(8).map_or(self.text.len(), |(i, _)| i);
        &self.text[..end]
    }
}

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerId({})", self.short())
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A user message handed to the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The connection it arrived on.
    pub conn: ConnId,
    /// The message (type, sender, time, payload with its sub-flag first).
    pub msg: Message,
    /// Its id.
    pub id: String,
}

impl Received {
    /// The user arguments: the payload after the sub-flag.
    pub fn args(&self) -> &[Bytes] {
        self.msg.payload.get(1..).unwrap_or(&[])
    }

    /// The sub-flag.
    pub fn sub_flag(&self) -> Option<u8> {
        self.msg.sub_flag()
    }
}

/// Why a `get` gave no value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GetError {
    /// At least 3 of the 5 tables said positively that they hold no value.
    #[error("key not found")]
    NotFound,
    /// The owners of too many tables could not be reached (no seeding peer,
    /// or this node lost its links): the key may exist, so no "not found".
    #[error("the owners of the key are unreachable: answer unavailable")]
    Unavailable,
    /// Tables answered, but no value was held by at least 3 of the 5 (nor
    /// did 3 say the key is missing).
    #[error("no value agreed by at least 3 of the 5 hash tables")]
    NoAgreement,
    /// Not enough answers before the deadline.
    #[error("timed out waiting for answers")]
    Timeout,
    /// The node was closed.
    #[error("the node is closed")]
    Closed,
}

/// Something the core reports to the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A peer finished its handshake.
    Connected {
        /// Its connection.
        conn: ConnId,
        /// The peer.
        peer: PeerId,
        /// True for the very first peer this node ever had (py2p's `connect` event).
        first: bool,
    },
    /// A connection closed (or a dial failed).
    Disconnected {
        /// The connection.
        conn: ConnId,
        /// The peer, if its handshake had been processed.
        peer: Option<PeerId>,
        /// Why, in words.
        reason: String,
    },
    /// A user message (whisper, broadcast or registered sub-flag).
    Message(Received),
    /// A key joined the network-wide key list.
    KeyAdded(Bytes),
    /// A key left the network-wide key list.
    KeyDeleted(Bytes),
    /// A `get` finished.
    GetDone {
        /// The request.
        req: ReqId,
        /// The agreed value, or why there is none.
        result: Result<Bytes, GetError>,
    },
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Write these bytes (one whole frame) to the connection.
    Send {
        /// The connection.
        conn: ConnId,
        /// The frame.
        frame: Bytes,
    },
    /// Encode this message and write it to the connection (only with
    /// [`crate::chord::Node::defer_encoding`] on; else sends are
    /// [`Action::Send`]).
    SendMessage {
        /// The connection.
        conn: ConnId,
        /// The message, its id and compression.
        out: Box<super::Outgoing>,
    },
    /// Open a TCP connection; report with `on_dialed` or `on_dial_failed`.
    Dial {
        /// The handle the core allocated for it.
        conn: ConnId,
        /// Host to connect to.
        host: String,
        /// Port to connect to.
        port: u16,
    },
    /// Close the connection (the core has already forgotten it).
    Close {
        /// The connection.
        conn: ConnId,
    },
    /// Report an event to the application.
    Event(Event),
}
