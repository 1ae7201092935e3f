//! The relay's transcoding path for one direction of a call whose legs
//! share no codec: RTP in (the sender's codec), RTP out (the receiver's),
//! with payload type, timestamps (scaled to the output clock, see
//! [`super::codec::Transcoder`]) and sequence numbers rewritten; the SSRC
//! and marker bit are kept. RFC 4733 events are renumbered and put on the
//! same timeline. Buffers are reused: no allocation per packet once warm.

use rtp_rs::RtpReader;

use super::codec::{Codec, CodecError, Transcoder};
use super::dtmf;

/// What the signalling decided: the codec and payload type each leg uses,
/// and each leg's telephone-event type and clock, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TranscodePlan {
    /// The caller's (A) payload type and codec.
    pub a: (u8, Codec),
    /// The callee's (B) payload type and codec.
    pub b: (u8, Codec),
    /// Telephone-event payload type and clock on A and on B.
    pub events: Option<((u8, u32), (u8, u32))>,
}

/// One direction: `from` leg's codec to the other leg's.
pub struct TranscodeDirection {
    transcoder: Transcoder,
    in_pt: u8,
    out_pt: u8,
    events: Option<((u8, u32), (u8, u32))>,
    seq: Option<u16>,
    payload: Vec<u8>,
    out: Vec<Vec<u8>>,
    used: usize,
}

impl TranscodeDirection {
    /// `from` → `to` per the plan (`(pt, codec)` each).
    pub fn new(
        from: (u8, Codec),
        to: (u8, Codec),
        events: Option<((u8, u32), (u8, u32))>,
    ) -> Result<Self, CodecError> {
        Ok(TranscodeDirection {
            transcoder: Transcoder::new(from.1, to.1)?,
            in_pt: from.0,
            out_pt: to.0,
            events,
            seq: None,
            payload: Vec::with_capacity(1500),
            out: Vec::new(),
            used: 0,
        })
    }

    /// Turn one incoming RTP packet into zero or more outgoing ones
    /// (returned slices are valid until the next call). Packets of other
    /// payload types are dropped (empty result).
    pub fn process(&mut self, packet: &[u8]) -> &[Vec<u8>] {
        self.used = 0;
        let Ok(rtp) = RtpReader::new(packet) else {
            return &[];
        };
        let pt = rtp.payload_type();
        let (seq, ts, ssrc, marker) = (
            u16::from(rtp.sequence_number()),
            rtp.timestamp(),
            rtp.ssrc(),
            rtp.mark(),
        );
        let next_seq = *self.seq.get_or_insert(seq);
        if let Some(((ev_in, rate_in), (ev_out, rate_out))) =
            self.events.filter(|((p, _), _)| *p == pt)
        {
            let mut payload = rtp.payload().to_vec();
            dtmf::rescale_payload(&mut payload, rate_in, rate_out);
            let out_ts = self.transcoder.map_timestamp(ts);
            let _ = ev_in;
            self.emit(ev_out, next_seq, out_ts, ssrc, marker, &payload);
            return &self.out[..self.used];
        }
        if pt != self.in_pt || self.transcoder.push(rtp.payload(), ts).is_err() {
            return &[];
        }
        let mut seq = next_seq;
        loop {
            let mut payload = std::mem::take(&mut self.payload);
            let res = self.transcoder.pop(&mut payload);
            match res {
                Ok(Some(o)) => {
                    self.emit(
                        self.out_pt,
                        seq,
                        o.rtp_ts,
                        ssrc,
                        marker && seq == next_seq,
                        &payload,
                    );
                    seq = seq.wrapping_add(1);
                    self.payload = payload;
                }
                _ => {
                    self.payload = payload;
                    break;
                }
            }
        }
        &self.out[..self.used]
    }

    fn emit(&mut self, pt: u8, seq: u16, ts: u32, ssrc: u32, marker: bool, payload: &[u8]) {
        if self.out.len() <= self.used {
            self.out.push(Vec::with_capacity(1500));
        }
        let Some(buf) = self.out.get_mut(self.used) else {
            return;
        };
        buf.clear();
        buf.push(0x80);
        buf.push(pt & 0x7f | if marker { 0x80 } else { 0 });
        buf.extend_from_slice(&seq.to_be_bytes());
        buf.extend_from_slice(&ts.to_be_bytes());
        buf.extend_from_slice(&ssrc.to_be_bytes());
        buf.extend_from_slice(payload);
        self.used += 1;
        self.seq = Some(seq.wrapping_add(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rtp(pt: u8, seq: u16, ts: u32, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x80, pt];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&ts.to_be_bytes());
        p.extend_from_slice(&0x1234_5678u32.to_be_bytes());
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn pcmu_to_opus_and_back_rewrites_headers() {
        let mut up = TranscodeDirection::new((0, Codec::Pcmu), (111, Codec::Opus), None).unwrap();
        let mut down = TranscodeDirection::new((111, Codec::Opus), (0, Codec::Pcmu), None).unwrap();
        for i in 0..5u16 {
            let out = up
                .process(&rtp(0, 100 + i, 1000 + u32::from(i) * 160, &[0xffu8; 160]))
                .to_vec();
            assert_eq!(out.len(), 1, "20 ms in, 20 ms out");
            let r = RtpReader::new(&out[0]).unwrap();
            assert_eq!(r.payload_type(), 111);
            assert_eq!(u16::from(r.sequence_number()), 100 + i);
            assert_eq!(
                r.timestamp(),
                1000 + u32::from(i) * 960,
                "scaled ×6 from the first packet"
            );
            assert_eq!(r.ssrc(), 0x1234_5678);
            let back = down.process(&out[0]).to_vec();
            assert_eq!(back.len(), 1);
            let r = RtpReader::new(&back[0]).unwrap();
            assert_eq!((r.payload_type(), r.payload().len()), (0, 160));
        }
        assert!(
            up.process(&rtp(8, 1, 1, &[0; 160])).is_empty(),
            "other payload types are dropped"
        );
    }

    #[test]
    fn events_are_renumbered_and_rescaled() {
        let mut d = TranscodeDirection::new(
            (0, Codec::Pcmu),
            (111, Codec::Opus),
            Some(((101, 8000), (102, 48000))),
        )
        .unwrap();
        let ev = dtmf::DtmfEvent {
            event: 5,
            end: false,
            volume: 10,
            duration: 160,
        }
        .to_bytes();
        let out = d.process(&rtp(101, 7, 800, &ev)).to_vec();
        let r = RtpReader::new(&out[0]).unwrap();
        assert_eq!(r.payload_type(), 102);
        let parsed = dtmf::DtmfEvent::parse(r.payload()).unwrap();
        assert_eq!((parsed.event, parsed.duration), (5, 960));
    }
}
