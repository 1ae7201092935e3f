//! One direction of a transcoded call: RTP payloads of codec X in, payloads
//! of codec Y out, with their RTP timestamps.
//!
//! # Pipeline
//! decode (G.711 table / Opus at 48 kHz) → resample 8 ↔ 48 kHz when the
//! clock rates differ → buffer at the output rate → encode.
//!
//! # Framing (ptime)
//! - G.711 output: every [`Transcoder::pop`] emits all buffered audio, so an
//!   input packet gives one output packet of the same duration (Opus 20 ms
//!   = 960 samples → PCMU 20 ms = 160 bytes; Opus 60 ms → PCMU 60 ms).
//! - Opus output: fixed frames of the output ptime (20 ms = 960 samples by
//!   default, [`Transcoder::set_opus_ptime_ms`]). G.711 20 ms input is 1:1;
//!   10 ms input gives a packet every second push; 30 ms input gives 1 then
//!   2 packets. Call `pop` until it returns `None` after each `push`.
//!
//! # RTP timestamp rule
//! The output stream keeps the input's timeline, scaled to the output
//! clock: `out_ts = base + (in_ts − base) × out_clock / in_clock`, where
//! `base` is the first input packet's timestamp and `in_ts − base` is
//! computed on an extended (wrap-free) counter, so ×6 (G.711 → Opus), ÷6
//! (Opus → G.711) and ×1 (PCMU ↔ PCMA: timestamps unchanged) stay exact
//! across 32-bit wrap. An output packet carries the mapped timestamp of its
//! first sample. Loss therefore shows up as the same timestamp gap on the
//! output (the receiver conceals it); a small gap inside a partly filled
//! Opus frame (≤ 100 ms) is filled with silence; a reordered packet or a
//! jump while a frame is partly filled drops that partial frame and
//! restarts framing at the new timestamp. Use [`Transcoder::map_timestamp`]
//! for RFC 4733 events of the same stream so they stay on the same
//! timeline (and scale their duration with `dtmf::rescale_duration`).
//! SSRC, sequence numbers and the marker bit are the relay's business:
//! keep the SSRC and number output packets consecutively.

use super::g711;
use super::opus::{OpusApplication, OpusDecoder, OpusEncoder, MAX_FRAME_SAMPLES, MAX_PACKET_BYTES};
use super::resample::{Downsampler, Upsampler};
use super::{Codec, CodecError};

/// Longest G.711 input payload accepted (200 ms).
const MAX_G711_BYTES: usize = 1600;
/// Largest timestamp gap inside a partial Opus frame filled with silence.
const MAX_FILL_MS: u32 = 100;
/// Cap on buffered PCM when the caller does not drain with `pop`.
const MAX_BUFFER_MS: u32 = 300;

/// One output payload written by [`Transcoder::pop`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TranscodeOut {
    /// RTP timestamp of the payload, in the output codec's clock.
    pub rtp_ts: u32,
    /// Duration of the payload in output clock units (160 for 20 ms of
    /// G.711, 960 for 20 ms of Opus).
    pub samples_out_per_packet: u32,
}

/// Maps input RTP timestamps to the output clock (see the module doc).
#[derive(Debug, Clone)]
struct TsMap {
    num: i64,
    den: i64,
    base: u32,
    last: Option<u32>,
    /// Input timestamp relative to `base`, without wrap.
    ext: i64,
}

impl TsMap {
    fn new(in_clock: u32, out_clock: u32) -> Self {
        TsMap {
            num: i64::from(out_clock.max(1)),
            den: i64::from(in_clock.max(1)),
            base: 0,
            last: None,
            ext: 0,
        }
    }

    fn map(&mut self, ts: u32) -> u32 {
        match self.last {
            None => {
                self.base = ts;
                self.ext = 0;
            }
            Some(prev) => self.ext += i64::from(ts.wrapping_sub(prev) as i32),
        }
        self.last = Some(ts);
        // Truncation to 32 bits is the RTP wrap.
        let scaled = (self.ext * self.num).div_euclid(self.den);
        self.base.wrapping_add(scaled as u32)
    }
}

enum Decode {
    Ulaw,
    Alaw,
    Opus(Box<OpusDecoder>),
}

enum Resample {
    None,
    Up(Box<Upsampler>),
    Down(Box<Downsampler>),
}

