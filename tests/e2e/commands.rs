//! Issue 5, call control through real SIP calls: each command in each call
//! state, for a session in control mode (`"inbound": "control"`: the call
//! is held ringing until a command or `[calls] control_timeout_secs`) and
//! for a default (bridge) session. Also `command_uid` replay, the 422s, the
//! 404/409s, and an SSE client that reconnects with `Last-Event-ID`.

use std::net::SocketAddr;
use std::time::Duration;

use maskline_e2e::{
    bounded, bridge_call, dial, wait_for, BridgedCall, CallEnds, Dialog, E2eError, Maskline,
    OutgoingInvite, Result, RtpEndpoint, Session, SipMessage, SipPeer, SseMessage, SseStream,
    StartOptions, API_KEY, PARTY_A, PARTY_B, WAIT,
};
use reqwest::Method;
use serde_json::{json, Value};

use crate::{assert_masked_outbound_leg, LOOPBACK, TEST_LIMIT};

/// How long the control plane waits for an answer's ACK.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(2);

fn lo(port: u16) -> SocketAddr {
    SocketAddr::from((LOOPBACK, port))
}

fn str_of<'a>(v: &'a Value, name: &str) -> &'a str {
    v.get(name).and_then(Value::as_str).unwrap_or_default()
}

/// `POST /v1/sessions` A↔B, with `"inbound": "control"` when `control`.
async fn session(ml: &Maskline, control: bool) -> Result<Session> {
    let mut body = json!({ "party_a": PARTY_A, "party_b": PARTY_B });
    if control {
        body["inbound"] = json!("control");
    }
    let json = ml
        .api()
        .expect_status(Method::POST, "/v1/sessions", Some(&body), 201)
        .await?;
    assert_eq!(
        str_of(&json, "inbound"),
        if control { "control" } else { "bridge" }
    );
    Ok(Session {
        id: str_of(&json, "id").to_string(),
        masked_number: str_of(&json, "masked_number").to_string(),
        json,
    })
}

/// The session's live call id, once the engine reported it.
async fn live_call(ml: &Maskline, session_id: &str) -> Result<String> {
    wait_for("the session's live call", WAIT, || async {
        let s = ml.api().get_session(session_id).await?;
        Ok(s.get("active_call_id")
            .and_then(Value::as_str)
            .map(str::to_string))
    })
    .await
}

/// `POST /v1/calls/{call}/commands/{name}` → (status, body).
async fn command(ml: &Maskline, call: &str, name: &str, body: Value) -> Result<(u16, Value)> {
    ml.api()
        .request(
            Method::POST,
            &format!("/v1/calls/{call}/commands/{name}"),
            Some(&body),
        )
        .await
}

/// A command that must be accepted: 202 with an in-progress operation.
/// Returns the operation id.
async fn accepted(ml: &Maskline, call: &str, name: &str, body: Value) -> Result<String> {
    let (status, json) = command(ml, call, name, body).await?;
    if status != 202 {
        return Err(E2eError::Unexpected(format!("{name} got {status}: {json}")));
    }
    assert_eq!(json["timeout_ms"], 2000, "{json}");
    assert!(
        json["status"] == "in_progress" || json["replayed"] == true,
        "{json}"
    );
    Ok(str_of(&json, "operation_id").to_string())
}

/// The operation once it has a result.
async fn finished(ml: &Maskline, op: &str) -> Result<Value> {
    wait_for("the operation's result", WAIT, || async {
        let v = ml
            .api()
            .expect_status(Method::GET, &format!("/v1/operations/{op}"), None, 200)
            .await?;
        Ok((v["status"] != "in_progress").then_some(v))
    })
    .await
}

/// The call as the API shows it once it is over.
async fn ended(ml: &Maskline, call: &str) -> Result<Value> {
    wait_for("the call to be over", WAIT, || async {
        let v = ml
            .api()
            .expect_status(Method::GET, &format!("/v1/calls/{call}"), None, 200)
            .await?;
        Ok(v["ended_at"].is_string().then_some(v))
    })
    .await
}

