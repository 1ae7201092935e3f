//! Originated calls: Maskline dials the first party, then the other.

use super::*;
use crate::b2bua::call::FirstLeg;
use crate::HangupBy;

fn first_party() -> Endpoint {
    Endpoint::udp("127.0.0.1:5070".parse().unwrap())
}

fn first_leg() -> FirstLeg {
    FirstLeg {
        number: A_NUMBER.into(),
        dest: first_party(),
        request_uri: None,
        credentials: None,
    }
}

fn originate_setup() -> CallSetup {
    let mut s = setup();
    s.b_alternatives.clear();
    s
}

/// Start an originated call; returns it with the INVITE sent to A.
fn start_originate() -> (Call, Instant, String) {
    let now = Instant::now();
    let mut call = Call::originate(originate_setup(), first_leg(), now).unwrap();
    let d = drain(&mut call);
    let a_invite = d.get(first_party(), "INVITE ");
    assert!(
        d.find(trunk(), "INVITE ").is_none(),
        "B dialled before A answered"
    );
    (call, now, a_invite)
}

/// A answers (PCMA only); returns the B-leg INVITE.
fn answer_a(call: &mut Call, now: Instant, a_invite: &str) -> (Drained, String) {
    let sdp = "v=0\r\no=a 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 7000 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n";
    let text = format!(
        "SIP/2.0 200 OK\r\nVia: {}\r\nFrom: {}\r\nTo: {};tag=a-answer\r\nCall-ID: {}\r\nCSeq: {}\r\nContact: <sip:{A_NUMBER}@127.0.0.1:5070>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        header(a_invite, "Via"),
        header(a_invite, "From"),
        header(a_invite, "To"),
        header(a_invite, "Call-ID"),
        header(a_invite, "CSeq"),
        sdp.len()
    );
    call.on_message(
        Leg::A,
        message::parse(text.as_bytes()).unwrap(),
        first_party(),
        now,
    );
    let d = drain(call);
    let b_invite = d.get(trunk(), "INVITE ");
    (d, b_invite)
}

#[test]
fn first_party_sees_only_the_masked_number_and_our_offer() {
    let (call, _, a_invite) = start_originate();
    assert!(a_invite.starts_with(&format!("INVITE sip:{A_NUMBER}@127.0.0.1:5070 ")));
    assert!(header(&a_invite, "From").contains(MASKED));
    assert!(header(&a_invite, "P-Asserted-Identity").contains(MASKED));
    assert!(
        !a_invite.contains(&B_NUMBER[1..]),
        "B's number leaked:\n{a_invite}"
    );
    assert!(
        a_invite.contains("m=audio 20000 RTP/AVP 0 8 111 101"),
        "{a_invite}"
    );
    assert_eq!(call.state_name(), "originating");
    assert_eq!(call.a_call_id(), Some(header(&a_invite, "Call-ID")));
}

#[test]
fn first_party_answers_then_the_other_is_dialled_and_bridged() {
    let (mut call, now, a_invite) = start_originate();
    call.on_message(
        Leg::A,
        b_response(&a_invite, "180 Ringing", false),
        first_party(),
        now,
    );
    assert_eq!(drain(&mut call).events, vec![CallEvent::Ringing]);

    let (d, b_invite) = answer_a(&mut call, now, &a_invite);
    assert_eq!(d.events, vec![CallEvent::Answered]);
    assert!(
        d.has(first_party(), "ACK sip:"),
        "first party's 200 not ACKed"
    );
    assert!(header(&b_invite, "From").contains(MASKED));
    assert!(
        !b_invite.contains(&A_NUMBER[1..]),
        "A's number leaked:\n{b_invite}"
    );
    // B is offered the codec A chose first, at B's relay port.
    assert!(b_invite.contains("m=audio 20002 RTP/AVP 8"), "{b_invite}");
    assert_eq!(call.state_name(), "bridging");

    call.on_message(Leg::B, b_response(&b_invite, "200 OK", true), trunk(), now);
    let d = drain(&mut call);
    assert_eq!(d.events, vec![CallEvent::Bridged]);
    assert!(d.has(trunk(), "ACK sip:"));
    assert_eq!(call.state_name(), "bridged");
    assert!(call.media_expected());
}

