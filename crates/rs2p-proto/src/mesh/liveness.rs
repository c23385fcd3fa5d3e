//! Failure detection: keepalives to quiet peers, and a deadline after which
//! a silent peer is declared gone.
//!
//! A crashed process's sockets are reset by its kernel, and the driver sees
//! the link close at once. A host that is unplugged, frozen or cut off by a
//! firewall closes nothing: its links only fall silent. So a node runs a
//! keepalive round every [`Config::keepalive_ms`] (shortened by up to an
//! eighth, drawn per round, so that nodes started together drift apart):
//! each handshaken peer that has sent nothing (any frame counts) for its
//! link's keepalive period is asked for its peer list (py2p's request `*`,
//! which py2p and rs2p both answer; an rs2p peer gets the rs2p `ping`
//! instead: a peer list costs kilobytes in a ring with fingers). A peer
//! silent for its link's limit (timed exactly, not by rounds) is closed as
//! dead, which starts the same recovery as a reset link (for a seeding
//! peer: repair). One round wakes the node for all its links, and a link
//! with traffic costs no keepalive at all.
//!
//! **Two kinds of link.** Most links have the short timers,
//! [`Config::keepalive_ms`] and [`Config::peer_timeout_ms`] (2 s, 6 s). A
//! link the protocol above marks *distant* ([`Mesh::mark_distant`]; chord
//! marks its rs2p fingers that are no ring neighbour of its own) has the
//! long ones, [`Config::finger_keepalive_ms`] and
//! [`Config::finger_timeout_ms`] (8 s, 24 s), if its peer's handshake
//! carried [`PER_LINK_KEEPALIVE_MARKER`] (else it keeps the short ones:
//! py2p, and earlier rs2p builds, some of which rely on any keeper). Rounds
//! stay [`Config::keepalive_ms`] apart: a distant link is simply pinged at
//! the first round after it has been quiet 8 s, so it adds no wake-up.
//! Detection, the time from a peer's last frame to the close:
//!
//! * a short link (ring neighbours, py2p peers, leeching peers, anything
//!   not marked): 6 s, pinged 2 to 4 s into a silence, as before;
//! * a distant link: 24 s, pinged 8 to 10 s into a silence; but a
//!   distant link the protocol above has reason to doubt
//!   ([`Mesh::suspect`]: chord's retrieve or finger lookup over it went
//!   unanswered for 2 s, or a store, which is never answered, went out on
//!   it after 2 s of quiet: [`Mesh::doubt_if_quiet`]) is pinged at once and gets the short limit until
//!   its peer sends anything, with at least a keepalive period (2 s) left to
//!   answer: closed at the later of 6 s after its last frame and 2 s after
//!   the suspicion. The same holds for a link that stops being distant (a
//!   finger that became a ring neighbour), and for every distant link when
//!   a short link is closed as silent (silence, rather than a reset, is
//!   what a network cut or our own lost cable looks like: a partitioned
//!   node drops its fingers 2 s after its first ring neighbour, not 24 s).
//!
//! Between rs2p peers one end keeps the link alive for both: the end that
//! dialed pings when the link has been quiet for its period *in either
//! direction* (nothing received, or nothing sent), and marks its pings
//! ([`KEEPER`]) with that period, the one it uses *for that link*. So the
//! other end hears a frame at least every two periods (4 s for a short
//! link, well within 6 s), and once it has seen a marked ping whose period
//! suits its own limit *for that link* ([`keeper_suffices`], judged at each
//! round: the kind of a link may differ at its two ends and change) it
//! stops pinging (but for a backstop at [`BACKSTOP_NUM`] quarters of its
//! period short of its limit, never reached while the keeper keeps its
//! pace). A keeper's 8 s period suits a distant limit of 24 s (16 + 2 ≤
//! 24) but not a short one (16 + 0.5 > 6): an end that holds the link as
//! short (a ring neighbour) pings it itself every 2 to 4 s, so detection at
//! that end is unchanged. A link quiet but alive costs one keepalive and its
//! answer about every two rounds (4 s) if short, every 8 to 10 s if
//! distant at the keeping end, none while frames flow both ways; a py2p
//! link (probed with `*`) or an rs2p peer without the mark is pinged by
//! both ends.
//!
//! [`Config::keepalive_ms`]: crate::core::Config::keepalive_ms
//! [`Config::peer_timeout_ms`]: crate::core::Config::peer_timeout_ms
//! [`Config::finger_keepalive_ms`]: crate::core::Config::finger_keepalive_ms
//! [`Config::finger_timeout_ms`]: crate::core::Config::finger_timeout_ms
//! [`PER_LINK_KEEPALIVE_MARKER`]: super::PER_LINK_KEEPALIVE_MARKER

