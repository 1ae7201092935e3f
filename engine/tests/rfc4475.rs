//! RFC 4475, the SIP torture test messages: each message of the RFC's
//! bit-exact archive (`tests/rfc4475/*.dat`) is handled as the RFC says.
//!
//! - Parser: the valid messages (§3.1.1) parse and their tricky fields read
//!   right; the invalid ones (§3.1.2) are rejected, except where the RFC
//!   lets a liberal element accept them (noted per case); the transaction
//!   and application-layer cases (§3.2–3.4) parse or are refused as noted.
//! - SIP port: a real engine on loopback gets each message in one UDP
//!   datagram and answers it as the RFC asks (400, 416, 420, 501, 505, …)
//!   or drops it (responses to nothing, unaddressable requests). A probe
//!   OPTIONS after each message marks where its answers end: the engine
//!   handles datagrams in order, so nothing sent after the probe's 200 can
//!   belong to the message (no sleeps, no timing guesses).
//!
//! `longreq` (valid) and `inv2543` (RFC 2543 compatibility) have a top Via
//! without a branch: the parser derives one from what RFC 3261 §17.2.3
//! matches such requests on, so they are processed like any other (404 here:
//! no session holds their number).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use bytes::BytesMut;
use maskline_engine::sip::framing::{self, FramingError, Limits};
use maskline_engine::sip::message::{self, MessageError};
use rsipstack::sip::prelude::*;
use rsipstack::sip::{Method, SipMessage};
use tokio::net::UdpSocket;

/// What the parser must do with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Parse {
    /// `message::parse` accepts it.
    Ok,
    /// `message::parse` rejects it.
    Rejected,
}

/// What the SIP port must answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wire {
    /// A final response with this status.
    Status(u16),
    /// Nothing at all.
    Dropped,
}

use Parse::{Ok as Parses, Rejected};
use Wire::{Dropped, Status};

/// Every message of the archive: name, RFC section, parser verdict, answer.
const CASES: &[(&str, &str, Parse, Wire)] = &[
    // 3.1.1 Valid messages. INVITEs to a user that is not a number get 404
    // (RFC 3261 §8.2.2.1): they were understood.
    // wsinv carries a To tag: a request inside a dialog Maskline does not
    // know, answered 481 (RFC 3261 §12.2.2) once its tag is read through
    // the LWS around `;` and `=`.
    ("wsinv", "3.1.1.1", Parses, Status(481)),
    ("intmeth", "3.1.1.2", Rejected, Status(501)), // unknown method
    ("esc01", "3.1.1.3", Parses, Status(404)),
    ("escnull", "3.1.1.4", Parses, Status(401)), // REGISTER: challenged
    ("esc02", "3.1.1.5", Rejected, Status(501)), // RE%47IST%45R is no REGISTER
    ("lwsdisp", "3.1.1.6", Parses, Status(200)),
    ("longreq", "3.1.1.7", Parses, Status(404)), // RFC 2543 Via: branch derived
    ("dblreq", "3.1.1.8", Parses, Status(401)),  // one answer: the REGISTER's
    ("semiuri", "3.1.1.9", Parses, Status(200)),
    ("transports", "3.1.1.10", Parses, Status(200)),
    ("mpart01", "3.1.1.11", Parses, Status(405)), // MESSAGE is not ours
    ("unreason", "3.1.1.12", Parses, Dropped),    // a response to nothing
    ("noreason", "3.1.1.13", Parses, Dropped),
    // 3.1.2 Invalid messages.
    ("badinv01", "3.1.2.1", Rejected, Status(400)),
    ("clerr", "3.1.2.2", Rejected, Status(400)),
    ("ncl", "3.1.2.3", Rejected, Status(400)),
    ("scalar02", "3.1.2.4", Rejected, Status(400)),
    ("scalarlg", "3.1.2.5", Rejected, Dropped), // a response: drop it
    ("quotbal", "3.1.2.6", Rejected, Status(400)),
    ("ltgtruri", "3.1.2.7", Rejected, Status(400)),
    ("lwsruri", "3.1.2.8", Rejected, Status(400)),
    ("lwsstart", "3.1.2.9", Rejected, Status(400)),
    ("trws", "3.1.2.10", Rejected, Status(400)),
    // "An element could choose to be liberal … and ignore the escaped
    // headers": they never reach the outbound leg, built from scratch.
    ("escruri", "3.1.2.11", Parses, Status(404)),
    // "could ignore this value altogether if it wasn't going to use the
    // Date header field anyway": Maskline never reads Date.
    ("baddate", "3.1.2.12", Parses, Status(404)),
    // "could infer the angle brackets since there is no ambiguity".
    ("regbadct", "3.1.2.13", Parses, Status(401)),
    // "Elements attempting to be liberal may ignore the spaces".
    ("badaspec", "3.1.2.14", Parses, Status(200)),
    ("baddn", "3.1.2.15", Rejected, Status(400)),
    ("badvers", "3.1.2.16", Rejected, Status(505)),
    ("mismatch01", "3.1.2.17", Rejected, Status(400)),
    ("mismatch02", "3.1.2.18", Rejected, Status(400)), // 400 before 501
    ("bigcode", "3.1.2.19", Rejected, Dropped),
    // 3.2 Transaction layer: "could reject the request with a 400".
    ("badbranch", "3.2.1", Rejected, Status(400)),
    // 3.3 Application layer. insuf has no From, To or Call-ID: no response
    // can be addressed, so it is dropped ("must not break").
    ("insuf", "3.3.1", Rejected, Dropped),
    ("unkscm", "3.3.2", Parses, Status(416)),
    ("novelsc", "3.3.3", Parses, Status(416)),
    ("unksm2", "3.3.4", Parses, Status(400)), // AOR is not a SIP URI
    ("bext01", "3.3.5", Parses, Status(420)),
    ("invut", "3.3.6", Parses, Status(404)), // user before body (§8.2.2)
    ("regaut01", "3.3.7", Parses, Status(401)), // unknown scheme: challenge
    ("multi01", "3.3.8", Rejected, Status(400)),
    ("mcl01", "3.3.9", Rejected, Status(400)),
    ("bcast", "3.3.10", Parses, Dropped), // a response to nothing
    ("zeromf", "3.3.11", Parses, Status(200)), // an endpoint answers it
    ("cparam01", "3.3.12", Parses, Status(401)),
    ("cparam02", "3.3.13", Parses, Status(401)),
    ("regescrt", "3.3.14", Parses, Status(401)),
    ("sdp01", "3.3.15", Parses, Status(404)),
    // 3.4 Backward compatibility: deviation, no Via branch.
    ("inv2543", "3.4.1", Parses, Status(404)), // accepted (RFC 2543 matching)
    // In the archive, referenced by no section: no SIP version, a header
    // line without a colon.
    ("test", "-", Rejected, Dropped),
];

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/rfc4475")
}

