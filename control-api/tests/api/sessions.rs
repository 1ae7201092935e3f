//! Creating and reading sessions: pool allocation, 409, 422s, 404s.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::*;

#[tokio::test]
async fn create_returns_201_with_a_pool_number_and_routes_it() {
    let dir = TempDir::new("create");
    let srv = Server::fresh(&dir).await;
    let created = srv
        .create(
            json!({"party_a": "14155550101", "party_b": "+1 415 555 0102", "ttl_minutes": 30,
            "record": true, "metadata": {"order": "A-1"}}),
        )
        .await;
    let id = s(&created["id"]);
    assert!(id.starts_with("ses_") && id.len() == 28, "{id}");
    assert_eq!(created["state"], "open");
    assert_eq!(created["masked_number"], ACME_NUMBERS[0]);
    assert_eq!(created["party_a"], PARTY_A);
    assert_eq!(created["party_b"], PARTY_B);
    assert_eq!(created["record"], true);
    assert_eq!(created["ttl_minutes"], 30);
    assert_eq!(created["metadata"], json!({"order": "A-1"}));
    assert_eq!(created["completed_at"], Value::Null);
    assert_eq!(created["completion_reason"], Value::Null);
    assert_eq!(created["call_count"], 0);
    assert_eq!(created["active_call_id"], Value::Null);
    let created_at =
        maskline::util::time::parse_rfc3339(s(&created["created_at"])).unwrap_or_default();
    let expires_at =
        maskline::util::time::parse_rfc3339(s(&created["expires_at"])).unwrap_or_default();
    assert_eq!(created_at, srv.clock.now_ms());
    assert_eq!(expires_at - created_at, 30 * 60_000);
    assert!(s(&created["created_at"]).ends_with('Z'));

    let route = srv
        .running
        .engine()
        .routes()
        .get(ACME_NUMBERS[0])
        .unwrap_or_else(|| panic!("no route"));
    assert_eq!(route.session_id, id);
    assert_eq!(
        (route.party_a.as_str(), route.party_b.as_str(), route.record),
        (PARTY_A, PARTY_B, true)
    );

    let fetched = srv.session(id).await;
    assert_eq!(fetched["calls"], json!([]));
    let mut without_calls = fetched.clone();
    if let Some(o) = without_calls.as_object_mut() {
        o.remove("calls");
    }
    assert_eq!(without_calls, created);

    let events = srv.event_types("acme").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].0, "session.created");
    assert_eq!(events[0].1, created);

    // Defaults: tenant default TTL, record false, metadata {}.
    let second = srv.create_ab().await;
    assert_eq!(
        (second["ttl_minutes"].clone(), second["record"].clone()),
        (json!(60), json!(false))
    );
    assert_eq!(second["metadata"], json!({}));
    assert_eq!(second["masked_number"], ACME_NUMBERS[1]);
    srv.stop().await;
}

