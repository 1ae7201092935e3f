//! Thin wrapper over `audiopus` (libopus): a mono/stereo decoder with packet
//! loss concealment and an encoder, both with typed errors.
//!
//! Opus's RTP clock is always 48 kHz (RFC 7587) whatever rate the codec
//! runs at; a decoder may still output at 8–48 kHz (libopus resamples).

use audiopus::coder::{Decoder, Encoder};
use audiopus::{Application, Bitrate, Channels, SampleRate};

use super::CodecError;

/// Largest number of samples per channel one Opus packet decodes to
/// (120 ms at 48 kHz).
pub const MAX_FRAME_SAMPLES: usize = 5760;
/// Output buffer size that holds any encoded packet.
pub const MAX_PACKET_BYTES: usize = 1500;

/// What the encoder optimises for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpusApplication {
    /// Speech: best intelligibility (`OPUS_APPLICATION_VOIP`).
    Voip,
    /// Music and mixed content (`OPUS_APPLICATION_AUDIO`).
    Audio,
}

fn sample_rate(rate: u32) -> Result<SampleRate, CodecError> {
    Ok(match rate {
        8000 => SampleRate::Hz8000,
        12000 => SampleRate::Hz12000,
        16000 => SampleRate::Hz16000,
        24000 => SampleRate::Hz24000,
        48000 => SampleRate::Hz48000,
        other => return Err(CodecError::UnsupportedRate(other)),
    })
}

fn channels(n: u8) -> Result<Channels, CodecError> {
    match n {
        1 => Ok(Channels::Mono),
        2 => Ok(Channels::Stereo),
        other => Err(CodecError::UnsupportedChannels(other)),
    }
}

fn opus_err(e: audiopus::Error) -> CodecError {
    CodecError::Opus(e.to_string())
}

/// An Opus decoder producing 16-bit PCM (interleaved when stereo).
pub struct OpusDecoder {
    inner: Decoder,
    rate: u32,
    channels: usize,
}

impl std::fmt::Debug for OpusDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusDecoder")
            .field("rate", &self.rate)
            .field("channels", &self.channels)
            .finish()
    }
}

impl OpusDecoder {
    /// A decoder outputting `sample_rate` Hz (8000, 12000, 16000, 24000 or
    /// 48000) with `channels` (1 or 2) channels.
    pub fn new(sample_rate_hz: u32, channel_count: u8) -> Result<Self, CodecError> {
        let inner = Decoder::new(sample_rate(sample_rate_hz)?, channels(channel_count)?)
            .map_err(opus_err)?;
        Ok(OpusDecoder {
            inner,
            rate: sample_rate_hz,
            channels: usize::from(channel_count),
        })
    }

    /// Output sample rate (Hz).
    pub fn sample_rate(&self) -> u32 {
        self.rate
    }

    /// Decode one packet into `out`; returns the samples written per
    /// channel. `out` should hold [`MAX_FRAME_SAMPLES`] × channels scaled
    /// to the output rate; a packet longer than `out` is an error.
    pub fn decode(&mut self, packet: &[u8], out: &mut [i16]) -> Result<usize, CodecError> {
        if packet.is_empty() {
            return Err(CodecError::EmptyPayload);
        }
        self.inner
            .decode(Some(packet), out, false)
            .map_err(opus_err)
    }

    /// Conceal `samples` lost samples per channel (packet loss
    /// concealment) into `out`; `samples` is rounded down to a multiple of
    /// 2.5 ms and capped by `out`. Returns the samples written per channel.
    pub fn decode_lost(&mut self, samples: usize, out: &mut [i16]) -> Result<usize, CodecError> {
        let quantum = (self.rate / 400) as usize; // 2.5 ms
        let fit = out.len() / self.channels.max(1);
        let n = samples.min(fit).min(MAX_FRAME_SAMPLES) / quantum.max(1) * quantum;
        if n == 0 {
            return Ok(0);
        }
        let Some(buf) = out.get_mut(..n * self.channels) else {
            return Ok(0);
        };
        self.inner
            .decode(None::<&[u8]>, buf, false)
            .map_err(opus_err)
    }
}

/// An Opus encoder taking 16-bit PCM frames.
pub struct OpusEncoder {
    inner: Encoder,
    rate: u32,
    channels: usize,
}

impl std::fmt::Debug for OpusEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusEncoder")
            .field("rate", &self.rate)
            .field("channels", &self.channels)
            .finish()
    }
}

impl OpusEncoder {
    /// An encoder for `sample_rate_hz` input (8000–48000 as for the
    /// decoder) with `channels` channels, tuned for `application`.
    pub fn new(
        sample_rate_hz: u32,
        channel_count: u8,
        application: OpusApplication,
    ) -> Result<Self, CodecError> {
        let app = match application {
            OpusApplication::Voip => Application::Voip,
            OpusApplication::Audio => Application::Audio,
        };
        let inner = Encoder::new(sample_rate(sample_rate_hz)?, channels(channel_count)?, app)
            .map_err(opus_err)?;
        Ok(OpusEncoder {
            inner,
            rate: sample_rate_hz,
            channels: usize::from(channel_count),
        })
    }

    /// Input sample rate (Hz).
    pub fn sample_rate(&self) -> u32 {
        self.rate
    }

    /// Set the target bitrate in bits per second (500–512000).
    pub fn set_bitrate(&mut self, bits_per_second: i32) -> Result<(), CodecError> {
        self.inner
            .set_bitrate(Bitrate::BitsPerSecond(bits_per_second))
            .map_err(opus_err)
    }

