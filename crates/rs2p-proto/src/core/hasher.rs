//! Hash maps whose order is fixed by the configuration's seed.
//!
//! The core iterates some of its maps to decide what to send (every
//! connection, every pending lookup), so their order must not come from the
//! process: a simulation run twice with the same seed must send the same
//! frames in the same order. The keys are secret all the same (the
//! seed is drawn at random by the tokio shell; a simulation derives it), so
//! a peer cannot choose ids or keys that collide in these maps.

use std::collections::HashMap;
use std::hash::BuildHasher;

/// A map with a seeded SipHash.
pub(crate) type Map<K, V> = HashMap<K, V, SeededState>;

/// Builds SipHash-1-3 hashers keyed from a seed (what std's `HashMap`
/// uses, with keys we choose; see [`super::siphash`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct SeededState {
    k0: u64,
    k1: u64,
}

impl SeededState {
    /// Keys derived from `seed`, distinct per `purpose` (one map's order
    /// then tells nothing about another's).
    pub(crate) fn new(seed: u64, purpose: u64) -> Self {
        let mix = |x: u64| {
            // splitmix64's finaliser: spreads nearby seeds far apart.
            let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        SeededState { k0: mix(seed ^ purpose.rotate_left(32)), k1: mix(seed.rotate_left(17) ^ purpose) }
    }

    /// An empty map hashed with these keys.
    pub(crate) fn map<K, V>(self) -> Map<K, V> {
        HashMap::with_hasher(self)
    }
}

impl BuildHasher for SeededState {
    type Hasher = super::Sip13;

    fn build_hasher(&self) -> Self::Hasher {
        super::Sip13::new_with_keys(self.k0, self.k1)
    }
}

/// SplitMix64's output function: a bijective mix of 64 bits (jitter and
/// sample draws from a seed, in the node and the simulator alike).
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
