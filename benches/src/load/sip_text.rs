//! A deliberately small SIP/SDP text reader for the load tool's own peers.
//!
//! The load tool does not use the engine's parser to talk to the engine (a
//! bug there would hide itself); it reads only what a UAC and a UAS need:
//! the start line, a few headers (long or compact names), tags, the
//! Contact URI and the SDP's audio address.

use std::net::{IpAddr, SocketAddr};

/// One SIP message split into start line, headers and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipText<'a> {
    /// First line (`INVITE sip:… SIP/2.0` or `SIP/2.0 200 OK`).
    pub start: &'a str,
    headers: Vec<(&'a str, &'a str)>,
    /// Everything after the blank line.
    pub body: &'a [u8],
}

/// Compact header forms (RFC 3261 §7.3.3) the engine or a peer may use.
const COMPACT: &[(&str, &str)] = &[
    ("i", "call-id"),
    ("f", "from"),
    ("t", "to"),
    ("v", "via"),
    ("m", "contact"),
    ("l", "content-length"),
    ("c", "content-type"),
];

impl<'a> SipText<'a> {
    /// Split a datagram; `None` when it is not UTF-8 text with a blank line.
    pub fn parse(data: &'a [u8]) -> Option<SipText<'a>> {
        let split = data.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = std::str::from_utf8(data.get(..split)?).ok()?;
        let body = data.get(split + 4..)?;
        let mut lines = head.split("\r\n");
        let start = lines.next()?;
        let mut headers = Vec::new();
        for line in lines {
            if let Some((name, value)) = line.split_once(':') {
                headers.push((name.trim(), value.trim()));
            }
        }
        Some(SipText {
            start,
            headers,
            body,
        })
    }

    /// Status code of a response.
    pub fn status(&self) -> Option<u16> {
        let rest = self.start.strip_prefix("SIP/2.0 ")?;
        rest.get(..3)?.parse().ok()
    }

    /// Method of a request.
    pub fn method(&self) -> Option<&'a str> {
        if self.start.starts_with("SIP/") {
            return None;
        }
        self.start.split(' ').next()
    }

    /// User part of a request's Request-URI (`sip:+1555@h` → `+1555`).
    pub fn request_user(&self) -> Option<&'a str> {
        let uri = self.start.split(' ').nth(1)?;
        uri_user(uri)
    }

    /// First value of a header (case-insensitive, compact names accepted).
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers
            .iter()
            .find(|(n, _)| same_header(n, name))
            .map(|(_, v)| *v)
    }

    /// Every value of a header, in order.
    pub fn headers(&self, name: &str) -> impl Iterator<Item = &'a str> + '_ {
        let name = name.to_string();
        self.headers
            .iter()
            .filter(move |(n, _)| same_header(n, &name))
            .map(|(_, v)| *v)
    }

    /// Call-ID.
    pub fn call_id(&self) -> Option<&'a str> {
        self.header("Call-ID")
    }

    /// Method named in CSeq.
    pub fn cseq_method(&self) -> Option<&'a str> {
        self.header("CSeq")?.split_whitespace().nth(1)
    }

    /// `tag` parameter of From or To.
    pub fn tag(&self, header: &str) -> Option<&'a str> {
        let value = self.header(header)?;
        let params = match value.rfind('>') {
            Some(end) => value.get(end + 1..)?,
            None => value,
        };
        params
            .split(';')
            .filter_map(|p| p.trim().strip_prefix("tag="))
            .next()
    }

    /// URI of the Contact header, without angle brackets.
    pub fn contact_uri(&self) -> Option<&'a str> {
        let value = self.header("Contact")?;
        match (value.find('<'), value.find('>')) {
            (Some(s), Some(e)) if s < e => value.get(s + 1..e),
            _ => value.split(';').next(),
        }
    }
}

fn same_header(have: &str, want: &str) -> bool {
    if have.eq_ignore_ascii_case(want) {
        return true;
    }
    COMPACT.iter().any(|(short, long)| {
        (have.eq_ignore_ascii_case(short) && want.eq_ignore_ascii_case(long))
            || (want.eq_ignore_ascii_case(short) && have.eq_ignore_ascii_case(long))
    })
}

/// User part of a SIP URI.
pub fn uri_user(uri: &str) -> Option<&str> {
    let rest = uri
        .strip_prefix("sip:")
        .or_else(|| uri.strip_prefix("sips:"))?;
    let (user, _) = rest.split_once('@')?;
    Some(user)
}

/// Where an SDP wants audio: the `m=audio` port at the `c=` address
/// (media-level `c=` wins over session-level).
pub fn sdp_audio_addr(body: &[u8]) -> Option<SocketAddr> {
    let text = std::str::from_utf8(body).ok()?;
    let mut session_ip: Option<IpAddr> = None;
    let mut media_ip: Option<IpAddr> = None;
    let mut port: Option<u16> = None;
    let mut in_audio = false;
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("m=") {
            if port.is_some() {
                break; // only the first audio m-line
            }
            in_audio = rest.starts_with("audio ");
            if in_audio {
                port = rest.split_whitespace().nth(1).and_then(|p| p.parse().ok());
            }
        } else if let Some(rest) = line.strip_prefix("c=") {
            let ip = rest
                .split_whitespace()
                .nth(2)
                .and_then(|a| a.split('/').next()?.parse().ok());
            if in_audio {
                media_ip = ip;
            } else if port.is_none() {
                session_ip = ip;
            }
        }
    }
    Some(SocketAddr::new(media_ip.or(session_ip)?, port?))
}

