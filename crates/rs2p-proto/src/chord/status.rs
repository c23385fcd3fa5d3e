//! What a node sees, for operators: its id, items, links, ring neighbours and
//! the ring as it knows it ([`StatusReport`]), built locally
//! ([`Node::status_report`]) or asked of an rs2p peer over the protocol
//! (sub-flag [`flags::RS2P_STATUS`], rs2p peers only, PROTOCOL §16.15):
//!
//! * `[0x28, "ask"]`: send me your status;
//! * `[0x28, "report", JSON]`: the answer, one JSON object (see
//!   [`StatusReport::to_json`]), at most [`MAX_STATUS_BYTES`].
//!
//! Only peers that advertised the rs2p capability are answered, at most
//! [`STATUS_ANSWERS_PER_SEC`] a second; a report is accepted only on a
//! connection we asked on, and only one per request.

use bytes::Bytes;
use serde_json::{json, Value};

use crate::chord::Node;
use crate::core::{ConnId, Time};
use crate::ring::{distance, HashMethod, U512};
use crate::wire::flags;

/// Links listed in a report; more are counted in `links_left_out`. Links
/// are bounded by the connection caps already; this keeps a report of a
/// node with thousands of links within [`MAX_STATUS_BYTES`].
pub const MAX_STATUS_LINKS: usize = 1024;

/// Largest report sent or accepted (its JSON text). A node with
/// [`MAX_STATUS_LINKS`] links of ordinary ids and addresses needs about
/// 300 KB; lists are shortened further until the text fits.
pub const MAX_STATUS_BYTES: usize = 1 << 20;

/// Status requests answered a second, over all peers (each answer walks
/// every connection).
pub const STATUS_ANSWERS_PER_SEC: u32 = 20;

/// Status requests of ours awaiting an answer at once.
pub const MAX_STATUS_ASKS: usize = 16;

const ASK: &[u8] = b"ask";
const REPORT: &[u8] = b"report";

/// Where the node stands after failures: its place on the ring, the peers
/// it is trying to get back, the deletes it remembers and its clock.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HealStatus {
    /// `linked`, `rejoining` (no seeding peer: probing), or `unplaced`.
    pub state: String,
    /// Seconds without a seeding peer, while rejoining.
    pub alone_s: f64,
    /// Lost peers being probed.
    pub lost_peers: u64,
    /// Times it got back to a ring after losing it.
    pub rejoins: u64,
    /// Item tombstones held (deletes remembered).
    pub item_tombstones: u64,
    /// The largest clock difference seen with a linked rs2p peer, in ms
    /// (positive: the peer is ahead), to within a second.
    pub clock_skew_ms: i64,
}

/// One link of the reporting node.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkStatus {
    /// The peer's id (base58).
    pub id: String,
    /// The address the peer advertised, `host:port`.
    pub addr: String,
    /// The peer advertised the rs2p capability (else it is taken for py2p).
    pub rs2p: bool,
    /// The peer seeds (stores data for the ring).
    pub seeding: bool,
    /// The reporting node opened the connection.
    pub outgoing: bool,
    /// Milliseconds since the connection opened.
    pub age_ms: u64,
    /// Bytes the reporting node received on it.
    pub bytes_in: u64,
    /// Bytes the reporting node sent on it.
    pub bytes_out: u64,
}

/// One node of the ring as the reporting node knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct RingNode {
    /// The node's id (base58).
    pub id: String,
    /// Its advertised address, `host:port`.
    pub addr: String,
    /// rs2p or py2p.
    pub rs2p: bool,
    /// Where its id lies on the ring, as a fraction of a turn (0 ≤ p < 1).
    pub position: f64,
    /// Its share of the id space: the arc from it to the next node, as the
    /// reporting node knows the ring (a node owns the hashes at or after
    /// its id, up to the next node's).
    pub share: f64,
    /// Items it holds, where known (the reporting node's own).
    pub items: Option<u64>,
}

