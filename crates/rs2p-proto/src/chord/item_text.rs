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
    /// Remembers `text` (a valid base58 text of `item`'s hash, as parsed)
    /// if it is the canonical one, the text [`base58::encode`] makes: a
    /// peer may send leading `1`s, and a py2p peer asking for the same
    /// item must get its answer under the text it sent, the canonical one.
    /// A copy: a slice of a received frame would keep the whole frame (a
    /// store's value) alive.
    pub(crate) fn note(&mut self, item: ItemKey, text: &[u8]) {
        let canonical = text.first().is_some_and(|&d| d != b'1') || text == b"1";
        if canonical && self.find(&item).is_none() {
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
    fn texts_are_canonical_kept_per_item_and_the_oldest_goes_first() {
        let mut t = ItemTexts::default();
        let item = |n: u64| (HashMethod::Sha256, U512::from(n));
        let kept = |t: &ItemTexts, i: ItemKey| t.find(&i).cloned();
        // A canonical text as a peer sent it is kept; a non-canonical one
        // (a py2p asker of the same item would not know it) is not.
        t.note(item(59), b"22");
        assert_eq!(kept(&t, item(59)), Some(Bytes::from_static(b"22")));
        t.note(item(57), b"1z");
        t.note(item(0), b"");
        assert_eq!(kept(&t, item(57)), None);
        assert_eq!(kept(&t, item(0)), None);
        assert_eq!(t.text(item(57)), Bytes::from_static(b"z"));
        assert_eq!(t.text(item(0)), Bytes::from_static(b"1"));
        // The same hash in another table is another item.
        assert_eq!(kept(&t, (HashMethod::Sha1, U512::from(57u64))), None);
        assert_eq!(t.text((HashMethod::Sha1, U512::from(57u64))), Bytes::from_static(b"z"));
        // Four items are kept: the next pushes out the oldest (59).
        assert_eq!(t.slots.iter().flatten().count(), KEPT);
        assert_eq!(base58::decode(&t.text(item(1000))).unwrap(), U512::from(1000u64));
        assert_eq!(kept(&t, item(59)), None);
        assert!(kept(&t, item(57)).is_some() && kept(&t, item(1000)).is_some());
    }
}
