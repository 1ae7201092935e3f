//! `Idempotency-Key` on `POST /v1/sessions`: every row of the table.

use reqwest::StatusCode;
use serde_json::Value;

use maskline::store::idempotency::{self as keys, Claim, IdempotencyRow};
use maskline::store::tenants;

use crate::support::*;

const BODY: &str =
    r#"{"party_a": "+14155550101", "party_b": "+14155550102", "metadata": {"x": 1, "y": [1, 2]}}"#;
/// The same JSON as [`BODY`], keys reordered and spaced differently.
const SAME_BODY: &str =
    r#"{ "metadata":{"y":[1,2],"x":1},"party_b":"+14155550102",   "party_a":"+14155550101" }"#;

async fn post_keyed(
    srv: &Server,
    api_key: &str,
    idem: &str,
    body: &str,
) -> (StatusCode, Value, Option<String>) {
    let resp = srv
        .client
        .post(format!("{}/v1/sessions", srv.base))
        .header("X-API-Key", api_key)
        .header("Idempotency-Key", idem)
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap_or_else(|e| panic!("request: {e}"));
    let status = resp.status();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let text = resp.text().await.unwrap_or_default();
    let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{status}: {e}: {text}"));
    (status, json, retry_after)
}

async fn session_count(srv: &Server, key: &str) -> usize {
    let (status, page) = srv.get("/v1/sessions?limit=100", key).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["data"].as_array().map_or(0, Vec::len)
}

#[tokio::test]
async fn same_key_same_body_replays_the_stored_response() {
    let dir = TempDir::new("idem-replay");
    let srv = Server::fresh(&dir).await;
    let (status, first, _) = post_keyed(&srv, ACME_KEY, "order-1", BODY).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(first["replayed"], false);

    srv.clock.advance_ms(5_000);
    let (status, again, _) = post_keyed(&srv, ACME_KEY, "order-1", SAME_BODY).await;
    assert_eq!(status, StatusCode::CREATED, "{again}");
    assert_eq!(again["replayed"], true);
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(o) = v.as_object_mut() {
            o.remove("replayed");
        }
        v
    };
    assert_eq!(
        strip(&again),
        strip(&first),
        "the stored response, unchanged"
    );
    assert_eq!(
        session_count(&srv, ACME_KEY).await,
        1,
        "nothing created twice"
    );
    // The replay did not take a second pool number.
    let next = srv.create_ab().await;
    assert_eq!(next["masked_number"], ACME_NUMBERS[1]);
    srv.stop().await;
}

#[tokio::test]
async fn same_key_different_body_is_a_conflict() {
    let dir = TempDir::new("idem-conflict");
    let srv = Server::fresh(&dir).await;
    let (status, _, _) = post_keyed(&srv, ACME_KEY, "k", BODY).await;
    assert_eq!(status, StatusCode::CREATED);
    let other = r#"{"party_a": "+14155550101", "party_b": "+14155550199"}"#;
    let (status, err, _) = post_keyed(&srv, ACME_KEY, "k", other).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(err["error"], "idempotency_conflict");
    assert_eq!(session_count(&srv, ACME_KEY).await, 1);
    srv.stop().await;
}

#[tokio::test]
async fn running_first_request_is_in_progress_then_state_unknown_after_120s() {
    let dir = TempDir::new("idem-progress");
    let srv = Server::fresh(&dir).await;
    // A first request that took the key and has not answered (yet).
    let now = srv.clock.now_ms();
    let mut conn = srv
        .running
        .store()
        .pool()
        .acquire()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let acme = tenants::find_by_name(&mut conn, "acme")
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no acme"));
    let lock = IdempotencyRow {
        tenant_id: acme.id.clone(),
        key: "slow".into(),
        scope: "POST /v1/sessions".into(),
        request_hash: maskline::service::idempotency::body_hash(
            &serde_json::from_str(BODY).unwrap_or_default(),
        ),
        status: None,
        response: None,
        locked_at: now,
        created_at: now,
    };
    let claim = keys::claim(&mut conn, &lock, now - 1)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(claim, Claim::Claimed);
    drop(conn);

    let (status, err, retry_after) = post_keyed(&srv, ACME_KEY, "slow", SAME_BODY).await;
    assert_eq!(status, StatusCode::CONFLICT, "{err}");
    assert_eq!(err["error"], "idempotency_in_progress");
    assert_eq!(err["retry_after_seconds"], 1);
    assert_eq!(retry_after.as_deref(), Some("1"));

    srv.clock.advance_ms(120_000);
    let (_, err, _) = post_keyed(&srv, ACME_KEY, "slow", BODY).await;
    assert_eq!(
        err["error"], "idempotency_in_progress",
        "exactly 120 s is not stale"
    );
    srv.clock.advance_ms(1);
    let (status, err, _) = post_keyed(&srv, ACME_KEY, "slow", BODY).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(err["error"], "idempotency_state_unknown");
    assert_eq!(session_count(&srv, ACME_KEY).await, 0);
    srv.stop().await;
}