/// All the events of a call that is over: its stream replays them from
/// the start and ends a few seconds after the final one (so a
/// `command.result` recorded just after `call.hangup` is still there).
async fn call_events(ml: &Maskline, call: &str) -> Result<Vec<SseMessage>> {
    let mut s = SseStream::open(
        ml.api().base(),
        API_KEY,
        &format!("/v1/calls/{call}/events"),
        None,
    )
    .await?;
    let mut got = Vec::new();
    while let Some(m) = s.next_within(Duration::from_secs(15)).await? {
        got.push(m);
    }
    let k = kinds(&got);
    assert!(
        k.contains(&"call.hangup"),
        "the stream ended before the hangup: {k:?}"
    );
    Ok(got)
}

fn kinds(events: &[SseMessage]) -> Vec<&str> {
    events.iter().map(SseMessage::kind).collect()
}

/// The `command.result` of operation `op` among `events`.
fn result_of(events: &[SseMessage], op: &str) -> Option<Value> {
    events
        .iter()
        .filter(|m| m.kind() == "command.result")
        .map(SseMessage::json)
        .find(|v| v["data"]["operation_id"] == op)
}

/// Protocol and cause of a `Reason` header, e.g. `("Q.850", 17)`.
fn reason_cause(m: &SipMessage) -> Option<(String, u16)> {
    let value = m.header("reason")?;
    let mut parts = value.split(';');
    let protocol = parts.next()?.trim().to_string();
    let cause = parts.find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("cause")
            .then(|| v.trim().parse().ok())
            .flatten()
    })?;
    Some((protocol, cause))
}

/// A caller (slot 0) dialling the session's masked number, held by
/// Maskline in control mode, its call id, and the callee's peer and RTP
/// endpoints already bound on the trunk side (so that no INVITE Maskline
/// sends later is missed).
struct Held {
    caller: SipPeer,
    invite: OutgoingInvite,
    call_id: String,
    callee: SipPeer,
    caller_rtp: RtpEndpoint,
    callee_rtp: RtpEndpoint,
}

async fn held_call(ml: &Maskline, session: &Session) -> Result<Held> {
    let ends = CallEnds::slot(ml, 0);
    let callee = SipPeer::bind(ml.trunk_addr(), ml.sip_addr()).await?;
    let caller_rtp = RtpEndpoint::bind(lo(ends.caller_rtp)).await?;
    let callee_rtp = RtpEndpoint::bind(lo(ends.callee_rtp)).await?;
    let (caller, invite) = dial(
        ml,
        ends.caller_sip,
        PARTY_A,
        &session.masked_number,
        ends.caller_rtp,
    )
    .await?;
    let call_id = live_call(ml, &session.id).await?;
    Ok(Held {
        caller,
        invite,
        call_id,
        callee,
        caller_rtp,
        callee_rtp,
    })
}

/// The callee on the trunk takes Maskline's INVITE and answers it; the
/// caller answers too unless `caller_side` says it already did (`answer`).
async fn callee_answers(
    held: Held,
    caller_side: Option<(SipMessage, Dialog)>,
) -> Result<BridgedCall> {
    let Held {
        mut caller,
        invite,
        mut callee,
        caller_rtp,
        callee_rtp,
        ..
    } = held;
    let callee_invite = callee
        .recv_request_within("INVITE", Duration::from_secs(6))
        .await?;
    let (callee_dialog, caller_side) = match caller_side {
        Some(done) => (
            callee
                .answer(&callee_invite, PARTY_B, callee_rtp.local_addr())
                .await?,
            done,
        ),
        None => {
            let (b, a) = tokio::join!(
                callee.answer(&callee_invite, PARTY_B, callee_rtp.local_addr()),
                caller.answered(&invite, WAIT)
            );
            (b?, a?)
        }
    };
    let (caller_answer, caller_dialog) = caller_side;
    Ok(BridgedCall {
        caller,
        callee,
        caller_rtp,
        callee_rtp,
        caller_dialog,
        callee_dialog,
        invite,
        callee_invite,
        caller_answer,
    })
}

