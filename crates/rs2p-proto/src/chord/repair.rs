//! Re-replication after a failure, and the periodic anti-entropy pass.
//!
//! A store carries only (table, hash, value): a lone copy does not tell its
//! holder the key, nor so the key's four other hashes. The key list does.
//! A *scan* walks the key list from a cursor, computes each key's five
//! hashes, and picks the copies this node must restore:
//!
//! - a hash in our own arc (we are its owner) that our table lacks is
//!   *pulled*: its value is read from the other tables and stored here;
//! - with a py2p predecessor (py2p repairs nothing), a hash in its arc is
//!   *pushed*: read, and stored at the predecessor if its answer differs.
//!
//! The value is the one most surviving tables hold (strictly more than any
//! other); a key no longer in the key list, or deleted meanwhile, is never
//! written, so a repair cannot bring a deleted key back (deletes are
//! tombstoned in the key list, and a deleted key leaves it).
//!
//! A scan starts [`Config::repair_delay_ms`] after a seeding peer vanished
//! (the ring has re-linked by then), after a restart from disk, and every
//! [`Config::anti_entropy_ms`] in the background with a tenth of the budget.
//! Each tick examines at most [`Config::repair_keys_per_tick`] keys with at
//! most [`MAX_LOOKUPS`] reads in flight.
//!
//! [`Config::repair_delay_ms`]: crate::core::Config::repair_delay_ms
//! [`Config::anti_entropy_ms`]: crate::core::Config::anti_entropy_ms
//! [`Config::repair_keys_per_tick`]: crate::core::Config::repair_keys_per_tick

use std::collections::HashMap;

use bytes::Bytes;

use super::get::Answer;
use super::{ItemKey, KeyListStatus, Owner};
use crate::chord::Node;
use crate::core::{ConnId, ReqId, Time, Version};
use crate::ring::{distance, HashMethod, U512};

/// Repair reads in flight at once: bounds the burst a repair sends into a
/// ring that has just lost a node (each read is five lookups).
const MAX_LOOKUPS: usize = 256;

/// A scan that met keys it could not settle (owners unreachable, copies
/// disagreeing, or every answer "missing" because the ring was still
/// re-linking) runs again this much later, at most [`MAX_RETRIES`] times.
const RETRY_MS: u64 = 3_000;
/// A due scan waits at most this long for the key list to be complete.
const KEY_LIST_WAIT_MS: u64 = 30_000;
/// Tells the anti-entropy pass's jitter from the replica refresh's.
const PASS_SALT: u64 = 0x7061_7373;
/// Retries of a scan in a row before the anti-entropy pass is left to it.
const MAX_RETRIES: u32 = 5;

/// Repair counters, for logs, `stats` and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RepairStats {
    /// Scans completed (urgent and anti-entropy).
    pub scans: u64,
    /// Keys examined by scans.
    pub keys_scanned: u64,
    /// Keys read because one of their copies needed restoring.
    pub lookups: u64,
    /// Copies restored into our own tables by reading the other tables.
    pub restored: u64,
    /// Replicas moved into our tables when their owner vanished (at a scan's
    /// start; a lookup that finds one promotes it too, uncounted).
    pub promoted: u64,
    /// Copies stored at a py2p predecessor that lacked them.
    pub pushed: u64,
    /// Keys whose copies could not be settled (none left, or disagreeing).
    pub unsettled: u64,
    /// Value bytes restored or pushed.
    pub bytes: u64,
    /// When the last copy was restored or pushed, by the wall clock (ms since
    /// the Unix epoch; 0: never).
    pub last_restored_at: Time,
    /// A scan is due, running, or has reads in flight.
    pub active: bool,
    /// A scan is due (it waits for peers, the key list, or its time).
    pub due: bool,
    /// A scan is running.
    pub scanning: bool,
    /// Repair reads in flight.
    pub in_flight: u64,
}

/// What a scan wants done with one of a key's five copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fix {
    Nothing,
    /// Store it in our table.
    Pull,
    /// Store it at this py2p peer if its answer differs.
    Push(ConnId),
}

/// A read started by a scan.
#[derive(Debug)]
struct Lookup {
    key: Bytes,
    fix: [Fix; 5],
}

/// A pass over the key list.
#[derive(Debug)]
struct Scan {
    /// The last key examined.
    cursor: Option<Box<[u8]>>,
    /// After a failure or a restart: full budget.
    urgent: bool,
}

