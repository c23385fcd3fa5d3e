//! Listing keys without the flooded key list: keys kept beside items, and
//! a walk of the ring.
//!
//! py2p announces every set to every node (a broadcast per set, so its cost
//! grows with N) so that each node can answer `keys()` alone. An rs2p ring
//! may go without it ([`crate::core::Config::key_list`] off, `rs2p node
//! --no-key-list`); then:
//!
//! * a store sent to an rs2p peer carries the key as a fifth packet (py2p
//!   peers get the usual four), checked against the hash by the receiver, so
//!   each rs2p owner knows the keys of the items it holds (kept with the
//!   values, `chord/store.rs`), and
//!   passes them on with handoffs, repairs and replicas;
//! * `keys()` walks the ring (sub-flag [`flags::RS2P_WALK`], PROTOCOL
//!   §16.13): `keys POINT NONCE CURSOR PATH…` is routed like a find (§16.12)
//!   to the owner of POINT, which answers `keyed POINT NONCE NEXT MORE COUNT
//!   KEY… PATH…`: up to a page of the keys of items it holds after CURSOR,
//!   and NEXT, its successor, where the walk goes on. The walk starts at our
//!   own id (or, for a client, at a seeding peer's) and ends when it is back
//!   there: O(N) steps of O(log N) hops, pages of [`WALK_PAGE_KEYS`] keys.
//!
//! A node advertises that it keeps no flooded list with the marker
//! [`NO_KEY_LIST_MARKER`] in its handshake's compression list, beside the
//! rs2p capability, so a client (which keeps the default) walks too.

use std::collections::BTreeSet;

use bytes::Bytes;

use super::{ItemKey, KeyListStatus};
use crate::chord::Node;
use crate::core::{ConnId, Time};
use crate::ring::{distance, U512};
use crate::wire::flags;

/// Marker, in the compression list beside the rs2p capability (0x2F): this
/// node keeps no flooded key list, so `keys()` through it walks the ring.
pub const NO_KEY_LIST_MARKER: u8 = 0x2A;

/// Most keys in one page of a walk answer.
pub const WALK_PAGE_KEYS: usize = 4096;

/// Most key bytes in one page (frames stay well under the frame bound).
const WALK_PAGE_BYTES: usize = 256 << 10;

/// A walk step unanswered this long is sent again ...
const WALK_STEP_TIMEOUT_MS: u64 = 5_000;

/// ... this many times in all, then the walk fails.
const WALK_STEP_TRIES: u8 = 3;

/// A finished walk answers `keys()` for this long; a later request walks again.
const WALK_FRESH_MS: u64 = 2_000;

/// Bound on a walk's steps (a ring of a million nodes), so that peers
/// answering with tiny steps cannot keep a walk going for ever.
const MAX_WALK_STEPS: u64 = 1 << 20;

const KEYS: &[u8] = b"keys";
const KEYED: &[u8] = b"keyed";

/// A walk in progress.
#[derive(Debug)]
struct Walk {
    /// Where it started (and ends).
    start: U512,
    /// The point whose owner is asked now.
    point: U512,
    /// The last key of the page before, when the owner has more.
    cursor: Bytes,
    /// The nonce of the step in flight.
    nonce: u64,
    /// When the step was sent.
    sent_at: Time,
    /// Sends of this step so far.
    tries: u8,
    /// Ring distance walked so far (ends the walk at 2^384 whatever the answers).
    covered: U512,
    /// Steps taken.
    steps: u64,
    /// Keys gathered.
    keys: BTreeSet<Bytes>,
}

/// Keys beside items, and the walk state of a node.
#[derive(Debug, Default)]
pub(crate) struct WalkState {
    /// The walk in progress.
    walk: Option<Walk>,
    /// The last finished walk: when, and its keys.
    last: Option<(Time, BTreeSet<Bytes>)>,
    /// The last walk failed (a step unanswered): `keys()` is partial.
    failed: bool,
    /// The next nonce.
    next_nonce: u64,
}

impl Node {
    /// Keys the walk found (the last finished walk's, else so far).
    pub(crate) fn walked_len(&self) -> usize {
        let w = &self.chord.walk;
        w.last.as_ref().map(|(_, k)| k.len()).or_else(|| w.walk.as_ref().map(|w| w.keys.len())).unwrap_or(0)
    }

    /// True if `keys()` here walks the ring: we keep no flooded list, or we
    /// are a client of a seeding rs2p peer that keeps none.
    ///
    /// A seeding node walks by its configuration alone: a py2p peer linked
    /// later makes it announce its sets, but the keys set before were never
    /// announced, so its own list would lack them.
    pub fn walks_keys(&self) -> bool {
        if !self.chord.leeching {
            return !self.mesh.config().key_list;
        }
        self.mesh.conns().values().any(|c| c.handshaken && !c.ext.leeching && c.rs2p && c.ext.no_key_list)
    }

