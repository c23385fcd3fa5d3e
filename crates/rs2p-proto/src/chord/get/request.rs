//! One get as a state machine: its five tables' answers, its rechecks, and
//! what they call for next ([`GetReq::step`]). No node, no I/O: the node
//! carries out the step (`lifecycle.rs`); the tests below drive it alone.

use bytes::Bytes;

use super::answer::{decide, plurality, Answer};
use super::{CHURN_RECHECKS, RECHECK_MS};
use crate::chord::ItemKey;
use crate::core::{GetError, Time, Version};

/// One get in progress.
#[derive(Debug)]
pub(crate) struct GetReq {
    /// The key's five items, in table order.
    pub items: [ItemKey; 5],
    /// Each table's answer, as it came.
    pub answers: [Answer; 5],
    /// When the get gives up (what is in hand then decides, or "timeout").
    pub deadline: Time,
    /// Rechecks made so far (the next waits `RECHECK_MS << rechecks`).
    pub rechecks: u32,
    /// Tables whose owner said "missing" last time: a recheck peeks at the
    /// nodes before that owner (one may still be handing the item over).
    pub suspect: [bool; 5],
    /// Peeks still unanswered per table.
    pub peeks_left: [u8; 5],
    /// When the tables are to be asked again, if the answers disagreed.
    pub recheck_at: Option<Time>,
    /// A repair read: every answer is waited for (until the deadline) and
    /// handed to the repair as it is, with no majority rule and no event.
    pub internal: bool,
    /// Tables not asked yet (see [`super::HEDGE_MS`]).
    pub held_back: [bool; 5],
    /// When the get started (the held-back tables are asked [`super::HEDGE_MS`] later at most).
    pub started: Time,
}

/// What a get's answers call for ([`GetReq::step`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum GetStep {
    /// Answers are still coming.
    Wait,
    /// The first answers do not decide: ask the tables held back.
    AskHeldBack,
    /// Decided: the get ends with this result.
    Done(Result<Bytes, GetError>),
    /// The tables that disagreed were reset: ask them again now.
    AskAgain,
    /// ... at this time (the get waits until then).
    RecheckAt(Time),
}

/// What a step noticed, for the node's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct StepNotes {
    /// The tables held different versions of the value decided.
    pub version_conflict: bool,
    /// Tables held different values: the differing ones are asked again.
    pub disagreement: bool,
}

impl GetReq {
    /// A get of `items` started at `now`, every answer still open; the
    /// tables in `held_back` are asked only if the others do not decide.
    pub(crate) fn new(items: [ItemKey; 5], deadline: Time, held_back: [bool; 5], internal: bool, now: Time) -> GetReq {
        GetReq {
            items,
            answers: Default::default(),
            deadline,
            rechecks: 0,
            suspect: [false; 5],
            peeks_left: [0; 5],
            recheck_at: None,
            internal,
            held_back,
            started: now,
        }
    }

