//! py2p's base58 *integer* encoding.
//!
//! This is not Bitcoin's byte-string base58: the input is an unsigned integer,
//! leading zero bytes are not preserved and no checksum is appended. Zero
//! encodes as `"1"`; decoding accepts leading `1`s and the empty string (0).

use crate::ring::U512;

/// The 58 digits, in value order.
pub const ALPHABET: &[u8; 58] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

/// Maps an ASCII byte to its digit value, or 0xFF when it is not a digit.
const DIGIT_OF: [u8; 256] = {
    let mut table = [0xFFu8; 256];
    let mut i = 0;
    while i < 58 {
        table[ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    table
};

/// Why a base58 text could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Base58Error {
    /// A byte that is not one of the 58 digits (this includes every non-ASCII byte).
    #[error("invalid base58 character {byte:#04x} at position {position}")]
    InvalidCharacter {
        /// The offending byte.
        byte: u8,
        /// Its index in the input.
        position: usize,
    },
    /// The value does not fit in 512 bits.
    #[error("base58 value does not fit in 512 bits ({digits} digits)")]
    Overflow {
        /// Length of the input in digits.
        digits: usize,
    },
}

/// Encodes an integer as canonical base58 (no leading `1`s except for zero).
///
/// ```
/// use rs2p_proto::wire::base58;
/// use rs2p_proto::ring::U512;
/// assert_eq!(base58::encode(&U512::ZERO), "1");
/// assert_eq!(base58::encode(&U512::from(57u64)), "z");
/// assert_eq!(base58::encode(&U512::from(58u64)), "21");
/// ```
pub fn encode(value: &U512) -> String {
    if value.is_zero() {
        return "1".to_owned();
    }
    // Work on 32-bit half-limbs, most significant first, dividing by 58^5
    // (under 2^30) to produce five digits per pass: each step divides a
    // value under 2^62 by a constant, which compiles to a multiply and a
    // shift (a 128-bit division per 64-bit limb, the obvious way, is a
    // library call; this was an eighth of a get's instructions).
    let mut halves = [0u32; 16];
    for (i, limb) in value.as_limbs().iter().rev().enumerate() {
        halves[2 * i] = (limb >> 32) as u32;
        halves[2 * i + 1] = *limb as u32;
    }
    let mut first = halves.iter().position(|&h| h != 0).unwrap_or(halves.len());
    // 512 bits are at most 88 digits; filled from the end.
    let mut digits = [0u8; 90];
    let mut at = digits.len();
    while first < halves.len() {
        let mut rem: u64 = 0;
        for h in &mut halves[first..] {
            let cur = (rem << 32) | u64::from(*h);
            *h = (cur / CHUNK5) as u32;
            rem = cur % CHUNK5;
        }
        while first < halves.len() && halves[first] == 0 {
            first += 1;
        }
        let mut rem = rem as u32;
        for _ in 0..5 {
            at -= 1;
            digits[at] = ALPHABET[(rem % 58) as usize];
            rem /= 58;
            if first == halves.len() && rem == 0 {
                break;
            }
        }
    }
    // Safe: every byte comes from ALPHABET, which is ASCII.
    String::from_utf8(digits[at..].to_vec()).expect("base58 digits are ASCII")
}

/// Five base58 digits: the divisor of [`encode`]'s passes (58^5 < 2^30, so
/// a remainder shifted by 32 bits plus a half-limb fits in a `u64`).
const CHUNK5: u64 = 58u64.pow(5);

/// Encodes a `u64` (a timestamp, say) as canonical base58.
pub fn encode_u64(mut value: u64) -> String {
    if value == 0 {
        return "1".to_owned();
    }
    let mut digits = [0u8; 11];
    let mut i = digits.len();
    while value > 0 {
        i -= 1;
        digits[i] = ALPHABET[(value % 58) as usize];
        value /= 58;
    }
    String::from_utf8(digits[i..].to_vec()).expect("base58 digits are ASCII")
}

/// Encodes a big-endian byte string (a hash digest) read as one unsigned integer.
///
/// Inputs longer than 64 bytes keep only their low 512 bits; digests are at most 64 bytes.
pub fn encode_be_bytes(bytes: &[u8]) -> String {
    encode(&crate::ring::u512_from_be(bytes))
}

/// Decodes base58 text (leading `1`s and the empty string allowed) into an integer.
///
/// ```
/// use rs2p_proto::wire::base58;
/// use rs2p_proto::ring::U512;
/// assert_eq!(base58::decode(b"111z").unwrap(), U512::from(57u64));
/// assert!(base58::decode(b"0OIl").is_err());
/// ```
pub fn decode(text: &[u8]) -> Result<U512, Base58Error> {
    // Ten digits at a time fit in a u64 (58^10 < 2^64); each chunk is folded
    // into little-endian 64-bit limbs with one multiply-add per limb.
    let mut limbs = [0u64; 8];
    for (c, chunk) in text.chunks(10).enumerate() {
        let mut acc: u64 = 0;
        let mut scale: u64 = 1;
        for (j, &byte) in chunk.iter().enumerate() {
            let digit = DIGIT_OF[byte as usize];
            if digit == 0xFF {
                return Err(Base58Error::InvalidCharacter { byte, position: c * 10 + j });
            }
            acc = acc * 58 + u64::from(digit);
            scale *= 58;
        }
        let mut carry = u128::from(acc);
        for limb in &mut limbs {
            let cur = u128::from(*limb) * u128::from(scale) + carry;
            *limb = cur as u64;
            carry = cur >> 64;
        }
        if carry != 0 {
            return Err(Base58Error::Overflow { digits: text.len() });
        }
    }
    Ok(U512::from_limbs(limbs))
}

/// Decodes base58 text into a `u64`, failing on overflow.
pub fn decode_u64(text: &[u8]) -> Result<u64, Base58Error> {
    let mut value: u64 = 0;
    for (position, &byte) in text.iter().enumerate() {
        let digit = DIGIT_OF[byte as usize];
        if digit == 0xFF {
            return Err(Base58Error::InvalidCharacter { byte, position });
        }
        value = value
            .checked_mul(58)
            .and_then(|v| v.checked_add(u64::from(digit)))
            .ok_or(Base58Error::Overflow { digits: text.len() })?;
    }
    Ok(value)
}

/// True when every byte is a base58 digit.
pub fn is_valid(text: &[u8]) -> bool {
    text.iter().all(|&b| DIGIT_OF[b as usize] != 0xFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_values() {
        for n in [0u64, 1, 57, 58, 59, 3363, 1_700_000_000, u64::MAX] {
            let text = encode_u64(n);
            assert_eq!(decode_u64(text.as_bytes()).unwrap(), n);
            assert_eq!(decode(text.as_bytes()).unwrap(), U512::from(n));
        }
        assert_eq!(encode_u64(1_700_000_000), "3bDwmq");
    }

    /// The textbook encoder: one digit per division of the whole number.
    fn encode_slow(value: &U512) -> String {
        if value.is_zero() {
            return "1".to_owned();
        }
        let (mut v, base) = (*value, U512::from(58u64));
        let mut out = Vec::new();
        while !v.is_zero() {
            out.push(ALPHABET[(v % base).to::<u64>() as usize]);
            v /= base;
        }
        out.reverse();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn encode_matches_the_textbook_encoder() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            x = crate::core::mix64(x.wrapping_add(0x9E37_79B9_7F4A_7C15));
            x
        };
        let mut cases = vec![U512::ZERO, U512::MAX, U512::from(57u64), U512::from(58u64), U512::from(u64::MAX)];
        for bits in [1usize, 31, 32, 33, 63, 64, 65, 128, 160, 224, 256, 384, 511, 512] {
            cases.push(U512::MAX >> (512 - bits));
            cases.push(U512::from(1u64) << (bits - 1));
        }
        for _ in 0..2000 {
            let limbs: [u64; 8] = std::array::from_fn(|_| next());
            let v = U512::from_limbs(limbs) >> (next() % 512) as usize;
            cases.push(v);
        }
        for v in cases {
            let text = encode(&v);
            assert_eq!(text, encode_slow(&v), "{v:#x}");
            assert_eq!(decode(text.as_bytes()).unwrap(), v);
        }
    }

    #[test]
    fn max_value_round_trips_and_overflow_is_caught() {
        let max = U512::MAX;
        let text = encode(&max);
        assert_eq!(decode(text.as_bytes()).unwrap(), max);
        let mut longer = text.clone();
        longer.push('2');
        assert!(matches!(decode(longer.as_bytes()), Err(Base58Error::Overflow { .. })));
        // 2^512, as many digits as the maximum: one over.
        let over = b"67rpwLCuS5DGA8KGZXKsVQ7dnPb9goRLoKfgGbLfQg9WoLUgNY77E2jT11fem3coV9nAkguBACzrU1iyZM4B8roR";
        assert!(matches!(decode(over), Err(Base58Error::Overflow { digits: 88 })));
        // Leading zeros ('1') in front of the maximum still fit.
        assert_eq!(decode(format!("111111111111{text}").as_bytes()).unwrap(), max);
        assert!(decode_u64(b"zzzzzzzzzzzzzzzzzzzzzzz").is_err());
    }
}
