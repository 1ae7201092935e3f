//! Test support: tone generation and single-frequency measurement
//! (Goertzel algorithm), shared by the media unit tests.

use std::f64::consts::PI;

/// Amplitude of the `freq` component of `samples` (same unit as the
/// samples): a full-scale sine of amplitude `a` measures ≈ `a`.
pub(crate) fn amplitude(samples: &[i16], sample_rate: u32, freq: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let w = 2.0 * PI * freq / f64::from(sample_rate);
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s = f64::from(x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    let power = (s1 * s1 + s2 * s2 - coeff * s1 * s2).max(0.0);
    2.0 * power.sqrt() / samples.len() as f64
}

/// Level of `freq` relative to `reference` in dB (positive: `freq` louder).
pub(crate) fn ratio_db(samples: &[i16], sample_rate: u32, freq: f64, reference: f64) -> f64 {
    let a = amplitude(samples, sample_rate, freq).max(1e-9);
    let b = amplitude(samples, sample_rate, reference).max(1e-9);
    20.0 * (a / b).log10()
}

/// RMS level of `samples`.
pub(crate) fn rms(samples: &[i16]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let sum: f64 = samples.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
    (sum / samples.len() as f64).sqrt()
}

/// `n` samples of a sine at `freq`, starting at sample index `start` (so
/// consecutive frames join without a phase jump).
pub(crate) fn tone(freq: f64, sample_rate: u32, start: u64, n: usize, amplitude: f64) -> Vec<i16> {
    (0..n as u64)
        .map(|i| {
            let t = (start + i) as f64 / f64::from(sample_rate);
            (amplitude * (2.0 * PI * freq * t).sin()).round() as i16
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_a_tone() {
        let x = tone(1000.0, 8000, 0, 800, 10000.0);
        let a = amplitude(&x, 8000, 1000.0);
        assert!((a - 10000.0).abs() < 100.0, "{a}");
        assert!(amplitude(&x, 8000, 2500.0) < 200.0);
        assert!(ratio_db(&x, 8000, 1000.0, 2500.0) > 30.0);
        assert!((rms(&x) - 10000.0 / 2f64.sqrt()).abs() < 50.0);
    }
}