enum Encode {
    Ulaw,
    Alaw,
    Opus(Box<OpusEncoder>),
}

/// Converts one RTP payload stream from one codec to another (one per
/// direction of a transcoded call; not shared between streams).
pub struct Transcoder {
    from: Codec,
    to: Codec,
    decode: Decode,
    resample: Resample,
    encode: Encode,
    ts: TsMap,
    /// Samples per output frame (Opus), or `None`: emit everything (G.711).
    frame: Option<usize>,
    /// Output sample rate.
    rate: u32,
    /// Decoded, resampled audio waiting to be encoded.
    buf: Vec<i16>,
    /// Output timestamp of `buf[0]`.
    buf_ts: u32,
    /// Scratch: one decoded Opus packet / decoded G.711.
    pcm: Vec<i16>,
    /// Scratch: resampled audio of one packet.
    resampled: Vec<i16>,
    discarded_samples: u64,
}

impl std::fmt::Debug for Transcoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transcoder")
            .field("from", &self.from)
            .field("to", &self.to)
            .field("buffered", &self.buf.len())
            .finish()
    }
}

fn pcm_rate(codec: Codec) -> u32 {
    match codec {
        Codec::Opus => 48_000,
        _ => 8000,
    }
}

impl Transcoder {
    /// A transcoder from `from` to `to`: any pair of distinct audio codecs
    /// among PCMU, PCMA and Opus. Same codec (relay as is) and DTMF events
    /// (translated, see [`crate::media::dtmf`]) are refused.
    pub fn new(from: Codec, to: Codec) -> Result<Self, CodecError> {
        if from == to || !from.is_audio() || !to.is_audio() {
            return Err(CodecError::Unsupported { from, to });
        }
        let decode = match from {
            Codec::Pcmu => Decode::Ulaw,
            Codec::Pcma => Decode::Alaw,
            _ => Decode::Opus(Box::new(OpusDecoder::new(48_000, 1)?)),
        };
        let encode = match to {
            Codec::Pcmu => Encode::Ulaw,
            Codec::Pcma => Encode::Alaw,
            _ => Encode::Opus(Box::new(OpusEncoder::new(
                48_000,
                1,
                OpusApplication::Voip,
            )?)),
        };
        let (in_rate, rate) = (pcm_rate(from), pcm_rate(to));
        let resample = match (in_rate, rate) {
            (8000, 48_000) => Resample::Up(Box::default()),
            (48_000, 8000) => Resample::Down(Box::default()),
            _ => Resample::None,
        };
        let frame = matches!(to, Codec::Opus).then_some(960);
        Ok(Transcoder {
            from,
            to,
            decode,
            resample,
            encode,
            ts: TsMap::new(from.clock_rate(), to.clock_rate()),
            frame,
            rate,
            buf: Vec::with_capacity(ms_to_samples(rate, MAX_BUFFER_MS)),
            buf_ts: 0,
            pcm: vec![0; MAX_FRAME_SAMPLES],
            resampled: Vec::with_capacity(MAX_FRAME_SAMPLES),
            discarded_samples: 0,
        })
    }

    /// Source codec.
    pub fn from(&self) -> Codec {
        self.from
    }

    /// Target codec.
    pub fn to(&self) -> Codec {
        self.to
    }

    /// Output frame duration for an Opus target: 10, 20, 40 or 60 ms
    /// (from the Opus leg's `a=ptime`). Ignored for a G.711 target.
    pub fn set_opus_ptime_ms(&mut self, ms: u32) -> Result<(), CodecError> {
        if self.frame.is_none() {
            return Ok(());
        }
        if ![10, 20, 40, 60].contains(&ms) {
            return Err(CodecError::BadFrameSize(ms_to_samples(self.rate, ms)));
        }
        self.frame = Some(ms_to_samples(self.rate, ms));
        Ok(())
    }

    /// Set the Opus target bitrate (bits/s); no-op for a G.711 target.
    pub fn set_opus_bitrate(&mut self, bits_per_second: i32) -> Result<(), CodecError> {
        match &mut self.encode {
            Encode::Opus(enc) => enc.set_bitrate(bits_per_second),
            _ => Ok(()),
        }
    }

