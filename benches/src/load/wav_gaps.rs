//! Gaps in a recording: the generator's payload never decodes to a run of
//! silence, so inside a channel's active span (first to last non-zero
//! sample) every 20 ms of consecutive zero samples is a packet that did not
//! make it into the file (lost on the way or dropped by the recorder).

use std::path::Path;

/// What one file (or a directory of them) holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GapCount {
    /// WAV files read.
    pub files: usize,
    /// Files that could not be read as 16-bit PCM WAV.
    pub unreadable: usize,
    /// 20 ms frames of silence inside the active spans, all channels.
    pub gap_frames: u64,
    /// 20 ms frames of audio, all channels.
    pub audio_frames: u64,
}

/// (channels, sample rate, samples interleaved) of a 16-bit PCM WAV.
pub fn read_pcm16(bytes: &[u8]) -> Option<(u16, u32, Vec<i16>)> {
    if bytes.get(0..4)? != b"RIFF" || bytes.get(8..12)? != b"WAVE" {
        return None;
    }
    let mut pos = 12usize;
    let mut format: Option<(u16, u32)> = None;
    while pos.checked_add(8)? <= bytes.len() {
        let id = bytes.get(pos..pos + 4)?;
        let len = u32::from_le_bytes(bytes.get(pos + 4..pos + 8)?.try_into().ok()?) as usize;
        let body_start = pos + 8;
        // hound may leave the data length at its final value only; clamp.
        let body = bytes.get(body_start..body_start.saturating_add(len).min(bytes.len()))?;
        match id {
            b"fmt " => {
                let channels = u16::from_le_bytes(body.get(2..4)?.try_into().ok()?);
                let rate = u32::from_le_bytes(body.get(4..8)?.try_into().ok()?);
                let bits = u16::from_le_bytes(body.get(14..16)?.try_into().ok()?);
                if bits != 16 || channels == 0 {
                    return None;
                }
                format = Some((channels, rate));
            }
            b"data" => {
                let (channels, rate) = format?;
                let samples = body
                    .chunks_exact(2)
                    .map(|c| i16::from_le_bytes([c[0], c[1]]))
                    .collect();
                return Some((channels, rate, samples));
            }
            _ => {}
        }
        pos = body_start.checked_add(len + (len % 2))?;
    }
    None
}

/// Count gap and audio frames of interleaved `samples`.
pub fn count(channels: u16, rate: u32, samples: &[i16]) -> (u64, u64) {
    let frame = u64::from(rate / 50).max(1);
    let ch = usize::from(channels.max(1));
    let (mut gaps, mut audio) = (0u64, 0u64);
    for c in 0..ch {
        let channel: Vec<i16> = samples.iter().skip(c).step_by(ch).copied().collect();
        let Some(first) = channel.iter().position(|&s| s != 0) else {
            continue;
        };
        let last = channel.iter().rposition(|&s| s != 0).unwrap_or(first);
        let span = channel.get(first..=last).unwrap_or_default();
        audio += span.len() as u64 / frame;
        let mut run = 0u64;
        for &s in span {
            if s == 0 {
                run += 1;
            } else {
                gaps += run / frame;
                run = 0;
            }
        }
    }
    (gaps, audio)
}

/// Count over every `*.wav` in `dir` (not recursive).
pub fn count_dir(dir: &Path) -> GapCount {
    let mut out = GapCount::default();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("wav") {
            continue;
        }
        out.files += 1;
        match std::fs::read(&path).ok().as_deref().and_then(read_pcm16) {
            Some((channels, rate, samples)) => {
                let (gaps, audio) = count(channels, rate, &samples);
                out.gap_frames += gaps;
                out.audio_frames += audio;
            }
            None => out.unreadable += 1,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wav(channels: u16, rate: u32, samples: &[i16]) -> Vec<u8> {
        let data: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        let mut out = b"RIFF\0\0\0\0WAVEfmt ".to_vec();
        out.extend_from_slice(&16u32.to_le_bytes());
        out.extend_from_slice(&1u16.to_le_bytes());
        out.extend_from_slice(&channels.to_le_bytes());
        out.extend_from_slice(&rate.to_le_bytes());
        out.extend_from_slice(&(rate * 2 * u32::from(channels)).to_le_bytes());
        out.extend_from_slice(&(2 * channels).to_le_bytes());
        out.extend_from_slice(&16u16.to_le_bytes());
        out.extend_from_slice(b"data");
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(&data);
        out
    }

    #[test]
    fn counts_silent_frames_inside_the_active_span_only() {
        // Mono 8 kHz: 100 ms lead-in silence, 40 ms audio, 40 ms gap, 20 ms
        // audio, trailing silence. Frames are 160 samples.
        let mut s = vec![0i16; 800];
        s.extend(vec![100i16; 320]);
        s.extend(vec![0i16; 320]);
        s.extend(vec![-5i16; 160]);
        s.extend(vec![0i16; 500]);
        let (channels, rate, samples) = read_pcm16(&wav(1, 8000, &s)).unwrap();
        assert_eq!((channels, rate), (1, 8000));
        assert_eq!(count(channels, rate, &samples), (2, 5));
        // Stereo: the right channel is silent throughout → no gaps counted.
        let stereo: Vec<i16> = s.iter().flat_map(|&l| [l, 0]).collect();
        assert_eq!(count(2, 8000, &stereo), (2, 5));
        assert!(read_pcm16(b"RIFF....WAVE").is_none());
        assert!(read_pcm16(b"junk").is_none());
    }
}
