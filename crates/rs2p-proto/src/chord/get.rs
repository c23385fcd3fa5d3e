//! `get`: five lookups, answers matched per request, majority of 3 of 5.
//!
//! Pending retrieves are keyed by (table, key) like py2p's, but each entry keeps
//! a list of waiters, so concurrent gets of one key and forwarded retrieves
//! from several askers all get their answer (py2p's D11 loses all but one).

use bytes::Bytes;

use super::{ItemKey, Owner};
use crate::chord::Node;
use crate::core::{Conflict, ConnId, Event, GetError, Map, ReqId, SeededState, Time, Version};
use crate::ring::HashMethod;
use crate::wire::{base58, flags};

/// A retrieve answer is awaited for longer than this before the retrieve is sent again.
const RESEND_AFTER_MS: u64 = 2_000;

/// One pending entry in this many (of `Config::max_pending`) is reserved
/// for lookups this node makes itself: retrieves forwarded for peers may
/// fill the rest, so a peer flooding retrieves toward a silent owner cannot
/// make our own gets fail.
const LOCAL_RESERVE_DIV: usize = 4;

/// A get whose tables disagree (some hold a value, others none or another)
/// asks the tables that differ from the most common value again after this
/// long, doubling each time, until its
/// deadline: an item on its way to a new owner (a handoff, a join) reads as
/// missing there for a moment, and that must not become a wrong answer.
const RECHECK_MS: u64 = 200;

/// Rechecks of a "not found" in the [`super::FALLBACK_MS`] window after we
/// joined or lost a seeding peer (200 + 400 ms: a missing key costs 0.6 s
/// more then, and an item still in transit to its new owner is caught).
const CHURN_RECHECKS: u32 = 2;

/// A get first asks `Config::get_first_wave` (3) of its five tables (those
/// cheapest to reach: its own, then the peers owning most of them): three
/// agreeing answers decide it, so asking all five costs two more retrieves
/// and answers each time for nothing. The rest are asked as soon as the
/// first answers do not decide (a disagreement, a "missing", an unreachable
/// owner), or when the first answers have not all come after this long (a slow
/// or silently dead owner; checked each tick, so up to a tick later).
const HEDGE_MS: u64 = 50;

/// Who waits for a retrieve answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Waiter {
    /// A local `get`, for one of its five tables.
    Local(ReqId),
    /// A peer whose retrieve we forwarded.
    Remote(ConnId),
    /// Our own handoff check.
    Handoff,
    /// A delete for a py2p peer, sent there if the item turns out to be held.
    DeleteIfHeld(ConnId),
}

#[derive(Debug)]
pub(crate) struct Pending {
    pub to: ConnId,
    pub sent_at: Time,
    pub created: Time,
    pub waiters: Vec<Waiter>,
}

/// One table's answer to a `get`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum Answer {
    /// Not in yet.
    #[default]
    Open,
    /// The owner holds this value, at this version (zero: a py2p copy).
    Value(Bytes, Version),
    /// The owner said it holds nothing; with a version, it remembers the
    /// item's delete at that version (a tombstone).
    Missing(Version),
    /// No owner could be asked (no seeding peer, or we lost ours).
    Unavailable,
}

impl Answer {
    /// The answer carried by a value from the wire or a table: empty means missing.
    pub(crate) fn from_value(value: Bytes, version: Version) -> Answer {
        if value.is_empty() {
            Answer::Missing(version)
        } else {
            Answer::Value(value, version)
        }
    }

    /// The version this answer carries, if it is in.
    pub(crate) fn version(&self) -> Option<Version> {
        match self {
            Answer::Value(_, v) | Answer::Missing(v) => Some(*v),
            _ => None,
        }
    }

    /// True for any "missing", tombstone or not.
    pub(crate) fn is_missing(&self) -> bool {
        matches!(self, Answer::Missing(_))
    }
}

