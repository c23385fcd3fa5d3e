//! Incremental frame splitting for a byte stream: feed any split of bytes,
//! take out whole frame bodies.

use bytes::{Buf, Bytes, BytesMut};

use super::message::{DecodeError, DEFAULT_MAX_FRAME};

/// Splits a TCP byte stream into frame bodies, checking each length header
/// against a maximum before buffering the body.
///
/// ```
/// use rs2p_proto::wire::{FrameDecoder, Message};
/// let m = Message::new(2, "me", 1_700_000_000, vec!["\x02".into(), "x".into()]);
/// let frame = m.encode(None).unwrap();
/// let mut d = FrameDecoder::default();
/// d.extend(&frame[..3]);
/// assert!(d.next_body().unwrap().is_none());
/// d.extend(&frame[3..]);
/// let body = d.next_body().unwrap().unwrap();
/// assert_eq!(Message::decode_body(&body, &[], 1 << 20).unwrap(), m);
/// ```
#[derive(Debug)]
pub struct FrameDecoder {
    buf: BytesMut,
    max_frame: usize,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        FrameDecoder::new(DEFAULT_MAX_FRAME)
    }
}

impl FrameDecoder {
    /// A decoder refusing bodies longer than `max_frame` bytes.
    pub fn new(max_frame: usize) -> Self {
        FrameDecoder { buf: BytesMut::new(), max_frame }
    }

    /// The configured maximum body size.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Appends received bytes.
    pub fn extend(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Bytes buffered that do not yet form a whole frame (0 when idle between frames).
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Takes the next whole frame body, if one is buffered.
    ///
    /// An oversize length header is an error as soon as the 4 header bytes are
    /// in; the stream cannot be resynchronised after it.
    pub fn next_body(&mut self) -> Result<Option<Bytes>, DecodeError> {
        if self.buf.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]) as u64;
        if len > self.max_frame as u64 {
            return Err(DecodeError::FrameTooLarge { len, max: self.max_frame });
        }
        let len = len as usize;
        if self.buf.len() < 4 + len {
            // Nothing is reserved for the claimed length: the buffer grows only
            // with bytes that actually arrive.
            return Ok(None);
        }
        self.buf.advance(4);
        if self.buf.len() == len {
            // The usual case: the buffer holds this frame only. The frame
            // takes the whole allocation, and an idle connection keeps no
            // buffer (a split would leave the spare capacity of the largest
            // frame it ever got pinned to the connection).
            return Ok(Some(std::mem::take(&mut self.buf).freeze()));
        }
        Ok(Some(self.buf.split_to(len).freeze()))
    }
}
