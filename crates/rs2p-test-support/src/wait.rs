//! Bounded polling: every wait in the tests is one of these.
//!
//! * [`until`] (async) polls a condition until it holds and panics with
//!   `timed out after LIMIT waiting for WHAT` when `limit` runs out;
//!   [`holds_within`] is the same wait returning whether the condition held,
//!   for tests that repair or report instead of failing.
//! * [`until_async`] and [`holds_within_async`] take a condition that is
//!   itself async (asks a py2p process, awaits a socket).
//! * [`until_ok`] (blocking) polls a fallible check, for tests driving
//!   processes from plain threads; it returns the check's value and fails
//!   with the check's last error. [`ok_by`] is the same wait returning the
//!   last error instead, and [`until_ok_async`] takes an async check.
//!
//! Conditions are always tried once more at (or after) the deadline, so a
//! condition that holds in time is never reported as timed out.

use std::future::Future;
use std::thread;
use std::time::{Duration, Instant};

/// Between tries of an in-process condition (cheap: a look at a socket's
/// state).
pub const POLL: Duration = Duration::from_millis(10);
/// Between tries of an async condition (each may be a round trip to another
/// process).
pub const POLL_ASYNC: Duration = Duration::from_millis(25);
/// Between tries of a blocking check (each may run a process).
pub const POLL_BLOCKING: Duration = Duration::from_millis(50);

/// Polls `cond` every [`POLL`] until it holds; panics naming `what` after `limit`.
pub async fn until(what: &str, limit: Duration, cond: impl FnMut() -> bool) {
    assert!(holds_within(limit, cond).await, "timed out after {limit:?} waiting for {what}");
}

/// Polls `cond` every [`POLL`] for up to `limit`; false if it never held.
pub async fn holds_within(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// [`until`] for an async condition, polled every [`POLL_ASYNC`].
pub async fn until_async<F, Fut>(what: &str, limit: Duration, cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    assert!(holds_within_async(limit, cond).await, "timed out after {limit:?} waiting for {what}");
}

/// [`holds_within`] for an async condition, polled every [`POLL_ASYNC`].
pub async fn holds_within_async<F, Fut>(limit: Duration, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if cond().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(POLL_ASYNC).await;
    }
}

/// Runs `check` every [`POLL_BLOCKING`] (sleeping the thread) until it
/// returns `Ok`, for at most `limit`; then panics naming `what` with the last
/// error.
pub fn until_ok<T>(what: &str, limit: Duration, check: impl FnMut() -> Result<T, String>) -> T {
    ok_by(Instant::now() + limit, POLL_BLOCKING, check)
        .unwrap_or_else(|last| panic!("{what}: still not true after {limit:?}; last attempt: {last}"))
}

/// Runs `check` every `every` (sleeping the thread) until it returns `Ok`
/// or `deadline` passes (tried at least once); then its last error. For a
/// test that reports every condition that failed instead of the first.
pub fn ok_by<T>(deadline: Instant, every: Duration, mut check: impl FnMut() -> Result<T, String>) -> Result<T, String> {
    loop {
        match check() {
            Ok(v) => return Ok(v),
            Err(last) if Instant::now() >= deadline => return Err(last),
            Err(_) => thread::sleep(every),
        }
    }
}

/// [`until_ok`] for an async check, run every `every`.
pub async fn until_ok_async<T, F, Fut>(what: &str, limit: Duration, every: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + limit;
    loop {
        match check().await {
            Ok(v) => return v,
            Err(last) if Instant::now() >= deadline => {
                panic!("{what}: still not true after {limit:?}; last attempt: {last}")
            }
            Err(_) => tokio::time::sleep(every).await,
        }
    }
}
