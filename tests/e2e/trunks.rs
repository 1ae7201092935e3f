//! Several carrier trunks (`[[trunks]]` with `prefixes`, `priority`,
//! `options_interval_secs`, `register`): failover to the next trunk on
//! 503, routing by the longest E.164 prefix, the OPTIONS keep-alive that
//! marks a silent trunk down (tried last), and the outbound REGISTER with
//! digest authentication. Every trunk is a raw SIP peer, bound before
//! Maskline starts so that nothing Maskline sends at start-up (the first
//! ping, the first REGISTER) is lost.

use std::net::SocketAddr;
use std::time::Duration;

use maskline_e2e::sip::{uri_host_port, uri_user};
use maskline_e2e::{
    bounded, dial, digest, wait_for, BridgedCall, CallEnds, E2eError, Maskline, OutgoingInvite,
    Result, RtpEndpoint, SipMessage, SipPeer, StartOptions, TrunkSpec, PARTY_A, PARTY_B, STRANGER,
    WAIT,
};

use crate::{assert_masked_outbound_leg, digits, header_user, LOOPBACK};

/// Overall bound of one trunk test.
const LIMIT: Duration = Duration::from_secs(20);
/// Maskline waits this long for the answer to a ping (its
/// `RESPONSE_TIMEOUT`); the next ping follows at once.
const PING_TIMEOUT: Duration = Duration::from_secs(5);
/// A party reached through the UK trunk.
const UK_PARTY: &str = "+442079460123";
/// The credentials Maskline registers with.
const TRUNK_USER: &str = "maskline-reg";
const TRUNK_PASSWORD: &str = "reg-secret";
/// The challenge the registrar sends.
const REALM: &str = "carrier.test";
const NONCE: &str = "5e1f0a9c3b7d4e2f8a6c0b1d9e3f7a25";
/// What the trunk peers use as "their server": they send no request
/// outside a dialog, and in a dialog they follow Maskline's Contact.
const NO_SERVER: SocketAddr = SocketAddr::new(LOOPBACK, 9);

fn lo(port: u16) -> SocketAddr {
    SocketAddr::from((LOOPBACK, port))
}

fn new_tag() -> String {
    format!("trk{:08x}", rand::random::<u32>())
}

/// A carrier trunk: a raw peer on an OS-assigned loopback port.
async fn trunk_peer() -> Result<SipPeer> {
    SipPeer::bind(lo(0), NO_SERVER).await
}

/// The INVITE `trunk` (named `name`) gets for the caller's `invite`; when
/// none comes, the error says what the caller got instead.
async fn invite_at(
    trunk: &mut SipPeer,
    caller: &mut SipPeer,
    invite: &OutgoingInvite,
    name: &str,
) -> Result<SipMessage> {
    match trunk.recv_request("INVITE").await {
        Ok(m) => Ok(m),
        Err(e) => {
            let got = caller
                .recv_response(&invite.call_id, "INVITE", true, Duration::from_millis(500))
                .await
                .map(|m| m.raw_text())
                .unwrap_or_else(|_| "(no final response either)".into());
            Err(E2eError::Unexpected(format!(
                "trunk `{name}` got no INVITE ({e}); the caller got:\n{got}"
            )))
        }
    }
}

/// Party A calls `masked` from `ends`; `trunk` gets the INVITE and answers
/// it as `callee`. The trunk peer ends up in the returned call's `callee`.
async fn call_via(
    ml: &Maskline,
    ends: CallEnds,
    mut trunk: SipPeer,
    name: &str,
    masked: &str,
    callee: &str,
) -> Result<BridgedCall> {
    let caller_rtp = RtpEndpoint::bind(lo(ends.caller_rtp)).await?;
    let callee_rtp = RtpEndpoint::bind(lo(ends.callee_rtp)).await?;
    let (mut caller, invite) = dial(ml, ends.caller_sip, PARTY_A, masked, ends.caller_rtp).await?;
    let callee_invite = invite_at(&mut trunk, &mut caller, &invite, name).await?;
    let (callee_dialog, answered) = tokio::join!(
        trunk.answer(&callee_invite, callee, callee_rtp.local_addr()),
        caller.answered(&invite, WAIT)
    );
    let callee_dialog = callee_dialog?;
    let (caller_answer, caller_dialog) = answered?;
    Ok(BridgedCall {
        caller,
        callee: trunk,
        caller_rtp,
        callee_rtp,
        caller_dialog,
        callee_dialog,
        invite,
        callee_invite,
        caller_answer,
    })
}

