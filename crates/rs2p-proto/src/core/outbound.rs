//! Encoding sent frames outside the node: with
//! [`Node::defer_encoding`] on, the node hands the driver [`Outgoing`]
//! messages ([`Action::SendMessage`]) instead of finished frames, and the
//! driver's writer task serialises, hashes the id and compresses them, so
//! that the node's lock covers state changes only.

use bytes::Bytes;

use super::{Action, ConnId, Node};
use crate::wire::{Compression, EncodeError, Message};

/// Bytes a frame adds to its payload's (length headers, type, sender, id,
/// time), used as the size of a message not yet encoded.
const FRAME_OVERHEAD_HINT: usize = 4 + 5 * 4 + 1 + 80 + 8;

/// A message to encode and write to one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// The message.
    msg: Message,
    /// Its id, when it is a relay that keeps the sender's; else computed.
    id: Option<String>,
    /// The compression the connection uses.
    method: Option<Compression>,
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

impl Node {
    /// With `on`, sends become [`Action::SendMessage`] (encoded by the
    /// driver) instead of [`Action::Send`]. Off by default.
    pub fn defer_encoding(&mut self, on: bool) {
        self.defer_encoding = on;
    }

    /// Queues `msg` for `conn`: encoded here, or by the driver.
    pub(crate) fn push_send(&mut self, conn: ConnId, msg: Message, id: Option<&str>, method: Option<Compression>) {
        if self.defer_encoding {
            let out = Outgoing { msg, id: id.map(str::to_owned), method };
            // Counted at the size the driver's queue counts it (compressed
            // frames to py2p peers come out smaller).
            self.count_out(conn, out.len_hint());
            self.actions.push_back(Action::SendMessage { conn, out: Box::new(out) });
            return;
        }
        let frame = match id {
            Some(id) => msg.encode_with_id(id, method),
            None => msg.encode(method),
        };
        match frame {
            Ok(frame) => {
                self.count_out(conn, frame.len());
                self.actions.push_back(Action::Send { conn, frame });
            }
            Err(e) => self.record_error(Some(conn), format!("not sent: {e}")),
        }
    }

    /// Counts a frame of `len` bytes sent on `conn` (metrics).
    fn count_out(&mut self, conn: ConnId, len: usize) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.bytes_out += len as u64;
        }
        self.counters.frames_out += 1;
        self.counters.bytes_out += len as u64;
    }
}
