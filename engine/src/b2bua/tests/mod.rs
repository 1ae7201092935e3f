//! Whole-call scenarios on the sans-IO [`Call`] with a fake clock: the A and
//! B peers are scripted messages, outputs are inspected as wire bytes.

mod originate;

use std::time::{Duration, Instant};

use rsipstack::sip::SipMessage;

use super::outbound::LocalIdentity;
use super::*;
use crate::sip::message;
use crate::sip::transaction::TimerConfig;
use crate::sip::transport::Endpoint;

const A_NUMBER: &str = "+14155550101";
const B_NUMBER: &str = "+14155550102";
const MASKED: &str = "+15550000001";

fn a_addr() -> Endpoint {
    Endpoint::udp("127.0.0.1:5070".parse().unwrap())
}
fn trunk() -> Endpoint {
    Endpoint::udp("127.0.0.1:5080".parse().unwrap())
}
fn backup_trunk() -> Endpoint {
    Endpoint::udp("127.0.0.1:5090".parse().unwrap())
}

fn setup() -> CallSetup {
    CallSetup {
        local: LocalIdentity {
            sent_by: "127.0.0.1:5060".into(),
            public_ip: "127.0.0.1".parse().unwrap(),
        },
        masked: MASKED.into(),
        callee: B_NUMBER.into(),
        b_dest: trunk(),
        b_request_uri: None,
        b_credentials: Some(TrunkCredentials {
            username: "maskline".into(),
            password: "trunk-secret".into(),
            realm: None,
        }),
        b_alternatives: vec![crate::trunks::TrunkTarget {
            name: "backup".into(),
            endpoint: backup_trunk(),
            credentials: None,
        }],
        a_rtp_port: 20000,
        b_rtp_port: 20002,
        timers: TimerConfig::default(),
        ring_timeout: Duration::from_secs(60),
        control_timeout: None,
    }
}

fn a_invite() -> rsipstack::sip::Request {
    let sdp = format!(
        "v=0\r\no={A_NUMBER} 1 1 IN IP4 127.0.0.1\r\ns={A_NUMBER}\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 7000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
    );
    let text = format!(
        "INVITE sip:{MASKED}@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKa1;rport\r\nFrom: \"{A_NUMBER}\" <sip:{A_NUMBER}@127.0.0.1:5070>;tag=atag\r\nTo: <sip:{MASKED}@127.0.0.1>\r\nCall-ID: a-call@127.0.0.1\r\nCSeq: 1 INVITE\r\nContact: <sip:{A_NUMBER}@127.0.0.1:5070>\r\nP-Asserted-Identity: <sip:{A_NUMBER}@127.0.0.1>\r\nRemote-Party-ID: <sip:{A_NUMBER}@127.0.0.1>\r\nDiversion: <sip:{A_NUMBER}@127.0.0.1>\r\nCall-Info: <sip:{A_NUMBER}@127.0.0.1>\r\nMax-Forwards: 70\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    );
    match message::parse(text.as_bytes()).unwrap() {
        SipMessage::Request(r) => r,
        _ => unreachable!(),
    }
}

/// Everything the call sent, as (destination, text), plus events.
#[derive(Default)]
struct Drained {
    sent: Vec<(Endpoint, String)>,
    events: Vec<CallEvent>,
}

impl Drained {
    /// The first message sent to `to` that starts with `start`.
    fn find(&self, to: Endpoint, start: &str) -> Option<&String> {
        self.sent
            .iter()
            .find(|(t, m)| *t == to && m.starts_with(start))
            .map(|(_, m)| m)
    }

    /// Whether a message starting with `start` went to `to`.
    fn has(&self, to: Endpoint, start: &str) -> bool {
        self.find(to, start).is_some()
    }

    /// The message starting with `start` sent to `to` (panics if none).
    fn get(&self, to: Endpoint, start: &str) -> String {
        match self.find(to, start) {
            Some(m) => m.clone(),
            None => panic!(
                "nothing starting with {start:?} sent to {to}: {:#?}",
                self.sent
            ),
        }
    }
}

fn drain(call: &mut Call) -> Drained {
    let mut d = Drained::default();
    while let Some(out) = call.poll_output() {
        match out {
            CallOutput::Send { dest, bytes } => d
                .sent
                .push((dest, String::from_utf8_lossy(&bytes).into_owned())),
            CallOutput::Event(e) => d.events.push(e),
            CallOutput::Media(..) | CallOutput::Codecs(..) | CallOutput::Transcode(..) => {}
        }
    }
    d
}

fn header<'a>(msg: &'a str, name: &str) -> &'a str {
    msg.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .unwrap_or_else(|| panic!("no {name} in {msg}"))
}

