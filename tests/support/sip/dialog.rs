//! Dialog state of the raw peer and the in-dialog requests it sends.

use std::net::SocketAddr;

use super::message::{header_tag, header_uri, uri_host_port, SipMessage};
use crate::error::{E2eError, Result};

/// One side of an established dialog (RFC 3261 §12), as the peer holds it.
#[derive(Debug, Clone)]
pub struct Dialog {
    /// Call-ID.
    pub call_id: String,
    /// Our tag.
    pub local_tag: String,
    /// The peer's tag.
    pub remote_tag: String,
    /// Header value we put in From of our requests (with our tag).
    pub local: String,
    /// Header value we put in To of our requests (with their tag).
    pub remote: String,
    /// Request-URI of our in-dialog requests (the remote Contact).
    pub remote_target: String,
    /// Route set (Record-Route, in the order our requests carry it).
    pub route_set: Vec<String>,
    /// Our Contact URI.
    pub local_contact: String,
    /// CSeq of the INVITE that made the dialog.
    pub invite_cseq: u32,
    /// Our last CSeq number.
    pub local_cseq: u32,
}

fn missing(what: &str, msg: &SipMessage) -> E2eError {
    E2eError::Unexpected(format!("{what} missing in:\n{}", msg.raw_text()))
}

impl Dialog {
    /// The caller's dialog, from the INVITE we sent (`from`, `call_id`,
    /// `cseq`) and the 2xx that answered it.
    pub fn from_uac(
        from: &str,
        call_id: &str,
        cseq: u32,
        local_contact: &str,
        answer: &SipMessage,
    ) -> Result<Dialog> {
        let to = answer.required("to")?;
        let contact = answer
            .header("contact")
            .ok_or_else(|| missing("Contact", answer))?;
        let mut route_set: Vec<String> = answer
            .headers_named("record-route")
            .flat_map(|v| v.split(','))
            .map(|v| v.trim().to_string())
            .collect();
        route_set.reverse();
        Ok(Dialog {
            call_id: call_id.to_string(),
            local_tag: header_tag(from).unwrap_or_default().to_string(),
            remote_tag: header_tag(to)
                .ok_or_else(|| missing("To tag", answer))?
                .to_string(),
            local: from.to_string(),
            remote: to.to_string(),
            remote_target: header_uri(contact).to_string(),
            route_set,
            local_contact: local_contact.to_string(),
            invite_cseq: cseq,
            local_cseq: cseq,
        })
    }

    /// The callee's dialog, from the INVITE received and the tag we answered
    /// with.
    pub fn from_uas(invite: &SipMessage, local_tag: &str, local_contact: &str) -> Result<Dialog> {
        let from = invite.required("from")?;
        let to = invite.required("to")?;
        let contact = invite
            .header("contact")
            .ok_or_else(|| missing("Contact", invite))?;
        let (cseq, _) = invite.cseq().ok_or_else(|| missing("CSeq", invite))?;
        Ok(Dialog {
            call_id: invite.required("call-id")?.to_string(),
            local_tag: local_tag.to_string(),
            remote_tag: header_tag(from)
                .ok_or_else(|| missing("From tag", invite))?
                .to_string(),
            local: format!("{to};tag={local_tag}"),
            remote: from.to_string(),
            remote_target: header_uri(contact).to_string(),
            route_set: invite
                .headers_named("record-route")
                .flat_map(|v| v.split(','))
                .map(|v| v.trim().to_string())
                .collect(),
            local_contact: local_contact.to_string(),
            invite_cseq: cseq,
            local_cseq: 0,
        })
    }

    /// Where our in-dialog requests go: the first route, else the remote
    /// target, else `fallback` when neither is an IP literal URI.
    pub fn next_hop(&self, fallback: SocketAddr) -> SocketAddr {
        self.route_set
            .first()
            .map(|r| header_uri(r))
            .or(Some(self.remote_target.as_str()))
            .and_then(uri_host_port)
            .unwrap_or(fallback)
    }

