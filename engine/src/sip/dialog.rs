//! Dialog state (RFC 3261 §12): identity, CSeq spaces, remote target and
//! route set, and the in-dialog requests built from them.
//!
//! Pure data and builders: no IO, no clock. The B2BUA's call actor owns one
//! [`Dialog`] per leg.

use rsipstack::sip::prelude::*;
use rsipstack::sip::{
    typed, CSeq, CallId, Contact, ContentLength, ContentType, From, Header, Headers, MaxForwards,
    Method, Request, Response, Route, To, Uri, Version, Via,
};

use crate::sip::transaction::build::{split_header_list, tag_param};

/// Errors building or updating a dialog.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DialogError {
    /// A header the dialog needs is absent (the header's name).
    #[error("missing {0} header")]
    MissingHeader(&'static str),
    /// A header is present but unusable (the header's name).
    #[error("malformed {0} header")]
    InvalidHeader(&'static str),
    /// A From/To tag the dialog needs is absent (the header's name).
    #[error("missing tag in {0} header")]
    MissingTag(&'static str),
    /// The response cannot create a dialog (only 101–299 can).
    #[error("a {0} response does not create a dialog")]
    NotDialogCreating(u16),
    /// §12.2.2: an in-dialog request with a CSeq lower than the last one;
    /// answer it with 500.
    #[error("CSeq {got} is lower than the dialog's last remote CSeq {last}")]
    CSeqOutOfOrder {
        /// The last remote CSeq seen.
        last: u32,
        /// The CSeq of the rejected request.
        got: u32,
    },
}

/// A dialog's identity: Call-ID plus local and remote tags (§12).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DialogId {
    /// The Call-ID.
    pub call_id: String,
    /// Our tag (From tag as UAC, To tag as UAS).
    pub local_tag: String,
    /// The peer's tag; empty when an RFC 2543 peer sent none.
    pub remote_tag: String,
}

impl DialogId {
    /// The id of the dialog an incoming request belongs to (we are UAS for
    /// it: local tag from To, remote tag from From). A request without a To
    /// tag is out of dialog: [`DialogError::MissingTag`].
    pub fn from_incoming_request(req: &Request) -> Result<Self, DialogError> {
        let local = tag_param(to_value(req)?).ok_or(DialogError::MissingTag("To"))?;
        Ok(DialogId {
            call_id: call_id(req)?,
            local_tag: local.to_string(),
            remote_tag: tag_param(from_value(req)?).unwrap_or("").to_string(),
        })
    }

    /// The id of the dialog an incoming response belongs to (we sent the
    /// request: local tag from From, remote tag from To, possibly empty).
    pub fn from_incoming_response(resp: &Response) -> Result<Self, DialogError> {
        let local = tag_param(from_value(resp)?).ok_or(DialogError::MissingTag("From"))?;
        Ok(DialogId {
            call_id: call_id(resp)?,
            local_tag: local.to_string(),
            remote_tag: tag_param(to_value(resp)?).unwrap_or("").to_string(),
        })
    }
}

/// Early (created by a 1xx) or confirmed (by a 2xx).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialogState {
    /// Created by a provisional response (or a UAS dialog before its 2xx).
    Early,
    /// Created or confirmed by a 2xx.
    Confirmed,
}

/// One side's view of a dialog (§12.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialog {
    id: DialogId,
    state: DialogState,
    local_uri: String,
    remote_uri: String,
    local_cseq: u32,
    remote_cseq: Option<u32>,
    remote_target: Uri,
    route_set: Vec<String>,
    secure: bool,
}