#[derive(Debug)]
pub(crate) struct GetReq {
    /// The key's five items, in table order.
    pub items: [ItemKey; 5],
    pub answers: [Answer; 5],
    pub deadline: Time,
    /// Rechecks made so far (the next waits `RECHECK_MS << rechecks`).
    pub rechecks: u32,
    /// Tables whose owner said "missing" last time: a recheck peeks at the
    /// nodes before that owner (one may still be handing the item over).
    pub suspect: [bool; 5],
    /// Peeks still unanswered per table.
    pub peeks_left: [u8; 5],
    /// When the tables are to be asked again, if the answers disagreed.
    pub recheck_at: Option<Time>,
    /// A repair read: every answer is waited for (until the deadline) and
    /// handed to the repair as it is, with no majority rule and no event.
    pub internal: bool,
    /// Tables not asked yet (see [`HEDGE_MS`]).
    pub held_back: [bool; 5],
    /// When the get started (the held-back tables are asked [`HEDGE_MS`] later at most).
    pub started: Time,
}

/// In-flight lookups.
#[derive(Debug)]
pub struct GetState {
    pub(crate) pending: Map<ItemKey, Pending>,
    pub(crate) gets: Map<ReqId, GetReq>,
    /// Peeks in flight (see `peek.rs`): (item, peer) → the get waiting.
    pub(crate) peeks: Map<(ItemKey, ConnId), ReqId>,
}

impl Default for GetState {
    fn default() -> Self {
        Self::with_seed(0)
    }
}

impl GetState {
    /// Empty, its maps keyed from `seed` (see [`crate::core::Config::seed`]).
    pub fn with_seed(seed: u64) -> Self {
        GetState {
            pending: SeededState::new(seed, 201).map(),
            gets: SeededState::new(seed, 202).map(),
            peeks: SeededState::new(seed, 203).map(),
        }
    }

    /// Retrieves awaiting an answer.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Gets not finished yet.
    pub fn gets_len(&self) -> usize {
        self.gets.len()
    }
}

/// The value held by at least 3 of the 5 tables, or why there is none, or
/// `None` while the outcome is still open (before the deadline, `last` =
/// false, every table is waited for unless 3 already agree on a value).
/// "Not found" needs 3 tables that positively hold nothing and none that
/// holds a value; unreachable owners that could have made a majority make
/// it "unavailable"; anything else is "no agreement".
///
/// Versions (rs2p copies) come first: three tables agreeing on a value
/// decide unless an answer in already carries a higher version; once every
/// table has answered (or at the deadline), the highest version among the
/// answers wins (if none was out of reach), a value or a delete: a copy that missed a write or a
/// delete (a paused node, the other side of a partition) loses to the one
/// that saw it. Without versions (py2p copies) the majority rule stands.
fn decide(answers: &[Answer; 5], last: bool) -> Option<Result<Bytes, GetError>> {
    let mut counts: Vec<(&Bytes, usize, Version)> = Vec::new();
    let (mut open, mut missing, mut unavailable) = (0, 0, 0);
    for a in answers {
        match a {
            Answer::Open => open += 1,
            Answer::Missing(_) => missing += 1,
            Answer::Unavailable => unavailable += 1,
            Answer::Value(v, ver) => match counts.iter_mut().find(|(c, _, _)| *c == v) {
                Some((_, n, top)) => {
                    *n += 1;
                    *top = (*top).max(*ver);
                }
                None => counts.push((v, 1, *ver)),
            },
        }
    }
    let top = answers.iter().filter_map(Answer::version).max().unwrap_or_default();
    if let Some((v, _, ver)) = counts.iter().find(|(_, n, _)| *n >= 3) {
        if *ver >= top {
            return Some(Ok((*v).clone()));
        }
    }
    if open > 0 && !last {
        return None;
    }
    if !top.is_zero() && open == 0 && unavailable == 0 {
        // Every table answered: the highest version wins, a value or a
        // delete ("not found" on the evidence of a tombstone newer than
        // every value seen). With a table out of reach its copy may be
        // newer: the rules below say "unavailable" rather than guess.
        return match answers.iter().find(|a| a.version() == Some(top)) {
            Some(Answer::Value(v, _)) => Some(Ok(v.clone())),
            _ => Some(Err(GetError::NotFound)),
        };
    }
    if counts.is_empty() && missing >= 3 {
        return Some(Err(GetError::NotFound));
    }
    if open > 0 {
        return Some(Err(GetError::Timeout));
    }
    let best = counts.iter().map(|(_, n, _)| *n).max().unwrap_or(0);
    if unavailable > 0 && (counts.is_empty() || best + unavailable >= 3) {
        return Some(Err(GetError::Unavailable));
    }
    Some(Err(GetError::NoAgreement))
}

