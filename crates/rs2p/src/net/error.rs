//! Errors of the socket API.

use crate::chord::ChordError;
use crate::core::GetError;
use crate::mesh::ConnectError;

/// Everything a socket call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The listening socket could not be bound (e.g. the address is in use).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: String,
        /// The OS error; `AddrInUse` when the port is taken.
        #[source]
        source: std::io::Error,
    },
    /// An address that does not parse as `HOST:PORT`.
    #[error("bad address {0:?}: expected HOST:PORT")]
    BadAddress(String),
    /// A connection could not be made or did not complete its handshake.
    #[error("cannot connect to {addr}: {reason}")]
    Connect {
        /// The peer's address.
        addr: String,
        /// What happened.
        reason: String,
    },
    /// The connection was refused before dialing.
    #[error(transparent)]
    Refused(#[from] ConnectError),
    /// A `get` gave no value.
    #[error(transparent)]
    Get(#[from] GetError),
    /// A chord operation was refused.
    #[error(transparent)]
    Chord(#[from] ChordError),
    /// `pop` of a key not in the key list.
    #[error("key not found: {0}")]
    KeyNotFound(String),
    /// The socket was closed.
    #[error("the socket is closed")]
    Closed,
    /// The protocol names an encryption py2p does not know (py2p raises
    /// `ValueError`).
    #[error("unknown encryption method {0:?}: expected \"Plaintext\" or \"SSL\"")]
    UnknownEncryption(String),
    /// The TLS settings cannot be used (certificate, key, CA, data directory).
    #[error("TLS: {0}")]
    Tls(String),
    /// A peer's status could not be asked for or read.
    #[error("no status: {0}")]
    Status(String),
    /// The data directory could not be opened or read.
    #[error(transparent)]
    DataDir(#[from] super::DataDirError),
}

impl Error {
    /// True when a peer refused us because it is on another subnet (or
    /// closed during the handshake, which is how py2p refuses one): a
    /// misconfiguration that retrying cannot fix.
    pub fn is_wrong_subnet(&self) -> bool {
        matches!(self, Error::Connect { reason, .. } if reason.contains("subnet"))
    }

    /// True for a bind failure because the address is taken.
    pub fn is_addr_in_use(&self) -> bool {
        matches!(self, Error::Bind { source, .. } if source.kind() == std::io::ErrorKind::AddrInUse)
    }
}