use bytes::Bytes;

use super::{Conn, Mesh, PeerExt};
use crate::core::{mix64, ConnId, PeerId, Time};
use crate::wire::flags;

const PING: &[u8] = b"ping";
const PONG: &[u8] = b"pong";

/// The packet after `ping` from the end that keeps an rs2p link alive for
/// both ends (older rs2p nodes ignore it and answer `pong` as before). The
/// keeper's keepalive period for that link (ms) follows it: the other end
/// relies on the keeper only if that period fits within its own silence
/// limit for the link.
pub(crate) const KEEPER: &[u8] = b"k";

/// A peer that keeps the link alive is pinged only once the link has been
/// quiet this many quarters of a keepalive period short of the limit (4.5
/// s of 6 for a short link, 18 s of 24 for a distant one): a backstop,
/// should its pings be late.
const BACKSTOP_NUM: u64 = 3;

/// A round's period is the keepalive period less up to this fraction of it
/// (drawn per round from the node's seed).
const JITTER_DIV: u64 = 8;

/// The liveness timers of a link: (keepalive period, silence limit), the
/// long ones for a distant link (never shorter than the short ones).
fn periods(cfg: &crate::core::Config, distant: bool) -> (u64, u64) {
    let (ka, limit) = (cfg.keepalive_ms, cfg.peer_timeout_ms.max(cfg.keepalive_ms));
    if !distant {
        return (ka, limit);
    }
    let far = cfg.finger_keepalive_ms.max(ka);
    (far, cfg.finger_timeout_ms.max(limit).max(far))
}

/// When a link with timers `(ka, limit)` is pinged, at rounds `round` ms
/// apart: (quiet this long, or as a backstop when its peer keeps it alive).
/// A link first quiet just after a round is pinged a round later: with a
/// limit under a period and a round, ping sooner, so that the answer has
/// time to come before the limit (but not every millisecond: a limit under
/// 1.25 rounds pings after a quarter round).
fn thresholds((ka, limit): (u64, u64), round: u64) -> (u64, u64) {
    let threshold = ka.min(limit.saturating_sub(round + round / 4)).max(round / 4).max(1);
    (threshold, limit.saturating_sub(ka * BACKSTOP_NUM / 4).max(threshold))
}

/// True if a keeper pinging with keepalive period `period` (ms) is heard
/// often enough for our own timers for the link, `(ka, limit)`: it pings a
/// link quiet for one period, at rounds at most a period apart, so we hear
/// from it at least every two periods, and that must leave our backstop's
/// margin (a quarter of our period) before our limit. With the defaults,
/// 4 s against 6 s less 0.5 (short), 16 s against 24 s less 2 (distant).
/// A keeper with a longer period (its own config, or a distant link at its
/// end that is short at ours) is not relied on: we go on pinging the link
/// ourselves, as with a py2p peer.
fn keeper_suffices((ka, limit): (u64, u64), period: u64) -> bool {
    period.saturating_mul(2).saturating_add(ka / 4) <= limit
}

impl<X: PeerExt> Conn<X> {
    /// The link has the distant timers now: marked distant by the protocol
    /// above, its peer judges keeper periods per link, and it is not
    /// suspect (nothing heard from it since it was made so).
    pub fn is_distant(&self) -> bool {
        self.distant && self.per_link_keepalive && self.suspect_at.is_none_or(|t| self.alive_at >= t)
    }
}

