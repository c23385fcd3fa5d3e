//! The mesh layer (sans-IO): connection state, handshake, peer lists,
//! route requests, renegotiation and broadcast relay ("waterfall").
//!
//! The state is [`Mesh`]; what is not the mesh's own goes up to the
//! protocol above as [`Upcall`]s. Nothing here names that protocol.

mod admission;
mod clock_offsets;
mod conn;
mod frames;
mod handlers;
mod handshake;
mod links;
mod liveness;
mod node;
mod peer_list;
mod recent;
mod relay;
mod routing;
mod send;
mod sweep;
mod timeout;
mod upcall;
mod user;

pub(crate) use admission::AddrRest;
pub use admission::{
    ADDR_BACKOFF_MAX_MS, ADDR_BACKOFF_MS, LIST_DIALS_PER_PEER, LIST_DIALS_PER_S, LIST_DIAL_BURST, NEIGHBOUR_RESERVE,
};
pub use conn::{AwaitingLink, Conn, PeerExt};
pub(crate) use frames::Step;
pub use handshake::has_marker;
pub use links::Links;
pub use node::Mesh;
pub(crate) use node::{NEIGHBOUR_REDIAL_MS, REDIAL_BACKOFF_MS};
pub(crate) use peer_list::Listed;
pub use recent::RecentIds;
pub use upcall::{LostCause, Upcall};
pub use user::ConnectError;

/// The flag rs2p adds to its advertised compression list so that rs2p peers
/// recognise each other. py2p ignores flags it does not implement.
pub const CAPABILITY_FLAG: u8 = 0x2F;

/// The marker (the character `+`) an rs2p node adds beside
/// [`CAPABILITY_FLAG`]: it judges the period a keeper's pings carry against
/// its own silence limit for each link (`mesh/liveness.rs`), so a peer may
/// keep a link to it alive at a longer, distant period. Peers without it
/// (py2p, earlier rs2p builds, some of which rely on any keeper) only ever
/// get the short period.
pub const PER_LINK_KEEPALIVE_MARKER: u8 = 0x2B;