/// `retry` is `first` sent again to the next trunk: same Call-ID and From
/// tag, next CSeq, new branch, addressed to `next` and still showing the
/// masked number.
fn assert_retry_of(first: &SipMessage, retry: &SipMessage, next: SocketAddr, masked: &str) {
    let both = || format!("first:\n{}\nretry:\n{}", first.raw_text(), retry.raw_text());
    assert_eq!(retry.call_id(), first.call_id(), "{}", both());
    assert_eq!(retry.from_tag(), first.from_tag(), "{}", both());
    assert_ne!(retry.top_branch(), first.top_branch(), "{}", both());
    let (Some((n1, "INVITE")), Some((n2, "INVITE"))) = (first.cseq(), retry.cseq()) else {
        panic!("CSeq must be INVITE in both:\n{}", both());
    };
    assert_eq!(n2, n1 + 1, "the retry takes the next CSeq:\n{}", both());
    assert_eq!(
        retry.request_uri().and_then(uri_host_port),
        Some(next),
        "the retry goes to the next trunk's address:\n{}",
        both()
    );
    assert_eq!(
        header_user(retry, "from"),
        Some(digits(masked)),
        "{}",
        both()
    );
    assert_eq!(
        header_user(retry, "p-asserted-identity"),
        Some(digits(masked)),
        "{}",
        both()
    );
}

/// Issue: trunk failover. "primary" (priority 0) answers the B-leg
/// INVITE 503; Maskline ACKs it and sends the same INVITE (same Call-ID
/// and From tag, next CSeq, new branch, masked caller ID) to "backup"
/// (priority 1, listed first in the config so that priority, not order,
/// decides), which answers. A's first final response is that 200 (the
/// 503 is not relayed); media flows and the call ends normally.
#[tokio::test]
async fn a_503_from_the_first_trunk_fails_over_to_the_next() -> Result<()> {
    bounded(LIMIT, async {
        let mut primary = trunk_peer().await?;
        let mut backup = trunk_peer().await?;
        let ml = Maskline::start(StartOptions {
            trunks: vec![
                TrunkSpec {
                    priority: 1,
                    ..TrunkSpec::new("backup", backup.local_addr())
                },
                TrunkSpec::new("primary", primary.local_addr()),
            ],
            ..StartOptions::default()
        })
        .await?;
        let session = ml.api().create_session(PARTY_A, PARTY_B, None).await?;
        let masked = session.masked_number.clone();
        let ends = CallEnds::slot(&ml, 0);
        let caller_rtp = RtpEndpoint::bind(lo(ends.caller_rtp)).await?;
        let callee_rtp = RtpEndpoint::bind(lo(ends.callee_rtp)).await?;
        let (mut caller, invite) =
            dial(&ml, ends.caller_sip, PARTY_A, &masked, ends.caller_rtp).await?;

        let first = invite_at(&mut primary, &mut caller, &invite, "primary").await?;
        primary
            .respond(
                &first,
                503,
                "Service Unavailable",
                Some(&new_tag()),
                &[],
                None,
            )
            .await?;
        let first_call_id = first.call_id().unwrap_or_default().to_string();
        let ack = primary
            .recv_where("the ACK for the 503", WAIT, |m| {
                m.method() == Some("ACK") && m.call_id() == Some(first_call_id.as_str())
            })
            .await?;
        assert_eq!(
            ack.top_branch(),
            first.top_branch(),
            "the 503 is ACKed in its transaction:\n{}",
            ack.raw_text()
        );

        let retry = invite_at(&mut backup, &mut caller, &invite, "backup").await?;
        assert_retry_of(&first, &retry, backup.local_addr(), &masked);
        let (callee_dialog, answered) = tokio::join!(
            backup.answer(&retry, PARTY_B, callee_rtp.local_addr()),
            caller.answered(&invite, WAIT)
        );
        let callee_dialog = callee_dialog?;
        let (caller_answer, caller_dialog) = answered?;
        let mut call = BridgedCall {
            caller,
            callee: backup,
            caller_rtp,
            callee_rtp,
            caller_dialog,
            callee_dialog,
            invite,
            callee_invite: retry,
            caller_answer,
        };
        assert_masked_outbound_leg(&call, &masked, PARTY_A, PARTY_B);
        call.exchange_rtp().await?;
        call.caller_hangs_up().await
    })
    .await
}

