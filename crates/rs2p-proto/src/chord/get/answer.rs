//! One table's answer to a get, and the rule that decides a get from the
//! five answers.

use bytes::Bytes;

use crate::core::{GetError, Version};

/// One table's answer to a `get`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum Answer {
    /// Not in yet.
    #[default]
    Open,
    /// The owner holds this value, at this version (zero: a py2p copy).
    Value(Bytes, Version),
    /// The owner said it holds nothing; with a version, it remembers the
    /// item's delete at that version (a tombstone).
    Missing(Version),
    /// No owner could be asked (no seeding peer, or we lost ours).
    Unavailable,
}

impl Answer {
    /// The answer carried by a value from the wire or a table: empty means missing.
    pub(crate) fn from_value(value: Bytes, version: Version) -> Answer {
        if value.is_empty() {
            Answer::Missing(version)
        } else {
            Answer::Value(value, version)
        }
    }

    /// The version this answer carries, if it is in.
    pub(crate) fn version(&self) -> Option<Version> {
        match self {
            Answer::Value(_, v) | Answer::Missing(v) => Some(*v),
            _ => None,
        }
    }

    /// True for any "missing", tombstone or not.
    pub(crate) fn is_missing(&self) -> bool {
        matches!(self, Answer::Missing(_))
    }
}

/// The value held by at least 3 of the 5 tables, or why there is none, or
/// `None` while the outcome is still open (before the deadline, `last` =
/// false, every table is waited for unless 3 already agree on a value).
/// "Not found" needs every table to have answered, 3 of them positively
/// holding nothing and none holding a value; a table still silent at the
/// deadline makes it "timeout", an unreachable one "unavailable"; anything
/// else is "no agreement".
///
/// Versions (rs2p copies) come first: three tables agreeing on a value
/// decide unless an answer in already carries a higher version; once every
/// table has answered (or at the deadline), the highest version among the
/// answers wins (if none was out of reach), a value or a delete: a copy that missed a write or a
/// delete (a paused node, the other side of a partition) loses to the one
/// that saw it. Without versions (py2p copies) the majority rule stands.
pub(crate) fn decide(answers: &[Answer; 5], last: bool) -> Option<Result<Bytes, GetError>> {
    let mut counts: Vec<(&Bytes, usize, Version)> = Vec::new();
    let (mut open, mut missing, mut unavailable) = (0, 0, 0);
    for a in answers {
        match a {
            Answer::Open => open += 1,
            Answer::Missing(_) => missing += 1,
            Answer::Unavailable => unavailable += 1,
            Answer::Value(v, ver) => match counts.iter_mut().find(|(c, _, _)| *c == v) {
                Some((_, n, top)) => {
                    *n += 1;
                    *top = (*top).max(*ver);
                }
                None => counts.push((v, 1, *ver)),
            },
        }
    }
    let top = answers.iter().filter_map(Answer::version).max().unwrap_or_default();
    if let Some((v, _, ver)) = counts.iter().find(|(_, n, _)| *n >= 3) {
        if *ver >= top {
            return Some(Ok((*v).clone()));
        }
    }
    if open > 0 && !last {
        return None;
    }
    if !top.is_zero() && open == 0 && unavailable == 0 {
        // Every table answered: the highest version wins, a value or a
        // delete ("not found" on the evidence of a tombstone newer than
        // every value seen). With a table out of reach its copy may be
        // newer: the rules below say "unavailable" rather than guess.
        return match answers.iter().find(|a| a.version() == Some(top)) {
            Some(Answer::Value(v, _)) => Some(Ok(v.clone())),
            _ => Some(Err(GetError::NotFound)),
        };
    }
    // "Not found" only once every table is in and reachable: a table still
    // silent at the deadline, or out of reach, may hold the value at a
    // version that outranks every "missing" (a crashed owner's successor
    // answers "missing" until the repair reaches it), so it is "timeout" or
    // "unavailable", never a wrong "not found".
    if counts.is_empty() && missing >= 3 && open == 0 && unavailable == 0 {
        return Some(Err(GetError::NotFound));
    }
    if open > 0 {
        return Some(Err(GetError::Timeout));
    }
    let best = counts.iter().map(|(_, n, _)| *n).max().unwrap_or(0);
    if unavailable > 0 && (counts.is_empty() || best + unavailable >= 3) {
        return Some(Err(GetError::Unavailable));
    }
    Some(Err(GetError::NoAgreement))
}

