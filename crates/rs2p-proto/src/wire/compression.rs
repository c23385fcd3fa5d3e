//! The five compression methods py2p 0.5.607 implements, with bounded decoding.

use std::io::{Read, Write};

use super::flags;

/// A body compression method, identified on the wire by its flag byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// Raw snappy block (flag `0x20`).
    Snappy,
    /// zlib container, deflate level 6 (flag `0x13`).
    Zlib,
    /// gzip container, deflate level 6 (flag `0x11`).
    Gzip,
    /// bzip2, block size 9 (flag `0x10`).
    Bz2,
    /// xz container, preset 6, CRC64 (flag `0x12`).
    Lzma,
}

/// Memory liblzma may use to decode one body. py2p writes preset 6 (about
/// 9 MiB to decode); a legacy `.lzma` header may claim a 4 GiB dictionary.
const LZMA_MEMLIMIT: u64 = 64 << 20;

/// py2p's fixed preference order (snappy first when available).
pub const PREFERENCE: [Compression; 5] =
    [Compression::Snappy, Compression::Zlib, Compression::Gzip, Compression::Bz2, Compression::Lzma];

/// A method failed to decompress, or its output would exceed the limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompressionError {
    /// The bytes are not a valid stream of this method.
    #[error("{method:?} stream is corrupt: {reason}")]
    Corrupt {
        /// The method that was tried.
        method: Compression,
        /// The decoder's message.
        reason: String,
    },
    /// Decompressing would produce more than the frame limit (a decompression bomb).
    #[error("{method:?} output exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The method that was tried.
        method: Compression,
        /// The limit in force.
        limit: usize,
    },
}

impl Compression {
    /// The wire flag.
    pub fn flag(self) -> u8 {
        match self {
            Compression::Snappy => flags::SNAPPY,
            Compression::Zlib => flags::ZLIB,
            Compression::Gzip => flags::GZIP,
            Compression::Bz2 => flags::BZ2,
            Compression::Lzma => flags::LZMA,
        }
    }

    /// The method for a wire flag; unknown and unimplemented flags give `None`.
    pub fn from_flag(flag: u8) -> Option<Self> {
        PREFERENCE.into_iter().find(|c| c.flag() == flag)
    }

    /// py2p's name for it.
    pub fn name(self) -> &'static str {
        match self {
            Compression::Snappy => "snappy",
            Compression::Zlib => "zlib",
            Compression::Gzip => "gzip",
            Compression::Bz2 => "bz2",
            Compression::Lzma => "lzma",
        }
    }

    /// The method a frame body was written with, told by its container's magic
    /// bytes (`None` for an uncompressed packet list). A body that is none of
    /// the containers is taken to be a snappy block, which has no magic.
    ///
    /// ```
    /// use rs2p_proto::wire::Compression;
    /// assert_eq!(Compression::detect(&Compression::Lzma.compress(b"x")), Some(Compression::Lzma));
    /// assert_eq!(Compression::detect(&[0, 0, 0, 1, 2]), None);
    /// ```
    pub fn detect(body: &[u8]) -> Option<Compression> {
        if body.starts_with(&[0, 0, 0, 1]) {
            None
        } else if body.starts_with(&[0x78]) {
            Some(Compression::Zlib)
        } else if body.starts_with(&[0x1f, 0x8b]) {
            Some(Compression::Gzip)
        } else if body.starts_with(b"BZh") {
            Some(Compression::Bz2)
        } else if body.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
            Some(Compression::Lzma)
        } else {
            Some(Compression::Snappy)
        }
    }

    /// Compresses `data` the way py2p does.
    pub fn compress(self, data: &[u8]) -> Vec<u8> {
        // Writing into a Vec cannot fail, so the io::Results below are infallible.
        match self {
            Compression::Zlib => {
                let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(6));
                e.write_all(data).expect("write to Vec");
                e.finish().expect("write to Vec")
            }
            Compression::Gzip => {
                let mut e = flate2::GzBuilder::new().operating_system(3).write(Vec::new(), flate2::Compression::new(6));
                e.write_all(data).expect("write to Vec");
                e.finish().expect("write to Vec")
            }
            Compression::Bz2 => {
                let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::best());
                e.write_all(data).expect("write to Vec");
                e.finish().expect("write to Vec")
            }
            Compression::Lzma => {
                let mut e = xz2::write::XzEncoder::new(Vec::new(), 6);
                e.write_all(data).expect("write to Vec");
                e.finish().expect("write to Vec")
            }
            Compression::Snappy => {
                snap::raw::Encoder::new().compress_vec(data).expect("snappy accepts any input below 4 GiB")
            }
        }
    }

    /// Decompresses `data`, refusing to produce more than `limit` bytes.
    ///
    /// zlib and gzip share one auto-detecting decoder, as in py2p; xz also
    /// accepts the legacy `.lzma` container.
    pub fn decompress(self, data: &[u8], limit: usize) -> Result<Vec<u8>, CompressionError> {
        let corrupt = |e: &dyn std::fmt::Display| CompressionError::Corrupt { method: self, reason: e.to_string() };
        match self {
            Compression::Zlib | Compression::Gzip => {
                if data.starts_with(&[0x1f, 0x8b]) {
                    read_bounded(self, flate2::read::GzDecoder::new(data), limit)
                } else {
                    read_bounded(self, flate2::read::ZlibDecoder::new(data), limit)
                }
            }
            Compression::Bz2 => read_bounded(self, bzip2::read::MultiBzDecoder::new(data), limit),
            Compression::Lzma => {
                let stream = xz2::stream::Stream::new_auto_decoder(LZMA_MEMLIMIT, xz2::stream::CONCATENATED)
                    .map_err(|e| corrupt(&e))?;
                read_bounded(self, xz2::read::XzDecoder::new_stream(data, stream), limit)
            }
            Compression::Snappy => {
                let len = snap::raw::decompress_len(data).map_err(|e| corrupt(&e))?;
                if len > limit {
                    return Err(CompressionError::TooLarge { method: self, limit });
                }
                snap::raw::Decoder::new().decompress_vec(data).map_err(|e| corrupt(&e))
            }
        }
    }
}