/// Repair state of a node.
#[derive(Debug, Default)]
pub(crate) struct RepairState {
    /// An urgent scan is to start at this time.
    due: Option<Time>,
    scan: Option<Scan>,
    lookups: HashMap<ReqId, Lookup>,
    /// When the next anti-entropy pass starts (0: not scheduled yet).
    next_pass: Time,
    /// Keys of the running scan that could not be settled.
    unsettled_in_scan: bool,
    /// Retries made in a row.
    retries: u32,
    /// The py2p predecessor whose arc a scan last covered after a failure.
    pushed_to: Option<crate::core::PeerId>,
    /// The ring version (`Node::ring_version`) our predecessor was last
    /// checked at, in the window after a seeding peer vanished.
    pred_checked: Option<u64>,
    stats: RepairStats,
}

impl Node {
    /// Schedules an urgent scan `delay_ms` from now (a later request moves
    /// it later: the ring is still changing).
    pub(crate) fn request_repair(&mut self, delay_ms: u64) {
        let at = self.mesh.now().saturating_add(delay_ms);
        let r = &mut self.chord.repair;
        r.due = Some(r.due.map_or(at, |t| t.max(at)));
        r.retries = 0;
    }

    /// Repair counters.
    pub fn repair_stats(&self) -> RepairStats {
        let r = &self.chord.repair;
        RepairStats {
            active: r.due.is_some() || r.scan.is_some() || !r.lookups.is_empty(),
            due: r.due.is_some(),
            scanning: r.scan.is_some(),
            in_flight: r.lookups.len() as u64,
            ..r.stats
        }
    }

    /// When repair next has timer work: a due scan, the next anti-entropy
    /// pass, or (`paced`) the next step of a running scan, and each tick of
    /// the window after a seeding peer vanished.
    pub(crate) fn repair_due(&self, paced: Time) -> Option<Time> {
        if self.chord.leeching || self.mesh.config().kind != crate::core::Kind::Chord {
            return None;
        }
        let now = self.mesh.now();
        let r = &self.chord.repair;
        if r.next_pass == 0 {
            return Some(now);
        }
        // The predecessor can only have changed if the ring version moved.
        let recheck =
            self.chord.lost_seeder && now < self.chord.fallback_until && r.pred_checked != Some(self.ring_version());
        // With nobody to read from, a due scan waits for a seeding peer to
        // link (an event, after which this is asked again).
        let can_start = self.has_seeding_peer();
        let start = [r.due, Some(r.next_pass)].into_iter().flatten().min().filter(|_| can_start);
        [start, (r.scan.is_some() || self.promoting()).then_some(paced), recheck.then_some(now)]
            .into_iter()
            .flatten()
            .min()
    }

    /// Starts due scans and advances the running one (a step when `step`:
    /// one per pace of [`super::node::PACE_MS`]); called every tick.
    pub(crate) fn repair_tick(&mut self, step: bool) {
        if self.chord.leeching || self.mesh.config().kind != crate::core::Kind::Chord {
            return;
        }
        let now = self.mesh.now();
        if self.chord.repair.next_pass == 0 {
            self.chord.repair.next_pass = now.saturating_add(self.pass_period(PASS_SALT));
        }
        // After a failure our predecessor may turn out to be a py2p node only
        // once the ring has re-linked (the scan that followed the failure saw
        // another): its arc, which may now hold the lost one, is checked then
        // (the predecessor can only have changed if the ring version moved).
        if self.chord.lost_seeder
            && now < self.chord.fallback_until
            && self.chord.repair.pred_checked != Some(self.ring_version())
        {
            self.chord.repair.pred_checked = Some(self.ring_version());
            if let Owner::Remote(c) = self.predecessor() {
                let pid = self.peer_of(c).cloned();
                if !self.is_rs2p(c) && pid.is_some() && pid != self.chord.repair.pushed_to {
                    self.chord.repair.pushed_to = pid;
                    self.request_repair(self.mesh.config().repair_delay_ms);
                }
            }
        }
        let r = &mut self.chord.repair;
        let urgent = r.due.is_some_and(|t| t <= now);
        let background = r.scan.is_none() && now >= r.next_pass;
        if urgent || background {
            // Nobody to read from, or our key list is still arriving: wait
            // (for the list, a bounded time: a stream cut by more failures
            // must not hold the repair back; anti-entropy covers the rest).
            let waited = r.due.map_or(0, |t| now.saturating_sub(t));
            if !self.has_seeding_peer()
                || (self.key_list_status() == KeyListStatus::Arriving && waited < KEY_LIST_WAIT_MS)
            {
                return;
            }
            let next_pass = now.saturating_add(self.pass_period(PASS_SALT));
            let r = &mut self.chord.repair;
            if urgent {
                r.due = None;
            }
            r.next_pass = next_pass;
            // A new urgent scan restarts from the first key: the ring changed.
            let urgent = urgent || r.scan.as_ref().is_some_and(|s| s.urgent);
            r.scan = Some(Scan { cursor: None, urgent });
            r.unsettled_in_scan = false;
            // Replicas of what we now own are copies at hand: first (the
            // scan waits for the walk, which takes its first step now).
            self.start_promotion();
            self.promote_some();
            tracing::debug!(node = %self.mesh.id().short(), urgent, "repair scan started");
        } else if step && self.promoting() {
            self.promote_some();
        }
        if step && !self.promoting() {
            self.repair_step();
        }
    }

