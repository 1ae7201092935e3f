//! What Maskline sends to each leg. The B-leg INVITE is built from scratch:
//! nothing of the A-leg request is copied, so a party's real number can only
//! appear where we put it (the Request-URI and To of the callee's own leg).

use std::net::IpAddr;

use rsipstack::sip::headers::make_header;
use rsipstack::sip::{Method, Request, Uri};

use crate::sip::message;

/// Our identity on the wire.
#[derive(Debug, Clone)]
pub struct LocalIdentity {
    /// Via sent-by and Contact host (`public_address:port`).
    pub sent_by: String,
    /// Advertised IP (SDP `c=`/`o=`, From/PAI host).
    pub public_ip: IpAddr,
}

/// Format an IP for a SIP URI host (IPv6 in brackets).
pub fn uri_host(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

/// Parameters of a new outbound INVITE.
#[derive(Debug, Clone)]
pub struct OutboundInvite<'a> {
    /// Our identity.
    pub local: &'a LocalIdentity,
    /// Number shown as caller (the masked number).
    pub caller_id: &'a str,
    /// Number dialled (the other party's real number).
    pub callee: &'a str,
    /// Request-URI host (`ip:port` of the trunk or contact).
    pub target_host: &'a str,
    /// Request-URI to use instead of `sip:<callee>@<target_host>` (a
    /// registered contact).
    pub request_uri: Option<&'a str>,
    /// New Call-ID.
    pub call_id: &'a str,
    /// New From tag.
    pub from_tag: &'a str,
    /// New branch.
    pub branch: &'a str,
    /// Transport name for the Via (`UDP`, `TCP`).
    pub transport: &'a str,
    /// CSeq number (1, or the next after a failed attempt).
    pub cseq: u32,
    /// Max-Forwards to send.
    pub max_forwards: u8,
    /// Rewritten SDP offer.
    pub sdp: Vec<u8>,
}

/// Build the B-leg INVITE.
pub fn invite(p: &OutboundInvite<'_>) -> Result<Request, rsipstack::sip::Error> {
    let host = uri_host(p.local.public_ip);
    let uri = match p.request_uri {
        Some(contact) => Uri::try_from(contact)?,
        None => Uri::try_from(format!("sip:{}@{}", p.callee, p.target_host).as_str())?,
    };
    let headers = [
        (
            "Via",
            format!(
                "SIP/2.0/{} {};branch={};rport",
                p.transport, p.local.sent_by, p.branch
            ),
        ),
        ("Max-Forwards", p.max_forwards.to_string()),
        (
            "From",
            format!("<sip:{}@{}>;tag={}", p.caller_id, host, p.from_tag),
        ),
        ("To", format!("<sip:{}@{}>", p.callee, p.target_host)),
        ("Call-ID", p.call_id.to_string()),
        ("CSeq", format!("{} INVITE", p.cseq)),
        ("Contact", contact(p.local, p.caller_id)),
        (
            "P-Asserted-Identity",
            format!("<sip:{}@{}>", p.caller_id, host),
        ),
        ("Allow", ALLOW.to_string()),
        ("User-Agent", "Maskline".to_string()),
    ];
    Ok(message::request(
        Method::Invite,
        uri,
        &headers,
        Some(("application/sdp", p.sdp.clone())),
    ))
}

/// Methods we accept, for `Allow`.
pub const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE";

/// Our Contact, with `user` (the masked number) as user part.
pub fn contact(local: &LocalIdentity, user: &str) -> String {
    format!("<sip:{}@{}>", user, local.sent_by)
}

/// The same INVITE again with digest credentials (after a 401/407 from the
/// trunk): new branch, next CSeq, the `header` (`Authorization` or
/// `Proxy-Authorization`) set to `value`. Call-ID and From tag stay.
pub fn with_credentials(
    invite: &Request,
    header: &str,
    value: String,
    branch: &str,
    cseq: u32,
) -> Request {
    use rsipstack::sip::Header;
    let mut req = invite.clone();
    let mut headers = rsipstack::sip::Headers::default();
    for h in invite.headers.iter() {
        match h {
            Header::Via(v) => {
                let text = v.value();
                let replaced = match text.find(";branch=") {
                    Some(i) => {
                        let rest = &text[i + 8..];
                        let end = rest.find(';').unwrap_or(rest.len());
                        format!("{};branch={}{}", &text[..i], branch, &rest[end..])
                    }
                    None => format!("{text};branch={branch}"),
                };
                headers.push(make_header("Via", replaced));
            }
            Header::CSeq(_) => headers.push(make_header("CSeq", format!("{cseq} INVITE"))),
            Header::Authorization(_) | Header::ProxyAuthorization(_) => {}
            Header::ContentType(_) => {
                headers.push(make_header(header, value.clone()));
                headers.push(h.clone());
            }
            _ => headers.push(h.clone()),
        }
    }
    req.headers = headers;
    req
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invite_carries_only_the_masked_number_as_caller() {
        let local = LocalIdentity {
            sent_by: "127.0.0.1:5060".into(),
            public_ip: "127.0.0.1".parse().unwrap(),
        };
        let req = invite(&OutboundInvite {
            local: &local,
            caller_id: "+15550000001",
            callee: "+14155550102",
            target_host: "127.0.0.1:5080",
            request_uri: None,
            call_id: "abc@127.0.0.1",
            from_tag: "t1",
            branch: "z9hG4bKabc",
            transport: "UDP",
            cseq: 1,
            max_forwards: 69,
            sdp: b"v=0\r\n".to_vec(),
        })
        .unwrap();
        let text = String::from_utf8(req.to_bytes()).unwrap();
        assert!(
            text.starts_with("INVITE sip:+14155550102@127.0.0.1:5080 SIP/2.0\r\n"),
            "{text}"
        );
        assert!(text.contains("From: <sip:+15550000001@127.0.0.1>;tag=t1\r\n"));
        assert!(text.contains("P-Asserted-Identity: <sip:+15550000001@127.0.0.1>\r\n"));
        assert!(text.contains("Content-Length: 5\r\n"));
        assert!(crate::sip::message::parse(&req.to_bytes()).is_ok());
    }
}
