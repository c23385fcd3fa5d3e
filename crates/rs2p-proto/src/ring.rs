//! Ring arithmetic of the chord DHT: 384-bit ids on a ring of size 2^384,
//! clockwise distance, and the five adjusted key hashes.

use sha1::Sha1;
use sha2::{Digest, Sha224, Sha256, Sha384, Sha512};

/// A 512-bit unsigned integer: wide enough for ids (384 bits) and unreduced sha512 keys.
pub type U512 = ruint::aliases::U512;

/// Number of bits of the ring: ids and distances live below 2^384.
pub const RING_BITS: usize = 384;

/// Reads big-endian bytes as an unsigned integer (only the low 64 bytes count).
pub fn u512_from_be(bytes: &[u8]) -> U512 {
    let tail = if bytes.len() > 64 { &bytes[bytes.len() - 64..] } else { bytes };
    let mut buf = [0u8; 64];
    buf[64 - tail.len()..].copy_from_slice(tail);
    U512::from_be_bytes(buf)
}

/// Keeps the low 384 bits, i.e. reduces modulo the ring size.
pub fn reduce(value: &U512) -> U512 {
    let mut limbs = *value.as_limbs();
    limbs[6] = 0;
    limbs[7] = 0;
    U512::from_limbs(limbs)
}

/// Clockwise distance from `a` to `b` on the 2^384 ring: `(b - a) mod 2^384`.
///
/// ```
/// use rs2p_proto::ring::{distance, U512};
/// let one = U512::from(1u64);
/// assert_eq!(distance(&one, &U512::from(5u64)), U512::from(4u64));
/// // Going "backwards" wraps around the ring.
/// assert_eq!(distance(&U512::from(5u64), &one), (U512::from(1u64) << 384) - U512::from(4u64));
/// ```
pub fn distance(a: &U512, b: &U512) -> U512 {
    // 2^384 divides 2^512, so reducing the 512-bit wrapping difference is exact.
    reduce(&b.wrapping_sub(*a))
}

/// `(b - a) mod limit` as py2p computes it (Python's modulo is never negative).
/// A zero limit means the default ring size, as `limit or 2**384` does in py2p.
pub fn distance_with_limit(a: &U512, b: &U512, limit: &U512) -> U512 {
    if limit.is_zero() {
        return distance(a, b);
    }
    if b >= a {
        (*b - *a) % *limit
    } else {
        let r = (*a - *b) % *limit;
        if r.is_zero() {
            r
        } else {
            *limit - r
        }
    }
}

/// The five hash tables, in py2p's fixed order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HashMethod {
    /// sha1, shifted left by 224 bits.
    Sha1,
    /// sha224, shifted left by 160 bits.
    Sha224,
    /// sha256, shifted left by 128 bits.
    Sha256,
    /// sha384, unshifted.
    Sha384,
    /// sha512, unshifted and unreduced (up to 512 bits).
    Sha512,
}

impl HashMethod {
    /// All five, in order.
    pub const ALL: [HashMethod; 5] =
        [HashMethod::Sha1, HashMethod::Sha224, HashMethod::Sha256, HashMethod::Sha384, HashMethod::Sha512];

    /// The table name used on the wire (`sha1` … `sha512`).
    pub fn name(self) -> &'static str {
        match self {
            HashMethod::Sha1 => "sha1",
            HashMethod::Sha224 => "sha224",
            HashMethod::Sha256 => "sha256",
            HashMethod::Sha384 => "sha384",
            HashMethod::Sha512 => "sha512",
        }
    }

    /// Parses a wire table name; anything but the five names is `None`.
    pub fn from_name(name: &[u8]) -> Option<HashMethod> {
        HashMethod::ALL.into_iter().find(|m| m.name().as_bytes() == name)
    }

    /// Index in [`HashMethod::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The left shift applied to the digest.
    pub fn shift(self) -> usize {
        match self {
            HashMethod::Sha1 => 224,
            HashMethod::Sha224 => 160,
            HashMethod::Sha256 => 128,
            HashMethod::Sha384 | HashMethod::Sha512 => 0,
        }
    }

    /// The adjusted hash of `key` for this table.
    pub fn hash(self, key: &[u8]) -> U512 {
        // The digest stays on the stack: owners hash keys again on lookups
        // (`chord/store.rs`), so this is on the request path.
        let digest = match self {
            HashMethod::Sha1 => u512_from_be(&Sha1::digest(key)),
            HashMethod::Sha224 => u512_from_be(&Sha224::digest(key)),
            HashMethod::Sha256 => u512_from_be(&Sha256::digest(key)),
            HashMethod::Sha384 => u512_from_be(&Sha384::digest(key)),
            HashMethod::Sha512 => u512_from_be(&Sha512::digest(key)),
        };
        digest << self.shift()
    }
}

impl std::fmt::Display for HashMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The five adjusted hashes of a key, in [`HashMethod::ALL`] order.
///
/// ```
/// use rs2p_proto::ring::get_hashes;
/// let h = get_hashes(b"alpha");
/// assert!(h[0].bit_len() <= 384);      // shifted sha1 stays on the ring
/// assert!(h[4].bit_len() > 384 || h[4].bit_len() <= 512); // sha512 is not reduced
/// ```
pub fn get_hashes(key: &[u8]) -> [U512; 5] {
    HashMethod::ALL.map(|m| m.hash(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_is_zero_to_self_and_wraps() {
        let a = U512::from(7u64);
        assert_eq!(distance(&a, &a), U512::ZERO);
        let ring = U512::from(1u64) << 384;
        assert_eq!(distance(&U512::from(1u64), &U512::ZERO), ring - U512::from(1u64));
        // Inputs above 2^384 are reduced.
        assert_eq!(distance(&U512::ZERO, &(ring + a)), a);
    }

    #[test]
    fn limit_matches_python_modulo() {
        let l = U512::from(10u64);
        assert_eq!(distance_with_limit(&U512::from(3u64), &U512::from(1u64), &l), U512::from(8u64));
        assert_eq!(distance_with_limit(&U512::from(13u64), &U512::from(3u64), &l), U512::ZERO);
        assert_eq!(distance_with_limit(&U512::from(1u64), &U512::from(13u64), &l), U512::from(2u64));
    }
}