/// The value most tables hold (ties: the first seen), as an answer.
fn plurality(answers: &[Answer; 5]) -> Option<Answer> {
    let mut best: Option<(&Answer, usize)> = None;
    for a in answers.iter().filter(|a| matches!(a, Answer::Value(..))) {
        let n = answers.iter().filter(|b| *b == a).count();
        if best.is_none_or(|(_, m)| n > m) {
            best = Some((a, n));
        }
    }
    best.map(|(a, _)| a.clone())
}

impl Node {
    /// Starts a `get`; the outcome comes as [`Event::GetDone`] with the returned id.
    pub fn get(&mut self, key: &[u8], timeout_ms: u64, now: Time) -> ReqId {
        self.mesh.set_now(now);
        let req = self.mesh.alloc_req();
        if self.mesh.closed {
            self.mesh.emit(Event::GetDone { req, result: Err(GetError::Closed) });
            return req;
        }
        self.start_get(req, key, now.saturating_add(timeout_ms), false);
        req
    }

    /// Starts a repair read of `key`'s five tables under `req` (see
    /// `repair.rs`). It may finish before this returns (tables we own
    /// answer at once): the caller registers `req` first.
    pub(crate) fn internal_get(&mut self, req: ReqId, key: &[u8]) {
        self.start_get(req, key, self.mesh.now.saturating_add(self.mesh.cfg.get_timeout_ms), true);
    }

    fn start_get(&mut self, req: ReqId, key: &[u8], deadline: Time, internal: bool) {
        let items = HashMethod::ALL.map(|m| (m, m.hash(key)));
        let g = GetReq {
            items,
            answers: Default::default(),
            deadline,
            rechecks: 0,
            suspect: [false; 5],
            peeks_left: [0; 5],
            recheck_at: None,
            internal,
            held_back: if internal { [false; 5] } else { self.second_wave(&items) },
            started: self.mesh.now,
        };
        self.gets.gets.insert(req, g);
        self.ask_tables(req);
    }

    /// The tables a get does not ask at first: all but the
    /// `Config::get_first_wave` cheapest to reach (this node's own, then those of the peer owning the
    /// most of them, whose retrieves share a write). None are held back while
    /// some table has no owner to ask.
    fn second_wave(&self, items: &[ItemKey; 5]) -> [bool; 5] {
        let owners: Vec<Owner> = items.iter().map(|item| self.find(&item.1)).collect();
        if owners.iter().any(|o| matches!(o, Owner::Nobody)) {
            return [false; 5];
        }
        let cost = |o: &Owner| match o {
            Owner::Remote(c) => 6 - owners.iter().filter(|p| **p == Owner::Remote(*c)).count(),
            _ => 0,
        };
        let mut order: Vec<usize> = (0..5).collect();
        order.sort_by_key(|&i| cost(&owners[i]));
        let mut held = [false; 5];
        for &i in &order[self.mesh.cfg.get_first_wave.clamp(3, 5)..] {
            held[i] = true;
        }
        held
    }

    /// Asks the tables a get held back.
    fn ask_held_back(&mut self, req: ReqId) {
        if let Some(g) = self.gets.gets.get_mut(&req) {
            g.held_back = [false; 5];
            self.ask_tables(req);
        }
    }

    /// Sends (or answers locally) the lookups of a get's tables that have
    /// no answer yet.
    fn ask_tables(&mut self, req: ReqId) {
        let Some(g) = self.gets.gets.get(&req) else {
            return;
        };
        let open: Vec<(ItemKey, bool)> = (0..5)
            .filter(|&i| g.answers[i] == Answer::Open && !g.held_back[i])
            .map(|i| (g.items[i], g.suspect[i]))
            .collect();
        for (item, suspect) in open {
            if !(suspect && self.start_peeks(req, item)) {
                self.route_retrieve(item, Waiter::Local(req), None);
            }
        }
        self.check_get(req);
    }

