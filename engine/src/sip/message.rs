//! SIP wire helpers on top of the rsip types from rsipstack's `sip` module:
//! parse with mandatory-header checks, field accessors that never panic,
//! response routing per RFC 3581, and a best-effort `400` for messages the
//! parser rejects.

use std::net::{IpAddr, SocketAddr};

use rsipstack::sip::headers::make_header;
use rsipstack::sip::prelude::*;
use rsipstack::sip::{Method, Request, Response, SipMessage, Uri};

use crate::sip::transaction::build::response_headers;

/// Largest SIP message accepted over UDP.
pub const MAX_MESSAGE_SIZE: usize = 64 * 1024;

/// Why a datagram is not a usable SIP message.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MessageError {
    /// The bytes do not parse as SIP.
    #[error("unparseable SIP: {0}")]
    Parse(String),
    /// A header every request/response must carry is absent or unreadable.
    #[error("missing or invalid {0} header")]
    MissingHeader(&'static str),
    /// CSeq method differs from the request method.
    #[error("CSeq method does not match the request method")]
    CSeqMismatch,
    /// The message is larger than [`MAX_MESSAGE_SIZE`].
    #[error("message too large")]
    TooLarge,
    /// A `Content-Length` is not a number, or two of them disagree.
    #[error("invalid Content-Length")]
    BadContentLength,
    /// The datagram ends before the body its `Content-Length` announces
    /// (RFC 3261 §18.3: 400 for a request, drop a response).
    #[error("body shorter than its Content-Length")]
    Truncated,
    /// A header that may appear once appears more than once.
    #[error("more than one {0} header")]
    Repeated(&'static str),
    /// The request line is not `Method SP Request-URI SP SIP-Version`.
    #[error("malformed request line")]
    BadStartLine,
    /// A SIP version other than 2.0 (answered 505).
    #[error("SIP version not supported")]
    VersionNotSupported,
    /// An extension method Maskline does not implement (answered 501).
    #[error("method {0} not implemented")]
    UnknownMethod(String),
}

impl MessageError {
    /// Status and reason phrase of the stateless answer to a request that
    /// failed with this error: 505, 501, else 400.
    pub fn status(&self) -> (u16, &'static str) {
        match self {
            MessageError::VersionNotSupported => (505, "Version Not Supported"),
            MessageError::UnknownMethod(_) => (501, "Not Implemented"),
            _ => (400, "Bad Request"),
        }
    }
}

/// Parse a datagram and check what every later layer relies on: Via (with a
/// branch), From, To, Call-ID and a numeric CSeq whose method matches.
pub fn parse(data: &[u8]) -> Result<SipMessage, MessageError> {
    if data.len() > MAX_MESSAGE_SIZE {
        return Err(MessageError::TooLarge);
    }
    let head = super::head::check(data)?;
    let mut msg = rsipstack::sip::parser::parse_message(data)
        .map_err(|e| MessageError::Parse(e.to_string()))?;
    if let SipMessage::Request(req) = &mut msg {
        add_rfc2543_branch(req);
    }
    validate(&msg)?;
    if let Some(head) = head {
        if head.content_length.is_none() {
            // No Content-Length on a datagram: the body is the rest of it
            // (RFC 3261 §18.3); rsip would read none.
            let rest = data.get(head.body_start..).unwrap_or_default().to_vec();
            match &mut msg {
                SipMessage::Request(r) => r.body = rest,
                SipMessage::Response(r) => r.body = rest,
            }
        }
    }
    if let SipMessage::Request(req) = &mut msg {
        // rsip keeps the user part %-escaped but escapes it again when
        // writing: store it decoded so that what we send is what came.
        if let Some(auth) = req.uri.auth.as_mut() {
            if let Some(user) = percent_decode(&auth.user) {
                auth.user = user;
            }
        }
    }
    Ok(msg)
}

/// `%XX` escapes decoded (RFC 3261 §19.1.2); `None` when the text has no
/// valid escape to decode or decodes to something that is not UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    if !s.contains('%') {
        return None;
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    let mut decoded = false;
    while let Some(&b) = bytes.get(i) {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b, hex) {
            (b'%', Some(v)) => {
                out.push(v);
                decoded = true;
                i += 3;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    if !decoded {
        return None;
    }
    String::from_utf8(out).ok()
}

/// Prefix of the branch given to a request whose top Via has none.
pub const RFC2543_BRANCH_PREFIX: &str = "z9hG4bK-2543-";

/// An RFC 2543 request (top Via without a branch, RFC 4475 `longreq`,
/// `inv2543`) gets a branch computed from what RFC 3261 §17.2.3 matches
/// such requests on: Request-URI, From tag, Call-ID, CSeq number and the
/// top Via. Its retransmissions, its CANCEL and the ACK of a failure get
/// the same branch, so the transaction layer, which keys on the branch,
/// handles them as usual; responses carry the added parameter, which the
/// old client ignores (it matches on Call-ID and CSeq).
fn add_rfc2543_branch(req: &mut Request) {
    use std::hash::{Hash, Hasher};
    if top_via_branch(req).is_some() {
        return;
    }
    let Some(pos) = req
        .headers
        .iter()
        .position(|h| matches!(h, rsipstack::sip::Header::Via(_)))
    else {
        return;
    };
    let Some(via) = req.headers.iter().nth(pos).map(|h| h.value().to_string()) else {
        return;
    };
    if via.contains(',') {
        return; // several Vias in one line: leave it to the validation
    }
    // DefaultHasher::new() has fixed keys: the same request always hashes
    // the same, in every process.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    req.uri.to_string().hash(&mut h);
    from_tag(req).hash(&mut h);
    call_id(req).hash(&mut h);
    cseq(req).map(|(n, _)| n).hash(&mut h);
    via.trim().hash(&mut h);
    let branch = format!("{RFC2543_BRANCH_PREFIX}{:016x}", h.finish());
    let mut headers = rsipstack::sip::Headers::default();
    for (i, header) in req.headers.iter().enumerate() {
        if i == pos {
            headers.push(make_header(
                "Via",
                format!("{};branch={branch}", via.trim()),
            ));
        } else {
            headers.push(header.clone());
        }
    }
    req.headers = headers;
}

fn validate(msg: &SipMessage) -> Result<(), MessageError> {
    // A bare magic cookie names no transaction (RFC 4475 badbranch).
    top_via_branch(msg)
        .filter(|b| b != "z9hG4bK")
        .ok_or(MessageError::MissingHeader("Via"))?;
    msg.from_header()
        .map_err(|_| MessageError::MissingHeader("From"))?;
    msg.to_header()
        .map_err(|_| MessageError::MissingHeader("To"))?;
    call_id(msg).ok_or(MessageError::MissingHeader("Call-ID"))?;
    let (_, method) = cseq(msg).ok_or(MessageError::MissingHeader("CSeq"))?;
    if let SipMessage::Request(req) = msg {
        if req.method != method && !(req.method == Method::Ack && method == Method::Ack) {
            return Err(MessageError::CSeqMismatch);
        }
    }
    Ok(())
}

/// The Call-ID value.
pub fn call_id(msg: &impl HeadersExt) -> Option<&str> {
    msg.call_id_header()
        .ok()
        .map(|h| h.value().trim())
        .filter(|v| !v.is_empty())
}

/// CSeq number and method.
pub fn cseq(msg: &impl HeadersExt) -> Option<(u32, Method)> {
    let h = msg.cseq_header().ok()?;
    Some((h.seq().ok()?, h.method().ok()?))
}

/// Branch parameter of the top Via.
pub fn top_via_branch(msg: &impl HeadersExt) -> Option<String> {
    let via = msg.top_via_header().ok()?.typed().ok()?;
    via.branch()
        .map(|b| b.to_string())
        .filter(|b| !b.is_empty())
}

/// Tag of the From header.
pub fn from_tag(msg: &impl HeadersExt) -> Option<String> {
    header_tag(msg.from_header().ok()?.value())
}

/// Tag of the To header.
pub fn to_tag(msg: &impl HeadersExt) -> Option<String> {
    header_tag(msg.to_header().ok()?.value())
}

/// The `tag` parameter of a From/To value, with the LWS RFC 3261 allows
/// around `;` and `=` (`<sip:a@b> ;  tag = 1`, RFC 4475 wsinv).
pub fn header_tag(value: &str) -> Option<String> {
    let (_, params) = split_name_addr(value)?;
    split_params(params).find_map(|p| {
        let (name, tag) = p.split_once('=')?;
        let tag = tag.trim();
        (name.trim().eq_ignore_ascii_case("tag") && !tag.is_empty()).then(|| tag.to_string())
    })
}

/// User part of a URI (`sip:+1555@host` → `+1555`; `tel:+1555` → `+1555`),
/// `%XX` escapes decoded (`sip:%2B1555@host` → `+1555`).
pub fn uri_user(uri: &Uri) -> Option<String> {
    if let Some(user) = uri.user() {
        return Some(percent_decode(user).unwrap_or_else(|| user.to_string()));
    }
    let text = uri.to_string();
    // rsip reads `sip:user;par=x@host` (RFC 4475 semiuri) as host `user`
    // with parameters: the user part is everything before the last `@`.
    for scheme in ["sip:", "sips:"] {
        if let Some(rest) = text
            .get(..scheme.len())
            .filter(|s| s.eq_ignore_ascii_case(scheme))
            .and_then(|_| text.get(scheme.len()..))
        {
            let rest = rest.split('?').next().unwrap_or_default();
            return rest
                .rsplit_once('@')
                .map(|(user, _)| percent_decode(user).unwrap_or_else(|| user.to_string()));
        }
    }
    // tel: URIs carry the number as the host part.
    text.strip_prefix("tel:")
        .map(|rest| rest.split(';').next().unwrap_or("").to_string())
}

/// The number the caller presents: user of `P-Asserted-Identity` if present
/// and readable, else of `From`.
pub fn caller_identity(req: &Request) -> Option<String> {
    if let Some(pai) = req.header_value("P-Asserted-Identity") {
        // PAI may hold several identities (sip and tel); take the first
        // with a user part.
        for part in pai.split(',') {
            if let Some(user) = uri_in_name_addr(part).and_then(|u| uri_user(&u)) {
                return Some(user);
            }
        }
    }
    let from = req.from_header().ok()?;
    uri_user(&from.uri().ok()?)
}

/// Parse the URI inside a name-addr (`"Name" <sip:x@y>;tag=1`) or addr-spec.
pub fn uri_in_name_addr(value: &str) -> Option<Uri> {
    let (uri, _) = split_name_addr(value)?;
    Uri::try_from(uri).ok()
}

/// Split a name-addr or addr-spec header value into the URI text and the
/// header parameters after it: `"A" <sip:a@h;lr>;expires=60;+sip.instance="<urn:x>"`
/// → (`sip:a@h;lr`, `expires=60;+sip.instance="<urn:x>"`). The display name
/// may be quoted and contain `<`; parameter values may be quoted and contain
/// `>` (RFC 5626 instance ids do).
pub fn split_name_addr(value: &str) -> Option<(&str, &str)> {
    let value = value.trim();
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in value.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '<' if !quoted => {
                let rest = &value[i + 1..];
                let end = rest.find('>')?;
                let params = rest[end + 1..].trim_start().trim_start_matches(';');
                return Some((&rest[..end], params));
            }
            _ => {}
        }
    }
    // addr-spec: no angle brackets, parameters after the first ';' belong
    // to the header, not the URI (RFC 3261 §20.10).
    Some(match value.split_once(';') {
        Some((uri, params)) => (uri.trim(), params),
        None => (value, ""),
    })
}

