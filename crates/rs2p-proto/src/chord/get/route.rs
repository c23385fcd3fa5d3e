//! Routing a retrieve to the owner of an item (or answering it from our
//! own table), and answers coming back to their waiters.

use bytes::Bytes;

use super::{Answer, Pending, Waiter, LOCAL_RESERVE_DIV, RESEND_AFTER_MS};
use crate::chord::{ItemKey, Node, Owner};
use crate::core::{ConnId, Version};
use crate::ring::HashMethod;
use crate::wire::{base58, flags};

impl Node {
    /// Looks an item up for a waiter: answers from the local table when we own
    /// it (or the owner is the asker), else forwards. A miss in a table we
    /// have just come to own is checked with its previous owner; with no
    /// owner to ask, or alone after losing our peers, a local `get` hears
    /// "unavailable", and a peer no answer at all (it then times out rather
    /// than reading "missing" for a key that may exist).
    pub(crate) fn route_retrieve(&mut self, item: ItemKey, waiter: Waiter, from: Option<ConnId>) {
        let owner = match self.find(&item.1) {
            Owner::Remote(c) if Some(c) == from => {
                // The asker routed it to us: answer what we hold.
                self.answer_from_table(item, waiter);
                return;
            }
            o => o,
        };
        let owner = match owner {
            Owner::Nobody => {
                self.answer_unavailable(item, waiter);
                return;
            }
            Owner::Local if self.chord.unsure.contains_key(&item) => {
                self.answer_unavailable(item, waiter);
                return;
            }
            Owner::Local => {
                if let Some(deleted) = self.chord.data.tomb(item.0, &item.1) {
                    // A remembered delete is an answer of its own.
                    self.deliver(item, waiter, Answer::Missing(deleted));
                    return;
                }
                let held = self.local_entry(item).or_else(|| self.promote_replica(item));
                match held {
                    Some((value, version)) => {
                        self.deliver(item, waiter, Answer::Value(value, version));
                        return;
                    }
                    None => match self.previous_owner(item, waiter, from) {
                        Some(conn) => {
                            self.await_answer(item, waiter, conn, true);
                            return;
                        }
                        None if self.chord.lost_seeder && self.data_storing().is_empty() => {
                            self.answer_unavailable(item, waiter);
                            return;
                        }
                        None => {
                            self.deliver(item, waiter, Answer::Missing(Version::ZERO));
                            return;
                        }
                    },
                }
            }
            remote => remote,
        };
        match owner {
            Owner::Local | Owner::Nobody => unreachable!("answered above"),
            Owner::Remote(conn) => {
                if let Some(p) = self.gets.pending.get(&item).filter(|p| from.is_some() && Some(p.to) == from) {
                    // The peer we asked asks us back (it thinks we own the
                    // item): waiting on each other would stall both, so it
                    // hears what we hold. Unless we are handing the item to
                    // it: a py2p peer relays our own answer back as the
                    // answer to our check, and our copy would then be
                    // dropped on the word of our own table.
                    if p.waiters.contains(&Waiter::Handoff) {
                        self.deliver(item, waiter, Answer::Missing(Version::ZERO));
                    } else {
                        self.answer_from_table(item, waiter);
                    }
                    return;
                }
                self.await_answer(item, waiter, conn, false);
            }
        }
    }

    /// Registers `waiter` for `item`'s answer and asks `conn` for it: a
    /// retrieve, or a peek (answered from `conn`'s own table, rs2p only).
    fn await_answer(&mut self, item: ItemKey, waiter: Waiter, conn: ConnId, peek: bool) {
        let now = self.mesh.now();
        if let Some(p) = self.gets.pending.get_mut(&item) {
            if !p.waiters.contains(&waiter) {
                p.waiters.push(waiter);
            }
            if p.to == conn && now.saturating_sub(p.sent_at) < RESEND_AFTER_MS {
                return;
            }
            p.to = conn;
            p.sent_at = now;
        } else {
            // Retrieves peers make us forward stop short of the bound: the
            // rest is kept for this node's own gets, handoffs and repairs.
            let bound = match waiter {
                Waiter::Remote(_) => {
                    self.mesh.config().max_pending - self.mesh.config().max_pending / LOCAL_RESERVE_DIV
                }
                _ => self.mesh.config().max_pending,
            };
            if self.gets.pending.len() >= bound {
                self.mesh.record_error(None, "too many retrieves pending: lookup dropped".to_owned());
                if let Waiter::Local(_) = waiter {
                    self.deliver(item, waiter, Answer::Unavailable);
                }
                return;
            }
            let pending = Pending { to: conn, sent_at: now, created: now, waiters: vec![waiter] };
            self.gets.pending.insert(item, pending);
        }
        let sub_flag = if peek { flags::RS2P_PEEK } else { flags::RETRIEVE };
        self.send_lookup(conn, item, sub_flag);
    }

    /// Sends a retrieve (or, with [`flags::RS2P_PEEK`], a peek) for `item`.
    pub(crate) fn send_lookup(&mut self, conn: ConnId, item: ItemKey, sub_flag: u8) {
        let payload = vec![
            Bytes::from(vec![sub_flag]),
            Bytes::from_static(item.0.name().as_bytes()),
            self.chord.texts.text(item),
        ];
        self.mesh.send_on(conn, flags::WHISPER, payload);
    }

