//! When a node next needs the clock ([`Node::poll_timeout`]), in the manner
//! of quinn-proto's `Connection::poll_timeout`: the driver (the tokio
//! shell, the simulator) calls [`Node::on_tick`] at or after that instant,
//! and again whenever an event or a call may have moved it (asking again
//! is cheap). There is no fixed tick in the protocol.
//!
//! Deadlines are exact to the millisecond. Work is batched in three ways
//! rather than by rounding: keepalives go out in one round per node every
//! `keepalive_ms`, to all the links quiet that long (`mesh/liveness.rs`),
//! not on a timer per link; work in progress that advances by batches or
//! waits on peers (handoffs, range summaries, a repair scan, a replica
//! refresh, key-list streams) is stepped once per [`PACE_MS`], the former
//! tick; and a deadline still due after a tick (work that could not be done
//! yet) is retried at that same pace, never in a busy loop. Work that
//! depends only on which peers are linked (the predecessor replicas go to,
//! the check of a py2p predecessor after a failure) is due only when
//! `Node::ring_version` moved.

use super::Node;
use crate::core::Time;

/// The pace of work in progress: one step per 100 ms, the period of the
/// fixed tick this replaced, so that its rates (items per second of a
/// refresh, of a repair scan) are unchanged.
pub const PACE_MS: u64 = 100;

/// The longest a node that is not closed sleeps, even with nothing due: a
/// longer gap between two ticks means the process was stopped (rejoin's
/// check of an absence past the tombstone horizon), and memory-only pruning
/// runs at least this often. Idle, a lone node wakes once a minute.
pub const IDLE_WAKE_MS: u64 = 60_000;

impl Node {
    /// The earliest instant (monotonic ms, the clock of [`Node::on_tick`])
    /// at which this node has timer work: a keepalive, a silent peer's
    /// deadline, a handshake's, a get's hedge, resend or deadline, the next
    /// stabilisation round, finger lookup, rejoin probe, repair pass or
    /// replica refresh, the next step of a handoff, a range summary, a
    /// repair scan or a key-list stream, a batch of sets or of replica writes
    /// for rs2p peers.
    /// `None` once the node is closed.
    /// It may be in the past: then tick at once.
    ///
    /// ```
    /// use rs2p_proto::chord::Node;
    /// use rs2p_proto::core::Config;
    /// let mut node = Node::new(Config::chord("127.0.0.1", 4444), 0);
    /// node.on_tick(0);
    /// // Alone and idle, a node sleeps long.
    /// let next = node.poll_timeout().unwrap();
    /// assert!(next >= 1_000);
    /// node.on_tick(next);
    /// assert!(node.poll_timeout().unwrap() > next);
    /// ```
    pub fn poll_timeout(&self) -> Option<Time> {
        if self.mesh.is_closed() {
            return None;
        }
        let last = self.mesh.last_tick();
        // The next step is a pace after the last one, not after the last
        // tick: ticks for other reasons in between must not delay it (every
        // tick runs `chord_tick`, which steps once a pace has passed, so
        // this is after the last tick; the `max` only guards that).
        let paced = self.chord.last_step.saturating_add(PACE_MS).max(last + 1);
        let c = &self.chord;
        let in_progress = c.handoff.len() > 0 || c.sync.busy() || !c.streaming.is_empty();
        let due = [
            self.mesh.next_timeout(),
            self.chord_periodic_due(),
            self.get_due(),
            self.repair_due(paced),
            self.replica_due(paced),
            self.finger_due(),
            self.walk_due(),
            self.rejoin_due(),
            in_progress.then_some(paced),
            Some(last.saturating_add(IDLE_WAKE_MS)),
        ]
        .into_iter()
        .flatten()
        .min()?;
        // Due already at the last tick, and still due: it waits on
        // something else (a peer, room); try again at the pace.
        let due = if due <= last { paced.max(last + 1) } else { due };
        // A batch of sets for rs2p peers, or of replica writes, waits on
        // nothing: its deadline stands whatever else waits (chord/news.rs,
        // chord/replica_batch.rs).
        let batches = [self.news_due(), self.replica_batch_due()].into_iter().flatten().min();
        Some(batches.map_or(due, |batch| due.min(batch.max(last + 1))))
    }
}
