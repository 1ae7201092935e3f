//! Time as INTEGER unix milliseconds, RFC 3339 UTC rendering and parsing
//! (handwritten: no date crate), and the injectable [`Clock`].

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const MS_PER_DAY: i64 = 86_400_000;

/// Days since 1970-01-01 → (year, month 1–12, day 1–31). Howard Hinnant's
/// `civil_from_days`, valid for the whole proleptic Gregorian calendar.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let day = doy - (153 * mp + 2) / 5 + 1; // [1, 31]
    let month = if mp < 10 { mp + 3 } else { mp - 9 }; // [1, 12]
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month as u32, day as u32)
}

/// (year, month, day) → days since 1970-01-01 (`days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let month = i64::from(month);
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

/// Render unix milliseconds as RFC 3339 UTC with milliseconds,
/// e.g. `2026-11-23T15:04:05.123Z`.
pub fn format_rfc3339(ms: i64) -> String {
    let days = ms.div_euclid(MS_PER_DAY);
    let in_day = ms.rem_euclid(MS_PER_DAY);
    let (year, month, day) = civil_from_days(days);
    let (h, rest) = (in_day / 3_600_000, in_day % 3_600_000);
    let (m, rest) = (rest / 60_000, rest % 60_000);
    let (s, milli) = (rest / 1000, rest % 1000);
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{milli:03}Z")
}

fn number(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Parse an RFC 3339 timestamp (`2026-11-23T15:04:05Z`, optional fraction,
/// `Z` or `±HH:MM` offset, `T`/`t`/space separator) into unix milliseconds.
/// Digits beyond milliseconds are truncated. `None` when malformed.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let s = s.trim();
    let date = s.get(0..10)?;
    let sep = s.get(10..11)?;
    if !matches!(sep, "T" | "t" | " ") {
        return None;
    }
    let rest = s.get(11..)?;
    let (year, month, day) = {
        let mut it = date.split('-');
        let (y, m, d) = (it.next()?, it.next()?, it.next()?);
        if y.len() != 4 || m.len() != 2 || d.len() != 2 || it.next().is_some() {
            return None;
        }
        (i64::from(number(y)?), number(m)?, number(d)?)
    };
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    let time = rest.get(0..8)?;
    let (h, mi, se) = {
        let mut it = time.split(':');
        let (h, m, s) = (it.next()?, it.next()?, it.next()?);
        if h.len() != 2 || m.len() != 2 || s.len() != 2 {
            return None;
        }
        (number(h)?, number(m)?, number(s)?)
    };
    if h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut rest = rest.get(8..)?;
    let mut millis = 0i64;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let frac_digits = frac.get(..digits)?;
        for (i, b) in frac_digits.bytes().take(3).enumerate() {
            millis += i64::from(b - b'0') * [100, 10, 1].get(i).copied().unwrap_or(0);
        }
        rest = frac.get(digits..)?;
    }
    let offset_ms = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.get(0..1)? {
                "+" => 1,
                "-" => -1,
                _ => return None,
            };
            let off = rest.get(1..)?;
            let (oh, om) = off.split_once(':')?;
            if oh.len() != 2 || om.len() != 2 {
                return None;
            }
            let (oh, om) = (number(oh)?, number(om)?);
            if oh > 23 || om > 59 {
                return None;
            }
            sign * (i64::from(oh) * 3_600_000 + i64::from(om) * 60_000)
        }
    };
    let secs = i64::from(h) * 3600 + i64::from(mi) * 60 + i64::from(se);
    Some(days_from_civil(year, month, day) * MS_PER_DAY + secs * 1000 + millis - offset_ms)
}

