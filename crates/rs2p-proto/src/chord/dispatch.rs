//! Chord's half of the message dispatch: the sub-flags chord registers on
//! the mesh, as py2p's chord_socket registers its handlers on mesh_socket.

use crate::chord::Node;
use crate::core::ConnId;
use crate::wire::{flags, Message};

impl Node {
    /// Handles a message the mesh passed up; false if it is not chord's
    /// (it then goes to the application).
    pub(crate) fn chord_message(&mut self, conn: ConnId, msg: &Message) -> bool {
        let Some(sub) = msg.sub_flag() else {
            return false;
        };
        let n = msg.payload.len();
        match sub {
            flags::HANDSHAKE if n == 2 => self.handle_meta(conn, msg),
            flags::NOTIFY if n >= 2 => self.handle_notify(conn, msg),
            flags::RETRIEVED if n >= 4 => self.handle_retrieved(conn, msg),
            flags::RETRIEVE if n >= 3 => self.handle_retrieve(conn, msg),
            flags::STORE if n >= 4 => self.handle_store(conn, msg),
            flags::RS2P_PEEK if n >= 3 => self.handle_peek(conn, msg),
            flags::RS2P_REPLICA if n >= 2 && msg.payload[1] == super::replica_batch::BATCH => {
                self.handle_replica_batch(conn, &msg.payload)
            }
            flags::RS2P_REPLICA if n >= 5 => self.handle_replica_item(conn, &msg.payload[1..]),
            flags::RS2P_WALK if n >= 6 => self.handle_walk(conn, &msg.payload),
            flags::RS2P_FIND if n >= 5 => self.handle_find(conn, &msg.payload),
            flags::RS2P_KEYLIST if n >= 2 => self.handle_keylist(conn, &msg.payload),
            flags::RS2P_SYNC if n >= 3 => self.handle_sync(conn, &msg.payload),
            flags::RS2P_STATUS if n >= 2 => self.handle_status(conn, &msg.payload),
            _ => return false,
        }
        true
    }
}
