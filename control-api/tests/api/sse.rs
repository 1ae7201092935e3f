//! SSE over real HTTP: replay after `Last-Event-ID` then live with no gap
//! and no duplicate, the `type` filter, call streams that close after the
//! call's final event, the stream cap and bad queries.

use std::time::Duration;

use maskline::ServeOptions;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::sse_client::{open, Msg};
use crate::support::*;

const WITHIN: Duration = Duration::from_secs(5);

/// Ids of a tenant's events so far, oldest first.
async fn event_ids(srv: &Server) -> Vec<i64> {
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
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .map(|e| e.id)
        .collect()
}

fn check_envelope(m: &Msg) -> Value {
    let v = m.json();
    assert_eq!(v["id"].as_str(), m.id.as_deref(), "{m:?}");
    assert_eq!(v["type"].as_str(), m.event.as_deref(), "{m:?}");
    assert!(
        v["created_at"].is_string() && v["data"].is_object(),
        "{m:?}"
    );
    v
}

#[tokio::test]
async fn replays_after_last_event_id_then_goes_live_exactly_once() {
    let dir = TempDir::new("sse-replay");
    let srv = Server::fresh(&dir).await;
    let first = s(&srv.create_ab().await["id"]).to_string();
    srv.create_ab().await;
    srv.complete(&first).await;
    let ids = event_ids(&srv).await;
    assert_eq!(ids.len(), 3);

    let after = ids[0].to_string();
    let mut stream = open(&srv, "/v1/events", ACME_KEY, Some(&after))
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let a = stream.expect(WITHIN).await;
    let b = stream.expect(WITHIN).await;
    assert_eq!(a.id, Some(ids[1].to_string()));
    assert_eq!(b.id, Some(ids[2].to_string()));
    assert_eq!(check_envelope(&a)["type"], "session.created");
    assert_eq!(check_envelope(&b)["type"], "session.completed");
    assert_eq!(b.json()["data"]["id"], first.as_str());

    // Live: a new event arrives once, with the next id.
    let third = srv.create_ab().await;
    let c = stream.expect(WITHIN).await;
    assert_eq!(check_envelope(&c)["data"]["id"], third["id"]);
    let ids = event_ids(&srv).await;
    assert_eq!(c.id, Some(ids[3].to_string()));

    // The query parameter works as well; beta sees none of acme's events.
    let mut again = open(
        &srv,
        &format!("/v1/events?last_event_id={}", ids[2]),
        ACME_KEY,
        None,
    )
    .await
    .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(again.expect(WITHIN).await.id, c.id);
    let mut beta = open(&srv, "/v1/events?last_event_id=0", BETA_KEY, None)
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    srv.create(json!({"party_a": PARTY_A, "party_b": PARTY_B}))
        .await;
    let (status, _) = srv
        .post(
            "/v1/sessions",
            BETA_KEY,
            &json!({"party_a": PARTY_A, "party_b": PARTY_B}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let only = beta.expect(WITHIN).await;
    assert_eq!(only.event.as_deref(), Some("session.created"));
    let beta_ids = event_ids(&srv).await;
    assert!(
        !beta_ids.iter().any(|i| Some(i.to_string()) == only.id),
        "beta's event is not one of acme's"
    );
    srv.stop().await;
}

#[tokio::test]
async fn type_filter_applies_to_replay_and_live() {
    let dir = TempDir::new("sse-type");
    let srv = Server::fresh(&dir).await;
    let a = s(&srv.create_ab().await["id"]).to_string();
    srv.complete(&a).await;
    let mut stream = open(
        &srv,
        "/v1/events?type=session.completed&last_event_id=0",
        ACME_KEY,
        None,
    )
    .await
    .unwrap_or_else(|e| panic!("{e:?}"));
    let m = stream.expect(WITHIN).await;
    assert_eq!(m.event.as_deref(), Some("session.completed"));
    let b = s(&srv.create_ab().await["id"]).to_string();
    srv.complete(&b).await;
    let m = stream.expect(WITHIN).await;
    assert_eq!(m.event.as_deref(), Some("session.completed"));
    assert_eq!(
        m.json()["data"]["id"],
        b.as_str(),
        "session.created was skipped"
    );
    srv.stop().await;
}

#[tokio::test]
async fn a_call_stream_replays_the_call_and_closes_after_its_hangup() {
    let dir = TempDir::new("sse-call");
    let srv = Server::fresh(&dir).await;
    let sid = s(&srv.create_ab().await["id"]).to_string();
    srv.call_started("cal_1", &sid).await;
    srv.call_started("cal_other", &sid).await;
    let mut stream = open(&srv, "/v1/calls/cal_1/events", ACME_KEY, None)
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let m = stream.expect(WITHIN).await;
    assert_eq!(m.event.as_deref(), Some("call.initiated"));
    assert_eq!(check_envelope(&m)["data"]["id"], "cal_1");
    srv.call_ended("cal_other", &sid).await;
    srv.call_ended("cal_1", &sid).await;
    let m = stream.expect(WITHIN).await;
    assert_eq!(m.event.as_deref(), Some("call.hangup"));
    assert_eq!(m.json()["data"]["id"], "cal_1", "only this call's events");
    let end = tokio::time::timeout(Duration::from_secs(10), stream.next()).await;
    assert!(
        matches!(end, Ok(None)),
        "the stream ends after the final event: {end:?}"
    );

    let (status, _, body) = match open(&srv, "/v1/calls/cal_1/events", BETA_KEY, None).await {
        Err(e) => e,
        Ok(_) => panic!("beta may not stream acme's call"),
    };
    assert_eq!(
        (status, s(&body["error"])),
        (StatusCode::NOT_FOUND, "not_found")
    );
    srv.stop().await;
}

#[tokio::test]
async fn bad_queries_are_422_and_the_stream_cap_is_503_with_retry_after() {
    let dir = TempDir::new("sse-cap");
    let config = config(&dir.0);
    let srv = Server::start_with(
        &config,
        ServeOptions {
            clock: maskline::util::time::Clock::manual(wall_now_ms()),
            max_sse_streams: 1,
        },
    )
    .await;
    for (path, field) in [
        ("/v1/events?type=call.bogus", "type"),
        ("/v1/events?last_event_id=abc", "last_event_id"),
        ("/v1/events?limit=5", "limit"),
    ] {
        match open(&srv, path, ACME_KEY, None).await {
            Err((status, _, body)) => {
                assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{path}");
                assert!(body["fields"][field].is_string(), "{path}: {body}");
            }
            Ok(_) => panic!("{path} accepted"),
        }
    }
    match open(&srv, "/v1/events", ACME_KEY, Some("-3")).await {
        Err((status, _, _)) => assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY),
        Ok(_) => panic!("negative Last-Event-ID accepted"),
    }

    let first = open(&srv, "/v1/events", ACME_KEY, None).await;
    assert!(first.is_ok(), "the first stream opens");
    match open(&srv, "/v1/events", ACME_KEY, None).await {
        Err((status, headers, body)) => {
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(body["error"], "too_many_sse_streams");
            assert_eq!(
                headers.get("retry-after").and_then(|v| v.to_str().ok()),
                Some("5")
            );
        }
        Ok(_) => panic!("a second stream over the cap of 1"),
    }
    assert_eq!(srv.running.sse().open(), 1);
    drop(first);
    srv.stop().await;
}
