//! Ownership on the ring: `find`, `find_prev`, neighbours, and the connection heuristic.

use crate::chord::Node;
use crate::core::{ConnId, PeerId};
use crate::ring::{distance, U512};

/// Who is responsible for a key, from this node's view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// This node (it is seeding and nearest).
    Local,
    /// A seeding peer on this connection.
    Remote(ConnId),
    /// Nobody: a leeching node without seeding peers.
    Nobody,
}

impl Node {
    /// Advertised addresses (`host:port`) of the seeding peers, nearest
    /// neighbours first: where a restarted node looks for the ring.
    pub fn seeding_peer_addrs(&self) -> Vec<String> {
        let me = self.mesh.id().value();
        let mut peers: Vec<(U512, String)> = self
            .data_storing()
            .into_iter()
            .filter_map(|(pid, conn)| {
                let (host, port) = self.mesh.conns().get(&conn)?.addr.clone()?;
                let gap = distance(me, pid.value()).min(distance(pid.value(), me));
                Some((gap, format!("{host}:{port}")))
            })
            .collect();
        peers.sort();
        peers.into_iter().map(|(_, a)| a).collect()
    }

    /// Seeding, handshaken peers: (id, connection).
    pub fn data_storing(&self) -> Vec<(PeerId, ConnId)> {
        let mut v: Vec<(PeerId, ConnId)> = self.seeding_peers().map(|(p, c)| (p.clone(), c)).collect();
        v.sort();
        v
    }

