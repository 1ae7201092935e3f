//! The registrar's location service (RFC 3261 §10.3), sans-IO: bindings of
//! a softphone user (its E.164 username) to contacts, with expiry. Wall time
//! is passed in as unix seconds because bindings survive a restart (the
//! control plane stores them and restores them at start).

use std::collections::HashMap;

use rsipstack::sip::prelude::*;
use rsipstack::sip::Request;

use super::message;
use super::transport::Endpoint;

/// Shortest registration accepted (`423 Interval Too Brief` below it).
pub const MIN_EXPIRES: u64 = 60;
/// Longest registration granted.
pub const MAX_EXPIRES: u64 = 7200;
/// Registration length when the request names none.
pub const DEFAULT_EXPIRES: u64 = 3600;
/// Contacts kept per user at most.
pub const MAX_CONTACTS: usize = 10;

/// One contact of a user.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Binding {
    /// The Contact URI as registered (`sip:alice@192.168.1.5:5060;transport=tcp`).
    pub contact: String,
    /// Where the REGISTER came from: requests to this contact go there, so
    /// a softphone behind NAT is reachable through its own pinhole (or over
    /// its own TCP connection).
    pub source: Endpoint,
    /// Unix time the binding expires.
    pub expires_at: u64,
    /// Call-ID of the REGISTER that created it.
    pub call_id: String,
    /// CSeq of the last REGISTER that refreshed it.
    pub cseq: u32,
}

/// Why a REGISTER is refused.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RegisterError {
    /// Requested expiry below [`MIN_EXPIRES`] → 423 with `Min-Expires`.
    #[error("interval too brief")]
    IntervalTooBrief,
    /// A Contact could not be read, or `*` was used without `Expires: 0` → 400.
    #[error("bad Contact")]
    BadContact,
    /// A retransmitted or reordered REGISTER (CSeq not newer) → 500.
    #[error("out-of-order REGISTER")]
    OutOfOrder,
    /// Too many contacts for one user → 403.
    #[error("too many contacts")]
    TooManyContacts,
}

impl RegisterError {
    /// SIP status to answer with.
    pub fn status(&self) -> u16 {
        match self {
            RegisterError::IntervalTooBrief => 423,
            RegisterError::BadContact => 400,
            RegisterError::OutOfOrder => 500,
            RegisterError::TooManyContacts => 403,
        }
    }
}

/// All users' bindings.
#[derive(Debug, Default)]
pub struct Registrar {
    users: HashMap<String, Vec<Binding>>,
}

impl Registrar {
    /// An empty registrar.
    pub fn new() -> Self {
        Self::default()
    }

    /// Apply an (authenticated) REGISTER of `user` received from `source`.
    /// Returns the user's bindings afterwards (for the 200 OK and the store).
    pub fn register(
        &mut self,
        user: &str,
        req: &Request,
        source: Endpoint,
        now_unix: u64,
    ) -> Result<Vec<Binding>, RegisterError> {
        let call_id = message::call_id(req).unwrap_or_default().to_string();
        let cseq = message::cseq(req).map(|(n, _)| n).unwrap_or(0);
        let header_expires = req
            .header_value("Expires")
            .and_then(|v| v.trim().parse::<u64>().ok());
        let contacts: Vec<String> = req
            .headers
            .iter()
            .filter(|h| matches!(h, rsipstack::sip::Header::Contact(_)))
            .flat_map(|h| split_contacts(h.value()))
            .collect();
        self.expire_user(user, now_unix);
        let list = self.users.entry(user.to_string()).or_default();
        if contacts.iter().any(|c| c.trim() == "*") {
            if contacts.len() != 1 || header_expires != Some(0) {
                return Err(RegisterError::BadContact);
            }
            list.clear();
            return Ok(Vec::new());
        }
        // Validate everything before changing anything.
        let mut updates = Vec::new();
        for c in &contacts {
            // Keep the URI as registered (parsed only to validate it).
            let (raw, _) = message::split_name_addr(c).ok_or(RegisterError::BadContact)?;
            rsipstack::sip::Uri::try_from(raw).map_err(|_| RegisterError::BadContact)?;
            let uri = raw.to_string();
            let expires = contact_param(c, "expires")
                .and_then(|v| v.parse::<u64>().ok())
                .or(header_expires)
                .unwrap_or(DEFAULT_EXPIRES);
            if expires != 0 && expires < MIN_EXPIRES {
                return Err(RegisterError::IntervalTooBrief);
            }
            if let Some(old) = list.iter().find(|b| b.contact == uri) {
                if old.call_id == call_id && cseq <= old.cseq {
                    return Err(RegisterError::OutOfOrder);
                }
            }
            updates.push((uri, expires.min(MAX_EXPIRES)));
        }
        for (uri, expires) in updates {
            list.retain(|b| b.contact != uri);
            if expires > 0 {
                list.push(Binding {
                    contact: uri,
                    source,
                    expires_at: now_unix + expires,
                    call_id: call_id.clone(),
                    cseq,
                });
            }
        }
        if list.len() > MAX_CONTACTS {
            // Keep the newest.
            let excess = list.len() - MAX_CONTACTS;
            list.drain(..excess);
            return Err(RegisterError::TooManyContacts);
        }
        Ok(list.clone())
    }

