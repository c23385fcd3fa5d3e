//! Peer lists through chord's eyes: which entries of a list we are sent
//! are worth dialing (ring neighbours first, then successor-list gaps), and
//! the short list we answer an rs2p peer's `*` with.

use bytes::Bytes;

use crate::chord::Node;
use crate::core::{ConnId, PeerId};
use crate::mesh::Listed;
use crate::wire::flags;
use crate::wire::pyjson::{self, PeerEntry};

impl Node {
    /// Ranks the entries of a peer list for [`crate::mesh::Mesh::dial_listed`]:
    /// ids nearer than a ring neighbour of ours, then (with fingers, while
    /// seeding) ids that belong in our successor list, then the rest.
    pub(crate) fn rank_peer_list(&self, entries: Vec<PeerEntry>) -> Vec<(PeerEntry, PeerId, Listed)> {
        let gaps = self.neighbour_gaps();
        let succ_gap = if self.uses_fingers() && !self.chord.leeching { Some(self.successor_list_gap()) } else { None };
        entries
            .into_iter()
            .filter_map(|entry| {
                let pid = PeerId::parse(entry.id.as_bytes())?;
                let rank = match gaps.and_then(|g| self.neighbour_side_within(&pid, g)) {
                    Some((after, distance)) => Listed::Neighbour { after, distance },
                    None => match succ_gap.map(|g| (crate::ring::distance(self.mesh.id().value(), pid.value()), g)) {
                        Some((distance, g)) if distance < g => Listed::Wanted { distance },
                        _ => Listed::Other,
                    },
                };
                Some((entry, pid, rank))
            })
            .collect()
    }

    /// True if `pid` is, or would be, among the peers [`Node::send_ring_peers`]
    /// lists: no more than a successor list's worth of our other seeding
    /// peers lie between us and it, on one side or the other (always true
    /// while we know fewer than that).
    pub(crate) fn is_ring_near(&self, pid: &PeerId) -> bool {
        let me = self.mesh.id().value();
        let (after, before) = (crate::ring::distance(me, pid.value()), crate::ring::distance(pid.value(), me));
        let r = self.successor_target();
        let (mut nearer_after, mut nearer_before) = (0usize, 0usize);
        for (p, _) in self.seeding_peers().filter(|(p, _)| *p != pid) {
            nearer_after += usize::from(crate::ring::distance(me, p.value()) < after);
            nearer_before += usize::from(crate::ring::distance(p.value(), me) < before);
            if nearer_after >= r && nearer_before >= r {
                return false;
            }
        }
        true
    }

    /// The answer to an rs2p peer's `*` when we keep fingers (§16.12): our
    /// seeding peers nearest on each side (a successor list's worth each),
    /// all that its stabilisation looks for, instead of every link we hold.
    /// A seeding asker gets only what it can use ([`keeps_for`]): a
    /// predecessor of ours our successors (its successor list) and the
    /// peers between it and us; a successor of ours the peers between us.
    pub(crate) fn send_ring_peers(&mut self, conn: ConnId) {
        let me = *self.mesh.id().value();
        let r = self.successor_target();
        // The asker's clockwise distance from us, and whether it is before us.
        let asker =
            self.mesh.conns().get(&conn).filter(|c| c.handshaken && !c.ext.leeching).and_then(|c| c.peer.as_ref()).map(
                |p| {
                    let d = crate::ring::distance(&me, p.value());
                    (d, crate::ring::distance(p.value(), &me) <= d)
                },
            );
        let mut seeding: Vec<(crate::ring::U512, ConnId)> =
            self.seeding_peers().map(|(p, c)| (crate::ring::distance(&me, p.value()), c)).collect();
        seeding.sort_unstable();
        let keep = |after: bool, d: &crate::ring::U512| asker.is_none_or(|a| keeps_for(a, d, after));
        let mut near: Vec<ConnId> = seeding.iter().take(r).filter(|(d, _)| keep(true, d)).map(|(_, c)| *c).collect();
        near.extend(seeding.iter().rev().take(r).filter(|(d, _)| keep(false, d)).map(|(_, c)| *c));
        near.sort();
        near.dedup();
        // Borrowed from the connections: no entry is copied to be written.
        let mut list: Vec<(&str, &str, u16)> = near
            .into_iter()
            .filter_map(|c| {
                let conn = self.mesh.conns().get(&c)?;
                let (host, port) = conn.addr.as_ref()?;
                Some((conn.peer.as_ref()?.as_str(), host.as_str(), *port))
            })
            .collect();
        list.sort_by(|a, b| a.0.cmp(b.0));
        let mut json = pyjson::PeersJson::with_entries(list.len());
        for (id, host, port) in list {
            json.push(host, port, id);
        }
        let text = json.finish();
        self.mesh.send_on(conn, flags::WHISPER, vec![Bytes::from_static(&[flags::PEERS]), text.into()]);
    }
}

/// True if a seeding asker can use an entry at clockwise distance `d`
/// from us, one of our nearest peers after us (`after`) or before us; the
/// asker is at clockwise distance `asker.0`, before us if `asker.1`. An
/// entry between the asker and us may be its nearer neighbour; our
/// successors are its successor list when it is before us. Our
/// predecessors are of no use to a successor (it ranks them as mere
/// links), nor our successors to a predecessor beyond its list.
fn keeps_for(asker: (crate::ring::U512, bool), d: &crate::ring::U512, after: bool) -> bool {
    let (da, before) = asker;
    if *d == da {
        return false;
    }
    if before {
        // After us, or between it and us (clockwise from us, past it).
        after || *d > da
    } else {
        // Between us and it.
        *d < da
    }
}
