//! Incoming message dispatch, in py2p's order: the mesh's own sub-flags
//! to their handlers (one file each), the rest up to the protocol above;
//! undecodable frames and renegotiation.

use bytes::Bytes;

use super::{Mesh, PeerExt, Upcall};
use crate::core::ConnId;
use crate::wire::{compression, flags, DecodeError, Message};

/// Frames on one connection that may fail to parse before we give up on it.
const MAX_BAD_FRAMES: u32 = 3;

impl<X: PeerExt> Mesh<X> {
    /// A frame that could not be decoded.
    pub(crate) fn on_bad_frame(&mut self, conn: ConnId, err: DecodeError) {
        let renegotiable = matches!(
            err,
            DecodeError::BadPacketLength { .. }
                | DecodeError::MissingHeader { .. }
                | DecodeError::BadMsgType { .. }
                | DecodeError::Undecodable { .. }
        );
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.bad_frames += 1;
        if renegotiable && c.bad_frames <= MAX_BAD_FRAMES {
            // py2p's answer to a frame it cannot parse: ask for no compression, then a resend.
            self.record_error(Some(conn), format!("undecodable frame, renegotiating: {err}"));
            self.send_on(
                conn,
                flags::RENEGOTIATE,
                vec![Bytes::from_static(&[flags::COMPRESSION]), Bytes::from_static(b"[]")],
            );
            self.send_on(conn, flags::RENEGOTIATE, vec![Bytes::from_static(&[flags::RESEND])]);
        } else {
            self.record_error(Some(conn), format!("closing connection after bad frame: {err}"));
            self.counters.bad_input(crate::core::BadInput::BadFrame);
            self.close_conn(conn);
        }
    }

    /// A whole, id-checked message arrived.
    pub(crate) fn on_message(&mut self, conn: ConnId, msg: Message) {
        self.counters.frames_in += 1;
        if msg.msg_type == flags::WHISPER {
            self.note_peer_clock(conn, msg.time);
        }
        // The id is hashed only where it is used: a broadcast's relay, and a
        // message handed to the application.
        let mut id = None;
        match msg.msg_type {
            flags::BROADCAST => {
                // A broadcast without a sub-flag is not relayed (py2p drops the link
                // on one, §4.5); it falls through to the sub-flag check below.
                let text = id.insert(msg.id());
                if msg.sub_flag().is_some() && !self.waterfall(conn, &msg, text) {
                    return;
                }
            }
            flags::RENEGOTIATE => {
                if self.handle_renegotiate(conn, &msg) {
                    return;
                }
            }
            flags::WHISPER => {}
            other => {
                // py2p's resend answer puts the sub-flag here (D4); such a frame has no usable payload.
                tracing::debug!(node = %self.id.short(), conn = conn.0, msg_type = other, "ignoring message of unknown type");
                return;
            }
        }
        let Some(sub) = msg.sub_flag() else {
            self.record_error(Some(conn), "dropping message without a sub-flag".to_owned());
            return;
        };
        let n = msg.payload.len();
        match sub {
            flags::HANDSHAKE if n == 5 => self.handle_handshake(conn, &msg),
            flags::PEERS if n >= 2 => self.handle_peers(conn, &msg),
            flags::RESPONSE if n >= 3 => self.handle_response(conn, &msg),
            flags::REQUEST => self.handle_request(conn, &msg),
            flags::RS2P_PING if n >= 2 => self.handle_ping(conn, &msg.payload),
            // Not the mesh's: the protocol above's (chord), or the
            // application's (whisper and broadcast data, registered handlers).
            _ => self.upcalls.push_back(Upcall::Message { conn, msg, id }),
        }
    }

    /// §7. True when the message was a renegotiation and is done with.
    pub(super) fn handle_renegotiate(&mut self, conn: ConnId, msg: &Message) -> bool {
        match (msg.sub_flag(), msg.payload.len()) {
            (Some(flags::COMPRESSION), n) if n >= 2 => {
                let Some(list) = compression::from_json(&msg.payload[1]) else {
                    self.record_error(Some(conn), "renegotiation with a malformed compression list".to_owned());
                    return true;
                };
                let Some(c) = self.conns.get_mut(&conn) else {
                    return true;
                };
                if c.compression != list {
                    c.compression = list;
                    let agreed: Vec<_> =
                        self.cfg.compression.iter().copied().filter(|m| c.compression.contains(m)).collect();
                    let text = compression::to_json(&agreed);
                    self.send_on(
                        conn,
                        flags::RENEGOTIATE,
                        vec![Bytes::from_static(&[flags::COMPRESSION]), text.into()],
                    );
                }
                true
            }
            (Some(flags::RESEND), _) => {
                let last = self.conns.get(&conn).and_then(|c| c.last_sent.clone());
                if let Some((msg_type, payload)) = last {
                    self.send_on(conn, msg_type, payload);
                }
                true
            }
            _ => false,
        }
    }
}
