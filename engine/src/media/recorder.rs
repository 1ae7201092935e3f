//! The call recorder core: RTP payloads of both legs in, a stereo 16-bit
//! PCM WAV out (left = caller = leg A, right = callee = leg B).
//!
//! # Timeline
//! Both channels share one wall-clock origin: the arrival of the first
//! packet pushed (either side), or the first `pause`/`resume`/`finish`.
//! Each stream is anchored at its first packet (position = that packet's
//! arrival); later packets are placed by their RTP timestamp relative to
//! the anchor, so loss and jitter become silence and never shift what
//! follows. A stream is re-anchored at a packet's arrival when its
//! timestamp disagrees with its arrival by more than the jitter allows: more
//! than 300 ms early or 1 s late (SSRC change, timestamp jump, a hold with
//! a frozen clock), a change of clock rate (codec switch), or 5 packets in a
//! row too late to be written (persistent delay step; sender clock drift is
//! corrected this way, once its error passes the 200 ms window).
//!
//! # Pause
//! `pause(now)` … `resume(now)` is silent on both channels, to the sample:
//! audio placed in the span is erased, packets arriving while paused are
//! dropped unless stamped before the pause (network-delayed audio from
//! before it, cut at the pause), and late packets stamped inside the span
//! after the resume stay silent.
//!
//! # Memory and output
//! Audio is held 200 ms behind the newest arrival (the jitter window)
//! in a fixed ring of 640 ms per channel, then written; nothing grows with
//! the call's length. Per recorder: ring 2 × 640 ms (20 KB at 8 kHz,
//! 123 KB at 48 kHz), a 32 KB write buffer, one Opus decoder per Opus leg
//! (18 KB) and scratch for one packet (12 KB): ≈ 65 KB for a narrowband
//! call, ≈ 190 KB for a wideband one. The WAV
//! header is refreshed every 5 s of audio, so a crash leaves a playable
//! file. Writes are blocking file I/O: run the recorder on its own thread
//! (or `spawn_blocking`), fed by a bounded channel.
//!
//! # Decoding
//! G.711 by table (upsampled ×6 for a 48 kHz recording; the filter delays
//! that channel by 1.2 ms), Opus decoded straight at the recording rate.
//! RFC 4733 event packets are not recorded (silence, unless the phone also
//! sends the tones in-band).

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::time::Instant;

use hound::{SampleFormat, WavSpec, WavWriter};

use super::codec::opus::{OpusDecoder, MAX_FRAME_SAMPLES};
use super::codec::resample::Upsampler;
use super::codec::{g711, Codec};
use super::relay::Side;

/// Audio held behind the newest arrival before it is written.
const HOLD_MS: u64 = 200;
/// A packet placed further ahead of its arrival than this re-anchors.
const MAX_EARLY_MS: u64 = 300;
/// A packet placed further behind its arrival than this re-anchors.
const MAX_LATE_MS: u64 = 1000;
/// Consecutive packets too late to be written before a re-anchor.
const LATE_RUN: u32 = 5;
/// Longest audio kept from one packet.
const MAX_PACKET_MS: u64 = 120;
/// Ring length: window + early tolerance + one packet, with margin.
const RING_MS: u64 = HOLD_MS + MAX_EARLY_MS + MAX_PACKET_MS + 20;
/// Refresh the WAV header after this much audio.
const HEADER_REFRESH_MS: u64 = 5000;
/// WAV data chunks are limited to 4 GiB; stop a little before.
const MAX_DATA_BYTES: u64 = u32::MAX as u64 - (1 << 20);
const WRITE_BUFFER: usize = 32 * 1024;

/// Output format of a recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecorderFormat {
    /// 8000 (narrowband calls) or 48000 (a leg uses Opus).
    pub sample_rate: u32,
}

/// Summary of a finished recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingInfo {
    /// The WAV file.
    pub path: PathBuf,
    /// Duration of the file.
    pub duration_ms: u64,
    /// Packets that could not be placed: undecodable, too late for the
    /// jitter window, or beyond the 4 GiB WAV limit. Packets dropped while
    /// paused, duplicates and RFC 4733 events are not counted; neither are
    /// packets the relay failed to hand over (add its own count).
    pub dropped_packets: u64,
}

