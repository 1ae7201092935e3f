//! SDP: `remote_media` and `rewrite` must never panic, and what `rewrite`
//! produces must be readable by `remote_media` and point at Maskline (the
//! local address, and the given port unless the stream was rejected with
//! port 0).

#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use libfuzzer_sys::fuzz_target;
use maskline_engine::sdp::{self, RewriteParams};

const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 10));

fuzz_target!(|data: &[u8]| {
    let _ = sdp::remote_media(data);
    let params = RewriteParams {
        local_ip: LOCAL,
        rtp_port: 20000,
        session_id: 7,
        session_version: 1,
    };
    let Ok(out) = sdp::rewrite(data, &params) else {
        return;
    };
    let target = match sdp::remote_media(&out) {
        Ok(t) => t,
        Err(e) => panic!(
            "rewrite output is unreadable: {e}\n--- input ---\n{}\n--- output ---\n{}",
            String::from_utf8_lossy(data),
            String::from_utf8_lossy(&out)
        ),
    };
    assert_eq!(
        target.rtp.ip(),
        LOCAL,
        "rewritten c= is not ours:\n{}",
        String::from_utf8_lossy(&out)
    );
    assert!(
        target.rtp.port() == 20000 || target.rtp.port() == 0,
        "rewritten m= port is not ours:\n{}",
        String::from_utf8_lossy(&out)
    );
});
