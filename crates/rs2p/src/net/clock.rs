//! The two clocks the shell gives the node: a monotonic one for every
//! protocol timer, and the wall clock that only dates messages and
//! tombstones.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::core::Time;

/// Milliseconds since the Unix epoch by the wall clock: dates messages and
/// tombstones, and may jump when the system clock is set.
pub(crate) fn wall_now() -> Time {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// The monotonic clock every protocol timer runs on, in milliseconds. It
/// starts at the wall-clock time of its first use (so that its values read
/// like dates in logs) and then only moves forward with [`Instant`].
pub(crate) fn now() -> Time {
    static ORIGIN: std::sync::OnceLock<(Instant, Time)> = std::sync::OnceLock::new();
    let (origin, base) = ORIGIN.get_or_init(|| (Instant::now(), wall_now()));
    base.saturating_add(origin.elapsed().as_millis() as u64)
}
