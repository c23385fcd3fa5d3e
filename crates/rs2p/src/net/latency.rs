//! Latency histograms of the gets and sets made through a socket, by
//! outcome. Kept in the shell: the core's clock counts milliseconds, and a
//! get on loopback takes about a tenth of one.

use std::sync::Mutex;
use std::time::Duration;

use crate::core::GetError;

/// Upper bounds of the histogram buckets, in seconds: 100 µs (a get on
/// loopback) to 10 s (the default get timeout), about ×2.5 apart.
pub const LATENCY_BUCKETS_S: [f64; 16] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// How a get (or set) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A value (for a set: the stores were queued).
    Ok,
    /// At least 3 tables said the key is missing.
    NotFound,
    /// No value agreed by 3 of the 5 tables.
    NoAgreement,
    /// Not enough answers in time.
    Timeout,
    /// The owners could not be reached.
    Unavailable,
    /// The node was closed.
    Closed,
}

impl Outcome {
    /// Every outcome, in label order.
    pub const ALL: [Outcome; 6] =
        [Outcome::Ok, Outcome::NotFound, Outcome::NoAgreement, Outcome::Timeout, Outcome::Unavailable, Outcome::Closed];

    /// The label value (`outcome="..."`).
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::NotFound => "not_found",
            Outcome::NoAgreement => "no_agreement",
            Outcome::Timeout => "timeout",
            Outcome::Unavailable => "unavailable",
            Outcome::Closed => "closed",
        }
    }

    /// The outcome of a failed get.
    pub fn of(e: &GetError) -> Outcome {
        match e {
            GetError::NotFound => Outcome::NotFound,
            GetError::NoAgreement => Outcome::NoAgreement,
            GetError::Timeout => Outcome::Timeout,
            GetError::Unavailable => Outcome::Unavailable,
            GetError::Closed => Outcome::Closed,
        }
    }
}

/// One histogram: counts per bucket of [`LATENCY_BUCKETS_S`] (not
/// cumulative; the last slot counts what is above every bound), and the sum.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    /// Observations per bucket; `buckets[LATENCY_BUCKETS_S.len()]` is +Inf.
    pub buckets: [u64; 17],
    /// Observations.
    pub count: u64,
    /// Sum of the observations, in seconds.
    pub sum_s: f64,
}

impl Histogram {
    /// Adds one observation.
    pub fn observe(&mut self, d: Duration) {
        let s = d.as_secs_f64();
        let slot = LATENCY_BUCKETS_S.iter().position(|b| s <= *b).unwrap_or(LATENCY_BUCKETS_S.len());
        self.buckets[slot] += 1;
        self.count += 1;
        self.sum_s += s;
    }
}

/// Histograms by outcome, indexed as [`Outcome::ALL`].
pub type ByOutcome = [Histogram; 6];

/// The histograms of one socket (shared by its clones).
#[derive(Debug, Default)]
pub(crate) struct Latencies {
    /// Gets and sets, by outcome.
    inner: Mutex<(ByOutcome, ByOutcome)>,
}

impl Latencies {
    /// Records a get.
    pub fn get(&self, outcome: Outcome, d: Duration) {
        self.record(true, outcome, d);
    }

    /// Records a set.
    pub fn set(&self, outcome: Outcome, d: Duration) {
        self.record(false, outcome, d);
    }

    fn record(&self, get: bool, outcome: Outcome, d: Duration) {
        let slot = Outcome::ALL.iter().position(|o| *o == outcome).unwrap_or(0);
        let mut h = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let which = if get { &mut h.0 } else { &mut h.1 };
        which[slot].observe(d);
    }

    /// Copies of the get and set histograms.
    pub fn snapshot(&self) -> (ByOutcome, ByOutcome) {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
