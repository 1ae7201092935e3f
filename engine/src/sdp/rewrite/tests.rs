//! Tests of [`rewrite`](super::rewrite).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::*;
use crate::sdp::fixtures::*;
use crate::sdp::{remote_media, MediaTarget};

const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 5));

fn params(local_ip: IpAddr) -> RewriteParams {
    RewriteParams {
        local_ip,
        rtp_port: 20000,
        session_id: 42,
        session_version: 7,
    }
}

/// Rewrite with [`LOCAL`]:20000 and return the text.
fn rw(sdp: &str) -> String {
    rw_with(sdp, &params(LOCAL))
}

fn rw_with(sdp: &str, p: &RewriteParams) -> String {
    match rewrite(sdp.as_bytes(), p) {
        Ok(out) => String::from_utf8(out).unwrap_or_else(|e| panic!("not UTF-8: {e}")),
        Err(e) => panic!("rewrite failed: {e}\n{sdp}"),
    }
}

fn lines(sdp: &str) -> Vec<&str> {
    sdp.split("\r\n").filter(|l| !l.is_empty()).collect()
}

/// Structural checks every output must pass: CRLF only, `x=` lines, the
/// RFC 8866 session order, and our own parser reads it back.
fn assert_well_formed(out: &str) {
    assert!(out.ends_with("\r\n"), "{out}");
    assert!(!out.replace("\r\n", "").contains(['\r', '\n']), "{out}");
    let ls = lines(out);
    assert_eq!(ls.first().copied(), Some("v=0"));
    let kinds: String = ls.iter().map(|l| l.chars().next().unwrap_or('?')).collect();
    let session = kinds.split('m').next().unwrap_or("");
    assert!(session.starts_with("vosc"), "{kinds}");
    assert!(session.contains('t'), "{kinds}");
    for l in &ls {
        assert_eq!(l.as_bytes().get(1), Some(&b'='), "{l}");
    }
    assert!(crate::sdp::parse::parse(out.as_bytes()).is_ok(), "{out}");
}

#[test]
fn sipp_offer() {
    assert_eq!(
        rw(SIPP),
        "v=0\r\n\
         o=maskline 42 7 IN IP4 10.0.0.5\r\n\
         s=maskline\r\n\
         c=IN IP4 10.0.0.5\r\n\
         t=0 0\r\n\
         m=audio 20000 RTP/AVP 0\r\n\
         a=rtpmap:0 PCMU/8000\r\n"
    );
}

#[test]
fn baresip_offer_keeps_codecs_and_rewrites_rtcp() {
    assert_eq!(
        rw(BARESIP),
        "v=0\r\n\
         o=maskline 42 7 IN IP4 10.0.0.5\r\n\
         s=maskline\r\n\
         c=IN IP4 10.0.0.5\r\n\
         t=0 0\r\n\
         m=audio 20000 RTP/AVP 96 0 8 101\r\n\
         b=AS:96\r\n\
         a=rtpmap:96 opus/48000/2\r\n\
         a=fmtp:96 stereo=1;sprop-stereo=1;useinbandfec=1\r\n\
         a=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:8 PCMA/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\n\
         a=fmtp:101 0-15\r\n\
         a=rtcp:20001\r\n\
         a=sendrecv\r\n\
         a=rtcp-mux\r\n\
         a=ptime:20\r\n"
    );
}

#[test]
fn carrier_answer() {
    let out = rw(CARRIER);
    assert_well_formed(&out);
    assert!(out.contains("c=IN IP4 10.0.0.5\r\n"));
    assert!(out.contains("m=audio 20000 RTP/AVP 0 101\r\n"));
    assert!(out.contains("a=fmtp:101 0-16\r\na=ptime:20\r\na=maxptime:150\r\na=sendrecv\r\n"));
    assert!(!out.contains("67.231.5"));
    assert!(!out.contains("SIP Call"));
}

