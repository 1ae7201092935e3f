//! Route decision: what the dispatcher does with an inbound INVITE, from
//! the wire to `RouteTable::decide`, must never panic, and the decision
//! must follow the rules: no route → `NoRoute`; a caller that is neither
//! party → `NotAParty`; otherwise dial the *other* party of the route that
//! holds the dialled number.
//!
//! Input: a SIP message (the dispatcher's path: Request-URI user and
//! caller identity, E.164-normalised), or, when it does not parse, two
//! strings split at the first `\n` (dialled, caller) fed to `decide`
//! directly, so the normaliser sees raw bytes too.

#![no_main]

use std::time::SystemTime;

use libfuzzer_sys::fuzz_target;
use maskline_engine::sip::{e164, message};
use maskline_engine::{Route, RouteDecision, RouteTable};
use rsipstack::sip::SipMessage;

/// Sessions of the table: (masked, party A, party B). The second shares
/// party A with the first, the third is written without `+` to exercise
/// the normalisation of keys.
const ROUTES: [(&str, &str, &str); 3] = [
    ("+15550000001", "+14155550101", "+14155550202"),
    ("+15550000002", "+14155550101", "+14155550303"),
    ("15550000003", "+442079460000", "+4915112345678"),
];

fn table() -> RouteTable {
    let t = RouteTable::new();
    for (i, (masked, a, b)) in ROUTES.iter().enumerate() {
        t.upsert(Route {
            session_id: format!("ses_{i}"),
            tenant_id: "ten_fuzz".into(),
            masked: (*masked).into(),
            party_a: (*a).into(),
            party_b: (*b).into(),
            record: i % 2 == 0,
            control: false,
            expires_at: SystemTime::UNIX_EPOCH,
        });
    }
    t
}

fn check(table: &RouteTable, dialled: &str, caller: &str) {
    let decision = table.decide(dialled, caller);
    let expected_route = e164::normalize(dialled).and_then(|d| {
        ROUTES
            .iter()
            .position(|(m, _, _)| e164::normalize(m).as_deref() == Some(d.as_str()))
    });
    match (&decision, expected_route) {
        (RouteDecision::NoRoute, None) => {}
        (RouteDecision::NoRoute, Some(i)) => {
            panic!("{dialled:?} is session {i}'s number but got NoRoute")
        }
        (_, None) => panic!("{dialled:?} holds no route but got {decision:?}"),
        (RouteDecision::NotAParty, Some(i)) => {
            let (_, a, b) = ROUTES[i];
            let c = e164::normalize(caller);
            assert!(
                c.as_deref() != Some(a) && c.as_deref() != Some(b),
                "caller {caller:?} is a party of session {i} but got NotAParty"
            );
        }
        (
            RouteDecision::Dial {
                route,
                caller: who,
                callee,
            },
            Some(i),
        ) => {
            let (_, a, b) = ROUTES[i];
            assert_eq!(route.session_id, format!("ses_{i}"));
            assert_eq!(Some(who.as_str()), e164::normalize(caller).as_deref());
            let other = if who == a {
                b
            } else {
                assert_eq!(who, b, "the caller of a Dial is a party");
                a
            };
            assert_eq!(callee, other, "dial the other party");
            assert_ne!(callee, who, "never call the caller back");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let table = table();
    match message::parse(data) {
        Ok(SipMessage::Request(req)) => {
            // As the dispatcher does: a missing user is a 404 before any
            // routing; a caller that is no number cannot be a party.
            let Some(dialled) = message::uri_user(&req.uri).and_then(|u| e164::normalize(&u))
            else {
                return;
            };
            let caller = message::caller_identity(&req).unwrap_or_default();
            check(&table, &dialled, &caller);
        }
        Ok(SipMessage::Response(_)) => {}
        Err(_) => {
            let text = String::from_utf8_lossy(data);
            let (dialled, caller) = text.split_once('\n').unwrap_or((&text, ""));
            check(&table, dialled, caller);
        }
    }
});
