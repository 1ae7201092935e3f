//! Originated calls (`POST /v1/calls/originate`, issue #6): Maskline rings
//! the `from_party` first with the masked number as caller ID, then the
//! other party, and bridges them; busy and no answer on either leg; cancel;
//! the tenant's concurrency cap and calls-per-second queue.
//!
//! Each party sits behind its own trunk (`prefixes` route party A's and
//! party B's numbers apart), so each leg is a SIPp UAS with its own script.
//! The trunks' ports come from a port block of their own: they go into the
//! config before Maskline (and its block) exists.
//!
//! - `legs`: the two legs through SIPp: both answer, busy and no answer on
//!   each leg, cancel.
//! - `limits`: the concurrency cap and the calls-per-second queue, with a
//!   raw SIP peer as the trunk.

mod legs;
mod limits;

use std::net::SocketAddr;
use std::time::Duration;

use maskline_e2e::{
    wait_for, E2eError, Maskline, PortBlock, Result, Session, SipMessage, Sipp, SippOptions,
    SippOutcome, SseMessage, SseStream, StartOptions, TrunkSpec, API_KEY, PARTY_A, PARTY_B,
};
use reqwest::Method;
use serde_json::{json, Value};

use crate::{digits, header_user, LOOPBACK};

/// Bound of every wait on an API state or an event.
const WAIT: Duration = Duration::from_secs(10);
/// SIPp's own `-timeout`: a scenario that never completes ends by itself.
const SIPP_TIMEOUT_SECS: u32 = 15;
/// How long the harness waits for a SIPp run to exit.
const SIPP_WITHIN: Duration = Duration::from_secs(20);

/// One of the session's two parties.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Party {
    /// `party_a` ([`PARTY_A`]).
    A,
    /// `party_b` ([`PARTY_B`]).
    B,
}

impl Party {
    /// `from_party` as the API spells it.
    pub fn api(self) -> &'static str {
        match self {
            Party::A => "a",
            Party::B => "b",
        }
    }

    /// The party's real number.
    pub fn number(self) -> &'static str {
        match self {
            Party::A => PARTY_A,
            Party::B => PARTY_B,
        }
    }

    /// The other party.
    pub fn other(self) -> Party {
        match self {
            Party::A => Party::B,
            Party::B => Party::A,
        }
    }

    /// The E.164 prefix that routes the party's number to its own trunk.
    fn prefix(self) -> &'static str {
        match self {
            Party::A => "+141555501",
            Party::B => "+141555502",
        }
    }

    /// The SIPp slot (of the trunks' port block) of the party's trunk.
    fn slot(self) -> u16 {
        match self {
            Party::A => 0,
            Party::B => 1,
        }
    }
}

/// A Maskline whose party A (`+141555501…`) and party B (`+141555502…`)
/// are reached through two trunks, one per party, and one open session.
pub struct TwoTrunks {
    /// The instance.
    pub ml: Maskline,
    /// The session between [`PARTY_A`] and [`PARTY_B`].
    pub session: Session,
    trunks: PortBlock,
}

impl TwoTrunks {
    /// Starts Maskline with `[calls] ring_timeout_secs = ring_timeout_secs`
    /// and creates the session.
    pub async fn start(ring_timeout_secs: u64) -> Result<TwoTrunks> {
        let trunks = PortBlock::allocate()?;
        let trunk = |party: Party| TrunkSpec {
            prefixes: vec![party.prefix().to_string()],
            ..TrunkSpec::new(
                &format!("party_{}", party.api()),
                SocketAddr::from((LOOPBACK, trunks.sipp(party.slot()).sip)),
            )
        };
        let ml = Maskline::start(StartOptions {
            trunks: vec![trunk(Party::A), trunk(Party::B)],
            ring_timeout_secs,
            ..StartOptions::default()
        })
        .await?;
        let session = ml.api().create_session(PARTY_A, PARTY_B, None).await?;
        Ok(TwoTrunks {
            ml,
            session,
            trunks,
        })
    }

    /// The address of `party`'s trunk.
    pub fn trunk_addr(&self, party: Party) -> SocketAddr {
        SocketAddr::from((LOOPBACK, self.trunks.sipp(party.slot()).sip))
    }

    /// `party` as a SIPp UAS running `scenario` on its trunk, listening.
    pub async fn party(&self, party: Party, scenario: &str) -> Result<Sipp> {
        let slot = self.trunks.sipp(party.slot());
        let opts = SippOptions {
            timeout_secs: SIPP_TIMEOUT_SECS,
            ..SippOptions::uas(scenario, LOOPBACK, slot, slot.sip)
        };
        let name = format!(
            "party_{}_{}",
            party.api(),
            scenario.trim_end_matches(".xml")
        );
        let mut sipp = Sipp::spawn(&opts, self.ml.dir(), &name)?;
        sipp.wait_listening(Duration::from_secs(5)).await?;
        Ok(sipp)
    }