#[test]
fn first_party_busy_ends_the_call_without_dialling_the_other() {
    let (mut call, now, a_invite) = start_originate();
    call.on_message(
        Leg::A,
        b_response(&a_invite, "486 Busy Here", false),
        first_party(),
        now,
    );
    let d = drain(&mut call);
    assert!(d.has(first_party(), "ACK sip:"), "486 not ACKed");
    assert!(!d.has(trunk(), "INVITE "));
    match d.events.as_slice() {
        [CallEvent::Hangup {
            cause,
            sip_status: Some(486),
            by: HangupBy::A,
            answered: false,
        }] => {
            assert_eq!(cause.name, "USER_BUSY")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn first_party_no_answer_is_cancelled_at_the_ring_timeout() {
    let (mut call, now, a_invite) = start_originate();
    call.on_message(
        Leg::A,
        b_response(&a_invite, "180 Ringing", false),
        first_party(),
        now,
    );
    drain(&mut call);
    call.on_timeout(now + Duration::from_secs(61));
    let d = drain(&mut call);
    assert!(d.has(first_party(), "CANCEL sip:"), "{:#?}", d.sent);
    match d.events.as_slice() {
        [CallEvent::Hangup {
            cause,
            sip_status: Some(480),
            by: HangupBy::System,
            ..
        }] => {
            assert_eq!(cause.name, "NO_ANSWER")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn other_party_busy_hangs_up_the_first_with_the_cause() {
    let (mut call, now, a_invite) = start_originate();
    let (_, b_invite) = answer_a(&mut call, now, &a_invite);
    call.on_message(
        Leg::B,
        b_response(&b_invite, "486 Busy Here", false),
        trunk(),
        now,
    );
    let d = drain(&mut call);
    let bye = d.get(first_party(), "BYE sip:");
    assert!(header(&bye, "Reason").contains("cause=17"), "{bye}");
    match d.events.as_slice() {
        [CallEvent::Hangup {
            sip_status: Some(486),
            by: HangupBy::B,
            answered: false,
            ..
        }] => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn other_party_no_answer_cancels_it_and_hangs_up_the_first() {
    let (mut call, now, a_invite) = start_originate();
    let (_, b_invite) = answer_a(&mut call, now, &a_invite);
    call.on_message(
        Leg::B,
        b_response(&b_invite, "180 Ringing", false),
        trunk(),
        now,
    );
    drain(&mut call);
    call.on_timeout(now + Duration::from_secs(61));
    let d = drain(&mut call);
    assert!(d.has(trunk(), "CANCEL sip:"));
    assert!(d.has(first_party(), "BYE sip:"));
    match d.events.as_slice() {
        [CallEvent::Hangup {
            cause,
            by: HangupBy::System,
            ..
        }] => {
            assert_eq!(cause.name, "NO_ANSWER")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn cancel_while_the_first_party_rings_sends_cancel_once_it_rang() {
    let (mut call, now, a_invite) = start_originate();
    // Nothing heard yet: the CANCEL waits for a provisional response.
    assert!(call.hangup(
        crate::sip::q850::by_name("ORIGINATOR_CANCEL").unwrap(),
        HangupBy::Api,
        now
    ));
    let d = drain(&mut call);
    assert!(!d.has(first_party(), "CANCEL "));
    assert!(matches!(
        d.events.as_slice(),
        [CallEvent::Hangup {
            by: HangupBy::Api,
            ..
        }]
    ));
    call.on_message(
        Leg::A,
        b_response(&a_invite, "180 Ringing", false),
        first_party(),
        now,
    );
    let d = drain(&mut call);
    assert!(d.has(first_party(), "CANCEL sip:"), "{:#?}", d.sent);
    assert!(d.events.is_empty());
    // A 200 crossing the CANCEL is ACKed and hung up.
    let _ = answer_a_after_end(&mut call, now, &a_invite);
}

fn answer_a_after_end(call: &mut Call, now: Instant, a_invite: &str) -> Drained {
    let text = format!(
        "SIP/2.0 200 OK\r\nVia: {}\r\nFrom: {}\r\nTo: {};tag=late\r\nCall-ID: {}\r\nCSeq: {}\r\nContact: <sip:{A_NUMBER}@127.0.0.1:5070>\r\nContent-Length: 0\r\n\r\n",
        header(a_invite, "Via"),
        header(a_invite, "From"),
        header(a_invite, "To"),
        header(a_invite, "Call-ID"),
        header(a_invite, "CSeq"),
    );
    call.on_message(
        Leg::A,
        message::parse(text.as_bytes()).unwrap(),
        first_party(),
        now,
    );
    let d = drain(call);
    assert!(d.has(first_party(), "ACK sip:"));
    assert!(d.has(first_party(), "BYE sip:"));
    assert!(!d.has(trunk(), "INVITE "));
    d
}

#[test]
fn bye_from_the_first_party_while_the_other_rings_cancels_it() {
    let (mut call, now, a_invite) = start_originate();
    let (_, b_invite) = answer_a(&mut call, now, &a_invite);
    call.on_message(
        Leg::B,
        b_response(&b_invite, "180 Ringing", false),
        trunk(),
        now,
    );
    drain(&mut call);
    let bye = format!(
        "BYE sip:{MASKED}@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKbye1\r\nFrom: {};tag=a-answer\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
        header(&a_invite, "To"),
        header(&a_invite, "From"),
        header(&a_invite, "Call-ID"),
    );
    call.on_message(
        Leg::A,
        message::parse(bye.as_bytes()).unwrap(),
        first_party(),
        now,
    );
    let d = drain(&mut call);
    assert!(d.has(first_party(), "SIP/2.0 200 "));
    assert!(d.has(trunk(), "CANCEL sip:"));
    assert!(matches!(
        d.events.as_slice(),
        [CallEvent::Hangup {
            by: HangupBy::A,
            ..
        }]
    ));
}
