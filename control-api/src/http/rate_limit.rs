//! Per-API-key request budget (token bucket keyed by the key's hash):
//! `[http] rate_limit_per_sec` sustained, `rate_limit_burst` at once; over
//! it the request gets 429 `rate_limited` with `Retry-After`.

use std::sync::Arc;
use std::time::Instant;

use dashmap::DashMap;

/// Token buckets by API key hash.
#[derive(Clone)]
pub struct KeyLimiter {
    buckets: Arc<DashMap<String, (f64, Instant)>>,
    rate: f64,
    burst: f64,
}

impl KeyLimiter {
    /// `rate` requests/s sustained (0 = unlimited), `burst` at once.
    pub fn new(rate: u32, burst: u32) -> Self {
        KeyLimiter {
            buckets: Arc::new(DashMap::new()),
            rate: f64::from(rate),
            burst: f64::from(burst.max(1)),
        }
    }

    /// `Ok` when the key may make a request at `now`, else the seconds to
    /// wait.
    pub fn check(&self, key_hash: &str, now: Instant) -> Result<(), u64> {
        if self.rate <= 0.0 {
            return Ok(());
        }
        let mut entry = self
            .buckets
            .entry(key_hash.to_string())
            .or_insert((self.burst, now));
        let (tokens, last) = *entry;
        let tokens = (tokens + now.saturating_duration_since(last).as_secs_f64() * self.rate)
            .min(self.burst);
        if tokens >= 1.0 {
            *entry = (tokens - 1.0, now);
            Ok(())
        } else {
            *entry = (tokens, now);
            Err(((1.0 - tokens) / self.rate).ceil().max(1.0) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn burst_then_429_then_refill() {
        let l = KeyLimiter::new(2, 3);
        let t0 = Instant::now();
        assert!((0..3).all(|_| l.check("k", t0).is_ok()));
        assert_eq!(l.check("k", t0), Err(1));
        assert!(l.check("other", t0).is_ok(), "keys are independent");
        assert!(
            l.check("k", t0 + Duration::from_millis(600)).is_ok(),
            "refilled at 2/s"
        );
        assert!(
            KeyLimiter::new(0, 0).check("k", t0).is_ok(),
            "0 = unlimited"
        );
    }
}