/// Why a recording could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecorderError {
    /// The format's sample rate is not 8000 or 48000.
    #[error("unsupported recording sample rate {0} Hz")]
    BadSampleRate(u32),
    /// Creating or writing the WAV file failed.
    #[error("wav: {0}")]
    Wav(#[from] hound::Error),
    /// An Opus decoder could not be created.
    #[error("codec: {0}")]
    Codec(#[from] super::codec::CodecError),
}

/// Where a stream's RTP timeline sits on the recording's timeline.
#[derive(Debug, Clone, Copy)]
struct Anchor {
    /// Extended RTP timestamp of the anchor packet.
    ext_ts: i64,
    /// Its position (samples since the origin).
    pos: i64,
}

/// Per-side state.
#[derive(Default)]
struct Stream {
    anchor: Option<Anchor>,
    /// Clock rate of the anchored timeline.
    clock: u32,
    last_ts: u32,
    last_seq: Option<u16>,
    /// Timestamp relative to the first packet, without wrap.
    ext_ts: i64,
    late_run: u32,
    opus: Option<Box<OpusDecoder>>,
    up: Option<Box<Upsampler>>,
}

/// A call recording in progress (see the module doc).
pub struct Recorder {
    path: PathBuf,
    writer: Option<WavWriter<BufWriter<File>>>,
    rate: u32,
    origin: Option<Instant>,
    /// Position of the newest arrival.
    latest: u64,
    /// Samples per channel taken out of the ring (written or past the cap).
    written: u64,
    /// Frames actually in the file.
    file_frames: u64,
    /// One past the last position holding audio.
    max_end: u64,
    cap: u64,
    ring: [Vec<i16>; 2],
    streams: [Stream; 2],
    /// Start of the current pause.
    paused_at: Option<u64>,
    /// Pause spans `[start, end)` not yet written (`end` open while paused).
    mutes: Vec<(u64, u64)>,
    dropped: u64,
    since_header: u64,
    g711: Vec<i16>,
    pcm: Vec<i16>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("path", &self.path)
            .field("rate", &self.rate)
            .field("written", &self.written)
            .field("paused", &self.paused_at.is_some())
            .field("dropped", &self.dropped)
            .finish()
    }
}

fn ms(rate: u32, ms: u64) -> u64 {
    u64::from(rate) * ms / 1000
}

impl Recorder {
    /// Create (truncate) `path` and start a stereo 16-bit WAV at
    /// `format.sample_rate`.
    pub fn create(path: impl AsRef<Path>, format: RecorderFormat) -> Result<Self, RecorderError> {
        let rate = format.sample_rate;
        if rate != 8000 && rate != 48_000 {
            return Err(RecorderError::BadSampleRate(rate));
        }
        let path = path.as_ref().to_path_buf();
        let file = File::create(&path).map_err(hound::Error::IoError)?;
        let spec = WavSpec {
            channels: 2,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: SampleFormat::Int,
        };
        let writer = WavWriter::new(BufWriter::with_capacity(WRITE_BUFFER, file), spec)?;
        let cap = ms(rate, RING_MS);
        Ok(Recorder {
            path,
            writer: Some(writer),
            rate,
            origin: None,
            latest: 0,
            written: 0,
            file_frames: 0,
            max_end: 0,
            cap,
            ring: [vec![0; cap as usize], vec![0; cap as usize]],
            streams: [Stream::default(), Stream::default()],
            paused_at: None,
            mutes: Vec::new(),
            dropped: 0,
            since_header: 0,
            g711: Vec::with_capacity(ms(8000, MAX_PACKET_MS) as usize),
            pcm: Vec::with_capacity(MAX_FRAME_SAMPLES),
        })
    }

    /// The WAV file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the recording is paused.
    pub fn is_paused(&self) -> bool {
        self.paused_at.is_some()
    }

    /// Packets dropped so far (see [`RecordingInfo::dropped_packets`]).
    pub fn dropped_packets(&self) -> u64 {
        self.dropped
    }

    /// Position (samples since the origin) of `t`; sets the origin.
    fn position(&mut self, t: Instant) -> u64 {
        let origin = *self.origin.get_or_insert(t);
        let nanos = t.saturating_duration_since(origin).as_nanos();
        let pos = (nanos * u128::from(self.rate) / 1_000_000_000) as u64;
        self.latest = self.latest.max(pos);
        pos
    }

