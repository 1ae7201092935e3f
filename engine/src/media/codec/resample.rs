//! 8 kHz ↔ 48 kHz (factor 6) mono resampling with a windowed-sinc FIR.
//!
//! One low-pass prototype at 48 kHz serves both directions: 120 taps,
//! Kaiser window (β = 5.5), cut-off 3.7 kHz: flat to 3 kHz (−0.4 dB at
//! 3.2 kHz, −1.5 dB at 3.4 kHz, −16 dB at 4 kHz) and ≥ 55 dB down from
//! 4.4 kHz up, so the 4.4–8 kHz band cannot alias into a narrowband call. Both resamplers are polyphase (only the needed products are
//! computed: 20 per 48 kHz output sample when upsampling, 120 per 8 kHz
//! output sample when downsampling) and keep their filter history across
//! calls, so 20 ms frames join without clicks and the output does not
//! depend on how the input is split. The group delay is 59.5 samples at
//! 48 kHz (≈ 1.24 ms) either way.

use std::sync::OnceLock;

/// Resampling factor between 8 kHz and 48 kHz.
pub const FACTOR: usize = 6;
/// Taps of the 48 kHz prototype low-pass filter.
const TAPS: usize = 120;
/// Taps per polyphase branch.
const PHASE_TAPS: usize = TAPS / FACTOR;
/// Cut-off frequency (Hz) of the prototype at 48 kHz.
const CUTOFF_HZ: f64 = 3700.0;
/// Kaiser window shape.
const KAISER_BETA: f64 = 5.5;

/// The prototype low-pass (unity DC gain), designed once.
fn prototype() -> &'static [f32; TAPS] {
    static FILTER: OnceLock<[f32; TAPS]> = OnceLock::new();
    FILTER.get_or_init(design)
}

fn design() -> [f32; TAPS] {
    let fc = CUTOFF_HZ / 48_000.0;
    let mid = (TAPS as f64 - 1.0) / 2.0;
    let i0_beta = bessel_i0(KAISER_BETA);
    let mut h = [0f64; TAPS];
    for (n, c) in h.iter_mut().enumerate() {
        let t = n as f64 - mid;
        let x = 2.0 * fc * t;
        let sinc = if x == 0.0 {
            1.0
        } else {
            (std::f64::consts::PI * x).sin() / (std::f64::consts::PI * x)
        };
        let r = t / mid;
        let w = bessel_i0(KAISER_BETA * (1.0 - r * r).max(0.0).sqrt()) / i0_beta;
        *c = 2.0 * fc * sinc * w;
    }
    let sum: f64 = h.iter().sum();
    let mut out = [0f32; TAPS];
    for (o, c) in out.iter_mut().zip(h) {
        *o = (c / sum) as f32;
    }
    out
}

/// Modified Bessel function of the first kind, order 0 (power series).
fn bessel_i0(x: f64) -> f64 {
    let mut sum = 1.0;
    let mut term = 1.0;
    let half = x / 2.0;
    for k in 1..64 {
        let f = half / k as f64;
        term *= f * f;
        sum += term;
        if term < sum * 1e-16 {
            break;
        }
    }
    sum
}

#[inline]
fn to_i16(x: f32) -> i16 {
    // `as` saturates and maps NaN to 0.
    x.round() as i16
}

#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// 8 kHz → 48 kHz: six output samples per input sample.
#[derive(Debug, Clone)]
pub struct Upsampler {
    /// Per output phase, the branch coefficients ordered oldest → newest
    /// input, times the interpolation gain.
    phases: [[f32; PHASE_TAPS]; FACTOR],
    /// Last `PHASE_TAPS` inputs, stored twice so the window is contiguous.
    hist: [f32; 2 * PHASE_TAPS],
    /// Slot of the newest input in the first half of `hist`.
    pos: usize,
}

impl Default for Upsampler {
    fn default() -> Self {
        Self::new()
    }
}