#[tokio::test]
async fn pool_is_exclusive_least_recently_released_first_then_409() {
    let dir = TempDir::new("pool");
    let srv = Server::fresh(&dir).await;
    let mut ids = Vec::new();
    for expected in ACME_NUMBERS {
        let c = srv.create_ab().await;
        assert_eq!(c["masked_number"], expected);
        ids.push(s(&c["id"]).to_string());
    }
    let (status, body) = srv
        .post(
            "/v1/sessions",
            ACME_KEY,
            &json!({"party_a": PARTY_A, "party_b": PARTY_B}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"], "number_pool_exhausted");

    // Release #2 first, then #1 (later): #2 is the least recently released.
    srv.complete(&ids[1]).await;
    srv.clock.advance_ms(1000);
    srv.complete(&ids[0]).await;
    assert_eq!(srv.create_ab().await["masked_number"], ACME_NUMBERS[1]);
    assert_eq!(srv.create_ab().await["masked_number"], ACME_NUMBERS[0]);
    let (status, _) = srv
        .post(
            "/v1/sessions",
            ACME_KEY,
            &json!({"party_a": PARTY_A, "party_b": PARTY_B}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);

    // Another tenant's pool is separate.
    let (status, body) = srv
        .post(
            "/v1/sessions",
            BETA_KEY,
            &json!({"party_a": PARTY_A, "party_b": PARTY_B}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["masked_number"], BETA_NUMBER);
    srv.stop().await;
}

async fn field_error(srv: &Server, body: Value, field: &str) -> String {
    let (status, resp) = srv.post("/v1/sessions", ACME_KEY, &body).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body} → {resp}");
    assert_eq!(resp["error"], "validation_failed");
    assert!(resp["message"].is_string());
    resp["fields"][field]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| panic!("{field} not named: {resp}"))
}

#[tokio::test]
async fn every_bad_field_is_a_422_naming_it() {
    let dir = TempDir::new("422");
    let srv = Server::fresh(&dir).await;
    let ok = json!({"party_a": PARTY_A, "party_b": PARTY_B});
    let with = |k: &str, v: Value| {
        let mut b = ok.clone();
        b[k] = v;
        b
    };
    assert_eq!(
        field_error(&srv, json!({"party_b": PARTY_B}), "party_a").await,
        "is required"
    );
    assert_eq!(
        field_error(&srv, with("party_a", json!("not-a-number")), "party_a").await,
        "must be an E.164 number such as +14155550101"
    );
    assert!(field_error(&srv, with("party_b", json!(true)), "party_b")
        .await
        .starts_with("must be an E.164"));
    assert_eq!(
        field_error(&srv, with("party_b", json!(PARTY_A)), "party_b").await,
        "must differ from party_a"
    );
    assert_eq!(
        field_error(&srv, with("ttl_minutes", json!(0)), "ttl_minutes").await,
        "must be at least 1"
    );
    assert_eq!(
        field_error(&srv, with("ttl_minutes", json!("10")), "ttl_minutes").await,
        "must be a whole number of minutes"
    );
    let over = field_error(&srv, with("ttl_minutes", json!(241)), "ttl_minutes").await;
    assert!(over.contains("240"), "names the cap: {over}");
    assert_eq!(
        field_error(&srv, with("record", json!(1)), "record").await,
        "must be true or false"
    );
    assert_eq!(
        field_error(&srv, with("metadata", json!("x")), "metadata").await,
        "must be a JSON object"
    );
    let big = json!({"k": "v".repeat(17 * 1024)});
    assert!(field_error(&srv, with("metadata", big), "metadata")
        .await
        .contains("16384"));
    assert_eq!(
        field_error(
            &srv,
            with("masked_number", json!("+15550000002")),
            "masked_number"
        )
        .await,
        "unknown field"
    );

    for raw in ["{\"party_a\": ", "", "[]", "null", "party_a=1"] {
        let (status, resp) = srv.post_raw("/v1/sessions", ACME_KEY, raw).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{raw:?} → {resp}");
        assert_eq!(resp["error"], "validation_failed");
        assert!(resp["fields"]["body"].is_string(), "{raw:?} → {resp}");
    }
    // Form content type, JSON body: still parsed, no 415.
    let (status, resp) = srv
        .send(
            srv.client
                .post(format!("{}/v1/sessions", srv.base))
                .header("X-API-Key", ACME_KEY)
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(ok.to_string()),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{resp}");
    // Nothing above except the last request allocated a number.
    assert_eq!(resp["masked_number"], ACME_NUMBERS[0]);
    srv.stop().await;
}

#[tokio::test]
async fn unknown_and_foreign_objects_are_404() {
    let dir = TempDir::new("404");
    let srv = Server::fresh(&dir).await;
    let (status, body) = srv
        .get("/v1/sessions/ses_doesnotexist000000000000", ACME_KEY)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "not_found");

    let acme = srv.create_ab().await;
    let path = format!("/v1/sessions/{}", s(&acme["id"]));
    let (status, body) = srv.get(&path, BETA_KEY).await;
    assert_eq!(
        (status, body["error"].clone()),
        (StatusCode::NOT_FOUND, json!("not_found"))
    );
    let (status, _) = srv
        .post(&format!("{path}/complete"), BETA_KEY, &Value::Null)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        srv.session(s(&acme["id"])).await["state"],
        "open",
        "beta could not complete it"
    );

    let (status, body) = srv.get("/v1/calls/cal_nope", ACME_KEY).await;
    assert_eq!(
        (status, body["error"].clone()),
        (StatusCode::NOT_FOUND, json!("not_found"))
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_never_share_a_number() {
    let dir = TempDir::new("race");
    let srv = Server::fresh(&dir).await;
    let body = json!({"party_a": PARTY_A, "party_b": PARTY_B});
    let attempts = (0..12).map(|_| srv.post("/v1/sessions", ACME_KEY, &body));
    let results = futures_join_all(attempts).await;
    let mut numbers: Vec<String> = results
        .iter()
        .filter(|(status, _)| *status == StatusCode::CREATED)
        .map(|(_, b)| s(&b["masked_number"]).to_string())
        .collect();
    let conflicts = results
        .iter()
        .filter(|(status, b)| {
            *status == StatusCode::CONFLICT && b["error"] == "number_pool_exhausted"
        })
        .count();
    numbers.sort();
    assert_eq!(numbers, ACME_NUMBERS, "each number exactly once");
    assert_eq!(
        conflicts,
        12 - ACME_NUMBERS.len(),
        "the rest are 409s: {results:?}"
    );
    srv.stop().await;
}

/// Run futures concurrently on the current task and collect their outputs
/// in order (no extra dependency for `join_all`).
async fn futures_join_all<F: std::future::Future>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output> {
    let mut set = Vec::new();
    for f in futures {
        set.push(Box::pin(f));
    }
    let mut out: Vec<Option<F::Output>> = set.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in set.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}