/// Issue: prefix routing. Trunk "uk" carries `+44` (with a worse
/// priority than the default trunk, so the longer prefix is what wins);
/// the default trunk has no prefixes. A session whose other party is
/// +44… is dialled through "uk", one whose other party is +1… through
/// the default trunk.
#[tokio::test]
async fn the_longest_matching_prefix_picks_the_trunk() -> Result<()> {
    bounded(LIMIT, async {
        let uk = trunk_peer().await?;
        let default = trunk_peer().await?;
        let (uk_addr, default_addr) = (uk.local_addr(), default.local_addr());
        let ml = Maskline::start(StartOptions {
            trunks: vec![
                TrunkSpec::new("default", default_addr),
                TrunkSpec {
                    prefixes: vec!["+44".into()],
                    priority: 5,
                    ..TrunkSpec::new("uk", uk_addr)
                },
            ],
            ..StartOptions::default()
        })
        .await?;
        let to_uk = ml.api().create_session(PARTY_A, UK_PARTY, None).await?;
        let to_us = ml.api().create_session(PARTY_A, PARTY_B, None).await?;

        let mut call = call_via(
            &ml,
            CallEnds::slot(&ml, 0),
            uk,
            "uk",
            &to_uk.masked_number,
            UK_PARTY,
        )
        .await?;
        let inv = &call.callee_invite;
        assert_eq!(
            inv.request_uri().and_then(uri_user).map(digits),
            Some(digits(UK_PARTY)),
            "{}",
            inv.raw_text()
        );
        assert_eq!(
            inv.request_uri().and_then(uri_host_port),
            Some(uk_addr),
            "{}",
            inv.raw_text()
        );
        assert_masked_outbound_leg(&call, &to_uk.masked_number, PARTY_A, UK_PARTY);
        call.caller_hangs_up().await?;

        // The default trunk's first INVITE is the +1 call's: the +44 call
        // never went there.
        let mut call = call_via(
            &ml,
            CallEnds::slot(&ml, 1),
            default,
            "default",
            &to_us.masked_number,
            PARTY_B,
        )
        .await?;
        let inv = &call.callee_invite;
        assert_eq!(
            inv.request_uri().and_then(uri_user).map(digits),
            Some(digits(PARTY_B)),
            "{}",
            inv.raw_text()
        );
        assert_eq!(
            inv.request_uri().and_then(uri_host_port),
            Some(default_addr),
            "{}",
            inv.raw_text()
        );
        assert_masked_outbound_leg(&call, &to_us.masked_number, PARTY_A, PARTY_B);
        call.caller_hangs_up().await
    })
    .await
}

/// Waits for the trunk's next ping (OPTIONS from Maskline), checks its
/// form and answers 200 when `answer`.
async fn next_ping(trunk: &mut SipPeer, within: Duration, answer: bool) -> Result<SipMessage> {
    let ping = trunk.recv_request_within("OPTIONS", within).await?;
    let want_uri = format!("sip:{}", trunk.local_addr());
    assert_eq!(
        ping.request_uri(),
        Some(want_uri.as_str()),
        "{}",
        ping.raw_text()
    );
    assert_eq!(
        ping.cseq().map(|(_, m)| m),
        Some("OPTIONS"),
        "{}",
        ping.raw_text()
    );
    assert!(
        ping.from_tag().is_some() && ping.top_branch().is_some_and(|b| b.starts_with("z9hG4bK")),
        "{}",
        ping.raw_text()
    );
    if answer {
        trunk
            .respond(&ping, 200, "OK", Some(&new_tag()), &[], None)
            .await?;
    }
    Ok(ping)
}