impl<X: PeerExt> Mesh<X> {
    /// The liveness deadline when the earliest silence deadline of a
    /// handshaken link is `silent_at`.
    pub(crate) fn liveness_deadline(&self, silent_at: Time) -> Time {
        silent_at.min(self.next_round)
    }

    /// The silence deadline of a link handshaken now (it has the short
    /// timers until the protocol above marks it distant).
    pub(crate) fn fresh_link_deadline(&self) -> Time {
        self.liveness_deadline(self.now.saturating_add(periods(&self.cfg, false).1))
    }

    /// Runs a keepalive round if one is due; returns the connections silent
    /// past their limit, with how long (ms), for [`Mesh::close_silent`] (the
    /// protocol above looks at them first: a lost ring neighbour is probed
    /// again).
    /// Nothing is due before [`Mesh::live_timer`] (it is lowered whenever a
    /// link's limit shortens or a link opens, and holds the next round):
    /// a tick for other work leaves the links alone, not a pass over them.
    pub(crate) fn liveness_scan(&mut self) -> Vec<(ConnId, u64)> {
        let now = self.now;
        let keepalive = self.cfg.keepalive_ms;
        self.liveness_skipped = self.live_timer.is_some_and(|t| now < t) && now < self.next_round;
        if self.liveness_skipped {
            self.last_tick = now;
            return Vec::new();
        }
        // If we were woken much later than our earliest liveness deadline
        // (the process was stopped, the machine overloaded, or a
        // simulation jumped its clock), silence is ours, not the peers':
        // give every link a fresh keepalive period.
        let starved = now.saturating_sub(self.liveness_at.unwrap_or(self.last_tick)) > keepalive;
        self.last_tick = now;
        let round = now >= self.next_round;
        if round {
            self.rounds += 1;
            let jitter = mix64(self.cfg.seed ^ mix64(self.rounds)) % (keepalive / JITTER_DIV + 1);
            self.next_round = now.saturating_add(keepalive - jitter);
        }
        let mut silent: Vec<(ConnId, u64)> = Vec::new();
        let mut ping: Vec<(ConnId, bool, u64)> = Vec::new();
        let timers = [periods(&self.cfg, false), periods(&self.cfg, true)];
        let marks = [thresholds(timers[0], keepalive), thresholds(timers[1], keepalive)];
        let mut deadline: Option<Time> = None;
        for c in self.conns.values_mut().filter(|c| c.handshaken) {
            let kind = usize::from(c.is_distant());
            let limit = timers[kind].1;
            let (threshold, backstop) = marks[kind];
            if starved {
                // A suspect link stays suspect: the fresh period is ours,
                // not a frame from its peer (which alone ends a suspicion).
                let suspect = c.suspect_at.is_some_and(|t| c.alive_at < t);
                c.alive_at = c.alive_at.max(now.saturating_sub(keepalive));
                if suspect {
                    c.suspect_at = c.suspect_at.map(|t| t.max(c.alive_at.saturating_add(1)));
                }
                let t = c.alive_at.saturating_add(limit);
                deadline = Some(deadline.map_or(t, |d| d.min(t)));
                continue;
            }
            let quiet = now.saturating_sub(c.alive_at);
            if quiet >= limit {
                silent.push((c.id, quiet));
                continue;
            }
            let t = c.alive_at.saturating_add(limit);
            deadline = Some(deadline.map_or(t, |d| d.min(t)));
            if !round || now.saturating_sub(c.last_ping) < threshold {
                continue;
            }
            // The dialing end of an rs2p link keeps it alive for both.
            let keeper = c.rs2p && c.outgoing;
            let relied = !c.outgoing && c.keeper_period.is_some_and(|p| keeper_suffices(timers[kind], p));
            let due = if relied {
                quiet >= backstop
            } else if keeper {
                quiet >= threshold || now.saturating_sub(c.last_tx) >= threshold
            } else {
                quiet >= threshold
            };
            if due {
                c.last_ping = now;
                // A keeper's ping says the period it keeps the link at
                // when not suspect: a suspicion is over as soon as the
                // peer answers, and the peer must not rely on pings that
                // often afterwards.
                ping.push((c.id, keeper, timers[usize::from(c.distant && c.per_link_keepalive)].0));
            }
        }
        self.scan_deadline = deadline;
        for (conn, keeper, period) in ping {
            self.send_keepalive(conn, keeper, period);
        }
        silent
    }

