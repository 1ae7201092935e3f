//! An SDP offer built from scratch, for legs Maskline dials itself (the
//! first leg of an originated call): audio at the relay, the codecs the
//! relay can carry, record and transcode.

use super::RewriteParams;
use crate::b2bua::outbound::uri_host;

/// Payload types Maskline offers, in order of preference: PCMU, PCMA,
/// Opus, telephone-event.
pub const OFFERED: &[(u8, &str)] = &[
    (0, "PCMU/8000"),
    (8, "PCMA/8000"),
    (111, "opus/48000/2"),
    (101, "telephone-event/8000"),
];

/// The offer: one `sendrecv` audio stream at `p.local_ip:p.rtp_port`.
pub fn offer(p: &RewriteParams) -> Vec<u8> {
    let ip = uri_host(p.local_ip);
    let ip = ip.trim_start_matches('[').trim_end_matches(']');
    let family = if p.local_ip.is_ipv6() { "IP6" } else { "IP4" };
    let pts: Vec<String> = OFFERED.iter().map(|(pt, _)| pt.to_string()).collect();
    let mut s = format!(
        "v=0\r\no=maskline {id} {ver} IN {family} {ip}\r\ns=maskline\r\nc=IN {family} {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP {pts}\r\n",
        id = p.session_id,
        ver = p.session_version,
        port = p.rtp_port,
        pts = pts.join(" "),
    );
    for (pt, map) in OFFERED {
        s.push_str(&format!("a=rtpmap:{pt} {map}\r\n"));
    }
    s.push_str("a=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n");
    s.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::codec::{payload_map, Codec};

    #[test]
    fn offer_points_at_the_relay_with_every_codec() {
        let body = offer(&RewriteParams {
            local_ip: "127.0.0.1".parse().unwrap(),
            rtp_port: 20000,
            session_id: 7,
            session_version: 1,
        });
        let target = crate::sdp::remote_media(&body).unwrap();
        assert_eq!(target.rtp, "127.0.0.1:20000".parse().unwrap());
        let map = payload_map(&body);
        assert!(map.contains(&(0, Codec::Pcmu)));
        assert!(map.contains(&(8, Codec::Pcma)));
        assert!(map.contains(&(111, Codec::Opus)));
        let text = String::from_utf8(body).unwrap();
        assert!(text.starts_with("v=0\r\no=maskline 7 1 IN IP4 127.0.0.1\r\n"));
    }

    #[test]
    fn ipv6_offer_uses_ip6() {
        let body = offer(&RewriteParams {
            local_ip: "::1".parse().unwrap(),
            rtp_port: 20000,
            session_id: 7,
            session_version: 1,
        });
        let text = String::from_utf8(body.clone()).unwrap();
        assert!(text.contains("c=IN IP6 ::1\r\n"), "{text}");
        assert!(crate::sdp::remote_media(&body).is_ok());
    }
}
