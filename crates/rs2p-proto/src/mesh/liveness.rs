//! Failure detection: keepalives to quiet peers, and a deadline after which
//! a silent peer is declared gone.
//!
//! A crashed process's sockets are reset by its kernel, and the driver sees
//! the link close at once. A host that is unplugged, frozen or cut off by a
//! firewall closes nothing: its links only fall silent. So a node runs a
//! keepalive round every [`Config::keepalive_ms`] (shortened by up to an
//! eighth, drawn per round, so that nodes started together drift apart):
//! each handshaken peer that has sent nothing (any frame counts) for that
//! period is asked for its peer list (py2p's request `*`, which py2p and
//! rs2p both answer; an rs2p peer gets the rs2p `ping` instead: a peer list
//! costs kilobytes in a ring with fingers). A peer silent for its link's
//! limit ([`Config::peer_timeout_ms`], timed exactly, not by rounds) is
//! closed as dead, which starts the same recovery as a reset link (for a
//! seeding peer: repair). One round wakes the node for all its links, and
//! a link with traffic costs no keepalive at all.
//!
//! With the defaults (2 s, 6 s) a silent link is pinged when it has been
//! quiet 2 to 4 s, at least 2 s before its limit, and a link whose peer
//! stays silent is closed 6 s after the last frame it sent, whatever its
//! kind: ring neighbours and fingers alike.
//!
//! Between rs2p peers one end keeps the link alive for both: the end that
//! dialed pings when the link has been quiet 2 s *in either direction*
//! (nothing received, or nothing sent), and marks its pings ([`KEEPER`]).
//! So the other end hears a frame at least every 4 s (a round's period
//! past the 2 s), well within its 6 s limit, and once it has seen a marked
//! ping it stops pinging (but for a backstop at [`BACKSTOP_NUM`] of the
//! way to the limit, never reached while the keeper keeps its pace). Its
//! pings were half of the maintenance traffic. Detection is unchanged:
//! each end still closes the link 6 s after the last frame it got, and the
//! keeping end's pings come 2 to 4 s into a silence, as before. A link
//! quiet but alive costs one keepalive and its answer about every two
//! rounds (4 s), none while frames flow both ways; a py2p link (probed
//! with `*`) or an rs2p peer without the mark is pinged by both ends, and
//! so is a keeper whose pings carry a period too long for our own limit
//! (its `keepalive_ms` is its own config: see `keeper_suffices`).
//!
//! [`Config::keepalive_ms`]: crate::core::Config::keepalive_ms
//! [`Config::peer_timeout_ms`]: crate::core::Config::peer_timeout_ms

use bytes::Bytes;

use super::{Mesh, PeerExt};
use crate::core::{mix64, ConnId, Time};
use crate::wire::flags;

const PING: &[u8] = b"ping";
const PONG: &[u8] = b"pong";

/// The packet after `ping` from the end that keeps an rs2p link alive for
/// both ends (older rs2p nodes ignore it and answer `pong` as before). The
/// keeper's keepalive period (ms) follows it: the other end relies on the
/// keeper only if that period fits within its own silence limit.
pub(crate) const KEEPER: &[u8] = b"k";

/// A peer that keeps the link alive is pinged only once the link has been
/// quiet this many quarters of a keepalive period short of the limit (4.5
/// s of 6): a backstop, should its pings be late.
const BACKSTOP_NUM: u64 = 3;

/// A round's period is the keepalive period less up to this fraction of it
/// (drawn per round from the node's seed).
const JITTER_DIV: u64 = 8;

/// The liveness timers of a link: (keepalive period, silence limit).
fn periods(cfg: &crate::core::Config) -> (u64, u64) {
    (cfg.keepalive_ms, cfg.peer_timeout_ms.max(cfg.keepalive_ms))
}

/// True if a keeper pinging with keepalive period `period` (ms) is heard
/// often enough for our own silence limit: it pings a link quiet for one
/// period, at rounds a period apart, so we hear from it at least every two
/// periods, and that must leave our backstop's margin (a quarter of our
/// period) before our limit. With the defaults, 4 s against 6 s less 0.5.
/// A keeper configured with a longer period is not relied on: we go on
/// pinging the link ourselves, as with a py2p peer.
fn keeper_suffices(cfg: &crate::core::Config, period: u64) -> bool {
    let (ka, limit) = periods(cfg);
    period.saturating_mul(2).saturating_add(ka / 4) <= limit
}

impl<X: PeerExt> Mesh<X> {
    /// The liveness deadline when the quietest handshaken link last heard
    /// from its peer at `oldest_alive`.
    pub(crate) fn liveness_deadline(&self, oldest_alive: Time) -> Time {
        oldest_alive.saturating_add(periods(&self.cfg).1).min(self.next_round)
    }