    /// Output-clock timestamp for an input-clock timestamp of this stream
    /// (for RFC 4733 events riding on it).
    pub fn map_timestamp(&mut self, in_ts: u32) -> u32 {
        self.ts.map(in_ts)
    }

    /// Output samples thrown away so far (partial frames at a timestamp
    /// jump or reorder, and buffer overflow when `pop` is not called).
    pub fn discarded_samples(&self) -> u64 {
        self.discarded_samples
    }

    /// Decode one input payload (RTP timestamp `rtp_ts`, input clock) into
    /// the output buffer. On error nothing is buffered (drop the packet).
    pub fn push(&mut self, payload: &[u8], rtp_ts: u32) -> Result<(), CodecError> {
        let samples = match &mut self.decode {
            Decode::Ulaw | Decode::Alaw if payload.len() > MAX_G711_BYTES => {
                return Err(CodecError::PayloadTooLong(payload.len()));
            }
            Decode::Ulaw => {
                self.pcm.clear();
                g711::decode_ulaw(payload, &mut self.pcm);
                self.pcm.len()
            }
            Decode::Alaw => {
                self.pcm.clear();
                g711::decode_alaw(payload, &mut self.pcm);
                self.pcm.len()
            }
            Decode::Opus(dec) => {
                self.pcm.resize(MAX_FRAME_SAMPLES, 0);
                dec.decode(payload, &mut self.pcm)?
            }
        };
        let decoded = self.pcm.get(..samples).unwrap_or_default();
        self.resampled.clear();
        match &mut self.resample {
            Resample::None => self.resampled.extend_from_slice(decoded),
            Resample::Up(up) => up.process(decoded, &mut self.resampled),
            Resample::Down(down) => down.process(decoded, &mut self.resampled),
        }
        let ts = self.ts.map(rtp_ts);
        self.append(ts);
        Ok(())
    }

    /// Append `self.resampled`, stamped `ts`, to the buffer.
    fn append(&mut self, ts: u32) {
        if self.buf.is_empty() {
            self.buf_ts = ts;
        } else {
            let end = self.buf_ts.wrapping_add(self.buf.len() as u32);
            let gap = ts.wrapping_sub(end) as i32;
            let max_fill = ms_to_samples(self.rate, MAX_FILL_MS);
            if gap > 0 && (gap as usize) <= max_fill {
                self.buf.resize(self.buf.len() + gap as usize, 0);
            } else if gap != 0 {
                self.discarded_samples += self.buf.len() as u64;
                self.buf.clear();
                self.buf_ts = ts;
            }
        }
        self.buf.extend_from_slice(&self.resampled);
        let cap = ms_to_samples(self.rate, MAX_BUFFER_MS);
        if self.buf.len() > cap {
            let excess = self.buf.len() - cap;
            self.buf.drain(..excess);
            self.buf_ts = self.buf_ts.wrapping_add(excess as u32);
            self.discarded_samples += excess as u64;
        }
    }

    /// Encode the next output payload into `out` (cleared first), if enough
    /// audio is buffered. Call until `None` after each [`push`](Self::push).
    pub fn pop(&mut self, out: &mut Vec<u8>) -> Result<Option<TranscodeOut>, CodecError> {
        out.clear();
        let n = match self.frame {
            Some(frame) if self.buf.len() >= frame => frame,
            None if !self.buf.is_empty() => self.buf.len(),
            _ => return Ok(None),
        };
        let frame = self.buf.get(..n).unwrap_or_default();
        let encoded = match &mut self.encode {
            Encode::Ulaw => {
                g711::encode_ulaw(frame, out);
                Ok(())
            }
            Encode::Alaw => {
                g711::encode_alaw(frame, out);
                Ok(())
            }
            Encode::Opus(enc) => {
                out.resize(MAX_PACKET_BYTES, 0);
                enc.encode(frame, out).map(|len| out.truncate(len))
            }
        };
        let ts = self.buf_ts;
        self.buf.drain(..n);
        self.buf_ts = self.buf_ts.wrapping_add(n as u32);
        if let Err(e) = encoded {
            out.clear();
            return Err(e);
        }
        Ok(Some(TranscodeOut {
            rtp_ts: ts,
            samples_out_per_packet: n as u32,
        }))
    }