fn load(name: &str) -> Vec<u8> {
    let path = dir().join(format!("{name}.dat"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn parsed(name: &str) -> SipMessage {
    match message::parse(&load(name)) {
        Ok(m) => m,
        Err(e) => panic!("{name} must parse: {e}"),
    }
}

fn request(name: &str) -> rsipstack::sip::Request {
    match parsed(name) {
        SipMessage::Request(r) => r,
        SipMessage::Response(_) => panic!("{name} is a request"),
    }
}

#[test]
fn every_archive_file_has_a_case_and_every_case_a_file() {
    let mut files: Vec<String> = std::fs::read_dir(dir())
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "dat"))
                .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    let mut cases: Vec<String> = CASES.iter().map(|c| c.0.to_string()).collect();
    cases.sort();
    assert_eq!(files, cases);
    assert_eq!(files.len(), 50, "the RFC's archive holds 50 messages");
}

#[test]
fn the_parser_accepts_and_rejects_as_rfc4475_says() {
    let mut wrong = Vec::new();
    for (name, section, want, _) in CASES {
        let got = match message::parse(&load(name)) {
            Ok(_) => Parses,
            Err(_) => Rejected,
        };
        if got != *want {
            wrong.push(format!("{name} (§{section}): want {want:?}, got {got:?}"));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn the_rejections_name_the_fault() {
    let err = |name: &str| match message::parse(&load(name)) {
        Err(e) => e,
        Ok(_) => panic!("{name} must be rejected"),
    };
    assert_eq!(err("clerr"), MessageError::Truncated);
    assert_eq!(err("ncl"), MessageError::BadContentLength);
    assert_eq!(err("mcl01"), MessageError::BadContentLength);
    assert_eq!(err("badvers"), MessageError::VersionNotSupported);
    assert_eq!(err("mismatch01"), MessageError::CSeqMismatch);
    assert_eq!(err("mismatch02"), MessageError::CSeqMismatch);
    assert_eq!(err("multi01"), MessageError::Repeated("CSeq"));
    for name in ["trws", "lwsstart", "lwsruri", "ltgtruri"] {
        assert_eq!(err(name), MessageError::BadStartLine, "{name}");
    }
    assert!(
        matches!(err("intmeth"), MessageError::UnknownMethod(m) if m.starts_with("!interesting-Method"))
    );
    assert_eq!(
        err("esc02"),
        MessageError::UnknownMethod("RE%47IST%45R".into())
    );
    assert_eq!(err("scalar02"), MessageError::MissingHeader("CSeq"));
    assert_eq!(err("badinv01"), MessageError::MissingHeader("Via"));
    assert_eq!(err("badbranch"), MessageError::MissingHeader("Via"));
    assert!(matches!(err("quotbal"), MessageError::Parse(m) if m.contains("quoted")));
}

#[test]
fn valid_messages_read_right() {
    // wsinv: folding, LWS around every separator, mixed case names.
    let r = request("wsinv");
    assert_eq!(message::call_id(&r), Some("wsinv.ndaksdj@192.0.2.1"));
    assert_eq!(message::cseq(&r), Some((9, Method::Invite)));
    assert_eq!(message::top_via_branch(&r).as_deref(), Some("390skdjuw"));
    assert_eq!(message::from_tag(&r).as_deref(), Some("98asjd8"));
    assert_eq!(message::to_tag(&r).as_deref(), Some("1918181833n"));
    assert_eq!(
        r.header_value("Max-Forwards").map(|v| v.trim().to_string()),
        Some("0068".into())
    );
    assert_eq!(
        r.header_value("NewFangledHeader").as_deref(),
        Some("newfangled value continued newfangled value")
    );
    assert_eq!(r.body.len(), 150);
    assert!(message::has_sdp(&r, &r.body));

    // esc01: escaped user parts read unescaped, and are written escaped
    // once (not %253A).
    let r = request("esc01");
    assert_eq!(
        message::uri_user(&r.uri).as_deref(),
        Some("sips:user@example.com")
    );
    assert_eq!(
        message::caller_identity(&r).as_deref(),
        Some("I have spaces")
    );
    let wire = r.to_bytes();
    let line = String::from_utf8_lossy(&wire);
    assert!(
        line.starts_with("INVITE sip:sips%3Auser%40example.com@example.net SIP/2.0\r\n"),
        "{line}"
    );

    // escnull: %00 in a user part is a NUL, not the end of anything.
    let r = request("escnull");
    let to = r.header_value("To").unwrap_or_default();
    let user = message::uri_in_name_addr(&to).and_then(|u| message::uri_user(&u));
    assert_eq!(user.as_deref(), Some("null-\0-null"));

    // lwsdisp: no LWS between the display name and `<`.
    let r = request("lwsdisp");
    assert_eq!(message::caller_identity(&r).as_deref(), Some("caller"));

    // dblreq: only the first message of the datagram; its Content-Length
    // is 0, the INVITE after it is ignored (RFC 3261 §18.3).
    let r = request("dblreq");
    assert_eq!(r.method, Method::Register);
    assert!(r.body.is_empty());
    assert_eq!(
        message::call_id(&r),
        Some("dblreq.0ha0isndaksdj99sdfafnl3lk233412")
    );

    // semiuri: `;` inside the user part belongs to the user.
    let r = request("semiuri");
    assert_eq!(
        message::uri_user(&r.uri).as_deref(),
        Some("user;par=u@example.net")
    );

    // transports: unknown transports in Via do not matter.
    let r = request("transports");
    assert_eq!(message::top_via_branch(&r).as_deref(), Some("z9hG4bKkdjuw"));

    // mpart01: a binary multipart body is kept byte for byte.
    let r = request("mpart01");
    assert_eq!(r.method, Method::Message);
    assert_eq!(r.body.len(), 553);
    assert!(!message::has_sdp(&r, &r.body));

    // unreason / noreason: odd and empty reason phrases.
    for (name, code) in [("unreason", 200), ("noreason", 100)] {
        match parsed(name) {
            SipMessage::Response(resp) => assert_eq!(resp.status_code.code(), code, "{name}"),
            SipMessage::Request(_) => panic!("{name} is a response"),
        }
    }

    // cparam01 / cparam02: a parameter after an addr-spec is the header's,
    // inside <> the URI's (RFC 3261 §20.10).
    for (name, uri, params) in [
        (
            "cparam01",
            "sip:+19725552222@gw1.example.net",
            "unknownparam",
        ),
        (
            "cparam02",
            "sip:+19725552222@gw1.example.net;unknownparam",
            "",
        ),
    ] {
        let r = request(name);
        let contact = r.header_value("Contact").unwrap_or_default();
        assert_eq!(
            message::split_name_addr(&contact),
            Some((uri, params)),
            "{name}: {contact}"
        );
    }
}

#[test]
fn on_a_stream_the_framing_layer_catches_what_rfc4475_says() {
    let limits = Limits::default();
    // clerr over TCP: "wait for more data".
    assert_eq!(
        framing::check(&load("clerr"), &limits),
        Err(FramingError::Incomplete)
    );
    assert_eq!(
        framing::check(&load("ncl"), &limits),
        Err(FramingError::BadContentLength)
    );
    assert_eq!(
        framing::check(&load("mcl01"), &limits),
        Err(FramingError::BadContentLength)
    );
    // dblreq on a stream is two messages back to back (a CRLF between).
    let mut buf = BytesMut::from(&load("dblreq")[..]);
    let mut messages = Vec::new();
    while let Ok(Some(frame)) = framing::parse_frame(&mut buf, &limits) {
        if let framing::Frame::Message(m) = frame {
            messages.push(message::parse(&m).map(|m| match m {
                SipMessage::Request(r) => r.method,
                SipMessage::Response(_) => Method::Ack,
            }));
        }
    }
    assert_eq!(messages, vec![Ok(Method::Register), Ok(Method::Invite)]);
}

/// A probe OPTIONS that marks the end of the answers to the message
/// before it.
fn probe(n: usize, local: SocketAddr) -> String {
    format!(
        "OPTIONS sip:probe@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKprobe{n};rport\r\n\
         From: <sip:probe@{local}>;tag=p{n}\r\nTo: <sip:probe@127.0.0.1>\r\nCall-ID: probe-{n}\r\n\
         CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

fn status_of(datagram: &[u8]) -> Option<u16> {
    let text = String::from_utf8_lossy(datagram);
    let line = text.lines().next()?;
    line.strip_prefix("SIP/2.0 ")?.get(..3)?.parse().ok()
}

#[tokio::test]
async fn the_sip_port_answers_each_message_as_rfc4475_says() {
    let mut config = sip_config::Config::default();
    config.sip.listen = "127.0.0.1:0".parse().expect("literal address");
    config.rtp.port_min = 40000;
    config.rtp.port_max = 40099;
    let started = maskline_engine::Engine::start(&config)
        .await
        .expect("engine starts on loopback");
    // From 127.0.0.1: the default trunk's source, so INVITEs get as far
    // as routing and the per-source budget does not apply.
    let sock = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let local = sock.local_addr().expect("local address");
    let mut wrong = Vec::new();
    let mut buf = vec![0u8; 70_000];
    for (n, (name, section, _, want)) in CASES.iter().enumerate() {
        sock.send_to(&load(name), started.sip_addr)
            .await
            .expect("send");
        sock.send_to(probe(n, local).as_bytes(), started.sip_addr)
            .await
            .expect("send");
        let mut answers = Vec::new();
        loop {
            let len = tokio::time::timeout(Duration::from_secs(5), sock.recv(&mut buf))
                .await
                .unwrap_or_else(|_| panic!("{name}: the probe got no answer"))
                .expect("recv");
            let datagram = buf.get(..len).unwrap_or_default().to_vec();
            let text = String::from_utf8_lossy(&datagram).into_owned();
            if text.contains(&format!("Call-ID: probe-{n}\r\n")) {
                assert_eq!(status_of(&datagram), Some(200), "probe: {text}");
                break;
            }
            answers.push(datagram);
        }
        let finals: Vec<u16> = answers
            .iter()
            .filter_map(|a| status_of(a))
            .filter(|s| *s >= 200)
            .collect();
        let got = match finals[..] {
            [] => Dropped,
            [s] => Status(s),
            _ => {
                wrong.push(format!("{name}: several final answers {finals:?}"));
                continue;
            }
        };
        let provisional_ok = answers
            .iter()
            .all(|a| status_of(a).is_some_and(|s| s >= 200 || s == 100));
        if got != *want || !provisional_ok {
            let shown: Vec<String> = answers
                .iter()
                .map(|a| {
                    String::from_utf8_lossy(a)
                        .lines()
                        .next()
                        .unwrap_or("")
                        .to_string()
                })
                .collect();
            wrong.push(format!(
                "{name} (§{section}): want {want:?}, got {got:?} {shown:?}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}
