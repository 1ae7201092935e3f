//! Engine events persisted by the consumer, read back through the API; and
//! calls left live by a crash closed at the next start.

use std::time::{Duration, SystemTime};

use maskline::service::engine_events::apply;
use maskline::util::time::{ms_to_system_time, parse_rfc3339, Clock};
use maskline_engine::{Direction, EngineEvent, HangupBy, MediaStats};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::*;

fn at(base: SystemTime, ms: u64) -> SystemTime {
    base + Duration::from_millis(ms)
}

fn initiated(call_id: &str, session_id: &str, t: SystemTime) -> EngineEvent {
    EngineEvent::CallInitiated {
        call_id: call_id.into(),
        session_id: session_id.into(),
        direction: Direction::Inbound,
        caller: PARTY_A.into(),
        callee: PARTY_B.into(),
        at: t,
    }
}

fn hangup(
    call_id: &str,
    session_id: &str,
    cause: &str,
    answered: bool,
    t: SystemTime,
) -> EngineEvent {
    EngineEvent::CallHangup {
        call_id: call_id.into(),
        session_id: session_id.into(),
        cause: cause.into(),
        sip_status: Some(if answered { 200 } else { 487 }),
        hangup_by: HangupBy::A,
        answered,
        at: t,
        media: MediaStats::default(),
    }
}

async fn feed(srv: &Server, events: &[EngineEvent]) {
    for e in events {
        apply(srv.running.events(), srv.running.store(), e)
            .await
            .unwrap_or_else(|err| panic!("{e:?}: {err}"));
    }
}

