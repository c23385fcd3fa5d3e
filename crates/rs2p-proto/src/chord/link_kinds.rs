//! Which links are kept alive on the finger period
//! ([`crate::core::Config::finger_keepalive_ms`]) rather than the ring
//! neighbours' ([`crate::core::Config::keepalive_ms`]).
//!
//! A seeding node with fingers needs its predecessor, successor and
//! successor list to notice a silent neighbour fast (the ring re-links
//! and repair starts from there); a finger that falls silent only costs a
//! lookup a resend through another link. The links to py2p peers, to and
//! of leeching nodes, and every link of a node without fingers keep the
//! ring neighbours' period. The flags are set on each tick, before the
//! liveness scan reads them.

use crate::chord::Node;
use crate::core::PeerId;

impl Node {
    /// Marks each handshaken link a finger only, or not.
    pub(crate) fn mark_finger_links(&mut self) {
        let relax = self.uses_fingers() && !self.chord.leeching;
        let mut near: Vec<PeerId> = Vec::new();
        if relax {
            near = self.successor_list();
            near.extend(self.owner_id(self.predecessor()));
            near.extend(self.owner_id(self.successor()));
        }
        let marks: Vec<_> = self
            .mesh
            .conns()
            .values()
            .filter(|c| c.handshaken)
            .map(|c| {
                let finger = relax && c.rs2p && !c.ext.leeching && c.peer.as_ref().is_some_and(|p| !near.contains(p));
                (c.id, finger)
            })
            .filter(|&(conn, finger)| self.mesh.conns().get(&conn).is_some_and(|c| c.finger_only != finger))
            .collect();
        for (conn, finger) in marks {
            self.mesh.set_finger_only(conn, finger);
        }
    }
}
