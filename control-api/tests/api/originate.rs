//! `POST /v1/calls/originate` and `POST /v1/calls/{id}/cancel` through the
//! real engine, with a UDP sink on loopback as the carrier trunk: it records
//! the INVITEs Maskline sends and never answers, so originated calls stay
//! ringing while the limits are checked. Answered, busy and no-answer legs
//! are covered with SIPp by the end-to-end suite.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use sip_config::{Config, TrunkConfig};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use maskline::util::time::Clock;

use crate::support::*;

/// A trunk that receives and never answers; yields each request's text.
struct Sink {
    addr: std::net::SocketAddr,
    rx: mpsc::UnboundedReceiver<String>,
}

impl Sink {
    async fn start() -> Sink {
        let sock = UdpSocket::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("bind: {e}"));
        let addr = sock.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65_536];
            while let Ok((n, _)) = sock.recv_from(&mut buf).await {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                if tx.send(text).is_err() {
                    break;
                }
            }
        });
        Sink { addr, rx }
    }

    /// The next new INVITE (retransmissions of one Call-ID skipped).
    async fn next_invite(&mut self, seen: &mut Vec<String>) -> String {
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(5), self.rx.recv())
                .await
                .ok()
                .flatten()
                .unwrap_or_else(|| panic!("no INVITE reached the trunk"));
            if !msg.starts_with("INVITE ") {
                continue;
            }
            let call_id = header(&msg, "Call-ID");
            if !seen.contains(&call_id) {
                seen.push(call_id);
                return msg;
            }
        }
    }
}

fn header(msg: &str, name: &str) -> String {
    msg.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .unwrap_or_default()
        .to_string()
}

fn config_with(dir: &TempDir, sink: &Sink, max_concurrent: u32, cps: u32) -> Config {
    let mut c = config(&dir.0);
    c.trunks = vec![TrunkConfig {
        address: sink.addr,
        ..TrunkConfig::default()
    }];
    c.tenants[0].max_concurrent_calls = max_concurrent;
    c.tenants[0].calls_per_second = cps;
    c.tenants[0].numbers = (1..=6).map(|i| format!("+1555000000{i}")).collect();
    c
}

async fn originate(srv: &Server, session_id: &str, from: &str) -> (StatusCode, Value) {
    srv.post(
        "/v1/calls/originate",
        ACME_KEY,
        &json!({"session_id": session_id, "from_party": from}),
    )
    .await
}

async fn call(srv: &Server, id: &str) -> Value {
    let (status, json) = srv.get(&format!("/v1/calls/{id}"), ACME_KEY).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    json
}

