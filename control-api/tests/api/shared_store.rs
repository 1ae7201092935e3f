//! Two servers on one store (as the nodes of a cluster share PostgreSQL;
//! both backends run this): whichever server gets there first completes a
//! session, once.

use maskline::util::time::Clock;
use serde_json::json;

use crate::support::{config, s, wall_now_ms, Server, TempDir, PARTY_A, PARTY_B};

/// Both servers' TTL expiry runs at once for the same session: exactly one
/// completes it, and there is one `session.completed`.
#[tokio::test]
async fn ttl_expiry_on_two_servers_completes_a_session_once() {
    let dir = TempDir::new("shared-store");
    let cfg = config(&dir.0);
    let now = wall_now_ms();
    let one = Server::start(&cfg, Clock::manual(now)).await;
    let created = one
        .create(json!({"party_a": PARTY_A, "party_b": PARTY_B, "ttl_minutes": 1}))
        .await;
    let id = s(&created["id"]).to_string();
    // The second server finds the open session at start (recovery).
    let two = Server::start(&cfg, Clock::manual(now)).await;
    assert_eq!(two.running.recovery().sessions_restored, 1);
    let mut seen_one = one.running.sessions().events().subscribe();
    let mut seen_two = two.running.sessions().events().subscribe();
    one.clock.advance_ms(60_000);
    two.clock.advance_ms(60_000);

    let (a, b) = tokio::join!(
        one.running.sessions().expire(&id),
        two.running.sessions().expire(&id)
    );
    // Each server's own TTL timer also races for it (a timer re-checks the
    // clock whenever its task wakes), so a timer may win and both calls
    // answer `None`; what must hold is that nobody completes it twice: at
    // most one call wins and there is one `session.completed` (below).
    let completed = [&a, &b].iter().filter(|r| matches!(r, Ok(Some(_)))).count();
    assert!(a.is_ok() && b.is_ok(), "{a:?} {b:?}");
    assert!(
        completed <= 1,
        "at most one server completes it: {a:?} {b:?}"
    );
    if completed == 0 {
        // A timer's expiry won: wait for its `session.completed`.
        let done = |r: Result<std::sync::Arc<maskline::store::events::EventRow>, _>| {
            r.is_ok_and(|e| e.kind == "session.completed" && e.session_id.as_deref() == Some(&id))
        };
        let waited = tokio::time::timeout(std::time::Duration::from_secs(10), async {
            loop {
                let hit = tokio::select! {
                    r = seen_one.recv() => done(r),
                    r = seen_two.recv() => done(r),
                };
                if hit {
                    break;
                }
            }
        })
        .await;
        assert!(waited.is_ok(), "no server completed the session");
    }
    let view = two.session(&id).await;
    assert_eq!(view["state"], "completed");
    assert_eq!(view["completion_reason"], "ttl_expired");
    let completions = one
        .event_types("acme")
        .await
        .into_iter()
        .filter(|(kind, data)| kind == "session.completed" && data["id"] == id.as_str())
        .count();
    assert_eq!(completions, 1);
    one.stop().await;
    two.stop().await;
}
