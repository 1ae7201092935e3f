//! RFC 4733 telephone-events (DTMF): payload parse/build, digit ↔ event
//! code, payload-type renumbering in place on an RTP packet, and event
//! translation between 8 kHz and 48 kHz event clocks.
//!
//! Payload (RFC 4733 §2.3):
//! ```text
//!  0                   1                   2                   3
//! |     event     |E|R| volume    |          duration             |
//! ```
//! An event keeps the RTP timestamp of its start in every packet; the
//! duration (in the event clock) grows; the last three packets carry `E`.

/// Length of one event payload.
pub const EVENT_LEN: usize = 4;

/// One RFC 4733 event payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtmfEvent {
    /// Event code: 0–9 digits, 10 `*`, 11 `#`, 12–15 `A`–`D`, 16 flash.
    pub event: u8,
    /// End bit: the event is over (sent three times).
    pub end: bool,
    /// Power level in −dBm0 (0–63; larger is quieter).
    pub volume: u8,
    /// Duration so far, in RTP clock units of the event's payload type.
    pub duration: u16,
}

impl DtmfEvent {
    /// Parse the first event of a telephone-event payload (`None` when
    /// shorter than 4 bytes).
    pub fn parse(payload: &[u8]) -> Option<DtmfEvent> {
        let b = payload.get(..EVENT_LEN)?;
        Some(DtmfEvent {
            event: b[0],
            end: b[1] & 0x80 != 0,
            volume: b[1] & 0x3F,
            duration: u16::from_be_bytes([b[2], b[3]]),
        })
    }

    /// The 4-byte payload (R bit zero, volume masked to 6 bits).
    pub fn to_bytes(self) -> [u8; EVENT_LEN] {
        let d = self.duration.to_be_bytes();
        [
            self.event,
            (u8::from(self.end) << 7) | (self.volume & 0x3F),
            d[0],
            d[1],
        ]
    }

    /// The DTMF digit of this event, if it is one (0–15).
    pub fn digit(self) -> Option<char> {
        digit_for_event(self.event)
    }
}

/// Event code of a DTMF digit (`0`–`9`, `*`, `#`, `A`–`D`, case-insensitive).
pub fn event_for_digit(digit: char) -> Option<u8> {
    match digit {
        '0'..='9' => Some(digit as u8 - b'0'),
        '*' => Some(10),
        '#' => Some(11),
        'A'..='D' => Some(digit as u8 - b'A' + 12),
        'a'..='d' => Some(digit as u8 - b'a' + 12),
        _ => None,
    }
}

/// DTMF digit of an event code (0–15).
pub fn digit_for_event(event: u8) -> Option<char> {
    match event {
        0..=9 => Some(char::from(b'0' + event)),
        10 => Some('*'),
        11 => Some('#'),
        12..=15 => Some(char::from(b'A' + event - 12)),
        _ => None,
    }
}

/// Rewrite the payload type of an RTP packet in place when it is
/// `from_pt` (the marker bit is kept). Returns whether the packet was
/// changed; `false` for a non-RTP packet, another payload type or a
/// `to_pt` above 127. No allocation.
pub fn renumber(packet: &mut [u8], from_pt: u8, to_pt: u8) -> bool {
    if packet.len() < 12 || to_pt > 0x7F {
        return false;
    }
    if packet.first().is_none_or(|b| b >> 6 != 2) {
        return false;
    }
    match packet.get_mut(1) {
        Some(b) if *b & 0x7F == from_pt => {
            *b = (*b & 0x80) | to_pt;
            true
        }
        _ => false,
    }
}

/// An event duration converted between event clocks (8000 ↔ 48000 next to
/// a transcoded Opus leg), saturating at `u16::MAX` (the sender then
/// starts a new segment, RFC 4733 §2.5.1.3).
pub fn rescale_duration(duration: u16, from_rate: u32, to_rate: u32) -> u16 {
    if from_rate == 0 || from_rate == to_rate {
        return duration;
    }
    let scaled = u64::from(duration) * u64::from(to_rate) / u64::from(from_rate);
    u16::try_from(scaled).unwrap_or(u16::MAX)
}

/// Rescale the duration of every event in a telephone-event payload in
/// place. Returns `false` (payload untouched) when it is shorter than one
/// event.
pub fn rescale_payload(payload: &mut [u8], from_rate: u32, to_rate: u32) -> bool {
    if payload.len() < EVENT_LEN {
        return false;
    }
    for chunk in payload.chunks_exact_mut(EVENT_LEN) {
        let d = u16::from_be_bytes([chunk[2], chunk[3]]);
        let [hi, lo] = rescale_duration(d, from_rate, to_rate).to_be_bytes();
        chunk[2] = hi;
        chunk[3] = lo;
    }
    true
}