/// Split header parameters on `;` outside quotes.
pub fn split_params(params: &str) -> impl Iterator<Item = &str> {
    let mut out = Vec::new();
    let (mut quoted, mut start) = (false, 0);
    for (i, c) in params.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ';' if !quoted => {
                out.push(&params[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&params[start..]);
    out.into_iter().map(str::trim).filter(|p| !p.is_empty())
}

/// Where a response to `req` goes (RFC 3261 §18.2.2 with RFC 3581): with
/// `rport` (or a sent-by that is not the source IP) to the packet's source;
/// otherwise to the source IP on the Via's port.
pub fn response_destination(req: &Request, src: SocketAddr) -> SocketAddr {
    let Some(via) = req.top_via_header().ok().and_then(|v| v.typed().ok()) else {
        return src;
    };
    if via.rport().is_some() {
        return src;
    }
    let sent_by = via.sent_by();
    let port = sent_by.port.as_ref().map(|p| p.value()).unwrap_or(5060);
    let same_host = sent_by.host.to_string().parse::<IpAddr>().ok() == Some(src.ip());
    if same_host {
        SocketAddr::new(src.ip(), port)
    } else {
        // NAT or a host name: the source is the only address we can trust.
        SocketAddr::new(
            src.ip(),
            if via.received().is_some() {
                port
            } else {
                src.port()
            },
        )
    }
}

/// Build a response to `req`: copies Via, From, To (adding `to_tag` when the
/// request had none), Call-ID and CSeq (as
/// [`build_response`](crate::sip::transaction::build_response) does); adds
/// `extra` headers and `body`.
pub fn response(
    req: &Request,
    status: u16,
    to_tag: Option<&str>,
    extra: &[(&str, String)],
    body: Option<(&str, Vec<u8>)>,
) -> Response {
    let mut headers = rsipstack::sip::Headers::from(response_headers(req, to_tag));
    finish(
        &mut headers,
        extra,
        body.as_ref().map(|(ct, b)| (*ct, b.len())),
    );
    Response {
        status_code: status.into(),
        wire_reason: None,
        version: rsipstack::sip::Version::V2,
        headers,
        body: body.map(|(_, b)| b).unwrap_or_default(),
    }
}

/// Append `extra` headers, then Content-Type (if a body) and Content-Length.
pub fn finish(
    headers: &mut rsipstack::sip::Headers,
    extra: &[(&str, String)],
    body: Option<(&str, usize)>,
) {
    for (name, value) in extra {
        headers.push(make_header(name, value.clone()));
    }
    match body {
        Some((content_type, len)) => {
            headers.push(make_header("Content-Type", content_type.to_string()));
            headers.push(make_header("Content-Length", len.to_string()));
        }
        None => headers.push(make_header("Content-Length", "0".into())),
    }
}

/// Build a request from scratch: `headers` in order, then Content-Type and
/// Content-Length. Nothing is copied from any other message.
pub fn request(
    method: Method,
    uri: Uri,
    headers: &[(&str, String)],
    body: Option<(&str, Vec<u8>)>,
) -> Request {
    let mut hs = rsipstack::sip::Headers::default();
    finish(
        &mut hs,
        headers,
        body.as_ref().map(|(ct, b)| (*ct, b.len())),
    );
    Request {
        method,
        uri,
        version: rsipstack::sip::Version::V2,
        headers: hs,
        body: body.map(|(_, b)| b).unwrap_or_default(),
    }
}

/// Whether the message carries an SDP body.
pub fn has_sdp(msg: &impl HeadersExt, body: &[u8]) -> bool {
    !body.is_empty()
        && msg
            .header_value("Content-Type")
            .is_some_and(|ct| ct.to_ascii_lowercase().starts_with("application/sdp"))
}

/// Best effort `400 Bad Request` for a datagram the parser rejected: when
/// the text is a request whose Via, From, To, Call-ID and CSeq lines can be
/// found, echo them back; otherwise `None` (drop it).
pub fn bad_request_for(data: &[u8], reason: &str) -> Option<Vec<u8>> {
    stateless_reply(data, (400, "Bad Request"), reason)
}

/// The stateless answer to a request [`parse`] rejected with `error`:
/// 505 for another SIP version, 501 for an unknown method, else 400 (see
/// [`MessageError::status`]); `None` when it cannot be addressed (a
/// response, an ACK, or no Via/From/To/Call-ID/CSeq to echo): drop it.
pub fn error_response_for(data: &[u8], error: &MessageError) -> Option<Vec<u8>> {
    stateless_reply(data, error.status(), &error.to_string())
}

fn stateless_reply(data: &[u8], (status, phrase): (u16, &str), reason: &str) -> Option<Vec<u8>> {
    let data = data.get(..data.len().min(MAX_MESSAGE_SIZE))?;
    // Only the header section must be text; a body may be binary.
    let head = match data.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(end) => data.get(..end)?,
        None => data,
    };
    let head = std::str::from_utf8(head).ok()?;
    let mut lines = head.split("\r\n");
    let start = lines.next()?;
    let version = start.trim_end().rsplit(' ').next().unwrap_or_default();
    if start.starts_with("SIP/")
        || !version
            .get(..4)
            .is_some_and(|v| v.eq_ignore_ascii_case("SIP/"))
    {
        return None;
    }
    if start.starts_with("ACK ") {
        return None; // never answer an ACK
    }
    let mut out = format!("SIP/2.0 {status} {phrase}\r\n");
    let mut found = [false; 5];
    let wanted = [
        ("via", "v"),
        ("from", "f"),
        ("to", "t"),
        ("call-id", "i"),
        ("cseq", ""),
    ];
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim().to_ascii_lowercase();
        for (i, (long, short)) in wanted.iter().enumerate() {
            let named = name == *long || (!short.is_empty() && name == *short);
            // Every Via goes back; of the others only the first (a
            // message may carry two From headers, RFC 4475 multi01).
            if named && (i == 0 || !found[i]) {
                found[i] = true;
                let canonical = ["Via", "From", "To", "Call-ID", "CSeq"][i];
                out.push_str(canonical);
                out.push_str(": ");
                out.push_str(value.trim());
                out.push_str("\r\n");
            }
        }
    }
    if !found.iter().all(|f| *f) {
        return None;
    }
    let reason: String = reason
        .chars()
        .filter(|c| !c.is_control() && *c != '"')
        .take(120)
        .collect();
    out.push_str(&format!(
        "Warning: 399 maskline \"{reason}\"\r\nContent-Length: 0\r\n\r\n"
    ));
    Some(out.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &str = "INVITE sip:+15550000001@127.0.0.1:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.0.0.5:5070;branch=z9hG4bK776asdhds;rport\r\n\
Max-Forwards: 70\r\n\
To: <sip:+15550000001@127.0.0.1>\r\n\
From: \"Alice\" <sip:+14155550101@10.0.0.5>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@10.0.0.5\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@10.0.0.5:5070>\r\n\
Content-Length: 0\r\n\r\n";

    #[test]
    fn parses_and_reads_fields() {
        let SipMessage::Request(req) = parse(INVITE.as_bytes()).unwrap() else {
            panic!()
        };
        assert_eq!(call_id(&req), Some("a84b4c76e66710@10.0.0.5"));
        assert_eq!(cseq(&req), Some((314159, Method::Invite)));
        assert_eq!(top_via_branch(&req).as_deref(), Some("z9hG4bK776asdhds"));
        assert_eq!(from_tag(&req).as_deref(), Some("1928301774"));
        assert_eq!(to_tag(&req), None);
        assert_eq!(caller_identity(&req).as_deref(), Some("+14155550101"));
        assert_eq!(uri_user(&req.uri).as_deref(), Some("+15550000001"));
    }

    #[test]
    fn name_addr_with_quoted_angle_brackets() {
        let v = "\"x<y\" <sip:+1415@10.0.0.1:5060;transport=tcp>;expires=300;+sip.instance=\"<urn:uuid:abc>\"";
        let (uri, params) = split_name_addr(v).unwrap();
        assert_eq!(uri, "sip:+1415@10.0.0.1:5060;transport=tcp");
        assert_eq!(
            split_params(params).collect::<Vec<_>>(),
            vec!["expires=300", "+sip.instance=\"<urn:uuid:abc>\""]
        );
        assert_eq!(uri_in_name_addr(v).unwrap().user(), Some("+1415"));
        let (uri, params) = split_name_addr("sip:a@h;expires=5").unwrap();
        assert_eq!((uri, params), ("sip:a@h", "expires=5"));
    }

    #[test]
    fn pai_wins_over_from() {
        let text = INVITE.replace(
            "Contact:",
            "P-Asserted-Identity: <sip:+14155550999@carrier.example>\r\nContact:",
        );
        let SipMessage::Request(req) = parse(text.as_bytes()).unwrap() else {
            panic!()
        };
        assert_eq!(caller_identity(&req).as_deref(), Some("+14155550999"));
    }

    #[test]
    fn compact_headers_parse() {
        let text = "INVITE sip:+15550000001@127.0.0.1 SIP/2.0\r\nv: SIP/2.0/UDP 10.0.0.5;branch=z9hG4bKx\r\nt: <sip:+15550000001@127.0.0.1>\r\nf: <sip:+14155550101@10.0.0.5>;tag=a\r\ni: abc\r\nCSeq: 1 INVITE\r\nl: 0\r\n\r\n";
        let SipMessage::Request(req) = parse(text.as_bytes()).unwrap() else {
            panic!()
        };
        assert_eq!(call_id(&req), Some("abc"));
    }

    #[test]
    fn missing_headers_and_mismatch_rejected() {
        let no_callid = INVITE.replace("Call-ID: a84b4c76e66710@10.0.0.5\r\n", "");
        assert_eq!(
            parse(no_callid.as_bytes()).unwrap_err(),
            MessageError::MissingHeader("Call-ID")
        );
        let mismatch = INVITE.replace("CSeq: 314159 INVITE", "CSeq: 314159 BYE");
        assert_eq!(
            parse(mismatch.as_bytes()).unwrap_err(),
            MessageError::CSeqMismatch
        );
        assert!(parse(b"garbage").is_err());
        assert!(parse(&[0xff; 10]).is_err());
    }

    #[test]
    fn response_routing_rfc3581() {
        let SipMessage::Request(req) = parse(INVITE.as_bytes()).unwrap() else {
            panic!()
        };
        let src: SocketAddr = "192.0.2.1:40000".parse().unwrap();
        assert_eq!(response_destination(&req, src), src);
        let no_rport = INVITE.replace(";rport", "");
        let SipMessage::Request(req) = parse(no_rport.as_bytes()).unwrap() else {
            panic!()
        };
        let src: SocketAddr = "10.0.0.5:40000".parse().unwrap();
        assert_eq!(
            response_destination(&req, src),
            "10.0.0.5:5070".parse().unwrap()
        );
    }

    #[test]
    fn response_copies_dialog_headers_and_adds_tag() {
        let SipMessage::Request(req) = parse(INVITE.as_bytes()).unwrap() else {
            panic!()
        };
        let resp = response(&req, 486, Some("xyz"), &[], None);
        let text = String::from_utf8(resp.to_bytes()).unwrap();
        assert!(text.starts_with("SIP/2.0 486 Busy Here\r\n"), "{text}");
        assert!(text.contains("To: <sip:+15550000001@127.0.0.1>;tag=xyz\r\n"));
        assert!(text.contains("Call-ID: a84b4c76e66710@10.0.0.5\r\n"));
        assert!(text.contains("CSeq: 314159 INVITE\r\n"));
        assert!(!text.contains("Contact"));
        assert!(text.ends_with("Content-Length: 0\r\n\r\n"));
    }

    #[test]
    fn response_copies_headers_like_the_transaction_layer() {
        let SipMessage::Request(req) = parse(INVITE.as_bytes()).unwrap() else {
            panic!()
        };
        let status = rsipstack::sip::StatusCode::BusyHere;
        let ours = response(&req, 486, Some("xyz"), &[], None);
        let tsx = crate::sip::transaction::build_response(&req, status, Some("xyz"));
        assert_eq!(ours.to_bytes(), tsx.to_bytes());
    }

    #[test]
    fn escaped_users_and_spaced_tags() {
        assert_eq!(percent_decode("%2B1555%20x").as_deref(), Some("+1555 x"));
        assert_eq!(percent_decode("100%"), None);
        assert_eq!(percent_decode("%ff"), None, "not UTF-8");
        let text = INVITE.replace("INVITE sip:+15550000001@", "INVITE sip:%2B15550000001@");
        let SipMessage::Request(req) = parse(text.as_bytes()).unwrap() else {
            panic!()
        };
        assert_eq!(uri_user(&req.uri).as_deref(), Some("+15550000001"));
        assert!(String::from_utf8_lossy(&req.to_bytes())
            .starts_with("INVITE sip:+15550000001@127.0.0.1:5060 SIP/2.0\r\n"));
        assert_eq!(
            header_tag("\"A;tag=no\" <sip:a@b;tag=no> ;  TAG = x1 ;y").as_deref(),
            Some("x1")
        );
        assert_eq!(header_tag("sip:a@b;tag="), None);
        let uri = rsipstack::sip::Uri::try_from("sip:user;par=u%40ex.net@ex.com").unwrap();
        assert_eq!(uri_user(&uri).as_deref(), Some("user;par=u@ex.net"));
    }

    #[test]
    fn stateless_answers_by_error() {
        let v7 = INVITE.replace("SIP/2.0\r\nVia", "SIP/7.0\r\nVia");
        let err = parse(v7.as_bytes()).unwrap_err();
        let out = String::from_utf8(error_response_for(v7.as_bytes(), &err).unwrap()).unwrap();
        assert!(
            out.starts_with("SIP/2.0 505 Version Not Supported\r\n"),
            "{out}"
        );
        let ext = INVITE
            .replace("INVITE sip:", "FROB sip:")
            .replace("314159 INVITE", "314159 FROB");
        let err = parse(ext.as_bytes()).unwrap_err();
        assert_eq!(err, MessageError::UnknownMethod("FROB".into()));
        let out = String::from_utf8(error_response_for(ext.as_bytes(), &err).unwrap()).unwrap();
        assert!(out.starts_with("SIP/2.0 501 Not Implemented\r\n"), "{out}");
        // A binary body does not stop the 400.
        let mut bin = INVITE
            .replace("Content-Length: 0", "Content-Length: 3")
            .into_bytes();
        bin.extend_from_slice(&[0xff, 0xfe]);
        let err = parse(&bin).unwrap_err();
        assert_eq!(err, MessageError::Truncated);
        assert!(error_response_for(&bin, &err).is_some());
    }

    #[test]
    fn no_content_length_means_the_rest_of_the_datagram() {
        let text = INVITE.replace("Content-Length: 0\r\n\r\n", "\r\nv=0\r\n");
        let SipMessage::Request(req) = parse(text.as_bytes()).unwrap() else {
            panic!()
        };
        assert_eq!(req.body, b"v=0\r\n");
    }

    #[test]
    fn bad_request_echoes_dialog_headers() {
        let broken = INVITE.replace(
            "CSeq: 314159 INVITE",
            "CSeq: 314159 INVITE\r\nContent-Length: abc",
        );
        let out = String::from_utf8(bad_request_for(broken.as_bytes(), "bad \"length\"").unwrap())
            .unwrap();
        assert!(out.starts_with("SIP/2.0 400 Bad Request\r\n"));
        assert!(out.contains("Call-ID: a84b4c76e66710@10.0.0.5\r\n"));
        assert!(bad_request_for(b"SIP/2.0 200 OK\r\n\r\n", "x").is_none());
        assert!(bad_request_for(b"\x00\x01", "x").is_none());
    }

    #[test]
    fn an_rfc2543_request_gets_a_branch_its_cancel_shares() {
        let msg = |method: &str| {
            format!(
                "{method} sip:+15550000001@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.5:5060\r\n\
                 From: <sip:+14155550101@10.0.0.5>;tag=a\r\nTo: <sip:+15550000001@127.0.0.1>\r\n\
                 Call-ID: old-2543\r\nCSeq: 7 {method}\r\nContent-Length: 0\r\n\r\n"
            )
        };
        let branch = |text: String| match parse(text.as_bytes()) {
            Ok(SipMessage::Request(r)) => top_via_branch(&r),
            other => panic!("{other:?}"),
        };
        let invite = branch(msg("INVITE")).unwrap_or_default();
        assert!(invite.starts_with(RFC2543_BRANCH_PREFIX), "{invite}");
        assert_eq!(branch(msg("CANCEL")).as_deref(), Some(invite.as_str()));
        assert_eq!(branch(msg("INVITE")).as_deref(), Some(invite.as_str()));
    }
}