/// A `200 OK` to a request, copying Via, From, To, Call-ID and CSeq
/// (adding `to_tag` when To has none), plus `extra` header lines (each
/// ending in CRLF) and an optional SDP body.
pub fn ok_response(
    req: &SipText<'_>,
    to_tag: Option<&str>,
    extra: &str,
    sdp: Option<&str>,
) -> Vec<u8> {
    let mut out = String::with_capacity(512);
    out.push_str("SIP/2.0 200 OK\r\n");
    for via in req.headers("Via") {
        out.push_str("Via: ");
        out.push_str(via);
        out.push_str("\r\n");
    }
    for (name, canonical) in [
        ("From", "From"),
        ("To", "To"),
        ("Call-ID", "Call-ID"),
        ("CSeq", "CSeq"),
    ] {
        let Some(value) = req.header(name) else {
            continue;
        };
        out.push_str(canonical);
        out.push_str(": ");
        out.push_str(value);
        if name == "To" && req.tag("To").is_none() {
            if let Some(tag) = to_tag {
                out.push_str(";tag=");
                out.push_str(tag);
            }
        }
        out.push_str("\r\n");
    }
    out.push_str(extra);
    match sdp {
        Some(body) => {
            out.push_str(&format!(
                "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n",
                body.len()
            ));
            out.push_str(body);
        }
        None => out.push_str("Content-Length: 0\r\n\r\n"),
    }
    out.into_bytes()
}

/// A minimal PCMU(+telephone-event) SDP for `ip:port`.
pub fn sdp_offer(session_id: u64, addr: SocketAddr) -> String {
    format!(
        "v=0\r\no=- {session_id} 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\na=ptime:20\r\na=sendrecv\r\n",
        ip = addr.ip(),
        port = addr.port()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str =
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:25070;branch=z9hG4bK1;rport=25070\r\n\
f: <sip:+14150000001@127.0.0.1>;tag=abc\r\nTo: <sip:+15550000001@127.0.0.1:25060>;tag=xyz\r\n\
i: call-1@127.0.0.1\r\nCSeq: 1 INVITE\r\nContact: <sip:+15550000001@127.0.0.1:25060>\r\n\
Content-Type: application/sdp\r\nContent-Length: 10\r\n\r\n";

    #[test]
    fn reads_response_fields_and_compact_headers() {
        let body = "v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 40002 RTP/AVP 0\r\n";
        let text = format!("{OK}{body}");
        let msg = SipText::parse(text.as_bytes()).unwrap();
        assert_eq!(msg.status(), Some(200));
        assert_eq!(msg.method(), None);
        assert_eq!(msg.call_id(), Some("call-1@127.0.0.1"));
        assert_eq!(msg.cseq_method(), Some("INVITE"));
        assert_eq!(msg.tag("From"), Some("abc"));
        assert_eq!(msg.tag("To"), Some("xyz"));
        assert_eq!(msg.contact_uri(), Some("sip:+15550000001@127.0.0.1:25060"));
        assert_eq!(
            sdp_audio_addr(msg.body),
            Some("127.0.0.1:40002".parse().unwrap())
        );
    }

    #[test]
    fn request_user_and_ok_response_adds_tag() {
        let req = "INVITE sip:+14160000001@127.0.0.1:25080 SIP/2.0\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK2\r\n\
From: <sip:+15550000001@127.0.0.1>;tag=f1\r\nTo: <sip:+14160000001@127.0.0.1:25080>\r\nCall-ID: c2\r\n\
CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
        let msg = SipText::parse(req.as_bytes()).unwrap();
        assert_eq!(msg.method(), Some("INVITE"));
        assert_eq!(msg.request_user(), Some("+14160000001"));
        assert_eq!(msg.tag("To"), None);
        let ok = ok_response(
            &msg,
            Some("t9"),
            "Contact: <sip:b@127.0.0.1>\r\n",
            Some("v=0\r\n"),
        );
        let ok = SipText::parse(&ok).unwrap();
        assert_eq!(ok.status(), Some(200));
        assert_eq!(ok.tag("To"), Some("t9"));
        assert_eq!(ok.header("Content-Length"), Some("5"));
        assert_eq!(ok.body, b"v=0\r\n");
    }

    #[test]
    fn media_level_connection_wins_and_garbage_is_none() {
        let sdp = "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 5000 RTP/AVP 0\r\nc=IN IP4 10.0.0.2\r\nm=video 6000 RTP/AVP 96\r\n";
        assert_eq!(
            sdp_audio_addr(sdp.as_bytes()),
            Some("10.0.0.2:5000".parse().unwrap())
        );
        let offer = sdp_offer(7, "127.0.0.1:50000".parse().unwrap());
        assert_eq!(
            sdp_audio_addr(offer.as_bytes()),
            Some("127.0.0.1:50000".parse().unwrap())
        );
        assert_eq!(sdp_audio_addr(b"v=0\r\n"), None);
        assert!(SipText::parse(b"no blank line").is_none());
        assert!(SipText::parse(&[0xff, b'\r', b'\n', b'\r', b'\n']).is_none());
    }
}