/// Wait (bounded) until the call reaches `state`.
async fn wait_state(srv: &Server, id: &str, state: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let c = call(srv, id).await;
        if c["state"] == state {
            return c;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "call {id} never reached {state}: {c}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap_or_default().to_string()
}

#[tokio::test]
async fn originate_rings_the_first_party_with_the_masked_number() {
    let dir = TempDir::new("orig-ring");
    let mut sink = Sink::start().await;
    let srv = Server::start(&config_with(&dir, &sink, 10, 10), Clock::system()).await;
    let session = srv.create_ab().await;
    let (status, c) = originate(&srv, &id(&session), "b").await;
    assert_eq!(status, StatusCode::CREATED, "{c}");
    assert_eq!(c["state"], "ringing");
    assert_eq!(c["direction"], "outbound");
    assert_eq!(c["caller"], PARTY_B, "from_party b is rung first");
    assert_eq!(c["callee"], PARTY_A);

    let invite = sink.next_invite(&mut Vec::new()).await;
    let masked = session["masked_number"].as_str().unwrap_or_default();
    assert!(
        invite.starts_with(&format!("INVITE sip:{PARTY_B}@")),
        "{invite}"
    );
    assert!(header(&invite, "From").contains(masked), "{invite}");
    assert!(header(&invite, "P-Asserted-Identity").contains(masked));
    assert!(!invite.contains(&PARTY_A[1..]), "party A leaked:\n{invite}");

    let s = srv.session(&id(&session)).await;
    assert_eq!(s["state"], "active");
    assert_eq!(s["active_call_id"], c["id"]);
    // One call per session.
    let (status, busy) = originate(&srv, &id(&session), "a").await;
    assert_eq!(status, StatusCode::CONFLICT, "{busy}");
    assert_eq!(busy["error"], "session_busy");
    let types: Vec<String> = srv
        .event_types("acme")
        .await
        .into_iter()
        .map(|(t, _)| t)
        .collect();
    assert!(types.contains(&"call.initiated".to_string()), "{types:?}");
}

#[tokio::test]
async fn bad_bodies_unknown_foreign_and_completed_sessions() {
    let dir = TempDir::new("orig-bad");
    let sink = Sink::start().await;
    let srv = Server::start(&config_with(&dir, &sink, 10, 10), Clock::system()).await;
    let (status, e) = srv
        .post(
            "/v1/calls/originate",
            ACME_KEY,
            &json!({"from_party": "c", "x": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    for f in ["session_id", "from_party", "x"] {
        assert!(e["fields"].get(f).is_some(), "{f} not named: {e}");
    }
    let (status, e) = originate(&srv, "ses_nope", "a").await;
    assert_eq!(
        (status, e["error"].clone()),
        (StatusCode::NOT_FOUND, json!("not_found"))
    );

    let (status, beta) = srv
        .post(
            "/v1/sessions",
            BETA_KEY,
            &json!({"party_a": PARTY_A, "party_b": PARTY_B}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{beta}");
    let (status, _) = originate(&srv, &id(&beta), "a").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another tenant's session");

    let session = srv.create_ab().await;
    srv.complete(&id(&session)).await;
    let (status, e) = originate(&srv, &id(&session), "a").await;
    assert_eq!(status, StatusCode::CONFLICT, "{e}");
    assert_eq!(e["error"], "session_completed");

    let (status, e) = srv
        .post("/v1/calls/cal_nope/cancel", ACME_KEY, &Value::Null)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{e}");
}

#[tokio::test]
async fn the_concurrency_cap_is_409_with_the_live_calls() {
    let dir = TempDir::new("orig-cap");
    let sink = Sink::start().await;
    let srv = Server::start(&config_with(&dir, &sink, 2, 100), Clock::system()).await;
    let mut live = Vec::new();
    for _ in 0..2 {
        let s = srv.create_ab().await;
        let (status, c) = originate(&srv, &id(&s), "a").await;
        assert!(status.is_success(), "{c}");
        live.push(id(&c));
    }
    let third = srv.create_ab().await;
    let (status, e) = originate(&srv, &id(&third), "a").await;
    assert_eq!(status, StatusCode::CONFLICT, "{e}");
    assert_eq!(e["error"], "concurrent_call_not_allowed");
    assert_eq!(e["max_concurrent"], 2);
    let mut ids: Vec<String> = e["active_call_ids"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    live.sort();
    assert_eq!(ids, live);

    // Cancel one (still ringing: the trunk never answers); then there is room.
    let (status, r) = srv
        .post(
            &format!("/v1/calls/{}/cancel", live[0]),
            ACME_KEY,
            &Value::Null,
        )
        .await;
    assert_eq!((status, r), (StatusCode::OK, json!({"cancelled": true})));
    let c = wait_state(&srv, &live[0], "cancelled").await;
    assert_eq!(c["hangup_by"], "api");
    let (status, r) = srv
        .post(
            &format!("/v1/calls/{}/cancel", live[0]),
            ACME_KEY,
            &Value::Null,
        )
        .await;
    assert_eq!(
        (status, r),
        (StatusCode::OK, json!({"cancelled": true})),
        "idempotent"
    );
    let (status, c) = originate(&srv, &id(&third), "a").await;
    assert!(status.is_success(), "{c}");
}

#[tokio::test]
async fn over_the_rate_calls_queue_in_order_and_a_queued_call_can_be_cancelled() {
    let dir = TempDir::new("orig-queue");
    let mut sink = Sink::start().await;
    let srv = Server::start(&config_with(&dir, &sink, 10, 1), Clock::system()).await;
    let mut calls = Vec::new();
    for _ in 0..3 {
        let s = srv.create_ab().await;
        calls.push(originate(&srv, &id(&s), "a").await);
    }
    assert_eq!(calls[0].0, StatusCode::CREATED, "{}", calls[0].1);
    for (i, (status, c)) in calls.iter().enumerate().skip(1) {
        assert_eq!(*status, StatusCode::ACCEPTED, "{c}");
        assert_eq!(c["state"], "queued");
        assert_eq!(c["position"], i, "{c}");
    }
    let queued = id(&calls[1].1);
    let third = id(&calls[2].1);
    let (status, r) = srv
        .post(&format!("/v1/calls/{third}/cancel"), ACME_KEY, &Value::Null)
        .await;
    assert_eq!((status, r), (StatusCode::OK, json!({"cancelled": true})));
    let c = call(&srv, &third).await;
    assert_eq!(c["state"], "cancelled");
    assert_eq!(c["hangup_cause"], "ORIGINATOR_CANCEL");

    // The first goes out at once, the second a slot (1 s) later.
    let mut seen = Vec::new();
    sink.next_invite(&mut seen).await;
    let t0 = tokio::time::Instant::now();
    sink.next_invite(&mut seen).await;
    let gap = t0.elapsed();
    assert!(gap >= Duration::from_millis(700), "dialled after {gap:?}");
    wait_state(&srv, &queued, "ringing").await;
    assert_eq!(call(&srv, &third).await["state"], "cancelled");
}

#[tokio::test]
async fn an_idempotency_key_replays_the_originate() {
    let dir = TempDir::new("orig-idem");
    let sink = Sink::start().await;
    let srv = Server::start(&config_with(&dir, &sink, 10, 10), Clock::system()).await;
    let s = srv.create_ab().await;
    let body = json!({"session_id": id(&s), "from_party": "a"});
    let send = |b: Value| {
        srv.send(
            srv.client
                .post(format!("{}/v1/calls/originate", srv.base))
                .header("X-API-Key", ACME_KEY)
                .header("Idempotency-Key", "dial-1")
                .json(&b),
        )
    };
    let (status, first) = send(body.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(first["replayed"], false);
    let (status, again) = send(body).await;
    assert_eq!(status, StatusCode::CREATED, "{again}");
    assert_eq!(again["replayed"], true);
    assert_eq!(again["id"], first["id"]);
    let session = srv.session(&id(&s)).await;
    assert_eq!(session["calls"].as_array().map(Vec::len), Some(1));
    let (status, e) = send(json!({"session_id": id(&s), "from_party": "b"})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{e}");
    assert_eq!(e["error"], "idempotency_conflict");
}

#[tokio::test]
async fn a_call_queued_at_a_stop_is_dialled_after_the_restart() {
    let dir = TempDir::new("orig-restart");
    let mut sink = Sink::start().await;
    let mut cfg = config_with(&dir, &sink, 10, 1);
    cfg.calls.drain_timeout_secs = 1; // the first call rings on: end it
    let queued = {
        let srv = Server::start(&cfg, Clock::system()).await;
        let a = srv.create_ab().await;
        let b = srv.create_ab().await;
        let (status, _) = originate(&srv, &id(&a), "a").await;
        assert_eq!(status, StatusCode::CREATED);
        let (status, q) = originate(&srv, &id(&b), "a").await;
        assert_eq!(status, StatusCode::ACCEPTED, "{q}");
        srv.running
            .shutdown()
            .await
            .unwrap_or_else(|e| panic!("shutdown: {e}"));
        id(&q)
    };
    let mut seen = Vec::new();
    sink.next_invite(&mut seen).await; // the first call's
    let srv = Server::start(&cfg, Clock::system()).await;
    let c = call(&srv, &queued).await;
    if c["state"] == "queued" || c["state"] == "ringing" {
        // Dialled after the restart (or just before the stop): the trunk
        // gets its INVITE either way, and it is live.
        wait_state(&srv, &queued, "ringing").await;
        sink.next_invite(&mut seen).await;
    } else {
        panic!("queued call lost across the restart: {c}");
    }
}