#[test]
fn quirky_carrier_comes_out_valid() {
    let out = rw(CARRIER_QUIRKS);
    assert_well_formed(&out);
    assert_eq!(
        lines(&out)[..7],
        [
            "v=0",
            "o=maskline 42 7 IN IP4 10.0.0.5",
            "s=maskline",
            "c=IN IP4 10.0.0.5",
            "b=AS:80",
            "t=0 0",
            "a=sendonly",
        ]
    );
    assert!(!out.contains("203.0.113.5") && !out.contains("y=") && !out.contains("u="));
}

#[test]
fn phone_number_never_leaks() {
    let out = rw(PRIVACY);
    assert_well_formed(&out);
    for needle in [
        "4155550101",
        "415 555 0101",
        "14:15:55",
        "198.51.100",
        "Alice",
    ] {
        assert!(!out.contains(needle), "{needle:?} leaked:\n{out}");
    }
    for dropped in [
        "i=",
        "u=",
        "e=",
        "p=",
        "a=tool",
        "a=group",
        "a=msid",
        "a=ice-",
        "a=fingerprint",
        "a=candidate",
        "a=setup",
        "a=ssrc",
        "a=mid",
        "a=label",
        "a=X-",
    ] {
        assert!(!out.contains(dropped), "{dropped} kept:\n{out}");
    }
    assert!(out.contains("b=AS:64\r\n"));
    assert!(out.contains("a=rtcp:20001\r\n"));
    assert!(out.contains("m=video 0 RTP/AVP 96\r\nc=IN IP4 10.0.0.5\r\na=rtpmap:96 H264/90000\r\n"));
}

#[test]
fn hold_is_preserved_with_our_address() {
    let out = rw(HOLD_SENDONLY);
    assert_well_formed(&out);
    assert!(out.contains("c=IN IP4 10.0.0.5\r\n") && !out.contains("0.0.0.0"));
    assert!(out.contains("m=audio 20000 RTP/AVP 0 8 101\r\n"));
    assert_eq!(out.matches("a=sendonly").count(), 1, "{out}");
    // RFC 2543 hold (no attribute): made explicit.
    let old = SIPP.replace("c=IN IP4 127.0.0.1", "c=IN IP4 0.0.0.0");
    assert!(rw(&old).ends_with("a=rtpmap:0 PCMU/8000\r\na=sendonly\r\n"));
    let old_recvonly = format!("{old}a=recvonly\r\n");
    let out = rw(&old_recvonly);
    assert!(
        out.ends_with("a=inactive\r\n") && !out.contains("recvonly"),
        "{out}"
    );
}

#[test]
fn rejected_audio_stays_rejected() {
    let sdp = BARESIP.replace("m=audio 10018", "m=audio 0");
    let out = rw(&sdp);
    assert_well_formed(&out);
    assert!(out.contains("m=audio 0 RTP/AVP 96 0 8 101\r\n"));
    assert!(!out.contains("a=rtcp:"));
    assert_eq!(
        remote_media(out.as_bytes()).map(|t| t.direction),
        Ok(crate::sdp::Direction::Inactive)
    );
}

#[test]
fn ipv6_both_ways() {
    let v6 = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));
    let out = rw_with(IPV6, &params(v6));
    assert_well_formed(&out);
    assert!(out.contains("o=maskline 42 7 IN IP6 2001:db8::1\r\n"));
    assert!(out.contains("c=IN IP6 2001:db8::1\r\n"));
    assert!(out.contains("a=rtcp:20001\r\n"));
    assert!(
        !out.contains("2001:db8::10") && !out.contains("2001:db8::11"),
        "{out}"
    );
    let out = rw(IPV6);
    assert!(out.contains("o=maskline 42 7 IN IP4 10.0.0.5\r\n"));
    assert!(
        out.contains("c=IN IP4 10.0.0.5\r\n") && !out.contains("IP6"),
        "{out}"
    );
}

#[test]
fn other_media_lines_are_disabled() {
    let out = rw(VIDEO_FIRST);
    assert_well_formed(&out);
    let media: Vec<&str> = lines(&out)
        .into_iter()
        .skip_while(|l| !l.starts_with("m="))
        .collect();
    assert_eq!(
        media,
        [
            "m=video 0 RTP/AVP 96 97",
            "a=rtpmap:96 H264/90000",
            "a=rtpmap:97 VP8/90000",
            "m=audio 20000 RTP/AVP 8 0",
            "a=rtpmap:8 PCMA/8000",
            "a=rtpmap:0 PCMU/8000",
            "a=ptime:20",
            "m=audio 0 RTP/AVP 0",
            "a=rtpmap:0 PCMU/8000",
            "m=image 0 udptl t38",
            "c=IN IP4 10.0.0.5",
        ]
    );
}

