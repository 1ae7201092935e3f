//! 401s, X-App-ID, healthz, unknown routes and body limits.

use reqwest::StatusCode;
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn missing_bad_key_and_wrong_app_id_are_401() {
    let dir = TempDir::new("auth");
    let srv = Server::fresh(&dir).await;
    let url = format!("{}/v1/sessions/ses_nope", srv.base);

    let (status, body) = srv.send(srv.client.get(&url)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "unauthenticated");

    let (status, body) = srv.get("/v1/sessions/ses_nope", "mk_not_a_key").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "unauthenticated");

    // POST is authenticated before its body is looked at.
    let (status, _) = srv.post_raw("/v1/sessions", "wrong", "{not json").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let acme = srv.create_ab().await;
    let id = s(&acme["id"]);
    let (status, beta_view) = srv
        .send(
            srv.client
                .get(format!("{}/v1/sessions/{id}", srv.base))
                .header("X-API-Key", BETA_KEY),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{beta_view}");

    let acme_id = {
        let mut conn = srv
            .running
            .store()
            .pool()
            .acquire()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        maskline::store::tenants::find_by_name(&mut conn, "acme")
            .await
            .ok()
            .flatten()
            .map(|t| t.id)
    }
    .unwrap_or_else(|| panic!("acme"));
    let with_app = |app: &str| {
        srv.client
            .get(format!("{}/v1/sessions/{id}", srv.base))
            .header("X-API-Key", ACME_KEY)
            .header("X-App-ID", app)
    };
    let (status, body) = srv.send(with_app("ten_someoneelse")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "unauthenticated");
    let (status, body) = srv.send(with_app(&acme_id)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["id"], acme["id"]);
    srv.stop().await;
}

#[tokio::test]
async fn healthz_unknown_routes_and_large_bodies() {
    let dir = TempDir::new("health");
    let srv = Server::fresh(&dir).await;

    let (status, body) = srv
        .send(srv.client.get(format!("{}/healthz", srv.base)))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ok");
    assert_eq!(body["http"], srv.running.http_addr().to_string());
    assert_eq!(body["sip"], srv.running.sip_addr().to_string());
    assert_ne!(
        srv.running.sip_addr().port(),
        0,
        "the bound SIP port, not the configured 0"
    );

    let (status, body) = srv.get("/v1/nothing-here", ACME_KEY).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "not_found");

    let (status, body) = srv
        .send(srv.client.delete(format!("{}/v1/sessions", srv.base)))
        .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body["error"], "method_not_allowed");

    let big =
        json!({"party_a": PARTY_A, "party_b": PARTY_B, "metadata": {"x": "y".repeat(70 * 1024)}});
    let (status, body) = srv.post("/v1/sessions", ACME_KEY, &big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["error"], "payload_too_large");
    srv.stop().await;
}

/// Over `[http] rate_limit_per_sec` a key gets 429 `rate_limited` with
/// `Retry-After`; another key is not affected.
#[tokio::test]
async fn a_key_over_its_rate_gets_429_with_retry_after() {
    let dir = TempDir::new("ratelimit");
    let mut cfg = config(&dir.0);
    cfg.http.rate_limit_per_sec = 1;
    cfg.http.rate_limit_burst = 3;
    let srv = Server::start(&cfg, maskline::util::time::Clock::manual(wall_now_ms())).await;
    for _ in 0..3 {
        let (status, _) = srv.get("/v1/sessions/ses_nope", ACME_KEY).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    let resp = srv
        .client
        .get(format!("{}/v1/sessions/ses_nope", srv.base))
        .header("X-API-Key", ACME_KEY)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    assert_eq!(retry.as_deref(), Some("1"));
    let body: serde_json::Value = resp.json().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(body["error"], "rate_limited");
    let (status, _) = srv.get("/v1/sessions/ses_nope", BETA_KEY).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another key is not limited");
}
