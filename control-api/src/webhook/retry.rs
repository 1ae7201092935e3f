//! When to try a delivery again: `[webhooks] retry_schedule_secs` with
//! ±10 % jitter, or later when the receiver's `Retry-After` says so.

use std::time::Duration;

use crate::util::time::parse_rfc3339;

/// Fraction of a delay added or removed at random.
pub const JITTER: f64 = 0.10;
/// The longest `Retry-After` honoured.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// The retry schedule: the delay before each attempt (the first one
/// counted from the event). Its length is the number of attempts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    schedule: Vec<Duration>,
}

impl RetryPolicy {
    /// From `[webhooks] retry_schedule_secs`.
    pub fn from_secs(schedule_secs: &[u64]) -> Self {
        RetryPolicy {
            schedule: schedule_secs
                .iter()
                .map(|s| Duration::from_secs(*s))
                .collect(),
        }
    }

    /// How many attempts a delivery gets.
    pub fn max_attempts(&self) -> usize {
        self.schedule.len()
    }

    /// The delay before the first attempt.
    pub fn first_delay(&self) -> Duration {
        self.schedule.first().copied().unwrap_or_default()
    }

    /// After `attempts_made` failed attempts: how long until the next one,
    /// `None` when the schedule is exhausted. `unit` in `[-1, 1]` picks the
    /// jitter; a `retry_after` longer than the scheduled delay wins.
    pub fn next_delay(
        &self,
        attempts_made: usize,
        retry_after: Option<Duration>,
        unit: f64,
    ) -> Option<Duration> {
        let base = *self.schedule.get(attempts_made)?;
        let delay = jittered(base, unit);
        Some(match retry_after {
            Some(ra) => delay.max(ra.min(MAX_RETRY_AFTER)),
            None => delay,
        })
    }
}

/// `base` changed by `unit × 10 %` (`unit` clamped to `[-1, 1]`).
pub fn jittered(base: Duration, unit: f64) -> Duration {
    let factor = 1.0 + JITTER * unit.clamp(-1.0, 1.0);
    base.mul_f64(factor)
}

/// A `Retry-After` value (delta-seconds or an HTTP-date such as
/// `Sun, 06 Nov 1994 08:49:37 GMT`) as a delay from `now_ms`. Dates in the
/// past mean no delay; anything unparsable is `None`.
pub fn parse_retry_after(value: &str, now_ms: i64) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return value.parse::<u64>().ok().map(Duration::from_secs);
    }
    let at = parse_http_date(value)?;
    let ms = at.saturating_sub(now_ms).max(0);
    Some(Duration::from_millis(u64::try_from(ms).unwrap_or(0)))
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) in unix ms.
fn parse_http_date(value: &str) -> Option<i64> {
    let mut parts = value.split_ascii_whitespace();
    let (_weekday, day, month, year, time, zone) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    if parts.next().is_some() || zone != "GMT" || day.len() != 2 {
        return None;
    }
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| *m == month)? + 1;
    parse_rfc3339(&format!("{year}-{month:02}-{day}T{time}Z"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy::from_secs(&[0, 5, 300])
    }

    #[test]
    fn follows_the_schedule_then_gives_up() {
        let p = policy();
        assert_eq!(p.max_attempts(), 3);
        assert_eq!(p.first_delay(), Duration::ZERO);
        assert_eq!(p.next_delay(1, None, 0.0), Some(Duration::from_secs(5)));
        assert_eq!(p.next_delay(2, None, 0.0), Some(Duration::from_secs(300)));
        assert_eq!(p.next_delay(3, None, 0.0), None);
    }

    #[test]
    fn jitter_stays_within_ten_percent() {
        let p = policy();
        assert_eq!(p.next_delay(2, None, 1.0), Some(Duration::from_secs(330)));
        assert_eq!(p.next_delay(2, None, -1.0), Some(Duration::from_secs(270)));
        assert_eq!(p.next_delay(2, None, 7.0), Some(Duration::from_secs(330)));
        assert_eq!(p.next_delay(0, None, 1.0), Some(Duration::ZERO));
    }

    #[test]
    fn a_longer_retry_after_wins_and_is_capped() {
        let p = policy();
        let ra = |s| Some(Duration::from_secs(s));
        assert_eq!(p.next_delay(1, ra(60), 0.0), ra(60));
        assert_eq!(p.next_delay(1, ra(1), 0.0), ra(5));
        assert_eq!(
            p.next_delay(1, ra(10 * 24 * 3600), 0.0),
            Some(MAX_RETRY_AFTER)
        );
        assert_eq!(
            p.next_delay(3, ra(60), 0.0),
            None,
            "exhausted stays exhausted"
        );
    }

    #[test]
    fn parses_retry_after_forms() {
        // 1994-11-06T08:49:37Z
        let date_ms = 784_111_777_000;
        assert_eq!(parse_retry_after("120", 0), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after(" 0 ", 0), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", date_ms - 30_000),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", date_ms + 1),
            Some(Duration::ZERO),
            "a date in the past"
        );
        for bad in [
            "",
            "-5",
            "1.5",
            "soon",
            "Sun, 06 Nov 1994 08:49:37 PST",
            "Sun, 6 Nov 1994 08:49:37 GMT",
        ] {
            assert_eq!(parse_retry_after(bad, 0), None, "{bad}");
        }
    }
}