/// Issue: OPTIONS keep-alive. With `options_interval_secs = 1` the
/// primary trunk is pinged and answers 200. Then it falls silent: after
/// one missed ping it is still up (a call still goes to it first); the
/// ping after the second miss proves it is marked down, and the next call
/// goes to the backup first: the backup answers 503 and the down trunk,
/// tried last, gets the INVITE and answers.
#[tokio::test]
async fn a_trunk_that_stops_answering_options_is_tried_last() -> Result<()> {
    bounded(LIMIT, async {
        let mut primary = trunk_peer().await?;
        let mut backup = trunk_peer().await?;
        let (primary_addr, backup_addr) = (primary.local_addr(), backup.local_addr());
        let ml = Maskline::start(StartOptions {
            trunks: vec![
                TrunkSpec {
                    options_interval_secs: 1,
                    ..TrunkSpec::new("primary", primary_addr)
                },
                TrunkSpec {
                    priority: 1,
                    ..TrunkSpec::new("backup", backup_addr)
                },
            ],
            ..StartOptions::default()
        })
        .await?;
        let first_call = ml.api().create_session(PARTY_A, PARTY_B, None).await?;
        let second_call = ml.api().create_session(PARTY_A, STRANGER, None).await?;

        // Up: two pings answered, each a new request.
        let p1 = next_ping(&mut primary, WAIT, true).await?;
        let p2 = next_ping(&mut primary, Duration::from_secs(3), true).await?;
        assert_ne!(p1.call_id(), p2.call_id(), "each ping is a new request");

        // Silent: the third ping goes unanswered; the fourth comes when
        // Maskline gives up on it (one miss: still up).
        next_ping(&mut primary, Duration::from_secs(3), false).await?;
        next_ping(&mut primary, PING_TIMEOUT + Duration::from_secs(2), false).await?;
        let ends = CallEnds::slot(&ml, 0);
        let (mut caller, invite) = dial(
            &ml,
            ends.caller_sip,
            PARTY_A,
            &first_call.masked_number,
            ends.caller_rtp,
        )
        .await?;
        let inv = invite_at(&mut primary, &mut caller, &invite, "primary").await?;
        assert_eq!(
            inv.request_uri().and_then(uri_host_port),
            Some(primary_addr),
            "{}",
            inv.raw_text()
        );
        primary
            .respond(&inv, 486, "Busy Here", Some(&new_tag()), &[], None)
            .await?;
        let busy = caller.final_response(&invite, WAIT).await?;
        assert_eq!(busy.status(), Some(486), "{}", busy.raw_text());

        // The fifth ping is sent only once the fourth went unanswered:
        // two misses in a row, the primary is down now.
        next_ping(&mut primary, PING_TIMEOUT + Duration::from_secs(2), false).await?;
        let ends = CallEnds::slot(&ml, 1);
        let caller_rtp = RtpEndpoint::bind(lo(ends.caller_rtp)).await?;
        let callee_rtp = RtpEndpoint::bind(lo(ends.callee_rtp)).await?;
        let (mut caller, invite) = dial(
            &ml,
            ends.caller_sip,
            PARTY_A,
            &second_call.masked_number,
            ends.caller_rtp,
        )
        .await?;
        let first = invite_at(&mut backup, &mut caller, &invite, "backup").await?;
        backup
            .respond(
                &first,
                503,
                "Service Unavailable",
                Some(&new_tag()),
                &[],
                None,
            )
            .await?;
        let last = invite_at(&mut primary, &mut caller, &invite, "primary (down)").await?;
        assert_retry_of(&first, &last, primary_addr, &second_call.masked_number);
        let (callee_dialog, answered) = tokio::join!(
            primary.answer(&last, STRANGER, callee_rtp.local_addr()),
            caller.answered(&invite, WAIT)
        );
        let callee_dialog = callee_dialog?;
        let (caller_answer, caller_dialog) = answered?;
        let mut call = BridgedCall {
            caller,
            callee: primary,
            caller_rtp,
            callee_rtp,
            caller_dialog,
            callee_dialog,
            invite,
            callee_invite: last,
            caller_answer,
        };
        call.caller_hangs_up().await
    })
    .await
}