    /// Decides what the answers in hand call for at `now`, and when they
    /// call for asking again, resets the tables that differ from the most
    /// common value (a "missing" among them becomes a suspect, whose
    /// previous owners are peeked at). `churn`: the ring changed in our view
    /// a moment ago (a "not found" is checked again then); `second_opinion`:
    /// a node that held the item before its owner can be asked.
    pub(crate) fn step(
        &mut self,
        now: Time,
        churn: bool,
        second_opinion: impl Fn(ItemKey) -> bool,
    ) -> (GetStep, StepNotes) {
        let mut notes = StepNotes::default();
        let last = self.deadline <= now;
        let Some(result) = decide(&self.answers, last) else {
            let waiting = (0..5).any(|i| self.answers[i] == Answer::Open && !self.held_back[i]);
            let step = if !waiting && self.held_back.contains(&true) { GetStep::AskHeldBack } else { GetStep::Wait };
            return (step, notes);
        };
        let has_value = self.answers.iter().any(|a| matches!(a, Answer::Value(..)));
        let versions: Vec<Version> = self.answers.iter().filter_map(Answer::version).collect();
        notes.version_conflict = versions.iter().any(|v| *v != versions[0]) && result.is_ok();
        let first_look = self.rechecks == 0;
        // While the ring changes in our view, an item may be on its way to
        // an owner that does not hold it yet: "not found" is checked again too.
        let churn = churn && self.rechecks < CHURN_RECHECKS;
        let recheck = match result {
            // Tables disagree: ask again (later) while time remains.
            Err(GetError::NoAgreement) => !last && has_value,
            // Before "not found" stands, the nodes that held the missing
            // items before their owners are asked at once, where we can reach
            // them (an item being handed over is still there).
            Err(GetError::NotFound) if !last => {
                churn
                    || (first_look
                        && self.items.iter().zip(&self.answers).any(|(i, a)| a.is_missing() && second_opinion(*i)))
            }
            _ => false,
        };
        let delay = if first_look && !has_value { 0 } else { RECHECK_MS << self.rechecks.min(16) };
        let at = now.saturating_add(delay);
        if !recheck || at >= self.deadline {
            let result = if recheck { decide(&self.answers, true).unwrap_or(result) } else { result };
            return (GetStep::Done(result), notes);
        }
        self.rechecks += 1;
        notes.disagreement = has_value && matches!(result, Err(GetError::NoAgreement));
        // Only the tables that disagree with the most common value are asked
        // again; a "missing" is asked of the node that held the item before.
        let keep = plurality(&self.answers);
        for (a, suspect) in self.answers.iter_mut().zip(&mut self.suspect) {
            if keep.as_ref() != Some(&*a) {
                *suspect = a.is_missing();
                *a = Answer::Open;
            }
        }
        if delay == 0 {
            (GetStep::AskAgain, notes)
        } else {
            self.recheck_at = Some(at);
            (GetStep::RecheckAt(at), notes)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ring::{HashMethod, U512};

    fn req(deadline: Time) -> GetReq {
        let items = HashMethod::ALL.map(|m| (m, U512::from(7u64)));
        GetReq::new(items, deadline, [false, false, false, true, true], false, 0)
    }

    fn v(s: &'static str) -> Answer {
        Answer::Value(Bytes::from_static(s.as_bytes()), Version::ZERO)
    }

    const M: Answer = Answer::Missing(Version::ZERO);

    #[test]
    fn three_agreeing_tables_decide_without_the_held_back_two() {
        let mut g = req(10_000);
        g.answers[0] = v("x");
        g.answers[1] = v("x");
        assert_eq!(g.step(0, false, |_| false).0, GetStep::Wait);
        g.answers[2] = v("x");
        assert_eq!(g.step(0, false, |_| false).0, GetStep::Done(Ok(Bytes::from_static(b"x"))));
    }

    #[test]
    fn first_answers_that_do_not_decide_ask_the_held_back_tables() {
        let mut g = req(10_000);
        g.answers[0] = v("x");
        g.answers[1] = v("x");
        g.answers[2] = M;
        assert_eq!(g.step(0, false, |_| false).0, GetStep::AskHeldBack);
    }

    #[test]
    fn a_disagreement_resets_the_odd_tables_and_rechecks_later() {
        let mut g = req(10_000);
        g.held_back = [false; 5];
        g.answers = [v("x"), v("x"), v("y"), M, v("x")];
        // Three agree: decided at once.
        assert_eq!(g.step(0, false, |_| false).0, GetStep::Done(Ok(Bytes::from_static(b"x"))));
        // An owner out of reach could make a majority: "unavailable".
        g.answers = [v("x"), v("x"), v("y"), M, Answer::Unavailable];
        assert_eq!(g.step(1_000, false, |_| false).0, GetStep::Done(Err(GetError::Unavailable)));
        g.answers = [v("x"), v("x"), v("y"), M, M];
        let (step, notes) = g.step(1_000, false, |_| false);
        assert_eq!(step, GetStep::RecheckAt(1_000 + RECHECK_MS));
        assert!(notes.disagreement);
        assert_eq!(g.answers, [v("x"), v("x"), Answer::Open, Answer::Open, Answer::Open]);
        assert_eq!(g.suspect, [false, false, false, true, true]);
        assert_eq!(g.rechecks, 1);
        // The next recheck waits twice as long.
        g.recheck_at = None;
        g.answers[2] = v("y");
        g.answers[3] = v("y");
        g.answers[4] = M;
        assert_eq!(g.step(2_000, false, |_| false).0, GetStep::RecheckAt(2_000 + 2 * RECHECK_MS));
    }

    #[test]
    fn not_found_stands_only_after_second_opinions_and_churn() {
        let mut g = req(10_000);
        g.held_back = [false; 5];
        g.answers = [M, M, M, M, M];
        assert_eq!(g.step(0, false, |_| false).0, GetStep::Done(Err(GetError::NotFound)));
        // A node that held an item before its owner: asked at once.
        assert_eq!(g.step(0, false, |_| true).0, GetStep::AskAgain);
        assert_eq!(g.answers, [Answer::Open, Answer::Open, Answer::Open, Answer::Open, Answer::Open]);
        assert_eq!(g.suspect, [true; 5]);
        // Churn: checked again, at most CHURN_RECHECKS times.
        let mut g = req(10_000);
        g.held_back = [false; 5];
        for n in 0..CHURN_RECHECKS {
            g.answers = [M, M, M, M, M];
            g.recheck_at = None;
            assert!(matches!(g.step(u64::from(n), true, |_| false).0, GetStep::AskAgain | GetStep::RecheckAt(_)));
        }
        g.answers = [M, M, M, M, M];
        assert_eq!(g.step(9, true, |_| false).0, GetStep::Done(Err(GetError::NotFound)));
    }

    #[test]
    fn the_deadline_decides_with_what_is_in_hand() {
        let mut g = req(1_000);
        g.held_back = [false; 5];
        g.answers[0] = v("x");
        g.answers[1] = v("x");
        assert_eq!(g.step(999, false, |_| false).0, GetStep::Wait);
        assert_eq!(g.step(1_000, false, |_| false).0, GetStep::Done(Err(GetError::Timeout)));
        // A disagreement whose recheck would fall after the deadline ends it.
        let mut g = req(1_100);
        g.answers = [v("x"), v("x"), v("y"), v("y"), M];
        assert_eq!(g.step(1_000, false, |_| false).0, GetStep::Done(Err(GetError::NoAgreement)));
    }

    #[test]
    fn versions_that_differ_are_noted() {
        let mut g = req(10_000);
        let new = Answer::Value(Bytes::from_static(b"x"), Version { hlc: 9, writer: 1 });
        let old = Answer::Value(Bytes::from_static(b"x"), Version { hlc: 3, writer: 1 });
        g.answers = [new.clone(), new, old, Answer::Open, Answer::Open];
        let (step, notes) = g.step(0, false, |_| false);
        assert_eq!(step, GetStep::Done(Ok(Bytes::from_static(b"x"))));
        assert!(notes.version_conflict);
    }
}