impl Upsampler {
    /// A resampler with silent history.
    pub fn new() -> Self {
        let h = prototype();
        let mut phases = [[0f32; PHASE_TAPS]; FACTOR];
        for (p, phase) in phases.iter_mut().enumerate() {
            for (j, c) in phase.iter_mut().enumerate() {
                // y[6n + p] = 6 · Σ_k h[p + 6k] · x[n − k]; window slot j
                // holds x[n − (PHASE_TAPS − 1 − j)].
                let k = PHASE_TAPS - 1 - j;
                *c = h.get(p + FACTOR * k).copied().unwrap_or(0.0) * FACTOR as f32;
            }
        }
        Upsampler {
            phases,
            hist: [0.0; 2 * PHASE_TAPS],
            pos: 0,
        }
    }

    /// Resample `input` (8 kHz), appending exactly `6 × input.len()`
    /// samples (48 kHz) to `out`.
    pub fn process(&mut self, input: &[i16], out: &mut Vec<i16>) {
        out.reserve(input.len() * FACTOR);
        for &x in input {
            self.pos = (self.pos + 1) % PHASE_TAPS;
            let v = f32::from(x);
            self.hist[self.pos] = v;
            self.hist[self.pos + PHASE_TAPS] = v;
            let window = &self.hist[self.pos + 1..self.pos + 1 + PHASE_TAPS];
            for phase in &self.phases {
                out.push(to_i16(dot(phase, window)));
            }
        }
    }

    /// Forget the history (start of an unrelated stream).
    pub fn reset(&mut self) {
        self.hist = [0.0; 2 * PHASE_TAPS];
    }
}

/// 48 kHz → 8 kHz: one output sample per six input samples (the phase is
/// kept across calls, so any input length works).
#[derive(Debug, Clone)]
pub struct Downsampler {
    /// Filter coefficients ordered oldest → newest input.
    coeffs: [f32; TAPS],
    /// Last `TAPS` inputs, stored twice so the window is contiguous.
    hist: [f32; 2 * TAPS],
    /// Slot of the newest input in the first half of `hist`.
    pos: usize,
    /// Inputs since the last output sample.
    phase: usize,
}

impl Default for Downsampler {
    fn default() -> Self {
        Self::new()
    }
}

impl Downsampler {
    /// A resampler with silent history.
    pub fn new() -> Self {
        let h = prototype();
        let mut coeffs = [0f32; TAPS];
        for (j, c) in coeffs.iter_mut().enumerate() {
            *c = h.get(TAPS - 1 - j).copied().unwrap_or(0.0);
        }
        Downsampler {
            coeffs,
            hist: [0.0; 2 * TAPS],
            pos: 0,
            phase: 0,
        }
    }

    /// Resample `input` (48 kHz), appending the 8 kHz samples to `out`:
    /// `input.len() / 6` of them when the input is a whole number of 6s
    /// (every Opus frame is), otherwise the remainder carries over.
    pub fn process(&mut self, input: &[i16], out: &mut Vec<i16>) {
        out.reserve(input.len() / FACTOR + 1);
        for &x in input {
            self.pos = (self.pos + 1) % TAPS;
            let v = f32::from(x);
            self.hist[self.pos] = v;
            self.hist[self.pos + TAPS] = v;
            if self.phase == 0 {
                let window = &self.hist[self.pos + 1..self.pos + 1 + TAPS];
                out.push(to_i16(dot(&self.coeffs, window)));
            }
            self.phase = (self.phase + 1) % FACTOR;
        }
    }