/// Control mode, ringing → `answer`: Maskline answers the caller itself
/// (200 with SDP), the ACK completes it (`command.result` succeeded,
/// `call.answered`). Answered → `hangup`: the caller gets a BYE with the
/// cause in `Reason`. Over → any command is 409 `call_ended`.
#[tokio::test]
async fn answer_then_hangup_in_control_mode() -> Result<()> {
    bounded(TEST_LIMIT, async {
        let ml = Maskline::start(StartOptions::default()).await?;
        let session = session(&ml, true).await?;
        let mut held = held_call(&ml, &session).await?;
        let call = held.call_id.clone();

        let op = accepted(&ml, &call, "answer", json!({"command_uid": "answer.1"})).await?;
        let (ok, dialog) = held.caller.answered(&held.invite, WAIT).await?;
        assert_eq!(ok.status(), Some(200));
        assert!(
            ok.body_text().lines().any(|l| l.starts_with("m=audio")),
            "the 200 carries Maskline's SDP:\n{}",
            ok.raw_text()
        );
        let done = finished(&ml, &op).await?;
        assert_eq!(done["status"], "succeeded", "{done}");
        // The same uid: the same operation, nothing new dispatched.
        let again = accepted(&ml, &call, "answer", json!({"command_uid": "answer.1"})).await?;
        assert_eq!(again, op);

        let bye_op = accepted(&ml, &call, "hangup", json!({"cause": "NORMAL_CLEARING"})).await?;
        let bye = held.caller.expect_bye(&dialog, WAIT).await?;
        assert_eq!(
            reason_cause(&bye),
            Some(("Q.850".into(), 16)),
            "{}",
            bye.raw_text()
        );
        assert_eq!(finished(&ml, &bye_op).await?["status"], "succeeded");

        let events = call_events(&ml, &call).await?;
        let k = kinds(&events);
        assert_eq!(k.first(), Some(&"call.initiated"), "{k:?}");
        assert!(k.contains(&"call.answered"), "{k:?}");
        assert!(!k.contains(&"call.bridged"), "never bridged: {k:?}");
        let result = result_of(&events, &op).unwrap_or_default();
        assert_eq!(result["data"]["status"], "succeeded", "{k:?}");
        assert_eq!(result["data"]["command"], "answer");
        let hangup_result = result_of(&events, &bye_op).unwrap_or_default();
        assert_eq!(hangup_result["data"]["status"], "succeeded");
        let results = k.iter().filter(|t| **t == "command.result").count();
        assert_eq!(results, 2, "the replayed answer dispatched nothing: {k:?}");

        let over = ended(&ml, &call).await?;
        assert_eq!(
            (str_of(&over, "hangup_by"), str_of(&over, "hangup_cause")),
            ("api", "NORMAL_CLEARING"),
            "{over}"
        );
        for name in ["answer", "hangup", "disconnect"] {
            let (status, body) = command(&ml, &call, name, json!({})).await?;
            assert_eq!(
                (status, str_of(&body, "error")),
                (409, "call_ended"),
                "{name}"
            );
        }
        Ok(())
    })
    .await
}

