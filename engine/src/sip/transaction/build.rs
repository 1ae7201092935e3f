//! Messages the transaction layer builds: the ACK for a non-2xx final
//! (RFC 3261 §17.1.1.3), CANCEL (§9.1) and responses (§8.2.6).
//!
//! Builders copy what they find and never fail: a header missing from the
//! input is missing from the output (our own requests always have them; a
//! hostile request yields a response without it rather than a panic).

use rsipstack::sip::prelude::*;
use rsipstack::sip::{
    CSeq, ContentLength, Header, Headers, MaxForwards, Method, Request, Response, StatusCode, To,
    Version, Via,
};

/// The ACK for a 3xx–6xx final response to `invite` (§17.1.1.3): same
/// Request-URI, Call-ID, From, CSeq number and top Via (so the same branch)
/// as the INVITE, the INVITE's Route headers, and the To of the response
/// (with its tag). No body.
pub fn build_ack_for_non_2xx(invite: &Request, resp: &Response) -> Request {
    let to = resp.to_header().or_else(|_| invite.to_header()).ok();
    single_hop_request(invite, Method::Ack, to)
}

/// A CANCEL for `invite` (§9.1): same Request-URI, Call-ID, From, To, CSeq
/// number, top Via and Route headers as the INVITE; method CANCEL. No body.
pub fn build_cancel(invite: &Request) -> Request {
    single_hop_request(invite, Method::Cancel, invite.to_header().ok())
}

/// A response to `req` (§8.2.6.2): every Via in order, From, To (with
/// `;tag=to_tag` appended when given and the To has no tag yet), Call-ID,
/// CSeq, a Timestamp copied into a 100, and `Content-Length: 0`. Add a
/// body, Contact and the rest afterwards (and fix Content-Length then).
pub fn build_response(req: &Request, status: StatusCode, to_tag: Option<&str>) -> Response {
    let mut headers = response_headers(req, to_tag);
    if status.code() == 100 {
        let stamp = req
            .headers
            .iter()
            .find(|h| matches!(h, Header::Timestamp(_)));
        if let Some(stamp) = stamp {
            headers.push(stamp.clone());
        }
    }
    headers.push(Header::ContentLength(ContentLength::from(0)));
    Response {
        status_code: status,
        wire_reason: None,
        version: Version::V2,
        headers: Headers::from(headers),
        body: Vec::new(),
    }
}

/// The headers every response copies from its request (§8.2.6.2): every
/// Via in order, then From, To (with `;tag=to_tag` appended when given and
/// the To has no tag yet), Call-ID and CSeq. A header missing from `req` is
/// missing here.
pub(crate) fn response_headers(req: &Request, to_tag: Option<&str>) -> Vec<Header> {
    let mut headers: Vec<Header> = req
        .headers
        .iter()
        .filter(|h| matches!(h, Header::Via(_)))
        .cloned()
        .collect();
    if let Ok(from) = req.from_header() {
        headers.push(Header::From(from.clone()));
    }
    if let Ok(to) = req.to_header() {
        let to = match to_tag {
            Some(tag) if tag_param(to.value()).is_none() => {
                To::new(format!("{};tag={}", to.value().trim_end(), tag))
            }
            _ => to.clone(),
        };
        headers.push(Header::To(to));
    }
    if let Ok(call_id) = req.call_id_header() {
        headers.push(Header::CallId(call_id.clone()));
    }
    if let Ok(cseq) = req.cseq_header() {
        headers.push(Header::CSeq(cseq.clone()));
    }
    headers
}

/// ACK and CANCEL share a shape: one Via (the INVITE's top one), the
/// INVITE's Route set, From, Call-ID and CSeq number.
fn single_hop_request(invite: &Request, method: Method, to: Option<&To>) -> Request {
    let mut headers: Vec<Header> = Vec::with_capacity(8);
    if let Some(via) = invite.via_header().ok().and_then(|v| v.first_value().ok()) {
        headers.push(Header::Via(Via::new(via.value())));
    }
    headers.push(Header::MaxForwards(MaxForwards::from(70)));
    headers.extend(
        invite
            .headers
            .iter()
            .filter(|h| matches!(h, Header::Route(_)))
            .cloned(),
    );
    if let Ok(from) = invite.from_header() {
        headers.push(Header::From(from.clone()));
    }
    if let Some(to) = to {
        headers.push(Header::To(to.clone()));
    }
    if let Ok(call_id) = invite.call_id_header() {
        headers.push(Header::CallId(call_id.clone()));
    }
    if let Some(seq) = cseq_number_text(invite) {
        headers.push(Header::CSeq(CSeq::new(format!("{seq} {method}"))));
    }
    headers.push(Header::ContentLength(ContentLength::from(0)));
    Request {
        method,
        uri: invite.uri.clone(),
        version: Version::V2,
        headers: Headers::from(headers),
        body: Vec::new(),
    }
}

