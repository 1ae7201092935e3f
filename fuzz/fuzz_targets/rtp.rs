//! RTP/RTCP header checks of the relay hot path: never panic, and accept
//! only what their documented rules allow.

#![no_main]

use libfuzzer_sys::fuzz_target;
use maskline_engine::media::rtp::{is_rtcp, is_rtp};

fuzz_target!(|data: &[u8]| {
    if is_rtp(data) {
        assert!(data.len() >= 12, "RTP shorter than its fixed header");
        assert_eq!(
            data.first().map(|b| b >> 6),
            Some(2),
            "RTP version is not 2"
        );
    }
    if is_rtcp(data) {
        assert!(data.len() >= 8, "RTCP shorter than 8 bytes");
        assert_eq!(
            data.first().map(|b| b >> 6),
            Some(2),
            "RTCP version is not 2"
        );
        assert!(
            data.get(1).is_some_and(|pt| (192..=223).contains(pt)),
            "RTCP packet type out of range"
        );
    }
});
