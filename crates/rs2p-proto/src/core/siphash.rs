//! SipHash with a choice of rounds: SipHash-1-3 for the core's maps.
//!
//! The core's maps are keyed by what peers send (item hashes, ids), so
//! they need a keyed hash that peers cannot collide; std's keyed
//! `SipHasher` is SipHash-2-4, and its SipHash-1-3 (what `HashMap` uses by
//! default) cannot be given keys. SipHash-1-3 does one compression round
//! per 8 bytes and three to finish, against two and four: a 64-byte item
//! hash costs 11 rounds instead of 20, and map lookups were a fifth of a
//! set's instructions. The same construction as the reference, with the
//! round counts as parameters; the 2-4 instance is tested against std's.

use std::hash::Hasher;

/// A SipHash state with `C` compression and `D` finalisation rounds.
#[derive(Debug, Clone)]
pub(crate) struct Sip<const C: usize, const D: usize> {
    v: [u64; 4],
    /// Bytes written so far (the last block carries its low byte).
    len: usize,
    /// Bytes not yet compressed (fewer than 8), little-endian in `tail`.
    tail: u64,
    ntail: usize,
}

/// SipHash-1-3.
pub(crate) type Sip13 = Sip<1, 3>;

impl<const C: usize, const D: usize> Sip<C, D> {
    /// A state keyed with `k0` and `k1`.
    pub(crate) fn new_with_keys(k0: u64, k1: u64) -> Self {
        Sip {
            v: [
                k0 ^ 0x736f_6d65_7073_6575,
                k1 ^ 0x646f_7261_6e64_6f6d,
                k0 ^ 0x6c79_6765_6e65_7261,
                k1 ^ 0x7465_6462_7974_6573,
            ],
            len: 0,
            tail: 0,
            ntail: 0,
        }
    }

    #[inline(always)]
    fn round(v: &mut [u64; 4]) {
        v[0] = v[0].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(13) ^ v[0];
        v[0] = v[0].rotate_left(32);
        v[2] = v[2].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(16) ^ v[2];
        v[0] = v[0].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(21) ^ v[0];
        v[2] = v[2].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(17) ^ v[2];
        v[2] = v[2].rotate_left(32);
    }

    #[inline(always)]
    fn compress(&mut self, m: u64) {
        self.v[3] ^= m;
        for _ in 0..C {
            Self::round(&mut self.v);
        }
        self.v[0] ^= m;
    }
}

/// Up to 8 bytes read as a little-endian number.
#[inline(always)]
fn le_partial(bytes: &[u8]) -> u64 {
    let mut buf = [0u8; 8];
    buf[..bytes.len()].copy_from_slice(bytes);
    u64::from_le_bytes(buf)
}

impl<const C: usize, const D: usize> Hasher for Sip<C, D> {
    #[inline]
    fn write(&mut self, mut msg: &[u8]) {
        self.len = self.len.wrapping_add(msg.len());
        if self.ntail > 0 {
            let take = (8 - self.ntail).min(msg.len());
            self.tail |= le_partial(&msg[..take]) << (8 * self.ntail);
            self.ntail += take;
            msg = &msg[take..];
            if self.ntail < 8 {
                return;
            }
            let m = self.tail;
            self.compress(m);
            (self.tail, self.ntail) = (0, 0);
        }
        let mut blocks = msg.chunks_exact(8);
        for b in &mut blocks {
            self.compress(u64::from_le_bytes(b.try_into().expect("8 bytes")));
        }
        let rest = blocks.remainder();
        self.tail = le_partial(rest);
        self.ntail = rest.len();
    }

    #[inline]
    fn finish(&self) -> u64 {
        let mut s = self.clone();
        let b = ((self.len as u64 & 0xff) << 56) | self.tail;
        s.compress(b);
        s.v[2] ^= 0xff;
        for _ in 0..D {
            Self::round(&mut s.v);
        }
        s.v[0] ^ s.v[1] ^ s.v[2] ^ s.v[3]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds the same values to two hashers in the same pieces.
    fn feed(h: &mut impl Hasher, pieces: &[Vec<u8>]) {
        for p in pieces {
            match p.len() {
                8 => h.write_u64(u64::from_ne_bytes(p[..].try_into().unwrap())),
                4 => h.write_u32(u32::from_ne_bytes(p[..].try_into().unwrap())),
                1 => h.write_u8(p[0]),
                _ => h.write(p),
            }
        }
    }

    #[test]
    #[allow(deprecated)] // std's keyed SipHash-2-4 is the reference.
    fn the_2_4_instance_is_std_siphash() {
        let mut x = 7u64;
        let mut next = || {
            x = crate::core::mix64(x.wrapping_add(0x9E37_79B9_7F4A_7C15));
            x
        };
        for case in 0..3000 {
            let (k0, k1) = (next(), next());
            let pieces: Vec<Vec<u8>> = (0..case % 7)
                .map(|_| {
                    let len = (next() % 70) as usize;
                    (0..len).map(|_| next() as u8).collect()
                })
                .collect();
            let mut ours = Sip::<2, 4>::new_with_keys(k0, k1);
            let mut theirs = std::hash::SipHasher::new_with_keys(k0, k1);
            feed(&mut ours, &pieces);
            feed(&mut theirs, &pieces);
            assert_eq!(ours.finish(), theirs.finish(), "case {case}: {pieces:?}");
        }
    }

    #[test]
    fn sip13_matches_the_reference_vectors() {
        // The reference implementation's SipHash-1-3 of "" and of
        // "siphash" under the all-zero key.
        let sip13 = |msg: &[u8]| {
            let mut h = Sip13::new_with_keys(0, 0);
            h.write(msg);
            h.finish()
        };
        assert_eq!(sip13(b""), 0xd1fb_a762_150c_532c);
        assert_eq!(sip13(b"siphash").to_be_bytes(), [0x82, 0x64, 0xce, 0xec, 0xcb, 0x16, 0xbc, 0xbe]);
        // Pieces do not change the hash; the key does.
        let msg: Vec<u8> = (0..64u8).collect();
        let keyed = |pieces: &[&[u8]], k0: u64| {
            let mut h = Sip13::new_with_keys(k0, 0x0f0e_0d0c_0b0a_0908);
            for p in pieces {
                h.write(p);
            }
            h.finish()
        };
        let whole = keyed(&[&msg], 0x0706_0504_0302_0100);
        assert_eq!(whole, keyed(&[&msg[..3], &msg[3..11], &msg[11..]], 0x0706_0504_0302_0100));
        assert_ne!(whole, keyed(&[&msg], 0x0706_0504_0302_0101));
    }
}