    /// Records that `item`, which we hold or are about to store, is
    /// `key`'s: the store keeps the key with the item's value
    /// (`chord/store.rs`), and forgets it with the item.
    pub(crate) fn note_item_key(&mut self, item: ItemKey, key: &Bytes) {
        let key = self.shared_key(key, true);
        self.chord.data.stage_key(item.0, &item.1, key);
    }

    /// `item` was not stored after all: the key noted for it is dropped.
    pub(crate) fn forget_item_key(&mut self, item: ItemKey) {
        self.chord.data.unstage_key(item.0, &item.1);
    }

    /// The key of an item we hold, if we know it.
    pub(crate) fn item_key(&self, item: &ItemKey) -> Option<Bytes> {
        self.chord.data.item_key(item.0, &item.1)
    }

    /// Starts a walk unless one runs or a fresh one finished.
    pub(crate) fn request_walk(&mut self) {
        let w = &self.chord.walk;
        let fresh = w.last.as_ref().is_some_and(|(at, _)| self.mesh.now().saturating_sub(*at) < WALK_FRESH_MS);
        if w.walk.is_some() || fresh {
            return;
        }
        let start = if self.chord.leeching {
            match self.data_storing().into_iter().find(|(_, c)| self.is_rs2p(*c)) {
                Some((p, _)) => *p.value(),
                None => return,
            }
        } else {
            *self.mesh.id().value()
        };
        self.chord.walk.walk = Some(Walk {
            start,
            point: start,
            cursor: Bytes::new(),
            nonce: 0,
            sent_at: self.mesh.now(),
            tries: 0,
            covered: U512::ZERO,
            steps: 0,
            keys: BTreeSet::new(),
        });
        self.walk_step();
    }

    /// The walk's keys (the last finished walk's, else those gathered so far).
    pub(crate) fn walked_keys(&self) -> Vec<Bytes> {
        let w = &self.chord.walk;
        match (&w.last, &w.walk) {
            (Some((_, keys)), _) => keys.iter().cloned().collect(),
            (None, Some(walk)) => walk.keys.iter().cloned().collect(),
            (None, None) => Vec::new(),
        }
    }

    /// Whether the walk's list is all in.
    pub(crate) fn walk_status(&self) -> KeyListStatus {
        let w = &self.chord.walk;
        if w.walk.is_some() || w.last.is_none() {
            KeyListStatus::Arriving
        } else {
            KeyListStatus::Complete
        }
    }

    /// True if the last walk gave up on a step: its list may lack keys.
    pub fn key_walk_failed(&self) -> bool {
        self.chord.walk.failed
    }

    /// Asks for the current step: our own page at once if we own the point.
    fn walk_step(&mut self) {
        let Some(walk) = self.chord.walk.walk.as_ref() else {
            return;
        };
        let (point, cursor) = (walk.point, walk.cursor.clone());
        let Some(conn) = self.find_next_hop(&point) else {
            if self.chord.leeching {
                return self.end_walk(true);
            }
            let (keys, more) = self.key_page(&cursor);
            let succ = self.owner_id(self.successor()).map_or(*self.mesh.id().value(), |p| *p.value());
            return self.walk_answered(keys, succ, more);
        };
        let nonce = self.chord.walk.next_nonce;
        self.chord.walk.next_nonce += 1;
        if let Some(walk) = self.chord.walk.walk.as_mut() {
            walk.nonce = nonce;
            walk.sent_at = self.mesh.now();
            walk.tries += 1;
        }
        let payload = vec![
            Bytes::from_static(&[flags::RS2P_WALK]),
            Bytes::from_static(KEYS),
            Bytes::from(crate::wire::base58::encode(&point)),
            Bytes::from(nonce.to_string()),
            cursor,
            self.mesh.id().bytes(),
        ];
        self.mesh.send_on(conn, flags::WHISPER, payload);
    }

    /// A page of the walk came in (or was read locally).
    fn walk_answered(&mut self, keys: Vec<Bytes>, next: U512, more: bool) {
        let Some(walk) = self.chord.walk.walk.as_mut() else {
            return;
        };
        walk.steps += 1;
        walk.tries = 0;
        let last = keys.last().cloned();
        walk.keys.extend(keys);
        match last.filter(|_| more) {
            Some(last) => walk.cursor = last,
            None => {
                let step = distance(&walk.point, &next);
                walk.covered = walk.covered.saturating_add(step);
                walk.point = next;
                walk.cursor = Bytes::new();
                let round = U512::from(1u64) << crate::ring::RING_BITS;
                if step.is_zero() || next == walk.start || walk.covered >= round {
                    return self.end_walk(false);
                }
            }
        }
        // Bounded like the key list: peers answering with pages of made-up
        // keys cannot grow a walk's memory without end.
        if walk.steps >= MAX_WALK_STEPS || walk.keys.len() > self.mesh.config().max_keys {
            return self.end_walk(true);
        }
        self.walk_step();
    }

