//! Decoding received frames outside the node: a driver with one task per
//! connection splits, decompresses, parses and checks the id of each frame
//! in that task, and hands the node finished [`Message`]s
//! ([`Node::on_frames`]), so that the node's lock covers state changes only.
//!
//! The driver's decoding uses the connection's compression list as of the
//! last call into the node ([`DecodeContext`]). A frame that it cannot
//! decode is handed over as bytes ([`Inbound::Undecoded`]) and decoded again
//! under the node, with the list as it is then: a handshake or renegotiation
//! earlier in the same read changes the list, and so does nothing else.

use bytes::Bytes;

use super::{ConnId, Node, Time};
use crate::wire::{Compression, DecodeError, FrameDecoder, Message};

/// What a connection's frames are decoded with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeContext {
    /// The compression methods the peer advertised.
    methods: Vec<Compression>,
    /// The largest body accepted, compressed or decompressed.
    max_frame: usize,
    /// The peer advertised the rs2p capability: its whispers may carry an
    /// empty id (docs/PROTOCOL.md §16.16).
    rs2p: bool,
}

impl DecodeContext {
    /// Decodes one frame body: a message whose id checks out, else the bytes.
    pub fn decode(&self, body: Bytes) -> Inbound {
        match Message::decode_body_ext(&body, &self.methods, self.max_frame, self.rs2p) {
            Ok(msg) => Inbound::Message(msg),
            Err(_) => Inbound::Undecoded(body),
        }
    }
}

/// A received frame, as the driver hands it to [`Node::on_frames`].
#[derive(Debug)]
pub enum Inbound {
    /// Parsed, decompressed, its id checked.
    Message(Message),
    /// A body the driver could not decode with the context it had.
    Undecoded(Bytes),
    /// The stream is broken (e.g. an oversize length header); nothing after
    /// it can be read.
    Broken(DecodeError),
}

/// One connection's receive side, kept by the driver's reader task: splits
/// the byte stream into frames and decodes them.
///
/// ```
/// use rs2p_proto::core::{Config, Inbound, Node};
/// use rs2p_proto::wire::Message;
/// let mut node = Node::new(Config::chord("127.0.0.1", 4444), 0);
/// let conn = node.on_accepted(0);
/// let mut reader = node.reader(conn);
/// // In the connection's task, outside the node's lock:
/// let frame = Message::new(2, "peer", 1, vec!["\x02".into()]).encode(None).unwrap();
/// let frames = reader.feed(&frame[..10]);
/// assert!(frames.is_empty() && reader.pending() == 10);
/// let frames = reader.feed(&frame[10..]);
/// assert!(matches!(frames[0], Inbound::Message(_)));
/// // Then, under the lock:
/// let ctx = node.on_frames(conn, frames, frame.len(), reader.pending(), 0);
/// reader.update(ctx);
/// ```
#[derive(Debug)]
pub struct ConnReader {
    /// Splits the stream into bodies.
    decoder: FrameDecoder,
    /// How bodies are decoded, refreshed from the node after each call.
    ctx: DecodeContext,
}

impl ConnReader {
    /// Splits `data` (appended to what is buffered) into frames and decodes
    /// every whole one. Stops at a broken stream.
    pub fn feed(&mut self, data: &[u8]) -> Vec<Inbound> {
        self.decoder.extend(data);
        let mut out = Vec::new();
        loop {
            match self.decoder.next_body() {
                Ok(Some(body)) => out.push(self.ctx.decode(body)),
                Ok(None) => return out,
                Err(e) => {
                    out.push(Inbound::Broken(e));
                    return out;
                }
            }
        }
    }

    /// Bytes of a partial frame held.
    pub fn pending(&self) -> usize {
        self.decoder.pending()
    }

    /// Takes the node's current context for the connection.
    pub fn update(&mut self, ctx: Option<DecodeContext>) {
        if let Some(ctx) = ctx {
            self.ctx = ctx;
        }
    }
}

impl Node {
    /// How frames of `conn` are decoded now.
    fn decode_context(&self, conn: ConnId) -> DecodeContext {
        let (methods, rs2p) = self.conns.get(&conn).map(|c| (c.compression.clone(), c.rs2p)).unwrap_or_default();
        DecodeContext { methods, max_frame: self.cfg.max_frame, rs2p }
    }

    /// A receive side for a new connection (see [`ConnReader`]).
    pub fn reader(&self, conn: ConnId) -> ConnReader {
        ConnReader { decoder: FrameDecoder::new(self.cfg.max_frame), ctx: self.decode_context(conn) }
    }

    /// Frames decoded by the driver ([`ConnReader::feed`]) arrived on `conn`,
    /// from `bytes` bytes read; `pending` bytes of a partial frame are held by
    /// the reader. Returns the
    /// new decoding context when it changed (give it to
    /// [`ConnReader::update`]).
    ///
    /// Equivalent to [`Node::on_data`] with the same bytes.
    pub fn on_frames(
        &mut self,
        conn: ConnId,
        frames: Vec<Inbound>,
        bytes: usize,
        pending: usize,
        now: Time,
    ) -> Option<DecodeContext> {
        self.set_now(now);
        let before = self.conns.get(&conn).map(|c| (c.compression.clone(), c.rs2p))?;
        self.counters.bytes_in += bytes as u64;
        if let Some(c) = self.conns.get_mut(&conn) {
            c.bytes_in += bytes as u64;
            c.last_rx = now;
            c.alive_at = now;
            c.reader_pending = pending;
        }
        for frame in frames {
            if !self.conns.contains_key(&conn) {
                return None;
            }
            match frame {
                Inbound::Message(msg) => self.on_message(conn, msg),
                Inbound::Undecoded(body) => self.on_body(conn, &body),
                Inbound::Broken(e) => {
                    self.on_broken_stream(conn, e);
                    return None;
                }
            }
        }
        let share = self.cfg.max_buffered_bytes / self.cfg.max_connections.max(1);
        if pending > share {
            self.bound_buffered();
        }
        let c = self.conns.get(&conn)?;
        (c.compression != before.0 || c.rs2p != before.1).then(|| self.decode_context(conn))
    }
}
