//! Cheap RTP/RTCP header checks for the relay hot path (no allocation).

use rtp_rs::RtpReader;

/// Whether `buf` is a plausible RTP packet (version 2, header complete).
#[inline]
pub fn is_rtp(buf: &[u8]) -> bool {
    RtpReader::new(buf).is_ok()
}

/// Whether `buf` is a plausible RTCP packet (version 2, ≥ 8 bytes, packet
/// type 192–223 as in RFC 5761 §4).
#[inline]
pub fn is_rtcp(buf: &[u8]) -> bool {
    buf.len() >= 8 && buf[0] >> 6 == 2 && (192..=223).contains(&buf[1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_rtp_and_rtcp() {
        let mut rtp = [0u8; 172];
        rtp[0] = 0x80;
        assert!(is_rtp(&rtp));
        assert!(!is_rtp(&rtp[..5]));
        assert!(!is_rtp(&[0x40; 20]));
        let rtcp = [0x80, 200, 0, 6, 0, 0, 0, 1];
        assert!(is_rtcp(&rtcp));
        assert!(!is_rtcp(&rtcp[..4]));
    }
}