/// Control mode, ringing → `answer` with a caller that never ACKs: the
/// operation's result is `timeout` after 2 s.
#[tokio::test]
async fn answer_without_ack_times_out_after_two_seconds() -> Result<()> {
    bounded(TEST_LIMIT, async {
        let ml = Maskline::start(StartOptions::default()).await?;
        let session = session(&ml, true).await?;
        let mut held = held_call(&ml, &session).await?;
        let call = held.call_id.clone();
        let op = accepted(&ml, &call, "answer", json!({})).await?;
        // The 200 arrives; no ACK is sent.
        let ok = held
            .caller
            .recv_response(&held.invite.call_id, "INVITE", true, WAIT)
            .await?;
        assert_eq!(ok.status(), Some(200), "{}", ok.raw_text());
        let done = wait_for("the answer to time out", Duration::from_secs(5), || async {
            let v = ml
                .api()
                .expect_status(Method::GET, &format!("/v1/operations/{op}"), None, 200)
                .await?;
            Ok((v["status"] != "in_progress").then_some(v))
        })
        .await?;
        assert_eq!(done["status"], "timeout", "{done}");
        assert_eq!(done["error"]["code"], "timeout", "{done}");
        let took = rfc3339_ms(&done["completed_at"]).unwrap_or(0)
            - rfc3339_ms(&done["created_at"]).unwrap_or(i64::MAX / 2);
        let limit = i64::try_from(ANSWER_TIMEOUT.as_millis()).unwrap_or(2000);
        assert!(
            (limit - 50..limit + 1500).contains(&took),
            "the result came after {took} ms, not after the 2 s timeout"
        );
        let mut s = SseStream::open(
            ml.api().base(),
            API_KEY,
            &format!("/v1/calls/{call}/events"),
            None,
        )
        .await?;
        let events = s
            .until(Duration::from_secs(5), |m| m.kind() == "command.result")
            .await?;
        let result = result_of(&events, &op).unwrap_or_default();
        assert_eq!(result["data"]["status"], "timeout", "{result}");
        Ok(())
    })
    .await
}

