//! Peer lists: ours (every routed peer with an address), and dialing from
//! a peer's list as the protocol above ranked it, within slots and rate.

use bytes::Bytes;

use super::{Mesh, PeerExt, Upcall};
use crate::core::{ConnId, PeerId};
use crate::wire::pyjson::{self, PeerEntry};
use crate::wire::{flags, Message};

/// How the protocol above ranks an entry of a peer list ([`Mesh::dial_listed`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Listed {
    /// Nearer than our neighbour on one side (`after`: the successor side).
    Neighbour { after: bool, distance: crate::ring::U512 },
    /// Wanted next (chord: a successor-list gap), nearest first.
    Wanted { distance: crate::ring::U512 },
    /// Anything else: dialed only while we have few links.
    Other,
}

impl<X: PeerExt> Mesh<X> {
    pub(super) fn handle_peers(&mut self, conn: ConnId, msg: &Message) {
        match pyjson::parse_peers(&msg.payload[1], self.cfg.max_peer_list) {
            Ok(entries) => self.upcalls.push_back(Upcall::PeerList { conn, entries }),
            Err(e) => self.record_error(Some(conn), format!("ignoring peer list: {e}")),
        }
    }

    /// Dials from a peer list that came on `from`, as the protocol above
    /// ranked its entries. A list must not steer us: of the ids offered as
    /// nearer ring neighbours, only the nearest on each side is dialed
    /// (first, with slots and rate kept for them), then the ids the ranking
    /// wants next (nearest first), other ids only while we have fewer than
    /// `max_outgoing`; every dial waits for a free slot (dials in flight,
    /// in all and per peer sending lists, outgoing links, rate), and an
    /// address resting after a failure is passed over before choosing, so
    /// that a dead one does not hide the next candidate.
    pub(crate) fn dial_listed(&mut self, from: ConnId, entries: Vec<(PeerEntry, PeerId, Listed)>) {
        let mut nearest: [Option<(crate::ring::U512, PeerEntry, PeerId)>; 2] = [None, None];
        let mut wanted: Vec<(crate::ring::U512, PeerEntry, PeerId)> = Vec::new();
        let mut others: Vec<(PeerEntry, PeerId)> = Vec::new();
        for (entry, pid, rank) in entries {
            if self.is_known(&pid)
                || (entry.host.as_str(), entry.port) == (self.cfg.out_addr.0.as_str(), self.cfg.out_addr.1)
                || self.address_rests(&entry.host, entry.port)
                || self.in_backoff(&pid, matches!(rank, Listed::Neighbour { .. }))
            {
                continue;
            }
            match rank {
                Listed::Neighbour { after, distance } => {
                    let slot = &mut nearest[usize::from(after)];
                    if slot.as_ref().is_none_or(|(best, _, _)| distance < *best) {
                        *slot = Some((distance, entry, pid));
                    }
                }
                Listed::Wanted { distance } => wanted.push((distance, entry, pid)),
                Listed::Other => others.push((entry, pid)),
            }
        }
        for (_, entry, pid) in nearest.into_iter().flatten() {
            if self.may_dial_from_list(from, &entry.host, entry.port, true) {
                self.dial_from_list(from, &entry.host, entry.port, pid);
            }
        }
        wanted.sort_by_key(|s| s.0);
        for (_, entry, pid) in wanted {
            if !self.list_dial_slot_free(from, true) {
                break;
            }
            self.dial_from_list(from, &entry.host, entry.port, pid);
        }
        // Resting addresses were passed over above, so the first entry that
        // finds no free slot ends the loop: a long list costs no scan of the
        // connections per entry.
        for (entry, pid) in others {
            if self.outgoing_count() >= self.cfg.max_outgoing || !self.list_dial_slot_free(from, false) {
                break;
            }
            self.dial_from_list(from, &entry.host, entry.port, pid);
        }
    }

    /// True if the link to this peer closed too recently to dial it from a peer list.
    /// True while a peer whose link closed is not to be dialed again. A
    /// would-be ring neighbour waits less: routing and repair need the ring
    /// re-linked within seconds of a crash, and a neighbour link is never
    /// the one dropped as least efficient, so no dial-close loop follows.
    pub(super) fn in_backoff(&self, pid: &PeerId, neighbour: bool) -> bool {
        let wait = if neighbour { super::NEIGHBOUR_REDIAL_MS } else { super::REDIAL_BACKOFF_MS };
        self.dial_backoff.get(pid).is_some_and(|t| self.now.saturating_sub(*t) < wait)
    }

    /// True if the id is ours, routed or being dialed.
    pub(crate) fn is_known(&self, pid: &PeerId) -> bool {
        *pid == self.id || self.routing.contains_key(pid) || self.dialing.contains_key(pid)
    }

    /// Sends the peer list as py2p builds it: every routed peer with a
    /// known address, sorted by id.
    pub(crate) fn send_peers(&mut self, conn: ConnId) {
        // Borrowed from the connections rather than copied to be written.
        let mut list: Vec<(&str, &str, u16)> = self
            .routing
            .iter()
            .filter_map(|(pid, c)| {
                let (host, port) = self.conns.get(c)?.addr.as_ref()?;
                Some((pid.as_str(), host.as_str(), *port))
            })
            .collect();
        list.sort_by(|a, b| a.0.cmp(b.0));
        let mut json = pyjson::PeersJson::with_entries(list.len());
        for (id, host, port) in list {
            json.push(host, port, id);
        }
        let text = json.finish();
        self.send_on(conn, flags::WHISPER, vec![Bytes::from_static(&[flags::PEERS]), text.into()]);
    }
}
