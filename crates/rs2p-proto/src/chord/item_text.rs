//! The base58 texts of the items a node just handled.
//!
//! A retrieve, store or replica names its item by the base58 text of its
//! hash, and the node that decodes one often names the same item again at
//! once: the answer to a retrieve, the store or retrieve it forwards, the
//! replicas of a store it keeps. Encoding a 512-bit hash is a few thousand
//! instructions (a tenth of a get's, before this); the text just decoded,
//! or just made, serves again. Any text of an item decodes to it, and py2p
//! matches an answer to its request by the very text it sent, which is the
//! one kept.

use bytes::Bytes;

use super::ItemKey;
use crate::wire::base58;

/// Texts kept: the items of the last few messages (a store's replicas go
/// out two levels deep; a get's tables are five items of their own).
const KEPT: usize = 4;

/// A few `(item, text)` pairs, replaced oldest first.
#[derive(Debug, Default)]
pub(crate) struct ItemTexts {
    slots: [Option<(ItemKey, Bytes)>; KEPT],
    /// The slot the next new text replaces.
    next: usize,
}

impl ItemTexts {
    /// Remembers `text` (a valid base58 text of `item`'s hash, as parsed).
    /// A copy: a slice of a received frame would keep the whole frame (a
    /// store's value) alive.
    pub(crate) fn note(&mut self, item: ItemKey, text: &[u8]) {
        if self.find(&item).is_none() {
            self.keep(item, Bytes::copy_from_slice(text));
        }
    }

    fn keep(&mut self, item: ItemKey, text: Bytes) {
        self.slots[self.next] = Some((item, text));
        self.next = (self.next + 1) % KEPT;
    }

    fn find(&self, item: &ItemKey) -> Option<&Bytes> {
        self.slots.iter().flatten().find(|(i, _)| i == item).map(|(_, t)| t)
    }

    /// The text of `item`'s hash: a kept one, else made (and kept).
    pub(crate) fn text(&mut self, item: ItemKey) -> Bytes {
        if let Some(t) = self.find(&item) {
            return t.clone();
        }
        let text = Bytes::from(base58::encode(&item.1));
        self.keep(item, text.clone());
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ring::{HashMethod, U512};

    #[test]
    fn a_kept_text_serves_its_item_only_and_the_oldest_goes_first() {
        let mut t = ItemTexts::default();
        let item = |n: u64| (HashMethod::Sha256, U512::from(n));
        // A non-canonical text as a peer sent it is echoed as it came.
        t.note(item(57), b"1z");
        assert_eq!(t.text(item(57)), Bytes::from_static(b"1z"));
        // The same hash in another table is another item.
        assert_eq!(t.text((HashMethod::Sha1, U512::from(57u64))), Bytes::from_static(b"z"));
        for n in 58..58 + KEPT as u64 {
            assert_eq!(base58::decode(&t.text(item(n))).unwrap(), U512::from(n));
        }
        // Four newer items pushed the first out: made again, canonical.
        assert_eq!(t.text(item(57)), Bytes::from_static(b"z"));
    }
}
