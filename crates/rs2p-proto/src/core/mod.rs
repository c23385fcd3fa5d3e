//! The shared vocabulary of the protocol layers: the events a driver feeds
//! a node and the actions it drains ([`Action`], [`Event`]), ids, times,
//! the [`Config`], hybrid-clock [`Version`]s, counters, and the frame
//! reader a driver may run on its own tasks. No protocol logic lives here:
//! the mesh layer is [`crate::mesh`], chord [`crate::chord`], and the node
//! that composes them [`crate::chord::node`].

mod config;
mod counters;
pub(crate) mod hasher;
mod inbound;
mod outbound;
mod siphash;
mod tls_options;
mod types;
mod version;

pub use config::{Config, Kind};
pub use counters::{BadInput, Conflict, Counters};
pub use hasher::mix64;
pub(crate) use hasher::{Map, SeededState};
pub use inbound::{ConnReader, DecodeContext, Inbound};
pub use outbound::Outgoing;
pub(crate) use siphash::Sip13;
pub use tls_options::{Fingerprint, TlsIdentity, TlsOptions, TLS_HANDSHAKE_TIMEOUT_MS};
pub use types::{Action, ConnId, Event, GetError, PeerId, Received, ReqId, Time};
pub use version::{Hlc, Version};
