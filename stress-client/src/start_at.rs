//! `--start-at`: one moment on the wall clock at which clients on several hosts begin to measure, so
//! that their reports describe the same interval and merge into one. Parsed by hand (RFC 3339 in UTC,
//! or Unix seconds) rather than with a date crate, and turned into the instants the run uses and the
//! Unix seconds its report carries.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hostinfo::utc::{civil_from_days, days_from_civil, days_in_month};

/// How far in the past a start may lie and still be taken as "now": the children of `--processes`
/// parse the same time a moment after the parent, and a scheduler may start a client a little late.
pub const PAST_TOLERANCE: Duration = Duration::from_secs(1);
/// Furthest ahead a start may lie: a start further than a day away is much more likely a mistyped
/// date than a plan.
pub const MAX_AHEAD: Duration = Duration::from_secs(24 * 3600);

/// Parses `--start-at`: `YYYY-MM-DDTHH:MM:SS[.frac]Z` or Unix seconds (possibly fractional), no more
/// than [`PAST_TOLERANCE`] in the past nor [`MAX_AHEAD`] in the future.
pub fn parse_arg(text: &str) -> Result<SystemTime, String> {
    let text = text.trim();
    let at = parse(text).ok_or_else(|| {
        format!(
            "expected a time in UTC as YYYY-MM-DDTHH:MM:SS[.frac]Z (e.g. 2026-12-02T05:00:00Z) or Unix \
             seconds, got {text:?}"
        )
    })?;
    let now = SystemTime::now();
    if let Ok(past) = now.duration_since(at)
        && past > PAST_TOLERANCE
    {
        return Err(format!(
            "{text} is {:.1} s in the past: give a time ahead of now (and check that this host's clock \
             agrees with the others', e.g. with NTP)",
            past.as_secs_f64()
        ));
    }
    if let Ok(ahead) = at.duration_since(now)
        && ahead > MAX_AHEAD
    {
        return Err(format!(
            "{text} is {:.0} s ahead, more than {} s (24 h): is the date right?",
            ahead.as_secs_f64(),
            MAX_AHEAD.as_secs()
        ));
    }
    Ok(at)
}

/// `text` as a moment, if it is either form; no range check.
fn parse(text: &str) -> Option<SystemTime> {
    if text.contains(['T', 't']) {
        return rfc3339(text);
    }
    let seconds: f64 = text.parse().ok().filter(|s: &f64| s.is_finite() && *s >= 0.0 && *s < 1e11)?;
    Some(UNIX_EPOCH + Duration::from_secs_f64(seconds))
}

/// `YYYY-MM-DDTHH:MM:SS[.frac]Z`, the UTC form of RFC 3339 (no other offsets, no leap second).
fn rfc3339(text: &str) -> Option<SystemTime> {
    let body = text.strip_suffix(['Z', 'z'])?;
    let b = body.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') || b[13] != b':' {
        return None;
    }
    if b[16] != b':' {
        return None;
    }
    let digits = |from: usize, to: usize| -> Option<u64> {
        let part = body.get(from..to)?;
        if part.bytes().all(|c| c.is_ascii_digit()) { part.parse().ok() } else { None }
    };
    let (year, month, day) = (digits(0, 4)?, digits(5, 7)?, digits(8, 10)?);
    let (hour, minute, second) = (digits(11, 13)?, digits(14, 16)?, digits(17, 19)?);
    let fraction = match body.get(19..)? {
        "" => 0.0,
        frac => {
            let decimals = frac.strip_prefix('.')?;
            if decimals.is_empty() || decimals.len() > 9 || !decimals.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            format!("0.{decimals}").parse::<f64>().ok()?
        }
    };
    if !(1970..=9999).contains(&year) || !(1..=12).contains(&month) || day == 0 {
        return None;
    }
    if day > days_in_month(year, month) || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let whole = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
    Some(UNIX_EPOCH + Duration::from_secs(whole) + Duration::from_secs_f64(fraction))
}

