//! Test audio: pure tones written as WAV files for softphones to send, the
//! WAV files they record read back, and the power at a frequency measured
//! with the Goertzel algorithm, so a test can tell by content which party's
//! tone reached which side.
//!
//! Only what the tests need: 16-bit PCM, mono. The writer emits the
//! canonical 44-byte header; the reader walks the RIFF chunks and tolerates
//! a `data` size that was not finalised yet (a recorder still open).

use std::f64::consts::PI;
use std::fs;
use std::path::Path;

use crate::error::{E2eError, Result};

/// Sample rate of the test tones: narrowband, as G.711 carries it.
pub const TONE_RATE: u32 = 8_000;
/// Peak amplitude of the test tones (about -10 dBFS).
const TONE_AMPLITUDE: f64 = 10_000.0;
/// Largest WAV file the reader accepts.
const MAX_WAV_BYTES: u64 = 64 * 1024 * 1024;

/// Mono 16-bit PCM audio.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pcm {
    /// Samples per second.
    pub rate: u32,
    /// The samples.
    pub samples: Vec<i16>,
}

/// `secs` seconds of a `freq_hz` sine at [`TONE_RATE`].
pub fn tone(freq_hz: f64, secs: u32) -> Pcm {
    let len = TONE_RATE * secs;
    let samples = (0..len)
        .map(|i| {
            let t = f64::from(i) / f64::from(TONE_RATE);
            (TONE_AMPLITUDE * (2.0 * PI * freq_hz * t).sin()).round() as i16
        })
        .collect();
    Pcm {
        rate: TONE_RATE,
        samples,
    }
}

/// `pcm` as a WAV file (RIFF, PCM format 1, mono, 16-bit little-endian).
pub fn wav_bytes(pcm: &Pcm) -> Vec<u8> {
    let data_len = u32::try_from(pcm.samples.len() * 2).unwrap_or(u32::MAX - 36);
    let mut out = Vec::with_capacity(44 + pcm.samples.len() * 2);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&pcm.rate.to_le_bytes());
    out.extend_from_slice(&(pcm.rate * 2).to_le_bytes()); // byte rate
    out.extend_from_slice(&2u16.to_le_bytes()); // block align
    out.extend_from_slice(&16u16.to_le_bytes()); // bits per sample
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for s in &pcm.samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