/// Turns a stream of event packets into digits, once per event (events
/// are told apart by their RTP timestamp; retransmissions and the three
/// end packets do not repeat the digit, a lost first packet does not lose
/// it).
#[derive(Debug, Clone, Default)]
pub struct DigitDetector {
    last_ts: Option<u32>,
}

impl DigitDetector {
    /// A detector that has seen no event.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feed one event packet; returns its digit when it starts a new event.
    pub fn on_event(&mut self, rtp_ts: u32, event: &DtmfEvent) -> Option<char> {
        if self.last_ts == Some(rtp_ts) {
            return None;
        }
        self.last_ts = Some(rtp_ts);
        event.digit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_build() {
        let ev = DtmfEvent::parse(&[5, 0x8A, 0x03, 0x20]).unwrap();
        assert_eq!(
            ev,
            DtmfEvent {
                event: 5,
                end: true,
                volume: 10,
                duration: 800
            }
        );
        assert_eq!(ev.to_bytes(), [5, 0x8A, 0x03, 0x20]);
        assert_eq!(ev.digit(), Some('5'));
        // The reserved bit is ignored and cleared on output.
        let ev = DtmfEvent::parse(&[11, 0x4A, 0, 160, 99]).unwrap();
        assert!(!ev.end);
        assert_eq!(ev.volume, 10);
        assert_eq!(ev.to_bytes(), [11, 0x0A, 0, 160]);
        assert_eq!(DtmfEvent::parse(&[1, 2, 3]), None);
        let loud = DtmfEvent {
            event: 1,
            end: false,
            volume: 0xFF,
            duration: 1,
        };
        assert_eq!(loud.to_bytes()[1], 0x3F);
    }

    #[test]
    fn digits_and_codes() {
        for (i, d) in "0123456789*#ABCD".chars().enumerate() {
            assert_eq!(event_for_digit(d), Some(i as u8));
            assert_eq!(digit_for_event(i as u8), Some(d));
        }
        assert_eq!(event_for_digit('c'), Some(14));
        assert_eq!(event_for_digit('E'), None);
        assert_eq!(digit_for_event(16), None);
    }

    #[test]
    fn renumbers_only_the_matching_payload_type() {
        let mut pkt = [0u8; 16];
        pkt[0] = 0x80;
        pkt[1] = 0x80 | 101; // marker + PT 101
        assert!(renumber(&mut pkt, 101, 96));
        assert_eq!(pkt[1], 0x80 | 96);
        assert!(!renumber(&mut pkt, 101, 97));
        assert_eq!(pkt[1], 0x80 | 96);
        pkt[1] = 101;
        assert!(renumber(&mut pkt, 101, 100));
        assert_eq!(pkt[1], 100);
        assert!(!renumber(&mut pkt, 100, 200));
        assert!(!renumber(&mut pkt[..11], 100, 101));
        let mut not_rtp = pkt;
        not_rtp[0] = 0x40;
        assert!(!renumber(&mut not_rtp, 100, 101));
        assert!(!renumber(&mut [], 0, 1));
    }

    #[test]
    fn rescales_between_event_clocks() {
        assert_eq!(rescale_duration(160, 8000, 48_000), 960);
        assert_eq!(rescale_duration(960, 48_000, 8000), 160);
        assert_eq!(rescale_duration(20_000, 8000, 48_000), u16::MAX);
        assert_eq!(rescale_duration(77, 0, 8000), 77);
        let mut p = DtmfEvent {
            event: 3,
            end: true,
            volume: 10,
            duration: 400,
        }
        .to_bytes();
        assert!(rescale_payload(&mut p, 8000, 48_000));
        assert_eq!(
            DtmfEvent::parse(&p).map(|e| (e.event, e.end, e.duration)),
            Some((3, true, 2400))
        );
        assert!(!rescale_payload(&mut [0u8; 3], 8000, 48_000));
    }

    #[test]
    fn detector_reports_each_event_once() {
        let mut d = DigitDetector::new();
        let mut got = String::new();
        let ev = |event, end, duration| DtmfEvent {
            event,
            end,
            volume: 10,
            duration,
        };
        // "1": start, update, three end packets; then "#" whose first
        // packet was lost; then "1" again (new timestamp).
        let stream = [
            (1000, ev(1, false, 160)),
            (1000, ev(1, false, 320)),
            (1000, ev(1, true, 480)),
            (1000, ev(1, true, 480)),
            (1000, ev(1, true, 480)),
            (3000, ev(11, false, 320)),
            (3000, ev(11, true, 480)),
            (5000, ev(1, false, 160)),
        ];
        for (ts, e) in stream {
            got.extend(d.on_event(ts, &e));
        }
        assert_eq!(got, "1#1");
    }
}
