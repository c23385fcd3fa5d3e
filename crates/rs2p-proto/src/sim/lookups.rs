//! Counting lookup traffic: which retrieves went where, for the hop
//! counts of `rs2p-lab sim` and the routing tests.

use std::collections::BTreeMap;

use super::Sim;
use crate::ring::HashMethod;
use crate::wire::{base58, flags, Message};

/// One item lookup as seen on the wire: (table name, base58 hash).
pub type ItemName = (String, String);

/// The five items a `get` of `key` looks up, as [`Sim::take_lookup_hops`]
/// names them.
pub fn item_names(key: &[u8]) -> [ItemName; 5] {
    HashMethod::ALL.map(|m| (m.name().to_owned(), base58::encode(&m.hash(key))))
}

impl Sim {
    /// Counts, from now on, the retrieve requests delivered per item (see
    /// [`Sim::take_lookup_hops`]); `false` stops counting.
    pub fn track_lookups(&mut self, on: bool) {
        self.track_lookups = on;
    }

    /// Takes the counts gathered since the last call: per item
    /// (table name, base58 hash), the number of retrieve whispers
    /// (`flags::RETRIEVE`) delivered, i.e. the forward hops of that item's
    /// lookups (re-sends and re-asks included). An item its asker owns
    /// costs no whisper and is absent: count it as 0 hops (see
    /// [`item_names`]). Frames that do not decode are not counted.
    pub fn take_lookup_hops(&mut self) -> BTreeMap<ItemName, u32> {
        std::mem::take(&mut self.lookup_hops)
    }

    /// Frames and bytes of lookup traffic delivered while tracking: retrieve
    /// whispers and their `retrieved` answers (relayed answers included),
    /// whoever asked (a repair's retrieves count too).
    pub fn lookup_frames(&self) -> (u64, u64) {
        self.lookup_frames
    }
}

/// A frame of lookup traffic.
pub(super) enum Lookup {
    /// A retrieve whisper for this item.
    Retrieve(ItemName),
    /// An answer.
    Retrieved,
}

/// What a frame is, if it is lookup traffic. A cheap scan of the packet
/// lengths rules out most uncompressed frames before the full decode (which
/// checks the message id).
pub(super) fn lookup_frame(frame: &[u8]) -> Option<Lookup> {
    let body = frame.get(4..)?;
    let len = u32::from_be_bytes(frame[..4].try_into().ok()?) as usize;
    if len != body.len() {
        return None;
    }
    if let Some(sub) = crate::wire::peek_sub_flag(body) {
        if sub != Some(flags::RETRIEVE) && sub != Some(flags::RETRIEVED) {
            return None;
        }
    }
    // Between rs2p nodes whispers carry an empty id (PROTOCOL §16.16).
    let (methods, max) = (&crate::wire::compression::PREFERENCE, crate::wire::DEFAULT_MAX_FRAME);
    let msg = Message::decode_body_ext(body, methods, max, true).ok()?;
    if msg.msg_type != flags::WHISPER || msg.payload.len() < 3 {
        return None;
    }
    match msg.payload[0].as_ref() {
        [flags::RETRIEVE] => Some(Lookup::Retrieve((
            String::from_utf8_lossy(&msg.payload[1]).into_owned(),
            String::from_utf8_lossy(&msg.payload[2]).into_owned(),
        ))),
        [flags::RETRIEVED] => Some(Lookup::Retrieved),
        _ => None,
    }
}