impl Dialog {
    /// The UAC side of a dialog created by a response to our `invite`
    /// (§12.1.2): a 101–199 with a To tag gives an early dialog, a 2xx a
    /// confirmed one (a 2xx without To tag gets an empty remote tag). The
    /// route set is the response's Record-Route reversed; the remote target
    /// its Contact.
    pub fn uac_from_response(invite: &Request, resp: &Response) -> Result<Dialog, DialogError> {
        let code = resp.status_code.code();
        let state = match code {
            101..=199 => DialogState::Early,
            200..=299 => DialogState::Confirmed,
            _ => return Err(DialogError::NotDialogCreating(code)),
        };
        let from = from_value(invite)?;
        let to = to_value(resp)?;
        let local_tag = tag_param(from).ok_or(DialogError::MissingTag("From"))?;
        let remote_tag = match (tag_param(to), state) {
            (Some(tag), _) => tag,
            (None, DialogState::Early) => return Err(DialogError::MissingTag("To")),
            (None, DialogState::Confirmed) => "",
        };
        let mut route_set = record_route(resp);
        route_set.reverse();
        Ok(Dialog {
            id: DialogId {
                call_id: call_id(invite)?,
                local_tag: local_tag.to_string(),
                remote_tag: remote_tag.to_string(),
            },
            state,
            local_uri: from.trim().to_string(),
            remote_uri: to.trim().to_string(),
            local_cseq: cseq_number(invite)?,
            remote_cseq: None,
            remote_target: contact_uri(resp)?,
            route_set,
            secure: false,
        })
    }

    /// The UAS side of a dialog for a received dialog-creating `invite`
    /// (§12.1.1), answered with our `local_tag` (use it in the To of every
    /// response). Starts [`DialogState::Early`]; call
    /// [`confirm`](Self::confirm) when the 2xx is sent. The route set is the
    /// request's Record-Route in order; the remote target its Contact.
    pub fn uas_from_request(invite: &Request, local_tag: &str) -> Result<Dialog, DialogError> {
        let from = from_value(invite)?;
        let to = to_value(invite)?;
        if tag_param(to).is_some() {
            // A To tag means the request is already inside a dialog.
            return Err(DialogError::InvalidHeader("To"));
        }
        Ok(Dialog {
            id: DialogId {
                call_id: call_id(invite)?,
                local_tag: local_tag.to_string(),
                remote_tag: tag_param(from).unwrap_or("").to_string(),
            },
            state: DialogState::Early,
            local_uri: format!("{};tag={}", to.trim(), local_tag),
            remote_uri: from.trim().to_string(),
            local_cseq: 0,
            remote_cseq: Some(cseq_number(invite)?),
            remote_target: contact_uri(invite)?,
            route_set: record_route(invite),
            secure: false,
        })
    }

    /// UAS: the 2xx was sent; the dialog is confirmed.
    pub fn confirm(&mut self) {
        self.state = DialogState::Confirmed;
    }

    /// UAC: a 2xx arrived for this early dialog (§13.2.2.4): confirm it and
    /// recompute the route set and remote target from the 2xx.
    pub fn confirm_with_response(&mut self, resp: &Response) -> Result<(), DialogError> {
        let target = contact_uri(resp)?;
        let mut route_set = record_route(resp);
        route_set.reverse();
        self.remote_target = target;
        self.route_set = route_set;
        self.state = DialogState::Confirmed;
        Ok(())
    }

    /// Target refresh (re-INVITE, UPDATE or their 2xx, §12.2): the remote
    /// target becomes `msg`'s Contact. Without a usable Contact the target
    /// is kept and an error returned.
    pub fn update_remote_target(&mut self, msg: &impl HeadersExt) -> Result<(), DialogError> {
        self.remote_target = contact_uri(msg)?;
        Ok(())
    }

    /// An in-dialog request (§12.2.1.1). The CSeq number is incremented
    /// first, except for ACK and CANCEL, which reuse the current one.
    ///
    /// Request-URI is the remote target and the Route headers are the route
    /// set (loose routing); a strict first route (no `;lr`) becomes the
    /// Request-URI and the remote target the last Route. The Via is
    /// `SIP/2.0/<transport> <via_sent_by>;branch=<branch>;rport`;
    /// Max-Forwards is 70; Content-Length is always written. Send it to the
    /// first route if any, else the remote target (`Request::destination`).
    pub fn new_request(
        &mut self,
        method: Method,
        via_sent_by: &str,
        transport: &str,
        branch: &str,
        contact: Option<&str>,
        body: Option<(&str, Vec<u8>)>,
    ) -> Request {
        if !matches!(method, Method::Ack | Method::Cancel) {
            self.local_cseq = self.local_cseq.saturating_add(1);
        }
        let via = Via::new(format!(
            "SIP/2.0/{transport} {via_sent_by};branch={branch};rport"
        ));
        self.build(method, self.local_cseq, via, contact, body)
    }

