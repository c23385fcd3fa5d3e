//! Decoding received frames outside the node: a driver with one task per
//! connection splits, decompresses, parses and checks the id of each frame
//! in that task, and hands the node finished [`Message`]s
//! (`Node::on_frames`), so that the node's lock covers state changes only.
//!
//! The driver's decoding uses the connection's compression list as of the
//! last call into the node ([`DecodeContext`]). A frame that it cannot
//! decode is handed over as bytes ([`Inbound::Undecoded`]) and decoded again
//! under the node, with the list as it is then: a handshake or renegotiation
//! earlier in the same read changes the list, and so does nothing else.

use bytes::Bytes;

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
    /// Frames from a peer that advertised `methods` (and the rs2p
    /// capability, if `rs2p`), bounded by `max_frame`.
    pub(crate) fn new(methods: Vec<Compression>, max_frame: usize, rs2p: bool) -> DecodeContext {
        DecodeContext { methods, max_frame, rs2p }
    }

    /// Decodes one frame body: a message whose id checks out, else the bytes.
    pub fn decode(&self, body: Bytes) -> Inbound {
        match Message::decode_body_ext(&body, &self.methods, self.max_frame, self.rs2p) {
            Ok(msg) => Inbound::Message(msg),
            Err(_) => Inbound::Undecoded(body),
        }
    }
}

/// A received frame, as the driver hands it to `Node::on_frames`.
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
/// use rs2p_proto::core::{Config, Inbound};
/// use rs2p_proto::node::Node;
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

    /// A reader splitting with `decoder` and decoding under `ctx`.
    pub(crate) fn new(decoder: FrameDecoder, ctx: DecodeContext) -> ConnReader {
        ConnReader { decoder, ctx }
    }

    /// Takes the node's current context for the connection.
    pub fn update(&mut self, ctx: Option<DecodeContext>) {
        if let Some(ctx) = ctx {
            self.ctx = ctx;
        }
    }
}