/// Unix ms of a `YYYY-MM-DDTHH:MM:SS.mmmZ` timestamp as the API renders it.
fn rfc3339_ms(v: &Value) -> Option<i64> {
    let s = v.as_str()?;
    let num = |a: usize, b: usize| s.get(a..b).and_then(|x| x.parse::<i64>().ok());
    let (y, mo, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (h, mi, sec, ms) = (num(11, 13)?, num(14, 16)?, num(17, 19)?, num(20, 23)?);
    // Days from civil (H. Hinnant).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if mo > 2 { mo - 3 } else { mo + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    Some((((days * 24 + h) * 60 + mi) * 60 + sec) * 1000 + ms)
}

/// Control mode, ringing → `hangup` with a cause: the caller's INVITE is
/// rejected with the cause's SIP status (RFC 3398) and `Reason: Q.850`.
#[tokio::test]
async fn hangup_while_held_rejects_with_the_causes_status_and_reason() -> Result<()> {
    bounded(Duration::from_secs(45), async {
        let ml = Maskline::start(StartOptions::default()).await?;
        let session = session(&ml, true).await?;
        let cases: [(&str, &[u16], u16); 3] = [
            ("USER_BUSY", &[486], 17),
            ("CALL_REJECTED", &[603, 403], 21),
            ("NORMAL_CLEARING", &[480], 16),
        ];
        for (cause, statuses, code) in cases {
            let mut held = held_call(&ml, &session).await?;
            let op = accepted(&ml, &held.call_id, "hangup", json!({ "cause": cause })).await?;
            let resp = held.caller.final_response(&held.invite, WAIT).await?;
            let status = resp.status().unwrap_or(0);
            assert!(
                statuses.contains(&status),
                "{cause}: expected {statuses:?}, got:\n{}",
                resp.raw_text()
            );
            assert_eq!(
                reason_cause(&resp),
                Some(("Q.850".into(), code)),
                "{cause}:\n{}",
                resp.raw_text()
            );
            assert_eq!(finished(&ml, &op).await?["status"], "succeeded");
            let over = ended(&ml, &held.call_id).await?;
            assert_eq!(
                (str_of(&over, "state"), str_of(&over, "hangup_cause")),
                ("failed", cause),
                "{over}"
            );
            assert_eq!(str_of(&over, "hangup_by"), "api");
            // The session is free for the next call.
            wait_for("no live call", WAIT, || async {
                let s = ml.api().get_session(&session.id).await?;
                Ok(s["active_call_id"].is_null().then_some(()))
            })
            .await?;
        }
        Ok(())
    })
    .await
}

/// Control mode, ringing → `disconnect`: the default routing applies, the
/// other party is dialled with the masked number and the call is bridged.
#[tokio::test]
async fn disconnect_while_held_bridges_to_the_other_party() -> Result<()> {
    bounded(TEST_LIMIT, async {
        let ml = Maskline::start(StartOptions::default()).await?;
        let session = session(&ml, true).await?;
        let held = held_call(&ml, &session).await?;
        let call = held.call_id.clone();
        let op = accepted(&ml, &call, "disconnect", json!({})).await?;
        let mut bridged = callee_answers(held, None).await?;
        assert_masked_outbound_leg(&bridged, &session.masked_number, PARTY_A, PARTY_B);
        assert_eq!(finished(&ml, &op).await?["status"], "succeeded");
        bridged.exchange_rtp().await?;
        bridged.caller_hangs_up().await?;
        let events = call_events(&ml, &call).await?;
        let k = kinds(&events);
        assert!(k.contains(&"call.bridged"), "{k:?}");
        assert_eq!(
            result_of(&events, &op).unwrap_or_default()["data"]["status"],
            "succeeded"
        );
        Ok(())
    })
    .await
}

/// Control mode, answered by `answer` → `disconnect`: the answered caller
/// is bridged to the other party; then `hangup` sends BYE both ways with
/// the cause in `Reason`.
#[tokio::test]
async fn disconnect_after_answer_bridges_then_hangup_clears_both() -> Result<()> {
    bounded(TEST_LIMIT, async {
        let ml = Maskline::start(StartOptions::default()).await?;
        let session = session(&ml, true).await?;
        let mut held = held_call(&ml, &session).await?;
        let call = held.call_id.clone();
        let op = accepted(&ml, &call, "answer", json!({})).await?;
        let answered = held.caller.answered(&held.invite, WAIT).await?;
        assert_eq!(finished(&ml, &op).await?["status"], "succeeded");
        let op = accepted(&ml, &call, "disconnect", json!({})).await?;
        let mut bridged = callee_answers(held, Some(answered)).await?;
        assert_masked_outbound_leg(&bridged, &session.masked_number, PARTY_A, PARTY_B);
        assert_eq!(finished(&ml, &op).await?["status"], "succeeded");
        wait_for("the call to be bridged", WAIT, || async {
            let v = ml
                .api()
                .expect_status(Method::GET, &format!("/v1/calls/{call}"), None, 200)
                .await?;
            Ok((v["state"] == "bridged").then_some(()))
        })
        .await?;

        let op = accepted(&ml, &call, "hangup", json!({"cause": "CALL_REJECTED"})).await?;
        let (a, b) = tokio::join!(
            bridged.caller.expect_bye(&bridged.caller_dialog, WAIT),
            bridged.callee.expect_bye(&bridged.callee_dialog, WAIT)
        );
        for bye in [a?, b?] {
            assert_eq!(
                reason_cause(&bye),
                Some(("Q.850".into(), 21)),
                "{}",
                bye.raw_text()
            );
        }
        assert_eq!(finished(&ml, &op).await?["status"], "succeeded");
        let over = ended(&ml, &call).await?;
        assert_eq!(str_of(&over, "state"), "completed", "{over}");
        Ok(())
    })
    .await
}

/// Control mode with no command: after `[calls] control_timeout_secs` (2 s
/// here) the default routing bridges the call.
#[tokio::test]
async fn no_command_bridges_after_the_control_timeout() -> Result<()> {
    bounded(TEST_LIMIT, async {
        let ml = Maskline::start(StartOptions {
            extra_toml: "control_timeout_secs = 2\n".into(),
            ..StartOptions::default()
        })
        .await?;
        let session = session(&ml, true).await?;
        let started = tokio::time::Instant::now();
        let held = held_call(&ml, &session).await?;
        let call = held.call_id.clone();
        let mut bridged = callee_answers(held, None).await?;
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(1_800),
            "bridged after {waited:?}, before the 2 s control timeout"
        );
        assert_masked_outbound_leg(&bridged, &session.masked_number, PARTY_A, PARTY_B);
        bridged.callee_hangs_up().await?;
        let events = call_events(&ml, &call).await?;
        assert!(
            !kinds(&events).contains(&"command.result"),
            "{:?}",
            kinds(&events)
        );
        Ok(())
    })
    .await
}

