//! # rs2p-proto
//!
//! The sans-IO core of rs2p, a peer-to-peer distributed hash table
//! wire-compatible with the chord module of py2p 0.5.607. Nothing here opens
//! a socket, reads a clock, spawns a task or draws OS randomness: the caller
//! feeds events and the time in and carries the actions out, and gives each
//! node its salt and seed ([`core::Config::salt`], [`core::Config::seed`]).
//! The tokio shell is the `rs2p` crate.
//!
//! * [`wire`]: the byte-level codec (base58 integers, frames, compression).
//! * [`ring`]: 384-bit ring arithmetic and the five key hashes.
//! * [`core`]: what the layers share: events, actions, ids, config, versions.
//! * [`mesh`]: py2p's mesh layer: links, handshakes, peer lists, broadcasts.
//! * [`chord`]: py2p's chord layer: the ring, items, gets, repair, rejoin.
//! * [`node`] (in [`chord`]): the [`Node`] state machine, chord plugged into the mesh.
//! * `sim` (feature `sim`): an in-memory network of nodes with virtual time.
#![warn(missing_docs)]

pub mod chord;
pub mod core;
pub mod mesh;
pub mod ring;
#[cfg(feature = "sim")]
pub mod sim;
pub mod wire;

pub use chord::node;
pub use chord::Node;
pub use ring::{distance, get_hashes};