/// Unix seconds as RFC 3339 in UTC to the ms (`2026-12-02T05:00:00.250Z`), the form `--start-at`
/// takes, for the readable summary.
pub fn rfc3339_of(seconds: f64) -> String {
    let ms = (seconds.max(0.0) * 1000.0).round() as u64;
    let (days, ms_of_day) = (ms / 86_400_000, ms % 86_400_000);
    let (year, month, day) = civil_from_days(days);
    let (hour, minute) = (ms_of_day / 3_600_000, ms_of_day / 60_000 % 60);
    let (second, milli) = (ms_of_day / 1000 % 60, ms_of_day % 1000);
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{milli:03}Z")
}

/// `at` on the monotonic clock the run uses (now, if it has passed).
pub fn instant(at: SystemTime) -> Instant {
    let (now, wall) = (Instant::now(), SystemTime::now());
    now + at.duration_since(wall).unwrap_or(Duration::ZERO)
}

/// The Unix seconds (to the µs) at which the monotonic `at` was, or will be.
pub fn unix_seconds(at: Instant) -> f64 {
    let (now, wall) = (Instant::now(), SystemTime::now());
    let wall = wall.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_secs_f64();
    let seconds = if at <= now {
        wall - now.duration_since(at).as_secs_f64()
    } else {
        wall + at.duration_since(now).as_secs_f64()
    };
    round_us(seconds)
}

/// Rounds Unix seconds to the µs: finer than any two hosts' clocks agree.
pub fn round_us(seconds: f64) -> f64 {
    (seconds * 1e6).round() / 1e6
}

/// This host's name (the kernel's, as in `/proc/sys/kernel/hostname`), as a report names it; empty
/// if the system will not say.
pub fn host_name() -> String {
    nix::unistd::gethostname().ok().and_then(|name| name.into_string().ok()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unix(text: &str) -> Option<f64> {
        parse(text).map(|t| t.duration_since(UNIX_EPOCH).unwrap().as_secs_f64())
    }

    #[test]
    fn both_forms_name_the_same_moment() {
        assert_eq!(unix("1970-01-01T00:00:00Z"), Some(0.0));
        assert_eq!(unix("2026-12-02T05:00:00Z"), Some(1_796_187_600.0));
        assert_eq!(unix("1796187600"), Some(1_796_187_600.0));
        assert_eq!(unix("2000-02-29T23:59:59.25Z"), Some(951_868_799.25));
        assert_eq!(unix("1796187600.5"), Some(1_796_187_600.5));
    }

    #[test]
    fn a_moment_written_out_reads_back_the_same() {
        assert_eq!(rfc3339_of(0.0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_of(1_796_187_600.25), "2026-12-02T05:00:00.250Z");
        assert_eq!(rfc3339_of(951_868_799.0), "2000-02-29T23:59:59.000Z");
        // Every day across several leap years and a century: the two calendars agree.
        for day in (0..60_000u64).step_by(17) {
            let seconds = (day * 86_400 + 3_723) as f64 + 0.5;
            assert_eq!(unix(&rfc3339_of(seconds)), Some(seconds), "day {day}");
        }
    }

    #[test]
    fn malformed_or_impossible_dates_are_refused() {
        for text in [
            "",
            "soon",
            "2026-12-02T05:00:00",
            "2026-12-02T05:00:00+01:00",
            "2026-13-02T05:00:00Z",
            "2026-02-29T05:00:00Z",
            "2026-12-02T24:00:00Z",
            "2026-12-02T05:00:60Z",
            "2026-12-02T05:00:00.Z",
            "2026-12-2T05:00:00Z",
            "-5",
            "NaN",
        ] {
            assert_eq!(parse(text), None, "{text:?}");
        }
    }

    #[test]
    fn a_start_in_the_past_or_too_far_ahead_is_refused() {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
        assert!(parse_arg(&format!("{}", now + 5.0)).is_ok());
        let past = parse_arg(&format!("{}", now - 60.0)).unwrap_err();
        assert!(past.contains("in the past"), "{past}");
        let far = parse_arg(&format!("{}", now + 2.0 * 86_400.0)).unwrap_err();
        assert!(far.contains("24 h"), "{far}");
    }
}