    /// Encode one frame (interleaved when stereo) into `out`; returns the
    /// packet length. The frame must last 2.5, 5, 10, 20, 40 or 60 ms (960
    /// samples per channel for 20 ms at 48 kHz); `out` should hold
    /// [`MAX_PACKET_BYTES`].
    pub fn encode(&mut self, frame: &[i16], out: &mut [u8]) -> Result<usize, CodecError> {
        let per_channel = frame.len() / self.channels.max(1);
        let quantum = (self.rate / 400) as usize; // 2.5 ms
        let valid = [1, 2, 4, 8, 16, 24]
            .iter()
            .any(|&q| per_channel == q * quantum)
            && frame.len().is_multiple_of(self.channels.max(1));
        if !valid {
            return Err(CodecError::BadFrameSize(frame.len()));
        }
        if out.is_empty() {
            return Err(CodecError::BufferTooSmall);
        }
        self.inner.encode(frame, out).map_err(opus_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::goertzel::{amplitude, tone};

    #[test]
    fn a_440hz_tone_keeps_its_frequency() {
        let mut enc = OpusEncoder::new(48_000, 1, OpusApplication::Voip).unwrap();
        let mut dec = OpusDecoder::new(48_000, 1).unwrap();
        let mut decoded = Vec::new();
        let mut packet = [0u8; MAX_PACKET_BYTES];
        let mut pcm = [0i16; MAX_FRAME_SAMPLES];
        for f in 0..25u64 {
            let frame = tone(440.0, 48_000, f * 960, 960, 12000.0);
            let n = enc.encode(&frame, &mut packet).unwrap();
            assert!(n > 0 && n < 400, "packet of {n} bytes");
            let m = dec.decode(&packet[..n], &mut pcm).unwrap();
            assert_eq!(m, 960);
            decoded.extend_from_slice(&pcm[..m]);
        }
        let body = &decoded[9600..];
        let a440 = amplitude(body, 48_000, 440.0);
        assert!(a440 > 6000.0, "440 Hz amplitude {a440}");
        for other in [220.0, 880.0, 1000.0, 3000.0] {
            assert!(amplitude(body, 48_000, other) < a440 / 20.0, "{other} Hz");
        }
    }

    #[test]
    fn loss_concealment_fills_the_gap() {
        let mut enc = OpusEncoder::new(48_000, 1, OpusApplication::Voip).unwrap();
        let mut dec = OpusDecoder::new(48_000, 1).unwrap();
        let mut packet = [0u8; MAX_PACKET_BYTES];
        let mut pcm = [0i16; MAX_FRAME_SAMPLES];
        for f in 0..10u64 {
            let frame = tone(440.0, 48_000, f * 960, 960, 12000.0);
            let n = enc.encode(&frame, &mut packet).unwrap();
            dec.decode(&packet[..n], &mut pcm).unwrap();
        }
        assert_eq!(dec.decode_lost(960, &mut pcm).unwrap(), 960);
        assert!(amplitude(&pcm[..960], 48_000, 440.0) > 1000.0);
        // Rounded down to 2.5 ms, capped by the buffer.
        assert_eq!(dec.decode_lost(1000, &mut pcm).unwrap(), 960);
        assert_eq!(dec.decode_lost(100, &mut pcm).unwrap(), 0);
        assert_eq!(dec.decode_lost(960, &mut pcm[..500]).unwrap(), 480);
    }

    #[test]
    fn decodes_at_8khz_and_rejects_garbage() {
        let mut enc = OpusEncoder::new(48_000, 1, OpusApplication::Voip).unwrap();
        enc.set_bitrate(24_000).unwrap();
        let mut dec = OpusDecoder::new(8000, 1).unwrap();
        assert_eq!(dec.sample_rate(), 8000);
        let mut packet = [0u8; MAX_PACKET_BYTES];
        let frame = tone(440.0, 48_000, 0, 960, 12000.0);
        let n = enc.encode(&frame, &mut packet).unwrap();
        let mut pcm = [0i16; MAX_FRAME_SAMPLES];
        assert_eq!(dec.decode(&packet[..n], &mut pcm).unwrap(), 160);
        assert!(matches!(
            dec.decode(&[], &mut pcm),
            Err(CodecError::EmptyPayload)
        ));
        // Too small an output buffer for a 20 ms packet is an error, not UB.
        assert!(dec.decode(&packet[..n], &mut pcm[..10]).is_err());
        // Arbitrary bytes either decode to something or fail cleanly.
        for seed in 0..200u32 {
            let junk: Vec<u8> = (0..(seed % 90 + 1))
                .map(|i| (i.wrapping_mul(2654435761).wrapping_add(seed) >> 7) as u8)
                .collect();
            let _ = dec.decode(&junk, &mut pcm);
        }
    }

    #[test]
    fn rejects_bad_parameters() {
        assert!(matches!(
            OpusDecoder::new(44_100, 1),
            Err(CodecError::UnsupportedRate(44_100))
        ));
        assert!(matches!(
            OpusEncoder::new(48_000, 3, OpusApplication::Audio),
            Err(CodecError::UnsupportedChannels(3))
        ));
        let mut enc = OpusEncoder::new(48_000, 1, OpusApplication::Voip).unwrap();
        let mut out = [0u8; MAX_PACKET_BYTES];
        assert!(matches!(
            enc.encode(&[0; 1000], &mut out),
            Err(CodecError::BadFrameSize(1000))
        ));
        assert!(matches!(
            enc.encode(&[0; 960], &mut []),
            Err(CodecError::BufferTooSmall)
        ));
        assert_eq!(enc.sample_rate(), 48_000);
    }
}
