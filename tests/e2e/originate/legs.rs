//! The two legs of an originated call, each party a SIPp UAS behind its
//! own trunk: both answer (from either party), busy and no answer on each
//! leg, and `cancel`.

use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};

use maskline_e2e::{bounded, E2eError, Result, SipMessage, SippOutcome};
use serde_json::Value;

use super::{
    assert_masked_leg, both_succeed, call_ended, call_events, call_id, call_in_state, call_kinds,
    cancel, first_received_at, get_call, received_requests, rfc3339_ms, str_field, succeeds, Party,
    TwoTrunks,
};
use crate::TEST_LIMIT;

/// The ring timeout of the no-answer tests.
const SHORT_RING_SECS: u64 = 2;

/// A trunk that must never be dialled: a bound socket that is checked,
/// once the call is over, to have nothing queued.
struct NeverDialled(UdpSocket);

impl NeverDialled {
    fn bind(addr: SocketAddr) -> Result<NeverDialled> {
        let sock = UdpSocket::bind(addr).map_err(|e| E2eError::io(format!("binding {addr}"), e))?;
        sock.set_nonblocking(true)
            .map_err(|e| E2eError::io("set_nonblocking", e))?;
        Ok(NeverDialled(sock))
    }

    /// Fails if anything was sent to it (on loopback a datagram is queued
    /// by the time `send` returns, so a call that is over sent it already).
    fn assert_untouched(&self, party: Party) {
        let mut buf = [0u8; 4096];
        match self.0.recv_from(&mut buf) {
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Ok((n, from)) => panic!(
                "party {} must never be dialled, but {from} sent:\n{}",
                party.api(),
                String::from_utf8_lossy(buf.get(..n).unwrap_or_default())
            ),
            Err(e) => panic!("reading party {}'s trunk socket: {e}", party.api()),
        }
    }
}

/// `originate` must answer 201 with a ringing outbound call from
/// `first`'s number to the other's; returns its id.
async fn originated(t: &TwoTrunks, first: Party) -> Result<String> {
    let (status, call) = t.originate(first).await?;
    assert_eq!(status, 201, "originate: {call}");
    // The response shows the call as stored when it is read back: a first
    // party that answers at once may already have moved it on.
    assert!(
        matches!(
            str_field(&call, "state"),
            Some("ringing" | "answered" | "bridged")
        ),
        "{call}"
    );
    assert_eq!(str_field(&call, "direction"), Some("outbound"), "{call}");
    assert_eq!(str_field(&call, "caller"), Some(first.number()), "{call}");
    assert_eq!(
        str_field(&call, "callee"),
        Some(first.other().number()),
        "{call}"
    );
    assert_eq!(
        str_field(&call, "session_id"),
        Some(t.session.id.as_str()),
        "{call}"
    );
    call_id(&call)
}

/// Checks how an unanswered or failed call ended.
fn assert_failed(call: &Value, state: &str, cause: &str, by: &str, sip_status: u64) {
    assert_eq!(str_field(call, "state"), Some(state), "{call}");
    assert_eq!(str_field(call, "hangup_cause"), Some(cause), "{call}");
    assert_eq!(str_field(call, "hangup_by"), Some(by), "{call}");
    assert_eq!(
        call.get("sip_status").and_then(Value::as_u64),
        Some(sip_status),
        "{call}"
    );
}

/// The `cause` of the `Reason` header of the BYE `party` received.
fn bye_reason_cause(outcome: &SippOutcome) -> Result<Option<u16>> {
    let byes = received_requests(outcome, "BYE")?;
    let Some(bye) = byes.first() else {
        return Err(E2eError::Unexpected(format!(
            "no BYE received:\n{}",
            outcome.describe()
        )));
    };
    Ok(reason_cause(bye))
}

fn reason_cause(m: &SipMessage) -> Option<u16> {
    m.header("reason")?.split(';').find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("cause")
            .then(|| v.trim().parse().ok())?
    })
}