    fn end_walk(&mut self, failed: bool) {
        let w = &mut self.chord.walk;
        if let Some(walk) = w.walk.take() {
            w.failed = failed;
            w.last = Some((self.mesh.now(), walk.keys));
        }
    }

    /// When the step of the walk in progress is overdue.
    pub(crate) fn walk_due(&self) -> Option<Time> {
        self.chord.walk.walk.as_ref().map(|w| w.sent_at.saturating_add(WALK_STEP_TIMEOUT_MS))
    }

    /// Walk maintenance, on each tick: a step unanswered is sent again, and
    /// after [`WALK_STEP_TRIES`] the walk ends as failed.
    pub(crate) fn walk_tick(&mut self) {
        let Some(walk) = self.chord.walk.walk.as_ref() else {
            return;
        };
        if self.mesh.now().saturating_sub(walk.sent_at) < WALK_STEP_TIMEOUT_MS {
            return;
        }
        if walk.tries >= WALK_STEP_TRIES {
            self.end_walk(true);
        } else {
            self.walk_step();
        }
    }

    /// Keys of items we hold, after `cursor` (from the first if empty): a
    /// page, and whether more follow.
    fn key_page(&self, cursor: &Bytes) -> (Vec<Bytes>, bool) {
        let (mut out, mut bytes) = (Vec::new(), 0usize);
        for key in self.chord.data.held_keys_after(cursor) {
            if out.len() == WALK_PAGE_KEYS || bytes + key.len() > WALK_PAGE_BYTES {
                return (out, true);
            }
            bytes += key.len();
            out.push(Bytes::copy_from_slice(key));
        }
        (out, false)
    }

    /// The rs2p walk extension (§16.13): forward or answer a walk step, or
    /// walk an answer back along its path.
    pub(crate) fn handle_walk(&mut self, conn: ConnId, payload: &[Bytes]) {
        let verb = payload[1].as_ref();
        let count = if verb == KEYED {
            payload.get(6).and_then(|c| std::str::from_utf8(c).ok()).and_then(|c| c.parse::<usize>().ok())
        } else {
            Some(0)
        };
        let fixed = match (verb, count) {
            (KEYS, _) => 5,
            (KEYED, Some(c)) if c <= WALK_PAGE_KEYS => 7 + c,
            _ => usize::MAX,
        };
        let target = crate::wire::base58::decode(&payload[2]).ok().map(|t| crate::ring::reduce(&t));
        let path = payload.get(fixed..).and_then(super::fingers::parse_path);
        let (Some(point), Some(path)) = (target, path) else {
            self.mesh.record_error(Some(conn), "ignoring a malformed key walk".to_owned());
            return;
        };
        if verb == KEYS {
            if self.peer_of(conn) != path.last() || self.chord.leeching {
                return;
            }
            match self.find_next_hop(&point).filter(|_| path.len() < super::MAX_FIND_PATH) {
                Some(next) if !path.contains(self.mesh.id()) => {
                    let mut out = payload.to_vec();
                    out.push(self.mesh.id().bytes());
                    self.mesh.send_on(next, flags::WHISPER, out);
                }
                _ => {
                    let (keys, more) = self.key_page(&payload[4]);
                    let succ = self.owner_id(self.successor()).map_or(*self.mesh.id().value(), |p| *p.value());
                    let mut out = vec![
                        Bytes::from_static(&[flags::RS2P_WALK]),
                        Bytes::from_static(KEYED),
                        payload[2].clone(),
                        payload[3].clone(),
                        Bytes::from(crate::wire::base58::encode(&succ)),
                        Bytes::from_static(if more { b"1" } else { b"0" }),
                        Bytes::from(keys.len().to_string()),
                    ];
                    out.extend(keys);
                    out.extend(payload[5..].iter().cloned());
                    self.mesh.send_on(conn, flags::WHISPER, out);
                }
            }
            return;
        }
        if !self.answer_back(payload, fixed, path) {
            return;
        }
        let nonce = std::str::from_utf8(&payload[3]).ok().and_then(|n| n.parse::<u64>().ok());
        let ours = self.chord.walk.walk.as_ref().is_some_and(|w| Some(w.nonce) == nonce && w.point == point);
        let next = crate::wire::base58::decode(&payload[4]).ok().map(|n| crate::ring::reduce(&n));
        if let (true, Some(next)) = (ours, next) {
            let keys = payload[7..fixed].to_vec();
            self.walk_answered(keys, next, payload[5].as_ref() == b"1");
        }
    }
}