    /// Sends the keepalive of `conn`: a keeper's marked ping with its
    /// `period` for the link, a plain ping to another rs2p peer, `*` to py2p.
    fn send_keepalive(&mut self, conn: ConnId, keeper: bool, period: u64) {
        let probe = if keeper {
            vec![
                Bytes::from_static(&[flags::RS2P_PING]),
                Bytes::from_static(PING),
                Bytes::from_static(KEEPER),
                Bytes::from(period.to_string()),
            ]
        } else if self.is_rs2p(conn) {
            vec![Bytes::from_static(&[flags::RS2P_PING]), Bytes::from_static(PING)]
        } else {
            vec![Bytes::from_static(&[flags::REQUEST]), Bytes::from_static(b"*")]
        };
        self.send_on(conn, flags::WHISPER, probe);
    }

    /// Remembers the earliest liveness deadline after a scan and the
    /// closes it led to (see the starvation check of [`Mesh::liveness_scan`]).
    /// The links closed since were the silent ones the scan left out, so
    /// no second pass over the links is needed.
    pub(crate) fn liveness_scanned(&mut self) {
        if self.liveness_skipped {
            return;
        }
        self.liveness_at = self.scan_deadline.map(|t| self.liveness_deadline(t));
        self.live_timer = self.liveness_at;
    }

    /// The protocol above marks which handshaken, routed links are
    /// distant (`distant(peer, conn)`): see the module doc. One pass; a
    /// link that stops being distant gets the short limit at once, with a
    /// keepalive period left to answer, and is pinged now if it has been
    /// quiet that long; a link we keep alive that becomes distant is
    /// pinged now with its new period (the other end must hear it before
    /// it misses a ping it relied on).
    pub(crate) fn mark_distant(&mut self, distant: impl Fn(&PeerId, &Conn<X>) -> bool) {
        let mut tightened = Vec::new();
        let mut announced = Vec::new();
        for c in self.conns.values_mut().filter(|c| c.handshaken && c.routed) {
            let Some(peer) = c.peer.as_ref() else { continue };
            let d = distant(peer, c);
            if d == c.distant {
                continue;
            }
            let was = c.is_distant();
            c.distant = d;
            if was && !c.is_distant() {
                tightened.push(c.id);
            } else if d && c.per_link_keepalive && c.rs2p && c.outgoing {
                c.last_ping = self.now;
                announced.push(c.id);
            }
        }
        for conn in tightened {
            self.tighten(conn, self.cfg.keepalive_ms);
        }
        let period = periods(&self.cfg, true).0;
        for conn in announced {
            self.send_keepalive(conn, true, period);
        }
    }

    /// The protocol above doubts the peer on `conn` (a request over it went
    /// unanswered): a distant link gets the short limit until its peer
    /// sends anything, with a keepalive period left to answer, and is
    /// pinged now. Nothing changes on a link that has the short limit.
    pub(crate) fn suspect(&mut self, conn: ConnId) {
        let now = self.now;
        let Some(c) = self.conns.get_mut(&conn).filter(|c| c.handshaken && c.is_distant()) else {
            return;
        };
        if c.alive_at >= now {
            // Heard from it just now.
            return;
        }
        c.suspect_at = Some(now);
        self.tighten(conn, self.cfg.keepalive_ms / 4);
    }

