//! Media for the relay and recording tests, written from the specs and
//! sharing no code with the engine: G.711 μ-law (ITU-T G.711) to send
//! tones as PCMU, RTP packets with any payload type (RFC 3550), RFC 4733
//! telephone-events, a paced tone sender, a stereo 16-bit WAV reader and
//! the sample-level helpers the recording checks use (runs of silence).

use std::f64::consts::PI;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::time::{interval_at, Instant, MissedTickBehavior};

use crate::error::{E2eError, Result};

/// Samples per second of G.711.
pub const PCMU_RATE: u32 = 8_000;
/// Samples in one 20 ms packet.
pub const FRAME: usize = 160;
/// Packet interval.
pub const PTIME: Duration = Duration::from_millis(20);
/// Payload type of PCMU.
pub const PT_PCMU: u8 = 0;
/// Payload type the test SDPs give telephone-event.
pub const PT_TELEPHONE_EVENT: u8 = 101;

const ULAW_BIAS: i32 = 0x84;
const ULAW_CLIP: i32 = 32_635;
const RTP_HEADER: usize = 12;

/// μ-law encoding of one linear 16-bit sample (G.711, with the usual
/// 0x84 bias; the encoded byte is inverted).
pub fn ulaw_encode(sample: i16) -> u8 {
    let mut s = i32::from(sample);
    let sign: u8 = if s < 0 {
        s = -s;
        0x80
    } else {
        0
    };
    s = s.min(ULAW_CLIP) + ULAW_BIAS;
    // s is in 0x84..=0x7FFF: its top set bit is bit 7 + exponent.
    let exponent = (31 - (s >> 7).leading_zeros()).min(7);
    let mantissa = ((s >> (exponent + 3)) & 0x0F) as u8;
    !(sign | ((exponent as u8) << 4) | mantissa)
}

/// Linear value of a μ-law byte.
pub fn ulaw_decode(byte: u8) -> i16 {
    let b = !byte;
    let exponent = (b >> 4) & 0x07;
    let mantissa = i32::from(b & 0x0F);
    let magnitude = (((mantissa << 3) + ULAW_BIAS) << exponent) - ULAW_BIAS;
    let value = if b & 0x80 != 0 { -magnitude } else { magnitude };
    value as i16
}

/// A sine tone, phase-continuous across packets.
#[derive(Debug, Clone, Copy)]
pub struct Tone {
    /// Frequency.
    pub freq_hz: f64,
    /// Peak amplitude (linear 16-bit).
    pub amplitude: f64,
}

impl Tone {
    /// A tone at `freq_hz`, about -12 dBFS.
    pub fn new(freq_hz: f64) -> Tone {
        Tone {
            freq_hz,
            amplitude: 8_000.0,
        }
    }

    /// Sample `n` (from the tone's start) as linear PCM.
    pub fn sample(&self, n: usize) -> i16 {
        let t = n as f64 / f64::from(PCMU_RATE);
        (self.amplitude * (2.0 * PI * self.freq_hz * t).sin()).round() as i16
    }

    /// The PCMU payload of 20 ms packet `k`: samples `160k..160k+160`.
    pub fn pcmu_frame(&self, k: usize) -> Vec<u8> {
        (k * FRAME..(k + 1) * FRAME)
            .map(|n| ulaw_encode(self.sample(n)))
            .collect()
    }
}

/// An RTP packet (RFC 3550): V=2, no padding, extension or CSRC.
pub fn rtp_packet(pt: u8, marker: bool, seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(RTP_HEADER + payload.len());
    p.push(0x80);
    p.push((pt & 0x7f) | if marker { 0x80 } else { 0 });
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// The fields of an RTP packet this suite looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpView {
    /// Payload type.
    pub pt: u8,
    /// Marker bit.
    pub marker: bool,
    /// Sequence number.
    pub seq: u16,
    /// Timestamp.
    pub ts: u32,
    /// The payload (after CSRCs and extension, before padding).
    pub payload: Vec<u8>,
}

/// Parses an RTP packet, or `None` when it is not RTP version 2.
pub fn parse_rtp(data: &[u8]) -> Option<RtpView> {
    let first = *data.first()?;
    let second = *data.get(1)?;
    if first >> 6 != 2 || data.len() < RTP_HEADER {
        return None;
    }
    let seq = u16::from_be_bytes([*data.get(2)?, *data.get(3)?]);
    let ts = u32::from_be_bytes(data.get(4..8)?.try_into().ok()?);
    let mut start = RTP_HEADER + 4 * usize::from(first & 0x0f);
    if first & 0x10 != 0 {
        let words = u16::from_be_bytes([*data.get(start + 2)?, *data.get(start + 3)?]);
        start += 4 + 4 * usize::from(words);
    }
    let mut end = data.len();
    if first & 0x20 != 0 {
        end = end.checked_sub(usize::from(*data.last()?))?;
    }
    Some(RtpView {
        pt: second & 0x7f,
        marker: second & 0x80 != 0,
        seq,
        ts,
        payload: data.get(start..end)?.to_vec(),
    })
}

