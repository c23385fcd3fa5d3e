//! `get`: five lookups, answers matched per request, majority of 3 of 5.
//!
//! Pending retrieves are keyed by (table, key) like py2p's, but each entry keeps
//! a list of waiters, so concurrent gets of one key and forwarded retrieves
//! from several askers all get their answer (py2p's D11 loses all but one).
//!
//! * `answer.rs`: one table's answer, and the rule that decides a get from
//!   the five (pure functions).
//! * `request.rs`: one get as a state machine ([`GetReq::step`]): what its
//!   answers call for (wait, ask the held-back tables, ask again, done),
//!   unit-tested without a node.
//! * `lifecycle.rs`: starting, checking and ending gets on the node.
//! * `route.rs`: routing a retrieve to the owner of an item, and answers
//!   coming back to their waiters.
//! * `tick.rs`: resends, hedges, rechecks and deadlines; lost connections.

mod answer;
mod lifecycle;
mod request;
mod route;
mod tick;

use super::ItemKey;
use crate::core::{ConnId, Map, ReqId, SeededState, Time};

pub(crate) use answer::Answer;
pub(crate) use request::{GetReq, GetStep};
pub(crate) use route::parse_item;

/// A retrieve answer is awaited for longer than this before the retrieve is sent again.
pub(crate) const RESEND_AFTER_MS: u64 = 2_000;

/// One pending entry in this many (of `Config::max_pending`) is reserved
/// for lookups this node makes itself: retrieves forwarded for peers may
/// fill the rest, so a peer flooding retrieves toward a silent owner cannot
/// make our own gets fail.
pub(crate) const LOCAL_RESERVE_DIV: usize = 4;

/// A get whose tables disagree (some hold a value, others none or another)
/// asks the tables that differ from the most common value again after this
/// long, doubling each time, until its
/// deadline: an item on its way to a new owner (a handoff, a join) reads as
/// missing there for a moment, and that must not become a wrong answer.
pub(crate) const RECHECK_MS: u64 = 200;

/// Rechecks of a "not found" in the [`super::FALLBACK_MS`] window after we
/// joined or lost a seeding peer (200 + 400 ms: a missing key costs 0.6 s
/// more then, and an item still in transit to its new owner is caught).
pub(crate) const CHURN_RECHECKS: u32 = 2;

/// A get first asks `Config::get_first_wave` (3) of its five tables (those
/// cheapest to reach: its own, then the peers owning most of them): three
/// agreeing answers decide it, so asking all five costs two more retrieves
/// and answers each time for nothing. The rest are asked as soon as the
/// first answers do not decide (a disagreement, a "missing", an unreachable
/// owner), or when the first answers have not all come after this long (a slow
/// or silently dead owner; checked each tick, so up to a tick later).
pub(crate) const HEDGE_MS: u64 = 50;

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

/// A retrieve sent and not answered yet.
#[derive(Debug)]
pub(crate) struct Pending {
    /// The connection it was sent on.
    pub to: ConnId,
    /// When it was (last) sent: resent after [`RESEND_AFTER_MS`].
    pub sent_at: Time,
    /// When it was first asked (forwarded ones expire).
    pub created: Time,
    /// Who waits for the answer (several gets and askers share one retrieve).
    pub waiters: Vec<Waiter>,
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