/// B's response to the INVITE we sent it.
fn b_response(b_invite: &str, status: &str, sdp: bool) -> SipMessage {
    let body = if sdp {
        "v=0\r\no=callee 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 8000 RTP/AVP 0\r\n"
    } else {
        ""
    };
    let ct = if sdp {
        "Content-Type: application/sdp\r\n"
    } else {
        ""
    };
    let text = format!(
        "SIP/2.0 {status}\r\nVia: {}\r\nFrom: {}\r\nTo: {};tag=btag\r\nCall-ID: {}\r\nCSeq: {}\r\nContact: <sip:{B_NUMBER}@127.0.0.1:5080>\r\n{ct}Content-Length: {}\r\n\r\n{body}",
        header(b_invite, "Via"),
        header(b_invite, "From"),
        header(b_invite, "To"),
        header(b_invite, "Call-ID"),
        header(b_invite, "CSeq"),
        body.len()
    );
    message::parse(text.as_bytes()).unwrap()
}

fn start() -> (Call, Instant, String) {
    let now = Instant::now();
    let mut call = Call::new(setup(), a_invite(), a_addr(), now).unwrap();
    let d = drain(&mut call);
    assert!(d
        .sent
        .iter()
        .any(|(to, m)| *to == a_addr() && m.starts_with("SIP/2.0 100 ")));
    let b_invite = d.get(trunk(), "INVITE ");
    (call, now, b_invite)
}

#[test]
fn b_leg_invite_shows_only_the_masked_number() {
    let (_, _, b_invite) = start();
    assert!(
        !b_invite.contains(&A_NUMBER[1..]),
        "A's number leaked:\n{b_invite}"
    );
    assert!(!b_invite.contains("a-call@"), "A's Call-ID leaked");
    assert!(!b_invite.contains("atag"), "A's tag leaked");
    assert!(header(&b_invite, "From").contains(MASKED));
    assert!(header(&b_invite, "P-Asserted-Identity").contains(MASKED));
    assert!(b_invite.starts_with(&format!("INVITE sip:{B_NUMBER}@127.0.0.1:5080 ")));
    assert!(b_invite.contains("m=audio 20002 "));
}

#[test]
fn answered_call_then_bye_from_a() {
    let (mut call, now, b_invite) = start();
    call.on_message(
        Leg::B,
        b_response(&b_invite, "180 Ringing", false),
        trunk(),
        now,
    );
    let d = drain(&mut call);
    assert_eq!(d.events, vec![CallEvent::Ringing]);
    assert!(d
        .sent
        .iter()
        .any(|(to, m)| *to == a_addr() && m.starts_with("SIP/2.0 180 ")));

    call.on_message(Leg::B, b_response(&b_invite, "200 OK", true), trunk(), now);
    let d = drain(&mut call);
    assert_eq!(d.events, vec![CallEvent::Answered]);
    assert!(d
        .sent
        .iter()
        .any(|(to, m)| *to == trunk() && m.starts_with("ACK sip:")));
    let (_, ok) = d
        .sent
        .iter()
        .find(|(to, m)| *to == a_addr() && m.starts_with("SIP/2.0 200 "))
        .unwrap();
    assert!(ok.contains("m=audio 20000 "), "{ok}");
    assert!(!ok.contains("callee"), "B's SDP o= leaked: {ok}");
    let a_tag = header(ok, "To").split("tag=").nth(1).unwrap().to_string();

    let ack = format!(
        "ACK sip:{MASKED}@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKa2\r\nFrom: <sip:{A_NUMBER}@127.0.0.1:5070>;tag=atag\r\nTo: <sip:{MASKED}@127.0.0.1>;tag={a_tag}\r\nCall-ID: a-call@127.0.0.1\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
    );
    call.on_message(
        Leg::A,
        message::parse(ack.as_bytes()).unwrap(),
        a_addr(),
        now,
    );
    assert_eq!(drain(&mut call).events, vec![CallEvent::Bridged]);

    let bye = ack
        .replace("ACK sip", "BYE sip")
        .replace("CSeq: 1 ACK", "CSeq: 2 BYE")
        .replace("z9hG4bKa2", "z9hG4bKa3");
    call.on_message(
        Leg::A,
        message::parse(bye.as_bytes()).unwrap(),
        a_addr(),
        now,
    );
    let d = drain(&mut call);
    assert!(d.sent.iter().any(|(to, m)| *to == a_addr()
        && m.starts_with("SIP/2.0 200 ")
        && m.contains("CSeq: 2 BYE")));
    assert!(d
        .sent
        .iter()
        .any(|(to, m)| *to == trunk() && m.starts_with("BYE sip:")));
    assert!(matches!(
        d.events.as_slice(),
        [CallEvent::Hangup {
            by: crate::HangupBy::A,
            answered: true,
            sip_status: Some(200),
            ..
        }]
    ));
}

