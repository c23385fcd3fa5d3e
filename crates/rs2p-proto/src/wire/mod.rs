//! The py2p 0.5.607 wire codec: base58 integers, flags, the protocol id,
//! compression, messages and frames. Sans-IO: no sockets or clocks here.

pub mod base58;
pub mod compression;
pub mod decoder;
pub mod flags;
pub mod message;
mod peer_list_json;
pub mod protocol;
pub mod pyjson;

pub use compression::Compression;
pub use decoder::FrameDecoder;
pub use message::{message_id, peek_sub_flag, DecodeError, EncodeError, Message, DEFAULT_MAX_FRAME};
pub use protocol::{node_id, Protocol};