    /// A step of the promotion walk; counts what it promoted once it ends.
    fn promote_some(&mut self) {
        if let Some(promoted) = self.promotion_step() {
            let wall = self.wall_now();
            let r = &mut self.chord.repair;
            r.stats.promoted += promoted;
            if promoted > 0 {
                r.stats.last_restored_at = wall;
            }
        }
    }

    /// Examines the next keys of the running scan.
    fn repair_step(&mut self) {
        let Some(scan) = self.chord.repair.scan.as_mut() else {
            return;
        };
        let budget = if scan.urgent {
            self.mesh.config().repair_keys_per_tick
        } else {
            (self.mesh.config().repair_keys_per_tick / 10).max(1)
        };
        let start = scan.cursor.take();
        let mut cursor: Option<Box<[u8]>> = None;
        let me = *self.mesh.id().value();
        // Our arc runs from us to our successor; the predecessor's, to us.
        let succ = match self.successor() {
            Owner::Remote(c) => self.peer_of(c).map(|p| *p.value()),
            _ => None,
        };
        let own_len = succ.map(|s| distance(&me, &s));
        let push_to = match self.predecessor() {
            Owner::Remote(c) if !self.is_rs2p(c) => self.peer_of(c).map(|p| (*p.value(), c)),
            _ => None,
        };
        let in_own = |h: &U512| own_len.is_none_or(|len| distance(&me, h) < len);
        let in_pred = |h: &U512| push_to.and_then(|(p, c)| (distance(&p, h) < distance(&p, &me)).then_some(c));

        let room = MAX_LOOKUPS.saturating_sub(self.chord.repair.lookups.len());
        let mut work: Vec<(Bytes, [Fix; 5])> = Vec::new();
        let mut examined = 0usize;
        let mut finished = true;
        for key in self.chord.keys.after(start.as_deref()) {
            if examined == budget || work.len() == room {
                finished = false;
                break;
            }
            examined += 1;
            let mut fix = [Fix::Nothing; 5];
            for (i, m) in HashMethod::ALL.into_iter().enumerate() {
                let h = m.hash(key);
                if in_own(&h) {
                    if !self.chord.data.contains(m, &h) {
                        fix[i] = Fix::Pull;
                    }
                } else if let Some(c) = in_pred(&h) {
                    fix[i] = Fix::Push(c);
                }
            }
            if fix.iter().any(|f| *f != Fix::Nothing) {
                work.push((Bytes::copy_from_slice(key), fix));
            }
            cursor = Some(Box::from(key));
        }
        self.chord.repair.stats.keys_scanned += examined as u64;
        for (key, fix) in work {
            // Registered before the read starts: it may end at once.
            let req = self.mesh.alloc_req();
            self.chord.repair.stats.lookups += 1;
            self.chord.repair.lookups.insert(req, Lookup { key: key.clone(), fix });
            self.internal_get(req, &key);
        }
        let r = &mut self.chord.repair;
        if !finished {
            if let Some(scan) = r.scan.as_mut() {
                scan.cursor = cursor.or(start);
            }
            return;
        }
        r.scan = None;
        r.stats.scans += 1;
        if r.unsettled_in_scan && r.retries < MAX_RETRIES && r.due.is_none() {
            r.retries += 1;
            r.due = Some(self.mesh.now().saturating_add(RETRY_MS));
        }
        tracing::debug!(node = %self.mesh.id().short(), stats = ?r.stats, "repair scan done");
    }

