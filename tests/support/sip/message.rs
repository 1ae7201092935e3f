//! Just enough SIP parsing for the tests: start line, headers by name
//! (case-insensitive, compact forms expanded, folded lines joined) and body.

use std::net::{IpAddr, SocketAddr};

use crate::error::{E2eError, Result};

/// First line of a SIP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartLine {
    /// `METHOD uri SIP/2.0`
    Request {
        /// e.g. `INVITE`
        method: String,
        /// Request-URI
        uri: String,
    },
    /// `SIP/2.0 code reason`
    Response {
        /// e.g. 200
        status: u16,
        /// e.g. `OK`
        reason: String,
    },
}

/// A parsed SIP datagram, keeping its raw bytes.
#[derive(Debug, Clone)]
pub struct SipMessage {
    /// The first line.
    pub start: StartLine,
    headers: Vec<(String, String)>,
    /// The body (bounded by Content-Length when present).
    pub body: Vec<u8>,
    /// The datagram exactly as received.
    pub raw: Vec<u8>,
    /// Who sent it.
    pub source: SocketAddr,
}

/// Long form of a compact header name (RFC 3261 §7.3.3 and extensions).
fn expand(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    let long = match lower.as_str() {
        "i" => "call-id",
        "m" => "contact",
        "e" => "content-encoding",
        "l" => "content-length",
        "c" => "content-type",
        "f" => "from",
        "s" => "subject",
        "k" => "supported",
        "t" => "to",
        "v" => "via",
        "r" => "refer-to",
        "b" => "referred-by",
        "o" => "event",
        "u" => "allow-events",
        "x" => "session-expires",
        _ => return lower,
    };
    long.to_string()
}

fn parse_error(reason: impl Into<String>, raw: &[u8]) -> E2eError {
    E2eError::SipParse {
        reason: reason.into(),
        text: String::from_utf8_lossy(raw).into_owned(),
    }
}

impl SipMessage {
    /// Parses a datagram received from `source`.
    pub fn parse(raw: &[u8], source: SocketAddr) -> Result<SipMessage> {
        let split = crate::find_bytes(raw, b"\r\n\r\n")
            .map(|p| (p, p + 4))
            .or_else(|| crate::find_bytes(raw, b"\n\n").map(|p| (p, p + 2)))
            .ok_or_else(|| parse_error("no blank line after the headers", raw))?;
        let head = raw
            .get(..split.0)
            .ok_or_else(|| parse_error("truncated", raw))?;
        let head =
            std::str::from_utf8(head).map_err(|_| parse_error("headers are not UTF-8", raw))?;
        let mut lines = head.lines();
        let first = lines
            .next()
            .ok_or_else(|| parse_error("empty message", raw))?;
        let start = parse_start_line(first).ok_or_else(|| parse_error("bad start line", raw))?;
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in lines {
            if line.starts_with([' ', '\t']) {
                let last = headers
                    .last_mut()
                    .ok_or_else(|| parse_error("continuation before any header", raw))?;
                last.1.push(' ');
                last.1.push_str(line.trim());
                continue;
            }
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| parse_error(format!("header line without `:`: {line}"), raw))?;
            headers.push((expand(name.trim()), value.trim().to_string()));
        }
        let mut body = raw.get(split.1..).unwrap_or_default().to_vec();
        let declared = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse::<usize>().ok());
        if let Some(len) = declared {
            body.truncate(len);
        }
        Ok(SipMessage {
            start,
            headers,
            body,
            raw: raw.to_vec(),
            source,
        })
    }

    /// The first value of header `name` (any case, compact forms too).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers_named(name).next()
    }

    /// Every value of header `name`, one per header line.
    pub fn headers_named<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a str> + 'a {
        let name = expand(name);
        self.headers
            .iter()
            .filter(move |(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every header as `(lower-case name, value)`.
    pub fn all_headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// A header that must be present.
    pub fn required(&self, name: &str) -> Result<&str> {
        self.header(name)
            .ok_or_else(|| parse_error(format!("no {name} header"), &self.raw))
    }

    /// The request method, for requests.
    pub fn method(&self) -> Option<&str> {
        match &self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    /// The Request-URI, for requests.
    pub fn request_uri(&self) -> Option<&str> {
        match &self.start {
            StartLine::Request { uri, .. } => Some(uri),
            StartLine::Response { .. } => None,
        }
    }

    /// The status code, for responses.
    pub fn status(&self) -> Option<u16> {
        match &self.start {
            StartLine::Response { status, .. } => Some(*status),
            StartLine::Request { .. } => None,
        }
    }

    /// The Call-ID.
    pub fn call_id(&self) -> Option<&str> {
        self.header("call-id")
    }

    /// CSeq number and method.
    pub fn cseq(&self) -> Option<(u32, &str)> {
        let (n, m) = self.header("cseq")?.split_once(char::is_whitespace)?;
        Some((n.trim().parse().ok()?, m.trim()))
    }

    /// The branch parameter of the top Via.
    pub fn top_branch(&self) -> Option<&str> {
        let via = self.header("via")?;
        let via = via.split(',').next()?;
        param(via, "branch")
    }

    /// The From tag.
    pub fn from_tag(&self) -> Option<&str> {
        self.header("from").and_then(header_tag)
    }

    /// The To tag.
    pub fn to_tag(&self) -> Option<&str> {
        self.header("to").and_then(header_tag)
    }

    /// The body as text (lossy).
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The whole datagram as text (lossy).
    pub fn raw_text(&self) -> String {
        String::from_utf8_lossy(&self.raw).into_owned()
    }
}

fn parse_start_line(line: &str) -> Option<StartLine> {
    if let Some(rest) = line.strip_prefix("SIP/2.0 ") {
        let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
        let status: u16 = code.trim().parse().ok()?;
        if !(100..700).contains(&status) {
            return None;
        }
        return Some(StartLine::Response {
            status,
            reason: reason.trim().to_string(),
        });
    }
    let mut parts = line.split(' ');
    let method = parts.next()?;
    let uri = parts.next()?;
    let version = parts.next()?;
    if version != "SIP/2.0" || method.is_empty() || uri.is_empty() || parts.next().is_some() {
        return None;
    }
    Some(StartLine::Request {
        method: method.to_string(),
        uri: uri.to_string(),
    })
}

/// The value of `;name=` among the header parameters (after the URI's `>`).
fn param<'a>(value: &'a str, name: &str) -> Option<&'a str> {
    let params = match value.rfind('>') {
        Some(p) => value.get(p + 1..)?,
        None => value,
    };
    params.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().trim_end_matches(','))
    })
}

