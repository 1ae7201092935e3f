//! Call-control commands over HTTP: every 422, 404s, 409 `call_ended`,
//! `command_uid` replay (also concurrent), operations and `command.result`.
//!
//! The calls here are fed to the store as engine events; the real engine
//! does not know them, so a dispatched command fails with `call_ended`
//! (the SIP side of each command is tested end to end in `tests/e2e`).

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::*;

fn cmd(call: &str, name: &str) -> String {
    format!("/v1/calls/{call}/commands/{name}")
}

/// A server with acme's session `sid` and its ringing call `cal_1`.
async fn with_call(tag: &str) -> (TempDir, Server, String) {
    let dir = TempDir::new(tag);
    let srv = Server::fresh(&dir).await;
    let sid = s(&srv.create_ab().await["id"]).to_string();
    srv.call_started("cal_1", &sid).await;
    (dir, srv, sid)
}

/// The next `command.result` published on the bus.
async fn next_result(
    rx: &mut tokio::sync::broadcast::Receiver<std::sync::Arc<maskline::store::events::EventRow>>,
) -> Value {
    let wait = async {
        loop {
            match rx.recv().await {
                Ok(row) if row.kind == "command.result" => {
                    return serde_json::from_str::<Value>(&row.envelope_json())
                        .unwrap_or(Value::Null)
                }
                Ok(_) => continue,
                Err(e) => panic!("bus: {e}"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), wait)
        .await
        .unwrap_or_else(|_| panic!("no command.result within 5 s"))
}

#[tokio::test]
async fn every_invalid_body_is_a_422_naming_the_field() {
    let (_dir, srv, _) = with_call("cmd-422").await;
    let long_uid = "u".repeat(129);
    let long_cause = "A".repeat(65);
    let cases: Vec<(&str, Value, &str)> = vec![
        ("answer", json!({"command_uid": long_uid}), "command_uid"),
        ("answer", json!({"command_uid": ""}), "command_uid"),
        ("answer", json!({"command_uid": "has space"}), "command_uid"),
        (
            "answer",
            json!({"command_uid": "semi;colon"}),
            "command_uid",
        ),
        ("answer", json!({"command_uid": 42}), "command_uid"),
        ("answer", json!({"cause": "USER_BUSY"}), "cause"),
        ("disconnect", json!({"cause": "USER_BUSY"}), "cause"),
        ("hangup", json!({"cause": long_cause}), "cause"),
        ("hangup", json!({"cause": "user_busy"}), "cause"),
        ("hangup", json!({"cause": "USER BUSY"}), "cause"),
        ("hangup", json!({"cause": "NO_SUCH_CAUSE"}), "cause"),
        ("hangup", json!({"cause": ["USER_BUSY"]}), "cause"),
        ("hangup", json!({"reason": "x"}), "reason"),
        ("answer", json!([1]), "body"),
    ];
    for (name, body, field) in cases {
        let (status, json) = srv.post(&cmd("cal_1", name), ACME_KEY, &body).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{name} {body}: {json}"
        );
        assert_eq!(json["error"], "validation_failed", "{json}");
        assert!(json["fields"][field].is_string(), "{name} {body}: {json}");
    }
    let (status, json) = srv
        .post_raw(&cmd("cal_1", "hangup"), ACME_KEY, "{\"cause\":")
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        s(&json["fields"]["body"]).starts_with("malformed JSON"),
        "{json}"
    );
    srv.stop().await;
}