/// A default (bridge) session: while the callee rings, `answer` does not
/// apply (failed `invalid_state`) and `hangup` rejects the caller with the
/// cause and cancels the callee; once bridged, `answer` succeeds at once
/// and `disconnect` hangs up both legs.
#[tokio::test]
async fn commands_on_a_bridged_session_call() -> Result<()> {
    bounded(TEST_LIMIT, async {
        let ml = Maskline::start(StartOptions::default()).await?;
        let session = session(&ml, false).await?;
        let p = *ml.ports();
        let mut callee = SipPeer::bind(ml.trunk_addr(), ml.sip_addr()).await?;
        let (mut caller, inv) =
            dial(&ml, p.peer(0), PARTY_A, &session.masked_number, p.rtp(0)).await?;
        let b_inv = callee.recv_request("INVITE").await?;
        let tag = "cmdring1";
        callee
            .respond(&b_inv, 180, "Ringing", Some(tag), &[], None)
            .await?;
        let call = live_call(&ml, &session.id).await?;
        let op = accepted(&ml, &call, "answer", json!({})).await?;
        let refused = finished(&ml, &op).await?;
        assert_eq!(
            (
                str_of(&refused, "status"),
                str_of(&refused["error"], "code")
            ),
            ("failed", "invalid_state"),
            "{refused}"
        );
        let op = accepted(&ml, &call, "hangup", json!({"cause": "USER_BUSY"})).await?;
        let (resp, cancel) = tokio::join!(
            caller.final_response(&inv, WAIT),
            callee.recv_request_within("CANCEL", WAIT)
        );
        let (resp, cancel) = (resp?, cancel?);
        assert_eq!(resp.status(), Some(486), "{}", resp.raw_text());
        assert_eq!(reason_cause(&resp), Some(("Q.850".into(), 17)));
        callee
            .respond(&cancel, 200, "OK", Some(tag), &[], None)
            .await?;
        callee
            .respond(&b_inv, 487, "Request Terminated", Some(tag), &[], None)
            .await?;
        assert_eq!(finished(&ml, &op).await?["status"], "succeeded");
        ended(&ml, &call).await?;
        drop((caller, callee));
        wait_for("no live call", WAIT, || async {
            let s = ml.api().get_session(&session.id).await?;
            Ok(s["active_call_id"].is_null().then_some(()))
        })
        .await?;

        let mut bridged = bridge_call(
            &ml,
            CallEnds::slot(&ml, 0),
            PARTY_A,
            PARTY_B,
            &session.masked_number,
        )
        .await?;
        let call = live_call(&ml, &session.id).await?;
        let op = accepted(&ml, &call, "answer", json!({})).await?;
        assert_eq!(finished(&ml, &op).await?["status"], "succeeded");
        let op = accepted(&ml, &call, "disconnect", json!({})).await?;
        bridged.both_get_bye(WAIT).await?;
        assert_eq!(finished(&ml, &op).await?["status"], "succeeded");
        let over = ended(&ml, &call).await?;
        assert_eq!(
            (str_of(&over, "hangup_by"), str_of(&over, "hangup_cause")),
            ("api", "NORMAL_CLEARING"),
            "{over}"
        );
        Ok(())
    })
    .await
}

