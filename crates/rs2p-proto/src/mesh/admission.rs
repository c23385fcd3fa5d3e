//! Who gets a connection: inbound admission with per-source caps, the
//! handshake deadline, and the dial policy (how many dials at once, how
//! many outgoing links, and which addresses rest after failing).
//!
//! A peer can open connections and stay silent, or hand us peer lists of
//! fresh ids pointing at addresses that accept and say nothing. Neither may
//! lock honest peers out nor grow our connections: a connection that has
//! not finished its handshake within [`Config::handshake_timeout_ms`] is
//! closed; one source address holds at most
//! [`Config::max_pending_per_source`] unfinished handshakes (the oldest is
//! closed for a newcomer) and [`Config::max_inbound_per_source`] inbound
//! links; when [`Config::max_connections`] is reached, a newcomer replaces
//! the oldest unfinished handshake, and only a table full of handshaken
//! peers refuses it. Dials made from peer lists are bounded in flight
//! ([`Config::max_list_dials`]) and in total ([`Config::max_outgoing_links`]),
//! and an address that failed (refused, or accepted and stayed silent)
//! rests for [`ADDR_BACKOFF_MS`], doubling, whatever id it is offered under.
//!
//! [`Config::handshake_timeout_ms`]: crate::core::Config::handshake_timeout_ms
//! [`Config::max_pending_per_source`]: crate::core::Config::max_pending_per_source
//! [`Config::max_inbound_per_source`]: crate::core::Config::max_inbound_per_source
//! [`Config::max_connections`]: crate::core::Config::max_connections
//! [`Config::max_list_dials`]: crate::core::Config::max_list_dials
//! [`Config::max_outgoing_links`]: crate::core::Config::max_outgoing_links

use std::net::IpAddr;

use super::{Conn, Mesh, PeerExt};
use crate::core::{ConnId, Time};

/// First rest of an address whose dial failed or whose handshake never
/// came; it doubles with each further failure, up to [`ADDR_BACKOFF_MAX_MS`].
pub const ADDR_BACKOFF_MS: u64 = 5_000;

/// Longest rest of a failing address (a peer that comes back is found again
/// within this, or at once when it dials us).
pub const ADDR_BACKOFF_MAX_MS: u64 = 5 * 60 * 1000;

/// Dials peer lists may start per second, on average: a list of fresh
/// addresses that refuse at once frees its dial slots at once, so slots
/// alone would let a list flood make us knock on arbitrary services as fast
/// as lists arrive. Joining a ring needs a handful; stabilisation one or two
/// a second.
pub const LIST_DIALS_PER_S: u64 = 8;

/// Dials peer lists may start in a burst (the bucket's depth).
pub const LIST_DIAL_BURST: u64 = 16;

/// Unfinished dials the lists of one peer may have started: a peer cannot
/// take every dial slot with addresses that accept and stay silent.
pub const LIST_DIALS_PER_PEER: usize = 2;

/// Dial slots and rate-budget dials only would-be ring neighbours may use:
/// ids that would merely add a link cannot crowd out the dials that heal
/// the ring.
pub const NEIGHBOUR_RESERVE: usize = 2;

/// A failing address: when it may be dialed again, and its failures in a row.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AddrRest {
    until: Time,
    failures: u32,
}