    /// Abandons a get (its waiters are dropped when answers arrive).
    pub fn cancel_get(&mut self, req: ReqId) {
        self.gets.gets.remove(&req);
    }

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
        let now = self.mesh.now;
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
                Waiter::Remote(_) => self.mesh.cfg.max_pending - self.mesh.cfg.max_pending / LOCAL_RESERVE_DIV,
                _ => self.mesh.cfg.max_pending,
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
            Bytes::from(base58::encode(&item.1)),
        ];
        self.mesh.send_on(conn, flags::WHISPER, payload);
    }

    /// While [`super::FALLBACK_MS`] runs after our arc grew, the seeding
    /// peer that owned `item` before us (the nearest before it, us aside),
    /// for a lookup that missed here. Not for our own handoff checks, never
    /// back to the asker, and only an rs2p peer.
    fn previous_owner(&self, item: ItemKey, waiter: Waiter, from: Option<ConnId>) -> Option<ConnId> {
        if self.mesh.now >= self.chord.fallback_until || !matches!(waiter, Waiter::Local(_) | Waiter::Remote(_)) {
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
        let value = self.chord.data.get(item.0, &item.1)?.clone();
        Some((value, self.chord.data.version(item.0, &item.1).unwrap_or_default()))
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
                tracing::debug!(node = %self.mesh.id.short(), conn = conn.0, "no owner reachable: retrieve left unanswered");
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
                    Bytes::from(base58::encode(&item.1)),
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

    /// Decides a get if its answers allow, or schedules a recheck.
    pub(crate) fn check_get(&mut self, req: ReqId) {
        let now = self.mesh.now;
        let Some(g) = self.gets.gets.get(&req) else {
            return;
        };
        if g.recheck_at.is_some() {
            return;
        }
        let last = g.deadline <= now;
        if g.internal {
            if last || !g.answers.contains(&Answer::Open) {
                if let Some(g) = self.gets.gets.remove(&req) {
                    self.repair_answered(req, g.items, g.answers);
                }
            }
            return;
        }
        let Some(result) = decide(&g.answers, last) else {
            let waiting = (0..5).any(|i| g.answers[i] == Answer::Open && !g.held_back[i]);
            if !waiting && g.held_back.contains(&true) {
                // The first answers do not decide: ask the other tables.
                self.ask_held_back(req);
            }
            return;
        };
        let has_value = g.answers.iter().any(|a| matches!(a, Answer::Value(..)));
        let versions: Vec<Version> = g.answers.iter().filter_map(Answer::version).collect();
        if versions.iter().any(|v| *v != versions[0]) && result.is_ok() {
            self.mesh.counters.conflict(Conflict::GetVersions);
        }
        let first_look = g.rechecks == 0;
        // While the ring changes in our view, an item may be on its way to
        // an owner that does not hold it yet: "not found" is checked again too.
        let churn = now < self.chord.fallback_until && g.rechecks < CHURN_RECHECKS;
        let missing: Vec<ItemKey> =
            g.items.iter().zip(&g.answers).filter(|(_, a)| a.is_missing()).map(|(i, _)| *i).collect();
        let recheck = match result {
            // Tables disagree: ask again (later) while time remains.
            Err(GetError::NoAgreement) => !last && has_value,
            // Before "not found" stands, the nodes that held the missing
            // items before their owners are asked at once, where we can reach
            // them (an item being handed over is still there).
            Err(GetError::NotFound) if !last => {
                churn || (first_look && missing.iter().any(|item| !self.second_opinions(*item).is_empty()))
            }
            _ => false,
        };
        let delay = if first_look && !has_value { 0 } else { RECHECK_MS << g.rechecks.min(16) };
        let at = now.saturating_add(delay);
        let Some(g) = self.gets.gets.get_mut(&req) else {
            return;
        };
        if !recheck || at >= g.deadline {
            let result = if recheck { decide(&g.answers, true).unwrap_or(result) } else { result };
            self.gets.gets.remove(&req);
            self.mesh.emit(Event::GetDone { req, result });
            return;
        }
        g.rechecks += 1;
        if has_value && matches!(result, Err(GetError::NoAgreement)) {
            self.mesh.counters.disagreements += 1;
        }
        // Only the tables that disagree with the most common value are asked
        // again; a "missing" is asked of the node that held the item before.
        let keep = plurality(&g.answers);
        for (a, suspect) in g.answers.iter_mut().zip(&mut g.suspect) {
            if keep.as_ref() != Some(&*a) {
                *suspect = a.is_missing();
                *a = Answer::Open;
            }
        }
        if delay == 0 {
            self.ask_tables(req);
        } else {
            g.recheck_at = Some(at);
        }
    }

    /// Retries and expiry of lookups; called from the node's tick.
    pub(crate) fn get_tick(&mut self) {
        let now = self.mesh.now;
        self.prune_peeks();
        let hedge: Vec<ReqId> = self
            .gets
            .gets
            .iter()
            .filter(|(_, g)| g.held_back.contains(&true) && now.saturating_sub(g.started) >= HEDGE_MS)
            .map(|(r, _)| *r)
            .collect();
        for req in hedge {
            self.ask_held_back(req);
        }
        let due: Vec<ReqId> = self
            .gets
            .gets
            .iter()
            .filter(|(_, g)| g.deadline <= now || g.recheck_at.is_some_and(|t| t <= now))
            .map(|(r, _)| *r)
            .collect();
        for req in due {
            let Some(g) = self.gets.gets.get_mut(&req) else {
                continue;
            };
            if g.recheck_at.take().is_some() && g.deadline > now {
                self.ask_tables(req);
            } else {
                // The deadline: decide on what came in.
                self.check_get(req);
                if self.gets.gets.remove(&req).is_some() {
                    self.mesh.emit(Event::GetDone { req, result: Err(GetError::Timeout) });
                }
            }
        }
        let limit = self.mesh.cfg.get_timeout_ms.max(1_000);
        let mut dead = Vec::new();
        let mut resend = Vec::new();
        for (item, p) in &mut self.gets.pending {
            // Drop waiters for gets that are gone.
            let gets = &self.gets.gets;
            p.waiters.retain(|w| !matches!(w, Waiter::Local(r) if !gets.contains_key(r)));
            if p.waiters.is_empty() || now.saturating_sub(p.created) > limit {
                dead.push(*item);
            } else if now.saturating_sub(p.sent_at) >= RESEND_AFTER_MS {
                resend.push(*item);
            }
        }
        for item in dead {
            if let Some(p) = self.gets.pending.remove(&item) {
                if p.waiters.contains(&Waiter::Handoff) {
                    self.handoff_unconfirmed(item);
                }
            }
        }
        for item in resend {
            // The answer may have been lost (py2p drops links under load): ask again,
            // through whoever owns the item now.
            if let Some(p) = self.gets.pending.remove(&item) {
                let created = p.created;
                for w in p.waiters {
                    self.route_retrieve(item, w, None);
                }
                if let Some(p) = self.gets.pending.get_mut(&item) {
                    p.created = created;
                }
            }
        }
    }

    /// A connection went away: lookups waiting on it are routed again.
    pub(crate) fn get_conn_lost(&mut self, conn: ConnId) {
        let affected: Vec<ItemKey> = self
            .gets
            .pending
            .iter()
            .filter(|(_, p)| p.to == conn || p.waiters.contains(&Waiter::Remote(conn)))
            .map(|(k, _)| *k)
            .collect();
        for item in affected {
            let Some(mut p) = self.gets.pending.remove(&item) else {
                continue;
            };
            p.waiters.retain(|w| *w != Waiter::Remote(conn));
            if p.to != conn {
                if !p.waiters.is_empty() {
                    self.gets.pending.insert(item, p);
                }
                continue;
            }
            for w in p.waiters {
                self.route_retrieve(item, w, None);
            }
        }
    }

    /// Ends every get with `Closed`.
    pub(crate) fn fail_all_gets(&mut self) {
        let reqs: Vec<ReqId> = self.gets.gets.keys().copied().collect();
        for req in reqs {
            self.gets.gets.remove(&req);
            self.mesh.emit(Event::GetDone { req, result: Err(GetError::Closed) });
        }
        self.gets.pending.clear();
        self.gets.peeks.clear();
    }
}

/// Parses a (METHOD, KEY_B58) pair from packets.
pub(crate) fn parse_item(method: &[u8], key: &[u8]) -> Option<ItemKey> {
    Some((HashMethod::from_name(method)?, base58::decode(key).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Answer {
        Answer::Value(Bytes::copy_from_slice(s.as_bytes()), Version::ZERO)
    }

    fn bv(s: &str, hlc: u64) -> Answer {
        Answer::Value(Bytes::copy_from_slice(s.as_bytes()), Version { hlc, writer: 1 })
    }

    #[test]
    fn the_highest_version_wins() {
        let del = |hlc| Answer::Missing(Version { hlc, writer: 2 });
        let o = Answer::Open;
        // Three stale copies agreeing lose to a newer one already in.
        assert_eq!(decide(&[bv("old", 1), bv("old", 1), bv("old", 1), bv("new", 5), o.clone()], false), None);
        assert_eq!(
            decide(&[bv("old", 1), bv("old", 1), bv("old", 1), bv("new", 5), Answer::Missing(Version::ZERO)], false),
            Some(Ok(Bytes::from_static(b"new")))
        );
        // A newer delete beats older values: "not found".
        assert_eq!(
            decide(&[bv("old", 1), bv("old", 1), del(9), Answer::Missing(Version::ZERO), bv("old", 1)], false),
            Some(Err(GetError::NotFound))
        );
        // A write after the delete wins over it.
        assert_eq!(
            decide(&[bv("again", 10), del(9), del(9), del(9), Answer::Missing(Version::ZERO)], false),
            Some(Ok(Bytes::from_static(b"again")))
        );
        // ... once every table answered: at the deadline with one silent,
        // the old rules ("timeout").
        assert_eq!(decide(&[bv("again", 10), del(9), del(9), del(9), o.clone()], true), Some(Err(GetError::Timeout)));
        // A table out of reach may hold something newer: no guess.
        assert_eq!(
            decide(&[bv("a", 1), bv("a", 1), bv("b", 2), Answer::Unavailable, Answer::Unavailable], false),
            Some(Err(GetError::Unavailable))
        );
        // Three agreeing on the highest version decide at once.
        assert_eq!(
            decide(&[bv("v", 3), bv("v", 3), bv("v", 3), o.clone(), o], false),
            Some(Ok(Bytes::from_static(b"v")))
        );
    }

    #[test]
    fn majority_rules() {
        const M: Answer = Answer::Missing(Version::ZERO);
        use Answer::{Open as O, Unavailable as U};
        let v = || b("v");
        let ok = Some(Ok(Bytes::from_static(b"v")));
        assert_eq!(decide(&[v(), v(), v(), O, O], false), ok);
        assert_eq!(decide(&[v(), v(), O, O, O], false), None);
        // Every table is waited for before "not found"...
        assert_eq!(decide(&[M, M, M, O, O], false), None);
        assert_eq!(decide(&[M, M, M, M, M], false), Some(Err(GetError::NotFound)));
        // ... unless the deadline came: 3 positive "missing" are enough.
        assert_eq!(decide(&[M, M, M, O, O], true), Some(Err(GetError::NotFound)));
        assert_eq!(decide(&[M, M, O, O, O], true), Some(Err(GetError::Timeout)));
        assert_eq!(decide(&[v(), v(), M, M, M], false), Some(Err(GetError::NoAgreement)));
        assert_eq!(decide(&[b("a"), b("a"), b("b"), b("b"), M], false), Some(Err(GetError::NoAgreement)));
        // Unreachable owners never turn into "not found".
        assert_eq!(decide(&[U, U, U, U, U], false), Some(Err(GetError::Unavailable)));
        assert_eq!(decide(&[M, M, U, U, U], false), Some(Err(GetError::Unavailable)));
        assert_eq!(decide(&[v(), v(), U, U, U], false), Some(Err(GetError::Unavailable)));
        assert_eq!(decide(&[M, M, M, U, U], false), Some(Err(GetError::NotFound)));
        assert_eq!(decide(&[b("a"), b("b"), b("c"), U, M], false), Some(Err(GetError::NoAgreement)));
    }
}
