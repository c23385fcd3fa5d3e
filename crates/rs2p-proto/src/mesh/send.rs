//! Frames out: a message framed for one connection (encoded here, or by
//! the driver when it asked to), relays that keep the sender's id, and the
//! counters of what was sent.

use bytes::Bytes;

use super::{Conn, Mesh, PeerExt};
use crate::core::{Action, ConnId};
use crate::wire::{flags, Compression, Message};

impl<X: PeerExt> Mesh<X> {
    /// Frames and queues a message on one connection.
    pub(crate) fn send_on(&mut self, conn: ConnId, msg_type: u8, payload: Vec<Bytes>) {
        let time = self.now_secs();
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if c.dialing {
            return;
        }
        let method = send_method(&self.cfg.compression, c);
        // Kept for a resend request (py2p's `resend`).
        let keep = msg_type == flags::WHISPER || msg_type == flags::BROADCAST;
        // Whispers to rs2p peers carry an empty id: nothing reads a
        // whisper's id, and hashing it at both ends was a tenth of a get's
        // CPU (docs/PROTOCOL.md §16.16).
        let id = (c.rs2p && self.cfg.advertise_capability && msg_type == flags::WHISPER).then_some("");
        if keep && self.defer_encoding {
            // The driver encodes the message it is handed: the kept copy
            // must be a clone.
            c.last_sent = Some((msg_type, payload.clone()));
        }
        let msg = Message { msg_type, sender: self.id.bytes(), time, payload };
        if let Some(payload) = self.push_send_returning(conn, msg, id, method) {
            if keep {
                // Encoded here: the payload moves into `last_sent` instead
                // of a clone (a vector and a shared handle per packet, per
                // whisper, were a few percent of the simulator's CPU).
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.last_sent = Some((msg_type, payload));
                }
            }
        }
    }

    /// Sends an already-built message (a relay) on one connection, keeping its id.
    pub(crate) fn relay_on(&mut self, conn: ConnId, msg: &Message, id: &str) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let method = send_method(&self.cfg.compression, c);
        self.push_send(conn, msg.clone(), Some(id), method);
    }

    /// With `on`, sends become [`Action::SendMessage`] (encoded by the
    /// driver) instead of [`Action::Send`]. Off by default.
    pub fn defer_encoding(&mut self, on: bool) {
        self.defer_encoding = on;
    }

    /// Queues `msg` for `conn`: encoded here, or by the driver.
    pub(crate) fn push_send(&mut self, conn: ConnId, msg: Message, id: Option<&str>, method: Option<Compression>) {
        self.push_send_returning(conn, msg, id, method);
    }

    /// [`Mesh::push_send`], handing back the message's payload when it was
    /// encoded here (not when the driver encodes it).
    fn push_send_returning(
        &mut self,
        conn: ConnId,
        msg: Message,
        id: Option<&str>,
        method: Option<Compression>,
    ) -> Option<Vec<Bytes>> {
        if self.defer_encoding {
            let out = crate::core::Outgoing { msg, id: id.map(str::to_owned), method };
            // Counted at the size the driver's queue counts it (compressed
            // frames to py2p peers come out smaller).
            self.count_out(conn, out.len_hint());
            self.actions.push_back(Action::SendMessage { conn, out: Box::new(out) });
            return None;
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
        Some(msg.payload)
    }

    /// Counts a frame of `len` bytes sent on `conn` (metrics).
    pub(super) fn count_out(&mut self, conn: ConnId, len: usize) {
        let now = self.now;
        if let Some(c) = self.conns.get_mut(&conn) {
            c.bytes_out += len as u64;
            c.last_tx = now;
        }
        self.counters.frames_out += 1;
        self.counters.bytes_out += len as u64;
    }
}

/// The compression for frames on a connection: py2p's rule (our first
/// preference the peer listed), except that rs2p peers get uncompressed
/// frames: on loopback and LANs compressing small frames costs more time
/// than it saves, and an rs2p receiver always accepts raw frames.
fn send_method<X>(preference: &[Compression], c: &Conn<X>) -> Option<Compression> {
    if c.rs2p {
        return None;
    }
    crate::wire::compression::choose(preference, &c.compression)
}
