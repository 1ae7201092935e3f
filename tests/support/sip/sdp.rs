//! The SDP the raw peers send, and reading the media address out of SDP.

use std::net::{IpAddr, SocketAddr};

/// An audio offer/answer for an endpoint whose RTP socket is `rtp`, with
/// `owner` in the `o=` and `s=` lines (tests put a real number there to
/// prove Maskline does not copy it to the other leg).
pub fn sdp_body(owner: &str, rtp: SocketAddr) -> String {
    let ip = rtp.ip();
    let family = if ip.is_ipv4() { "IP4" } else { "IP6" };
    format!(
        "v=0\r\n\
         o={owner} 1700000000 1700000000 IN {family} {ip}\r\n\
         s={owner}\r\n\
         c=IN {family} {ip}\r\n\
         t=0 0\r\n\
         m=audio {port} RTP/AVP 0 101\r\n\
         a=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\n\
         a=fmtp:101 0-15\r\n\
         a=ptime:20\r\n\
         a=sendrecv\r\n",
        port = rtp.port()
    )
}

/// The address RTP for the first audio stream should be sent to: the
/// media-level `c=` (else the session-level one) and the `m=audio` port.
pub fn media_addr(sdp: &str) -> Option<SocketAddr> {
    let mut session_ip: Option<IpAddr> = None;
    let mut audio: Option<(u16, Option<IpAddr>)> = None;
    for line in sdp.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("m=") {
            if audio.is_some() {
                break;
            }
            let mut parts = rest.split_whitespace();
            if parts.next() == Some("audio") {
                audio = Some((parts.next()?.parse().ok()?, None));
            }
        } else if let Some(rest) = line.strip_prefix("c=") {
            let ip: IpAddr = rest
                .split_whitespace()
                .nth(2)?
                .split('/')
                .next()?
                .parse()
                .ok()?;
            match audio.as_mut() {
                Some((_, media_ip)) => *media_ip = Some(ip),
                None => session_ip = Some(ip),
            }
        }
    }
    let (port, media_ip) = audio?;
    Some(SocketAddr::new(media_ip.or(session_ip)?, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_back_what_it_writes() {
        let rtp = SocketAddr::from(([127, 0, 0, 1], 10012));
        let body = sdp_body("+14155550101", rtp);
        assert_eq!(media_addr(&body), Some(rtp));
        assert!(body.contains("o=+14155550101 "));
    }

    #[test]
    fn media_level_connection_wins() {
        let sdp = "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 0\r\nc=IN IP4 10.0.0.2\r\n";
        assert_eq!(
            media_addr(sdp),
            Some(SocketAddr::from(([10, 0, 0, 2], 4000)))
        );
        assert_eq!(media_addr("v=0\r\nm=audio 4000 RTP/AVP 0\r\n"), None);
        assert_eq!(
            media_addr("v=0\r\nc=IN IP4 10.0.0.1\r\nm=video 4 RTP/AVP 96\r\n"),
            None
        );
    }
}
