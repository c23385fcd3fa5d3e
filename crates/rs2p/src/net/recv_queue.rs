//! The application's receive queue: user messages waiting for `recv`,
//! bounded by count and by bytes (oldest dropped first).

use std::collections::VecDeque;

use crate::core::Received;

/// Messages held at most.
pub(crate) const MAX_MESSAGES: usize = 10_000;

/// Approximate memory of a message: its packets, sender and id.
fn size_of(m: &Received) -> usize {
    m.msg.payload.iter().map(|p| p.len()).sum::<usize>() + m.msg.sender.len() + m.id.len()
}

#[derive(Default)]
pub(crate) struct RecvQueue {
    messages: VecDeque<Received>,
    bytes: usize,
}

impl RecvQueue {
    /// Appends `m`, first dropping the oldest messages while the queue would
    /// hold more than `MAX_MESSAGES` or `max_bytes`; returns how many were dropped.
    pub fn push(&mut self, m: Received, max_bytes: usize) -> usize {
        let size = size_of(&m);
        let mut dropped = 0;
        while !self.messages.is_empty()
            && (self.messages.len() >= MAX_MESSAGES || self.bytes.saturating_add(size) > max_bytes)
        {
            self.pop_front();
            dropped += 1;
        }
        self.bytes += size;
        self.messages.push_back(m);
        dropped
    }

    pub fn pop_front(&mut self) -> Option<Received> {
        let m = self.messages.pop_front()?;
        self.bytes -= size_of(&m);
        Some(m)
    }

    /// The oldest `n` messages (or all there are).
    pub fn take(&mut self, n: usize) -> Vec<Received> {
        let n = n.min(self.messages.len());
        let out: Vec<Received> = self.messages.drain(..n).collect();
        self.bytes -= out.iter().map(size_of).sum::<usize>();
        out
    }
}
