//! When paced events are due: each message of a fixed-rate connection, each connection of a ramp.
//! Computed without arithmetic that can panic: a time too far to represent is never due.

use std::time::{Duration, Instant};

/// One connection's interval between messages when `connections` share `rate` messages per second
/// (the longest `Duration` if that is too long to represent).
pub fn interval(connections: u64, rate: f64) -> Duration {
    Duration::try_from_secs_f64(connections as f64 / rate).unwrap_or(Duration::MAX)
}

/// `seconds` after `start`; `None` when that is not a representable instant.
pub fn after(start: Instant, seconds: f64) -> Option<Instant> {
    start.checked_add(Duration::try_from_secs_f64(seconds).ok()?)
}

/// When event `n` (from 0) of a schedule of one every `every` from `start` is due; `None` when that
/// is not a representable instant.
pub fn due(start: Instant, every: Duration, n: u64) -> Option<Instant> {
    after(start, every.as_secs_f64() * n as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_too_far_to_represent_are_never_due_instead_of_panicking() {
        let now = Instant::now();
        assert_eq!(interval(1, 1e-300), Duration::MAX);
        assert_eq!(due(now, Duration::MAX, 2), None);
        assert_eq!(after(now, f64::INFINITY), None);
        assert_eq!(after(now, -1.0), None);
        assert_eq!(due(now, Duration::from_millis(10), 3), Some(now + Duration::from_millis(30)));
    }
}
