//! Call flows a carrier puts Maskline through, asserted on the wire: CANCEL
//! before the answer and crossing a 200, hold and unhold by re-INVITE,
//! early media on 183, the trunk's digest challenge, failures relayed with
//! a Q.850 `Reason`, no answer, SIP over TCP both ways, and INVITEs refused
//! up front (Max-Forwards 0, `Require: 100rel`).
//!
//! SIPp plays the carrier's side where a scenario says it best, and the
//! test then reads what each side saw from SIPp's `-trace_msg` log. The raw
//! peer is used where the test acts between two messages (early-media RTP,
//! one failure status per call).

use std::net::SocketAddr;
use std::time::Duration;

use maskline_e2e::sip::media_addr;
use maskline_e2e::{
    wait_for, E2eError, Maskline, Result, Session, SipMessage, Sipp, SippOptions, SippOutcome,
    StartOptions, PARTY_A, PARTY_B,
};
use serde_json::Value;

use crate::LOOPBACK;

mod cancel;
mod challenge;
mod failures;
mod mid_call;
mod transport;

/// Overall bound of one flow test.
const FLOW_LIMIT: Duration = Duration::from_secs(20);
/// SIPp's own timeout: a stuck scenario fails by itself well within the bound.
const SIPP_TIMEOUT_SECS: u32 = 8;
/// How long the harness waits for a SIPp run to exit.
const SIPP_WITHIN: Duration = Duration::from_secs(10);

fn lo(port: u16) -> SocketAddr {
    SocketAddr::from((LOOPBACK, port))
}

fn new_tag() -> String {
    format!("flow{:08x}", rand::random::<u32>())
}

async fn with_session(opts: StartOptions) -> Result<(Maskline, Session)> {
    let ml = Maskline::start(opts).await?;
    let session = ml.api().create_session(PARTY_A, PARTY_B, None).await?;
    Ok((ml, session))
}

/// The carrier's callee: SIPp running `scenario` on the trunk address.
async fn trunk_uas(
    ml: &Maskline,
    scenario: &str,
    tcp: bool,
    keys: &[(&str, &str)],
) -> Result<Sipp> {
    let ports = *ml.ports();
    let mut opts = SippOptions {
        timeout_secs: SIPP_TIMEOUT_SECS,
        tcp,
        ..SippOptions::uas(scenario, LOOPBACK, ports.sipp(1), ports.trunk())
    };
    for (k, v) in keys {
        opts = opts.key(k, v);
    }
    let mut sipp = Sipp::spawn(&opts, ml.dir(), "trunk_uas")?;
    sipp.wait_listening(Duration::from_secs(5)).await?;
    Ok(sipp)
}

/// Party A: SIPp running `scenario` against Maskline, dialling `dialled`.
fn party_a_uac(
    ml: &Maskline,
    scenario: &str,
    dialled: &str,
    tcp: bool,
    name: &str,
) -> Result<Sipp> {
    let opts = SippOptions {
        timeout_secs: SIPP_TIMEOUT_SECS,
        tcp,
        ..SippOptions::uac(
            scenario,
            LOOPBACK,
            ml.ports().sipp(0),
            ml.sip_addr(),
            dialled,
        )
        .key("caller", PARTY_A)
    };
    Sipp::spawn(&opts, ml.dir(), name)
}