    /// Live bindings of `user`, most recently registered first.
    pub fn lookup(&self, user: &str, now_unix: u64) -> Vec<Binding> {
        let mut v: Vec<Binding> = self
            .users
            .get(user)
            .map(|l| {
                l.iter()
                    .filter(|b| b.expires_at > now_unix)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        v.reverse();
        v
    }

    /// Every live binding of every user.
    pub fn all(&self, now_unix: u64) -> Vec<Binding> {
        self.users
            .values()
            .flatten()
            .filter(|b| b.expires_at > now_unix)
            .cloned()
            .collect()
    }

    /// Put back bindings loaded from the store.
    pub fn restore(&mut self, user: &str, bindings: Vec<Binding>) {
        self.users.insert(user.to_string(), bindings);
    }

    /// Drop expired bindings; returns the users whose bindings changed.
    pub fn expire(&mut self, now_unix: u64) -> Vec<String> {
        let mut changed = Vec::new();
        for (user, list) in self.users.iter_mut() {
            let before = list.len();
            list.retain(|b| b.expires_at > now_unix);
            if list.len() != before {
                changed.push(user.clone());
            }
        }
        self.users.retain(|_, l| !l.is_empty());
        changed
    }

    fn expire_user(&mut self, user: &str, now_unix: u64) {
        if let Some(l) = self.users.get_mut(user) {
            l.retain(|b| b.expires_at > now_unix);
        }
    }
}

/// The `Contact` header value of a 200 OK to REGISTER: every binding with
/// its remaining time.
pub fn contact_list(bindings: &[Binding], now_unix: u64) -> Vec<String> {
    bindings
        .iter()
        .map(|b| {
            format!(
                "<{}>;expires={}",
                b.contact,
                b.expires_at.saturating_sub(now_unix)
            )
        })
        .collect()
}

/// Split a Contact header value on commas outside `<>` and quotes.
fn split_contacts(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (mut depth, mut quoted, mut cur) = (0i32, false, String::new());
    for ch in value.chars() {
        match ch {
            '"' => quoted = !quoted,
            '<' if !quoted => depth += 1,
            '>' if !quoted => depth -= 1,
            ',' if !quoted && depth == 0 => {
                out.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(ch);
    }
    out.push(cur);
    out.into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// A header parameter after the name-addr (`<sip:x>;expires=60` → `60`).
fn contact_param(contact: &str, name: &str) -> Option<String> {
    let (_, params) = message::split_name_addr(contact)?;
    message::split_params(params).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().trim_matches('"').to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsipstack::sip::SipMessage;

    fn register(contact: &str, expires: Option<u64>, cseq: u32) -> Request {
        let exp = expires
            .map(|e| format!("Expires: {e}\r\n"))
            .unwrap_or_default();
        let text = format!(
            "REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 192.168.1.5:5060;branch=z9hG4bKr{cseq}\r\nFrom: <sip:+14155550101@127.0.0.1>;tag=f\r\nTo: <sip:+14155550101@127.0.0.1>\r\nCall-ID: reg-1\r\nCSeq: {cseq} REGISTER\r\nContact: {contact}\r\n{exp}Content-Length: 0\r\n\r\n"
        );
        match message::parse(text.as_bytes()).unwrap() {
            SipMessage::Request(r) => r,
            _ => unreachable!(),
        }
    }

    fn src() -> Endpoint {
        Endpoint::udp("203.0.113.7:40000".parse().unwrap())
    }

    #[test]
    fn register_refresh_and_unregister() {
        let mut r = Registrar::new();
        let b = r
            .register(
                "+14155550101",
                &register("<sip:alice@192.168.1.5:5060>", Some(120), 1),
                src(),
                1000,
            )
            .unwrap();
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].expires_at, 1120);
        assert_eq!(b[0].source, src(), "NATed source kept");
        assert_eq!(r.lookup("+14155550101", 1100).len(), 1);
        assert!(r.lookup("+14155550101", 1120).is_empty(), "expired");
        // Refresh with a second contact via the param.
        r.register(
            "+14155550101",
            &register("<sip:alice@192.168.1.5:5060>", Some(120), 2),
            src(),
            1000,
        )
        .unwrap();
        let b = r
            .register(
                "+14155550101",
                &register("<sip:alice@10.0.0.9:5062>;expires=300", None, 3),
                src(),
                1000,
            )
            .unwrap();
        assert_eq!(b.len(), 2);
        assert_eq!(
            r.lookup("+14155550101", 1000)[0].contact,
            "sip:alice@10.0.0.9:5062"
        );
        // Unregister one, then all.
        let b = r
            .register(
                "+14155550101",
                &register("<sip:alice@10.0.0.9:5062>", Some(0), 4),
                src(),
                1000,
            )
            .unwrap();
        assert_eq!(b.len(), 1);
        assert!(r
            .register("+14155550101", &register("*", Some(0), 5), src(), 1000)
            .unwrap()
            .is_empty());
        assert!(r.lookup("+14155550101", 1000).is_empty());
    }

    #[test]
    fn instance_id_with_angle_brackets_keeps_uri_and_expires() {
        let mut r = Registrar::new();
        let c = "<sip:+14155550101@127.0.0.1:5062;transport=tcp>;expires=300;+sip.instance=\"<urn:uuid:1234>\"";
        let b = r.register("u", &register(c, None, 1), src(), 0).unwrap();
        assert_eq!(
            b[0].contact,
            "sip:+14155550101@127.0.0.1:5062;transport=tcp"
        );
        assert_eq!(b[0].expires_at, 300);
    }

    #[test]
    fn refusals() {
        let mut r = Registrar::new();
        let e = r
            .register("u", &register("<sip:a@h>", Some(10), 1), src(), 0)
            .unwrap_err();
        assert_eq!(e.status(), 423);
        assert_eq!(
            r.register("u", &register("*", Some(60), 1), src(), 0)
                .unwrap_err()
                .status(),
            400
        );
        r.register("u", &register("<sip:a@h>", Some(60), 5), src(), 0)
            .unwrap();
        assert_eq!(
            r.register("u", &register("<sip:a@h>", Some(60), 5), src(), 0)
                .unwrap_err()
                .status(),
            500
        );
    }

    #[test]
    fn expiry_and_contact_list() {
        let mut r = Registrar::new();
        let b = r
            .register(
                "u",
                &register("<sip:a@h>, \"x,y\" <sip:b@h>", Some(100), 1),
                src(),
                0,
            )
            .unwrap();
        assert_eq!(b.len(), 2);
        assert_eq!(
            contact_list(&b, 40),
            vec!["<sip:a@h>;expires=60", "<sip:b@h>;expires=60"]
        );
        assert_eq!(r.expire(200), vec!["u".to_string()]);
        assert!(r.lookup("u", 0).is_empty());
    }
}