/// The `created_at` of the first event `kind` among `events`, unix ms.
fn event_ms(events: &[maskline_e2e::SseMessage], kind: &str) -> Option<i64> {
    events
        .iter()
        .find(|m| m.kind() == kind)
        .and_then(|m| str_field(&m.json(), "created_at").and_then(rfc3339_ms))
}

/// Issue items 1 and 4, "originate through SIPp on the trunk": `first` is
/// rung first, showing only the masked number; once it answers the other
/// party is rung, also masked; the call goes ringing → answered → bridged
/// with the session active; a bridged call cannot be cancelled; completing
/// the session sends BYE to both and the call is completed. Neither party
/// receives anything with the other's real number.
async fn rings_first_then_other_and_bridges(first: Party) -> Result<()> {
    let t = TwoTrunks::start(20).await?;
    let api = t.ml.api();
    let masked = t.session.masked_number.clone();
    let first_uas = t.party(first, "uas_answer.xml").await?;
    let other_uas = t.party(first.other(), "uas_answer.xml").await?;
    let id = originated(&t, first).await?;

    call_in_state(api, &id, "bridged").await?;
    let session = api.get_session(&t.session.id).await?;
    assert_eq!(str_field(&session, "state"), Some("active"), "{session}");
    assert_eq!(
        str_field(&session, "active_call_id"),
        Some(id.as_str()),
        "{session}"
    );
    assert!(
        !cancel(api, &id).await?,
        "a bridged call is past ringing: cancel must answer false"
    );
    let still = get_call(api, &id).await?;
    assert_eq!(str_field(&still, "state"), Some("bridged"), "{still}");

    api.complete_session(&t.session.id).await?;
    let (first_out, other_out) = both_succeed(first_uas, other_uas).await?;
    let call = call_ended(api, &id).await?;
    assert_eq!(str_field(&call, "state"), Some("completed"), "{call}");
    assert!(
        call.get("answered_at").is_some_and(Value::is_string),
        "{call}"
    );

    assert_masked_leg(&first_out, first, &masked)?;
    assert_masked_leg(&other_out, first.other(), &masked)?;
    for (out, party) in [(&first_out, first), (&other_out, first.other())] {
        assert_eq!(
            received_requests(out, "BYE")?.len(),
            1,
            "completing the session sends party {} one BYE:\n{}",
            party.api(),
            out.describe()
        );
    }
    let (Some(first_at), Some(other_at)) = (
        first_received_at(&first_out, "INVITE "),
        first_received_at(&other_out, "INVITE "),
    ) else {
        panic!(
            "both parties get an INVITE:\n{}\n{}",
            first_out.describe(),
            other_out.describe()
        );
    };
    assert!(
        first_at < other_at,
        "party {} is rung first ({first_at}), the other after ({other_at})",
        first.api()
    );

    let events = call_events(&t.ml, &id).await?;
    assert_eq!(
        call_kinds(&events),
        [
            "call.initiated",
            "call.ringing",
            "call.answered",
            "call.bridged",
            "call.hangup"
        ],
        "{events:?}"
    );
    Ok(())
}

#[tokio::test]
async fn from_party_a_rings_a_then_b_masked_and_bridges() -> Result<()> {
    bounded(TEST_LIMIT, rings_first_then_other_and_bridges(Party::A)).await
}

#[tokio::test]
async fn from_party_b_rings_b_first() -> Result<()> {
    bounded(TEST_LIMIT, rings_first_then_other_and_bridges(Party::B)).await
}

