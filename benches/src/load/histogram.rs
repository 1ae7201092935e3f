//! A fixed-size latency histogram (µs): 1 µs buckets below 1024 µs, then 64
//! buckets per power of two (≈1.6 % resolution) up to `u32::MAX` µs.
//!
//! Fixed size and allocated (and touched) up front, so recording never
//! allocates and the generator's memory does not grow with the number of
//! packets, which keeps the RSS-per-call figure about the engine.

/// Buckets with 1 µs resolution.
const LINEAR: u32 = 1024;
/// log2 of the sub-buckets per power of two above [`LINEAR`].
const SUB_BITS: u32 = 6;
const SUB: u32 = 1 << SUB_BITS;
/// Octaves 2^10 … 2^31.
const OCTAVES: u32 = 32 - 10;
/// Number of buckets.
pub const BUCKETS: usize = (LINEAR + OCTAVES * SUB) as usize;

/// Latency histogram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Histogram {
    counts: Vec<u32>,
    total: u64,
    max_us: u32,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

fn bucket(us: u32) -> usize {
    if us < LINEAR {
        return us as usize;
    }
    let exp = 31 - us.leading_zeros(); // ≥ 10
    let sub = (us >> (exp - SUB_BITS)) & (SUB - 1);
    (LINEAR + (exp - 10) * SUB + sub) as usize
}

/// Smallest value (µs) of a bucket.
fn lower_bound(bucket: usize) -> u32 {
    let b = u32::try_from(bucket).unwrap_or(u32::MAX);
    if b < LINEAR {
        return b;
    }
    let k = b - LINEAR;
    let exp = 10 + k / SUB;
    (SUB + k % SUB) << (exp - SUB_BITS)
}

impl Histogram {
    /// An empty histogram whose memory is already resident.
    pub fn new() -> Histogram {
        // `vec![1; n]` writes every element (a zeroed allocation might stay
        // unmapped until the first record); reset to zero afterwards.
        let mut counts = vec![1u32; BUCKETS];
        counts.fill(0);
        Histogram {
            counts,
            total: 0,
            max_us: 0,
        }
    }

    /// Record a latency given in ns.
    pub fn record_ns(&mut self, ns: u64) {
        let us = u32::try_from(ns / 1000).unwrap_or(u32::MAX);
        if let Some(c) = self.counts.get_mut(bucket(us)) {
            *c = c.saturating_add(1);
        }
        self.total += 1;
        self.max_us = self.max_us.max(us);
    }

    /// Add `other`'s samples.
    pub fn merge(&mut self, other: &Histogram) {
        for (c, o) in self.counts.iter_mut().zip(&other.counts) {
            *c = c.saturating_add(*o);
        }
        self.total += other.total;
        self.max_us = self.max_us.max(other.max_us);
    }

    /// Samples recorded.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The `q`-quantile (0–1) in µs (lower bound of its bucket); `None`
    /// when empty.
    pub fn quantile_us(&self, q: f64) -> Option<f64> {
        if self.total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0u64;
        for (i, c) in self.counts.iter().enumerate() {
            seen += u64::from(*c);
            if seen >= rank {
                return Some(f64::from(lower_bound(i)));
            }
        }
        Some(f64::from(self.max_us))
    }

    /// Largest sample in µs; `None` when empty.
    pub fn max_us(&self) -> Option<f64> {
        (self.total > 0).then(|| f64::from(self.max_us))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_bounds_round_trip() {
        let mut last = 0;
        for us in [
            0u32,
            1,
            500,
            1023,
            1024,
            1040,
            2047,
            2048,
            100_000,
            u32::MAX,
        ] {
            let b = bucket(us);
            assert!(b >= last && b < BUCKETS, "{us} → {b}");
            assert!(lower_bound(b) <= us, "{us}: bound {}", lower_bound(b));
            assert_eq!(bucket(lower_bound(b)), b);
            last = b;
        }
        // ≈1.6 % resolution above 1 ms.
        let us = 100_000;
        assert!(f64::from(us - lower_bound(bucket(us))) / f64::from(us) < 0.016);
    }

    #[test]
    fn quantiles_and_merge() {
        let mut h = Histogram::new();
        assert_eq!(h.quantile_us(0.5), None);
        for us in 1..=100u64 {
            h.record_ns(us * 1000 + 999);
        }
        assert_eq!(h.quantile_us(0.5), Some(50.0));
        assert_eq!(h.quantile_us(0.99), Some(99.0));
        assert_eq!(h.max_us(), Some(100.0));
        let mut other = Histogram::new();
        other.record_ns(5_000_000);
        h.merge(&other);
        assert_eq!(h.count(), 101);
        assert_eq!(h.quantile_us(1.0), Some(4992.0)); // bucket of 5000 µs
        assert_eq!(h.max_us(), Some(5000.0));
    }
}