    /// [`push`](Self::push) then one [`pop`](Self::pop): the whole job when
    /// both legs use the same ptime (the usual 20 ms). With differing
    /// ptimes, keep calling `pop` until `None`.
    pub fn transcode(
        &mut self,
        payload: &[u8],
        rtp_ts: u32,
        out: &mut Vec<u8>,
    ) -> Result<Option<TranscodeOut>, CodecError> {
        self.push(payload, rtp_ts)?;
        self.pop(out)
    }
}

fn ms_to_samples(rate: u32, ms: u32) -> usize {
    (u64::from(rate) * u64::from(ms) / 1000) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::goertzel::{amplitude, tone};

    fn ulaw(pcm: &[i16]) -> Vec<u8> {
        let mut v = Vec::new();
        g711::encode_ulaw(pcm, &mut v);
        v
    }

    #[test]
    fn refuses_same_codec_and_events() {
        let te = Codec::TelephoneEvent { rate: 8000 };
        for (a, b) in [
            (Codec::Pcmu, Codec::Pcmu),
            (te, Codec::Opus),
            (Codec::Opus, te),
        ] {
            assert!(matches!(
                Transcoder::new(a, b),
                Err(CodecError::Unsupported { .. })
            ));
        }
    }

    #[test]
    fn pcmu_to_pcma_keeps_timestamps_and_audio() {
        let mut t = Transcoder::new(Codec::Pcmu, Codec::Pcma).unwrap();
        let mut out = Vec::new();
        for i in 0..5u32 {
            let pcm = tone(1000.0, 8000, u64::from(i) * 160, 160, 8000.0);
            let ts = 1000 + i * 160;
            let o = t.transcode(&ulaw(&pcm), ts, &mut out).unwrap().unwrap();
            assert_eq!(
                o,
                TranscodeOut {
                    rtp_ts: ts,
                    samples_out_per_packet: 160
                }
            );
            assert_eq!(out.len(), 160);
            let mut back = Vec::new();
            g711::decode_alaw(&out, &mut back);
            for (x, y) in back.iter().zip(&pcm) {
                assert!((i32::from(*x) - i32::from(*y)).abs() <= 600);
            }
            assert_eq!(t.pop(&mut out).unwrap(), None);
        }
    }

    #[test]
    fn pcmu_to_opus_keeps_the_tone_and_scales_timestamps() {
        let mut t = Transcoder::new(Codec::Pcmu, Codec::Opus).unwrap();
        let mut dec = OpusDecoder::new(48_000, 1).unwrap();
        let mut out = Vec::new();
        let mut pcm48 = vec![0i16; MAX_FRAME_SAMPLES];
        let mut heard = Vec::new();
        let base = u32::MAX - 800; // wraps during the test
        for i in 0..25u32 {
            let pcm = tone(1000.0, 8000, u64::from(i) * 160, 160, 8000.0);
            let o = t
                .transcode(&ulaw(&pcm), base.wrapping_add(i * 160), &mut out)
                .unwrap()
                .unwrap();
            assert_eq!(o.samples_out_per_packet, 960);
            assert_eq!(o.rtp_ts, base.wrapping_add(i * 960));
            let n = dec.decode(&out, &mut pcm48).unwrap();
            heard.extend_from_slice(&pcm48[..n]);
        }
        let body = &heard[9600..];
        let a = amplitude(body, 48_000, 1000.0);
        assert!(a > 4000.0, "1 kHz at {a}");
        assert!(amplitude(body, 48_000, 440.0) < a / 20.0);
        assert!(amplitude(body, 48_000, 7000.0) < a / 20.0);
    }

    #[test]
    fn opus_to_pcmu_keeps_the_tone_and_scales_timestamps() {
        let mut enc = OpusEncoder::new(48_000, 1, OpusApplication::Voip).unwrap();
        let mut t = Transcoder::new(Codec::Opus, Codec::Pcmu).unwrap();
        let mut packet = vec![0u8; MAX_PACKET_BYTES];
        let mut out = Vec::new();
        let mut heard = Vec::new();
        // 2^32 is not a multiple of 6: plain division would jump at wrap.
        let base = u32::MAX - 2000;
        for i in 0..25u32 {
            let frame = tone(440.0, 48_000, u64::from(i) * 960, 960, 12000.0);
            let n = enc.encode(&frame, &mut packet).unwrap();
            let o = t
                .transcode(&packet[..n], base.wrapping_add(i * 960), &mut out)
                .unwrap()
                .unwrap();
            assert_eq!(o.samples_out_per_packet, 160);
            assert_eq!(o.rtp_ts, base.wrapping_add(i * 160));
            assert_eq!(out.len(), 160);
            g711::decode_ulaw(&out, &mut heard);
        }
        let body = &heard[1600..];
        let a = amplitude(body, 8000, 440.0);
        assert!(a > 5000.0, "440 Hz at {a}");
        assert!(amplitude(body, 8000, 1000.0) < a / 20.0);
    }

    #[test]
    fn g711_10ms_and_30ms_ptime_into_20ms_opus() {
        let mut t = Transcoder::new(Codec::Pcma, Codec::Opus).unwrap();
        let mut out = Vec::new();
        let silence = [0xD5u8; 240];
        assert_eq!(t.transcode(&silence[..80], 0, &mut out).unwrap(), None);
        assert!(out.is_empty());
        let o = t.transcode(&silence[..80], 80, &mut out).unwrap().unwrap();
        assert_eq!(o.rtp_ts, 0);
        assert!(!out.is_empty());
        // 30 ms packets: 1440 samples each → 1, then 2 frames.
        let mut stamps = Vec::new();
        for i in 0..2u32 {
            t.push(&silence, 160 + i * 240).unwrap();
            while let Some(o) = t.pop(&mut out).unwrap() {
                stamps.push(o.rtp_ts);
            }
        }
        assert_eq!(stamps, vec![960, 1920, 2880]);
        t.set_opus_ptime_ms(60).unwrap();
        assert!(t.set_opus_ptime_ms(30).is_err());
        t.set_opus_bitrate(20_000).unwrap();
    }

    #[test]
    fn loss_becomes_a_timestamp_gap_or_filled_silence() {
        let mut t = Transcoder::new(Codec::Pcmu, Codec::Opus).unwrap();
        let mut out = Vec::new();
        let pkt = [0xFFu8; 160];
        assert_eq!(t.transcode(&pkt, 0, &mut out).unwrap().unwrap().rtp_ts, 0);
        // Packet at 160 lost: the next output is stamped 2 × 960.
        assert_eq!(
            t.transcode(&pkt, 320, &mut out).unwrap().unwrap().rtp_ts,
            1920
        );
        // Partial frame + small gap: filled, framing continues.
        let mut t = Transcoder::new(Codec::Pcmu, Codec::Opus).unwrap();
        assert_eq!(t.transcode(&pkt[..80], 0, &mut out).unwrap(), None);
        let o = t.transcode(&pkt[..80], 160, &mut out).unwrap().unwrap();
        assert_eq!(o.rtp_ts, 0);
        assert_eq!(t.discarded_samples(), 0);
        // Partial frame (480 left) then a jump backwards: it is dropped.
        assert_eq!(t.transcode(&pkt[..80], 0, &mut out).unwrap(), None);
        assert_eq!(t.discarded_samples(), 480);
        assert_eq!(t.map_timestamp(80), 480);
    }

    #[test]
    fn bad_input_is_an_error_never_a_panic() {
        let mut t = Transcoder::new(Codec::Opus, Codec::Pcma).unwrap();
        let mut out = Vec::new();
        assert_eq!(t.transcode(&[], 0, &mut out), Err(CodecError::EmptyPayload));
        for seed in 0..300u32 {
            let junk: Vec<u8> = (0..(seed % 200 + 1))
                .map(|i| (i.wrapping_mul(2654435761).wrapping_add(seed * 7919) >> 11) as u8)
                .collect();
            if let Ok(Some(o)) = t.transcode(&junk, seed * 960, &mut out) {
                assert_eq!(out.len() as u32, o.samples_out_per_packet);
            }
        }
        let mut t = Transcoder::new(Codec::Pcmu, Codec::Opus).unwrap();
        assert_eq!(
            t.push(&[0u8; 2000], 0),
            Err(CodecError::PayloadTooLong(2000))
        );
        // Never popped: the buffer stays bounded.
        for i in 0..100u32 {
            t.push(&[0xFFu8; 160], i * 160).unwrap();
        }
        assert!(t.buf.len() <= 48 * MAX_BUFFER_MS as usize);
        assert!(t.discarded_samples() > 0);
    }
}