/// What one node sees.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StatusReport {
    /// The node's id (base58).
    pub id: String,
    /// Its advertised address, `host:port`.
    pub addr: String,
    /// Its subnet name.
    pub subnet: String,
    /// True while it seeds.
    pub seeding: bool,
    /// Items held per table, in [`HashMethod::ALL`] order.
    pub items: [u64; 5],
    /// Keys known (the key list, or the keys a ring walk found).
    pub keys: u64,
    /// Its handshaken links (at most [`MAX_STATUS_LINKS`]).
    pub links: Vec<LinkStatus>,
    /// Links not listed (past the bound).
    pub links_left_out: u64,
    /// The id of its predecessor, if linked.
    pub predecessor: Option<String>,
    /// The id of its successor, if linked.
    pub successor: Option<String>,
    /// Its fingers' ids.
    pub fingers: Vec<String>,
    /// Its successor list, nearest first.
    pub successors: Vec<String>,
    /// The ring as it knows it (seeding nodes, itself included while it
    /// seeds), clockwise from its own position.
    pub ring: Vec<RingNode>,
    /// Rejoin, tombstones, clock (absent from nodes older than these).
    pub heal: Option<HealStatus>,
}

/// Our status requests and the reports that answered them.
#[derive(Debug, Default)]
pub(crate) struct StatusState {
    /// Connection asked → its report once it came.
    asked: Vec<(ConnId, Option<StatusReport>)>,
    /// Answer budget: the second it counts, and answers given in it.
    window: (Time, u32),
}

/// Where `id` lies on the ring, as a fraction of a turn.
pub fn ring_position(id: &U512) -> f64 {
    fraction(&crate::ring::reduce(id))
}

/// `d / 2^384` for `d < 2^384`, to double precision.
fn fraction(d: &U512) -> f64 {
    let top: U512 = *d >> 331usize;
    top.as_limbs()[0] as f64 / (1u64 << 53) as f64
}

impl StatusReport {
    /// Items held over the five tables.
    pub fn total_items(&self) -> u64 {
        self.items.iter().sum()
    }

    /// The report as JSON (what goes on the wire, and `rs2p status --json`).
    pub fn to_json(&self) -> Value {
        let items: serde_json::Map<String, Value> =
            HashMethod::ALL.iter().zip(self.items).map(|(m, n)| (m.name().to_owned(), json!(n))).collect();
        let links: Vec<Value> = self
            .links
            .iter()
            .map(|l| {
                json!({
                    "id": l.id, "addr": l.addr, "kind": kind(l.rs2p), "seeding": l.seeding,
                    "direction": if l.outgoing { "out" } else { "in" }, "age_s": l.age_ms as f64 / 1000.0,
                    "bytes_in": l.bytes_in, "bytes_out": l.bytes_out,
                })
            })
            .collect();
        let ring: Vec<Value> = self
            .ring
            .iter()
            .map(|n| {
                json!({"id": n.id, "addr": n.addr, "kind": kind(n.rs2p), "position": n.position,
                       "share": n.share, "items": n.items})
            })
            .collect();
        json!({
            "id": self.id, "addr": self.addr, "subnet": self.subnet,
            "seeding": self.seeding, "items": items, "keys": self.keys,
            "links": links, "links_left_out": self.links_left_out,
            "predecessor": self.predecessor, "successor": self.successor,
            "fingers": self.fingers, "successors": self.successors, "ring": ring,
            "heal": self.heal.as_ref().map(|h| json!({
                "state": h.state, "alone_s": h.alone_s, "lost_peers": h.lost_peers, "rejoins": h.rejoins,
                "item_tombstones": h.item_tombstones, "clock_skew_ms": h.clock_skew_ms,
            })),
        })
    }

