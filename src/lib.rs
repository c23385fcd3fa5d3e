//! # rs2p
//!
//! A peer-to-peer distributed hash table, wire-compatible with the chord
//! module of py2p 0.5.607.
//!
//! * [`wire`]: the byte-level codec (base58 integers, frames, compression).
//! * [`ring`]: 384-bit ring arithmetic and the five key hashes.
//! * [`core`], [`mesh`], [`chord`]: the sans-IO protocol state machine.
//! * [`net`]: the tokio shell: [`ChordSocket`] and [`MeshSocket`].
//! * [`sim`]: an in-memory network of nodes with virtual time, for tests.
#![warn(missing_docs)]

pub mod chord;
pub mod core;
pub mod mesh;
pub mod net;
pub mod ring;
pub mod sim;
pub mod wire;

pub use net::{ChordSocket, Error, MeshSocket};
pub use ring::{distance, get_hashes};