/// Writes `pcm` to `path` as a WAV file.
pub fn write_wav(path: &Path, pcm: &Pcm) -> Result<()> {
    fs::write(path, wav_bytes(pcm))
        .map_err(|e| E2eError::io(format!("writing {}", path.display()), e))
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Parses a mono 16-bit PCM WAV file. A `data` chunk whose size is 0 or
/// runs past the end (header not finalised yet) extends to the end.
pub fn parse_wav(bytes: &[u8]) -> std::result::Result<Pcm, String> {
    if bytes.get(0..4) != Some(b"RIFF") || bytes.get(8..12) != Some(b"WAVE") {
        return Err("not a RIFF/WAVE file".into());
    }
    let mut at = 12;
    let mut rate = None;
    while let (Some(id), Some(size)) = (bytes.get(at..at + 4), u32_at(bytes, at + 4)) {
        let body = at + 8;
        let size = usize::try_from(size).unwrap_or(usize::MAX);
        match id {
            b"fmt " => {
                let format = u16_at(bytes, body).ok_or("short fmt chunk")?;
                let channels = u16_at(bytes, body + 2).ok_or("short fmt chunk")?;
                let bits = u16_at(bytes, body + 14).ok_or("short fmt chunk")?;
                if format != 1 || channels != 1 || bits != 16 {
                    return Err(format!(
                        "want PCM mono 16-bit, got format {format}, {channels} channels, {bits} bits"
                    ));
                }
                rate = u32_at(bytes, body + 4);
            }
            b"data" => {
                let rate = rate.ok_or("data chunk before fmt chunk")?;
                let rest = bytes.get(body..).unwrap_or_default();
                let data = match size {
                    0 => rest,
                    n => rest.get(..n).unwrap_or(rest),
                };
                let samples = data
                    .chunks_exact(2)
                    .map(|c| i16::from_le_bytes([c[0], c[1]]))
                    .collect();
                return Ok(Pcm { rate, samples });
            }
            _ => {}
        }
        // Chunks are padded to an even size.
        at = body.saturating_add(size).saturating_add(size % 2);
    }
    Err("no data chunk".into())
}

/// Reads and parses the WAV file at `path`.
pub fn read_wav(path: &Path) -> Result<Pcm> {
    let io = |e| E2eError::io(format!("reading {}", path.display()), e);
    let len = fs::metadata(path).map_err(io)?.len();
    if len > MAX_WAV_BYTES {
        return Err(E2eError::Unexpected(format!(
            "{} is {len} bytes, more than a test recording should be",
            path.display()
        )));
    }
    let bytes = fs::read(path).map_err(io)?;
    parse_wav(&bytes).map_err(|reason| {
        E2eError::Unexpected(format!("{} is not a usable WAV: {reason}", path.display()))
    })
}

/// `samples` from the first one whose magnitude exceeds `threshold` on
/// (leading silence skipped); empty when all are below it.
pub fn skip_silence(samples: &[i16], threshold: i16) -> &[i16] {
    let first = samples
        .iter()
        .position(|s| s.unsigned_abs() > threshold.unsigned_abs())
        .unwrap_or(samples.len());
    samples.get(first..).unwrap_or_default()
}

/// Goertzel power of `samples` at `freq_hz` (sampled at `rate`): about
/// `(A·N/2)²` for a sine of amplitude A over N samples.
pub fn goertzel_power(samples: &[i16], rate: u32, freq_hz: f64) -> f64 {
    let coeff = 2.0 * (2.0 * PI * freq_hz / f64::from(rate)).cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s0 = f64::from(x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    s1 * s1 + s2 * s2 - coeff * s1 * s2
}

/// The share (0–1) of the energy of `samples` that lies at `freq_hz`: 1
/// for a pure sine whose period divides the window, near 0 for silence,
/// noise or another tone.
pub fn tone_share(samples: &[i16], rate: u32, freq_hz: f64) -> f64 {
    let energy: f64 = samples.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
    if energy == 0.0 || samples.is_empty() {
        return 0.0;
    }
    // Parseval: a sine of amplitude A over N samples has energy A²N/2 and
    // Goertzel power (AN/2)², so 2·P/(N·E) = 1.
    2.0 * goertzel_power(samples, rate, freq_hz) / (samples.len() as f64 * energy)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wav_round_trips() {
        let pcm = tone(440.0, 1);
        assert_eq!(pcm.samples.len(), 8_000);
        let bytes = wav_bytes(&pcm);
        assert_eq!(bytes.len(), 44 + 16_000);
        assert_eq!(parse_wav(&bytes), Ok(pcm));
    }

    #[test]
    fn unfinalised_data_size_reads_to_the_end() {
        let pcm = tone(1000.0, 1);
        let mut bytes = wav_bytes(&pcm);
        bytes[40..44].copy_from_slice(&0u32.to_le_bytes());
        assert_eq!(parse_wav(&bytes).map(|p| p.samples.len()), Ok(8_000));
        bytes[40..44].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(parse_wav(&bytes).map(|p| p.samples.len()), Ok(8_000));
    }

    #[test]
    fn rejects_what_is_not_mono_pcm16() {
        assert!(parse_wav(b"not a wav").is_err());
        let mut bytes = wav_bytes(&tone(440.0, 1));
        bytes[22] = 2; // stereo
        assert!(parse_wav(&bytes).is_err());
        assert!(parse_wav(&bytes[..36]).is_err(), "no data chunk");
    }

    #[test]
    fn goertzel_tells_the_tones_apart() {
        let a = tone(440.0, 1).samples;
        let b = tone(1000.0, 1).samples;
        assert!(tone_share(&a, TONE_RATE, 440.0) > 0.99);
        assert!(tone_share(&a, TONE_RATE, 1000.0) < 0.001);
        assert!(tone_share(&b, TONE_RATE, 1000.0) > 0.99);
        assert!(tone_share(&b, TONE_RATE, 440.0) < 0.001);
        // Half of each: neither dominates.
        let mix: Vec<i16> = a.iter().zip(&b).map(|(x, y)| x / 2 + y / 2).collect();
        let share = tone_share(&mix, TONE_RATE, 440.0);
        assert!((0.4..0.6).contains(&share), "{share}");
        assert_eq!(tone_share(&[0; 800], TONE_RATE, 440.0), 0.0);
    }

    #[test]
    fn leading_silence_is_skipped() {
        assert_eq!(skip_silence(&[0, 3, -2, 900, 5], 100), &[900, 5]);
        assert_eq!(skip_silence(&[0, -900], 100), &[-900]);
        assert!(skip_silence(&[1, 2, 3], 100).is_empty());
    }
}
