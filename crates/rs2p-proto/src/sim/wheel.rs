//! A timing wheel: the event queue's store, in the exact order of a
//! binary heap on (due time, sequence number), with O(1) pushes and pops.
//!
//! Almost every event is due within a few seconds (a frame within the
//! link latency, a node's timer within its keepalive period), and times
//! are whole milliseconds. So the next [`SLOTS`] milliseconds each have a
//! slot, a FIFO of the events due then; a bitmap finds the next slot with
//! events. Later events wait in a heap and move to their slot when it
//! comes within range. With a heap of every event, each pop walked down
//! a heap of one timer per node plus the frames in flight (8.6 % of the
//! CPU at 20,000 nodes); here a pop reads the head of one slot.
//!
//! Order: within a slot, events are in the order they were pushed, which
//! is their sequence order, because an event goes to the overflow heap
//! only while its slot is out of range, and the heap's events for a slot
//! are moved (in heap order) as soon as it comes in range, before any
//! later push can reach it.

use std::collections::{BinaryHeap, VecDeque};

use super::queue::Scheduled;
use crate::core::Time;

/// Milliseconds covered by slots: past the longest link latency and the
/// 2 s keepalive round, so that only idle wake-ups and long backoffs go
/// through the overflow heap.
const SLOTS: usize = 1 << 13;

/// Room an emptied slot keeps for its next use (a slot is reused every
/// `SLOTS` ms); a burst's larger buffer is released, or a burst in every
/// slot would hold the memory of the largest queue for good.
const SLOT_KEEP: usize = 16;

/// Bits in one word of the occupancy bitmap.
const WORD: usize = 64;

/// Events ordered by (due time, sequence number), earliest first.
pub(super) struct Wheel {
    /// Slot `t % SLOTS` holds the events due at `t`, for `base <= t <
    /// base + SLOTS`, in sequence order.
    slots: Vec<VecDeque<Scheduled>>,
    /// One bit per slot: it holds events.
    occupied: Vec<u64>,
    /// The time of the last event popped: no event is due earlier, and
    /// none may be pushed for earlier (the clock never goes back).
    base: Time,
    /// Events due at `base + SLOTS` or later.
    overflow: BinaryHeap<Scheduled>,
    /// Events in the slots.
    in_slots: usize,
}

impl Wheel {
    /// An empty wheel whose events are all due at `base` or later.
    pub(super) fn new(base: Time) -> Wheel {
        Wheel {
            slots: (0..SLOTS).map(|_| VecDeque::new()).collect(),
            occupied: vec![0; SLOTS / WORD],
            base,
            overflow: BinaryHeap::new(),
            in_slots: 0,
        }
    }

    /// Events waiting.
    pub(super) fn len(&self) -> usize {
        self.in_slots + self.overflow.len()
    }

    /// Adds an event; its sequence number must exceed every one pushed
    /// before, and its time be at least that of the last one popped.
    pub(super) fn push(&mut self, s: Scheduled) {
        // Filed under another time than its own, it would be popped out
        // of order or not at all: a bug in the caller, so stop here.
        assert!(s.at >= self.base, "an event due before the queue's time");
        let at = s.at;
        if at - self.base < SLOTS as u64 {
            self.put(at, s);
        } else {
            self.overflow.push(s);
        }
    }

    fn put(&mut self, at: Time, s: Scheduled) {
        let i = (at % SLOTS as u64) as usize;
        self.slots[i].push_back(s);
        self.occupied[i / WORD] |= 1 << (i % WORD);
        self.in_slots += 1;
    }

    /// The earliest event, without taking it (the wheel does not move:
    /// events may still be pushed for any time from the last one popped).
    pub(super) fn peek(&self) -> Option<&Scheduled> {
        if self.in_slots == 0 {
            return self.overflow.peek();
        }
        let i = self.next_occupied((self.base % SLOTS as u64) as usize);
        self.slots[i].front()
    }

    /// Takes the earliest event; `base` moves to its time.
    pub(super) fn pop(&mut self) -> Option<Scheduled> {
        let at = self.peek()?.at;
        self.advance_to(at);
        let i = (at % SLOTS as u64) as usize;
        let s = self.slots[i].pop_front()?;
        self.in_slots -= 1;
        if self.slots[i].is_empty() {
            self.occupied[i / WORD] &= !(1 << (i % WORD));
            if self.slots[i].capacity() > SLOT_KEEP {
                self.slots[i] = VecDeque::new();
            }
        }
        Some(s)
    }

    /// Sets `base` to `to` (the earliest event's time) and moves the
    /// overflow's events now in range to their slots, in order.
    fn advance_to(&mut self, to: Time) {
        self.base = to;
        while let Some(s) = self.overflow.peek() {
            if s.at - self.base >= SLOTS as u64 {
                break;
            }
            let s = self.overflow.pop().expect("peeked");
            self.put(s.at, s);
        }
    }

    /// The first occupied slot at or after `from`, wrapping (some is).
    fn next_occupied(&self, from: usize) -> usize {
        let words = SLOTS / WORD;
        let (w0, b0) = (from / WORD, from % WORD);
        let first = self.occupied[w0] & (!0u64 << b0);
        if first != 0 {
            return w0 * WORD + first.trailing_zeros() as usize;
        }
        for k in 1..=words {
            let w = (w0 + k) % words;
            let bits = if w == w0 { self.occupied[w] & !(!0u64 << b0) } else { self.occupied[w] };
            if bits != 0 {
                return w * WORD + bits.trailing_zeros() as usize;
            }
        }
        unreachable!("no occupied slot while events are in the slots")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::ConnId;
    use crate::sim::queue::Delivery;
    use crate::sim::SimRng;

    fn event(at: Time, seq: u64) -> Scheduled {
        Scheduled { at, seq, what: Delivery::Closed { node: 0, conn: ConnId(seq) } }
    }

    /// Pushes and pops interleaved, times near and far (past the slots,
    /// equal times, jumps of the clock): the wheel pops exactly as a heap.
    #[test]
    fn pops_in_the_order_of_a_heap() {
        let mut rng = SimRng::new(25);
        let mut wheel = Wheel::new(1_000);
        let mut heap = BinaryHeap::new();
        let (mut now, mut seq) = (1_000, 0);
        for round in 0..20_000u64 {
            for _ in 0..rng.below(4) {
                seq += 1;
                let ahead = match rng.below(10) {
                    0 => 0,
                    1..=6 => rng.below(60),
                    7 | 8 => rng.below(3 * SLOTS as u64),
                    _ => 60_000 + rng.below(1_000),
                };
                wheel.push(event(now + ahead, seq));
                heap.push(event(now + ahead, seq));
            }
            // Sometimes the clock moves on with nothing popped (`advance`).
            if round % 97 == 0 {
                now += rng.below(50);
                if let Some(next) = heap.peek() {
                    now = now.min(next.at);
                }
            }
            for _ in 0..rng.below(4) {
                let (w, h) = (wheel.pop(), heap.pop());
                assert_eq!(w.as_ref().map(|s| (s.at, s.seq)), h.as_ref().map(|s| (s.at, s.seq)));
                if let Some(s) = h {
                    now = now.max(s.at);
                }
            }
            assert_eq!(wheel.len(), heap.len());
            assert_eq!(wheel.peek().map(|s| (s.at, s.seq)), heap.peek().map(|s| (s.at, s.seq)));
        }
        while let Some(h) = heap.pop() {
            assert_eq!(wheel.pop().map(|s| (s.at, s.seq)), Some((h.at, h.seq)));
        }
        assert!(wheel.pop().is_none());
    }
}