    /// A repair read finished: restore or push the copies it was for.
    pub(crate) fn repair_answered(&mut self, req: ReqId, items: [ItemKey; 5], answers: [Answer; 5]) {
        let Some(lookup) = self.chord.repair.lookups.remove(&req) else {
            return;
        };
        // Deleted (or forgotten) while we read: nothing may be written back.
        if !self.chord.keys.contains(&lookup.key) || self.chord.keys.is_deleted(&lookup.key) {
            return;
        }
        let Some((value, version)) = strict_plurality(&answers) else {
            self.chord.repair.stats.unsettled += 1;
            self.chord.repair.unsettled_in_scan = true;
            return;
        };
        let wall = self.wall_now();
        for (i, fix) in lookup.fix.into_iter().enumerate() {
            let item = items[i];
            let done = match fix {
                Fix::Nothing => false,
                Fix::Pull => {
                    if self.find(&item.1) == Owner::Local && !self.chord.data.contains(item.0, &item.1) {
                        self.store_versioned(item, value.clone(), version);
                        self.chord.data.contains(item.0, &item.1)
                    } else {
                        false
                    }
                }
                Fix::Push(conn) => {
                    let held = matches!(&answers[i], Answer::Value(v, ver) if *v == value && *ver >= version);
                    if !held && self.find(&item.1) == Owner::Remote(conn) {
                        self.send_store(conn, item, value.clone(), version);
                        self.chord.repair.stats.pushed += 1;
                        true
                    } else {
                        false
                    }
                }
            };
            if done {
                let s = &mut self.chord.repair.stats;
                if fix == Fix::Pull {
                    s.restored += 1;
                }
                s.bytes += value.len() as u64;
                s.last_restored_at = wall;
            }
        }
    }
}

/// What a repair writes back: with versions, the answer of the highest
/// version if it is a value (a newer delete: nothing); without, the value
/// more tables hold than any other, if there is one.
fn strict_plurality(answers: &[Answer; 5]) -> Option<(Bytes, Version)> {
    let top = answers.iter().filter_map(Answer::version).max().unwrap_or_default();
    if !top.is_zero() {
        return match answers.iter().find(|a| a.version() == Some(top)) {
            Some(Answer::Value(v, ver)) => Some((v.clone(), *ver)),
            _ => None,
        };
    }
    let mut counts: Vec<(&Bytes, usize)> = Vec::new();
    for a in answers {
        if let Answer::Value(v, _) = a {
            match counts.iter_mut().find(|(c, _)| *c == v) {
                Some((_, n)) => *n += 1,
                None => counts.push((v, 1)),
            }
        }
    }
    counts.sort_by_key(|c| std::cmp::Reverse(c.1));
    match counts.as_slice() {
        [] => None,
        [(v, _)] => Some(((*v).clone(), Version::ZERO)),
        [(v, n), (_, m), ..] => (n > m).then(|| ((*v).clone(), Version::ZERO)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plurality_must_be_strict() {
        let v = |s: &'static str| Answer::Value(Bytes::from_static(s.as_bytes()), Version::ZERO);
        let m = Answer::Missing(Version::ZERO);
        assert_eq!(strict_plurality(&[v("a"), m.clone(), m.clone(), m.clone(), m.clone()]).unwrap().0, "a");
        assert_eq!(strict_plurality(&[v("a"), v("b"), v("a"), m.clone(), Answer::Open]).unwrap().0, "a");
        // With versions the newest wins, and a newer delete restores nothing.
        let new = Answer::Value(Bytes::from_static(b"new"), Version { hlc: 9, writer: 1 });
        assert_eq!(strict_plurality(&[v("a"), v("a"), v("a"), new, Answer::Open]).unwrap().0, "new");
        let del = Answer::Missing(Version { hlc: 10, writer: 1 });
        let old = Answer::Value(Bytes::from_static(b"old"), Version { hlc: 9, writer: 1 });
        assert_eq!(strict_plurality(&[old, del, m.clone(), m.clone(), m.clone()]), None);
        assert_eq!(strict_plurality(&[v("a"), v("b"), m.clone(), m.clone(), m.clone()]), None);
        assert_eq!(strict_plurality(&[m.clone(), m.clone(), m.clone(), m.clone(), m]), None);
    }
}