    /// The ACK for a 2xx to the INVITE sent with CSeq `invite_cseq`
    /// (§13.2.2.4): an in-dialog request with that CSeq number, a new
    /// `branch`, and no body.
    pub fn ack_for_2xx(
        &self,
        invite_cseq: u32,
        via_sent_by: &str,
        transport: &str,
        branch: &str,
    ) -> Request {
        let via = Via::new(format!(
            "SIP/2.0/{transport} {via_sent_by};branch={branch};rport"
        ));
        self.build(Method::Ack, invite_cseq, via, None, None)
    }

    /// §12.2.2: checks and records the CSeq of an in-dialog request from
    /// the peer. Lower than the last one → [`DialogError::CSeqOutOfOrder`]
    /// (answer 500); equal or higher (or the first) → accepted.
    pub fn check_remote_cseq(&mut self, req: &Request) -> Result<(), DialogError> {
        let got = cseq_number(req)?;
        match self.remote_cseq {
            Some(last) if got < last => Err(DialogError::CSeqOutOfOrder { last, got }),
            _ => {
                self.remote_cseq = Some(got);
                Ok(())
            }
        }
    }

    /// The dialog id.
    pub fn id(&self) -> &DialogId {
        &self.id
    }

    /// Early or confirmed.
    pub fn state(&self) -> DialogState {
        self.state
    }

    /// Our From/To header value as sent (display name, URI, our tag).
    pub fn local_uri(&self) -> &str {
        &self.local_uri
    }

    /// The peer's From/To header value as received (with its tag).
    pub fn remote_uri(&self) -> &str {
        &self.remote_uri
    }

    /// The CSeq number of our last request (0 for a UAS that sent none).
    pub fn local_cseq(&self) -> u32 {
        self.local_cseq
    }

    /// The CSeq number of the peer's last request (`None` for a UAC until
    /// the peer sends one).
    pub fn remote_cseq(&self) -> Option<u32> {
        self.remote_cseq
    }

    /// Where in-dialog requests go: the peer's Contact URI.
    pub fn remote_target(&self) -> &Uri {
        &self.remote_target
    }

    /// The route set, in the order the Route headers are written.
    pub fn route_set(&self) -> &[String] {
        &self.route_set
    }

    /// Whether the dialog is SIPS-secure (always false: no TLS yet).
    pub fn secure(&self) -> bool {
        self.secure
    }

    fn build(
        &self,
        method: Method,
        cseq: u32,
        via: Via,
        contact: Option<&str>,
        body: Option<(&str, Vec<u8>)>,
    ) -> Request {
        let (uri, routes) = self.request_uri_and_routes();
        let mut headers: Vec<Header> =
            vec![Header::Via(via), Header::MaxForwards(MaxForwards::from(70))];
        headers.extend(routes.into_iter().map(|r| Header::Route(Route::new(r))));
        headers.push(Header::From(From::new(self.local_uri.clone())));
        headers.push(Header::To(To::new(self.remote_uri.clone())));
        headers.push(Header::CallId(CallId::new(self.id.call_id.clone())));
        headers.push(Header::CSeq(CSeq::new(format!("{cseq} {method}"))));
        if let Some(contact) = contact {
            headers.push(Header::Contact(Contact::new(contact)));
        }
        let body = match body {
            Some((content_type, bytes)) => {
                headers.push(Header::ContentType(ContentType::new(content_type)));
                bytes
            }
            None => Vec::new(),
        };
        let len = u32::try_from(body.len()).unwrap_or(u32::MAX);
        headers.push(Header::ContentLength(ContentLength::from(len)));
        Request {
            method,
            uri,
            version: Version::V2,
            headers: Headers::from(headers),
            body,
        }
    }

    /// §12.2.1.1: loose routing unless the first route is a strict router.
    fn request_uri_and_routes(&self) -> (Uri, Vec<String>) {
        if let Some((first, rest)) = self.route_set.split_first() {
            if let Ok(route) = typed::Route::parse(first) {
                if !route.has_lr() {
                    let mut routes = rest.to_vec();
                    routes.push(format!("<{}>", self.remote_target));
                    return (route.uri, routes);
                }
            }
        }
        (self.remote_target.clone(), self.route_set.clone())
    }
}