    /// `POST /v1/calls/originate` for the session, ringing `first` first.
    pub async fn originate(&self, first: Party) -> Result<(u16, Value)> {
        originate(&self.ml.api().clone(), &self.session.id, first.api()).await
    }
}

/// `POST /v1/calls/originate {session_id, from_party}` → status and body.
pub async fn originate(
    api: &maskline_e2e::Api,
    session_id: &str,
    from_party: &str,
) -> Result<(u16, Value)> {
    let body = json!({ "session_id": session_id, "from_party": from_party });
    api.request(Method::POST, "/v1/calls/originate", Some(&body))
        .await
}

/// `POST /v1/calls/{id}/cancel` → 200 `{cancelled}`.
pub async fn cancel(api: &maskline_e2e::Api, call_id: &str) -> Result<bool> {
    let v = api
        .expect_status(
            Method::POST,
            &format!("/v1/calls/{call_id}/cancel"),
            Some(&json!({})),
            200,
        )
        .await?;
    v.get("cancelled")
        .and_then(Value::as_bool)
        .ok_or_else(|| E2eError::Unexpected(format!("cancel without `cancelled`: {v}")))
}

/// `GET /v1/calls/{id}` → 200.
pub async fn get_call(api: &maskline_e2e::Api, call_id: &str) -> Result<Value> {
    api.expect_status(Method::GET, &format!("/v1/calls/{call_id}"), None, 200)
        .await
}

/// The `id` of a Call object.
pub fn call_id(call: &Value) -> Result<String> {
    str_field(call, "id")
        .map(str::to_string)
        .ok_or_else(|| E2eError::Unexpected(format!("call without an id: {call}")))
}

/// A string field of a JSON object.
pub fn str_field<'a>(v: &'a Value, name: &str) -> Option<&'a str> {
    v.get(name).and_then(Value::as_str)
}

/// Waits until the call is in `state` and returns it; on a timeout the
/// error shows the call as it last was.
pub async fn call_in_state(api: &maskline_e2e::Api, call_id: &str, state: &str) -> Result<Value> {
    let what = format!("call {call_id} to be {state}");
    let got = wait_for(&what, WAIT, || {
        let api = api.clone();
        async move {
            let v = get_call(&api, call_id).await?;
            Ok((str_field(&v, "state") == Some(state)).then_some(v))
        }
    })
    .await;
    match got {
        Err(E2eError::Timeout { .. }) => {
            let last = get_call(api, call_id).await?;
            Err(E2eError::Unexpected(format!(
                "timed out waiting for {what}; it is {last}"
            )))
        }
        other => other,
    }
}

/// Waits until the call is over (`ended_at` set) and returns it.
pub async fn call_ended(api: &maskline_e2e::Api, call_id: &str) -> Result<Value> {
    let what = format!("call {call_id} to end");
    wait_for(&what, WAIT, || {
        let api = api.clone();
        async move {
            let v = get_call(&api, call_id).await?;
            Ok(v.get("ended_at").is_some_and(Value::is_string).then_some(v))
        }
    })
    .await
}

/// The call's events from its SSE stream (replayed from the start), up to
/// and including `call.hangup`.
pub async fn call_events(ml: &Maskline, call_id: &str) -> Result<Vec<SseMessage>> {
    let mut s = SseStream::open(
        ml.api().base(),
        API_KEY,
        &format!("/v1/calls/{call_id}/events"),
        None,
    )
    .await?;
    s.until(WAIT, |m| m.kind() == "call.hangup").await
}

/// The `call.*` event types among `events`, in order.
pub fn call_kinds(events: &[SseMessage]) -> Vec<&str> {
    events
        .iter()
        .map(SseMessage::kind)
        .filter(|k| k.starts_with("call."))
        .collect()
}

/// Both SIPp runs' outcomes; each must have completed its scenario.
pub async fn both_succeed(a: Sipp, b: Sipp) -> Result<(SippOutcome, SippOutcome)> {
    let (a, b) = tokio::join!(a.finish(SIPP_WITHIN), b.finish(SIPP_WITHIN));
    let (a, b) = (a?, b?);
    if a.succeeded() && b.succeeded() {
        return Ok((a, b));
    }
    Err(E2eError::Unexpected(format!(
        "a SIPp scenario failed:\n{}\n\n{}",
        a.describe(),
        b.describe()
    )))
}

