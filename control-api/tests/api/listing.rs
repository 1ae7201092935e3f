//! `GET /v1/sessions` and `GET /v1/calls`: order, keyset paging, filters,
//! validation, tenant scope.

use std::collections::HashMap;

use reqwest::StatusCode;
use serde_json::Value;

use crate::support::*;

/// Create and complete one acme session (the pool has 3 numbers); its id.
async fn make_session(srv: &Server) -> String {
    let created = srv.create_ab().await;
    let id = s(&created["id"]).to_string();
    srv.complete(&id).await;
    id
}

async fn page(srv: &Server, path: &str) -> (Vec<Value>, Option<String>) {
    let (status, body) = srv.get(path, ACME_KEY).await;
    assert_eq!(status, StatusCode::OK, "{path}: {body}");
    let data = body["data"].as_array().cloned().unwrap_or_default();
    let next = body["next_cursor"].as_str().map(str::to_string);
    assert!(
        body.get("next_cursor").is_some(),
        "next_cursor is always present"
    );
    (data, next)
}

#[tokio::test]
async fn paging_250_sessions_while_new_ones_arrive_sees_each_old_one_once() {
    let dir = TempDir::new("list-250");
    let srv = Server::fresh(&dir).await;
    let mut old = Vec::new();
    for i in 0..250 {
        // Pairs share a created_at, so ties are broken by id.
        if i % 2 == 0 {
            srv.clock.advance_ms(1);
        }
        old.push(make_session(&srv).await);
    }

    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut order: Vec<(String, String)> = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/sessions?limit=30&cursor={c}"),
            None => "/v1/sessions?limit=30".to_string(),
        };
        let (data, next) = page(&srv, &path).await;
        pages += 1;
        assert!(data.len() <= 30);
        for s_ in &data {
            let id = s(&s_["id"]).to_string();
            order.push((s(&s_["created_at"]).to_string(), id.clone()));
            *seen.entry(id).or_default() += 1;
        }
        // New sessions between pages (one with the same created_at as
        // the page's last row, one later).
        make_session(&srv).await;
        srv.clock.advance_ms(1);
        make_session(&srv).await;
        match next {
            Some(c) => cursor = Some(c),
            None => break,
        }
        assert!(pages < 50, "paging does not end");
    }
    for id in &old {
        assert_eq!(seen.get(id), Some(&1), "{id} seen {:?} times", seen.get(id));
    }
    assert!(seen.values().all(|&n| n == 1), "no duplicates");
    let mut sorted = order.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(order, sorted, "newest first, ties by id descending");
    assert_eq!(pages, 9, "250 rows in pages of 30");
    srv.stop().await;
}

#[tokio::test]
async fn default_limit_last_page_and_since_and_state() {
    let dir = TempDir::new("list-filters");
    let srv = Server::fresh(&dir).await;
    for _ in 0..26 {
        srv.clock.advance_ms(1);
        make_session(&srv).await;
    }
    let (data, next) = page(&srv, "/v1/sessions").await;
    assert_eq!(data.len(), 25, "default limit");
    let next = next.unwrap_or_else(|| panic!("a second page"));
    let (data, next) = page(&srv, &format!("/v1/sessions?cursor={next}")).await;
    assert_eq!(
        (data.len(), next),
        (1, None),
        "next_cursor null on the last page"
    );

    // Two hours later: an open session; `since=1h` sees only it.
    srv.clock.advance_ms(2 * 3_600_000);
    let open = srv.create_ab().await;
    let (data, _) = page(&srv, "/v1/sessions?since=1h").await;
    assert_eq!(data.len(), 1);
    assert_eq!(data[0]["id"], open["id"]);
    let since = maskline::util::time::format_rfc3339(srv.clock.now_ms() - 60_000);
    let (data, _) = page(&srv, &format!("/v1/sessions?since={since}")).await;
    assert_eq!(data.len(), 1, "RFC 3339 since");
    let (data, _) = page(&srv, "/v1/sessions?state=open&limit=100").await;
    assert_eq!(data.len(), 1);
    let (data, _) = page(&srv, "/v1/sessions?state=completed&limit=100").await;
    assert_eq!(data.len(), 26);
    assert!(data.iter().all(|s_| s_["state"] == "completed"));

    // A day later the default window (24 h) is empty.
    srv.clock.advance_ms(25 * 3_600_000);
    let (data, next) = page(&srv, "/v1/sessions").await;
    assert_eq!((data.len(), next), (0, None));
    let (data, _) = page(&srv, "/v1/sessions?since=30d&limit=100").await;
    assert_eq!(data.len(), 27);
    srv.stop().await;
}