/// The CSeq number of `req` as text (parsed when possible, else the first
/// token as written).
fn cseq_number_text(req: &Request) -> Option<String> {
    let cseq = req.cseq_header().ok()?;
    match cseq.seq() {
        Ok(n) => Some(n.to_string()),
        Err(_) => cseq.value().split_whitespace().next().map(str::to_string),
    }
}

/// The `tag` parameter of a From/To header value (`name-addr` or
/// `addr-spec` form), if any. Never fails: anything unparsable has no tag.
pub(crate) fn tag_param(value: &str) -> Option<&str> {
    header_params(value)
        .split(';')
        .filter_map(|p| {
            let (name, val) = p.split_once('=')?;
            name.trim()
                .eq_ignore_ascii_case("tag")
                .then_some(val.trim())
        })
        .find(|v| !v.is_empty())
}

/// The header parameters of a `name-addr` / `addr-spec` value: what follows
/// the closing `>` of a name-addr, or the first `;` of a bare addr-spec
/// (where every `;` parameter is a header parameter, RFC 3261 §20.10).
fn header_params(value: &str) -> &str {
    for (i, ch) in unquoted_chars(value) {
        match ch {
            '<' => {
                let rest = value.get(i..).unwrap_or("");
                return match rest.find('>') {
                    Some(gt) => rest.get(gt + 1..).unwrap_or(""),
                    None => "",
                };
            }
            ';' => return value.get(i..).unwrap_or(""),
            _ => {}
        }
    }
    ""
}

