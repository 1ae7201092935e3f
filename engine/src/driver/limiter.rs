//! Per-source budget (token bucket per IP) for sources that are not
//! trunks, spent by every datagram before it is parsed: a softphone
//! re-registering or calling stays far below it, a flood from one address
//! (junk, REGISTER/OPTIONS scanners) is dropped after the burst.

use std::net::IpAddr;
use std::time::Instant;

use dashmap::DashMap;

/// Sustained datagrams per second per source.
pub(crate) const PER_SECOND: f64 = 20.0;
/// Requests a source may send at once.
pub(crate) const BURST: f64 = 60.0;
/// Sources tracked at most; beyond it idle ones are forgotten.
const MAX_SOURCES: usize = 100_000;

struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Token buckets by source IP.
pub(crate) struct SourceLimiter {
    buckets: DashMap<IpAddr, Bucket>,
    rate: f64,
    burst: f64,
}

impl SourceLimiter {
    pub fn new(rate: f64, burst: f64) -> Self {
        SourceLimiter {
            buckets: DashMap::new(),
            rate,
            burst,
        }
    }

    /// Whether a request from `ip` at `now` is within its budget.
    pub fn allow(&self, ip: IpAddr, now: Instant) -> bool {
        if self.buckets.len() > MAX_SOURCES {
            let (rate, burst) = (self.rate, self.burst);
            self.buckets
                .retain(|_, b| now.saturating_duration_since(b.last).as_secs_f64() * rate < burst);
        }
        let mut b = self.buckets.entry(ip).or_insert(Bucket {
            tokens: self.burst,
            last: now,
        });
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.rate).min(self.burst);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn burst_then_rate() {
        let l = SourceLimiter::new(10.0, 5.0);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let t0 = Instant::now();
        assert_eq!((0..10).filter(|_| l.allow(ip, t0)).count(), 5, "burst");
        assert!(!l.allow(ip, t0 + Duration::from_millis(50)));
        assert!(
            l.allow(ip, t0 + Duration::from_millis(110)),
            "refilled at 10/s"
        );
        assert!(
            l.allow("192.0.2.2".parse().unwrap(), t0),
            "other sources unaffected"
        );
    }
}