/// The value most tables hold (ties: the first seen), as an answer.
pub(crate) fn plurality(answers: &[Answer; 5]) -> Option<Answer> {
    let mut best: Option<(&Answer, usize)> = None;
    for a in answers.iter().filter(|a| matches!(a, Answer::Value(..))) {
        let n = answers.iter().filter(|b| *b == a).count();
        if best.is_none_or(|(_, m)| n > m) {
            best = Some((a, n));
        }
    }
    best.map(|(a, _)| a.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Answer {
        Answer::Value(Bytes::copy_from_slice(s.as_bytes()), Version::ZERO)
    }

    fn bv(s: &str, hlc: u64) -> Answer {
        Answer::Value(Bytes::copy_from_slice(s.as_bytes()), Version { hlc, writer: 1 })
    }

    #[test]
    fn the_highest_version_wins() {
        let del = |hlc| Answer::Missing(Version { hlc, writer: 2 });
        let o = Answer::Open;
        // Three stale copies agreeing lose to a newer one already in.
        assert_eq!(decide(&[bv("old", 1), bv("old", 1), bv("old", 1), bv("new", 5), o.clone()], false), None);
        assert_eq!(
            decide(&[bv("old", 1), bv("old", 1), bv("old", 1), bv("new", 5), Answer::Missing(Version::ZERO)], false),
            Some(Ok(Bytes::from_static(b"new")))
        );
        // A newer delete beats older values: "not found".
        assert_eq!(
            decide(&[bv("old", 1), bv("old", 1), del(9), Answer::Missing(Version::ZERO), bv("old", 1)], false),
            Some(Err(GetError::NotFound))
        );
        // A write after the delete wins over it.
        assert_eq!(
            decide(&[bv("again", 10), del(9), del(9), del(9), Answer::Missing(Version::ZERO)], false),
            Some(Ok(Bytes::from_static(b"again")))
        );
        // ... once every table answered: at the deadline with one silent,
        // the old rules ("timeout").
        assert_eq!(decide(&[bv("again", 10), del(9), del(9), del(9), o.clone()], true), Some(Err(GetError::Timeout)));
        // A table out of reach may hold something newer: no guess.
        assert_eq!(
            decide(&[bv("a", 1), bv("a", 1), bv("b", 2), Answer::Unavailable, Answer::Unavailable], false),
            Some(Err(GetError::Unavailable))
        );
        // Three agreeing on the highest version decide at once.
        assert_eq!(
            decide(&[bv("v", 3), bv("v", 3), bv("v", 3), o.clone(), o], false),
            Some(Ok(Bytes::from_static(b"v")))
        );
    }

    #[test]
    fn majority_rules() {
        const M: Answer = Answer::Missing(Version::ZERO);
        use Answer::{Open as O, Unavailable as U};
        let v = || b("v");
        let ok = Some(Ok(Bytes::from_static(b"v")));
        assert_eq!(decide(&[v(), v(), v(), O, O], false), ok);
        assert_eq!(decide(&[v(), v(), O, O, O], false), None);
        // Every table is waited for before "not found"...
        assert_eq!(decide(&[M, M, M, O, O], false), None);
        assert_eq!(decide(&[M, M, M, M, M], false), Some(Err(GetError::NotFound)));
        // ... and at the deadline 3 positive "missing" are not enough: a
        // silent table may hold the value at a newer version.
        assert_eq!(decide(&[M, M, M, O, O], true), Some(Err(GetError::Timeout)));
        assert_eq!(decide(&[M, M, M, M, O], true), Some(Err(GetError::Timeout)));
        let newer = || bv("v", 7);
        assert_eq!(decide(&[M, M, M, newer(), newer()], true), Some(Ok(Bytes::from_static(b"v"))));
        assert_eq!(decide(&[M, M, O, O, O], true), Some(Err(GetError::Timeout)));
        assert_eq!(decide(&[v(), v(), M, M, M], false), Some(Err(GetError::NoAgreement)));
        assert_eq!(decide(&[b("a"), b("a"), b("b"), b("b"), M], false), Some(Err(GetError::NoAgreement)));
        // Unreachable owners never turn into "not found".
        assert_eq!(decide(&[U, U, U, U, U], false), Some(Err(GetError::Unavailable)));
        assert_eq!(decide(&[M, M, U, U, U], false), Some(Err(GetError::Unavailable)));
        assert_eq!(decide(&[v(), v(), U, U, U], false), Some(Err(GetError::Unavailable)));
        assert_eq!(decide(&[M, M, M, U, U], false), Some(Err(GetError::Unavailable)));
        assert_eq!(decide(&[b("a"), b("b"), b("c"), U, M], false), Some(Err(GetError::NoAgreement)));
    }
}