/// One SIPp run's outcome; it must have completed its scenario.
pub async fn succeeds(sipp: Sipp) -> Result<SippOutcome> {
    let out = sipp.finish(SIPP_WITHIN).await?;
    if out.succeeded() {
        return Ok(out);
    }
    Err(E2eError::Unexpected(format!(
        "the SIPp scenario failed:\n{}",
        out.describe()
    )))
}

/// The requests `method` SIPp received, parsed, in order.
pub fn received_requests(outcome: &SippOutcome, method: &str) -> Result<Vec<SipMessage>> {
    let any = SocketAddr::from((LOOPBACK, 0));
    let mut out = Vec::new();
    for text in outcome.received() {
        let m = SipMessage::parse(text.as_bytes(), any)
            .map_err(|e| E2eError::Unexpected(format!("{e}\nin\n{}", outcome.describe())))?;
        if m.method() == Some(method) {
            out.push(m);
        }
    }
    Ok(out)
}

/// The one INVITE SIPp received (retransmissions aside).
pub fn the_invite(outcome: &SippOutcome) -> Result<SipMessage> {
    received_requests(outcome, "INVITE")?
        .into_iter()
        .next()
        .ok_or_else(|| E2eError::Unexpected(format!("no INVITE:\n{}", outcome.describe())))
}

/// When SIPp logged the first received message starting with `start`
/// (`YYYY-MM-DD HH:MM:SS.ffffff`: fixed width, so it orders as text).
pub fn first_received_at(outcome: &SippOutcome, start: &str) -> Option<String> {
    outcome
        .messages
        .split("----------------------------------------------- ")
        .find_map(|section| {
            let mut lines = section.splitn(3, '\n');
            let stamp = lines.next()?.trim();
            let kind = lines.next()?;
            let body = lines.next()?.trim_start_matches(['\r', '\n']);
            (kind.contains("message received") && body.starts_with(start))
                .then(|| stamp.to_string())
        })
}

/// Checks what `party` received on the leg Maskline dialled to it: the
/// INVITE dials the party's own number and shows only `masked` in From and
/// P-Asserted-Identity; the other party's real number appears nowhere in
/// anything the party received (headers and SDP, the BYE included).
pub fn assert_masked_leg(outcome: &SippOutcome, party: Party, masked: &str) -> Result<()> {
    let inv = the_invite(outcome)?;
    let text = inv.raw_text();
    assert_eq!(
        inv.request_uri()
            .and_then(maskline_e2e::sip::uri_user)
            .map(digits),
        Some(digits(party.number())),
        "the INVITE must dial party {}:\n{text}",
        party.api()
    );
    assert_eq!(
        header_user(&inv, "from"),
        Some(digits(masked)),
        "From must show the masked number:\n{text}"
    );
    assert_eq!(
        header_user(&inv, "p-asserted-identity"),
        Some(digits(masked)),
        "P-Asserted-Identity must show the masked number:\n{text}"
    );
    assert!(
        inv.body_text().lines().any(|l| l.starts_with("o=")),
        "the INVITE carries an SDP offer:\n{text}"
    );
    maskline_e2e::assert_absent(
        outcome.received().join("\n").as_bytes(),
        party.other().number(),
        &format!("what party {} received", party.api()),
    );
    Ok(())
}

/// Unix milliseconds of an RFC 3339 UTC time as the API renders it
/// (`2026-11-23T15:04:05.123Z`).
pub fn rfc3339_ms(s: &str) -> Option<i64> {
    let num = |range: std::ops::Range<usize>| s.get(range)?.parse::<i64>().ok();
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, m, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let milli = match s.get(19..20) {
        Some(".") => {
            let frac: String = s
                .get(20..)?
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            format!("{frac:0<3}").get(..3)?.parse::<i64>().ok()?
        }
        _ => 0,
    };
    // Howard Hinnant's days_from_civil.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((((days * 24 + h) * 60 + m) * 60 + sec) * 1000 + milli)
}

#[test]
fn rfc3339_times_parse_to_unix_ms() {
    assert_eq!(rfc3339_ms("1970-01-01T00:00:00.000Z"), Some(0));
    assert_eq!(
        rfc3339_ms("2026-11-23T15:04:05.123Z"),
        Some(1_795_446_245_123)
    );
    assert_eq!(rfc3339_ms("2000-03-01T00:00:01Z"), Some(951_868_801_000));
    assert_eq!(rfc3339_ms("2000-03-01T00:00:01.5Z"), Some(951_868_801_500));
    assert_eq!(rfc3339_ms("garbage"), None);
}