#[test]
fn busy_callee_is_relayed_with_reason() {
    let (mut call, now, b_invite) = start();
    call.on_message(
        Leg::B,
        b_response(&b_invite, "486 Busy Here", false),
        trunk(),
        now,
    );
    let d = drain(&mut call);
    assert!(d.has(trunk(), "ACK "), "non-2xx ACK to B");
    let (_, busy) = d
        .sent
        .iter()
        .find(|(to, m)| *to == a_addr() && m.starts_with("SIP/2.0 486 "))
        .unwrap();
    assert!(busy.contains("Reason: Q.850;cause=17"), "{busy}");
    assert!(matches!(
        d.events.as_slice(),
        [CallEvent::Hangup {
            by: crate::HangupBy::B,
            sip_status: Some(486),
            ..
        }]
    ));
}

#[test]
fn ring_timeout_cancels_b_and_answers_480() {
    let (mut call, now, b_invite) = start();
    call.on_message(
        Leg::B,
        b_response(&b_invite, "180 Ringing", false),
        trunk(),
        now,
    );
    drain(&mut call);
    call.on_timeout(now + Duration::from_secs(61));
    let d = drain(&mut call);
    assert!(d
        .sent
        .iter()
        .any(|(to, m)| *to == a_addr() && m.starts_with("SIP/2.0 480 ")));
    assert!(d
        .sent
        .iter()
        .any(|(to, m)| *to == trunk() && m.starts_with("CANCEL ")));
    assert!(matches!(
        d.events.as_slice(),
        [CallEvent::Hangup {
            answered: false,
            ..
        }]
    ));
}

#[test]
fn hangup_command_on_answered_call_sends_bye_with_reason_both_ways() {
    let (mut call, now, b_invite) = start();
    call.on_message(Leg::B, b_response(&b_invite, "200 OK", true), trunk(), now);
    drain(&mut call);
    let cause = crate::sip::q850::by_name("NORMAL_CLEARING").unwrap();
    assert!(call.hangup(cause, crate::HangupBy::Ttl, now));
    let d = drain(&mut call);
    let byes: Vec<_> = d
        .sent
        .iter()
        .filter(|(_, m)| m.starts_with("BYE "))
        .collect();
    assert_eq!(byes.len(), 2);
    assert!(byes
        .iter()
        .all(|(_, m)| m.contains("Reason: Q.850;cause=16")));
    assert!(
        !call.hangup(cause, crate::HangupBy::Ttl, now),
        "second hangup is a no-op"
    );
}