    /// One RTP packet of leg `side` (payload only, header already parsed)
    /// that arrived at `arrival`. Errors are file errors only; a bad
    /// packet is counted in `dropped_packets`.
    pub fn push(
        &mut self,
        side: Side,
        codec: Codec,
        rtp_seq: u16,
        rtp_ts: u32,
        payload: &[u8],
        arrival: Instant,
    ) -> Result<(), RecorderError> {
        let arrived = self.position(arrival);
        if codec.is_audio() {
            self.place_packet(side.index(), codec, rtp_seq, rtp_ts, payload, arrived);
        }
        self.flush_to(self.latest.saturating_sub(ms(self.rate, HOLD_MS)))
    }

    fn place_packet(
        &mut self,
        ch: usize,
        codec: Codec,
        seq: u16,
        ts: u32,
        payload: &[u8],
        arrived: u64,
    ) {
        let rate = self.rate;
        let Some(stream) = self.streams.get_mut(ch) else {
            return;
        };
        if stream.last_seq == Some(seq) && stream.last_ts == ts && stream.anchor.is_some() {
            return; // duplicate
        }
        // Decode into self.pcm at the recording rate.
        self.pcm.clear();
        let decoded = match codec {
            Codec::Pcmu | Codec::Pcma => {
                self.g711.clear();
                let max = ms(8000, MAX_PACKET_MS) as usize;
                let payload = payload.get(..max).unwrap_or(payload);
                if codec == Codec::Pcmu {
                    g711::decode_ulaw(payload, &mut self.g711);
                } else {
                    g711::decode_alaw(payload, &mut self.g711);
                }
                if rate == 8000 {
                    self.pcm.extend_from_slice(&self.g711);
                } else {
                    let up = stream.up.get_or_insert_with(Box::default);
                    up.process(&self.g711, &mut self.pcm);
                }
                !payload.is_empty()
            }
            Codec::Opus => {
                if stream.opus.is_none() {
                    stream.opus = OpusDecoder::new(rate, 1).ok().map(Box::new);
                }
                let max = (ms(rate, MAX_PACKET_MS) as usize).max(1);
                self.pcm.resize(max, 0);
                match stream
                    .opus
                    .as_mut()
                    .map(|d| d.decode(payload, &mut self.pcm))
                {
                    Some(Ok(n)) => {
                        self.pcm.truncate(n);
                        n > 0
                    }
                    _ => false,
                }
            }
            Codec::TelephoneEvent { .. } => false,
        };
        if !decoded {
            self.dropped += 1;
            return;
        }
        let n = self.pcm.len() as i64;

        // Where the timestamp puts it.
        let clock = codec.clock_rate();
        if stream.anchor.is_some() && stream.clock == clock {
            stream.ext_ts += i64::from(ts.wrapping_sub(stream.last_ts) as i32);
        } else {
            stream.anchor = None;
            stream.ext_ts = 0;
            stream.clock = clock;
        }
        stream.last_ts = ts;
        stream.last_seq = Some(seq);
        let arrived = arrived as i64;
        let by_ts = stream.anchor.map(|a| {
            a.pos
                + ((stream.ext_ts - a.ext_ts) * i64::from(rate)).div_euclid(i64::from(clock.max(1)))
        });
        let written = self.written as i64;
        let reanchor = match by_ts {
            None => true,
            Some(p) => {
                let early = p - arrived;
                let late = arrived - p;
                if early > ms(rate, MAX_EARLY_MS) as i64 || late > ms(rate, MAX_LATE_MS) as i64 {
                    true
                } else if p + n <= written {
                    stream.late_run += 1;
                    if stream.late_run < LATE_RUN {
                        self.dropped += 1;
                        return;
                    }
                    true
                } else {
                    stream.late_run = 0;
                    false
                }
            }
        };
        let pos = match (reanchor, by_ts) {
            (false, Some(p)) => p,
            _ => {
                stream.anchor = Some(Anchor {
                    ext_ts: stream.ext_ts,
                    pos: arrived,
                });
                stream.late_run = 0;
                arrived
            }
        };
        // While paused only audio from before the pause (delayed by the
        // network) is kept; the pause span itself stays silent.
        if self.paused_at.is_some_and(|p0| pos >= p0 as i64) {
            return;
        }
        self.write_ring(ch, pos);
    }