fn call_id(msg: &impl HeadersExt) -> Result<String, DialogError> {
    let id = msg
        .call_id_header()
        .map_err(|_| DialogError::MissingHeader("Call-ID"))?
        .value()
        .trim();
    if id.is_empty() {
        return Err(DialogError::InvalidHeader("Call-ID"));
    }
    Ok(id.to_string())
}

fn from_value(msg: &impl HeadersExt) -> Result<&str, DialogError> {
    Ok(msg
        .from_header()
        .map_err(|_| DialogError::MissingHeader("From"))?
        .value())
}

fn to_value(msg: &impl HeadersExt) -> Result<&str, DialogError> {
    Ok(msg
        .to_header()
        .map_err(|_| DialogError::MissingHeader("To"))?
        .value())
}

fn cseq_number(msg: &impl HeadersExt) -> Result<u32, DialogError> {
    msg.cseq_header()
        .map_err(|_| DialogError::MissingHeader("CSeq"))?
        .seq()
        .map_err(|_| DialogError::InvalidHeader("CSeq"))
}

/// The URI of the first Contact entry; `*` and garbage are invalid.
fn contact_uri(msg: &impl HeadersExt) -> Result<Uri, DialogError> {
    let contact = msg
        .contact_header()
        .map_err(|_| DialogError::MissingHeader("Contact"))?;
    let first = split_header_list(contact.value())
        .into_iter()
        .next()
        .ok_or(DialogError::InvalidHeader("Contact"))?;
    if first == "*" {
        return Err(DialogError::InvalidHeader("Contact"));
    }
    typed::Contact::parse(first)
        .map(|c| c.uri)
        .map_err(|_| DialogError::InvalidHeader("Contact"))
}