#[tokio::test]
async fn unknown_command_call_or_tenant_is_404_and_an_ended_call_409() {
    let (_dir, srv, sid) = with_call("cmd-404").await;
    let (status, json) = srv
        .post(&cmd("cal_1", "transfer"), ACME_KEY, &json!({}))
        .await;
    assert_eq!(
        (status, s(&json["error"])),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let (status, json) = srv
        .post(&cmd("cal_nope", "answer"), ACME_KEY, &json!({}))
        .await;
    assert_eq!(
        (status, s(&json["error"])),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let (status, json) = srv
        .post(&cmd("cal_1", "answer"), BETA_KEY, &json!({}))
        .await;
    assert_eq!(
        (status, s(&json["error"])),
        (StatusCode::NOT_FOUND, "not_found"),
        "another tenant's call"
    );
    let (status, _) = srv
        .post(&cmd("cal_1", "answer"), "wrong-key", &json!({}))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // A uid used before the call ended still finds its operation after.
    let (status, first) = srv
        .post(
            &cmd("cal_1", "hangup"),
            ACME_KEY,
            &json!({"command_uid": "h1"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{first}");
    srv.call_ended("cal_1", &sid).await;
    for name in ["answer", "hangup", "disconnect"] {
        let (status, json) = srv.post(&cmd("cal_1", name), ACME_KEY, &json!({})).await;
        assert_eq!(
            (status, s(&json["error"])),
            (StatusCode::CONFLICT, "call_ended"),
            "{name}"
        );
    }
    let (status, again) = srv
        .post(
            &cmd("cal_1", "hangup"),
            ACME_KEY,
            &json!({"command_uid": "h1"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{again}");
    assert_eq!(again["operation_id"], first["operation_id"]);
    assert_eq!(again["replayed"], true);
    srv.stop().await;
}

#[tokio::test]
async fn accepted_command_is_an_operation_with_a_command_result() {
    let (_dir, srv, sid) = with_call("cmd-op").await;
    let mut rx = srv.running.events().subscribe();
    let (status, body) = srv
        .post(
            &cmd("cal_1", "hangup"),
            ACME_KEY,
            &json!({"cause": "USER_BUSY"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["status"], "in_progress");
    assert_eq!(body["timeout_ms"], 2000);
    assert_eq!(body["replayed"], false);
    let op_id = s(&body["operation_id"]).to_string();
    let uuid = uuid_parts(&op_id);
    assert_eq!(uuid, [8, 4, 4, 4, 12], "{op_id}");
    assert_eq!(op_id.chars().nth(14), Some('4'), "UUID v4: {op_id}");

    let result = next_result(&mut rx).await;
    assert_eq!(result["type"], "command.result");
    let data = &result["data"];
    assert_eq!(data["operation_id"], op_id.as_str());
    assert_eq!(
        (s(&data["call_id"]), s(&data["command"]), s(&data["cause"])),
        ("cal_1", "hangup", "USER_BUSY")
    );
    // The engine never saw this call.
    assert_eq!(data["status"], "failed");
    assert_eq!(data["error"]["code"], "call_ended");

    let (status, op) = srv.get(&format!("/v1/operations/{op_id}"), ACME_KEY).await;
    assert_eq!(status, StatusCode::OK, "{op}");
    assert_eq!((s(&op["id"]), s(&op["status"])), (op_id.as_str(), "failed"));
    assert!(op["completed_at"].is_string());
    let (status, _) = srv.get(&format!("/v1/operations/{op_id}"), BETA_KEY).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another tenant's operation");
    let (status, _) = srv.get("/v1/operations/nope", ACME_KEY).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Default cause, and the event row carries the call and session ids.
    let (status, body) = srv.post_raw(&cmd("cal_1", "hangup"), ACME_KEY, "").await;
    assert_eq!(
        status,
        StatusCode::ACCEPTED,
        "an empty body is {{}}: {body}"
    );
    let result = next_result(&mut rx).await;
    assert_eq!(result["data"]["operation_id"], body["operation_id"]);
    assert_eq!(result["data"]["cause"], "NORMAL_CLEARING");
    let rows = {
        let mut conn = srv
            .running
            .store()
            .pool()
            .acquire()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let id = result["id"]
            .as_str()
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(0);
        maskline::store::events::get(&mut conn, id)
            .await
            .ok()
            .flatten()
    };
    let row = rows.unwrap_or_else(|| panic!("event row"));
    assert_eq!(
        (row.call_id.as_deref(), row.session_id.as_deref()),
        (Some("cal_1"), Some(sid.as_str()))
    );
    srv.stop().await;
}

fn uuid_parts(id: &str) -> Vec<usize> {
    id.split('-').map(str::len).collect()
}

#[tokio::test]
async fn same_command_uid_is_the_same_operation_even_concurrently() {
    let (_dir, srv, _) = with_call("cmd-uid").await;
    let mut rx = srv.running.events().subscribe();
    let url = format!("{}{}", srv.base, cmd("cal_1", "answer"));
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let req = srv
            .client
            .post(&url)
            .header("X-API-Key", ACME_KEY)
            .json(&json!({"command_uid": "answer-once"}));
        tasks.push(tokio::spawn(async move {
            let resp = req.send().await.unwrap_or_else(|e| panic!("{e}"));
            let status = resp.status();
            let json: Value = resp.json().await.unwrap_or(Value::Null);
            (status, json)
        }));
    }
    let mut ids = Vec::new();
    let mut fresh = 0;
    for t in tasks {
        let (status, json) = t.await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(status, StatusCode::ACCEPTED, "{json}");
        ids.push(s(&json["operation_id"]).to_string());
        if json["replayed"] == false {
            fresh += 1;
        }
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "one operation: {ids:?}");
    assert_eq!(fresh, 1, "exactly one request created it");
    let result = next_result(&mut rx).await;
    assert_eq!(result["data"]["operation_id"], ids[0].as_str());

    // Later: same uid, same command → the same operation with its result.
    let (status, again) = srv
        .post(
            &cmd("cal_1", "answer"),
            ACME_KEY,
            &json!({"command_uid": "answer-once"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(
        (s(&again["operation_id"]), s(&again["status"])),
        (ids[0].as_str(), "failed")
    );
    // Same uid for another command: a conflict, not a silent replay.
    let (status, json) = srv
        .post(
            &cmd("cal_1", "disconnect"),
            ACME_KEY,
            &json!({"command_uid": "answer-once"}),
        )
        .await;
    assert_eq!(
        (status, s(&json["error"])),
        (StatusCode::CONFLICT, "command_uid_conflict")
    );
    // Exactly one command.result: nothing else was dispatched.
    let kinds = srv.event_types("acme").await;
    let results = kinds.iter().filter(|(k, _)| k == "command.result").count();
    assert_eq!(results, 1);
    srv.stop().await;
}

#[tokio::test]
async fn operations_left_in_progress_by_a_stop_fail_at_the_next_start() {
    let dir = TempDir::new("cmd-recover");
    let config = config(&dir.0);
    let srv = Server::start(&config, maskline::util::time::Clock::manual(wall_now_ms())).await;
    let sid = s(&srv.create_ab().await["id"]).to_string();
    srv.call_started("cal_1", &sid).await;
    // An operation whose result never came (as if the process died).
    {
        let mut conn = srv
            .running
            .store()
            .pool()
            .acquire()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let tenant = maskline::store::tenants::find_by_name(&mut conn, "acme")
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("acme"));
        let op = maskline::store::operations::OperationRow {
            id: "00000000-0000-4000-8000-000000000000".into(),
            tenant_id: tenant.id,
            call_id: "cal_1".into(),
            command: "answer".into(),
            command_uid: None,
            cause: None,
            status: "in_progress".into(),
            error: None,
            error_message: None,
            created_at: wall_now_ms(),
            completed_at: None,
        };
        assert!(matches!(
            maskline::store::operations::insert(&mut conn, &op).await,
            Ok(true)
        ));
    }
    srv.stop().await;
    let srv = Server::start(&config, maskline::util::time::Clock::manual(wall_now_ms())).await;
    let (_, op) = srv
        .get(
            "/v1/operations/00000000-0000-4000-8000-000000000000",
            ACME_KEY,
        )
        .await;
    assert_eq!(
        (s(&op["status"]), s(&op["error"]["code"])),
        ("failed", "interrupted")
    );
    let results = srv.event_types("acme").await;
    assert!(results.iter().any(|(k, d)| k == "command.result"
        && d["operation_id"] == "00000000-0000-4000-8000-000000000000"));
    srv.stop().await;
}
