//! A get's timers: resends of unanswered retrieves, the hedge that asks
//! held-back tables, rechecks and deadlines; and lookups a lost connection
//! leaves behind.

use super::{Waiter, HEDGE_MS, RESEND_AFTER_MS};
use crate::chord::{ItemKey, Node};
use crate::core::{ConnId, Event, GetError, ReqId, Time};

impl Node {
    /// Retries and expiry of lookups; called from the node's tick.
    pub(crate) fn get_tick(&mut self) {
        let now = self.mesh.now();
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
        let limit = self.mesh.config().get_timeout_ms.max(1_000);
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
                // A distant link (a finger) that left a retrieve unanswered
                // this long is suspect: pinged now, and closed within 2 s
                // unless it answers (`mesh/liveness.rs`), which routes the
                // lookup around it.
                self.mesh.suspect(p.to);
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

    /// When the gets next have timer work: a hedge, a recheck, a deadline,
    /// a resend, or a lookup to forget (see [`Node::get_tick`]).
    pub(crate) fn get_due(&self) -> Option<Time> {
        let limit = self.mesh.config().get_timeout_ms.max(1_000);
        let gets = self.gets.gets.values().flat_map(|g| {
            let hedge = g.held_back.contains(&true).then(|| g.started.saturating_add(HEDGE_MS));
            [Some(g.deadline), g.recheck_at, hedge]
        });
        let pending = self.gets.pending.values().flat_map(|p| {
            [Some(p.sent_at.saturating_add(RESEND_AFTER_MS)), Some(p.created.saturating_add(limit).saturating_add(1))]
        });
        gets.chain(pending).flatten().min()
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
}
