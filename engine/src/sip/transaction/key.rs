//! The transaction key: top-Via branch + method (RFC 3261 §17.1.3, §17.2.3).

use rsipstack::sip::prelude::*;
use rsipstack::sip::{typed, Method, Request, Response};

use super::TsxError;

/// Identifies a transaction: the top Via `branch` and the method.
///
/// `ACK` maps to `INVITE`, so the ACK for a non-2xx final finds its INVITE
/// server transaction (§17.2.3). The ACK for a 2xx carries a new branch
/// and so matches nothing: it belongs to the dialog. `CANCEL` keeps its own
/// method: it is a separate transaction sharing the INVITE's branch.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TsxKey {
    /// The `branch` parameter of the top Via, as received (case kept).
    pub branch: String,
    /// The transaction's method (`INVITE` for an ACK).
    pub method: Method,
}

impl TsxKey {
    /// The key of a request: its top Via branch and its method.
    pub fn from_request(req: &Request) -> Result<Self, TsxError> {
        Ok(TsxKey {
            branch: top_branch(req)?,
            method: key_method(req.method),
        })
    }

    /// The key of a response: its top Via branch and its CSeq method.
    pub fn from_response(resp: &Response) -> Result<Self, TsxError> {
        let method = resp
            .cseq_header()
            .map_err(|_| TsxError::MissingHeader("CSeq"))?
            .method()
            .map_err(|_| TsxError::InvalidHeader("CSeq"))?;
        Ok(TsxKey {
            branch: top_branch(resp)?,
            method: key_method(method),
        })
    }
}

fn key_method(method: Method) -> Method {
    match method {
        Method::Ack => Method::Invite,
        other => other,
    }
}

fn top_branch(msg: &impl HeadersExt) -> Result<String, TsxError> {
    let via = msg
        .via_header()
        .map_err(|_| TsxError::MissingHeader("Via"))?
        .first_value()
        .map_err(|_| TsxError::InvalidHeader("Via"))?;
    let typed: typed::Via = via.typed().map_err(|_| TsxError::InvalidHeader("Via"))?;
    match typed.branch() {
        Some(b) if !b.value().is_empty() => Ok(b.value().to_string()),
        _ => Err(TsxError::MissingBranch),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::transaction::test_support::{invite, request, response};

    #[test]
    fn request_and_response_keys_match() {
        let inv = invite();
        let key = TsxKey::from_request(&inv);
        assert_eq!(
            key,
            Ok(TsxKey {
                branch: "z9hG4bKclient1".into(),
                method: Method::Invite
            })
        );
        assert_eq!(TsxKey::from_response(&response(&inv, 180)), key);
    }

    #[test]
    fn ack_maps_to_invite_and_cancel_does_not() {
        let ack = request(concat!(
            "ACK sip:b@example.com SIP/2.0\r\n",
            "Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKx, SIP/2.0/UDP 10.0.0.2;branch=z9hG4bKy\r\n",
            "CSeq: 1 ACK\r\n",
            "\r\n"
        ));
        let key = TsxKey::from_request(&ack);
        assert_eq!(
            key,
            Ok(TsxKey {
                branch: "z9hG4bKx".into(),
                method: Method::Invite
            })
        );
        let cancel = request(concat!(
            "CANCEL sip:b@example.com SIP/2.0\r\n",
            "Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKx\r\n",
            "\r\n"
        ));
        assert_eq!(
            TsxKey::from_request(&cancel).map(|k| k.method),
            Ok(Method::Cancel)
        );
    }

    #[test]
    fn hostile_input_is_an_error() {
        let no_via = request("OPTIONS sip:a@b SIP/2.0\r\nCSeq: 1 OPTIONS\r\n\r\n");
        assert_eq!(
            TsxKey::from_request(&no_via),
            Err(TsxError::MissingHeader("Via"))
        );
        let no_branch = request("OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h:5060\r\n\r\n");
        assert_eq!(
            TsxKey::from_request(&no_branch),
            Err(TsxError::MissingBranch)
        );
        let garbage = request("OPTIONS sip:a@b SIP/2.0\r\nVia: garbage\r\n\r\n");
        assert_eq!(
            TsxKey::from_request(&garbage),
            Err(TsxError::InvalidHeader("Via"))
        );
        let mut resp = response(&invite(), 200);
        resp.headers
            .retain(|h| !matches!(h, rsipstack::sip::Header::CSeq(_)));
        assert_eq!(
            TsxKey::from_response(&resp),
            Err(TsxError::MissingHeader("CSeq"))
        );
    }
}