    /// Seeding, handshaken peers, unsorted and without copies (for the hot
    /// paths: peer lists, ring-size estimates).
    pub(crate) fn seeding_peers(&self) -> impl Iterator<Item = (&PeerId, ConnId)> + '_ {
        self.mesh.routed().filter(|(_, c)| c.handshaken && !c.ext.leeching).map(|(p, c)| (p, c.id))
    }

    /// True if a seeding peer is linked (`seeding_peers().next().is_some()`
    /// without the pass over the connections): remembered per
    /// [`Node::ring_version`], which moves whenever a link is handshaken or
    /// gone or a peer's seeding flag changes.
    pub(crate) fn has_seeding_peer(&self) -> bool {
        let version = self.ring_version();
        if let Some((v, has)) = self.chord.seeded.get().filter(|(v, _)| *v == version) {
            debug_assert_eq!(has, self.seeding_peers().next().is_some(), "ring version {v} did not move");
            return has;
        }
        let has = self.seeding_peers().next().is_some();
        self.chord.seeded.set(Some((version, has)));
        has
    }

    fn nearest(&self, dist: impl Fn(&U512) -> U512) -> Owner {
        let mut best = if self.chord.leeching { None } else { Some((dist(self.mesh.id().value()), Owner::Local)) };
        for (pid, conn) in self.seeding_peers() {
            let d = dist(pid.value());
            if best.as_ref().is_none_or(|(bd, _)| d < *bd) {
                best = Some((d, Owner::Remote(conn)));
            }
        }
        best.map_or(Owner::Nobody, |(_, o)| o)
    }

    /// The seeding peer nearest at or before `key`, leaving us and `except`
    /// aside: the owner if we were not there.
    pub(crate) fn nearest_peer(&self, key: &U512, except: Option<ConnId>) -> Option<ConnId> {
        self.seeding_peers()
            .filter(|(_, conn)| Some(*conn) != except)
            .min_by_key(|(pid, conn)| (distance(pid.value(), key), *conn))
            .map(|(_, conn)| conn)
    }

    /// The candidate nearest at or before `key` (py2p's `find`): the owner.
    pub fn find(&self, key: &U512) -> Owner {
        self.nearest(|id| distance(id, key))
    }

    /// The candidate nearest at or after `key` (py2p's `find_prev`).
    pub fn find_prev(&self, key: &U512) -> Owner {
        self.nearest(|id| distance(key, id))
    }

    /// Our predecessor on the ring: the nearest node before us
    /// (py2p calls this `next`, D19).
    pub fn predecessor(&self) -> Owner {
        let key = self.mesh.id().value().wrapping_sub(U512::from(1u64));
        self.find(&crate::ring::reduce(&key))
    }

    /// Our successor on the ring: the nearest node after us (py2p's `prev`, D19).
    pub fn successor(&self) -> Owner {
        let key = self.mesh.id().value().wrapping_add(U512::from(1u64));
        self.find_prev(&crate::ring::reduce(&key))
    }

    /// Moves whenever what ring neighbours, ownership and routing are
    /// computed from may have changed (a link handshaken or gone, a peer's
    /// or our own seeding flag): what depends only on those is recomputed
    /// only when it moved.
    pub(crate) fn ring_version(&self) -> u64 {
        self.mesh.routing_changes().wrapping_add(self.chord.ring_changes)
    }

    /// The id behind an [`Owner`] (our own id for `Local`).
    pub fn owner_id(&self, owner: Owner) -> Option<PeerId> {
        match owner {
            Owner::Local => Some(self.mesh.id().clone()),
            Owner::Remote(c) => self.peer_of(c).cloned(),
            Owner::Nobody => None,
        }
    }

    /// The distances to our successor and from our predecessor among the
    /// seeding peers (`U512::MAX` each when there is none); `None` while we
    /// leech (we have no ring neighbours to improve).
    pub(crate) fn neighbour_gaps(&self) -> Option<(U512, U512)> {
        if self.chord.leeching {
            return None;
        }
        let me = self.mesh.id().value();
        let (mut succ, mut pred) = (U512::MAX, U512::MAX);
        for (p, _) in self.seeding_peers() {
            succ = succ.min(distance(me, p.value()));
            pred = pred.min(distance(p.value(), me));
        }
        Some((succ, pred))
    }

    /// Where a peer would sit among our ring neighbours: `Some((true, d))`
    /// if it would be nearer after us than our successor (`d` its distance
    /// from us), else `Some((false, d))` if nearer before us than our
    /// predecessor (`d` its distance to us), `None` if neither.
    pub(crate) fn neighbour_side_within(&self, pid: &PeerId, (succ, pred): (U512, U512)) -> Option<(bool, U512)> {
        let me = self.mesh.id().value();
        let after = distance(me, pid.value());
        let before = distance(pid.value(), me);
        if succ == U512::MAX && pred == U512::MAX {
            return Some(if after <= before { (true, after) } else { (false, before) });
        }
        if after < succ {
            Some((true, after))
        } else if before < pred {
            Some((false, before))
        } else {
            None
        }
    }

    /// Closes the outgoing seeding link whose neighbours are closest together
    /// (py2p's heuristic). True if one was closed.
    pub fn disconnect_least_efficient(&mut self) -> bool {
        let done = self.drop_least_efficient();
        self.pump();
        done
    }

    /// [`Node::disconnect_least_efficient`] without handing chord the loss
    /// at once (for callers already inside the node's upcall pump).
    pub(crate) fn drop_least_efficient(&mut self) -> bool {
        let peers = self.data_storing();
        let n = peers.len();
        if n < 3 {
            return false;
        }
        // Our own neighbours are never dropped: routing depends on them;
        // nor are our fingers and successors, with fingers on.
        let keep: Vec<Owner> = vec![self.predecessor(), self.successor()];
        let successors = if self.uses_fingers() { self.successor_list() } else { Vec::new() };
        let mut best: Option<(U512, ConnId)> = None;
        for i in 0..n {
            let (a, _) = &peers[i];
            let (b, b_conn) = &peers[(i + 1) % n];
            let (c, _) = &peers[(i + 2) % n];
            if !self.mesh.conns().get(b_conn).is_some_and(|c| c.outgoing)
                || keep.contains(&Owner::Remote(*b_conn))
                || self.is_structural(b, &successors)
            {
                continue;
            }
            let gap = distance(a.value(), c.value());
            if best.as_ref().is_none_or(|(g, _)| gap < *g) {
                best = Some((gap, *b_conn));
            }
        }
        match best {
            Some((_, conn)) => {
                self.mesh.close_conn(conn);
                true
            }
            None => false,
        }
    }
}

impl Node {
    /// Chord's stabilisation, done with py2p's own messages: ask our ring
    /// neighbours for their peer lists, and dial any node that would be a
    /// nearer neighbour. Repeated, this links every node to its true
    /// predecessor and successor, which hop-by-hop routing needs.
    pub(crate) fn stabilize(&mut self) {
        if self.chord.leeching {
            return;
        }
        let mut targets = Vec::new();
        for o in [self.predecessor(), self.successor()] {
            if let Owner::Remote(c) = o {
                if !targets.contains(&c) {
                    targets.push(c);
                }
            }
        }
        for conn in targets {
            self.mesh.send_on(
                conn,
                crate::wire::flags::WHISPER,
                vec![bytes::Bytes::from_static(&[crate::wire::flags::REQUEST]), bytes::Bytes::from_static(b"*")],
            );
        }
    }
}