#[tokio::test]
async fn bad_parameters_are_422_naming_the_parameter() {
    let dir = TempDir::new("list-422");
    let srv = Server::fresh(&dir).await;
    for (query, name) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=ten", "limit"),
        ("since=1y", "since"),
        ("since=2026-13-01T00:00:00Z", "since"),
        ("cursor=not-a-cursor", "cursor"),
        ("state=ringing", "state"),
        ("session_id=ses_1", "session_id"),
        ("colour=red", "colour"),
    ] {
        let (status, body) = srv.get(&format!("/v1/sessions?{query}"), ACME_KEY).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {body}");
        assert_eq!(body["error"], "validation_failed");
        assert!(body["fields"][name].is_string(), "{query}: {body}");
    }
    let (status, body) = srv.get("/v1/calls?state=open", ACME_KEY).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body["fields"]["state"].is_string());
    for path in ["/v1/sessions", "/v1/calls"] {
        let (status, body) = srv.get(path, "wrong-key").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["error"], "unauthenticated");
    }
    srv.stop().await;
}

#[tokio::test]
async fn listing_is_tenant_scoped() {
    let dir = TempDir::new("list-tenant");
    let srv = Server::fresh(&dir).await;
    let acme = srv.create_ab().await;
    srv.call_started("cal_acme1", s(&acme["id"])).await;
    let (status, beta) = srv.get("/v1/sessions", BETA_KEY).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(beta["data"], serde_json::json!([]));
    let (_, beta_calls) = srv.get("/v1/calls", BETA_KEY).await;
    assert_eq!(beta_calls["data"], serde_json::json!([]));
    let (_, beta_calls) = srv
        .get(
            &format!("/v1/calls?session_id={}", s(&acme["id"])),
            BETA_KEY,
        )
        .await;
    assert_eq!(beta_calls["data"], serde_json::json!([]));
    let (data, _) = page(&srv, "/v1/sessions").await;
    assert_eq!(data.len(), 1);
    srv.stop().await;
}

#[tokio::test]
async fn calls_are_listed_newest_first_with_filters() {
    let dir = TempDir::new("list-calls");
    let srv = Server::fresh(&dir).await;
    let one = srv.create_ab().await;
    let two = srv.create_ab().await;
    let (s1, s2) = (s(&one["id"]).to_string(), s(&two["id"]).to_string());
    for (i, sid) in [&s1, &s2, &s1, &s2, &s1].into_iter().enumerate() {
        srv.clock.advance_ms(1000);
        let cid = format!("cal_list{i}");
        srv.call_started(&cid, sid).await;
        if i < 4 {
            srv.call_ended(&cid, sid).await;
        }
    }
    let (data, next) = page(&srv, "/v1/calls").await;
    let ids: Vec<&str> = data.iter().map(|c| s(&c["id"])).collect();
    assert_eq!(
        ids,
        [
            "cal_list4",
            "cal_list3",
            "cal_list2",
            "cal_list1",
            "cal_list0"
        ]
    );
    assert_eq!(next, None);

    let (data, next) = page(&srv, &format!("/v1/calls?session_id={s1}&limit=2")).await;
    let ids: Vec<&str> = data.iter().map(|c| s(&c["id"])).collect();
    assert_eq!(ids, ["cal_list4", "cal_list2"]);
    let next = next.unwrap_or_else(|| panic!("more calls of s1"));
    let (data, next) = page(
        &srv,
        &format!("/v1/calls?session_id={s1}&limit=2&cursor={next}"),
    )
    .await;
    let ids: Vec<&str> = data.iter().map(|c| s(&c["id"])).collect();
    assert_eq!((ids, next), (vec!["cal_list0"], None));

    let (data, _) = page(&srv, "/v1/calls?state=ringing").await;
    let ids: Vec<&str> = data.iter().map(|c| s(&c["id"])).collect();
    assert_eq!(ids, ["cal_list4"]);
    srv.stop().await;
}