/// Busy on the first leg: the call fails USER_BUSY (486, hung up by a)
/// and the other party is never dialled.
#[tokio::test]
async fn busy_first_party_fails_the_call_and_the_other_is_never_dialled() -> Result<()> {
    bounded(TEST_LIMIT, async {
        let t = TwoTrunks::start(20).await?;
        let api = t.ml.api();
        let b_trunk = NeverDialled::bind(t.trunk_addr(Party::B))?;
        let a = t.party(Party::A, "uas_busy_486.xml").await?;
        let id = originated(&t, Party::A).await?;
        let call = call_ended(api, &id).await?;
        assert_failed(&call, "failed", "USER_BUSY", "a", 486);
        assert!(
            call.get("answered_at").is_some_and(Value::is_null),
            "{call}"
        );
        succeeds(a).await?;
        b_trunk.assert_untouched(Party::B);
        let events = call_events(&t.ml, &id).await?;
        assert_eq!(
            call_kinds(&events),
            ["call.initiated", "call.hangup"],
            "{events:?}"
        );
        let session = api.get_session(&t.session.id).await?;
        assert_eq!(str_field(&session, "state"), Some("open"), "{session}");
        Ok(())
    })
    .await
}

/// No answer on the first leg within `ring_timeout_secs`: Maskline
/// CANCELs it (the SIPp scenario needs the CANCEL to complete) and the
/// call fails NO_ANSWER; the other party is never dialled.
#[tokio::test]
async fn no_answer_on_the_first_leg_cancels_it() -> Result<()> {
    bounded(TEST_LIMIT, async {
        let t = TwoTrunks::start(SHORT_RING_SECS).await?;
        let api = t.ml.api();
        let b_trunk = NeverDialled::bind(t.trunk_addr(Party::B))?;
        let a = t.party(Party::A, "uas_ring_then_487_on_cancel.xml").await?;
        let id = originated(&t, Party::A).await?;
        let call = call_ended(api, &id).await?;
        assert_failed(&call, "failed", "NO_ANSWER", "system", 480);
        let a_out = succeeds(a).await?;
        assert_eq!(
            received_requests(&a_out, "CANCEL")?.len(),
            1,
            "{}",
            a_out.describe()
        );
        b_trunk.assert_untouched(Party::B);
        let events = call_events(&t.ml, &id).await?;
        assert_eq!(
            call_kinds(&events),
            ["call.initiated", "call.ringing", "call.hangup"],
            "{events:?}"
        );
        let (Some(rang), Some(gave_up)) = (
            event_ms(&events, "call.ringing"),
            event_ms(&events, "call.hangup"),
        ) else {
            panic!("events without created_at: {events:?}");
        };
        let rung_ms = gave_up - rang;
        assert!(
            (1_900..6_000).contains(&rung_ms),
            "the first party rings for the ring timeout ({SHORT_RING_SECS} s), not {rung_ms} ms"
        );
        Ok(())
    })
    .await
}

/// Busy on the second leg: the first party (answered) gets a BYE with a
/// `Reason` of Q.850 cause 17; the call fails USER_BUSY, hung up by b.
#[tokio::test]
async fn busy_second_party_hangs_up_the_first_with_a_reason() -> Result<()> {
    bounded(TEST_LIMIT, async {
        let t = TwoTrunks::start(20).await?;
        let api = t.ml.api();
        let a = t.party(Party::A, "uas_answer.xml").await?;
        let b = t.party(Party::B, "uas_busy_486.xml").await?;
        let id = originated(&t, Party::A).await?;
        let (a_out, _b_out) = both_succeed(a, b).await?;
        let call = call_ended(api, &id).await?;
        assert_failed(&call, "failed", "USER_BUSY", "b", 486);
        assert_eq!(
            bye_reason_cause(&a_out)?,
            Some(17),
            "the first party's BYE says why:\n{}",
            a_out.describe()
        );
        let events = call_events(&t.ml, &id).await?;
        assert_eq!(
            call_kinds(&events),
            [
                "call.initiated",
                "call.ringing",
                "call.answered",
                "call.hangup"
            ],
            "{events:?}"
        );
        Ok(())
    })
    .await
}

