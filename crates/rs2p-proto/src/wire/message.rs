//! The py2p message: header packets, payload, id, and its frame encoding.

use bytes::{BufMut, Bytes, BytesMut};
use sha2::{Digest, Sha384};

use super::base58::{self, Base58Error};
use super::compression::{Compression, CompressionError};
use super::flags;

/// Default cap on one frame's body, compressed or not (16 MiB).
pub const DEFAULT_MAX_FRAME: usize = 16 * 1024 * 1024;

/// One protocol message.
///
/// On the wire it is the packet list `[msg_type, sender, id, time_58, payload...]`.
/// The id is not stored: it is a function of the payload and time ([`Message::id`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Packet 0: [`flags::BROADCAST`],
    /// [`flags::RENEGOTIATE`] or
    /// [`flags::WHISPER`].
    pub msg_type: u8,
    /// Packet 1: the sender's node id (base58 text, kept as raw bytes).
    pub sender: Bytes,
    /// Packet 3: seconds since the Unix epoch on the sender's clock.
    pub time: u64,
    /// Packets 4 and on: the sub-flag, then its arguments.
    pub payload: Vec<Bytes>,
}

/// Why bytes could not be turned into a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The length header claims more than the configured maximum.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    FrameTooLarge {
        /// Claimed body length.
        len: u64,
        /// The limit in force.
        max: usize,
    },
    /// Fewer bytes than the length header (or a packet header) needs.
    #[error("truncated frame: {needed} bytes needed, {available} available")]
    Truncated {
        /// Bytes the header asked for.
        needed: u64,
        /// Bytes present.
        available: usize,
    },
    /// A packet's length runs past the end of the body.
    #[error("packet {index} claims {len} bytes but only {remaining} remain")]
    BadPacketLength {
        /// Index of the packet.
        index: usize,
        /// Its claimed length.
        len: u64,
        /// Bytes left in the body.
        remaining: usize,
    },
    /// Fewer than the 4 header packets (type, sender, id, time).
    #[error("message has {packets} packets; at least 4 header packets are required")]
    MissingHeader {
        /// Packets found.
        packets: usize,
    },
    /// The type packet is not exactly one byte.
    #[error("message type packet has {len} bytes, expected 1")]
    BadMsgType {
        /// Its length.
        len: usize,
    },
    /// The time packet is not base58, or does not fit in 64 bits.
    #[error("bad timestamp: {0}")]
    BadTime(Base58Error),
    /// The id packet differs from the hash of payload and time.
    #[error("message id mismatch: frame says {claimed}, content hashes to {computed}")]
    IdMismatch {
        /// The id the frame carried (lossy text).
        claimed: String,
        /// The id recomputed from the content.
        computed: String,
    },
    /// Every advertised method failed and the raw body does not parse either.
    #[error("body is neither a valid packet list nor decodable with {tried:?}")]
    Undecodable {
        /// Methods that were tried.
        tried: Vec<Compression>,
    },
    /// A method decoded but its output passed the frame limit.
    #[error(transparent)]
    Decompression(#[from] CompressionError),
}

/// A message too large to frame (a packet or body over 4 GiB − 1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("message of {len} bytes is too large to frame (limit 4294967295)")]
pub struct EncodeError {
    /// The size that did not fit.
    pub len: usize,
}

/// Computes a message id: base58 of `sha384(payload[0] ‖ … ‖ b58(time))`.
pub fn message_id<B: AsRef<[u8]>>(payload: &[B], time: u64) -> String {
    let mut h = Sha384::new();
    for p in payload {
        h.update(p.as_ref());
    }
    h.update(base58::encode_u64(time).as_bytes());
    base58::encode_be_bytes(&h.finalize())
}

/// True when `claimed` is the canonical base58 text of the id of `payload` and
/// `time`. Decoding the claim and comparing integers avoids encoding the digest
/// (division is the slow direction); a leading `1` is not canonical, and py2p
/// compares texts, so it is refused too.
fn id_matches<B: AsRef<[u8]>>(claimed: &[u8], payload: &[B], time: u64) -> bool {
    if claimed.first() == Some(&b'1') && claimed.len() > 1 {
        return false;
    }
    let Ok(value) = base58::decode(claimed) else { return false };
    let mut h = Sha384::new();
    for p in payload {
        h.update(p.as_ref());
    }
    h.update(base58::encode_u64(time).as_bytes());
    !claimed.is_empty() && value == crate::ring::u512_from_be(&h.finalize())
}

fn u32_len(len: usize) -> Result<u32, EncodeError> {
    u32::try_from(len).map_err(|_| EncodeError { len })
}