/// Sends `count` 20 ms PCMU packets of `tone` from `socket` to `dest`, the
/// first at `start`, then one every 20 ms. Packet `k` is not sent when
/// `lost(k)` (its sequence number and timestamp are used up all the same,
/// as when the network loses it). Returns the most any packet was sent
/// after its time (a stalled test host shows here, not as a mystery).
pub async fn send_tone(
    socket: &UdpSocket,
    dest: SocketAddr,
    tone: Tone,
    count: usize,
    start: Instant,
    lost: impl Fn(usize) -> bool,
) -> Result<Duration> {
    let ssrc: u32 = rand::random();
    let seq0: u16 = rand::random::<u16>() & 0x7fff;
    let ts0: u32 = rand::random::<u32>() & 0x7fff_ffff;
    let mut tick = interval_at(start, PTIME);
    tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let mut latest = Duration::ZERO;
    for k in 0..count {
        let due = tick.tick().await;
        latest = latest.max(Instant::now().saturating_duration_since(due));
        if lost(k) {
            continue;
        }
        let pkt = rtp_packet(
            PT_PCMU,
            k == 0,
            seq0.wrapping_add(k as u16),
            ts0.wrapping_add((k * FRAME) as u32),
            ssrc,
            &tone.pcmu_frame(k),
        );
        socket
            .send_to(&pkt, dest)
            .await
            .map_err(|e| E2eError::io(format!("sending a tone packet to {dest}"), e))?;
    }
    Ok(latest)
}

/// RFC 4733 event code of a DTMF digit.
pub fn dtmf_event(digit: char) -> Option<u8> {
    match digit {
        '0'..='9' => Some(digit as u8 - b'0'),
        '*' => Some(10),
        '#' => Some(11),
        'A'..='D' => Some(digit as u8 - b'A' + 12),
        _ => None,
    }
}

/// The DTMF digit of an RFC 4733 event code.
pub fn dtmf_digit(event: u8) -> Option<char> {
    "0123456789*#ABCD".chars().nth(usize::from(event))
}

/// RFC 4733 telephone-event packets for `digits` as a phone sends them:
/// per digit, four 20 ms updates (marker on the first) then the end
/// packet three times; digits 200 ms apart on the timestamp clock. Digits
/// that are not DTMF are skipped.
pub fn dtmf_packets(digits: &str, ssrc: u32) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut seq: u16 = rand::random::<u16>() & 0x7fff;
    let mut ts: u32 = rand::random::<u32>() & 0x7fff_ffff;
    for event in digits.chars().filter_map(dtmf_event) {
        let volume = 10u8;
        for i in 1..=4u16 {
            let duration = i * FRAME as u16;
            let mut payload = vec![event, volume];
            payload.extend_from_slice(&duration.to_be_bytes());
            out.push(rtp_packet(
                PT_TELEPHONE_EVENT,
                i == 1,
                seq,
                ts,
                ssrc,
                &payload,
            ));
            seq = seq.wrapping_add(1);
        }
        let end = 5 * FRAME as u16;
        for _ in 0..3 {
            let mut payload = vec![event, 0x80 | volume];
            payload.extend_from_slice(&end.to_be_bytes());
            out.push(rtp_packet(
                PT_TELEPHONE_EVENT,
                false,
                seq,
                ts,
                ssrc,
                &payload,
            ));
            seq = seq.wrapping_add(1);
        }
        ts = ts.wrapping_add(10 * FRAME as u32);
    }
    out
}

/// The digits telephone-event packets carry: one per distinct event
/// timestamp that has an end packet, in order.
pub fn dtmf_digits(packets: &[RtpView]) -> String {
    let mut ended: Vec<u32> = Vec::new();
    let mut digits = String::new();
    for p in packets.iter().filter(|p| p.pt == PT_TELEPHONE_EVENT) {
        let (Some(&event), Some(&flags)) = (p.payload.first(), p.payload.get(1)) else {
            continue;
        };
        if flags & 0x80 != 0 && !ended.contains(&p.ts) {
            ended.push(p.ts);
            if let Some(d) = dtmf_digit(event) {
                digits.push(d);
            }
        }
    }
    digits
}

/// A stereo 16-bit recording, de-interleaved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stereo {
    /// Samples per second.
    pub rate: u32,
    /// Left channel (caller).
    pub left: Vec<i16>,
    /// Right channel (callee).
    pub right: Vec<i16>,
}