    /// Runs a keepalive round if one is due; returns the connections silent
    /// past their limit, with how long (ms), for [`Mesh::close_silent`] (the
    /// protocol above looks at them first: a lost ring neighbour is probed
    /// again).
    pub(crate) fn liveness_scan(&mut self) -> Vec<(ConnId, u64)> {
        let now = self.now;
        let keepalive = self.cfg.keepalive_ms;
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
        let mut ping: Vec<(ConnId, bool)> = Vec::new();
        let (ka, limit) = periods(&self.cfg);
        let mut oldest: Option<Time> = None;
        // A link first quiet just after a round is pinged a round later:
        // with a limit under two periods, ping sooner, so that the answer
        // has time to come before the limit (but not every millisecond: a
        // limit under 1.25 periods pings after a quarter period).
        let threshold = ka.min(limit.saturating_sub(ka + ka / 4)).max(ka / 4).max(1);
        let backstop = limit.saturating_sub(ka * BACKSTOP_NUM / 4).max(threshold);
        for c in self.conns.values_mut().filter(|c| c.handshaken) {
            if starved {
                c.alive_at = c.alive_at.max(now.saturating_sub(ka));
                oldest = Some(oldest.map_or(c.alive_at, |t| t.min(c.alive_at)));
                continue;
            }
            let quiet = now.saturating_sub(c.alive_at);
            if quiet >= limit {
                silent.push((c.id, quiet));
                continue;
            }
            oldest = Some(oldest.map_or(c.alive_at, |t| t.min(c.alive_at)));
            if !round || now.saturating_sub(c.last_ping) < threshold {
                continue;
            }
            // The dialing end of an rs2p link keeps it alive for both.
            let keeper = c.rs2p && c.outgoing;
            let due = if c.peer_keeps_alive && !c.outgoing {
                quiet >= backstop
            } else if keeper {
                quiet >= threshold || now.saturating_sub(c.last_tx) >= threshold
            } else {
                quiet >= threshold
            };
            if due {
                c.last_ping = now;
                ping.push((c.id, keeper));
            }
        }
        self.scan_oldest = oldest;
        for (conn, keeper) in ping {
            let probe = if keeper {
                vec![
                    Bytes::from_static(&[flags::RS2P_PING]),
                    Bytes::from_static(PING),
                    Bytes::from_static(KEEPER),
                    Bytes::from(self.cfg.keepalive_ms.to_string()),
                ]
            } else if self.is_rs2p(conn) {
                vec![Bytes::from_static(&[flags::RS2P_PING]), Bytes::from_static(PING)]
            } else {
                vec![Bytes::from_static(&[flags::REQUEST]), Bytes::from_static(b"*")]
            };
            self.send_on(conn, flags::WHISPER, probe);
        }
        silent
    }

    /// Remembers the earliest liveness deadline after a scan and the
    /// closes it led to (see the starvation check of [`Mesh::liveness_scan`]).
    /// The links closed since were the silent ones the scan left out, so
    /// no second pass over the links is needed.
    pub(crate) fn liveness_scanned(&mut self) {
        self.liveness_at = self.scan_oldest.map(|t| self.liveness_deadline(t));
        self.live_timer = self.liveness_at;
    }

    /// Closes a connection found silent for `quiet` ms. Its
    /// [`super::Upcall::Lost`] says [`super::LostCause::Silent`].
    pub(crate) fn close_silent(&mut self, conn: ConnId, quiet: u64) {
        if !self.conns.contains_key(&conn) {
            return;
        }
        let text = format!("closing connection: peer silent for {quiet} ms (keepalives unanswered)");
        self.record_error(Some(conn), text.clone());
        self.counters.bad_input(crate::core::BadInput::Silent);
        self.actions.push_back(crate::core::Action::Close { conn });
        self.forget_conn_by(conn, &text, super::LostCause::Silent);
    }

    /// The rs2p keepalive (§16.14): a `ping` is answered `pong`; either
    /// counts as traffic, which is all the liveness check needs. A ping
    /// marked [`KEEPER`] on a link the peer dialed: it keeps the link alive
    /// for both ends, and we stop pinging it, if its pings come often
    /// enough for our limit ([`keeper_suffices`]).
    pub(crate) fn handle_ping(&mut self, conn: ConnId, payload: &[Bytes]) {
        if payload.get(2).is_some_and(|p| p.as_ref() == KEEPER) {
            // A keeper that does not say its period (an earlier rs2p
            // build) is taken to use ours.
            let period = payload
                .get(3)
                .and_then(|p| std::str::from_utf8(p).ok()?.parse::<u64>().ok())
                .unwrap_or(self.cfg.keepalive_ms);
            let suffices = keeper_suffices(&self.cfg, period);
            if let Some(c) = self.conns.get_mut(&conn).filter(|c| !c.outgoing) {
                c.peer_keeps_alive = suffices;
            }
        }
        if payload[1].as_ref() == PING {
            self.send_on(conn, flags::WHISPER, vec![Bytes::from_static(&[flags::RS2P_PING]), Bytes::from_static(PONG)]);
        }
    }
}