/// The `tag` parameter of a From/To header value.
pub fn header_tag(value: &str) -> Option<&str> {
    param(value, "tag")
}

/// The URI of a name-addr (`"x" <sip:a@b>;tag=1` → `sip:a@b`) or addr-spec.
pub fn header_uri(value: &str) -> &str {
    match (value.find('<'), value.find('>')) {
        (Some(open), Some(close)) if open < close => value.get(open + 1..close).unwrap_or(value),
        _ => value.split(';').next().unwrap_or(value).trim(),
    }
}

/// The user part of a SIP URI (`sip:+1555@h:5060` → `+1555`).
pub fn uri_user(uri: &str) -> Option<&str> {
    let rest = uri
        .strip_prefix("sip:")
        .or_else(|| uri.strip_prefix("sips:"))
        .or_else(|| uri.strip_prefix("tel:"))?;
    let end = rest.find(['@', ';', '?']).unwrap_or(rest.len());
    let user = rest.get(..end)?;
    Some(user.split(':').next().unwrap_or(user))
}

/// Host and port of a SIP URI when the host is an IP literal (port 5060 if
/// absent): where a request to that URI goes.
pub fn uri_host_port(uri: &str) -> Option<SocketAddr> {
    let rest = uri
        .strip_prefix("sip:")
        .or_else(|| uri.strip_prefix("sips:"))?;
    let hostport = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let hostport = hostport.split([';', '?', '>']).next()?;
    if let Some(v6) = hostport.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        let ip: IpAddr = host.parse().ok()?;
        let port = after
            .strip_prefix(':')
            .map_or(Some(5060), |p| p.parse().ok())?;
        return Some(SocketAddr::new(ip, port));
    }
    let (host, port) = match hostport.split_once(':') {
        Some((h, p)) => (h, p.parse().ok()?),
        None => (hostport, 5060),
    };
    Some(SocketAddr::new(host.parse().ok()?, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 5060))
    }

    fn parsed(text: &str) -> SipMessage {
        match SipMessage::parse(text.as_bytes(), src()) {
            Ok(m) => m,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn parses_a_request_with_compact_and_folded_headers() {
        let m = parsed(
            "INVITE sip:+1555@127.0.0.1 SIP/2.0\r\n\
             v: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKabc;rport\r\n\
             f: <sip:a@h>;tag=xyz\r\n\
             To: <sip:b@h>\r\n\
             i: call-1\r\n\
             CSeq: 7 INVITE\r\n\
             Subject: a\r\n  folded\r\n\
             l: 4\r\n\r\nbodyEXTRA",
        );
        assert_eq!(m.method(), Some("INVITE"));
        assert_eq!(m.request_uri(), Some("sip:+1555@127.0.0.1"));
        assert_eq!(m.call_id(), Some("call-1"));
        assert_eq!(m.from_tag(), Some("xyz"));
        assert_eq!(m.to_tag(), None);
        assert_eq!(m.cseq(), Some((7, "INVITE")));
        assert_eq!(m.top_branch(), Some("z9hG4bKabc"));
        assert_eq!(m.header("SUBJECT"), Some("a folded"));
        assert_eq!(m.body, b"body");
    }

    #[test]
    fn parses_a_response() {
        let m = parsed("SIP/2.0 486 Busy Here\r\nCall-ID: x\r\nTo: <sip:b@h>;tag=t1\r\n\r\n");
        assert_eq!(m.status(), Some(486));
        assert_eq!(m.to_tag(), Some("t1"));
        assert_eq!(m.method(), None);
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "hello",
            "INVITE sip:x SIP/2.0\r\nno colon\r\n\r\n",
            "SIP/2.0 99 x\r\n\r\n",
            "INVITE\r\n\r\n",
        ] {
            assert!(SipMessage::parse(bad.as_bytes(), src()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn uri_helpers() {
        assert_eq!(header_uri("\"A\" <sip:+1@h:5>;tag=1"), "sip:+1@h:5");
        assert_eq!(header_uri("sip:+1@h;tag=1"), "sip:+1@h");
        assert_eq!(uri_user("sip:+1555@127.0.0.1:5060"), Some("+1555"));
        assert_eq!(uri_user("sip:u:pw@h"), Some("u"));
        assert_eq!(uri_user("tel:+1555;phone-context=x"), Some("+1555"));
        assert_eq!(
            uri_host_port("sip:x@127.0.0.1:5070;transport=udp"),
            Some(SocketAddr::from(([127, 0, 0, 1], 5070)))
        );
        assert_eq!(
            uri_host_port("sip:127.0.0.2"),
            Some(SocketAddr::from(([127, 0, 0, 2], 5060)))
        );
        assert_eq!(uri_host_port("sip:x@example.com"), None);
        assert_eq!(header_tag("<sip:a@h;tag=no>;tag=yes"), Some("yes"));
    }
}
