//! The event queue: deliveries ordered by (due time, sequence number),
//! and the loops that run the network until it is quiet or until a time.

use std::cmp::Ordering;

use bytes::Bytes;

use super::{Sim, MAX_RUN_STEPS, STREAM_ROOM};
use crate::core::{ConnId, Time};

/// One thing the network (or the clock) will hand to a node.
pub(super) enum Delivery {
    Data {
        node: usize,
        conn: ConnId,
        bytes: Bytes,
    },
    Closed {
        node: usize,
        conn: ConnId,
    },
    /// The node's timer, armed for `at` (stale if the node's armed time
    /// is no longer `at`).
    Timer {
        node: usize,
        at: Time,
    },
}

/// A node's timer when none is armed.
pub(super) const UNARMED: Time = Time::MAX;

/// A delivery with its due time; the heap pops the earliest (then the
/// first scheduled) first.
pub(super) struct Scheduled {
    pub(super) at: Time,
    pub(super) seq: u64,
    pub(super) what: Delivery,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> Ordering {
        // Reversed: `BinaryHeap` is a max-heap.
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

impl Sim {
    pub(super) fn schedule(&mut self, at: Time, what: Delivery) {
        self.seq += 1;
        if matches!(what, Delivery::Timer { .. }) {
            self.timer_entries += 1;
        }
        self.queue.push(Scheduled { at, seq: self.seq, what });
    }

    /// Delivers, in order, everything due by `stop` (the clock following
    /// each delivery's time), until no marked node has actions left.
    pub(super) fn run_until(&mut self, stop: Time) {
        for _ in 0..MAX_RUN_STEPS {
            let progressed = self.apply_dirty();
            let due = self.queue.peek().is_some_and(|s| s.at <= stop);
            if due {
                let s = self.queue.pop().expect("peeked");
                if matches!(s.what, Delivery::Timer { .. }) {
                    self.timer_entries -= 1;
                }
                self.now = self.now.max(s.at);
                self.deliver(s.what);
            } else if !progressed {
                return;
            }
        }
        panic!("simulation did not settle");
    }

    /// Delivers everything due now until the network is quiet (bounded).
    /// With zero latency that is every consequence of every call; with
    /// latency, frames sent now arrive later, during [`Sim::advance`].
    pub fn run(&mut self) {
        self.run_until(self.now);
    }

    /// Arms the node's timer for its [`Node::poll_timeout`] if that is
    /// earlier than the one armed (a later one is taken up when the armed
    /// timer fires: the queue holds at most about one timer per node).
    ///
    /// [`Node::poll_timeout`]: crate::chord::Node::poll_timeout
    pub(super) fn arm(&mut self, idx: usize) {
        let Some(n) = self.nodes.get(idx).and_then(Option::as_ref) else { return };
        let Some(at) = n.poll_timeout() else { return };
        let at = at.max(self.now);
        if at < self.timers[idx] {
            self.timers[idx] = at;
            self.schedule(at, Delivery::Timer { node: idx, at });
        }
    }

    /// A node's timer fired: tick it if its work is still due, else arm it
    /// again for the (later) time it now asks.
    pub(super) fn fire(&mut self, idx: usize, at: Time) {
        if self.timers.get(idx) != Some(&at) {
            return;
        }
        self.timers[idx] = UNARMED;
        if self.paused.contains_key(&idx) {
            return;
        }
        let now = self.now;
        let Some(n) = self.nodes[idx].as_mut() else { return };
        match n.poll_timeout() {
            Some(t) if t > now => {
                self.timers[idx] = t;
                self.schedule(t, Delivery::Timer { node: idx, at: t });
            }
            Some(_) => {
                n.on_tick(now);
                for conn in n.key_streams() {
                    n.stream_keys(conn, STREAM_ROOM);
                }
                self.ticks += 1;
                self.dirty.insert(idx);
            }
            None => {}
        }
    }

    pub(super) fn tick_all(&mut self) {
        let now = self.now;
        for (idx, slot) in self.nodes.iter_mut().enumerate() {
            let Some(n) = slot.as_mut() else {
                continue;
            };
            if self.paused.contains_key(&idx) {
                continue;
            }
            n.on_tick(now);
            for conn in n.key_streams() {
                n.stream_keys(conn, STREAM_ROOM);
            }
            self.ticks += 1;
            self.dirty.insert(idx);
        }
    }

    /// Moves the clock by `ms` and settles: deliveries and node timers
    /// (each node's [`Node::poll_timeout`]) are taken in time order up to
    /// the new time, the clock following each. With a tick period
    /// ([`Sim::set_tick_ms`]) every node is also ticked at each multiple of
    /// it on the way (the former fixed tick, for comparison).
    ///
    /// [`Node::poll_timeout`]: crate::chord::Node::poll_timeout
    pub fn advance(&mut self, ms: u64) {
        let target = self.now + ms;
        // What callers queued happened now: send it before time moves.
        self.run();
        loop {
            let stop = match self.tick_ms {
                Some(_) => self.next_tick.min(target),
                None => target,
            };
            self.run_until(stop);
            self.now = stop;
            if let Some(period) = self.tick_ms.filter(|_| stop == self.next_tick) {
                self.next_tick += period;
                self.tick_all();
            }
            self.run();
            if stop == target {
                return;
            }
        }
    }
}