#[test]
fn cancel_from_a_before_answer_and_200_crossing_it() {
    let (mut call, now, b_invite) = start();
    call.on_message(
        Leg::B,
        b_response(&b_invite, "180 Ringing", false),
        trunk(),
        now,
    );
    drain(&mut call);
    let cancel = format!(
        "CANCEL sip:{MASKED}@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKa1;rport\r\nFrom: <sip:{A_NUMBER}@127.0.0.1:5070>;tag=atag\r\nTo: <sip:{MASKED}@127.0.0.1>\r\nCall-ID: a-call@127.0.0.1\r\nCSeq: 1 CANCEL\r\nContent-Length: 0\r\n\r\n"
    );
    call.on_message(
        Leg::A,
        message::parse(cancel.as_bytes()).unwrap(),
        a_addr(),
        now,
    );
    let d = drain(&mut call);
    assert!(d
        .sent
        .iter()
        .any(|(_, m)| m.starts_with("SIP/2.0 200 ") && m.contains("CANCEL")));
    assert!(d.sent.iter().any(|(_, m)| m.starts_with("SIP/2.0 487 ")));
    assert!(d
        .sent
        .iter()
        .any(|(to, m)| *to == trunk() && m.starts_with("CANCEL ")));
    // B's 200 crosses our CANCEL: ACK it, then BYE it.
    call.on_message(Leg::B, b_response(&b_invite, "200 OK", true), trunk(), now);
    let d = drain(&mut call);
    assert!(d
        .sent
        .iter()
        .any(|(to, m)| *to == trunk() && m.starts_with("ACK ")));
    assert!(d
        .sent
        .iter()
        .any(|(to, m)| *to == trunk() && m.starts_with("BYE ")));
}

/// Bring a call to Confirmed; returns (call, now, B's INVITE, A's tag).
fn confirmed() -> (Call, Instant, String, String) {
    let (mut call, now, b_invite) = start();
    call.on_message(Leg::B, b_response(&b_invite, "200 OK", true), trunk(), now);
    let d = drain(&mut call);
    let (_, ok) = d
        .sent
        .iter()
        .find(|(to, m)| *to == a_addr() && m.starts_with("SIP/2.0 200 "))
        .unwrap();
    let a_tag = header(ok, "To").split("tag=").nth(1).unwrap().to_string();
    let ack = format!(
        "ACK sip:{MASKED}@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKa2\r\nFrom: <sip:{A_NUMBER}@127.0.0.1:5070>;tag=atag\r\nTo: <sip:{MASKED}@127.0.0.1>;tag={a_tag}\r\nCall-ID: a-call@127.0.0.1\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
    );
    call.on_message(
        Leg::A,
        message::parse(ack.as_bytes()).unwrap(),
        a_addr(),
        now,
    );
    drain(&mut call);
    (call, now, b_invite, a_tag)
}