impl Message {
    /// A message with the given type, sender, time and payload.
    pub fn new(msg_type: u8, sender: impl Into<Bytes>, time: u64, payload: Vec<Bytes>) -> Self {
        Message { msg_type, sender: sender.into(), time, payload }
    }

    /// The message id (base58 text).
    ///
    /// ```
    /// use rs2p_proto::wire::Message;
    /// let m = Message::new(2, "sender", 1_700_000_000, vec!["\x02".into(), "hi".into()]);
    /// assert_eq!(m.id().len() > 60, true);
    /// ```
    pub fn id(&self) -> String {
        message_id(&self.payload, self.time)
    }

    /// The sub-flag (first payload byte), if the payload has a one-byte first packet.
    pub fn sub_flag(&self) -> Option<u8> {
        match self.payload.first() {
            Some(p) if p.len() == 1 => Some(p[0]),
            _ => None,
        }
    }

    /// The sender as text (lossy for non-UTF-8 bytes).
    pub fn sender_str(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.sender)
    }

    /// The uncompressed packet list (the body without compression or length header).
    pub fn packets(&self) -> Result<BytesMut, EncodeError> {
        self.packets_with_id(&self.id())
    }

    fn packets_with_id(&self, id: &str) -> Result<BytesMut, EncodeError> {
        let time = base58::encode_u64(self.time);
        let header: [&[u8]; 4] = [&[self.msg_type], &self.sender, id.as_bytes(), time.as_bytes()];
        let total: usize =
            header.iter().map(|p| p.len() + 4).sum::<usize>() + self.payload.iter().map(|p| p.len() + 4).sum::<usize>();
        u32_len(total)?;
        let mut out = BytesMut::with_capacity(total + 4);
        for p in header.iter().copied().chain(self.payload.iter().map(|p| p.as_ref())) {
            out.put_u32(u32_len(p.len())?);
            out.put_slice(p);
        }
        Ok(out)
    }

    /// Encodes a whole frame (`u32be(len) ‖ body`), compressing the body with
    /// `compression` when given.
    ///
    /// ```
    /// use rs2p_proto::wire::{Message, Compression};
    /// let m = Message::new(2, "me", 1_700_000_000, vec!["\x02".into(), "hello".into()]);
    /// let frame = m.encode(Some(Compression::Zlib)).unwrap();
    /// let back = Message::decode_frame(&frame, &[Compression::Zlib], 1 << 20).unwrap();
    /// assert_eq!(back, m);
    /// ```
    pub fn encode(&self, compression: Option<Compression>) -> Result<Bytes, EncodeError> {
        let id = self.id();
        self.encode_with_id(&id, compression)
    }

    /// Like [`Message::encode`] with a precomputed id (for relaying one message on many links).
    pub fn encode_with_id(&self, id: &str, compression: Option<Compression>) -> Result<Bytes, EncodeError> {
        let mut packets = self.packets_with_id(id)?;
        match compression {
            None => {
                let len = u32_len(packets.len())?;
                let mut frame = BytesMut::with_capacity(packets.len() + 4);
                frame.put_u32(len);
                frame.unsplit(packets.split());
                Ok(frame.freeze())
            }
            Some(method) => {
                let body = method.compress(&packets);
                let mut frame = BytesMut::with_capacity(body.len() + 4);
                frame.put_u32(u32_len(body.len())?);
                frame.put_slice(&body);
                packets.clear();
                Ok(frame.freeze())
            }
        }
    }

    /// Decodes one whole frame (length header included; trailing bytes are an error).
    pub fn decode_frame(frame: &[u8], peer_methods: &[Compression], max: usize) -> Result<Message, DecodeError> {
        if frame.len() < 4 {
            return Err(DecodeError::Truncated { needed: 4, available: frame.len() });
        }
        let len = u64::from(u32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]));
        if len > max as u64 {
            return Err(DecodeError::FrameTooLarge { len, max });
        }
        if len != (frame.len() - 4) as u64 {
            return Err(DecodeError::Truncated { needed: len, available: frame.len() - 4 });
        }
        Message::decode_body(&frame[4..], peer_methods, max)
    }

    /// Decodes a frame body: tries the peer's advertised methods in its order,
    /// then the raw bytes (py2p's rule), parses the packets and checks the id.
    pub fn decode_body(body: &[u8], peer_methods: &[Compression], max: usize) -> Result<Message, DecodeError> {
        Self::decode_body_ext(body, peer_methods, max, false)
    }

    /// [`Message::decode_body`], where `empty_whisper_id` also accepts a
    /// whisper whose id packet is empty, unchecked: what rs2p peers send
    /// each other (docs/PROTOCOL.md §16.16). Only for a connection whose
    /// peer advertised the rs2p capability.
    pub fn decode_body_ext(
        body: &[u8],
        peer_methods: &[Compression],
        max: usize,
        empty_whisper_id: bool,
    ) -> Result<Message, DecodeError> {
        // An uncompressed body starts with the 1-byte type packet's header, which no
        // supported container accepts, so trying it first changes no outcome.
        if body.starts_with(&[0, 0, 0, 1]) {
            if let Ok(m) = Message::from_packets_ext(body, empty_whisper_id) {
                return Ok(m);
            }
        }
        for &method in peer_methods {
            match method.decompress(body, max) {
                Ok(plain) => return Message::from_packets_ext(&plain, empty_whisper_id),
                Err(CompressionError::TooLarge { method, limit }) => {
                    return Err(CompressionError::TooLarge { method, limit }.into())
                }
                Err(CompressionError::Corrupt { .. }) => continue,
            }
        }
        Message::from_packets_ext(body, empty_whisper_id).map_err(|e| match e {
            DecodeError::BadPacketLength { .. }
            | DecodeError::MissingHeader { .. }
            | DecodeError::BadMsgType { .. }
                if !peer_methods.is_empty() =>
            {
                DecodeError::Undecodable { tried: peer_methods.to_vec() }
            }
            other => other,
        })
    }

    /// Parses an uncompressed packet list and verifies the id.
    pub fn from_packets(body: &[u8]) -> Result<Message, DecodeError> {
        Self::from_packets_ext(body, false)
    }

    /// [`Message::from_packets`]; with `empty_whisper_id`, a whisper with an
    /// empty id packet is taken unchecked (see [`Message::decode_body_ext`]).
    pub fn from_packets_ext(body: &[u8], empty_whisper_id: bool) -> Result<Message, DecodeError> {
        // First the packet lengths are checked and counted, then the packets
        // read: no list of them is allocated per frame.
        let mut count = 0usize;
        let mut rest = body;
        while !rest.is_empty() {
            if rest.len() < 4 {
                return Err(DecodeError::BadPacketLength { index: count, len: 4, remaining: rest.len() });
            }
            let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            rest = &rest[4..];
            if len > rest.len() {
                return Err(DecodeError::BadPacketLength { index: count, len: len as u64, remaining: rest.len() });
            }
            rest = &rest[len..];
            count += 1;
        }
        if count < HEADER_PACKETS {
            return Err(DecodeError::MissingHeader { packets: count });
        }
        let mut packets = Packets(body);
        let mut header: [&[u8]; HEADER_PACKETS] = [&[]; HEADER_PACKETS];
        for h in &mut header {
            *h = packets.next().unwrap_or_default();
        }
        let [msg_type, sender, id, time] = header;
        if msg_type.len() != 1 {
            return Err(DecodeError::BadMsgType { len: msg_type.len() });
        }
        let time = base58::decode_u64(time).map_err(DecodeError::BadTime)?;
        let mut payload: Vec<Bytes> = Vec::with_capacity(count - HEADER_PACKETS);
        payload.extend(packets.map(Bytes::copy_from_slice));
        let unchecked = empty_whisper_id && id.is_empty() && msg_type[0] == flags::WHISPER;
        if !unchecked && !id_matches(id, &payload, time) {
            return Err(DecodeError::IdMismatch {
                claimed: String::from_utf8_lossy(id).into_owned(),
                computed: message_id(&payload, time),
            });
        }
        Ok(Message { msg_type: msg_type[0], sender: Bytes::copy_from_slice(sender), time, payload })
    }
}