    /// Reads a report; `None` if a field is missing or of the wrong type
    /// (the text came from a peer: nothing here may panic).
    pub fn from_json(v: &Value) -> Option<StatusReport> {
        let s = |v: &Value, k: &str| v.get(k)?.as_str().map(str::to_owned);
        let u = |v: &Value, k: &str| v.get(k)?.as_u64();
        let b = |v: &Value, k: &str| v.get(k)?.as_bool();
        let f = |v: &Value, k: &str| v.get(k)?.as_f64();
        let rs2p = |v: &Value| match v.get("kind")?.as_str()? {
            "rs2p" => Some(true),
            "py2p" => Some(false),
            _ => None,
        };
        let ids = |v: &Value, k: &str| -> Option<Vec<String>> {
            v.get(k)?.as_array()?.iter().map(|x| x.as_str().map(str::to_owned)).collect()
        };
        let opt_id = |v: &Value, k: &str| -> Option<Option<String>> {
            match v.get(k)? {
                Value::Null => Some(None),
                Value::String(t) => Some(Some(t.clone())),
                _ => None,
            }
        };
        let items_obj = v.get("items")?;
        let mut items = [0u64; 5];
        for (slot, m) in items.iter_mut().zip(HashMethod::ALL) {
            *slot = u(items_obj, m.name())?;
        }
        let links = v
            .get("links")?
            .as_array()?
            .iter()
            .map(|l| {
                Some(LinkStatus {
                    id: s(l, "id")?,
                    addr: s(l, "addr")?,
                    rs2p: rs2p(l)?,
                    seeding: b(l, "seeding")?,
                    outgoing: match l.get("direction")?.as_str()? {
                        "out" => true,
                        "in" => false,
                        _ => return None,
                    },
                    age_ms: (f(l, "age_s")?.max(0.0) * 1000.0) as u64,
                    bytes_in: u(l, "bytes_in")?,
                    bytes_out: u(l, "bytes_out")?,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        let ring = v
            .get("ring")?
            .as_array()?
            .iter()
            .map(|n| {
                Some(RingNode {
                    id: s(n, "id")?,
                    addr: s(n, "addr")?,
                    rs2p: rs2p(n)?,
                    position: f(n, "position")?,
                    share: f(n, "share")?,
                    items: n.get("items").and_then(Value::as_u64),
                })
            })
            .collect::<Option<Vec<_>>>()?;
        Some(StatusReport {
            id: s(v, "id")?,
            addr: s(v, "addr")?,
            subnet: s(v, "subnet")?,
            seeding: b(v, "seeding")?,
            items,
            keys: u(v, "keys")?,
            links,
            links_left_out: u(v, "links_left_out")?,
            predecessor: opt_id(v, "predecessor")?,
            successor: opt_id(v, "successor")?,
            fingers: ids(v, "fingers")?,
            successors: ids(v, "successors")?,
            ring,
            heal: v.get("heal").filter(|h| !h.is_null()).and_then(|h| {
                Some(HealStatus {
                    state: s(h, "state")?,
                    alone_s: f(h, "alone_s")?,
                    lost_peers: u(h, "lost_peers")?,
                    rejoins: u(h, "rejoins")?,
                    item_tombstones: u(h, "item_tombstones")?,
                    clock_skew_ms: h.get("clock_skew_ms")?.as_i64()?,
                })
            }),
        })
    }
}

fn kind(rs2p: bool) -> &'static str {
    if rs2p {
        "rs2p"
    } else {
        "py2p"
    }
}

impl Node {
    /// What this node sees now (see [`StatusReport`]).
    pub fn status_report(&self) -> StatusReport {
        let now = self.mesh.now();
        let mut links: Vec<LinkStatus> = self
            .mesh
            .conns()
            .values()
            .filter(|c| c.handshaken)
            .filter_map(|c| {
                let pid = c.peer.as_ref()?;
                Some(LinkStatus {
                    id: pid.to_string(),
                    addr: c.addr.as_ref().map_or_else(String::new, |(h, p)| format!("{h}:{p}")),
                    rs2p: c.rs2p,
                    seeding: !c.ext.leeching,
                    outgoing: c.outgoing,
                    age_ms: now.saturating_sub(c.opened_at),
                    bytes_in: c.bytes_in,
                    bytes_out: c.bytes_out,
                })
            })
            .collect();
        links.sort_by(|a, b| a.id.cmp(&b.id));
        let left_out = links.len().saturating_sub(MAX_STATUS_LINKS);
        links.truncate(MAX_STATUS_LINKS);
        let me = self.mesh.id().value();
        let (host, port) = &self.mesh.config().out_addr;
        let items = HashMethod::ALL.map(|m| self.chord.data.len(m) as u64);
        // The ring: seeding peers (and us while we seed), clockwise from us.
        let mut ring: Vec<(U512, RingNode)> = self
            .seeding_peers()
            .filter_map(|(pid, conn)| {
                let c = self.mesh.conns().get(&conn)?;
                let node = RingNode {
                    id: pid.to_string(),
                    addr: c.addr.as_ref().map_or_else(String::new, |(h, p)| format!("{h}:{p}")),
                    rs2p: c.rs2p,
                    position: ring_position(pid.value()),
                    share: 0.0,
                    items: None,
                };
                Some((*pid.value(), node))
            })
            .collect();
        if !self.chord.leeching {
            ring.push((
                *me,
                RingNode {
                    id: self.mesh.id().to_string(),
                    addr: format!("{host}:{port}"),
                    rs2p: true,
                    position: ring_position(me),
                    share: 0.0,
                    items: Some(items.iter().sum()),
                },
            ));
        }
        ring.sort_by_key(|(v, _)| distance(me, v));
        ring.truncate(MAX_STATUS_LINKS);
        let n = ring.len();
        let values: Vec<U512> = ring.iter().map(|(v, _)| *v).collect();
        for (i, (_, node)) in ring.iter_mut().enumerate() {
            node.share = if n == 1 { 1.0 } else { fraction(&distance(&values[i], &values[(i + 1) % n])) };
        }
        // Only a linked peer is a neighbour (a node alone is its own).
        let id_of = |o| match o {
            crate::chord::Owner::Remote(c) => self.peer_of(c).map(ToString::to_string),
            _ => None,
        };
        StatusReport {
            id: self.mesh.id().to_string(),
            addr: format!("{host}:{port}"),
            subnet: self.mesh.config().protocol.subnet.clone(),
            seeding: !self.chord.leeching,
            items,
            keys: self.stats().keys as u64,
            links,
            links_left_out: left_out as u64,
            predecessor: id_of(self.predecessor()),
            successor: id_of(self.successor()),
            fingers: self.fingers().iter().map(ToString::to_string).collect(),
            successors: self.successor_list().iter().map(ToString::to_string).collect(),
            ring: ring.into_iter().map(|(_, n)| n).collect(),
            heal: Some(self.heal_status()),
        }
    }

    /// Rejoin, tombstones and clock, for [`StatusReport::heal`].
    pub fn heal_status(&self) -> HealStatus {
        let (state, alone_s) = match self.placement() {
            crate::chord::Placement::Linked => ("linked", 0.0),
            crate::chord::Placement::Rejoining(since) => {
                ("rejoining", self.mesh.now().saturating_sub(since) as f64 / 1000.0)
            }
            crate::chord::Placement::Unplaced => ("unplaced", 0.0),
        };
        HealStatus {
            state: state.to_owned(),
            alone_s,
            lost_peers: self.lost_peers() as u64,
            rejoins: self.rejoins(),
            item_tombstones: self.chord.data.tomb_count() as u64,
            clock_skew_ms: self.clock_skew_ms(),
        }
    }

    /// Asks the rs2p peer on `conn` for its status; the answer is picked up
    /// with [`Node::take_status`]. Errors: the peer is not a handshaken rs2p
    /// peer, or [`MAX_STATUS_ASKS`] requests are already waiting.
    pub fn request_status(&mut self, conn: ConnId) -> Result<(), &'static str> {
        if !self.mesh.conns().get(&conn).is_some_and(|c| c.handshaken) {
            return Err("not a handshaken connection");
        }
        if !self.is_rs2p(conn) {
            return Err("the peer is not an rs2p node (py2p nodes have no status request)");
        }
        let asked = &mut self.chord.status.asked;
        asked.retain(|(c, _)| *c != conn);
        if asked.len() >= MAX_STATUS_ASKS {
            return Err("too many status requests waiting");
        }
        asked.push((conn, None));
        self.mesh.send_on(
            conn,
            flags::WHISPER,
            vec![Bytes::from_static(&[flags::RS2P_STATUS]), Bytes::from_static(ASK)],
        );
        Ok(())
    }

    /// The report that answered our request on `conn`, once it came (the
    /// request is then forgotten). `cancel` forgets the request anyway.
    pub fn take_status(&mut self, conn: ConnId, cancel: bool) -> Option<StatusReport> {
        let asked = &mut self.chord.status.asked;
        let i = asked.iter().position(|(c, _)| *c == conn)?;
        if asked[i].1.is_some() || cancel {
            return asked.remove(i).1;
        }
        None
    }

    /// `[0x28, "ask"]` or `[0x28, "report", JSON]` from a peer.
    pub(crate) fn handle_status(&mut self, conn: ConnId, payload: &[Bytes]) {
        if !self.is_rs2p(conn) {
            tracing::debug!(node = %self.mesh.id().short(), conn = conn.0, "status message from a peer without the rs2p capability: dropped");
            return;
        }
        match payload[1].as_ref() {
            ASK => self.answer_status(conn),
            REPORT if payload.len() >= 3 => self.status_received(conn, &payload[2]),
            _ => tracing::debug!(node = %self.mesh.id().short(), conn = conn.0, "unknown status message: dropped"),
        }
    }

    fn answer_status(&mut self, conn: ConnId) {
        let second = self.mesh.now() / 1000;
        let window = &mut self.chord.status.window;
        if window.0 != second {
            *window = (second, 0);
        }
        if window.1 >= STATUS_ANSWERS_PER_SEC {
            tracing::debug!(node = %self.mesh.id().short(), conn = conn.0, "status request over the rate: dropped");
            return;
        }
        window.1 += 1;
        let mut report = self.status_report();
        let mut text = report.to_json().to_string();
        // Shorten the lists until the text fits (addresses are the peers' choice).
        while text.len() > MAX_STATUS_BYTES && !(report.links.is_empty() && report.ring.is_empty()) {
            let (l, r) = (report.links.len(), report.ring.len());
            report.links_left_out += (l - l / 2) as u64;
            report.links.truncate(l / 2);
            report.ring.truncate(r / 2);
            text = report.to_json().to_string();
        }
        if text.len() > MAX_STATUS_BYTES {
            return;
        }
        self.mesh.counters_mut().status_answered += 1;
        self.mesh.send_on(
            conn,
            flags::WHISPER,
            vec![Bytes::from_static(&[flags::RS2P_STATUS]), Bytes::from_static(REPORT), Bytes::from(text)],
        );
    }

    fn status_received(&mut self, conn: ConnId, text: &Bytes) {
        let Some(slot) = self.chord.status.asked.iter_mut().find(|(c, r)| *c == conn && r.is_none()) else {
            tracing::debug!(node = %self.mesh.id().short(), conn = conn.0, "status report nobody asked for: dropped");
            return;
        };
        if text.len() > MAX_STATUS_BYTES {
            self.mesh
                .record_error(Some(conn), format!("status report of {} bytes is over the bound: dropped", text.len()));
            return;
        }
        match serde_json::from_slice::<Value>(text).ok().as_ref().and_then(StatusReport::from_json) {
            Some(report) => slot.1 = Some(report),
            None => self.mesh.record_error(Some(conn), "malformed status report: dropped".to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_round_trips_through_json() {
        let report = StatusReport {
            heal: Some(HealStatus {
                state: "linked".into(),
                lost_peers: 2,
                clock_skew_ms: -1000,
                ..Default::default()
            }),
            id: "abc".into(),
            addr: "127.0.0.1:1".into(),
            subnet: "chord".into(),
            seeding: true,
            items: [1, 2, 3, 4, 5],
            keys: 7,
            links: vec![LinkStatus {
                id: "def".into(),
                addr: "127.0.0.1:2".into(),
                rs2p: false,
                seeding: true,
                outgoing: true,
                age_ms: 1500,
                bytes_in: 10,
                bytes_out: 20,
            }],
            links_left_out: 0,
            predecessor: Some("def".into()),
            successor: None,
            fingers: vec!["def".into()],
            successors: vec![],
            ring: vec![RingNode {
                id: "abc".into(),
                addr: "127.0.0.1:1".into(),
                rs2p: true,
                position: 0.25,
                share: 1.0,
                items: Some(15),
            }],
        };
        assert_eq!(StatusReport::from_json(&report.to_json()), Some(report));
    }

    #[test]
    fn malformed_reports_are_refused() {
        for text in ["{}", "[]", "null", r#"{"id": 1}"#] {
            let v: Value = serde_json::from_str(text).unwrap();
            assert_eq!(StatusReport::from_json(&v), None, "{text}");
        }
    }

    #[test]
    fn positions_are_fractions_of_a_turn() {
        assert_eq!(ring_position(&U512::ZERO), 0.0);
        let half = U512::from(1u64) << 383usize;
        assert!((ring_position(&half) - 0.5).abs() < 1e-12);
    }
}