fn read_bounded<R: Read>(method: Compression, reader: R, limit: usize) -> Result<Vec<u8>, CompressionError> {
    let mut out = Vec::new();
    let cap = (limit as u64).saturating_add(1);
    reader.take(cap).read_to_end(&mut out).map_err(|e| CompressionError::Corrupt { method, reason: e.to_string() })?;
    if out.len() > limit {
        return Err(CompressionError::TooLarge { method, limit });
    }
    Ok(out)
}

/// The first method of `own_preference` that the peer listed, if any
/// (py2p's rule for choosing the sending method of a connection).
pub fn choose(own_preference: &[Compression], peer_list: &[Compression]) -> Option<Compression> {
    own_preference.iter().copied().find(|c| peer_list.contains(c))
}

/// Writes a compression list as py2p's JSON text, e.g. `["\u0013", "\u0011"]`.
///
/// ```
/// use rs2p_proto::wire::compression::{to_json, Compression};
/// assert_eq!(to_json(&[Compression::Zlib, Compression::Gzip]), r#"["\u0013", "\u0011"]"#);
/// assert_eq!(to_json(&[Compression::Snappy]), r#"[" "]"#);
/// ```
pub fn to_json(list: &[Compression]) -> String {
    let items: Vec<String> = list.iter().map(|c| super::pyjson::string(&char::from(c.flag()).to_string())).collect();
    format!("[{}]", items.join(", "))
}

/// Reads a compression list from JSON text; unknown flags are ignored.
/// Returns `None` when the text is not a JSON array of strings.
pub fn from_json(text: &[u8]) -> Option<Vec<Compression>> {
    let value: serde_json::Value = serde_json::from_slice(text).ok()?;
    let mut out = Vec::new();
    for item in value.as_array()? {
        for ch in item.as_str()?.chars() {
            let code = u32::from(ch);
            if let Some(c) = u8::try_from(code).ok().and_then(Compression::from_flag) {
                if !out.contains(&c) {
                    out.push(c);
                }
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_method_round_trips() {
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
        for m in PREFERENCE {
            let c = m.compress(&data);
            assert_eq!(m.decompress(&c, 1 << 20).unwrap(), data, "{m:?}");
        }
    }

    #[test]
    fn bombs_are_refused() {
        let zeros = vec![0u8; 1 << 20];
        for m in PREFERENCE {
            let c = m.compress(&zeros);
            assert!(matches!(m.decompress(&c, 1000), Err(CompressionError::TooLarge { .. })), "{m:?}");
        }
    }

    #[test]
    fn json_list_parses_unknown_flags_away() {
        let l = from_json(br#"[" ", "\u0013", "\u0099", "\u0012"]"#).unwrap();
        assert_eq!(l, vec![Compression::Snappy, Compression::Zlib, Compression::Lzma]);
        assert_eq!(from_json(b"[]").unwrap(), vec![]);
        assert!(from_json(b"{").is_none());
    }
}