/// `SystemTime` → unix milliseconds (negative before 1970, saturating).
pub fn system_time_to_ms(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

/// Unix milliseconds → `SystemTime`.
pub fn ms_to_system_time(ms: i64) -> SystemTime {
    if ms >= 0 {
        UNIX_EPOCH + Duration::from_millis(ms.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs())
    }
}

/// The source of "now" for the control plane, injected so that TTL logic is
/// testable: the wall clock in production, tokio's (pausable) clock or a
/// manually set time in tests.
#[derive(Debug, Clone)]
pub struct Clock(ClockKind);

#[derive(Debug, Clone)]
enum ClockKind {
    System,
    Tokio {
        base_ms: i64,
        start: tokio::time::Instant,
    },
    Manual(Arc<AtomicI64>),
}

impl Clock {
    /// The wall clock.
    pub fn system() -> Self {
        Clock(ClockKind::System)
    }

    /// A clock that reads `base_ms` now and then advances with tokio's clock
    /// (so `tokio::time::pause()`/`advance()` move it). Must be created
    /// inside a tokio runtime.
    pub fn tokio(base_ms: i64) -> Self {
        Clock(ClockKind::Tokio {
            base_ms,
            start: tokio::time::Instant::now(),
        })
    }

    /// A clock that only moves when [`Clock::set_ms`] or
    /// [`Clock::advance_ms`] is called (tests).
    pub fn manual(now_ms: i64) -> Self {
        Clock(ClockKind::Manual(Arc::new(AtomicI64::new(now_ms))))
    }

    /// Now, in unix milliseconds.
    pub fn now_ms(&self) -> i64 {
        match &self.0 {
            ClockKind::System => system_time_to_ms(SystemTime::now()),
            ClockKind::Tokio { base_ms, start } => {
                let elapsed = i64::try_from(start.elapsed().as_millis()).unwrap_or(i64::MAX);
                base_ms.saturating_add(elapsed)
            }
            ClockKind::Manual(now) => now.load(Ordering::SeqCst),
        }
    }

    /// Set a manual clock (no effect on other kinds).
    pub fn set_ms(&self, now_ms: i64) {
        if let ClockKind::Manual(now) = &self.0 {
            now.store(now_ms, Ordering::SeqCst);
        }
    }

    /// Move a manual clock forward (no effect on other kinds).
    pub fn advance_ms(&self, delta_ms: i64) {
        if let ClockKind::Manual(now) = &self.0 {
            now.fetch_add(delta_ms, Ordering::SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_epoch_and_known_instants() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            format_rfc3339(1_795_446_245_123),
            "2026-11-23T15:04:05.123Z"
        );
        assert_eq!(format_rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(format_rfc3339(-1), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn parses_what_it_formats() {
        for ms in [
            0,
            1,
            999,
            951_782_400_000,
            1_795_446_245_123,
            4_102_444_799_999,
            -86_400_001,
        ] {
            assert_eq!(parse_rfc3339(&format_rfc3339(ms)), Some(ms), "{ms}");
        }
    }

    #[test]
    fn parses_offsets_and_fractions() {
        assert_eq!(
            parse_rfc3339("2026-11-23T15:04:05Z"),
            Some(1_795_446_245_000)
        );
        assert_eq!(
            parse_rfc3339("2026-11-23T16:04:05.1234+01:00"),
            Some(1_795_446_245_123)
        );
        assert_eq!(
            parse_rfc3339("2026-11-23 14:04:05.5-01:00"),
            Some(1_795_446_245_500)
        );
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "2026-11-23",
            "2026-13-01T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2026-11-23T24:00:00Z",
            "2026-11-23T15:04:05",
            "2026-11-23T15:04:05.Z",
            "2026-11-23T15:04:05+1:00",
            "2026-11-23X15:04:05Z",
            "２０２6-11-23T15:04:05Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn system_time_round_trip() {
        for ms in [0, 1_795_446_245_123, -5_000] {
            assert_eq!(system_time_to_ms(ms_to_system_time(ms)), ms);
        }
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = Clock::manual(1000);
        assert_eq!(c.now_ms(), 1000);
        c.advance_ms(500);
        assert_eq!(c.now_ms(), 1500);
        c.set_ms(42);
        assert_eq!(c.clone().now_ms(), 42);
    }

    #[tokio::test(start_paused = true)]
    async fn tokio_clock_follows_paused_time() {
        let c = Clock::tokio(10_000);
        assert_eq!(c.now_ms(), 10_000);
        tokio::time::advance(Duration::from_secs(61)).await;
        assert_eq!(c.now_ms(), 71_000);
    }
}
