//! Completing sessions, TTL expiry and restarts.

use maskline::util::time::{parse_rfc3339, Clock};
use serde_json::{json, Value};

use crate::support::*;

async fn number_holder(srv: &Server, e164: &str) -> (Option<String>, Option<i64>) {
    let mut conn = srv
        .running
        .store()
        .pool()
        .acquire()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let row = maskline::store::numbers::find(&mut conn, e164)
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("{e164}"));
    (row.session_id, row.released_at)
}

#[tokio::test]
async fn complete_is_idempotent_releases_the_number_and_drops_the_route() {
    let dir = TempDir::new("complete");
    let srv = Server::fresh(&dir).await;
    let created = srv.create_ab().await;
    let id = s(&created["id"]).to_string();
    let masked = s(&created["masked_number"]).to_string();
    assert_eq!(
        number_holder(&srv, &masked).await.0.as_deref(),
        Some(id.as_str())
    );

    srv.clock.advance_ms(5_000);
    let done = srv.complete(&id).await;
    assert_eq!(done["state"], "completed");
    assert_eq!(done["completion_reason"], "closed");
    assert_eq!(
        parse_rfc3339(s(&done["completed_at"])),
        Some(srv.clock.now_ms())
    );
    assert_eq!(
        number_holder(&srv, &masked).await,
        (None, Some(srv.clock.now_ms()))
    );
    assert!(
        srv.running.engine().routes().get(&masked).is_none(),
        "route removed"
    );

    srv.clock.advance_ms(5_000);
    let again = srv.complete(&id).await;
    assert_eq!(again, done, "unchanged the second time");
    let mut fetched = srv.session(&id).await;
    if let Some(o) = fetched.as_object_mut() {
        o.remove("calls");
    }
    assert_eq!(fetched, done);

    let kinds: Vec<String> = srv
        .event_types("acme")
        .await
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(
        kinds,
        ["session.created", "session.completed"],
        "one completion event"
    );
    srv.stop().await;
}

#[tokio::test]
async fn ttl_expiry_completes_the_session() {
    let dir = TempDir::new("ttl");
    let srv = Server::fresh(&dir).await;
    let created = srv
        .create(json!({"party_a": PARTY_A, "party_b": PARTY_B, "ttl_minutes": 2}))
        .await;
    let id = s(&created["id"]).to_string();
    let masked = s(&created["masked_number"]).to_string();

    // The server's own timer sleeps in real time for what the manual clock
    // says is left (≥ 60 s at every point below), so it cannot fire during
    // this test: the expiry path is driven here by calling it directly. The
    // timer itself is tested with paused time in `service::ttl`.

    // A timer firing early (clock skew) changes nothing and re-arms.
    srv.clock.advance_ms(60_000);
    assert!(srv
        .running
        .sessions()
        .expire(&id)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .is_none());
    assert_eq!(srv.session(&id).await["state"], "open");
    assert!(srv.running.engine().routes().get(&masked).is_some());

    srv.clock.advance_ms(60_000);
    let expired = srv
        .running
        .sessions()
        .expire(&id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        expired.map(|r| r.completion_reason),
        Some(Some("ttl_expired".to_string()))
    );
    let view = srv.session(&id).await;
    assert_eq!(view["state"], "completed");
    assert_eq!(view["completion_reason"], "ttl_expired");
    assert_eq!(view["completed_at"], view["expires_at"]);
    assert!(srv.running.engine().routes().get(&masked).is_none());
    assert_eq!(number_holder(&srv, &masked).await.0, None);

    // Expiring again, or completing through the API, changes nothing.
    assert!(srv
        .running
        .sessions()
        .expire(&id)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .is_none());
    assert_eq!(srv.complete(&id).await["completion_reason"], "ttl_expired");
    srv.stop().await;
}

#[tokio::test]
async fn restart_keeps_open_sessions_routable_and_expires_overdue_ones() {
    let dir = TempDir::new("restart");
    let config = config(&dir.0);
    let t0 = wall_now_ms();
    let srv = Server::start(&config, Clock::manual(t0)).await;
    let long = srv
        .create(json!({"party_a": PARTY_A, "party_b": PARTY_B, "ttl_minutes": 60}))
        .await;
    let short = srv
        .create(json!({"party_a": PARTY_A, "party_b": PARTY_B, "ttl_minutes": 1}))
        .await;
    let closed = srv.create_ab().await;
    srv.complete(s(&closed["id"])).await;
    srv.stop().await;

    // Back two minutes later: the 1-minute session expired while down.
    let srv = Server::start(&config, Clock::manual(t0 + 120_000)).await;
    let report = srv.running.recovery().clone();
    assert_eq!((report.sessions_restored, report.sessions_expired), (1, 1));

    let routes = srv.running.engine().routes();
    let route = routes
        .get(s(&long["masked_number"]))
        .unwrap_or_else(|| panic!("long session not routed"));
    assert_eq!(route.session_id, s(&long["id"]));
    assert_eq!(routes.len(), 1, "only the open session is routed");
    assert_eq!(srv.session(s(&long["id"])).await["state"], "open");

    let short_view = srv.session(s(&short["id"])).await;
    assert_eq!(short_view["state"], "completed");
    assert_eq!(short_view["completion_reason"], "ttl_expired");
    assert_eq!(
        parse_rfc3339(s(&short_view["completed_at"])),
        Some(t0 + 120_000)
    );
    assert_eq!(
        srv.session(s(&closed["id"])).await["completion_reason"],
        "closed"
    );

    // The API keys still work; freed numbers come back least recently
    // released first: #3 (closed at t0), then #2 (expired at t0 + 2 min).
    assert_eq!(srv.create_ab().await["masked_number"], ACME_NUMBERS[2]);
    assert_eq!(srv.create_ab().await["masked_number"], ACME_NUMBERS[1]);
    assert_eq!(
        srv.event_types("acme").await.last().map(|(k, _)| k.clone()),
        Some("session.created".into())
    );
    assert_eq!(
        srv.session(s(&long["id"])).await["metadata"],
        Value::Object(Default::default())
    );
    srv.stop().await;
}

#[tokio::test]
async fn the_running_timer_expires_a_session() {
    let dir = TempDir::new("timer");
    let srv = Server::fresh(&dir).await;
    let created = srv
        .create(json!({"party_a": PARTY_A, "party_b": PARTY_B, "ttl_minutes": 1}))
        .await;
    let id = s(&created["id"]).to_string();
    srv.clock.advance_ms(60_000);
    // The timer sleeps in real time for what was left when it was armed; re-arm
    // it (as recovery does) so it sees the manual clock already at expiry.
    let (row, _) = srv
        .running
        .sessions()
        .get(&tenant_id(&srv, "acme").await, &id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    srv.running.sessions().activate(&row);

    // Waiting on a condition that the server's own tasks bring about: the
    // timer task fires, the expiry worker completes the session.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let view = srv.session(&id).await;
        if view["state"] == "completed" {
            assert_eq!(view["completion_reason"], "ttl_expired");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not expired: {view}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(srv
        .running
        .engine()
        .routes()
        .get(s(&created["masked_number"]))
        .is_none());
    srv.stop().await;
}

async fn tenant_id(srv: &Server, name: &str) -> String {
    let mut conn = srv
        .running
        .store()
        .pool()
        .acquire()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    maskline::store::tenants::find_by_name(&mut conn, name)
        .await
        .ok()
        .flatten()
        .map(|t| t.id)
        .unwrap_or_else(|| panic!("tenant {name}"))
}