/// No answer on the second leg: Maskline CANCELs it, sends the first
/// party a BYE (Reason: Q.850 cause 19) and the call fails NO_ANSWER.
#[tokio::test]
async fn no_answer_on_the_second_leg_cancels_it_and_hangs_up_the_first() -> Result<()> {
    bounded(TEST_LIMIT, async {
        let t = TwoTrunks::start(SHORT_RING_SECS).await?;
        let api = t.ml.api();
        let a = t.party(Party::A, "uas_answer.xml").await?;
        let b = t.party(Party::B, "uas_ring_then_487_on_cancel.xml").await?;
        let id = originated(&t, Party::A).await?;
        let (a_out, b_out) = both_succeed(a, b).await?;
        let call = call_ended(api, &id).await?;
        assert_failed(&call, "failed", "NO_ANSWER", "system", 480);
        assert_eq!(
            received_requests(&b_out, "CANCEL")?.len(),
            1,
            "{}",
            b_out.describe()
        );
        assert_eq!(
            bye_reason_cause(&a_out)?,
            Some(19),
            "the first party's BYE says why:\n{}",
            a_out.describe()
        );
        Ok(())
    })
    .await
}

/// `cancel` of a call whose first party is still ringing: `{cancelled:
/// true}`, a CANCEL on the wire, state `cancelled` (hung up by the API);
/// cancelling again answers `true` again; the other party is never dialled.
#[tokio::test]
async fn cancel_stops_a_ringing_call_and_is_idempotent() -> Result<()> {
    bounded(TEST_LIMIT, async {
        let t = TwoTrunks::start(20).await?;
        let api = t.ml.api();
        let b_trunk = NeverDialled::bind(t.trunk_addr(Party::B))?;
        let a = t.party(Party::A, "uas_ring_then_487_on_cancel.xml").await?;
        let id = originated(&t, Party::A).await?;
        let mut events = maskline_e2e::SseStream::open(
            api.base(),
            maskline_e2e::API_KEY,
            &format!("/v1/calls/{id}/events"),
            None,
        )
        .await?;
        events
            .until(super::WAIT, |m| m.kind() == "call.ringing")
            .await?;

        assert!(cancel(api, &id).await?, "cancelling a ringing call");
        assert!(cancel(api, &id).await?, "cancel is idempotent");
        let call = call_ended(api, &id).await?;
        assert_eq!(str_field(&call, "state"), Some("cancelled"), "{call}");
        assert_eq!(str_field(&call, "hangup_by"), Some("api"), "{call}");
        assert!(
            cancel(api, &id).await?,
            "cancel of a cancelled call is true"
        );
        let a_out = succeeds(a).await?;
        assert_eq!(
            received_requests(&a_out, "CANCEL")?.len(),
            1,
            "{}",
            a_out.describe()
        );
        b_trunk.assert_untouched(Party::B);
        let rest = events
            .until(super::WAIT, |m| m.kind() == "call.hangup")
            .await?;
        assert_eq!(call_kinds(&rest), ["call.hangup"], "{rest:?}");
        Ok(())
    })
    .await
}

/// `cancel` while the first party has answered and the other still rings:
/// `{cancelled: true}`, the other party gets a CANCEL, the first a BYE,
/// and the call is `cancelled` (not completed: it never bridged).
#[tokio::test]
async fn cancel_while_the_second_party_rings() -> Result<()> {
    bounded(TEST_LIMIT, async {
        let t = TwoTrunks::start(20).await?;
        let api = t.ml.api();
        let a = t.party(Party::A, "uas_answer.xml").await?;
        let b = t.party(Party::B, "uas_ring_then_487_on_cancel.xml").await?;
        let id = originated(&t, Party::A).await?;
        call_in_state(api, &id, "answered").await?;
        assert!(cancel(api, &id).await?, "cancelling while B rings");
        let (a_out, b_out) = both_succeed(a, b).await?;
        assert_eq!(
            received_requests(&b_out, "CANCEL")?.len(),
            1,
            "{}",
            b_out.describe()
        );
        assert_eq!(
            received_requests(&a_out, "BYE")?.len(),
            1,
            "{}",
            a_out.describe()
        );
        let call = call_ended(api, &id).await?;
        assert_eq!(str_field(&call, "state"), Some("cancelled"), "{call}");
        assert_eq!(str_field(&call, "hangup_by"), Some("api"), "{call}");
        Ok(())
    })
    .await
}