    /// An in-dialog request. `cseq` is the CSeq number to use (the INVITE's
    /// for ACK, the next one otherwise).
    pub fn request(&self, method: &str, cseq: u32, local: SocketAddr, branch: &str) -> String {
        let mut routes = String::new();
        for r in &self.route_set {
            routes.push_str(&format!("Route: {r}\r\n"));
        }
        format!(
            "{method} {target} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};branch={branch};rport\r\n\
             Max-Forwards: 70\r\n\
             {routes}\
             From: {from}\r\n\
             To: {to}\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} {method}\r\n\
             Contact: <{contact}>\r\n\
             Content-Length: 0\r\n\r\n",
            target = self.remote_target,
            from = self.local,
            to = self.remote,
            call_id = self.call_id,
            contact = self.local_contact,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(text: &str) -> SipMessage {
        match SipMessage::parse(text.as_bytes(), SocketAddr::from(([127, 0, 0, 1], 5060))) {
            Ok(m) => m,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn uac_dialog_from_a_2xx() {
        let ok = msg(
            "SIP/2.0 200 OK\r\nTo: <sip:m@h>;tag=r1\r\nFrom: <sip:a@h>;tag=l1\r\n\
             Call-ID: c1\r\nCSeq: 1 INVITE\r\nContact: <sip:ml@127.0.0.1:5062>\r\n\
             Record-Route: <sip:p1@127.0.0.1:5070;lr>, <sip:p2@127.0.0.1:5071;lr>\r\n\r\n",
        );
        let d = Dialog::from_uac("<sip:a@h>;tag=l1", "c1", 1, "sip:a@127.0.0.1:9", &ok);
        let d = match d {
            Ok(d) => d,
            Err(e) => panic!("{e}"),
        };
        assert_eq!((d.local_tag.as_str(), d.remote_tag.as_str()), ("l1", "r1"));
        assert_eq!(d.remote_target, "sip:ml@127.0.0.1:5062");
        assert_eq!(
            d.route_set.first().map(String::as_str),
            Some("<sip:p2@127.0.0.1:5071;lr>")
        );
        assert_eq!(
            d.next_hop(SocketAddr::from(([127, 0, 0, 1], 1))),
            SocketAddr::from(([127, 0, 0, 1], 5071))
        );
        let bye = d.request("BYE", 2, SocketAddr::from(([127, 0, 0, 1], 9)), "z9hG4bKb");
        assert!(bye.starts_with("BYE sip:ml@127.0.0.1:5062 SIP/2.0\r\n"));
        assert!(bye.contains("\r\nFrom: <sip:a@h>;tag=l1\r\n"));
        assert!(bye.contains("\r\nTo: <sip:m@h>;tag=r1\r\n"));
        assert!(bye.contains("\r\nCSeq: 2 BYE\r\n"));
        assert!(bye.contains("\r\nRoute: <sip:p2@127.0.0.1:5071;lr>\r\n"));
    }

    #[test]
    fn uas_dialog_from_an_invite() {
        let inv = msg(
            "INVITE sip:b@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1\r\n\
             From: <sip:m@h>;tag=f1\r\nTo: <sip:b@h>\r\nCall-ID: c2\r\nCSeq: 10 INVITE\r\n\
             Contact: <sip:ml@127.0.0.1:5060>\r\n\r\n",
        );
        let d = match Dialog::from_uas(&inv, "t9", "sip:b@127.0.0.1:7") {
            Ok(d) => d,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(d.local, "<sip:b@h>;tag=t9");
        assert_eq!(d.remote, "<sip:m@h>;tag=f1");
        assert_eq!(d.invite_cseq, 10);
        assert_eq!(
            d.next_hop(SocketAddr::from(([127, 0, 0, 1], 1))),
            SocketAddr::from(([127, 0, 0, 1], 5060))
        );
    }
}
