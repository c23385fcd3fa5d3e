//! Counters of what happened on a node: plain integers, updated where the
//! events happen (the node's metrics add its sizes and bounds to them, see
//! `node/metrics.rs`; rendering them as Prometheus text is the shell's business).

/// Why a connection was closed for what the peer sent (or failed to send).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadInput {
    /// A frame that did not parse, past the renegotiation attempts.
    BadFrame,
    /// A length header out of bounds (a frame larger than `max_frame`).
    FrameHeader,
    /// The connection held the most partial-frame bytes when the total passed `max_buffered_bytes`.
    BufferBound,
    /// Half a frame left idle past `half_frame_timeout_ms`.
    HalfFrameIdle,
    /// No handshake within `handshake_timeout_ms`.
    HandshakeTimeout,
    /// An unfinished handshake evicted to make room (connection caps).
    HandshakeEvicted,
    /// A handshake with an id that is not base58.
    BadHandshake,
    /// A handshaken peer silent past `peer_timeout_ms` (keepalives unanswered).
    Silent,
}

impl BadInput {
    /// Every reason, in label order.
    pub const ALL: [BadInput; 8] = [
        BadInput::BadFrame,
        BadInput::FrameHeader,
        BadInput::BufferBound,
        BadInput::HalfFrameIdle,
        BadInput::HandshakeTimeout,
        BadInput::HandshakeEvicted,
        BadInput::BadHandshake,
        BadInput::Silent,
    ];

    /// The label value (`reason="..."`).
    pub fn label(self) -> &'static str {
        match self {
            BadInput::BadFrame => "bad_frame",
            BadInput::FrameHeader => "frame_header",
            BadInput::BufferBound => "buffer_bound",
            BadInput::HalfFrameIdle => "half_frame_idle",
            BadInput::HandshakeTimeout => "handshake_timeout",
            BadInput::HandshakeEvicted => "handshake_evicted",
            BadInput::BadHandshake => "bad_handshake",
            BadInput::Silent => "silent",
        }
    }
}

/// Event counters kept by a node; they only grow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Frames decoded (any connection).
    pub frames_in: u64,
    /// Bytes received (any connection, frames or parts of frames).
    pub bytes_in: u64,
    /// Frames queued for sending.
    pub frames_out: u64,
    /// Bytes of those frames.
    pub bytes_out: u64,
    /// Connections closed for bad input, by [`BadInput`] (indexed as [`BadInput::ALL`]).
    pub bad_input_closes: [u64; BadInput::ALL.len()],
    /// Gets whose tables disagreed (values held by some tables differed
    /// from the others'), so that the differing tables were asked again.
    pub disagreements: u64,
    /// Retrieves received from peers (answered here or forwarded).
    pub retrieves_in: u64,
    /// Stores received from peers.
    pub stores_in: u64,
    /// Status requests answered (PROTOCOL §16.15).
    pub status_answered: u64,
    /// Writes and deletes refused for a version dated too far ahead.
    pub versions_refused: u64,
    /// Links whose rs2p peer's clock was found off past the tolerance.
    pub clock_skew_warnings: u64,
    /// Conflicts between copies settled by their versions, by kind
    /// (indexed as [`Conflict::ALL`]).
    pub conflicts: [u64; Conflict::ALL.len()],
    /// Value bytes sent to new owners of items after a merge or a rejoin
    /// (handoffs of items we no longer own, tombstones included).
    pub merge_bytes: u64,
    /// Notifies received (py2p's key-list announcements, one key each).
    pub notifies_in: u64,
    /// Key-list batches sent to rs2p peers (ours and relays, `0x2E news`).
    pub key_batches_out: u64,
    /// Key-list batches received from rs2p peers (duplicates included).
    pub key_batches_in: u64,
}

/// How two copies of an item that disagreed were settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflict {
    /// An older write arrived where a newer one was held: dropped.
    StaleWrite,
    /// A newer write replaced an older value.
    NewerWrite,
    /// A delete (tombstone) replaced an older value, or refused an older write.
    Delete,
    /// A get saw different versions and returned the highest.
    GetVersions,
}

impl Conflict {
    /// Every kind, in counter order.
    pub const ALL: [Conflict; 4] =
        [Conflict::StaleWrite, Conflict::NewerWrite, Conflict::Delete, Conflict::GetVersions];

    /// Its label in metrics.
    pub fn label(self) -> &'static str {
        match self {
            Conflict::StaleWrite => "stale_write",
            Conflict::NewerWrite => "newer_write",
            Conflict::Delete => "delete",
            Conflict::GetVersions => "get_versions",
        }
    }
}

impl Counters {
    /// Counts one close for bad input.
    pub(crate) fn bad_input(&mut self, why: BadInput) {
        let slot = BadInput::ALL.iter().position(|b| *b == why).unwrap_or(0);
        self.bad_input_closes[slot] += 1;
    }

    /// Counts one conflict settled by versions.
    pub(crate) fn conflict(&mut self, kind: Conflict) {
        let slot = Conflict::ALL.iter().position(|c| *c == kind).unwrap_or(0);
        self.conflicts[slot] += 1;
    }
}