/// The packets of a body whose packet lengths were checked
/// ([`Message::from_packets_ext`]); ends early, never panics, if they were not.
struct Packets<'a>(&'a [u8]);

impl<'a> Iterator for Packets<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let len = u32::from_be_bytes(self.0.get(..4)?.try_into().ok()?) as usize;
        let packet = self.0.get(4..4usize.checked_add(len)?)?;
        self.0 = &self.0[4 + len..];
        Some(packet)
    }
}

/// Packets of an uncompressed frame's header before the payload (type,
/// sender, id, time).
const HEADER_PACKETS: usize = 4;

/// A cheap look at a frame body without decoding it: for an uncompressed
/// body, `Some(sub-flag)` (`None` inside when the payload's first packet is
/// not one byte); `None` if the body does not parse as uncompressed packets
/// (a compressed one: decode it to know). No id check, no copy: for
/// counting traffic (the simulator), not for trusting it.
pub fn peek_sub_flag(body: &[u8]) -> Option<Option<u8>> {
    if !body.starts_with(&[0, 0, 0, 1]) {
        return None;
    }
    let mut rest = body;
    for _ in 0..HEADER_PACKETS {
        let len = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        rest = rest.get(4 + len..)?;
    }
    let len = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
    let packet = rest.get(4..4 + len)?;
    Some(if len == 1 { Some(packet[0]) } else { None })
}