/// The address per-source caps count by: an IPv4 address (also when it
/// arrives IPv4-mapped), or the /64 prefix of an IPv6 address, which one
/// host or subscriber usually holds whole.
pub fn source_key(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(_) => addr,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

impl<X: PeerExt> Mesh<X> {
    /// The driver accepted a connection from `source`. Returns its id, or
    /// `None` when it must be closed at once (the node is closed, or every
    /// slot it could take holds a handshaken peer). To make room it may
    /// close the oldest unfinished handshake (of this source first).
    pub fn on_accepted_from(&mut self, source: IpAddr, now: Time) -> Option<ConnId> {
        let source = source_key(source);
        self.set_now(now);
        if self.closed {
            return None;
        }
        let inbound = |c: &&Conn<X>| !c.outgoing;
        let from_source = self.conns.values().filter(inbound).filter(|c| c.source == Some(source));
        let (mut linked, mut pending) = (0usize, 0usize);
        for c in from_source {
            if c.handshaken {
                linked += 1;
            } else {
                pending += 1;
            }
        }
        if linked >= self.cfg.max_inbound_per_source {
            tracing::debug!(node = %self.id.short(), %source, linked, "refusing a connection: source at its link cap");
            return None;
        }
        if pending >= self.cfg.max_pending_per_source || linked + pending >= self.cfg.max_inbound_per_source {
            self.evict_pending(Some(source), "closing connection: its source opened newer ones before it handshook");
        }
        if self.conns.values().filter(inbound).count() >= self.cfg.max_connections
            && !self.evict_pending(None, "closing connection: the connection table is full and it had not handshaken")
        {
            tracing::debug!(node = %self.id.short(), %source, "refusing a connection: every slot holds a peer");
            return None;
        }
        let conn = self.on_accepted(now);
        if let Some(c) = self.conns.get_mut(&conn) {
            c.source = Some(source);
        }
        Some(conn)
    }

    /// Closes the oldest inbound connection still without a handshake (from
    /// `source` only, if given). False if there was none.
    fn evict_pending(&mut self, source: Option<IpAddr>, why: &str) -> bool {
        let oldest = self
            .conns
            .values()
            .filter(|c| !c.outgoing && !c.handshaken && source.is_none_or(|s| c.source == Some(s)))
            .min_by_key(|c| (c.opened_at, c.id))
            .map(|c| c.id);
        match oldest {
            Some(conn) => {
                tracing::debug!(node = %self.id.short(), conn = conn.0, "{why}");
                self.counters.bad_input(crate::core::BadInput::HandshakeEvicted);
                self.close_conn_because(conn, why);
                true
            }
            None => false,
        }
    }

    /// Closes connections whose handshake did not arrive in time (found
    /// by the tick's pass, `mesh/sweep.rs`): (connection, outgoing).
    pub(super) fn close_late_handshakes(&mut self, late: Vec<(ConnId, bool)>) {
        let limit = self.cfg.handshake_timeout_ms;
        for (conn, outgoing) in late {
            if outgoing {
                self.address_failed(conn);
            }
            let text = format!("closing connection: no handshake within {limit} ms");
            if self.conns.get(&conn).is_some_and(|c| c.quiet) {
                tracing::debug!(node = %self.id.short(), conn = conn.0, "quiet dial: {text}");
            } else {
                self.record_error(Some(conn), text.clone());
            }
            self.counters.bad_input(crate::core::BadInput::HandshakeTimeout);
            self.close_conn_because(conn, &text);
        }
    }

    /// Records that the address dialed on `conn` failed: it rests.
    pub(crate) fn address_failed(&mut self, conn: ConnId) {
        let Some(addr) = self.conns.get(&conn).map(|c| c.dial_addr.clone()) else {
            return;
        };
        if self.addr_rest.len() >= self.cfg.max_pending && !self.addr_rest.contains_key(&addr) {
            // Bounded: expired entries go first, then everything (a flood of
            // addresses then costs dials, still bounded by the dial caps).
            let now = self.now;
            self.addr_rest.retain(|_, r| r.until > now);
            if self.addr_rest.len() >= self.cfg.max_pending {
                self.addr_rest.clear();
            }
        }
        let now = self.now;
        let rest = self.addr_rest.entry(addr).or_insert(AddrRest { until: 0, failures: 0 });
        let wait = ADDR_BACKOFF_MS.saturating_mul(1 << rest.failures.min(16)).min(ADDR_BACKOFF_MAX_MS);
        rest.failures = rest.failures.saturating_add(1);
        rest.until = now.saturating_add(wait);
    }

    /// The address handshook: it no longer rests.
    pub(crate) fn address_succeeded(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.get(&conn) {
            if c.outgoing && !self.addr_rest.is_empty() {
                let addr = c.dial_addr.clone();
                self.addr_rest.remove(&addr);
            }
        }
    }

    /// True while an address rests after failing.
    pub(crate) fn address_rests(&self, host: &str, port: u16) -> bool {
        if self.addr_rest.is_empty() {
            return false;
        }
        let now = self.now;
        self.addr_rest.get(&(host.to_owned(), port)).is_some_and(|r| r.until > now)
    }

    /// True if a dial suggested by the peer list `from` sent may start now:
    /// the address does not rest; fewer than [`Config::max_list_dials`]
    /// outgoing connections are unfinished, and fewer than
    /// [`LIST_DIALS_PER_PEER`] of those came from `from`'s lists; the
    /// outgoing links stay within [`Config::max_outgoing_links`]; and the
    /// rate budget has a dial. Would-be ring `neighbour`s may use the last
    /// [`NEIGHBOUR_RESERVE`] slots and dials of the budget; other ids may not.
    ///
    /// [`Config::max_list_dials`]: crate::core::Config::max_list_dials
    /// [`Config::max_outgoing_links`]: crate::core::Config::max_outgoing_links
    pub(crate) fn may_dial_from_list(&self, from: ConnId, host: &str, port: u16, neighbour: bool) -> bool {
        self.list_dial_slot_free(from, neighbour) && !self.address_rests(host, port)
    }

    /// The slot and rate half of [`Mesh::may_dial_from_list`], whatever the
    /// address: while it is false, no entry of the list can be dialed.
    pub(crate) fn list_dial_slot_free(&self, from: ConnId, neighbour: bool) -> bool {
        let (mut unfinished, mut outgoing, mut from_peer) = (0usize, 0usize, 0usize);
        for c in self.conns.values().filter(|c| c.outgoing) {
            outgoing += 1;
            if !c.handshaken {
                unfinished += 1;
                if c.suggested_by == Some(from) {
                    from_peer += 1;
                }
            }
        }
        let reserve = if neighbour { 0 } else { NEIGHBOUR_RESERVE };
        unfinished + reserve < self.cfg.max_list_dials
            && from_peer < LIST_DIALS_PER_PEER
            && outgoing < self.cfg.max_outgoing_links
            && self.list_dial_tokens() > reserve as u64
    }

    /// Whole dials the rate budget allows now.
    fn list_dial_tokens(&self) -> u64 {
        let (at, milli) = self.list_dial_budget;
        let refill = self.now.saturating_sub(at).saturating_mul(LIST_DIALS_PER_S);
        milli.saturating_add(refill).min(LIST_DIAL_BURST * 1000) / 1000
    }

    /// Starts a dial suggested by a peer list (the caller checked
    /// [`Mesh::may_dial_from_list`]): takes one from the rate budget.
    pub(crate) fn dial_from_list(&mut self, from: ConnId, host: &str, port: u16, pid: crate::core::PeerId) {
        let (at, milli) = self.list_dial_budget;
        let refill = self.now.saturating_sub(at).saturating_mul(LIST_DIALS_PER_S);
        let milli = milli.saturating_add(refill).min(LIST_DIAL_BURST * 1000).saturating_sub(1000);
        self.list_dial_budget = (self.now, milli);
        // Failures are recorded by connect itself.
        if let Ok(conn) = self.connect(host, port, Some(pid)) {
            if let Some(c) = self.conns.get_mut(&conn) {
                c.suggested_by = Some(from);
            }
        }
    }

    /// Forgets rests that have ended (called on tick).
    pub(crate) fn prune_address_rests(&mut self) {
        let now = self.now;
        // An address rests until `until`; its failure count is kept a while
        // longer, so that a peer failing again soon waits longer.
        self.addr_rest.retain(|_, r| r.until.saturating_add(ADDR_BACKOFF_MAX_MS) > now);
    }
}

#[cfg(test)]
mod tests {
    use super::source_key;
    use std::net::IpAddr;

    #[test]
    fn sources_group_by_ipv4_address_or_ipv6_prefix() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(source_key(ip("10.1.2.3")), ip("10.1.2.3"));
        assert_eq!(source_key(ip("::ffff:10.1.2.3")), ip("10.1.2.3"));
        assert_eq!(source_key(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(source_key(ip("2001:db8:1:2:bbbb::9")), source_key(ip("2001:db8:1:2:aaaa::1")));
        assert_ne!(source_key(ip("2001:db8:1:3::1")), source_key(ip("2001:db8:1:2::1")));
    }
}
