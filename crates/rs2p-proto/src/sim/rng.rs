//! A small deterministic random number generator for simulations.

/// SplitMix64 (Steele, Lea and Flood): a 64-bit state, fast, and good enough
/// to draw churn, keys and latencies. Never seeded from the OS, so a run
/// depends on its seed alone.
#[derive(Debug, Clone)]
pub struct SimRng {
    state: u64,
}

/// The SplitMix64 increment (the golden ratio in 64-bit fixed point).
const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

pub use crate::core::mix64;

impl SimRng {
    /// A generator whose whole sequence is fixed by `seed`.
    pub fn new(seed: u64) -> SimRng {
        SimRng { state: seed }
    }

    /// An independent generator for a named purpose (`stream`), so that
    /// drawing more of one kind does not shift the draws of another.
    pub fn fork(seed: u64, stream: u64) -> SimRng {
        SimRng::new(mix64(seed ^ mix64(stream.wrapping_add(GOLDEN))))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN);
        mix64(self.state)
    }

    /// A number in `0..n` (`n` > 0; the modulo bias is below 2^-40 for the
    /// sizes a simulation uses).
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "below(0)");
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// A float in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// A uniformly chosen element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// A fixed-key 64-bit hasher for traces: the same input gives the same value
/// on every platform and Rust release (unlike `DefaultHasher`).
#[derive(Debug, Clone)]
pub struct TraceHasher {
    h: u64,
}

impl Default for TraceHasher {
    fn default() -> Self {
        TraceHasher { h: 0xCBF2_9CE4_8422_2325 }
    }
}

impl TraceHasher {
    /// Mixes one 64-bit word in.
    pub fn word(&mut self, w: u64) {
        self.h = mix64(self.h ^ w).wrapping_add(GOLDEN);
    }

    /// Mixes bytes in, eight at a time, then their length.
    pub fn bytes(&mut self, b: &[u8]) {
        let mut chunks = b.chunks_exact(8);
        for c in &mut chunks {
            self.word(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        let mut last = [0u8; 8];
        last[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
        self.word(u64::from_le_bytes(last));
        self.word(b.len() as u64);
    }

    /// The hash so far.
    pub fn finish(&self) -> u64 {
        self.h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_sequence() {
        let mut a = SimRng::new(7);
        let mut b = SimRng::new(7);
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        assert!((0..1000).all(|_| a.below(10) < 10));
        let mut t = TraceHasher::default();
        t.bytes(b"abc");
        let mut u = TraceHasher::default();
        u.bytes(b"abd");
        assert_ne!(t.finish(), u.finish());
    }
}
