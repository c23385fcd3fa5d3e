//! The event queue: deliveries ordered by (due time, sequence number),
//! and the loops that run the network until it is quiet or until a time.

use std::cmp::Ordering;

use bytes::Bytes;

use super::{Sim, MAX_RUN_STEPS, STREAM_ROOM};
use crate::core::{ConnId, Time};

/// One thing the network will hand to a node.
pub(super) enum Delivery {
    Data { node: usize, conn: ConnId, bytes: Bytes },
    Closed { node: usize, conn: ConnId },
}

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
            self.dirty.insert(idx);
        }
    }

    /// Moves the clock by `ms`, ticking every node, and settles. With zero
    /// latency and no tick period (the defaults) the clock jumps, every node
    /// ticks once, then everything is delivered. Otherwise deliveries are
    /// made in time order up to the new time, with every node ticked at each
    /// multiple of the tick period on the way (or once at the end).
    pub fn advance(&mut self, ms: u64) {
        let target = self.now + ms;
        let latency = self.latency.1 > 0;
        if latency {
            // What callers queued happened now: send it before time moves.
            self.run();
        }
        loop {
            let stop = match self.tick_ms {
                Some(_) => self.next_tick.min(target),
                None => target,
            };
            if latency {
                self.run_until(stop);
            }
            self.now = stop;
            match self.tick_ms {
                Some(period) if stop == self.next_tick => {
                    self.next_tick += period;
                    self.tick_all();
                }
                Some(_) => {}
                None => self.tick_all(),
            }
            self.run();
            if stop == target {
                return;
            }
        }
    }
}
