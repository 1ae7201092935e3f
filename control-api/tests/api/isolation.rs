//! Tenant isolation over every route `GET /openapi.json` lists: another
//! tenant's ids are 404 `not_found` on every method, nothing of the owner's
//! leaks into bodies or listings, and every `/v1` route demands a key.
//!
//! The route list is read from the running server, so a new route is
//! covered (or, if the test cannot tell how to exercise it, named in a
//! failure) without editing this file.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::*;

/// Beta's own parties: distinct from acme's so a leak is recognisable.
const BETA_PARTY_A: &str = "+14155550201";
const BETA_PARTY_B: &str = "+14155550202";
const ACME_CALL: &str = "cal_isolation_acme";
const ACME_WEBHOOK_URL: &str = "http://127.0.0.1:9/acme-only-hook";

/// `/v1` routes without a path parameter this test knows: the reads are
/// checked for leaks below; the writes act on the caller's own tenant by
/// construction and are covered by the 401 sweep.
const KNOWN_PLAIN_ROUTES: [(&str, &str); 8] = [
    ("get", "/v1/sessions"),
    ("post", "/v1/sessions"),
    ("get", "/v1/calls"),
    ("get", "/v1/events"),
    ("get", "/v1/webhook"),
    ("put", "/v1/webhook"),
    ("delete", "/v1/webhook"),
    ("get", "/v1/webhook/deliveries"),
];

const METHODS: [&str; 7] = ["get", "post", "put", "patch", "delete", "head", "options"];

/// Status and body text of one request; an event stream's body is not read
/// (it never ends), any other body is read within 5 s.
async fn call(
    srv: &Server,
    method: &Method,
    path: &str,
    key: Option<&str>,
    app_id: Option<&str>,
) -> (StatusCode, String) {
    let mut req = srv
        .client
        .request(method.clone(), format!("{}{path}", srv.base));
    if let Some(k) = key {
        req = req.header("X-API-Key", k);
    }
    if let Some(a) = app_id {
        req = req.header("X-App-ID", a);
    }
    if *method == Method::POST || *method == Method::PUT || *method == Method::PATCH {
        req = req.json(&json!({}));
    }
    let resp = tokio::time::timeout(Duration::from_secs(5), req.send())
        .await
        .unwrap_or_else(|_| panic!("{method} {path}: no response within 5 s"))
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let status = resp.status();
    let is_stream = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("text/event-stream"));
    if is_stream {
        return (status, "<event stream>".into());
    }
    let text = tokio::time::timeout(Duration::from_secs(5), resp.text())
        .await
        .unwrap_or_else(|_| panic!("{method} {path}: body not complete within 5 s"))
        .unwrap_or_default();
    (status, text)
}