/// Splits a comma-separated header value (Record-Route, Route, Contact)
/// into trimmed entries, honouring quotes and `<...>`.
pub(crate) fn split_header_list(value: &str) -> Vec<&str> {
    let mut entries = Vec::new();
    let mut start = 0;
    let mut depth = 0usize;
    for (i, ch) in unquoted_chars(value) {
        match ch {
            '<' => depth += 1,
            '>' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                entries.push(value.get(start..i).unwrap_or("").trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    entries.push(value.get(start..).unwrap_or("").trim());
    entries.retain(|e| !e.is_empty());
    entries
}

/// The characters of `value` outside quoted strings, with their byte
/// offsets. The quotes themselves and everything between them (including
/// `\`-escaped characters) are skipped.
fn unquoted_chars(value: &str) -> impl Iterator<Item = (usize, char)> + '_ {
    let mut in_quotes = false;
    let mut escaped = false;
    value.char_indices().filter(move |&(_, ch)| {
        if escaped {
            escaped = false;
            return false;
        }
        match ch {
            '\\' if in_quotes => {
                escaped = true;
                false
            }
            '"' => {
                in_quotes = !in_quotes;
                false
            }
            _ => !in_quotes,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::transaction::test_support::{invite, request, text};

    #[test]
    fn ack_for_non_2xx_copies_the_right_headers() {
        let inv = invite();
        let busy = build_response(&inv, StatusCode::BusyHere, Some("rtag9"));
        let ack = build_ack_for_non_2xx(&inv, &busy);
        assert_eq!(
            text(&ack.to_bytes()),
            concat!(
                "ACK sip:+15550000002@carrier.example.com SIP/2.0\r\n",
                "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKclient1;rport\r\n",
                "Max-Forwards: 70\r\n",
                "Route: <sip:edge.example.com;lr>\r\n",
                "From: \"Masked\" <sip:+15550000001@127.0.0.1>;tag=ltag1\r\n",
                "To: <sip:+15550000002@carrier.example.com>;tag=rtag9\r\n",
                "Call-ID: cid-1@127.0.0.1\r\n",
                "CSeq: 7 ACK\r\n",
                "Content-Length: 0\r\n",
                "\r\n"
            )
        );
    }

    #[test]
    fn cancel_copies_the_invite() {
        let cancel = build_cancel(&invite());
        assert_eq!(
            text(&cancel.to_bytes()),
            concat!(
                "CANCEL sip:+15550000002@carrier.example.com SIP/2.0\r\n",
                "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKclient1;rport\r\n",
                "Max-Forwards: 70\r\n",
                "Route: <sip:edge.example.com;lr>\r\n",
                "From: \"Masked\" <sip:+15550000001@127.0.0.1>;tag=ltag1\r\n",
                "To: <sip:+15550000002@carrier.example.com>\r\n",
                "Call-ID: cid-1@127.0.0.1\r\n",
                "CSeq: 7 CANCEL\r\n",
                "Content-Length: 0\r\n",
                "\r\n"
            )
        );
    }

    #[test]
    fn response_copies_all_vias_in_order_and_tags_to() {
        let req = request(concat!(
            "INVITE sip:+15550000001@127.0.0.1 SIP/2.0\r\n",
            "Via: SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bKp2\r\n",
            "Via: SIP/2.0/UDP 10.0.0.8:5060;branch=z9hG4bKp1, SIP/2.0/UDP 10.0.0.7;branch=z9hG4bKua\r\n",
            "From: <sip:+14155550101@carrier>;tag=a1\r\n",
            "To: \"Support; line\" <sip:+15550000001@127.0.0.1>\r\n",
            "Call-ID: abc@10.0.0.7\r\n",
            "CSeq: 1 INVITE\r\n",
            "Timestamp: 54\r\n",
            "Subject: nope\r\n",
            "Content-Type: application/sdp\r\n",
            "Content-Length: 4\r\n",
            "\r\n",
            "v=0\n"
        ));
        let ringing = build_response(&req, StatusCode::Ringing, Some("t1"));
        assert_eq!(
            text(&ringing.to_bytes()),
            concat!(
                "SIP/2.0 180 Ringing\r\n",
                "Via: SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bKp2\r\n",
                "Via: SIP/2.0/UDP 10.0.0.8:5060;branch=z9hG4bKp1, SIP/2.0/UDP 10.0.0.7;branch=z9hG4bKua\r\n",
                "From: <sip:+14155550101@carrier>;tag=a1\r\n",
                "To: \"Support; line\" <sip:+15550000001@127.0.0.1>;tag=t1\r\n",
                "Call-ID: abc@10.0.0.7\r\n",
                "CSeq: 1 INVITE\r\n",
                "Content-Length: 0\r\n",
                "\r\n"
            )
        );
        let trying = build_response(&req, StatusCode::Trying, None);
        let trying = text(&trying.to_bytes());
        assert!(trying.contains("\r\nTo: \"Support; line\" <sip:+15550000001@127.0.0.1>\r\n"));
        assert!(trying.contains("\r\nTimestamp: 54\r\n"));
    }

    #[test]
    fn response_keeps_an_existing_to_tag() {
        let req = request(concat!(
            "BYE sip:a@b SIP/2.0\r\n",
            "Via: SIP/2.0/UDP h;branch=z9hG4bKb\r\n",
            "From: <sip:x@y>;tag=f\r\n",
            "To: sip:a@b;tag=mine\r\n",
            "Call-ID: c\r\n",
            "CSeq: 2 BYE\r\n",
            "\r\n"
        ));
        let ok = build_response(&req, StatusCode::OK, Some("other"));
        assert!(text(&ok.to_bytes()).contains("\r\nTo: sip:a@b;tag=mine\r\n"));
    }

    #[test]
    fn hostile_request_gets_a_partial_response() {
        let req = request("INFO sip:a@b SIP/2.0\r\n\r\n");
        let resp = build_response(&req, StatusCode::BadRequest, Some("t"));
        assert_eq!(
            text(&resp.to_bytes()),
            "SIP/2.0 400 Bad Request\r\nContent-Length: 0\r\n\r\n"
        );
    }

    #[test]
    fn tag_param_handles_both_forms() {
        assert_eq!(tag_param("<sip:a@b;tag=no>;tag=yes"), Some("yes"));
        assert_eq!(tag_param("\"A;tag=x <z>\" <sip:a@b>"), None);
        assert_eq!(tag_param("sip:a@b;user=phone;TAG=t9 "), Some("t9"));
        assert_eq!(tag_param("<sip:a@b"), None);
        assert_eq!(tag_param("sip:a@b;tag="), None);
        assert_eq!(tag_param(""), None);
    }

    #[test]
    fn escaped_quotes_do_not_end_a_quoted_string() {
        assert_eq!(tag_param("\"A \\\";tag=x\" <sip:a@b>;tag=yes"), Some("yes"));
        assert_eq!(
            split_header_list("\"A \\\", <x>\" <sip:a@b>, <sip:c@d>"),
            vec!["\"A \\\", <x>\" <sip:a@b>", "<sip:c@d>"]
        );
    }

    #[test]
    fn split_header_list_respects_brackets_and_quotes() {
        assert_eq!(
            split_header_list("<sip:p1;lr>, \"a,b\" <sip:p2;x=1,2>,<sip:p3> ,"),
            vec!["<sip:p1;lr>", "\"a,b\" <sip:p2;x=1,2>", "<sip:p3>"]
        );
        assert!(split_header_list(" , ").is_empty());
    }
}