/// Every Record-Route entry, in message order, as written.
fn record_route(msg: &impl HeadersExt) -> Vec<String> {
    msg.record_route_headers()
        .into_iter()
        .flat_map(|rr| split_header_list(rr.value()))
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::transaction::build::build_response;
    use crate::sip::transaction::test_support::{invite, request, text};
    use rsipstack::sip::StatusCode;

    /// A response to the fixture INVITE with Contact and two Record-Routes.
    fn answer(code: u16, with_tag: bool) -> Response {
        let mut resp = build_response(&invite(), code.into(), with_tag.then_some("rtag1"));
        resp.headers
            .push(Header::RecordRoute(rsipstack::sip::RecordRoute::new(
                "<sip:p2.example.com;lr>, <sip:p1.example.com;lr>",
            )));
        resp.headers.push(Header::Contact(Contact::new(
            "\"Bob\" <sip:bob@10.0.0.5:5070;transport=udp>;expires=60",
        )));
        resp
    }

    const INBOUND: &str = concat!(
        "INVITE sip:+15550000001@127.0.0.1 SIP/2.0\r\n",
        "Via: SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bKp2\r\n",
        "Record-Route: <sip:p1.example.com;lr>\r\n",
        "Record-Route: <sip:p2.example.com;lr;ftag=a1>\r\n",
        "From: \"Alice\" <sip:+14155550101@carrier>;tag=a1\r\n",
        "To: <sip:+15550000001@127.0.0.1>\r\n",
        "Call-ID: abc@10.0.0.7\r\n",
        "CSeq: 101 INVITE\r\n",
        "Contact: <sip:alice@10.0.0.7:5062>\r\n",
        "Content-Length: 0\r\n",
        "\r\n",
    );

    #[test]
    fn uac_early_and_confirmed() {
        let early = Dialog::uac_from_response(&invite(), &answer(180, true));
        let early = match early {
            Ok(d) => d,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(early.state(), DialogState::Early);
        assert_eq!(
            early.id(),
            &DialogId {
                call_id: "cid-1@127.0.0.1".into(),
                local_tag: "ltag1".into(),
                remote_tag: "rtag1".into()
            }
        );
        assert_eq!(
            early.route_set(),
            ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]
        );
        assert_eq!(early.remote_target().to_string(), "sip:bob@10.0.0.5:5070");
        assert_eq!(early.local_cseq(), 7);
        assert_eq!(early.remote_cseq(), None);
        assert_eq!(
            early.local_uri(),
            "\"Masked\" <sip:+15550000001@127.0.0.1>;tag=ltag1"
        );
        assert_eq!(
            early.remote_uri(),
            "<sip:+15550000002@carrier.example.com>;tag=rtag1"
        );
        assert!(!early.secure());

        let mut d = early;
        let mut ok = build_response(&invite(), StatusCode::OK, Some("rtag1"));
        ok.headers
            .push(Header::Contact(Contact::new("<sip:bob@10.0.0.6>")));
        assert_eq!(d.confirm_with_response(&ok), Ok(()));
        assert_eq!(d.state(), DialogState::Confirmed);
        assert!(d.route_set().is_empty());
        assert_eq!(d.remote_target().to_string(), "sip:bob@10.0.0.6");

        let confirmed = Dialog::uac_from_response(&invite(), &answer(200, false));
        assert!(confirmed.is_ok_and(|d| d.id().remote_tag.is_empty()));
    }

    #[test]
    fn uac_rejects_what_cannot_create_a_dialog() {
        let inv = invite();
        assert_eq!(
            Dialog::uac_from_response(&inv, &answer(100, false)),
            Err(DialogError::NotDialogCreating(100))
        );
        assert_eq!(
            Dialog::uac_from_response(&inv, &answer(486, true)),
            Err(DialogError::NotDialogCreating(486))
        );
        assert_eq!(
            Dialog::uac_from_response(&inv, &answer(183, false)),
            Err(DialogError::MissingTag("To"))
        );
        let no_contact = build_response(&inv, StatusCode::OK, Some("t"));
        assert_eq!(
            Dialog::uac_from_response(&inv, &no_contact),
            Err(DialogError::MissingHeader("Contact"))
        );
        let mut star = build_response(&inv, StatusCode::OK, Some("t"));
        star.headers.push(Header::Contact(Contact::new("*")));
        assert_eq!(
            Dialog::uac_from_response(&inv, &star),
            Err(DialogError::InvalidHeader("Contact"))
        );
    }

    #[test]
    fn uas_from_request_keeps_route_order() {
        let inv = request(INBOUND);
        let d = match Dialog::uas_from_request(&inv, "ours") {
            Ok(d) => d,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(d.state(), DialogState::Early);
        assert_eq!(
            d.id(),
            &DialogId {
                call_id: "abc@10.0.0.7".into(),
                local_tag: "ours".into(),
                remote_tag: "a1".into()
            }
        );
        assert_eq!(
            d.route_set(),
            ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr;ftag=a1>"]
        );
        assert_eq!(d.local_uri(), "<sip:+15550000001@127.0.0.1>;tag=ours");
        assert_eq!(d.remote_cseq(), Some(101));
        assert_eq!(d.local_cseq(), 0);
        assert_eq!(d.remote_target().to_string(), "sip:alice@10.0.0.7:5062");

        let bye = request(concat!(
            "BYE sip:maskline@127.0.0.1 SIP/2.0\r\n",
            "Via: SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bKp3\r\n",
            "From: \"Alice\" <sip:+14155550101@carrier>;tag=a1\r\n",
            "To: <sip:+15550000001@127.0.0.1>;tag=ours\r\n",
            "Call-ID: abc@10.0.0.7\r\n",
            "CSeq: 102 BYE\r\n",
            "\r\n",
        ));
        assert_eq!(DialogId::from_incoming_request(&bye).as_ref(), Ok(d.id()));
        assert_eq!(
            DialogId::from_incoming_request(&inv),
            Err(DialogError::MissingTag("To"))
        );
    }

    #[test]
    fn uas_rejects_hostile_requests() {
        let no_call_id = request(&INBOUND.replace("Call-ID: abc@10.0.0.7\r\n", ""));
        assert_eq!(
            Dialog::uas_from_request(&no_call_id, "t"),
            Err(DialogError::MissingHeader("Call-ID"))
        );
        let bad_cseq = request(&INBOUND.replace("CSeq: 101 INVITE", "CSeq: lots INVITE"));
        assert_eq!(
            Dialog::uas_from_request(&bad_cseq, "t"),
            Err(DialogError::InvalidHeader("CSeq"))
        );
        let in_dialog = request(&INBOUND.replace("127.0.0.1>\r\n", "127.0.0.1>;tag=x\r\n"));
        assert_eq!(
            Dialog::uas_from_request(&in_dialog, "t"),
            Err(DialogError::InvalidHeader("To"))
        );
    }

    #[test]
    fn uas_new_request_starts_its_own_cseq_and_uses_routes() {
        let mut d = match Dialog::uas_from_request(&request(INBOUND), "ours") {
            Ok(d) => d,
            Err(e) => panic!("{e}"),
        };
        d.confirm();
        assert_eq!(d.state(), DialogState::Confirmed);
        let bye = d.new_request(
            Method::Bye,
            "127.0.0.1:5060",
            "UDP",
            "z9hG4bKbye1",
            None,
            None,
        );
        assert_eq!(
            text(&bye.to_bytes()),
            concat!(
                "BYE sip:alice@10.0.0.7:5062 SIP/2.0\r\n",
                "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKbye1;rport\r\n",
                "Max-Forwards: 70\r\n",
                "Route: <sip:p1.example.com;lr>\r\n",
                "Route: <sip:p2.example.com;lr;ftag=a1>\r\n",
                "From: <sip:+15550000001@127.0.0.1>;tag=ours\r\n",
                "To: \"Alice\" <sip:+14155550101@carrier>;tag=a1\r\n",
                "Call-ID: abc@10.0.0.7\r\n",
                "CSeq: 1 BYE\r\n",
                "Content-Length: 0\r\n",
                "\r\n"
            )
        );
        assert_eq!(bye.destination().to_string(), "sip:p1.example.com;lr");
    }

    #[test]
    fn uac_new_request_increments_cseq_except_ack_and_cancel() {
        let mut d = match Dialog::uac_from_response(&invite(), &answer(200, true)) {
            Ok(d) => d,
            Err(e) => panic!("{e}"),
        };
        let reinvite = d.new_request(
            Method::Invite,
            "127.0.0.1:5060",
            "TCP",
            "z9hG4bKre",
            Some("<sip:maskline@127.0.0.1:5060>"),
            Some(("application/sdp", b"v=0\r\n".to_vec())),
        );
        assert_eq!(reinvite.uri.to_string(), "sip:bob@10.0.0.5:5070");
        let wire = text(&reinvite.to_bytes());
        assert!(wire.contains("\r\nVia: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bKre;rport\r\n"));
        assert!(wire.contains("\r\nCSeq: 8 INVITE\r\n"));
        assert!(wire.contains("\r\nContact: <sip:maskline@127.0.0.1:5060>\r\n"));
        assert!(wire.ends_with("Content-Type: application/sdp\r\nContent-Length: 5\r\n\r\nv=0\r\n"));
        let routes: Vec<_> = reinvite.route_headers().iter().map(|r| r.value()).collect();
        assert_eq!(
            routes,
            ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]
        );

        let ack = d.new_request(Method::Ack, "h", "UDP", "z9hG4bKa", None, None);
        assert!(text(&ack.to_bytes()).contains("\r\nCSeq: 8 ACK\r\n"));
        let bye = d.new_request(Method::Bye, "h", "UDP", "z9hG4bKb", None, None);
        assert!(text(&bye.to_bytes()).contains("\r\nCSeq: 9 BYE\r\n"));
        assert_eq!(d.local_cseq(), 9);
    }

    #[test]
    fn ack_for_2xx_uses_the_invite_cseq_and_a_new_branch() {
        let mut d = match Dialog::uac_from_response(&invite(), &answer(200, true)) {
            Ok(d) => d,
            Err(e) => panic!("{e}"),
        };
        d.new_request(Method::Info, "h", "UDP", "z9hG4bKi", None, None);
        let ack = d.ack_for_2xx(7, "127.0.0.1:5060", "UDP", "z9hG4bKack");
        assert_eq!(
            text(&ack.to_bytes()),
            concat!(
                "ACK sip:bob@10.0.0.5:5070 SIP/2.0\r\n",
                "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKack;rport\r\n",
                "Max-Forwards: 70\r\n",
                "Route: <sip:p1.example.com;lr>\r\n",
                "Route: <sip:p2.example.com;lr>\r\n",
                "From: \"Masked\" <sip:+15550000001@127.0.0.1>;tag=ltag1\r\n",
                "To: <sip:+15550000002@carrier.example.com>;tag=rtag1\r\n",
                "Call-ID: cid-1@127.0.0.1\r\n",
                "CSeq: 7 ACK\r\n",
                "Content-Length: 0\r\n",
                "\r\n"
            )
        );
        assert_eq!(d.local_cseq(), 8);
    }

    #[test]
    fn strict_first_route_becomes_the_request_uri() {
        let mut resp = build_response(&invite(), StatusCode::OK, Some("r"));
        resp.headers
            .push(Header::RecordRoute(rsipstack::sip::RecordRoute::new(
                "<sip:loose.example.com;lr>, <sip:strict.example.com>",
            )));
        resp.headers
            .push(Header::Contact(Contact::new("<sip:bob@10.0.0.5>")));
        let mut d = match Dialog::uac_from_response(&invite(), &resp) {
            Ok(d) => d,
            Err(e) => panic!("{e}"),
        };
        let bye = d.new_request(Method::Bye, "h", "UDP", "z9hG4bKs", None, None);
        assert_eq!(bye.uri.to_string(), "sip:strict.example.com");
        let routes: Vec<_> = bye.route_headers().iter().map(|r| r.value()).collect();
        assert_eq!(routes, ["<sip:loose.example.com;lr>", "<sip:bob@10.0.0.5>"]);
    }

    #[test]
    fn remote_cseq_must_not_go_backwards() {
        let mut d = match Dialog::uas_from_request(&request(INBOUND), "ours") {
            Ok(d) => d,
            Err(e) => panic!("{e}"),
        };
        let with_cseq = |n: &str| request(&INBOUND.replace("CSeq: 101 INVITE", n));
        assert_eq!(d.check_remote_cseq(&with_cseq("CSeq: 102 BYE")), Ok(()));
        assert_eq!(d.remote_cseq(), Some(102));
        assert_eq!(d.check_remote_cseq(&with_cseq("CSeq: 102 ACK")), Ok(()));
        assert_eq!(
            d.check_remote_cseq(&with_cseq("CSeq: 100 INFO")),
            Err(DialogError::CSeqOutOfOrder {
                last: 102,
                got: 100
            })
        );
        assert_eq!(d.remote_cseq(), Some(102));

        let mut uac = match Dialog::uac_from_response(&invite(), &answer(200, true)) {
            Ok(d) => d,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(uac.check_remote_cseq(&with_cseq("CSeq: 5 BYE")), Ok(()));
        assert_eq!(uac.remote_cseq(), Some(5));
    }

    #[test]
    fn target_refresh() {
        let mut d = match Dialog::uas_from_request(&request(INBOUND), "ours") {
            Ok(d) => d,
            Err(e) => panic!("{e}"),
        };
        let reinvite = request(&INBOUND.replace("alice@10.0.0.7:5062", "alice@192.0.2.1"));
        assert_eq!(d.update_remote_target(&reinvite), Ok(()));
        assert_eq!(d.remote_target().to_string(), "sip:alice@192.0.2.1");
        let no_contact = request(&INBOUND.replace("Contact: <sip:alice@10.0.0.7:5062>\r\n", ""));
        assert_eq!(
            d.update_remote_target(&no_contact),
            Err(DialogError::MissingHeader("Contact"))
        );
        assert_eq!(d.remote_target().to_string(), "sip:alice@192.0.2.1");
    }

    #[test]
    fn incoming_response_id() {
        let id = DialogId::from_incoming_response(&answer(180, true));
        assert_eq!(
            id.map(|i| (i.local_tag, i.remote_tag)),
            Ok(("ltag1".to_string(), "rtag1".to_string()))
        );
    }
}