async fn call(srv: &Server, id: &str) -> Value {
    let (status, body) = srv.get(&format!("/v1/calls/{id}"), ACME_KEY).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

#[tokio::test]
async fn a_call_goes_through_its_states_and_the_session_follows() {
    let dir = TempDir::new("events");
    let srv = Server::fresh(&dir).await;
    let session = srv.create_ab().await;
    let sid = s(&session["id"]).to_string();
    let t = ms_to_system_time(srv.clock.now_ms());
    let sid_ = sid.as_str();

    feed(&srv, &[initiated("cal_1", sid_, t)]).await;
    let view = srv.session(sid_).await;
    assert_eq!(
        (view["state"].clone(), view["call_count"].clone()),
        (json!("active"), json!(1))
    );
    assert_eq!(view["active_call_id"], "cal_1");
    assert_eq!(call(&srv, "cal_1").await["state"], "ringing");

    feed(
        &srv,
        &[
            EngineEvent::CallRinging {
                call_id: "cal_1".into(),
                session_id: sid.clone(),
                at: at(t, 100),
            },
            EngineEvent::CallAnswered {
                call_id: "cal_1".into(),
                session_id: sid.clone(),
                at: at(t, 2_000),
            },
        ],
    )
    .await;
    let c = call(&srv, "cal_1").await;
    assert_eq!(c["state"], "answered");
    assert_eq!(
        parse_rfc3339(s(&c["answered_at"])),
        Some(srv.clock.now_ms() + 2_000)
    );
    feed(
        &srv,
        &[EngineEvent::CallBridged {
            call_id: "cal_1".into(),
            session_id: sid.clone(),
            at: at(t, 2_100),
        }],
    )
    .await;
    assert_eq!(call(&srv, "cal_1").await["state"], "bridged");

    feed(
        &srv,
        &[hangup(
            "cal_1",
            sid_,
            "NORMAL_CLEARING",
            true,
            at(t, 62_000),
        )],
    )
    .await;
    let c = call(&srv, "cal_1").await;
    assert_eq!(c["state"], "completed");
    assert_eq!(c["duration_ms"], 60_000);
    assert_eq!(
        (c["hangup_cause"].clone(), c["hangup_by"].clone()),
        (json!("NORMAL_CLEARING"), json!("a"))
    );
    assert_eq!(c["sip_status"], 200);
    assert_eq!(
        (c["direction"].clone(), c["caller"].clone()),
        (json!("inbound"), json!(PARTY_A))
    );

    let view = srv.session(sid_).await;
    assert_eq!(
        (view["state"].clone(), view["active_call_id"].clone()),
        (json!("open"), Value::Null)
    );
    assert_eq!(view["calls"].as_array().map(Vec::len), Some(1));
    assert_eq!(view["calls"][0], c);

    // A caller hanging up while it rings: cancelled; a busy callee: failed.
    feed(
        &srv,
        &[
            initiated("cal_2", sid_, at(t, 70_000)),
            hangup("cal_2", sid_, "ORIGINATOR_CANCEL", false, at(t, 71_000)),
            initiated("cal_3", sid_, at(t, 80_000)),
            hangup("cal_3", sid_, "USER_BUSY", false, at(t, 81_000)),
        ],
    )
    .await;
    assert_eq!(
        (
            call(&srv, "cal_2").await["state"].clone(),
            call(&srv, "cal_2").await["duration_ms"].clone()
        ),
        (json!("cancelled"), json!(0))
    );
    assert_eq!(call(&srv, "cal_3").await["state"], "failed");
    let view = srv.session(sid_).await;
    assert_eq!(view["call_count"], 3);
    let order: Vec<&str> = view["calls"]
        .as_array()
        .map(|a| a.iter().map(|c| s(&c["id"])).collect())
        .unwrap_or_default();
    assert_eq!(order, ["cal_3", "cal_2", "cal_1"], "newest first");

    // Replays and strays change nothing.
    feed(
        &srv,
        &[
            initiated("cal_1", sid_, at(t, 90_000)),
            hangup("cal_1", sid_, "USER_BUSY", false, at(t, 90_000)),
            initiated("cal_9", "ses_unknown", t),
            EngineEvent::CallAnswered {
                call_id: "cal_nope".into(),
                session_id: sid.clone(),
                at: t,
            },
        ],
    )
    .await;
    assert_eq!(call(&srv, "cal_1").await, c);
    assert_eq!(srv.session(sid_).await["call_count"], 3);

    let kinds: Vec<String> = srv
        .event_types("acme")
        .await
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(
        kinds,
        [
            "session.created",
            "call.initiated",
            "call.ringing",
            "call.answered",
            "call.bridged",
            "call.hangup",
            "call.initiated",
            "call.hangup",
            "call.initiated",
            "call.hangup"
        ]
    );
    let (status, _) = srv.get("/v1/calls/cal_1", BETA_KEY).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another tenant's call");
    srv.stop().await;
}

#[tokio::test]
async fn completed_session_stays_completed_through_late_call_events() {
    let dir = TempDir::new("late");
    let srv = Server::fresh(&dir).await;
    let sid = s(&srv.create_ab().await["id"]).to_string();
    let t = ms_to_system_time(srv.clock.now_ms());
    feed(&srv, &[initiated("cal_1", &sid, t)]).await;
    srv.complete(&sid).await;
    feed(
        &srv,
        &[hangup(
            "cal_1",
            &sid,
            "NORMAL_CLEARING",
            false,
            at(t, 1_000),
        )],
    )
    .await;
    let view = srv.session(&sid).await;
    assert_eq!(
        (view["state"].clone(), view["active_call_id"].clone()),
        (json!("completed"), Value::Null)
    );
    srv.stop().await;
}

#[tokio::test]
async fn calls_live_at_a_crash_are_closed_on_restart() {
    let dir = TempDir::new("crash");
    let config = config(&dir.0);
    let t0 = wall_now_ms();
    let srv = Server::start(&config, Clock::manual(t0)).await;
    let a = s(&srv.create_ab().await["id"]).to_string();
    let b = s(&srv.create_ab().await["id"]).to_string();
    let t = ms_to_system_time(t0);
    feed(
        &srv,
        &[
            initiated("cal_answered", &a, t),
            EngineEvent::CallAnswered {
                call_id: "cal_answered".into(),
                session_id: a.clone(),
                at: at(t, 1_000),
            },
            initiated("cal_ringing", &b, t),
        ],
    )
    .await;
    srv.stop().await;

    let srv = Server::start(&config, Clock::manual(t0 + 11_000)).await;
    assert_eq!(srv.running.recovery().calls_closed, 2);
    let answered = call(&srv, "cal_answered").await;
    assert_eq!(answered["state"], "completed");
    assert_eq!(answered["duration_ms"], 10_000);
    assert_eq!(
        (
            answered["hangup_cause"].clone(),
            answered["hangup_by"].clone()
        ),
        (json!("SYSTEM_SHUTDOWN"), json!("system"))
    );
    let ringing = call(&srv, "cal_ringing").await;
    assert_eq!(
        (ringing["state"].clone(), ringing["duration_ms"].clone()),
        (json!("failed"), json!(0))
    );
    for sid in [&a, &b] {
        let view = srv.session(sid).await;
        assert_eq!(
            (view["state"].clone(), view["active_call_id"].clone()),
            (json!("open"), Value::Null)
        );
    }
    assert_eq!(srv.running.engine().routes().len(), 2);
    srv.stop().await;
}
