//! Every protocol flag of py2p 0.5.607, as named constants.
//!
//! A flag is one byte. The first packet of a message (its *type*) is one of
//! [`BROADCAST`], [`RENEGOTIATE`] or [`WHISPER`]; the first payload packet is a
//! *sub-flag*. Bytes `0x00..=0x2F` are reserved for the protocol.

/// Message type and sub-flag: a relayed message / user broadcast data.
pub const BROADCAST: u8 = 0x00;
/// Message type: connection maintenance (compression list, resend).
pub const RENEGOTIATE: u8 = 0x01;
/// Message type and sub-flag: a one-hop message / user whisper data.
pub const WHISPER: u8 = 0x02;
/// Reserved, never sent.
pub const PING: u8 = 0x03;
/// Reserved, never sent.
pub const PONG: u8 = 0x04;

/// Sub-flag under renegotiate: a new compression list.
pub const COMPRESSION: u8 = 0x01;
/// Sub-flag: handshake (5 payload packets) or chord meta (2 payload packets).
pub const HANDSHAKE: u8 = 0x05;
/// Sub-flag: chord key-list notification.
pub const NOTIFY: u8 = 0x06;
/// Sub-flag: peer list.
pub const PEERS: u8 = 0x07;
/// Sub-flag: peer-list or route request.
pub const REQUEST: u8 = 0x08;
/// Sub-flag under renegotiate: send your last message again.
pub const RESEND: u8 = 0x09;
/// Sub-flag: answer to a route request.
pub const RESPONSE: u8 = 0x0A;
/// Sub-flag: chord store.
pub const STORE: u8 = 0x0B;
/// Sub-flag: chord retrieve.
pub const RETRIEVE: u8 = 0x0C;
/// Sub-flag: chord retrieve answer.
pub const RETRIEVED: u8 = 0x0D;

/// Sub-flag of the rs2p key-list extension (`want`, `batch`, `end`), sent
/// only to peers that advertised the rs2p capability; py2p never uses 0x2E.
pub const RS2P_KEYLIST: u8 = 0x2E;

/// Sub-flag of the rs2p peek extension: like [`RETRIEVE`], but answered from
/// the receiver's own table, never routed on (rs2p peers only; py2p never
/// uses 0x2D). The answer is an ordinary [`RETRIEVED`].
pub const RS2P_PEEK: u8 = 0x2D;

/// Sub-flag of the rs2p replica extension: an owner's item (or its delete,
/// with an empty value) for its predecessors to keep, with how many more
/// predecessors should get it (rs2p peers only; py2p never uses 0x2C).
pub const RS2P_REPLICA: u8 = 0x2C;

/// Sub-flag of the rs2p find extension: `find` looks up the owner of a
/// point on the ring, forwarded greedily among rs2p peers; `found` walks the
/// answer back along the path the find took (rs2p peers only; py2p never
/// uses 0x2B). Used to keep fingers.
pub const RS2P_FIND: u8 = 0x2B;

/// Sub-flag of the rs2p key-walk extension: `keys` asks the owner of a
/// point for the keys of the items it holds, `keyed` answers with a page of
/// them and its successor, where the walk goes on (rs2p peers only; py2p
/// never uses 0x2A). `keys()` without the flooded key list.
pub const RS2P_WALK: u8 = 0x2A;

/// Sub-flag of the rs2p keepalive: `ping`, answered `pong` (rs2p peers
/// only; py2p peers get py2p's peer request `*` instead, whose answer, a
/// whole peer list, costs far more). py2p never uses 0x29.
pub const RS2P_PING: u8 = 0x29;

/// Sub-flag of the rs2p status extension: `ask` requests what the node
/// sees (its links, neighbours and ring), `report` answers with it as JSON
/// (rs2p peers only; py2p never uses 0x28). Used by `rs2p status`.
pub const RS2P_STATUS: u8 = 0x28;

/// Sub-flag of the rs2p range summaries (docs/PROTOCOL.md §16.20): `sum`
/// offers a summary of the items a handoff would send, `same`/`diff`
/// answer whether the receiver holds exactly them (rs2p peers only).
pub const RS2P_SYNC: u8 = 0x27;

/// Compression: bzip2.
pub const BZ2: u8 = 0x10;
/// Compression: gzip container.
pub const GZIP: u8 = 0x11;
/// Compression: xz container.
pub const LZMA: u8 = 0x12;
/// Compression: zlib container.
pub const ZLIB: u8 = 0x13;
/// Compression: raw snappy block.
pub const SNAPPY: u8 = 0x20;

/// Reserved compression names, never implemented by py2p.
pub const BWTC: u8 = 0x14;
/// Reserved compression name.
pub const CONTEXT1: u8 = 0x15;
/// Reserved compression name.
pub const DEFSUM: u8 = 0x16;
/// Reserved compression name.
pub const DMC: u8 = 0x17;
/// Reserved compression name.
pub const FENWICK: u8 = 0x18;
/// Reserved compression name.
pub const HUFFMAN: u8 = 0x19;
/// Reserved compression name.
pub const LZJB: u8 = 0x1A;
/// Reserved compression name.
pub const LZJBR: u8 = 0x1B;
/// Reserved compression name.
pub const LZP3: u8 = 0x1C;
/// Reserved compression name.
pub const MTF: u8 = 0x1D;
/// Reserved compression name.
pub const PPMD: u8 = 0x1E;
/// Reserved compression name.
pub const SIMPLE: u8 = 0x1F;

/// True for bytes the protocol reserves (`0x00..=0x2F`); user sub-flags must lie above.
pub fn is_reserved(flag: u8) -> bool {
    flag < 0x30
}