    /// While [`super::FALLBACK_MS`] runs after our arc grew, the seeding
    /// peer that owned `item` before us (the nearest before it, us aside),
    /// for a lookup that missed here. Not for our own handoff checks, never
    /// back to the asker, and only an rs2p peer.
    fn previous_owner(&self, item: ItemKey, waiter: Waiter, from: Option<ConnId>) -> Option<ConnId> {
        if self.mesh.now() >= self.chord.fallback_until || !matches!(waiter, Waiter::Local(_) | Waiter::Remote(_)) {
            return None;
        }
        // Only rs2p peers can be peeked at (py2p would route a retrieve back to us).
        self.nearest_peer(&item.1, from).filter(|c| self.is_rs2p(*c))
    }

    /// Answers with what the local table holds (nothing: "missing").
    fn answer_from_table(&mut self, item: ItemKey, waiter: Waiter) {
        if self.chord.unsure.contains_key(&item) {
            self.answer_unavailable(item, waiter);
            return;
        }
        let answer = self.table_answer(item);
        self.deliver(item, waiter, answer);
    }

    /// A local table's value and its version.
    pub(crate) fn local_entry(&self, item: ItemKey) -> Option<(Bytes, Version)> {
        let (value, version) = self.chord.data.entry(item.0, &item.1)?;
        Some((value.clone(), version))
    }

    /// What the local table says of an item: its value, or "missing"
    /// (with the version of its delete, if remembered).
    pub(crate) fn table_answer(&self, item: ItemKey) -> Answer {
        match self.local_entry(item) {
            Some((v, ver)) => Answer::Value(v, ver),
            None => Answer::Missing(self.chord.data.tomb(item.0, &item.1).unwrap_or_default()),
        }
    }

    /// No owner can be asked: a local get hears so; a peer gets no answer
    /// (py2p's protocol has no "unavailable", and "missing" would be a lie).
    fn answer_unavailable(&mut self, item: ItemKey, waiter: Waiter) {
        match waiter {
            Waiter::Local(_) => self.deliver(item, waiter, Answer::Unavailable),
            Waiter::Remote(conn) => {
                tracing::debug!(node = %self.mesh.id().short(), conn = conn.0, "no owner reachable: retrieve left unanswered");
            }
            // Our own checks: nothing is confirmed (a handoff is retried, a delete waits).
            Waiter::Handoff | Waiter::DeleteIfHeld(_) => self.deliver(item, waiter, Answer::Unavailable),
        }
    }

    /// Hands an answer to one waiter.
    pub(crate) fn deliver(&mut self, item: ItemKey, waiter: Waiter, answer: Answer) {
        match waiter {
            Waiter::Local(req) => {
                if let Some(g) = self.gets.gets.get_mut(&req) {
                    g.answers[item.0.index()] = answer;
                    self.check_get(req);
                }
            }
            Waiter::Remote(conn) => {
                let (value, version) = match answer {
                    Answer::Value(v, ver) => (v, ver),
                    Answer::Missing(ver) => (Bytes::new(), ver),
                    // Not answered: the asker times out and asks again.
                    Answer::Open | Answer::Unavailable => return,
                };
                let mut payload = vec![
                    Bytes::from_static(&[flags::RETRIEVED]),
                    Bytes::from_static(item.0.name().as_bytes()),
                    self.chord.texts.text(item),
                    value,
                ];
                // An rs2p asker also gets the version (§16.17); py2p expects four packets.
                if !version.is_zero() && self.is_rs2p(conn) {
                    payload.push(Bytes::copy_from_slice(&version.to_bytes()));
                }
                self.mesh.send_on(conn, flags::WHISPER, payload);
            }
            Waiter::Handoff => self.handoff_answer(item, answer),
            Waiter::DeleteIfHeld(conn) => {
                if matches!(answer, Answer::Value(..)) {
                    self.send_store(conn, item, Bytes::new(), Version::ZERO);
                }
            }
        }
    }

    /// Drops deletes of `item` still waiting for their check (a newer value
    /// is on its way).
    pub(crate) fn cancel_checked_deletes(&mut self, item: ItemKey) {
        if let Some(p) = self.gets.pending.get_mut(&item) {
            p.waiters.retain(|w| !matches!(w, Waiter::DeleteIfHeld(_)));
        }
    }

    /// A `retrieved` arrived for `item`.
    pub(crate) fn answer_pending(&mut self, item: ItemKey, value: Bytes, version: Version) -> bool {
        let Some(p) = self.gets.pending.remove(&item) else {
            return false;
        };
        for w in p.waiters {
            self.deliver(item, w, Answer::from_value(value.clone(), version));
        }
        true
    }
}

/// Parses a (METHOD, KEY_B58) pair from packets.
pub(crate) fn parse_item(method: &[u8], key: &[u8]) -> Option<ItemKey> {
    Some((HashMethod::from_name(method)?, base58::decode(key).ok()?))
}
