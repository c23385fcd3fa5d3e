//! Encoding sent frames outside the node: with
//! `Node::defer_encoding` on, the node hands the driver [`Outgoing`]
//! messages ([`Action::SendMessage`](super::Action::SendMessage)) instead of finished frames, and the
//! driver's writer task serialises, hashes the id and compresses them, so
//! that the node's lock covers state changes only.

use bytes::Bytes;

use crate::wire::{Compression, EncodeError, Message};

/// Bytes a frame adds to its payload's (length headers, type, sender, id,
/// time), used as the size of a message not yet encoded.
const FRAME_OVERHEAD_HINT: usize = 4 + 5 * 4 + 1 + 80 + 8;

/// A message to encode and write to one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// The message.
    pub(crate) msg: Message,
    /// Its id, when it is a relay that keeps the sender's; else computed.
    pub(crate) id: Option<String>,
    /// The compression the connection uses.
    pub(crate) method: Option<Compression>,
}

impl Outgoing {
    /// The whole frame.
    pub fn encode(&self) -> Result<Bytes, EncodeError> {
        match &self.id {
            Some(id) => self.msg.encode_with_id(id, self.method),
            None => self.msg.encode(self.method),
        }
    }

    /// About the size of the frame, without encoding it: the same value
    /// each time it is asked (the driver counts queued bytes with it).
    pub fn len_hint(&self) -> usize {
        FRAME_OVERHEAD_HINT + self.msg.sender.len() + self.msg.payload.iter().map(|p| p.len() + 4).sum::<usize>()
    }
}