/// Issue: outbound registration. With `register = true` and credentials,
/// the trunk gets a REGISTER for the configured user and expiry; it
/// challenges 401 (Digest, MD5, qop=auth) and gets the REGISTER again in
/// the same registration (Call-ID, From tag; next CSeq, new branch) with
/// an `Authorization` whose digest is right; it answers 200 with
/// `Expires` and Maskline reports itself registered.
#[tokio::test]
async fn maskline_registers_at_the_trunk_and_answers_its_challenge() -> Result<()> {
    bounded(LIMIT, async {
        let mut carrier = trunk_peer().await?;
        let ml = Maskline::start(StartOptions {
            trunks: vec![TrunkSpec {
                register: true,
                register_expires_secs: Some(120),
                credentials: Some((TRUNK_USER.into(), TRUNK_PASSWORD.into())),
                ..TrunkSpec::new("carrier", carrier.local_addr())
            }],
            ..StartOptions::default()
        })
        .await?;
        let want_uri = format!("sip:{}", carrier.local_addr());

        let first = carrier.recv_request("REGISTER").await?;
        let text = first.raw_text();
        assert_eq!(first.request_uri(), Some(want_uri.as_str()), "{text}");
        assert_eq!(header_user(&first, "to"), Some(TRUNK_USER), "{text}");
        assert_eq!(header_user(&first, "from"), Some(TRUNK_USER), "{text}");
        assert_eq!(first.header("expires"), Some("120"), "{text}");
        assert!(first.header("contact").is_some(), "{text}");
        assert!(first.header("authorization").is_none(), "{text}");
        let challenge = format!(
            "WWW-Authenticate: Digest realm=\"{REALM}\", nonce=\"{NONCE}\", qop=\"auth\", algorithm=MD5"
        );
        carrier
            .respond(&first, 401, "Unauthorized", Some(&new_tag()), &[challenge], None)
            .await?;

        let retry = carrier.recv_request("REGISTER").await?;
        let both = format!("first:\n{text}\nretry:\n{}", retry.raw_text());
        assert_eq!(retry.call_id(), first.call_id(), "{both}");
        assert_eq!(retry.from_tag(), first.from_tag(), "{both}");
        assert_ne!(retry.top_branch(), first.top_branch(), "{both}");
        let (Some((n1, "REGISTER")), Some((n2, "REGISTER"))) = (first.cseq(), retry.cseq()) else {
            panic!("CSeq must be REGISTER in both:\n{both}");
        };
        assert_eq!(n2, n1 + 1, "{both}");
        assert_eq!(retry.header("expires"), Some("120"), "{both}");
        let Some(credentials) = retry.header("authorization") else {
            panic!("no Authorization in the second REGISTER:\n{both}");
        };
        let params = digest::params(credentials);
        let get = |k: &str| params.get(k).map(String::as_str);
        assert_eq!(get("username"), Some(TRUNK_USER), "{credentials}");
        assert_eq!(get("realm"), Some(REALM), "{credentials}");
        assert_eq!(get("nonce"), Some(NONCE), "{credentials}");
        assert_eq!(get("uri"), retry.request_uri(), "{credentials}");
        assert_eq!(get("qop"), Some("auth"), "{credentials}");
        assert_eq!(get("nc"), Some("00000001"), "{credentials}");
        assert!(get("cnonce").is_some_and(|c| !c.is_empty()), "{credentials}");
        assert!(
            get("algorithm").is_none_or(|a| a.eq_ignore_ascii_case("MD5")),
            "{credentials}"
        );
        let want = digest::expected_response(&params, "REGISTER", TRUNK_PASSWORD)?;
        assert_eq!(
            get("response"),
            Some(want.as_str()),
            "wrong digest in {credentials}"
        );
        let contact = retry.header("contact").unwrap_or_default().to_string();
        carrier
            .respond(
                &retry,
                200,
                "OK",
                Some(&new_tag()),
                &[format!("Contact: {contact};expires=120"), "Expires: 120".into()],
                None,
            )
            .await?;
        wait_for(
            "Maskline to log that it registered at the carrier",
            Duration::from_secs(3),
            || async {
                Ok(ml
                    .log_tail(400)
                    .contains("registered at the carrier")
                    .then_some(()))
            },
        )
        .await
    })
    .await
}
