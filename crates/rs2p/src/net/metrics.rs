//! [`MetricsSnapshot`]: a node's counters, sizes, bounds and latency
//! histograms at one moment, and [`render_prometheus`], the same as
//! OpenMetrics text (prometheus-client's encoder), or as the classic
//! Prometheus text format 0.0.4 for scrapers that do not ask for OpenMetrics.

use std::fmt;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::latency::{ByOutcome, Outcome, LATENCY_BUCKETS_S};
use crate::core::{BadInput, Conflict};
use crate::node::NodeMetrics;
use crate::ring::HashMethod;

/// Every number [`crate::ChordSocket::metrics`] reports.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricsSnapshot {
    /// The node's id (base58).
    pub id: String,
    /// Counters, sizes, links and bounds from the core.
    pub node: NodeMetrics,
    /// Latency of the gets made through this socket, by outcome ([`Outcome::ALL`] order).
    pub gets: ByOutcome,
    /// Latency of the sets made through this socket (the time to queue the stores).
    pub sets: ByOutcome,
}

/// The two text formats a scrape can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextFormat {
    /// OpenMetrics 1.0 (what Prometheus asks for first).
    OpenMetrics,
    /// The classic Prometheus text format 0.0.4 (no `# EOF`, no `# UNIT`,
    /// a counter's family named with its `_total` suffix).
    Classic,
}

impl TextFormat {
    /// The `Content-Type` of the format.
    pub fn content_type(self) -> &'static str {
        match self {
            TextFormat::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            TextFormat::Classic => "text/plain; version=0.0.4; charset=utf-8",
        }
    }
}

/// The snapshot as Prometheus text in `format`, every name prefixed `rs2p_`.
pub fn render_prometheus(m: &MetricsSnapshot, format: TextFormat) -> String {
    let open = render_openmetrics(m);
    match format {
        TextFormat::OpenMetrics => open,
        TextFormat::Classic => to_classic(&open),
    }
}