    /// Forget the history and the phase (start of an unrelated stream).
    pub fn reset(&mut self) {
        self.hist = [0.0; 2 * TAPS];
        self.phase = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::goertzel::{amplitude, tone};

    /// Skip the filter's start-up transient before measuring.
    const SETTLE: usize = 600;

    fn up_all(x: &[i16], chunk: usize) -> Vec<i16> {
        let mut u = Upsampler::new();
        let mut out = Vec::new();
        for c in x.chunks(chunk.max(1)) {
            u.process(c, &mut out);
        }
        out
    }

    fn down_all(x: &[i16], chunk: usize) -> Vec<i16> {
        let mut d = Downsampler::new();
        let mut out = Vec::new();
        for c in x.chunks(chunk.max(1)) {
            d.process(c, &mut out);
        }
        out
    }

    #[test]
    fn a_1khz_tone_survives_upsampling() {
        let x = tone(1000.0, 8000, 0, 1600, 10000.0);
        let y = up_all(&x, 160);
        assert_eq!(y.len(), 9600);
        let body = &y[SETTLE..];
        let a = amplitude(body, 48_000, 1000.0);
        assert!((a - 10000.0).abs() < 300.0, "gain: {a}");
        // Images at 7 kHz and 9 kHz are filtered out.
        assert!(amplitude(body, 48_000, 7000.0) < a / 300.0);
        assert!(amplitude(body, 48_000, 9000.0) < a / 300.0);
    }

    #[test]
    fn a_1khz_tone_survives_downsampling() {
        let x = tone(1000.0, 48_000, 0, 9600, 10000.0);
        let y = down_all(&x, 960);
        assert_eq!(y.len(), 1600);
        let a = amplitude(&y[SETTLE / 6 + 40..], 8000, 1000.0);
        assert!((a - 10000.0).abs() < 300.0, "gain: {a}");
    }

    #[test]
    fn a_6khz_tone_is_attenuated_more_than_30db_by_downsampling() {
        let x = tone(6000.0, 48_000, 0, 9600, 10000.0);
        let y = down_all(&x, 960);
        // 6 kHz would alias to 2 kHz at 8 kHz.
        let body = &y[SETTLE / 6 + 40..];
        let alias = amplitude(body, 8000, 2000.0);
        let db = 20.0 * (10000.0 / alias.max(1e-9)).log10();
        assert!(db > 30.0, "only {db:.1} dB");
    }

    #[test]
    fn pass_band_is_flat_enough_for_telephony() {
        for f in [300.0, 2000.0, 3000.0] {
            let x = tone(f, 48_000, 0, 9600, 10000.0);
            let y = down_all(&x, 960);
            let a = amplitude(&y[SETTLE / 6 + 40..], 8000, f);
            assert!(a > 8500.0, "{f} Hz: {a}");
        }
    }

    #[test]
    fn output_is_independent_of_frame_size() {
        let x = tone(1234.0, 8000, 0, 1000, 12000.0);
        let whole = up_all(&x, x.len());
        assert_eq!(whole, up_all(&x, 160));
        assert_eq!(whole, up_all(&x, 7));
        assert_eq!(whole, up_all(&x, 1));
        let y = tone(1234.0, 48_000, 0, 6000, 12000.0);
        let whole = down_all(&y, y.len());
        assert_eq!(whole.len(), 1000);
        assert_eq!(whole, down_all(&y, 960));
        assert_eq!(whole, down_all(&y, 13));
        assert_eq!(whole, down_all(&y, 1));
    }

    #[test]
    fn frames_join_without_clicks() {
        // A continuous tone resampled in 20 ms frames has no sample-to-sample
        // step bigger than the tone itself can make.
        let x = tone(440.0, 8000, 0, 1600, 20000.0);
        let y = up_all(&x, 160);
        let max_step = 2.0 * std::f64::consts::PI * 440.0 / 48_000.0 * 20000.0 * 1.1;
        for w in y[SETTLE..].windows(2) {
            let step = (f64::from(w[1]) - f64::from(w[0])).abs();
            assert!(step <= max_step, "step {step}");
        }
    }

    #[test]
    fn full_scale_input_saturates_instead_of_wrapping() {
        let x: Vec<i16> = (0..800)
            .map(|i| if (i / 4) % 2 == 0 { i16::MAX } else { i16::MIN })
            .collect();
        let y = up_all(&x, 160);
        assert_eq!(y.len(), 4800);
        let z = down_all(&y, 960);
        assert_eq!(z.len(), 800);
        let mut d = Downsampler::new();
        d.reset();
        let mut u = Upsampler::new();
        u.reset();
        let mut out = Vec::new();
        u.process(&[], &mut out);
        d.process(&[], &mut out);
        assert!(out.is_empty());
    }
}