/// The text of an SSE stream (replayed from event 0) up to and including
/// the first chunk that contains `until`; fails after 5 s without it.
async fn read_stream_until(srv: &Server, path: &str, key: &str, until: &str) -> String {
    let read = async {
        let mut resp = srv
            .client
            .get(format!("{}{path}", srv.base))
            .header("X-API-Key", key)
            .header("Last-Event-ID", "0")
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        let mut text = String::new();
        while let Some(chunk) = resp.chunk().await.unwrap_or_else(|e| panic!("{path}: {e}")) {
            text.push_str(&String::from_utf8_lossy(&chunk));
            if text.contains(until) {
                return text;
            }
        }
        panic!("{path}: stream ended before {until}: {text}")
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .unwrap_or_else(|_| panic!("{path}: {until} not replayed within 5 s"))
}

/// Whether a request with the owner's own key got the router's fallback
/// answer: the route is documented but this build does not serve it.
fn is_unrouted(status: StatusCode, body: &str) -> bool {
    let parsed: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    matches!(
        (status, parsed["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
            | (StatusCode::METHOD_NOT_ALLOWED, Some("method_not_allowed"))
    )
}

/// Panics if `body` carries any of acme's identifying values.
fn assert_no_acme_data(what: &str, body: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(
            !body.contains(secret),
            "{what}: acme's {secret:?} leaked to beta: {body}"
        );
    }
}

/// `(path, method)` of every operation in the spec's `paths`.
fn spec_routes(doc: &Value) -> Vec<(String, String)> {
    let paths = doc["paths"]
        .as_object()
        .unwrap_or_else(|| panic!("openapi.json has no paths object"));
    let mut out = Vec::new();
    for (path, item) in paths {
        let Some(item) = item.as_object() else {
            continue;
        };
        for method in item.keys() {
            if METHODS.contains(&method.as_str()) {
                out.push((path.clone(), method.clone()));
            }
        }
    }
    out
}

/// `path` with every `{param}` segment replaced by `id`.
fn fill(path: &str, id: &str) -> String {
    path.split('/')
        .map(|seg| {
            if seg.starts_with('{') && seg.ends_with('}') {
                id
            } else {
                seg
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Acme's object id for a parameterised path, by the resource it names.
fn owner_id<'a>(path: &str, ids: &'a [(&'static str, String)]) -> Option<&'a str> {
    ids.iter()
        .find(|(prefix, _)| path.starts_with(prefix))
        .map(|(_, id)| id.as_str())
}

async fn acme_tenant_id(srv: &Server) -> String {
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
        .unwrap_or_else(|| panic!("tenant acme"))
}

#[tokio::test]
async fn every_route_is_tenant_isolated() {
    let dir = TempDir::new("isolation");
    let srv = Server::fresh(&dir).await;

    // Acme's objects: a session with a call, an operation, a webhook.
    let acme = srv
        .create(
            json!({"party_a": PARTY_A, "party_b": PARTY_B, "record": true,
                       "metadata": {"owner": "acme-private"}}),
        )
        .await;
    let sid = s(&acme["id"]).to_string();
    let masked = s(&acme["masked_number"]).to_string();
    srv.call_started(ACME_CALL, &sid).await;
    let (status, op) = srv
        .post(
            &format!("/v1/calls/{ACME_CALL}/commands/hangup"),
            ACME_KEY,
            &json!({"cause": "USER_BUSY"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{op}");
    let op_id = s(&op["operation_id"]).to_string();
    let (status, hook) = srv
        .put("/v1/webhook", ACME_KEY, &json!({"url": ACME_WEBHOOK_URL}))
        .await;
    assert_eq!(status, StatusCode::OK, "{hook}");
    let (status, beta) = srv
        .post(
            "/v1/sessions",
            BETA_KEY,
            &json!({"party_a": BETA_PARTY_A, "party_b": BETA_PARTY_B}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{beta}");
    let beta_sid = s(&beta["id"]).to_string();

    let acme_before = srv.session(&sid).await;
    let (_, acme_call_before) = srv.get(&format!("/v1/calls/{ACME_CALL}"), ACME_KEY).await;
    let secrets = [
        masked.as_str(),
        PARTY_A,
        PARTY_B,
        "acme-private",
        "acme-only-hook",
    ];

    let ids: Vec<(&'static str, String)> = vec![
        ("/v1/sessions/", sid.clone()),
        ("/v1/calls/", ACME_CALL.to_string()),
        ("/v1/operations/", op_id.clone()),
    ];

    let (status, doc) = srv.get("/openapi.json", "").await;
    assert_eq!(status, StatusCode::OK);
    let routes = spec_routes(&doc);
    let mut unknown = Vec::new();
    let mut covered = Vec::new();
    let mut unrouted = Vec::new();

    for (path, method_name) in &routes {
        if !path.starts_with("/v1/") {
            continue;
        }
        let method = Method::from_bytes(method_name.to_uppercase().as_bytes())
            .unwrap_or_else(|e| panic!("{method_name}: {e}"));
        let label = format!("{} {path}", method_name.to_uppercase());

        // Generic: no key → 401 unauthenticated, for every /v1 route
        // the server serves (one it does not serve is reported below).
        let probe = fill(path, owner_id(path, &ids).unwrap_or("x_unknown"));
        let (status, body) = call(&srv, &method, &probe, None, None).await;
        if status != StatusCode::UNAUTHORIZED {
            let (owner_status, owner_body) =
                call(&srv, &method, &probe, Some(ACME_KEY), None).await;
            assert!(
                is_unrouted(owner_status, &owner_body),
                "{label} without key: {status} {body} (with acme's key: {owner_status} {owner_body})"
            );
            unrouted.push(label);
            continue;
        }
        let parsed: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        assert_eq!(parsed["error"], "unauthenticated", "{label}: {body}");

        if path.contains('{') {
            let Some(id) = owner_id(path, &ids) else {
                unknown.push(label);
                continue;
            };
            let url = fill(path, id);
            let (status, body) = call(&srv, &method, &url, Some(BETA_KEY), None).await;
            assert_eq!(
                status,
                StatusCode::NOT_FOUND,
                "{label} with beta's key on acme's {id}: {body}"
            );
            let parsed: Value = serde_json::from_str(&body)
                .unwrap_or_else(|e| panic!("{label}: not JSON ({e}): {body}"));
            assert_eq!(parsed["error"], "not_found", "{label}: {body}");
            assert_no_acme_data(&label, &body, &secrets);
            covered.push(label);
        } else if (method_name.as_str(), path.as_str()) == ("post", "/v1/calls/originate") {
            // The session is named in the body: beta may not dial acme's.
            let (status, body) = srv
                .post(
                    path,
                    BETA_KEY,
                    &json!({"session_id": sid, "from_party": "a"}),
                )
                .await;
            assert_eq!(
                status,
                StatusCode::NOT_FOUND,
                "{label} on acme's session: {body}"
            );
            assert_eq!(body["error"], "not_found", "{label}: {body}");
            assert_no_acme_data(&label, &body.to_string(), &secrets);
            covered.push(label);
        } else if KNOWN_PLAIN_ROUTES.contains(&(method_name.as_str(), path.as_str())) {
            if method == Method::GET {
                let (status, body) = call(&srv, &method, path, Some(BETA_KEY), None).await;
                assert!(
                    status == StatusCode::OK || status == StatusCode::NOT_FOUND,
                    "{label} with beta's key: {status} {body}"
                );
                assert_no_acme_data(&label, &body, &secrets);
            }
            covered.push(label);
        } else {
            unknown.push(label);
        }
    }
    assert!(
        unknown.is_empty(),
        "openapi.json lists /v1 routes this test cannot exercise: {unknown:?}"
    );
    for (method, path) in KNOWN_PLAIN_ROUTES {
        assert!(
            routes.iter().any(|(p, m)| p == path && m == method),
            "{method} {path} no longer in openapi.json"
        );
    }
    assert!(covered.len() >= 15, "too few routes covered: {covered:?}");

    // Listings: beta sees its own session and none of acme's objects.
    let (status, list) = srv.get("/v1/sessions", BETA_KEY).await;
    assert_eq!(status, StatusCode::OK);
    let listed: Vec<&str> = list["data"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v["id"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(listed, vec![beta_sid.as_str()], "{list}");
    assert_no_acme_data("GET /v1/sessions", &list.to_string(), &secrets);
    for query in [
        "/v1/calls".to_string(),
        format!("/v1/calls?session_id={sid}"),
        format!("/v1/sessions?session_id={sid}"),
    ] {
        let (status, list) = srv.get(&query, BETA_KEY).await;
        if status == StatusCode::OK {
            let text = list.to_string();
            assert!(!text.contains(&sid), "{query}: {text}");
            assert!(!text.contains(ACME_CALL), "{query}: {text}");
            assert_no_acme_data(&query, &text, &secrets);
        } else {
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {list}");
        }
    }
    let (status, list) = srv.get("/v1/calls", BETA_KEY).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["data"], json!([]), "beta has no calls");

    // Beta's tenant stream replayed from the start: beta's own events only
    // (acme's came first, so a leak would be read before beta's).
    let replay = read_stream_until(&srv, "/v1/events", BETA_KEY, &beta_sid).await;
    assert!(replay.contains("session.created"), "{replay}");
    assert!(
        !replay.contains(&sid),
        "acme's session in beta's stream: {replay}"
    );
    assert_no_acme_data("GET /v1/events replay", &replay, &secrets);

    // Originating on acme's session with beta's key: 404, nothing dialled
    // (checked once originate is in the spec; the sweep above then also
    // requires it to be served).
    let originate = "/v1/calls/originate".to_string();
    if routes.iter().any(|(p, m)| *p == originate && m == "post") {
        let (status, body) = srv
            .post(
                &originate,
                BETA_KEY,
                &json!({"session_id": sid, "from_party": "a"}),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "originate on acme's session: {body}"
        );
        assert_eq!(body["error"], "not_found", "{body}");
        assert_no_acme_data("POST /v1/calls/originate", &body.to_string(), &secrets);
    }

    // X-App-ID naming acme with beta's key → 401, on a beta-owned object too.
    let acme_tenant = acme_tenant_id(&srv).await;
    for path in [
        format!("/v1/sessions/{beta_sid}"),
        format!("/v1/sessions/{sid}"),
        "/v1/sessions".to_string(),
        "/v1/calls".to_string(),
    ] {
        let (status, body) = call(
            &srv,
            &Method::GET,
            &path,
            Some(BETA_KEY),
            Some(&acme_tenant),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}: {body}");
        let parsed: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        assert_eq!(parsed["error"], "unauthenticated", "{path}: {body}");
        assert_no_acme_data(&path, &body, &secrets);
    }

    // Nothing beta sent changed acme's objects.
    assert_eq!(srv.session(&sid).await, acme_before, "acme's session");
    let (_, acme_call_after) = srv.get(&format!("/v1/calls/{ACME_CALL}"), ACME_KEY).await;
    assert_eq!(acme_call_after, acme_call_before, "acme's call");
    let (status, hook) = srv.get("/v1/webhook", ACME_KEY).await;
    assert_eq!(
        (status, hook["url"].clone()),
        (StatusCode::OK, json!(ACME_WEBHOOK_URL))
    );
    let (status, _) = srv.get(&format!("/v1/operations/{op_id}"), ACME_KEY).await;
    assert_eq!(status, StatusCode::OK, "acme still sees its operation");

    eprintln!("isolation: covered {} routes: {covered:?}", covered.len());
    assert!(
        unrouted.is_empty(),
        "documented in openapi.json but not served: {unrouted:?}"
    );
    srv.stop().await;
}

#[test]
fn fill_replaces_every_parameter_segment() {
    assert_eq!(
        fill("/v1/calls/{id}/recording", "cal_1"),
        "/v1/calls/cal_1/recording"
    );
    assert_eq!(fill("/v1/a/{x}/b/{y}", "z"), "/v1/a/z/b/z");
    assert_eq!(fill("/v1/sessions", "z"), "/v1/sessions");
}

#[test]
fn owner_id_picks_the_resource_by_prefix() {
    let ids = vec![("/v1/sessions/", "ses_1".to_string())];
    assert_eq!(owner_id("/v1/sessions/{id}/complete", &ids), Some("ses_1"));
    assert_eq!(owner_id("/v1/widgets/{id}", &ids), None);
}