/// Bad commands over HTTP: every 422 names its field; unknown command or
/// call → 404.
#[tokio::test]
async fn invalid_commands_are_refused() -> Result<()> {
    bounded(TEST_LIMIT, async {
        let ml = Maskline::start(StartOptions::default()).await?;
        let session = session(&ml, true).await?;
        let held = held_call(&ml, &session).await?;
        let call = held.call_id.clone();
        let cases = [
            (
                "answer",
                json!({"command_uid": "x".repeat(129)}),
                "command_uid",
            ),
            ("answer", json!({"command_uid": "not/ok"}), "command_uid"),
            ("answer", json!({"command_uid": 7}), "command_uid"),
            ("answer", json!({"cause": "USER_BUSY"}), "cause"),
            ("disconnect", json!({"cause": "USER_BUSY"}), "cause"),
            ("hangup", json!({"cause": "B".repeat(65)}), "cause"),
            ("hangup", json!({"cause": "user_busy"}), "cause"),
            ("hangup", json!({"cause": "NOT_A_CAUSE"}), "cause"),
            ("hangup", json!({"extra": true}), "extra"),
            ("hangup", json!("USER_BUSY"), "body"),
        ];
        for (name, body, field) in cases {
            let (status, json) = command(&ml, &call, name, body.clone()).await?;
            assert_eq!(status, 422, "{name} {body}: {json}");
            assert_eq!(str_of(&json, "error"), "validation_failed");
            assert!(json["fields"][field].is_string(), "{name} {body}: {json}");
        }
        let (status, json) = command(&ml, &call, "park", json!({})).await?;
        assert_eq!((status, str_of(&json, "error")), (404, "not_found"));
        let (status, json) = command(&ml, "cal_unknown", "answer", json!({})).await?;
        assert_eq!((status, str_of(&json, "error")), (404, "not_found"));
        drop(held);
        Ok(())
    })
    .await
}

/// An SSE client that disconnects mid-call and reconnects with
/// `Last-Event-ID` sees every event exactly once, in order: what it got
/// over both connections equals a full replay of the log.
#[tokio::test]
async fn sse_reconnect_with_last_event_id_sees_every_event_once_in_order() -> Result<()> {
    bounded(TEST_LIMIT, async {
        let ml = Maskline::start(StartOptions::default()).await?;
        let base = ml.api().base().to_string();
        let mut first = SseStream::open(&base, API_KEY, "/v1/events", Some("0")).await?;
        let session = session(&ml, false).await?;
        let mut call = bridge_call(
            &ml,
            CallEnds::slot(&ml, 0),
            PARTY_A,
            PARTY_B,
            &session.masked_number,
        )
        .await?;
        let mut got = first
            .until(Duration::from_secs(5), |m| m.kind() == "call.initiated")
            .await?;
        // Disconnect mid-call; the call goes on and ends meanwhile.
        drop(first);
        call.exchange_rtp().await?;
        call.caller_hangs_up().await?;
        let last = got.last().and_then(|m| m.id.clone());
        let mut second = SseStream::open(&base, API_KEY, "/v1/events", last.as_deref()).await?;
        got.extend(
            second
                .until(Duration::from_secs(5), |m| m.kind() == "call.hangup")
                .await?,
        );
        // Something after the reconnection arrives live too.
        ml.api().complete_session(&session.id).await?;
        got.extend(
            second
                .until(Duration::from_secs(5), |m| m.kind() == "session.completed")
                .await?,
        );

        let mut full = SseStream::open(&base, API_KEY, "/v1/events", Some("0")).await?;
        let all = full
            .until(Duration::from_secs(5), |m| m.kind() == "session.completed")
            .await?;
        let ids = |v: &[SseMessage]| v.iter().map(|m| m.id.clone()).collect::<Vec<_>>();
        assert_eq!(
            ids(&got),
            ids(&all),
            "{:?}\nvs\n{:?}",
            kinds(&got),
            kinds(&all)
        );
        assert_eq!(kinds(&got), kinds(&all));
        let nums: Vec<i64> = got.iter().filter_map(SseMessage::id_num).collect();
        assert!(
            nums.windows(2).all(|w| w[0] < w[1]),
            "ids strictly increase: {nums:?}"
        );
        for expected in [
            "session.created",
            "call.initiated",
            "call.answered",
            "call.bridged",
            "call.hangup",
            "session.completed",
        ] {
            assert!(
                kinds(&got).contains(&expected),
                "{expected}: {:?}",
                kinds(&got)
            );
        }
        for m in &got {
            let v = m.json();
            assert_eq!(v["id"].as_str(), m.id.as_deref(), "{m:?}");
            assert_eq!(v["type"].as_str(), m.event.as_deref(), "{m:?}");
        }
        Ok(())
    })
    .await
}