    /// Copy `self.pcm` into channel `ch` at `pos`, clipped to the ring and
    /// to pause spans.
    fn write_ring(&mut self, ch: usize, pos: i64) {
        let lo = pos.max(self.written as i64) as u64;
        let end = pos.saturating_add(self.pcm.len() as i64).max(0) as u64;
        let hi = end.min(self.written + self.cap);
        if lo >= hi {
            return;
        }
        let skip = (lo as i64 - pos) as usize;
        let Some(ring) = self.ring.get_mut(ch) else {
            return;
        };
        for (i, &s) in self
            .pcm
            .iter()
            .skip(skip)
            .take((hi - lo) as usize)
            .enumerate()
        {
            if let Some(slot) = ring.get_mut(((lo + i as u64) % self.cap) as usize) {
                *slot = s;
            }
        }
        self.max_end = self.max_end.max(hi);
        for i in 0..self.mutes.len() {
            if let Some(&(m0, m1)) = self.mutes.get(i) {
                self.zero(Some(ch), m0.max(lo), m1.min(hi));
            }
        }
    }

    /// Zero positions `[lo, hi)` (clipped to the ring) of one or both
    /// channels.
    fn zero(&mut self, ch: Option<usize>, lo: u64, hi: u64) {
        let lo = lo.max(self.written);
        let hi = hi.min(self.written + self.cap);
        for (c, ring) in self.ring.iter_mut().enumerate() {
            if ch.is_some_and(|x| x != c) {
                continue;
            }
            for q in lo..hi {
                if let Some(slot) = ring.get_mut((q % self.cap) as usize) {
                    *slot = 0;
                }
            }
        }
    }

    /// Write positions up to `target` (exclusive) to the file.
    fn flush_to(&mut self, target: u64) -> Result<(), RecorderError> {
        let max_frames = MAX_DATA_BYTES / 4;
        while self.written < target {
            let start = (self.written % self.cap) as usize;
            let n = (target - self.written).min(self.cap - start as u64) as usize;
            let [left, right] = &mut self.ring;
            let (Some(l), Some(r)) = (
                left.get_mut(start..start + n),
                right.get_mut(start..start + n),
            ) else {
                break;
            };
            let room = max_frames.saturating_sub(self.file_frames) as usize;
            let take = n.min(room);
            if let (Some(w), true) = (self.writer.as_mut(), take > 0) {
                let mut sw = w.get_i16_writer((take * 2) as u32);
                for (&a, &b) in l.iter().zip(r.iter()).take(take) {
                    sw.write_sample(a);
                    sw.write_sample(b);
                }
                sw.flush()?;
                self.file_frames += take as u64;
                self.since_header += take as u64;
            }
            l.fill(0);
            r.fill(0);
            self.written += n as u64;
        }
        let written = self.written;
        self.mutes.retain(|&(_, end)| end > written);
        if self.since_header >= ms(self.rate, HEADER_REFRESH_MS) {
            self.since_header = 0;
            if let Some(w) = self.writer.as_mut() {
                w.flush()?;
            }
        }
        Ok(())
    }

    /// Stop recording at `now`: silence on both channels from `now` until
    /// [`resume`](Self::resume). Audio already placed after `now` is
    /// erased; packets arriving meanwhile are dropped unless they are
    /// stamped before `now` (network-delayed audio from before the pause,
    /// cut at `now`).
    pub fn pause(&mut self, now: Instant) -> Result<(), RecorderError> {
        let at = self.position(now);
        if self.paused_at.is_none() {
            self.paused_at = Some(at);
            self.mutes.push((at, u64::MAX));
            self.zero(None, at, u64::MAX);
        }
        self.flush_to(self.latest.saturating_sub(ms(self.rate, HOLD_MS)))
    }

    /// Resume recording at `now`; late packets stamped inside the paused
    /// span stay silent.
    pub fn resume(&mut self, now: Instant) -> Result<(), RecorderError> {
        let at = self.position(now);
        if self.paused_at.take().is_some() {
            if let Some(last) = self.mutes.last_mut() {
                last.1 = at.max(last.0);
            }
        }
        self.flush_to(self.latest.saturating_sub(ms(self.rate, HOLD_MS)))
    }

    /// Write everything up to `now` (or the end of the last audio placed,
    /// if later), pad both channels to that length and finalise the header.
    pub fn finish(mut self, now: Instant) -> Result<RecordingInfo, RecorderError> {
        let at = self.position(now);
        let end = at.max(self.max_end);
        self.flush_to(end)?;
        if let Some(w) = self.writer.take() {
            w.finalize()?;
        }
        Ok(RecordingInfo {
            path: self.path.clone(),
            duration_ms: self.file_frames * 1000 / u64::from(self.rate),
            dropped_packets: self.dropped,
        })
    }
}

#[cfg(test)]
mod tests;
