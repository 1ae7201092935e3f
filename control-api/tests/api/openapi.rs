//! `GET /openapi.json` and `GET /docs`.

use reqwest::StatusCode;

use crate::support::*;

#[tokio::test]
async fn openapi_json_covers_the_api_and_docs_render_it_offline() {
    let dir = TempDir::new("openapi");
    let srv = Server::fresh(&dir).await;
    let (status, doc) = srv.get("/openapi.json", "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    for (path, method) in [
        ("/healthz", "get"),
        ("/metrics", "get"),
        ("/openapi.json", "get"),
        ("/docs", "get"),
        ("/v1/sessions", "post"),
        ("/v1/sessions", "get"),
        ("/v1/sessions/{id}", "get"),
        ("/v1/sessions/{id}/complete", "post"),
        ("/v1/calls", "get"),
        ("/v1/calls/{id}", "get"),
        ("/v1/calls/{id}/commands/answer", "post"),
        ("/v1/calls/{id}/commands/hangup", "post"),
        ("/v1/calls/{id}/commands/disconnect", "post"),
        ("/v1/calls/{id}/events", "get"),
        ("/v1/calls/{id}/recording", "get"),
        ("/v1/calls/{id}/recording/pause", "post"),
        ("/v1/calls/{id}/recording/resume", "post"),
        ("/v1/operations/{id}", "get"),
        ("/v1/events", "get"),
        ("/v1/webhook", "put"),
        ("/v1/webhook", "get"),
        ("/v1/webhook", "delete"),
        ("/v1/webhook/deliveries", "get"),
    ] {
        assert!(doc["paths"][path][method].is_object(), "{method} {path}");
    }

    let resp = srv
        .client
        .get(format!("{}/docs", srv.base))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status(), StatusCode::OK);
    let ctype = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(ctype.starts_with("text/html"), "{ctype}");
    let html = resp.text().await.unwrap_or_default();
    assert!(html.contains("fetch(\"/openapi.json\")"));
    assert!(!html.contains("https://"), "no external assets");
    srv.stop().await;
}
