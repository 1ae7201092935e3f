//! Audio codecs of the media path: what SDP names map to, G.711 tables,
//! Opus via libopus, 8 ↔ 48 kHz resampling, and the per-direction
//! [`Transcoder`] used when the two legs share no codec.
//!
//! # Layout
//! - [`g711`]: μ-law / A-law tables (PCMU, PCMA).
//! - [`opus`]: `audiopus` wrapper (decode, loss concealment, encode).
//! - [`resample`]: polyphase FIR 8 kHz ↔ 48 kHz.
//! - [`transcode`]: one RTP payload stream of codec X to codec Y, with the
//!   RTP timestamp rule.

pub mod g711;
pub mod opus;
pub mod resample;
pub mod transcode;

pub use transcode::{TranscodeOut, Transcoder};

/// A payload format Maskline understands, as negotiated in SDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// G.711 μ-law, 8 kHz (`PCMU/8000`, static payload type 0).
    Pcmu,
    /// G.711 A-law, 8 kHz (`PCMA/8000`, static payload type 8).
    Pcma,
    /// Opus (`opus/48000/2`, RFC 7587): RTP clock always 48 kHz.
    Opus,
    /// RFC 4733 DTMF events (`telephone-event/<rate>`).
    TelephoneEvent {
        /// RTP clock rate of the events (8000 for narrowband, 48000 next
        /// to Opus).
        rate: u32,
    },
}

impl Codec {
    /// The codec an SDP `a=rtpmap:<pt> <name>/<clock>[/<channels>]` line
    /// names, or `None` when Maskline cannot handle it. Names are
    /// case-insensitive (RFC 4855 §3); Opus is accepted with or without the
    /// `/2` RFC 7587 mandates.
    pub fn from_rtpmap(name: &str, clock_rate: u32, channels: Option<u8>) -> Option<Codec> {
        let mono = matches!(channels, None | Some(1));
        if name.eq_ignore_ascii_case("PCMU") && clock_rate == 8000 && mono {
            Some(Codec::Pcmu)
        } else if name.eq_ignore_ascii_case("PCMA") && clock_rate == 8000 && mono {
            Some(Codec::Pcma)
        } else if name.eq_ignore_ascii_case("opus")
            && clock_rate == 48_000
            && matches!(channels, None | Some(1) | Some(2))
        {
            Some(Codec::Opus)
        } else if name.eq_ignore_ascii_case("telephone-event") && clock_rate > 0 && mono {
            Some(Codec::TelephoneEvent { rate: clock_rate })
        } else {
            None
        }
    }

    /// The codec of a static payload type used without `a=rtpmap`
    /// (RFC 3551: 0 = PCMU, 8 = PCMA).
    pub fn from_static_payload_type(pt: u8) -> Option<Codec> {
        match pt {
            0 => Some(Codec::Pcmu),
            8 => Some(Codec::Pcma),
            _ => None,
        }
    }

    /// The static payload type, if the codec has one.
    pub fn static_payload_type(self) -> Option<u8> {
        match self {
            Codec::Pcmu => Some(0),
            Codec::Pcma => Some(8),
            _ => None,
        }
    }

    /// RTP timestamp clock rate (Hz).
    pub fn clock_rate(self) -> u32 {
        match self {
            Codec::Pcmu | Codec::Pcma => 8000,
            Codec::Opus => 48_000,
            Codec::TelephoneEvent { rate } => rate,
        }
    }

    /// Encoding name for `a=rtpmap`.
    pub fn rtpmap_name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
            Codec::Opus => "opus",
            Codec::TelephoneEvent { .. } => "telephone-event",
        }
    }

    /// Channel count written in `a=rtpmap` (only Opus writes one: `/2`).
    pub fn rtpmap_channels(self) -> Option<u8> {
        match self {
            Codec::Opus => Some(2),
            _ => None,
        }
    }

    /// Whether packets of this format carry audio (not DTMF events).
    pub fn is_audio(self) -> bool {
        !matches!(self, Codec::TelephoneEvent { .. })
    }
}

/// Why audio could not be decoded, encoded or transcoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The sample rate is not one the codec supports.
    #[error("unsupported sample rate {0} Hz")]
    UnsupportedRate(u32),
    /// The channel count is not 1 or 2.
    #[error("unsupported channel count {0}")]
    UnsupportedChannels(u8),
    /// No transcoding path between these formats (DTMF events are
    /// translated, not transcoded).
    #[error("cannot transcode {from:?} to {to:?}")]
    Unsupported {
        /// Source format.
        from: Codec,
        /// Target format.
        to: Codec,
    },
    /// An empty payload (Opus cannot decode it).
    #[error("empty payload")]
    EmptyPayload,
    /// A payload longer than the transcoder accepts.
    #[error("payload of {0} bytes is too long")]
    PayloadTooLong(usize),
    /// A PCM frame whose length is not a valid Opus frame duration.
    #[error("{0} samples is not a valid Opus frame")]
    BadFrameSize(usize),
    /// The output buffer is empty.
    #[error("output buffer too small")]
    BufferTooSmall,
    /// libopus refused the packet or the call.
    #[error("opus: {0}")]
    Opus(String),
}

