//! Per-connection protocol state.

use bytes::Bytes;

use crate::core::{ConnId, PeerId, Time};
use crate::wire::{Compression, FrameDecoder};

/// What the state of the protocol above the mesh keeps per connection:
/// the mesh holds it beside its own and hands it back when the connection
/// is gone ([`super::Upcall::Lost`]), knowing nothing of what is in it.
pub trait PeerExt: Default + std::fmt::Debug {}

impl PeerExt for () {}

/// A connection still waiting for its peer's handshake (py2p's
/// `awaiting_ids`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwaitingLink {
    /// Its handle.
    pub conn: ConnId,
    /// We opened it (dialing, or waiting for the handshake we asked for).
    pub outgoing: bool,
    /// Where we dialed, for a link we opened.
    pub dial_addr: Option<(String, u16)>,
}

/// What the node knows about one TCP connection; `X` is the upper layer's
/// part (chord's `ChordPeer`).
#[derive(Debug)]
pub struct Conn<X = ()> {
    /// Its handle.
    pub id: ConnId,
    /// We opened it.
    pub outgoing: bool,
    /// The dial has not completed yet.
    pub dialing: bool,
    /// Where we dialed (outgoing only).
    pub dial_addr: (String, u16),
    /// Splits the byte stream into frames (when the driver feeds bytes with
    /// `on_data`).
    pub decoder: FrameDecoder,
    /// Bytes of a partial frame held by the driver's reader (when it feeds
    /// decoded frames with `on_frames`).
    pub reader_pending: usize,
    /// When the last byte arrived.
    pub last_rx: Time,
    /// The peer's id: from its handshake, or the id we expected when dialing.
    pub peer: Option<PeerId>,
    /// The peer's handshake was processed.
    pub handshaken: bool,
    /// This is the connection `Mesh::routing` holds for its peer (so that
    /// the hot paths pass over the connections without a look-up each).
    pub routed: bool,
    /// The address the peer advertised.
    pub addr: Option<(String, u16)>,
    /// The compression list the peer advertised (or renegotiated).
    pub compression: Vec<Compression>,
    /// The peer advertised the rs2p capability flag.
    pub rs2p: bool,
    /// The last whisper/broadcast sent, for a resend request.
    pub last_sent: Option<(u8, Vec<Bytes>)>,
    /// Frames that failed to parse on this connection.
    pub bad_frames: u32,
    /// When this connection survived a connection conflict (§6.9), if it did:
    /// a py2p peer that then closes it is re-dialed (D8).
    pub conflict_survivor: Option<Time>,
    /// Re-dials after D8 that led to this connection (bounds the recovery).
    pub d8_redials: u8,
    /// When the handshake was processed (py2p's notifies count as arriving for a while after).
    pub handshaken_at: Time,
    /// When we last sent this peer a keepalive (liveness checks).
    pub last_ping: Time,
    /// When we last queued a frame for this peer (the keeping end of an
    /// rs2p link pings when either direction is quiet, `mesh/liveness.rs`).
    pub last_tx: Time,
    /// The peer keeps this link alive for both ends (its pings say so,
    /// `mesh/liveness.rs`), with this keepalive period (ms): if that suits
    /// our own limit for the link, we only ping it as a backstop.
    pub keeper_period: Option<u64>,
    /// The peer's handshake carried the per-link keepalive marker
    /// ([`super::PER_LINK_KEEPALIVE_MARKER`]): it judges a keeper's period
    /// against its own limit for each link, so we may keep this link
    /// alive at the distant period.
    pub per_link_keepalive: bool,
    /// The protocol above marked this link distant (`Mesh::mark_distant`):
    /// with [`Conn::per_link_keepalive`], it gets the longer keepalive
    /// period and silence limit (`Config::finger_*`), unless suspect.
    pub distant: bool,
    /// When the link was last made suspect ([`super::Mesh::suspect`]): it
    /// has the short limit until the peer sends anything after that.
    pub suspect_at: Option<Time>,
    /// When the peer last counted as alive: its last bytes, or later when
    /// our own ticks stalled (then the silence was ours, not its).
    pub alive_at: Time,
    /// When the connection was accepted, or its dial completed: the
    /// handshake deadline runs from here.
    pub opened_at: Time,
    /// The peer's clock minus ours (ms, to within a second), from the
    /// dates of its messages (rs2p peers: `rs2p status` shows the largest).
    pub clock_offset_ms: i64,
    /// The remote address of an inbound connection (per-source caps).
    pub source: Option<std::net::IpAddr>,
    /// For a dial a peer list suggested: the connection the list came on
    /// (dials in flight are bounded per peer sending lists).
    pub suggested_by: Option<ConnId>,
    /// Bytes received on this connection (status reports).
    pub bytes_in: u64,
    /// Bytes of the frames queued on this connection (status reports).
    pub bytes_out: u64,
    /// A dial whose failure is expected (the upper layer's probe of a peer
    /// that may be away): logged at debug level only.
    pub quiet: bool,
    /// The upper layer's state of this connection.
    pub ext: X,
}

impl<X: PeerExt> Conn<X> {
    /// Bytes of a partial frame held for this connection, by the node or
    /// by the driver's reader.
    pub fn buffered(&self) -> usize {
        self.decoder.pending() + self.reader_pending
    }

    /// A fresh connection.
    pub fn new(id: ConnId, outgoing: bool, max_frame: usize, now: Time) -> Conn<X> {
        Conn {
            id,
            outgoing,
            dialing: false,
            dial_addr: (String::new(), 0),
            decoder: FrameDecoder::new(max_frame),
            reader_pending: 0,
            last_rx: now,
            peer: None,
            handshaken: false,
            routed: false,
            addr: None,
            compression: Vec::new(),
            rs2p: false,
            last_sent: None,
            bad_frames: 0,
            conflict_survivor: None,
            d8_redials: 0,
            handshaken_at: now,
            last_ping: 0,
            last_tx: now,
            keeper_period: None,
            per_link_keepalive: false,
            distant: false,
            suspect_at: None,
            alive_at: now,
            opened_at: now,
            clock_offset_ms: 0,
            source: None,
            suggested_by: None,
            bytes_in: 0,
            bytes_out: 0,
            quiet: false,
            ext: X::default(),
        }
    }
}
