//! Received bytes to frames: buffered and split (or decoded by the
//! driver's reader), bounded, decoded with the connection's compression
//! list, and handed to the dispatch one at a time.

use super::{Mesh, PeerExt};
use crate::core::{BadInput, ConnId, DecodeContext, Inbound, Time};
use crate::wire::{Compression, Message};

/// One step of feeding bytes to the mesh ([`Mesh::next_frame`]).
pub(crate) enum Step {
    /// A frame was handled: drain the upcalls, then ask again.
    Frame,
    /// No whole frame left (or the connection is gone).
    Done,
}

impl<X: PeerExt> Mesh<X> {
    /// Bytes arrived on a connection: buffered, then handled frame by frame
    /// through [`Mesh::next_frame`].
    pub(crate) fn on_data(&mut self, conn: ConnId, data: &[u8], now: Time) {
        self.set_now(now);
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.last_rx = now;
        c.alive_at = now;
        c.bytes_in += data.len() as u64;
        self.counters.bytes_in += data.len() as u64;
        let was = c.buffered() > 0;
        c.decoder.extend(data);
        let is = c.buffered() > 0;
        self.partial_changed(was, is);
        if is {
            self.lower_conn_timer(now.saturating_add(self.cfg.half_frame_timeout_ms).saturating_add(1));
        }
    }

    /// Handles the next whole frame buffered for `conn`, if any.
    pub(crate) fn next_frame(&mut self, conn: ConnId) -> Step {
        let Some(c) = self.conns.get_mut(&conn) else {
            return Step::Done;
        };
        let was = c.buffered() > 0;
        let next = c.decoder.next_body();
        let is = c.buffered() > 0;
        self.partial_changed(was, is);
        match next {
            Ok(Some(body)) => {
                self.on_body(conn, &body);
                Step::Frame
            }
            Ok(None) => {
                // While every connection holds at most its share of the bound,
                // the total is within it: sum only when one holds more.
                let share = self.cfg.max_buffered_bytes / self.cfg.max_connections.max(1);
                if self.conns.get(&conn).is_some_and(|c| c.decoder.pending() > share) {
                    self.bound_buffered();
                }
                Step::Done
            }
            Err(e) => {
                self.on_broken_stream(conn, e);
                Step::Done
            }
        }
    }

    /// Decodes one frame body with the connection's compression list and handles it.
    pub(super) fn on_body(&mut self, conn: ConnId, body: &[u8]) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        // Lent out while the frame is decoded, and put back before it is
        // handled (which may change it): no copy of the list per frame.
        let (methods, rs2p) = (std::mem::take(&mut c.compression), c.rs2p);
        let mut decoded = Message::decode_body_ext(body, &methods, self.cfg.max_frame, rs2p);
        if decoded.is_err() {
            // A renegotiation may have just changed the list while the peer
            // still uses the method agreed before: py2p sends `renegotiate
            // "[]"` and then its resend request, both compressed with the old
            // method (§7.2). Any method we advertised is one the peer may
            // use; each container is recognisable and an uncompressed body
            // was already tried, so this cannot misread a valid frame.
            let others: Vec<_> = self.cfg.compression.iter().copied().filter(|m| !methods.contains(m)).collect();
            if !others.is_empty() {
                if let Ok(msg) = Message::decode_body_ext(body, &others, self.cfg.max_frame, rs2p) {
                    decoded = Ok(msg);
                }
            }
        }
        if let Some(c) = self.conns.get_mut(&conn) {
            c.compression = methods;
        }
        match decoded {
            Ok(msg) => self.on_message(conn, msg),
            Err(e) => self.on_bad_frame(conn, e),
        }
    }

    /// The byte stream of `conn` cannot be split into frames any more: close it.
    pub(super) fn on_broken_stream(&mut self, conn: ConnId, e: crate::wire::DecodeError) {
        self.counters.bad_input(BadInput::FrameHeader);
        let text = format!("closing connection: {e}");
        self.record_error(Some(conn), text.clone());
        self.close_conn_because(conn, &text);
    }

    /// Keeps the bytes of partial frames over all connections within
    /// `max_buffered_bytes` by closing the connection holding the most.
    pub(super) fn bound_buffered(&mut self) {
        let total: usize = self.conns.values().map(|c| c.buffered()).sum();
        if total <= self.cfg.max_buffered_bytes {
            return;
        }
        let Some((hog, held)) = self.conns.values().map(|c| (c.id, c.buffered())).max_by_key(|&(_, n)| n) else {
            return;
        };
        let text = format!(
            "closing connection: its partial frame holds {held} bytes, partial frames {total} in all (bound {})",
            self.cfg.max_buffered_bytes
        );
        self.record_error(Some(hog), text.clone());
        self.counters.bad_input(BadInput::BufferBound);
        self.close_conn_because(hog, &text);
    }

    /// How frames of `conn` are decoded now.
    pub(crate) fn decode_context(&self, conn: ConnId) -> DecodeContext {
        let (methods, rs2p) = self.conns.get(&conn).map(|c| (c.compression.clone(), c.rs2p)).unwrap_or_default();
        DecodeContext::new(methods, self.cfg.max_frame, rs2p)
    }

    /// Counts `bytes` read on `conn` by the driver's reader, which holds
    /// `pending` bytes of a partial frame. Returns the decoding context
    /// before the frames (to tell whether they changed it), or `None` if
    /// the connection is gone.
    pub(crate) fn frames_read(
        &mut self,
        conn: ConnId,
        bytes: usize,
        pending: usize,
        now: Time,
    ) -> Option<(Vec<Compression>, bool)> {
        self.set_now(now);
        let before = self.conns.get(&conn).map(|c| (c.compression.clone(), c.rs2p))?;
        self.counters.bytes_in += bytes as u64;
        if let Some(c) = self.conns.get_mut(&conn) {
            c.bytes_in += bytes as u64;
            c.last_rx = now;
            c.alive_at = now;
            let was = c.buffered() > 0;
            c.reader_pending = pending;
            let is = c.buffered() > 0;
            self.partial_changed(was, is);
        }
        if pending > 0 {
            self.lower_conn_timer(now.saturating_add(self.cfg.half_frame_timeout_ms).saturating_add(1));
        }
        Some(before)
    }

    /// Handles one frame decoded by the driver's reader; false if the
    /// stream is broken (the connection is closed).
    pub(crate) fn on_inbound(&mut self, conn: ConnId, frame: Inbound) -> bool {
        match frame {
            Inbound::Message(msg) => self.on_message(conn, msg),
            Inbound::Undecoded(body) => self.on_body(conn, &body),
            Inbound::Broken(e) => {
                self.on_broken_stream(conn, e);
                return false;
            }
        }
        true
    }

    /// After the frames of one read: bounds the partial frames, and returns
    /// the new decoding context if the frames changed it.
    pub(crate) fn frames_done(
        &mut self,
        conn: ConnId,
        pending: usize,
        before: (Vec<Compression>, bool),
    ) -> Option<DecodeContext> {
        let share = self.cfg.max_buffered_bytes / self.cfg.max_connections.max(1);
        if pending > share {
            self.bound_buffered();
        }
        let c = self.conns.get(&conn)?;
        (c.compression != before.0 || c.rs2p != before.1).then(|| self.decode_context(conn))
    }
}
