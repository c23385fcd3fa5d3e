//! The mesh layer (sans-IO): connection state, handshake, peer lists,
//! route requests, renegotiation and broadcast relay ("waterfall").
//!
//! These are `impl Node` blocks; the state lives in [`crate::core::Node`].

mod admission;
mod conn;
mod handlers;
mod liveness;
mod recent;
mod user;

pub(crate) use admission::AddrRest;
pub use admission::{
    ADDR_BACKOFF_MAX_MS, ADDR_BACKOFF_MS, LIST_DIALS_PER_PEER, LIST_DIALS_PER_S, LIST_DIAL_BURST, NEIGHBOUR_RESERVE,
};
pub use conn::Conn;
pub use recent::RecentIds;
pub use user::ConnectError;

/// The flag rs2p adds to its advertised compression list so that rs2p peers
/// recognise each other. py2p ignores flags it does not implement.
pub const CAPABILITY_FLAG: u8 = 0x2F;