#[tokio::test]
async fn key_length_outside_1_to_255_is_rejected() {
    let dir = TempDir::new("idem-len");
    let srv = Server::fresh(&dir).await;
    for bad in [String::new(), "k".repeat(256)] {
        let (status, err, _) = post_keyed(&srv, ACME_KEY, &bad, BODY).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "len {}", bad.len());
        assert_eq!(err["error"], "idempotency_key_invalid");
    }
    let (status, ok, _) = post_keyed(&srv, ACME_KEY, &"k".repeat(255), BODY).await;
    assert_eq!(status, StatusCode::CREATED, "{ok}");
    assert_eq!(session_count(&srv, ACME_KEY).await, 1);
    srv.stop().await;
}

#[tokio::test]
async fn keys_are_per_tenant_and_expire_after_24h() {
    let dir = TempDir::new("idem-tenant");
    let srv = Server::fresh(&dir).await;
    let (status, a, _) = post_keyed(&srv, ACME_KEY, "shared", BODY).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, b, _) = post_keyed(&srv, BETA_KEY, "shared", BODY).await;
    assert_eq!(status, StatusCode::CREATED, "{b}");
    assert_eq!(b["replayed"], false, "another tenant's key is not shared");
    assert_ne!(a["id"], b["id"]);

    srv.clock.advance_ms(24 * 3_600_000 - 1);
    let (_, again, _) = post_keyed(&srv, ACME_KEY, "shared", BODY).await;
    assert_eq!(again["replayed"], true, "still kept just before 24 h");
    srv.clock.advance_ms(2);
    let other = r#"{"party_a": "+14155550101", "party_b": "+14155550199"}"#;
    let (status, fresh, _) = post_keyed(&srv, ACME_KEY, "shared", other).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "expired key is free again: {fresh}"
    );
    assert_eq!(fresh["replayed"], false);
    srv.stop().await;
}

#[tokio::test]
async fn a_failed_request_releases_its_key() {
    let dir = TempDir::new("idem-fail");
    let srv = Server::fresh(&dir).await;
    let (status, err, _) = post_keyed(&srv, ACME_KEY, "k", r#"{"party_a": "nope"}"#).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(err["error"], "validation_failed");
    let (status, ok, _) = post_keyed(&srv, ACME_KEY, "k", BODY).await;
    assert_eq!(status, StatusCode::CREATED, "{ok}");
    assert_eq!(ok["replayed"], false);
    srv.stop().await;
}

#[tokio::test]
async fn without_a_key_nothing_changes() {
    let dir = TempDir::new("idem-none");
    let srv = Server::fresh(&dir).await;
    let a = srv.create_ab().await;
    assert!(a.get("replayed").is_none());
    let b = srv.create_ab().await;
    assert_ne!(a["id"], b["id"]);
    srv.stop().await;
}

#[tokio::test]
async fn concurrent_requests_with_one_key_create_exactly_one_session() {
    let dir = TempDir::new("idem-race");
    let srv = Server::fresh(&dir).await;
    for round in 0..5 {
        let key = format!("race-{round}");
        let (x, y) = tokio::join!(
            post_keyed(&srv, ACME_KEY, &key, BODY),
            post_keyed(&srv, ACME_KEY, &key, SAME_BODY)
        );
        let mut created = Vec::new();
        for (status, body, _) in [x, y] {
            match (status, body["replayed"].as_bool()) {
                (StatusCode::CREATED, Some(false)) => created.push(body["id"].clone()),
                (StatusCode::CREATED, Some(true)) => {}
                (StatusCode::CONFLICT, _) => {
                    assert_eq!(body["error"], "idempotency_in_progress", "{body}")
                }
                other => panic!("unexpected {other:?}: {body}"),
            }
        }
        assert_eq!(created.len(), 1, "round {round}: exactly one creator");
        assert_eq!(session_count(&srv, ACME_KEY).await, round + 1);
        // Free the pool number for the next round.
        srv.complete(created[0].as_str().unwrap_or_default()).await;
    }
    srv.stop().await;
}