/// OpenMetrics text to the classic format: the counters' `# HELP` and
/// `# TYPE` lines name the family with its `_total` suffix (as its samples
/// are named); `# UNIT` and `# EOF` go.
fn to_classic(open: &str) -> String {
    let counters: std::collections::HashSet<&str> =
        open.lines().filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter")).collect();
    let mut out = String::with_capacity(open.len());
    for line in open.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|tag| {
            let rest = line.strip_prefix(tag)?;
            let name = rest.split(' ').next()?;
            counters.contains(name).then(|| format!("{tag}{name}_total{}", &rest[name.len()..]))
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

fn render_openmetrics(m: &MetricsSnapshot) -> String {
    let mut registry = Registry::with_prefix("rs2p");
    registry.register_collector(Box::new(Snapshot(m.clone())));
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
    out
}

/// A snapshot registered for one rendering.
#[derive(Debug)]
struct Snapshot(MetricsSnapshot);

/// Writes one gauge family: a value per label set.
fn gauges<V: prometheus_client::encoding::EncodeGaugeValue>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: &[(Vec<(&'static str, String)>, V)],
) -> fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, v) in rows {
        if labels.is_empty() {
            m.encode_gauge(v)?;
        } else {
            m.encode_family(labels)?.encode_gauge(v)?;
        }
    }
    Ok(())
}

/// Writes one counter family.
fn counters(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: &[(Vec<(&'static str, String)>, u64)],
) -> fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, v) in rows {
        if labels.is_empty() {
            m.encode_counter::<NoLabelSet, _, u64>(v, None)?;
        } else {
            m.encode_family(labels)?.encode_counter::<NoLabelSet, _, u64>(v, None)?;
        }
    }
    Ok(())
}

fn histograms(enc: &mut DescriptorEncoder, name: &str, help: &str, h: &ByOutcome) -> fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Histogram)?;
    for (outcome, h) in Outcome::ALL.iter().zip(h) {
        let mut buckets: Vec<(f64, u64)> = LATENCY_BUCKETS_S.iter().copied().zip(h.buckets).collect();
        buckets.push((f64::INFINITY, h.buckets[LATENCY_BUCKETS_S.len()]));
        let labels = vec![("outcome", outcome.label().to_owned())];
        m.encode_family(&labels)?.encode_histogram::<NoLabelSet>(h.sum_s, h.count, &buckets, None)?;
    }
    Ok(())
}

fn label(k: &'static str, v: impl Into<String>) -> Vec<(&'static str, String)> {
    vec![(k, v.into())]
}

fn none() -> Vec<(&'static str, String)> {
    Vec::new()
}

impl Collector for Snapshot {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        let s = &self.0;
        let n = &s.node;
        let c = &n.counters;
        gauges(&mut enc, "node_info", "This node (always 1), its id as a label", &[(label("id", s.id.clone()), 1u64)])?;
        gauges(&mut enc, "seeding", "1 while this node stores data for the ring", &[(none(), u64::from(n.seeding))])?;
        let per_table = |v: &[usize; 5]| -> Vec<(Vec<(&'static str, String)>, u64)> {
            HashMethod::ALL.iter().zip(v).map(|(m, x)| (label("table", m.name()), *x as u64)).collect()
        };
        gauges(&mut enc, "items", "Items held, per hash table", &per_table(&n.items_per_table))?;
        gauges(
            &mut enc,
            "value_bytes",
            "Bytes of the values held, per table (a value in two tables counts in each)",
            &per_table(&n.value_bytes_per_table),
        )?;
        gauges(
            &mut enc,
            "keys",
            "Keys known (the key list, or the keys a ring walk found)",
            &[(none(), n.stats.keys as u64)],
        )?;
        gauges(&mut enc, "tombstones", "Deleted keys remembered", &[(none(), n.tombstones as u64)])?;
        let mut links = Vec::new();
        for (k, kind) in ["py2p", "rs2p"].iter().enumerate() {
            for (r, role) in ["leeching", "seeding"].iter().enumerate() {
                for (d, dir) in ["incoming", "outgoing"].iter().enumerate() {
                    let labels =
                        vec![("kind", kind.to_string()), ("role", role.to_string()), ("direction", dir.to_string())];
                    links.push((labels, n.links[k][r][d] as u64));
                }
            }
        }
        gauges(&mut enc, "links", "Handshaken links, by kind of peer, its role and who opened the connection", &links)?;
        gauges(
            &mut enc,
            "connections_awaiting_handshake",
            "Connections without a handshake yet",
            &[(none(), n.awaiting as u64)],
        )?;
        gauges(
            &mut enc,
            "ring_neighbour",
            "1 when the ring neighbour on that side is linked",
            &[
                (label("side", "predecessor"), u64::from(n.has_predecessor)),
                (label("side", "successor"), u64::from(n.has_successor)),
            ],
        )?;
        gauges(&mut enc, "fingers", "Fingers known (distinct peers)", &[(none(), n.fingers as u64)])?;
        gauges(&mut enc, "successors", "Length of the successor list", &[(none(), n.successors as u64)])?;
        histograms(&mut enc, "get_duration_seconds", "Gets made through this node, by outcome", &s.gets)?;
        histograms(
            &mut enc,
            "set_duration_seconds",
            "Sets made through this node (the time to queue the five stores: sets are not acknowledged)",
            &s.sets,
        )?;
        counters(
            &mut enc,
            "get_disagreements",
            "Gets whose tables disagreed, so that the differing tables were asked again",
            &[(none(), c.disagreements)],
        )?;
        let h = &n.handoff;
        counters(
            &mut enc,
            "handoff_items",
            "Items handed to new owners, by state",
            &[
                (label("state", "queued"), h.queued),
                (label("state", "confirmed"), h.confirmed),
                (label("state", "failed"), h.failed),
            ],
        )?;
        counters(&mut enc, "handoff_bytes", "Value bytes of the items new owners confirmed", &[(none(), h.bytes)])?;
        let r = &n.repair;
        counters(
            &mut enc,
            "repair_items",
            "Copies repaired after failures: restored from the other tables, promoted from replicas, pushed to a py2p predecessor",
            &[
                (label("how", "restored"), r.restored),
                (label("how", "promoted"), r.promoted),
                (label("how", "pushed"), r.pushed),
            ],
        )?;
        counters(&mut enc, "repair_bytes", "Value bytes restored or pushed by repair", &[(none(), r.bytes)])?;
        counters(
            &mut enc,
            "frames",
            "Frames received (decoded) and sent (queued)",
            &[(label("direction", "in"), c.frames_in), (label("direction", "out"), c.frames_out)],
        )?;
        counters(
            &mut enc,
            "bytes",
            "Bytes received and sent (queued)",
            &[(label("direction", "in"), c.bytes_in), (label("direction", "out"), c.bytes_out)],
        )?;
        let closes: Vec<_> =
            BadInput::ALL.iter().zip(c.bad_input_closes).map(|(b, v)| (label("reason", b.label()), v)).collect();
        counters(&mut enc, "bad_input_closes", "Connections closed for what the peer sent or failed to send", &closes)?;
        counters(&mut enc, "retrieves_received", "Retrieves received from peers", &[(none(), c.retrieves_in)])?;
        counters(&mut enc, "stores_received", "Stores received from peers", &[(none(), c.stores_in)])?;
        counters(&mut enc, "status_answered", "Status requests answered", &[(none(), c.status_answered)])?;
        counters(&mut enc, "dials", "Outgoing dials started", &[(none(), n.stats.dials_started)])?;
        let heal = &n.heal;
        counters(
            &mut enc,
            "rejoins",
            "Times this node got back to a ring after losing every seeding peer",
            &[(none(), heal.rejoins)],
        )?;
        counters(&mut enc, "rejoin_probes", "Probes of lost peers and start addresses", &[(none(), n.rejoin_probes)])?;
        gauges(
            &mut enc,
            "rejoining",
            "1 while this node seeds with no seeding peer linked (probing to get back)",
            &[(none(), u64::from(heal.state == "rejoining"))],
        )?;
        gauges(&mut enc, "lost_peers", "Lost seeding peers being probed", &[(none(), heal.lost_peers)])?;
        gauges(&mut enc, "item_tombstones", "Item deletes remembered (tombstones)", &[(none(), heal.item_tombstones)])?;
        let conflicts: Vec<_> =
            Conflict::ALL.iter().zip(c.conflicts).map(|(k, v)| (label("kind", k.label()), v)).collect();
        counters(&mut enc, "conflicts", "Disagreeing copies settled by their versions, by kind", &conflicts)?;
        counters(
            &mut enc,
            "merge_bytes",
            "Value bytes handed to new owners after joins, merges and rejoins (tombstones included)",
            &[(none(), c.merge_bytes)],
        )?;
        counters(
            &mut enc,
            "key_announcements",
            "Key-list announcements: py2p notifies received (one key each), rs2p batches sent and received",
            &[
                (label("kind", "notify_in"), c.notifies_in),
                (label("kind", "batch_out"), c.key_batches_out),
                (label("kind", "batch_in"), c.key_batches_in),
            ],
        )?;
        counters(
            &mut enc,
            "sync_items",
            "Items changing owner offered as range summaries: matched (not sent) or sent one by one",
            &[(label("result", "matched"), n.sync.0), (label("result", "sent"), n.sync.1)],
        )?;
        counters(&mut enc, "sync_bytes", "Bytes of range summaries sent", &[(none(), n.sync.2)])?;
        counters(
            &mut enc,
            "versions_refused",
            "Writes refused for a version dated too far ahead of this node's clock",
            &[(none(), c.versions_refused)],
        )?;
        gauges(
            &mut enc,
            "clock_skew_ms",
            "The largest clock difference with a linked rs2p peer, ms (absolute)",
            &[(none(), heal.clock_skew_ms.unsigned_abs())],
        )?;
        let st = &n.stats;
        let sizes: Vec<(Vec<(&'static str, String)>, u64)> = [
            ("connections", st.connections),
            ("peers", st.peers),
            ("awaiting", st.awaiting),
            ("buffered_bytes", st.buffered_bytes),
            ("recent_ids", st.recent_ids),
            ("route_requests", st.route_requests),
            ("pending_retrieves", st.pending_retrieves),
            ("gets", st.gets),
            ("keys", st.keys),
            ("key_streams", st.key_streams),
            ("key_bytes", st.key_bytes),
            ("tombstone_bytes", st.tombstone_bytes),
            ("items", st.items),
            ("value_bytes", st.value_bytes),
            ("stored_bytes", st.stored_bytes),
            ("replicas", st.replicas),
            ("replica_bytes", st.replica_bytes),
            ("handoff_pending", st.handoff_pending),
            ("errors", st.errors),
        ]
        .iter()
        .map(|(k, v)| (label("name", *k), *v as u64))
        .collect();
        gauges(&mut enc, "size", "The sizes stats() reports, by name", &sizes)?;
        let bounds: Vec<_> = n.bounds.iter().map(|(k, v)| (label("name", *k), *v)).collect();
        gauges(&mut enc, "bound", "The bounds those sizes run against (Config), by name", &bounds)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_text_names_counters_with_their_suffix() {
        let m = MetricsSnapshot::default();
        let open = render_prometheus(&m, TextFormat::OpenMetrics);
        assert!(open.ends_with("# EOF\n"));
        assert!(open.contains("# TYPE rs2p_frames counter\n"));
        let classic = render_prometheus(&m, TextFormat::Classic);
        assert!(!classic.contains("# EOF"));
        assert!(classic.contains("# TYPE rs2p_frames_total counter\n"));
        assert!(classic.contains("# HELP rs2p_frames_total "));
        assert!(classic.contains("rs2p_frames_total{direction=\"in\"} 0\n"));
        for line in classic.lines().filter(|l| l.starts_with("# TYPE ") && l.ends_with(" counter")) {
            assert!(line.split(' ').nth(2).is_some_and(|n| n.ends_with("_total")), "{line}");
        }
        // Histograms and gauges are the same in both.
        assert!(classic.contains("# TYPE rs2p_get_duration_seconds histogram\n"));
        assert!(classic.contains("rs2p_get_duration_seconds_bucket{le=\"+Inf\",outcome=\"ok\"} 0\n"));
    }
}
