//! Starting, checking and ending gets on the node.

use super::{Answer, GetReq, GetStep, Waiter};
use crate::chord::{ItemKey, Node, Owner};
use crate::core::{Conflict, Event, GetError, ReqId, Time};
use crate::ring::HashMethod;

impl Node {
    /// Starts a `get`; the outcome comes as [`Event::GetDone`] with the returned id.
    pub fn get(&mut self, key: &[u8], timeout_ms: u64, now: Time) -> ReqId {
        self.mesh.set_now(now);
        let req = self.mesh.alloc_req();
        if self.mesh.is_closed() {
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
        self.start_get(req, key, self.mesh.now().saturating_add(self.mesh.config().get_timeout_ms), true);
    }

    fn start_get(&mut self, req: ReqId, key: &[u8], deadline: Time, internal: bool) {
        let items = HashMethod::ALL.map(|m| (m, m.hash(key)));
        let held_back = if internal { [false; 5] } else { self.second_wave(&items) };
        let g = GetReq::new(items, deadline, held_back, internal, self.mesh.now());
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
        for &i in &order[self.mesh.config().get_first_wave.clamp(3, 5)..] {
            held[i] = true;
        }
        held
    }

    /// Asks the tables a get held back.
    pub(crate) fn ask_held_back(&mut self, req: ReqId) {
        if let Some(g) = self.gets.gets.get_mut(&req) {
            g.held_back = [false; 5];
            self.ask_tables(req);
        }
    }

    /// Sends (or answers locally) the lookups of a get's tables that have
    /// no answer yet.
    pub(crate) fn ask_tables(&mut self, req: ReqId) {
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

    /// Acts on what a get's answers call for ([`GetReq::step`]).
    pub(crate) fn check_get(&mut self, req: ReqId) {
        let now = self.mesh.now();
        let Some(g) = self.gets.gets.get(&req) else {
            return;
        };
        if g.recheck_at.is_some() {
            return;
        }
        if g.internal {
            if g.deadline <= now || !g.answers.contains(&Answer::Open) {
                if let Some(g) = self.gets.gets.remove(&req) {
                    self.repair_answered(req, g.items, g.answers);
                }
            }
            return;
        }
        // Out of the map while it steps: the step asks the node about the
        // ring (second opinions).
        let Some(mut g) = self.gets.gets.remove(&req) else {
            return;
        };
        let churn = now < self.chord.fallback_until;
        let (step, notes) = g.step(now, churn, |item| !self.second_opinions(item).is_empty());
        if notes.version_conflict {
            self.mesh.counters_mut().conflict(Conflict::GetVersions);
        }
        if notes.disagreement {
            self.mesh.counters_mut().disagreements += 1;
        }
        match step {
            GetStep::Done(result) => self.mesh.emit(Event::GetDone { req, result }),
            GetStep::Wait | GetStep::RecheckAt(_) => {
                self.gets.gets.insert(req, g);
            }
            GetStep::AskHeldBack => {
                self.gets.gets.insert(req, g);
                self.ask_held_back(req);
            }
            GetStep::AskAgain => {
                self.gets.gets.insert(req, g);
                self.ask_tables(req);
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
