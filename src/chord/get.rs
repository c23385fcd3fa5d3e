//! `get`: five lookups, answers matched per request, majority of 3 of 5.
//!
//! Pending retrieves are keyed by (table, key) like py2p's, but each entry keeps
//! a list of waiters, so concurrent gets of one key and forwarded retrieves
//! from several askers all get their answer (py2p's D11 loses all but one).

use std::collections::HashMap;

use bytes::Bytes;

use super::{ItemKey, Owner};
use crate::core::{ConnId, Event, GetError, Node, ReqId, Time};
use crate::ring::HashMethod;
use crate::wire::{base58, flags};

/// A retrieve answer is awaited for longer than this before the retrieve is sent again.
const RESEND_AFTER_MS: u64 = 2_000;

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

#[derive(Debug)]
pub(crate) struct GetReq {
    /// `None` while a table has not answered; an empty value means "missing".
    pub answers: [Option<Bytes>; 5],
    pub deadline: Time,
}

/// In-flight lookups.
#[derive(Debug, Default)]
pub struct GetState {
    pub(crate) pending: HashMap<ItemKey, Pending>,
    pub(crate) gets: HashMap<ReqId, GetReq>,
}

impl GetState {
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
/// `None` while the outcome is still open.
fn decide(answers: &[Option<Bytes>; 5]) -> Option<Result<Bytes, GetError>> {
    let mut counts: Vec<(&Bytes, usize)> = Vec::new();
    let mut open = 0;
    for a in answers {
        match a {
            None => open += 1,
            Some(v) if v.is_empty() => {}
            Some(v) => match counts.iter_mut().find(|(c, _)| *c == v) {
                Some((_, n)) => *n += 1,
                None => counts.push((v, 1)),
            },
        }
    }
    let best = counts.iter().map(|(_, n)| *n).max().unwrap_or(0);
    if let Some((v, _)) = counts.iter().find(|(_, n)| *n >= 3) {
        return Some(Ok((*v).clone()));
    }
    if best + open >= 3 {
        return None;
    }
    Some(Err(if counts.is_empty() { GetError::NotFound } else { GetError::NoAgreement }))
}

impl Node {
    /// Starts a `get`; the outcome comes as [`Event::GetDone`] with the returned id.
    pub fn get(&mut self, key: &[u8], timeout_ms: u64, now: Time) -> ReqId {
        self.set_now(now);
        let req = self.alloc_req();
        if self.closed {
            self.emit(Event::GetDone { req, result: Err(GetError::Closed) });
            return req;
        }
        self.gets.gets.insert(req, GetReq { answers: Default::default(), deadline: now.saturating_add(timeout_ms) });
        for method in HashMethod::ALL {
            self.route_retrieve((method, method.hash(key)), Waiter::Local(req), None);
        }
        self.check_get(req);
        req
    }

    /// Abandons a get (its waiters are dropped when answers arrive).
    pub fn cancel_get(&mut self, req: ReqId) {
        self.gets.gets.remove(&req);
    }

    /// Looks an item up for a waiter: answers from the local table when we own
    /// it (or nobody better does, or the owner is the asker), else forwards.
    pub(crate) fn route_retrieve(&mut self, item: ItemKey, waiter: Waiter, from: Option<ConnId>) {
        let owner = match self.find(&item.1) {
            Owner::Remote(c) if Some(c) == from => Owner::Local,
            o => o,
        };
        match owner {
            Owner::Local | Owner::Nobody => {
                let value = self.chord.data.get(item.0, &item.1).cloned().unwrap_or_default();
                self.deliver(item, waiter, value);
            }
            Owner::Remote(conn) => {
                let now = self.now;
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
                    if self.gets.pending.len() >= self.cfg.max_pending {
                        self.record_error(None, "too many retrieves pending: lookup dropped".to_owned());
                        if let Waiter::Local(_) = waiter {
                            self.deliver(item, waiter, Bytes::new());
                        }
                        return;
                    }
                    self.gets
                        .pending
                        .insert(item, Pending { to: conn, sent_at: now, created: now, waiters: vec![waiter] });
                }
                self.send_retrieve(conn, item);
            }
        }
    }

    pub(crate) fn send_retrieve(&mut self, conn: ConnId, item: ItemKey) {
        let payload = vec![
            Bytes::from_static(&[flags::RETRIEVE]),
            Bytes::from_static(item.0.name().as_bytes()),
            Bytes::from(base58::encode(&item.1)),
        ];
        self.send_on(conn, flags::WHISPER, payload);
    }

    /// Hands an answer to one waiter.
    pub(crate) fn deliver(&mut self, item: ItemKey, waiter: Waiter, value: Bytes) {
        match waiter {
            Waiter::Local(req) => {
                if let Some(g) = self.gets.gets.get_mut(&req) {
                    g.answers[item.0.index()] = Some(value);
                    self.check_get(req);
                }
            }
            Waiter::Remote(conn) => {
                let payload = vec![
                    Bytes::from_static(&[flags::RETRIEVED]),
                    Bytes::from_static(item.0.name().as_bytes()),
                    Bytes::from(base58::encode(&item.1)),
                    value,
                ];
                self.send_on(conn, flags::WHISPER, payload);
            }
            Waiter::Handoff => self.handoff_answer(item, value),
            Waiter::DeleteIfHeld(conn) => {
                if !value.is_empty() {
                    self.send_store(conn, item, Bytes::new());
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
    pub(crate) fn answer_pending(&mut self, item: ItemKey, value: Bytes) -> bool {
        let Some(p) = self.gets.pending.remove(&item) else {
            return false;
        };
        for w in p.waiters {
            self.deliver(item, w, value.clone());
        }
        true
    }

    fn check_get(&mut self, req: ReqId) {
        let Some(g) = self.gets.gets.get(&req) else {
            return;
        };
        if let Some(result) = decide(&g.answers) {
            self.gets.gets.remove(&req);
            self.emit(Event::GetDone { req, result });
        }
    }

    /// Retries and expiry of lookups; called from the node's tick.
    pub(crate) fn get_tick(&mut self) {
        let now = self.now;
        let expired: Vec<ReqId> = self.gets.gets.iter().filter(|(_, g)| g.deadline <= now).map(|(r, _)| *r).collect();
        for req in expired {
            self.gets.gets.remove(&req);
            self.emit(Event::GetDone { req, result: Err(GetError::Timeout) });
        }
        let limit = self.cfg.get_timeout_ms.max(1_000);
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
            self.emit(Event::GetDone { req, result: Err(GetError::Closed) });
        }
        self.gets.pending.clear();
    }
}

/// Parses a (METHOD, KEY_B58) pair from packets.
pub(crate) fn parse_item(method: &[u8], key: &[u8]) -> Option<ItemKey> {
    Some((HashMethod::from_name(method)?, base58::decode(key).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Option<Bytes> {
        Some(Bytes::copy_from_slice(s.as_bytes()))
    }

    #[test]
    fn majority_rules() {
        assert_eq!(decide(&[b("v"), b("v"), b("v"), None, None]), Some(Ok(Bytes::from_static(b"v"))));
        assert_eq!(decide(&[b("v"), b("v"), None, None, None]), None);
        assert_eq!(decide(&[b(""), b(""), b(""), None, None]), Some(Err(GetError::NotFound)));
        assert_eq!(decide(&[b("a"), b("b"), b(""), b(""), None]), Some(Err(GetError::NoAgreement)));
        assert_eq!(decide(&[b("a"), b("a"), b("b"), b("b"), b("")]), Some(Err(GetError::NoAgreement)));
    }
}
