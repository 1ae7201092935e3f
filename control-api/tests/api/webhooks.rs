//! Webhooks: endpoint API, signed deliveries with retries (same
//! `webhook-id`), `Retry-After`, 410 disabling the endpoint, and delivery
//! resuming after a restart.

use std::time::Duration;

use maskline::webhook::signature::sign;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::receiver::{Hit, Receiver};
use crate::support::*;

const WITHIN: Duration = Duration::from_secs(10);

fn config_with_schedule(dir: &TempDir, schedule: &[u64]) -> sip_config::Config {
    let mut c = config(&dir.0);
    c.webhooks.retry_schedule_secs = schedule.to_vec();
    c.webhooks.timeout_secs = 5;
    c
}

async fn set_webhook(srv: &Server, url: &str) -> String {
    let (status, body) = srv
        .put("/v1/webhook", ACME_KEY, &json!({ "url": url }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["url"], url);
    s(&body["secret"]).to_string()
}

/// The hit is a correctly signed Standard Webhooks request for `event_id`.
fn assert_signed(hit: &Hit, secret: &str, event_id: &str) {
    assert_eq!(hit.header("webhook-id"), format!("msg_{event_id}"));
    assert_eq!(hit.header("content-type"), "application/json");
    let ts: i64 = hit.header("webhook-timestamp").parse().unwrap_or(0);
    let now = wall_now_ms() / 1000;
    assert!(
        (now - 60..=now + 1).contains(&ts),
        "timestamp {ts} vs now {now}"
    );
    let expected = sign(secret, hit.header("webhook-id"), ts, &hit.body);
    assert_eq!(
        expected.as_deref().ok(),
        Some(hit.header("webhook-signature"))
    );
    let v: Value = serde_json::from_str(&hit.body).unwrap_or_default();
    assert_eq!(v["id"], event_id);
    assert!(v["type"].is_string() && v["created_at"].is_string() && v["data"].is_object());
}

/// Polls `GET path` (bounded) until `done` holds: the receiver sees a
/// request before the worker has recorded its outcome.
async fn wait_until(srv: &Server, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + WITHIN;
    loop {
        let (_, got) = srv.get(path, ACME_KEY).await;
        if done(&got) {
            return got;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "GET {path} never got there: {got}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The id (as a string) of the last `session.created` event of acme.
async fn last_event_id(srv: &Server) -> String {
    let mut conn = srv
        .running
        .store()
        .pool()
        .acquire()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let acme = maskline::store::tenants::find_by_name(&mut conn, "acme")
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("acme"));
    maskline::store::events::list_after(&mut conn, &acme.id, 0, 1000)
        .await
        .unwrap_or_default()
        .last()
        .map(|e| e.id.to_string())
        .unwrap_or_else(|| panic!("no event"))
}

#[tokio::test]
async fn endpoint_put_get_delete_and_every_422() {
    let dir = TempDir::new("wh-api");
    let srv = Server::fresh(&dir).await;
    for (body, field) in [
        (json!({}), "url"),
        (json!({"url": null}), "url"),
        (json!({"url": 5}), "url"),
        (json!({"url": "ftp://example.com/hooks"}), "url"),
        (json!({"url": "not a url"}), "url"),
        (
            json!({"url": "http://example.com/", "secret": "mine"}),
            "secret",
        ),
        (json!("http://example.com/"), "body"),
    ] {
        let (status, json) = srv.put("/v1/webhook", ACME_KEY, &body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {json}");
        assert!(json["fields"][field].is_string(), "{body}: {json}");
    }
    let (status, _) = srv.get("/v1/webhook", ACME_KEY).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let first = set_webhook(&srv, "http://127.0.0.1:9/a").await;
    assert!(first.starts_with("whsec_"), "{first}");
    let (status, got) = srv.get("/v1/webhook", ACME_KEY).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (
            got["url"].clone(),
            got["secret_set"].clone(),
            got["enabled"].clone()
        ),
        (json!("http://127.0.0.1:9/a"), json!(true), json!(true))
    );
    assert!(
        got.get("secret").is_none() && !got.to_string().contains(&first),
        "{got}"
    );
    let second = set_webhook(&srv, "https://example.com/b").await;
    assert_ne!(first, second, "a new secret on every PUT");
    let (status, _) = srv.get("/v1/webhook", BETA_KEY).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "beta has none");

    let (status, body) = srv.delete("/v1/webhook", ACME_KEY).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"deleted": true})));
    let (_, body) = srv.delete("/v1/webhook", ACME_KEY).await;
    assert_eq!(body, json!({"deleted": false}));
    let (status, _) = srv.get("/v1/webhook", ACME_KEY).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, list) = srv.get("/v1/webhook/deliveries", ACME_KEY).await;
    assert_eq!((status, list), (StatusCode::OK, json!({"data": []})));
    let (status, _) = srv.get("/v1/webhook/deliveries?limit=0", ACME_KEY).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    srv.stop().await;
}