#[test]
fn output_targets_maskline() {
    for sdp in ALL_WITH_AUDIO {
        let out = rw(sdp);
        assert_well_formed(&out);
        let Ok(MediaTarget { rtp, rtcp, .. }) = remote_media(out.as_bytes()) else {
            panic!("cannot read back:\n{out}");
        };
        assert_eq!(rtp.ip(), LOCAL, "{out}");
        assert!(rtp.port() == 20000 || rtp.port() == 0, "{out}");
        assert_eq!(rtcp.port(), if rtp.port() == 0 { 0 } else { 20001 });
    }
}

#[test]
fn rewrite_is_idempotent() {
    for sdp in ALL_WITH_AUDIO {
        let once = rw(sdp);
        assert_eq!(rw(&once), once);
    }
}

#[test]
fn errors() {
    let p = params(LOCAL);
    assert_eq!(rewrite(NO_AUDIO.as_bytes(), &p), Err(SdpError::NoAudio));
    assert_eq!(rewrite(b"", &p), Err(SdpError::Empty));
    assert_eq!(
        rewrite(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", &p),
        Err(SdpError::MalformedLine { line: 1 })
    );
    assert_eq!(
        rewrite(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", &p),
        Err(SdpError::MalformedLine { line: 1 })
    );
    assert_eq!(
        rewrite(b"{\"v\":0}", &p),
        Err(SdpError::MalformedLine { line: 1 })
    );
    assert!(matches!(rewrite(b"v=1\r\n", &p), Err(SdpError::Invalid(_))));
    let top = RewriteParams {
        rtp_port: 65535,
        ..p
    };
    assert_eq!(
        rewrite(SIPP.as_bytes(), &top),
        Err(SdpError::PortOutOfRange(65535))
    );
}

#[test]
fn truncated_input_is_an_error() {
    let p = params(LOCAL);
    let cut_in_m_line = SIPP.find("m=audio").map_or(0, |i| i + 5);
    for end in [cut_in_m_line, SIPP.find("m=").unwrap_or(0), 3, 0] {
        let body = SIPP.as_bytes().get(..end).unwrap_or_default();
        assert!(
            rewrite(body, &p).is_err(),
            "{:?}",
            String::from_utf8_lossy(body)
        );
        assert!(remote_media(body).is_err());
    }
}

/// Small deterministic xorshift so the mutation test needs no dependency.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Every prefix and thousands of byte mutations of every fixture: no panic,
/// and whatever is accepted comes out well formed and pointing at us.
#[test]
fn prefixes_and_mutations_never_panic() {
    let p = params(LOCAL);
    let check = |body: &[u8]| {
        let _ = remote_media(body);
        if let Ok(out) = rewrite(body, &p) {
            let Ok(target) = remote_media(&out) else {
                panic!(
                    "accepted {:?} but output unreadable",
                    String::from_utf8_lossy(body)
                );
            };
            assert_eq!(target.rtp.ip(), LOCAL);
        }
    };
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let alphabet = b"=\r\n :/0aqmcvto\xff\x00";
    for sdp in ALL_WITH_AUDIO {
        let bytes = sdp.as_bytes();
        for end in 0..=bytes.len() {
            check(bytes.get(..end).unwrap_or_default());
        }
        for _ in 0..500 {
            let mut m = bytes.to_vec();
            for _ in 0..=(rng.next() % 4) {
                let at = usize::try_from(rng.next()).unwrap_or(0) % m.len().max(1);
                let pick = usize::try_from(rng.next()).unwrap_or(0) % alphabet.len();
                if let (Some(slot), Some(b)) = (m.get_mut(at), alphabet.get(pick)) {
                    *slot = *b;
                }
            }
            check(&m);
        }
    }
}