/// Payload type → codec of the audio m-line of an SDP body, in the
/// m-line's order of preference: static types by number, dynamic ones by
/// their `a=rtpmap`.
pub fn payload_map(sdp: &[u8]) -> Vec<(u8, Codec)> {
    let mut map = unordered_payload_map(sdp);
    let order = crate::sdp::audio_payloads(sdp);
    map.sort_by_key(|(pt, _)| order.iter().position(|p| p == pt).unwrap_or(usize::MAX));
    map
}

fn unordered_payload_map(sdp: &[u8]) -> Vec<(u8, Codec)> {
    let text = String::from_utf8_lossy(sdp);
    let mut out = Vec::new();
    let mut in_audio = false;
    for line in text.lines() {
        let line = line.trim();
        if let Some(m) = line.strip_prefix("m=") {
            in_audio = m.starts_with("audio ");
            if in_audio {
                for pt in m
                    .split_whitespace()
                    .skip(3)
                    .filter_map(|t| t.parse::<u8>().ok())
                {
                    if let Some(c) = Codec::from_static_payload_type(pt) {
                        out.push((pt, c));
                    }
                }
            }
        } else if let (true, Some(map)) = (in_audio, line.strip_prefix("a=rtpmap:")) {
            let mut it = map.splitn(2, ' ');
            let (Some(pt), Some(enc)) = (
                it.next().and_then(|p| p.trim().parse::<u8>().ok()),
                it.next(),
            ) else {
                continue;
            };
            let mut parts = enc.trim().split('/');
            let name = parts.next().unwrap_or("");
            let rate = parts
                .next()
                .and_then(|r| r.parse::<u32>().ok())
                .unwrap_or(8000);
            let channels = parts.next().and_then(|c| c.parse::<u8>().ok());
            if let Some(c) = Codec::from_rtpmap(name, rate, channels) {
                out.retain(|(p, _)| *p != pt);
                out.push((pt, c));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn payload_map_reads_static_and_dynamic_types() {
        let sdp = b"v=0\r\nm=audio 4000 RTP/AVP 0 8 111 101\r\na=rtpmap:111 opus/48000/2\r\na=rtpmap:101 telephone-event/8000\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 VP8/90000\r\n";
        let map = payload_map(sdp);
        assert!(map.contains(&(0, Codec::Pcmu)));
        assert!(map.contains(&(8, Codec::Pcma)));
        assert!(map.contains(&(111, Codec::Opus)));
        assert!(map.contains(&(101, Codec::TelephoneEvent { rate: 8000 })));
        assert_eq!(map.len(), 4);
    }

    use super::*;

    #[test]
    fn rtpmap_names() {
        assert_eq!(Codec::from_rtpmap("PCMU", 8000, None), Some(Codec::Pcmu));
        assert_eq!(Codec::from_rtpmap("pcma", 8000, Some(1)), Some(Codec::Pcma));
        assert_eq!(
            Codec::from_rtpmap("opus", 48_000, Some(2)),
            Some(Codec::Opus)
        );
        assert_eq!(Codec::from_rtpmap("OPUS", 48_000, None), Some(Codec::Opus));
        assert_eq!(
            Codec::from_rtpmap("telephone-event", 8000, None),
            Some(Codec::TelephoneEvent { rate: 8000 })
        );
        assert_eq!(
            Codec::from_rtpmap("telephone-event", 48_000, None),
            Some(Codec::TelephoneEvent { rate: 48_000 })
        );
        assert_eq!(Codec::from_rtpmap("PCMU", 16_000, None), None);
        assert_eq!(Codec::from_rtpmap("PCMU", 8000, Some(2)), None);
        assert_eq!(Codec::from_rtpmap("opus", 8000, Some(2)), None);
        assert_eq!(Codec::from_rtpmap("G729", 8000, None), None);
        assert_eq!(Codec::from_rtpmap("telephone-event", 0, None), None);
    }

    #[test]
    fn properties() {
        assert_eq!(Codec::Pcmu.clock_rate(), 8000);
        assert_eq!(Codec::Opus.clock_rate(), 48_000);
        assert_eq!(Codec::TelephoneEvent { rate: 48_000 }.clock_rate(), 48_000);
        assert_eq!(Codec::Pcma.static_payload_type(), Some(8));
        assert_eq!(Codec::Opus.static_payload_type(), None);
        assert_eq!(Codec::from_static_payload_type(0), Some(Codec::Pcmu));
        assert_eq!(Codec::from_static_payload_type(18), None);
        assert_eq!(Codec::Opus.rtpmap_name(), "opus");
        assert_eq!(Codec::Opus.rtpmap_channels(), Some(2));
        assert_eq!(Codec::Pcmu.rtpmap_channels(), None);
        assert!(Codec::Pcma.is_audio());
        assert!(!Codec::TelephoneEvent { rate: 8000 }.is_audio());
        for c in [Codec::Pcmu, Codec::Pcma, Codec::Opus] {
            assert_eq!(
                Codec::from_rtpmap(c.rtpmap_name(), c.clock_rate(), c.rtpmap_channels()),
                Some(c)
            );
        }
    }
}