impl Stereo {
    /// Frames (samples per channel).
    pub fn frames(&self) -> usize {
        self.left.len()
    }

    /// Length in milliseconds.
    pub fn duration_ms(&self) -> u64 {
        self.frames() as u64 * 1000 / u64::from(self.rate.max(1))
    }
}

fn le_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn le_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Parses a finalised stereo 16-bit PCM WAV (RIFF chunks in any order
/// before `data`; the `data` size must fit the file).
pub fn parse_stereo_wav(bytes: &[u8]) -> std::result::Result<Stereo, String> {
    if bytes.get(0..4) != Some(b"RIFF") || bytes.get(8..12) != Some(b"WAVE") {
        return Err("not a RIFF/WAVE file".into());
    }
    let riff_len = le_u32(bytes, 4).ok_or("short RIFF header")?;
    if u64::from(riff_len) + 8 != bytes.len() as u64 {
        return Err(format!(
            "RIFF size {riff_len} + 8 does not match the file's {} bytes (not finalised?)",
            bytes.len()
        ));
    }
    let mut at = 12;
    let mut rate = None;
    while let (Some(id), Some(size)) = (bytes.get(at..at + 4), le_u32(bytes, at + 4)) {
        let body = at + 8;
        let size = usize::try_from(size).map_err(|_| "chunk size overflows")?;
        match id {
            b"fmt " => {
                let format = le_u16(bytes, body).ok_or("short fmt chunk")?;
                let channels = le_u16(bytes, body + 2).ok_or("short fmt chunk")?;
                let bits = le_u16(bytes, body + 14).ok_or("short fmt chunk")?;
                if format != 1 || channels != 2 || bits != 16 {
                    return Err(format!(
                        "want PCM stereo 16-bit, got format {format}, {channels} channels, {bits} bits"
                    ));
                }
                rate = le_u32(bytes, body + 4);
            }
            b"data" => {
                let rate = rate.ok_or("data chunk before fmt chunk")?;
                let data = bytes
                    .get(body..body.saturating_add(size))
                    .ok_or_else(|| format!("data chunk of {size} bytes runs past the end"))?;
                if data.len() % 4 != 0 {
                    return Err(format!("data chunk of {size} bytes is not whole frames"));
                }
                let (mut left, mut right) = (Vec::new(), Vec::new());
                for frame in data.chunks_exact(4) {
                    left.push(i16::from_le_bytes([frame[0], frame[1]]));
                    right.push(i16::from_le_bytes([frame[2], frame[3]]));
                }
                return Ok(Stereo { rate, left, right });
            }
            _ => {}
        }
        at = body.saturating_add(size).saturating_add(size % 2);
    }
    Err("no data chunk".into())
}

/// Runs of exact zeros at least `min_len` long, as `[start, end)`.
pub fn zero_runs(samples: &[i16], min_len: usize) -> Vec<(usize, usize)> {
    let mut runs = Vec::new();
    let mut start = None;
    for (i, &s) in samples.iter().chain(std::iter::once(&1)).enumerate() {
        match (s == 0, start) {
            (true, None) => start = Some(i),
            (false, Some(st)) => {
                if i - st >= min_len {
                    runs.push((st, i));
                }
                start = None;
            }
            _ => {}
        }
    }
    runs
}

/// Index of the first and the last sample that is not zero.
pub fn nonzero_span(samples: &[i16]) -> Option<(usize, usize)> {
    let first = samples.iter().position(|&s| s != 0)?;
    let last = samples.iter().rposition(|&s| s != 0)?;
    Some((first, last))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::tone_share;

    #[test]
    fn ulaw_known_values() {
        assert_eq!(ulaw_encode(0), 0xFF);
        assert_eq!(ulaw_encode(-1), 0x7F);
        assert_eq!(ulaw_encode(i16::MAX), 0x80);
        assert_eq!(ulaw_encode(i16::MIN), 0x00);
        assert_eq!(ulaw_decode(0xFF), 0);
        assert_eq!(ulaw_decode(0x7F), 0);
        assert_eq!(ulaw_decode(0x80), 32_124);
        assert_eq!(ulaw_decode(0x00), -32_124);
        assert_eq!(ulaw_decode(0xFE), 8);
    }

    #[test]
    fn ulaw_round_trip_error_is_within_a_step() {
        for x in (i16::MIN..=i16::MAX).step_by(7) {
            let y = ulaw_decode(ulaw_encode(x));
            let err = (i32::from(x) - i32::from(y)).abs();
            let step = (i32::from(x).abs() / 16).max(8);
            assert!(err <= step, "{x} → {y}");
        }
        for byte in 0..=255u8 {
            let y = ulaw_decode(byte);
            // Both zeros (0xFF, 0x7F) decode to 0 and encode back to 0xFF.
            if y != 0 {
                assert_eq!(ulaw_encode(y), byte, "{byte:#x} → {y}");
            }
        }
    }

    #[test]
    fn pcmu_tone_keeps_its_frequency_and_phase() {
        let tone = Tone::new(440.0);
        let pcm: Vec<i16> = (0..10)
            .flat_map(|k| tone.pcmu_frame(k))
            .map(ulaw_decode)
            .collect();
        assert_eq!(pcm.len(), 10 * FRAME);
        let window = pcm.get(..800).unwrap_or_default();
        assert!(tone_share(window, PCMU_RATE, 440.0) > 0.99);
        assert!(tone_share(window, PCMU_RATE, 1000.0) < 0.01);
        // Frame 1 continues frame 0.
        assert_eq!(
            tone.pcmu_frame(1).first(),
            Some(&ulaw_encode(tone.sample(160)))
        );
    }

    #[test]
    fn rtp_round_trip() {
        let pkt = rtp_packet(101, true, 7, 99, 5, b"abcd");
        assert_eq!(
            parse_rtp(&pkt),
            Some(RtpView {
                pt: 101,
                marker: true,
                seq: 7,
                ts: 99,
                payload: b"abcd".to_vec()
            })
        );
        assert_eq!(parse_rtp(&[0x40; 12]), None);
        assert_eq!(parse_rtp(&[0x80; 4]), None);
    }

    #[test]
    fn dtmf_packets_carry_the_digits() {
        let pkts = dtmf_packets("15#x", 1);
        assert_eq!(pkts.len(), 3 * 7, "x is not a digit");
        let views: Vec<RtpView> = pkts.iter().filter_map(|p| parse_rtp(p)).collect();
        assert_eq!(dtmf_digits(&views), "15#");
        assert!(views.first().is_some_and(|v| v.marker));
        assert_eq!(views.iter().filter(|v| v.marker).count(), 3);
        // Without its end packets a digit does not count.
        let cut: Vec<RtpView> = views.iter().take(7 + 4).cloned().collect();
        assert_eq!(dtmf_digits(&cut), "1");
        for d in "0123456789*#ABCD".chars() {
            assert_eq!(dtmf_event(d).and_then(dtmf_digit), Some(d));
        }
    }

    fn stereo_wav(left: &[i16], right: &[i16], rate: u32) -> Vec<u8> {
        let data_len = (left.len() * 4) as u32;
        let mut out = Vec::new();
        out.extend_from_slice(b"RIFF");
        out.extend_from_slice(&(36 + data_len).to_le_bytes());
        out.extend_from_slice(b"WAVEfmt ");
        out.extend_from_slice(&16u32.to_le_bytes());
        out.extend_from_slice(&1u16.to_le_bytes());
        out.extend_from_slice(&2u16.to_le_bytes());
        out.extend_from_slice(&rate.to_le_bytes());
        out.extend_from_slice(&(rate * 4).to_le_bytes());
        out.extend_from_slice(&4u16.to_le_bytes());
        out.extend_from_slice(&16u16.to_le_bytes());
        out.extend_from_slice(b"data");
        out.extend_from_slice(&data_len.to_le_bytes());
        for (l, r) in left.iter().zip(right) {
            out.extend_from_slice(&l.to_le_bytes());
            out.extend_from_slice(&r.to_le_bytes());
        }
        out
    }

    #[test]
    fn stereo_wav_is_deinterleaved() {
        let bytes = stereo_wav(&[1, 2, 3], &[-1, -2, -3], 8000);
        let s = parse_stereo_wav(&bytes);
        assert_eq!(
            s,
            Ok(Stereo {
                rate: 8000,
                left: vec![1, 2, 3],
                right: vec![-1, -2, -3]
            })
        );
        let mut mono = bytes.clone();
        mono[22] = 1;
        assert!(parse_stereo_wav(&mono).is_err());
        let mut unfinished = bytes.clone();
        unfinished[4..8].copy_from_slice(&0u32.to_le_bytes());
        assert!(parse_stereo_wav(&unfinished).is_err());
        assert!(parse_stereo_wav(b"RIFF").is_err());
        let long = stereo_wav(&[0; 8000], &[0; 8000], 8000);
        assert_eq!(parse_stereo_wav(&long).map(|s| s.duration_ms()), Ok(1000));
    }

    #[test]
    fn zero_runs_and_spans() {
        let s = [0, 0, 5, 0, 0, 0, 7, 0, 0, 0, 0];
        assert_eq!(zero_runs(&s, 3), vec![(3, 6), (7, 11)]);
        assert_eq!(zero_runs(&s, 2), vec![(0, 2), (3, 6), (7, 11)]);
        assert_eq!(nonzero_span(&s), Some((2, 6)));
        assert_eq!(nonzero_span(&[0, 0]), None);
    }
}