/// Waits for both runs; both must have completed their scenario.
async fn both_succeed(a: Sipp, b: Sipp) -> Result<(SippOutcome, SippOutcome)> {
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

fn parse_all(texts: Vec<String>, outcome: &SippOutcome) -> Result<Vec<SipMessage>> {
    let any = lo(0);
    texts
        .iter()
        .map(|t| SipMessage::parse(t.as_bytes(), any))
        .collect::<Result<Vec<_>>>()
        .map_err(|e| E2eError::Unexpected(format!("{e}\nin\n{}", outcome.describe())))
}

/// What SIPp received, parsed.
fn received(outcome: &SippOutcome) -> Result<Vec<SipMessage>> {
    parse_all(outcome.received(), outcome)
}

fn is_response(m: &SipMessage, status: u16, method: &str) -> bool {
    m.status() == Some(status) && m.cseq().is_some_and(|(_, cm)| cm == method)
}

/// Asserts that what `outcome`'s SIPp received holds a response for each
/// `(status, CSeq method)` of `present` and none for those of `absent`.
fn assert_responses(outcome: &SippOutcome, present: &[(u16, &str)], absent: &[(u16, &str)]) {
    let got = match received(outcome) {
        Ok(got) => got,
        Err(e) => panic!("{e}"),
    };
    for (status, method) in present {
        assert!(
            got.iter().any(|m| is_response(m, *status, method)),
            "no {status} for {method}:\n{}",
            outcome.describe()
        );
    }
    for (status, method) in absent {
        assert!(
            !got.iter().any(|m| is_response(m, *status, method)),
            "unexpected {status} for {method}:\n{}",
            outcome.describe()
        );
    }
}

fn requests<'a>(msgs: &'a [SipMessage], method: &str) -> Vec<&'a SipMessage> {
    msgs.iter().filter(|m| m.method() == Some(method)).collect()
}

fn first_request<'a>(
    msgs: &'a [SipMessage],
    method: &str,
    outcome: &SippOutcome,
) -> Result<&'a SipMessage> {
    msgs.iter()
        .find(|m| m.method() == Some(method))
        .ok_or_else(|| {
            E2eError::Unexpected(format!("no {method} received:\n{}", outcome.describe()))
        })
}

/// Protocol and cause of a `Reason` header, e.g. `("Q.850", 17)`.
fn reason_cause(m: &SipMessage) -> Option<(String, u16)> {
    let value = m.header("reason")?;
    let mut parts = value.split(';');
    let protocol = parts.next()?.trim().to_string();
    let cause = parts.find_map(|p| {
        let (k, v) = p.split_once('=')?;
        if k.trim().eq_ignore_ascii_case("cause") {
            v.trim().parse().ok()
        } else {
            None
        }
    })?;
    Some((protocol, cause))
}

/// The media direction an SDP states last (media level wins).
fn direction(sdp: &str) -> Option<&str> {
    sdp.lines()
        .map(str::trim)
        .filter_map(|l| l.strip_prefix("a="))
        .rfind(|a| ["sendrecv", "sendonly", "recvonly", "inactive"].contains(a))
}

/// The audio address of `m`'s SDP, which must be Maskline's relay (in its
/// RTP range on 127.0.0.1) and not `party`'s own media address.
fn assert_relay(m: &SipMessage, ml: &Maskline, party: SocketAddr, what: &str) -> SocketAddr {
    let (min, max) = ml.ports().maskline_rtp();
    let Some(addr) = media_addr(&m.body_text()) else {
        panic!("{what}: no audio address in\n{}", m.raw_text());
    };
    assert!(
        addr.ip() == LOOPBACK && (min..=max).contains(&addr.port()) && addr != party,
        "{what}: SDP must point at Maskline's relay ({min}-{max}), not at {party}; got {addr}:\n{}",
        m.raw_text()
    );
    addr
}

fn str_field<'a>(v: &'a Value, name: &str) -> Option<&'a str> {
    v.get(name).and_then(Value::as_str)
}

/// Waits until the session is `open` again with `count` calls and none
/// active, and returns its newest call (ended).
async fn call_over(ml: &Maskline, session_id: &str, count: u64) -> Result<Value> {
    let what = format!("session {session_id} to be open with {count} ended call(s)");
    wait_for(&what, Duration::from_secs(5), || async {
        let s = ml.api().get_session(session_id).await?;
        let idle = str_field(&s, "state") == Some("open")
            && s.get("call_count").and_then(Value::as_u64) == Some(count)
            && s.get("active_call_id").is_some_and(Value::is_null);
        let newest = s
            .get("calls")
            .and_then(Value::as_array)
            .and_then(|c| c.first())
            .filter(|c| c.get("ended_at").is_some_and(|e| !e.is_null()))
            .cloned();
        Ok(newest.filter(|_| idle))
    })
    .await
}