#[tokio::test]
async fn fails_twice_then_delivered_with_the_same_webhook_id() {
    let dir = TempDir::new("wh-retry");
    let config = config_with_schedule(&dir, &[0, 0, 0]);
    let srv = Server::start(&config, maskline::util::time::Clock::manual(wall_now_ms())).await;
    let mut rx = Receiver::start(&[(500, None), (500, None)]).await;
    let secret = set_webhook(&srv, &rx.url).await;
    srv.create_ab().await;
    let event_id = last_event_id(&srv).await;
    let hits = [
        rx.next_for(&event_id, WITHIN).await,
        rx.next_for(&event_id, WITHIN).await,
        rx.next_for(&event_id, WITHIN).await,
    ];
    for hit in &hits {
        assert_signed(hit, &secret, &event_id);
        assert_eq!(hit.body, hits[0].body, "the same body each time");
    }
    assert_eq!(
        hits.iter().map(|h| h.status).collect::<Vec<_>>(),
        [500, 500, 200]
    );

    let list = wait_until(&srv, "/v1/webhook/deliveries", |l| {
        l["data"][0]["outcome"] == "delivered"
    })
    .await;
    let rows = list["data"].as_array().cloned().unwrap_or_default();
    let summary: Vec<(i64, Option<i64>, String)> = rows
        .iter()
        .map(|r| {
            (
                r["attempt"].as_i64().unwrap_or(0),
                r["status_code"].as_i64(),
                s(&r["outcome"]).to_string(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (3, Some(200), "delivered".to_string()),
            (2, Some(500), "retry".to_string()),
            (1, Some(500), "retry".to_string())
        ],
        "{list}"
    );
    assert!(rows.iter().all(|r| r["event_id"] == event_id.as_str()
        && r["event_type"] == "session.created"
        && r["webhook_id"] == format!("msg_{event_id}")
        && r["delivery_status"] == "delivered"));
    srv.stop().await;
}

#[tokio::test]
async fn retry_after_is_honoured_and_410_disables_the_endpoint() {
    let dir = TempDir::new("wh-410");
    let config = config_with_schedule(&dir, &[0, 0, 0]);
    let srv = Server::start(&config, maskline::util::time::Clock::manual(wall_now_ms())).await;
    let mut rx = Receiver::start(&[(503, Some("1")), (410, None)]).await;
    set_webhook(&srv, &rx.url).await;
    srv.create_ab().await;
    let event_id = last_event_id(&srv).await;
    let first = rx.next_for(&event_id, WITHIN).await;
    let second = rx.next_for(&event_id, WITHIN).await;
    let gap = second.at.duration_since(first.at);
    assert!(
        gap >= Duration::from_millis(950),
        "Retry-After: 1 not honoured: {gap:?}"
    );
    assert_eq!((first.status, second.status), (503, 410));

    let got = wait_until(&srv, "/v1/webhook", |g| g["enabled"] == false).await;
    assert!(s(&got["disabled_reason"]).contains("410"), "{got}");
    // Events while disabled are not queued.
    srv.create_ab().await;
    let pending: i64 = {
        let mut conn = srv
            .running
            .store()
            .pool()
            .acquire()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        sqlx::query_scalar("SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'pending'")
            .fetch_one(&mut *conn)
            .await
            .unwrap_or(-1)
    };
    assert_eq!(pending, 0);
    let (_, list) = srv.get("/v1/webhook/deliveries", ACME_KEY).await;
    assert_eq!(list["data"][0]["outcome"], "disabled", "{list}");
    // PUT enables it again.
    set_webhook(&srv, &rx.url).await;
    let (_, got) = srv.get("/v1/webhook", ACME_KEY).await;
    assert_eq!(got["enabled"], true);
    srv.stop().await;
}

#[tokio::test]
async fn a_restart_between_attempts_still_delivers() {
    let dir = TempDir::new("wh-restart");
    let config = config_with_schedule(&dir, &[0, 2]);
    let mut rx = Receiver::start(&[(500, None)]).await;
    let srv = Server::start(&config, maskline::util::time::Clock::manual(wall_now_ms())).await;
    let secret = set_webhook(&srv, &rx.url).await;
    srv.create_ab().await;
    let event_id = last_event_id(&srv).await;
    let first = rx.next_for(&event_id, WITHIN).await;
    assert_eq!(first.status, 500);
    wait_until(&srv, "/v1/webhook/deliveries", |l| {
        l["data"][0]["outcome"] == "retry"
    })
    .await;
    srv.stop().await;

    let srv = Server::start(&config, maskline::util::time::Clock::manual(wall_now_ms())).await;
    let second = rx.next_for(&event_id, WITHIN).await;
    assert_eq!(second.status, 200);
    assert_signed(&second, &secret, &event_id);
    assert_eq!(second.header("webhook-id"), first.header("webhook-id"));
    assert!(
        second.at.duration_since(first.at) >= Duration::from_millis(1_750),
        "the 2 s (±10 %) schedule still applies across the restart"
    );
    let list = wait_until(&srv, "/v1/webhook/deliveries", |l| {
        l["data"][0]["delivery_status"] == "delivered"
    })
    .await;
    assert_eq!(list["data"][0]["attempt"], 2);
    srv.stop().await;
}
