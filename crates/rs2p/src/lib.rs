//! # rs2p
//!
//! A peer-to-peer distributed hash table, wire-compatible with the chord
//! module of py2p 0.5.607.
//!
//! This crate is the tokio shell ([`net`]: [`ChordSocket`] and
//! [`MeshSocket`], TLS, persistence, metrics) around the sans-IO protocol
//! crate `rs2p-proto`, whose modules it re-exports under the same names:
//!
//! * [`wire`]: the byte-level codec (base58 integers, frames, compression).
//! * [`ring`]: 384-bit ring arithmetic and the five key hashes.
//! * [`core`], [`mesh`], [`chord`], [`node`]: the sans-IO protocol state machine.
//! * `sim` (feature `sim`): an in-memory network of nodes with virtual time.
#![warn(missing_docs)]

pub mod net;

#[cfg(feature = "sim")]
pub use rs2p_proto::sim;
pub use rs2p_proto::{chord, core, mesh, node, ring, wire};

pub use net::{ChordSocket, Error, MeshSocket};
pub use ring::{distance, get_hashes};
