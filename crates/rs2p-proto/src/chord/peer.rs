//! What chord keeps per connection, beside the mesh's own state of it
//! (the mesh holds it as [`crate::mesh::Conn::ext`] and knows nothing of it).

use super::{KeysIn, KeysOut};
use crate::core::Time;

/// Chord's state of one connection.
#[derive(Debug)]
pub struct ChordPeer {
    /// The peer said it is leeching (every connection starts so, as in py2p).
    pub leeching: bool,
    /// The peer keeps no flooded key list (its `keys()` walks the ring).
    pub no_key_list: bool,
    /// When the last key notify arrived (py2p sends no end marker: quiet means done).
    pub last_notify: Time,
    /// Our key-list stream to the peer.
    pub keys_out: KeysOut,
    /// When that stream last started (a peer's `want` may restart it only so often).
    pub keys_out_since: Time,
    /// The peer's key-list stream to us.
    pub keys_in: KeysIn,
    /// Our key list's summary was sent on this link (docs/PROTOCOL.md §16.19).
    pub keys_sum_sent: bool,
    /// The peer's summary (count, digest), received while our own list was
    /// still arriving: compared once it is complete, not answered by a
    /// second download of a list already on its way. Boxed: rare, and a
    /// `u128` in place would align every link's state to 16 bytes.
    pub keys_sum_held: Option<Box<(usize, u128)>>,
    /// Our ring neighbours were offered on this link (`Node::offer_peers`).
    pub ring_list_sent: bool,
    /// A rejoin probe (`rejoin.rs`).
    pub probe: bool,
    /// When a meta turning this peer to seeding last set off a store scan;
    /// flips are acted on once per window.
    pub meta_work_at: Option<Time>,
    /// A flip came within the window: act on it when the window ends.
    pub meta_work_due: bool,
}

impl Default for ChordPeer {
    fn default() -> Self {
        ChordPeer {
            leeching: true,
            no_key_list: false,
            last_notify: 0,
            keys_out: KeysOut::Idle,
            keys_out_since: 0,
            keys_in: KeysIn::NotAsked,
            keys_sum_sent: false,
            keys_sum_held: None,
            ring_list_sent: false,
            probe: false,
            meta_work_at: None,
            meta_work_due: false,
        }
    }
}

impl crate::mesh::PeerExt for ChordPeer {}