    /// A request that expects no answer (a store) goes out on `conn`: a
    /// distant link quiet for a short keepalive period is suspect at once
    /// ([`Mesh::suspect`]), so that a frozen finger a store was lost to is
    /// closed, and the stores after it rerouted, as soon as on a short link
    /// (6 s after its last frame), not after the distant limit. A link
    /// heard from lately, or with the short limit, is left as it is.
    pub(crate) fn doubt_if_quiet(&mut self, conn: ConnId) {
        let (now, ka) = (self.now, self.cfg.keepalive_ms);
        if self.conns.get(&conn).is_some_and(|c| c.handshaken && c.is_distant() && now.saturating_sub(c.alive_at) >= ka)
        {
            self.suspect(conn);
        }
    }

    /// Every distant link is suspect ([`Mesh::suspect`]): a short link was
    /// closed as silent, which is how a network cut looks.
    fn suspect_all_distant(&mut self) {
        let distant: Vec<ConnId> =
            self.conns.values().filter(|c| c.handshaken && c.is_distant()).map(|c| c.id).collect();
        for conn in distant {
            self.suspect(conn);
        }
    }

    /// `conn` has just got the short timers: its limit runs from its last
    /// frame, but leaves at least a keepalive period for an answer to the
    /// ping it is sent now if it has been quiet `ping_after` (and was not
    /// pinged as recently). The liveness timer comes down to its deadline.
    fn tighten(&mut self, conn: ConnId, ping_after: u64) {
        let now = self.now;
        let (ka, limit) = periods(&self.cfg, false);
        let Some(c) = self.conns.get_mut(&conn).filter(|c| c.handshaken) else {
            return;
        };
        c.alive_at = c.alive_at.max(now.saturating_add(ka).saturating_sub(limit));
        let deadline = c.alive_at.saturating_add(limit);
        let quiet = now.saturating_sub(c.alive_at);
        let ping = quiet >= ping_after && now.saturating_sub(c.last_ping) >= ping_after;
        let keeper = c.rs2p && c.outgoing;
        // The period a keeper advertises (see `liveness_scan`).
        let period = periods(&self.cfg, c.distant && c.per_link_keepalive).0;
        if ping {
            c.last_ping = now;
        }
        self.live_timer = Some(self.live_timer.map_or(deadline, |d| d.min(deadline)));
        self.scan_deadline = Some(self.scan_deadline.map_or(deadline, |d| d.min(deadline)));
        if ping {
            self.send_keepalive(conn, keeper, period);
        }
    }

    /// Closes a connection found silent for `quiet` ms. Its
    /// [`super::Upcall::Lost`] says [`super::LostCause::Silent`]. A short
    /// link closed so makes every distant link suspect.
    pub(crate) fn close_silent(&mut self, conn: ConnId, quiet: u64) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let short = !c.is_distant();
        let text = format!("closing connection: peer silent for {quiet} ms (keepalives unanswered)");
        self.record_error(Some(conn), text.clone());
        self.counters.bad_input(crate::core::BadInput::Silent);
        self.actions.push_back(crate::core::Action::Close { conn });
        self.forget_conn_by(conn, &text, super::LostCause::Silent);
        if short {
            self.suspect_all_distant();
        }
    }

    /// The rs2p keepalive (§16.14): a `ping` is answered `pong`; either
    /// counts as traffic, which is all the liveness check needs. A ping
    /// marked [`KEEPER`] on a link the peer dialed: it keeps the link alive
    /// for both ends, with the period it says; each round judges whether
    /// that suits our own limit for the link ([`keeper_suffices`]).
    pub(crate) fn handle_ping(&mut self, conn: ConnId, payload: &[Bytes]) {
        if payload.get(2).is_some_and(|p| p.as_ref() == KEEPER) {
            // A keeper that does not say its period (an earlier rs2p
            // build) is taken to use our short one.
            let period = payload
                .get(3)
                .and_then(|p| std::str::from_utf8(p).ok()?.parse::<u64>().ok())
                .unwrap_or(self.cfg.keepalive_ms);
            if let Some(c) = self.conns.get_mut(&conn).filter(|c| !c.outgoing) {
                c.keeper_period = Some(period);
            }
        }
        if payload[1].as_ref() == PING {
            self.send_on(conn, flags::WHISPER, vec![Bytes::from_static(&[flags::RS2P_PING]), Bytes::from_static(PONG)]);
        }
    }
}