fn a_in_dialog(method: &str, cseq: u32, a_tag: &str, ct_body: Option<(&str, &str)>) -> SipMessage {
    let (ct, body) = ct_body
        .map(|(c, b)| (format!("Content-Type: {c}\r\n"), b.to_string()))
        .unwrap_or_default();
    let text = format!(
        "{method} sip:{MASKED}@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKm{cseq};rport\r\nFrom: <sip:{A_NUMBER}@127.0.0.1:5070>;tag=atag\r\nTo: <sip:{MASKED}@127.0.0.1>;tag={a_tag}\r\nCall-ID: a-call@127.0.0.1\r\nCSeq: {cseq} {method}\r\nContact: <sip:{A_NUMBER}@127.0.0.1:5070>\r\n{ct}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    message::parse(text.as_bytes()).unwrap()
}

/// B's final response to a request we relayed to it.
fn b_reply(req: &str, status: &str, body: Option<&str>) -> SipMessage {
    let (ct, body) = body
        .map(|b| ("Content-Type: application/sdp\r\n", b))
        .unwrap_or(("", ""));
    let text = format!(
        "SIP/2.0 {status}\r\nVia: {}\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {}\r\n{ct}Content-Length: {}\r\n\r\n{body}",
        header(req, "Via"),
        header(req, "From"),
        header(req, "To"),
        header(req, "Call-ID"),
        header(req, "CSeq"),
        body.len()
    );
    message::parse(text.as_bytes()).unwrap()
}

#[test]
fn hold_reinvite_is_relayed_with_direction_and_rewritten_sdp() {
    let (mut call, now, _, a_tag) = confirmed();
    let hold = format!(
        "v=0\r\no={A_NUMBER} 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 7000 RTP/AVP 0\r\na=sendonly\r\n"
    );
    call.on_message(
        Leg::A,
        a_in_dialog("INVITE", 2, &a_tag, Some(("application/sdp", &hold))),
        a_addr(),
        now,
    );
    let d = drain(&mut call);
    assert!(d
        .sent
        .iter()
        .any(|(to, m)| *to == a_addr() && m.starts_with("SIP/2.0 100 ")));
    let reinvite = d.get(trunk(), "INVITE ");
    assert!(reinvite.contains("a=sendonly"), "{reinvite}");
    assert!(
        reinvite.contains("m=audio 20002 "),
        "B sees its own relay port"
    );
    assert!(
        reinvite.contains("To: <sip:+14155550102@127.0.0.1:5080>;tag=btag"),
        "in B's dialog: {reinvite}"
    );
    assert!(
        !reinvite.contains(&A_NUMBER[1..]),
        "no trace of A: {reinvite}"
    );
    assert!(
        reinvite.contains("o=maskline ") && reinvite.contains(" 2 IN IP4"),
        "SDP version bumped: {reinvite}"
    );

    let answer = "v=0\r\no=callee 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 8000 RTP/AVP 0\r\na=recvonly\r\n";
    call.on_message(
        Leg::B,
        b_reply(&reinvite, "200 OK", Some(answer)),
        trunk(),
        now,
    );
    let d = drain(&mut call);
    assert!(d
        .sent
        .iter()
        .any(|(to, m)| *to == trunk() && m.starts_with("ACK ") && m.contains("CSeq: 2 ACK")));
    let ok = d.get(a_addr(), "SIP/2.0 200 ");
    assert!(
        ok.contains("a=recvonly") && ok.contains("m=audio 20000 ") && ok.contains("CSeq: 2 INVITE"),
        "{ok}"
    );

    // A's ACK stops the 200's retransmissions: nothing more is sent.
    let ack = a_in_dialog("ACK", 2, &a_tag, None);
    call.on_message(Leg::A, ack, a_addr(), now);
    call.on_timeout(now + Duration::from_secs(1));
    assert!(drain(&mut call).sent.is_empty());
}

#[test]
fn glare_gets_491_and_info_is_relayed() {
    let (mut call, now, _, a_tag) = confirmed();
    let sdp = "v=0\r\no=x 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 7000 RTP/AVP 0\r\n";
    call.on_message(
        Leg::A,
        a_in_dialog("INVITE", 2, &a_tag, Some(("application/sdp", sdp))),
        a_addr(),
        now,
    );
    drain(&mut call);
    call.on_message(
        Leg::A,
        a_in_dialog("INVITE", 3, &a_tag, Some(("application/sdp", sdp))),
        a_addr(),
        now,
    );
    let d = drain(&mut call);
    assert!(d
        .sent
        .iter()
        .any(|(to, m)| *to == a_addr() && m.starts_with("SIP/2.0 491 ")));

    let dtmf = "Signal=5\r\nDuration=160\r\n";
    call.on_message(
        Leg::A,
        a_in_dialog("INFO", 4, &a_tag, Some(("application/dtmf-relay", dtmf))),
        a_addr(),
        now,
    );
    let d = drain(&mut call);
    let info = d.get(trunk(), "INFO ");
    assert!(
        info.contains("Content-Type: application/dtmf-relay") && info.ends_with(dtmf),
        "{info}"
    );
    call.on_message(Leg::B, b_reply(&info, "200 OK", None), trunk(), now);
    let d = drain(&mut call);
    assert!(d.sent.iter().any(|(to, m)| *to == a_addr()
        && m.starts_with("SIP/2.0 200 ")
        && m.contains("CSeq: 4 INFO")));
}

#[test]
fn trunk_challenge_is_answered_once_with_credentials() {
    let (mut call, now, b_invite) = start();
    let challenge = b_response(&b_invite, "407 Proxy Authentication Required", false);
    let SipMessage::Response(mut resp) = challenge else {
        unreachable!()
    };
    resp.headers.push(rsipstack::sip::headers::make_header(
        "Proxy-Authenticate",
        "Digest realm=\"carrier\", nonce=\"abc123\", algorithm=MD5, qop=\"auth\"".into(),
    ));
    call.on_message(Leg::B, SipMessage::Response(resp.clone()), trunk(), now);
    let d = drain(&mut call);
    assert!(d.has(trunk(), "ACK "), "407 is ACKed");
    let retry = d.get(trunk(), "INVITE ");
    assert!(
        header(&retry, "Proxy-Authorization").contains("username=\"maskline\""),
        "{retry}"
    );
    assert!(retry.contains("CSeq: 2 INVITE"));
    assert_eq!(header(&retry, "Call-ID"), header(&b_invite, "Call-ID"));
    assert_ne!(
        header(&retry, "Via"),
        header(&b_invite, "Via"),
        "new branch"
    );
    assert!(
        d.sent.iter().all(|(to, _)| *to != a_addr()),
        "A sees nothing of the challenge"
    );
    // A second challenge is not answered again: A gets the failure.
    let again = b_response(&retry, "407 Proxy Authentication Required", false);
    call.on_message(Leg::B, again, trunk(), now);
    let d = drain(&mut call);
    assert!(d
        .sent
        .iter()
        .any(|(to, m)| *to == a_addr() && m.starts_with("SIP/2.0 407 ")));
}

#[test]
fn unavailable_trunk_fails_over_to_the_next() {
    let (mut call, now, b_invite) = start();
    call.on_message(
        Leg::B,
        b_response(&b_invite, "503 Service Unavailable", false),
        trunk(),
        now,
    );
    let d = drain(&mut call);
    assert!(
        d.sent.iter().all(|(to, _)| *to != a_addr()),
        "A sees nothing of the failover"
    );
    let retry = d.get(backup_trunk(), "INVITE ");
    assert!(
        retry.starts_with("INVITE sip:+14155550102@127.0.0.1:5090 "),
        "{retry}"
    );
    assert!(retry.contains("CSeq: 2 INVITE") && retry.contains("m=audio 20002 "));
    assert!(!retry.contains(&A_NUMBER[1..]));
    // The backup answers: the call proceeds normally.
    call.on_message(
        Leg::B,
        b_response(&retry, "200 OK", true),
        backup_trunk(),
        now,
    );
    let d = drain(&mut call);
    assert!(d
        .sent
        .iter()
        .any(|(to, m)| *to == backup_trunk() && m.starts_with("ACK ")));
    assert!(d
        .sent
        .iter()
        .any(|(to, m)| *to == a_addr() && m.starts_with("SIP/2.0 200 ")));
}

#[test]
fn session_timer_confirmed_and_enforced() {
    let now = Instant::now();
    let mut invite = a_invite();
    for (n, v) in [("Session-Expires", "90"), ("Supported", "timer")] {
        invite
            .headers
            .push_front(rsipstack::sip::headers::make_header(n, v.into()));
    }
    let mut call = Call::new(setup(), invite, a_addr(), now).unwrap();
    let d = drain(&mut call);
    let b_invite = d.get(trunk(), "INVITE ");
    assert!(
        !b_invite.contains("Session-Expires"),
        "the B leg carries no timer of A's"
    );
    call.on_message(Leg::B, b_response(&b_invite, "200 OK", true), trunk(), now);
    let d = drain(&mut call);
    let ok = d.get(a_addr(), "SIP/2.0 200 ");
    assert_eq!(header(&ok, "Session-Expires"), "90;refresher=uac");
    assert_eq!(header(&ok, "Require"), "timer");
    let a_tag = header(&ok, "To").split("tag=").nth(1).unwrap().to_string();
    call.on_message(Leg::A, a_in_dialog("ACK", 1, &a_tag, None), a_addr(), now);
    drain(&mut call);
    // No refresh: before the 90 s run out (at 60 s) both legs get a BYE.
    call.on_timeout(now + Duration::from_secs(59));
    assert!(drain(&mut call)
        .sent
        .iter()
        .all(|(_, m)| !m.starts_with("BYE ")));
    call.on_timeout(now + Duration::from_secs(60));
    let d = drain(&mut call);
    assert_eq!(
        d.sent.iter().filter(|(_, m)| m.starts_with("BYE ")).count(),
        2
    );
    assert!(matches!(
        d.events.as_slice(),
        [CallEvent::Hangup {
            by: crate::HangupBy::System,
            ..
        }]
    ));
}

fn start_held() -> (Call, Instant) {
    let now = Instant::now();
    let mut s = setup();
    s.control_timeout = Some(Duration::from_secs(10));
    let mut call = Call::new(s, a_invite(), a_addr(), now).unwrap();
    let d = drain(&mut call);
    assert!(d.has(a_addr(), "SIP/2.0 180 "), "caller hears ringing");
    assert!(
        d.sent.iter().all(|(to, _)| *to != trunk()),
        "no B leg while held"
    );
    assert_eq!(call.state_name(), "held");
    (call, now)
}

#[test]
fn control_mode_answer_then_disconnect_bridges_without_reanswering_a() {
    let (mut call, now) = start_held();
    assert_eq!(call.answer(now), call::AnswerOutcome::Pending);
    let d = drain(&mut call);
    let ok = d.get(a_addr(), "SIP/2.0 200 ");
    assert!(
        ok.contains("m=audio 20000 ") && !ok.contains(&B_NUMBER[1..]),
        "{ok}"
    );
    let a_tag = header(&ok, "To").split("tag=").nth(1).unwrap().to_string();
    call.on_message(Leg::A, a_in_dialog("ACK", 1, &a_tag, None), a_addr(), now);
    assert_eq!(drain(&mut call).events, vec![CallEvent::Answered]);
    assert_eq!(call.answer(now), call::AnswerOutcome::Done);
    assert_eq!(call.state_name(), "answered");

    call.disconnect(crate::HangupBy::Api, now).unwrap();
    let d = drain(&mut call);
    let b_invite = d.get(trunk(), "INVITE ");
    assert!(header(&b_invite, "From").contains(MASKED));
    call.on_message(Leg::B, b_response(&b_invite, "200 OK", true), trunk(), now);
    let d = drain(&mut call);
    assert!(d
        .sent
        .iter()
        .any(|(to, m)| *to == trunk() && m.starts_with("ACK ")));
    assert!(
        d.sent.iter().all(|(to, _)| *to != a_addr()),
        "A is not answered twice"
    );
    assert_eq!(d.events, vec![CallEvent::Bridged]);
    assert_eq!(call.state_name(), "bridged");
    // Now disconnect hangs the bridged call up.
    call.disconnect(crate::HangupBy::Api, now).unwrap();
    let d = drain(&mut call);
    assert_eq!(
        d.sent.iter().filter(|(_, m)| m.starts_with("BYE ")).count(),
        2
    );
    assert!(call.disconnect(crate::HangupBy::Api, now).is_err());
}

#[test]
fn control_mode_hangup_with_cause_and_timeout_to_default_routing() {
    let (mut call, now) = start_held();
    let busy = crate::sip::q850::by_name("USER_BUSY").unwrap();
    assert!(call.hangup(busy, crate::HangupBy::Api, now));
    let d = drain(&mut call);
    let resp = d.get(a_addr(), "SIP/2.0 486 ");
    assert!(resp.contains("Reason: Q.850;cause=17"), "{resp}");

    let (mut call, now) = start_held();
    assert_eq!(call.poll_timeout(), Some(now + Duration::from_secs(10)));
    call.on_timeout(now + Duration::from_secs(10));
    let d = drain(&mut call);
    assert!(d.has(trunk(), "INVITE "), "default routing dials B");
    assert_eq!(call.state_name(), "bridging");
    assert_eq!(call.answer(now), call::AnswerOutcome::Invalid("bridging"));
}

#[test]
fn opus_caller_and_pcmu_callee_get_a_transcoding_plan() {
    let now = Instant::now();
    let sdp = "v=0\r\no=x 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 7000 RTP/AVP 111\r\na=rtpmap:111 opus/48000/2\r\n";
    let mut invite = a_invite();
    invite.body = sdp.as_bytes().to_vec();
    let mut call = Call::new(setup(), invite, a_addr(), now).unwrap();
    let d = drain(&mut call);
    let b_invite = d.get(trunk(), "INVITE ");
    assert!(
        b_invite.contains("m=audio 20002 RTP/AVP 111 0 8\r\n"),
        "{b_invite}"
    );
    // b_response answers with PCMU (PT 0).
    call.on_message(Leg::B, b_response(&b_invite, "200 OK", true), trunk(), now);
    let mut plan = None;
    let mut ok = None;
    while let Some(out) = call.poll_output() {
        match out {
            CallOutput::Transcode(p) => plan = Some(p),
            CallOutput::Send { dest, bytes } if dest == a_addr() => {
                ok = Some(String::from_utf8_lossy(&bytes).into_owned())
            }
            _ => {}
        }
    }
    let plan = plan.expect("a transcoding plan");
    assert_eq!((plan.a.0, plan.b.0), (111, 0));
    let ok = ok.unwrap();
    assert!(
        ok.contains("m=audio 20000 RTP/AVP 111\r\n")
            && ok.contains("opus/48000/2")
            && !ok.contains("PCMU"),
        "{ok}"
    );
}
