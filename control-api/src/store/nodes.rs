//! `nodes`: the members of a cluster and their leases.
//!
//! A node registers at start ([`register`]), renews its lease every
//! `lease / 3` ([`renew`]) and marks a clean stop ([`leave`]). A node whose
//! lease ran out is dead: one survivor [`claim_dead`]s it (exactly one: a
//! conditional update) and ends its calls. Times are unix ms from each
//! node's clock (keep the clocks in sync, e.g. NTP; the lease should be
//! well above any skew).

use sqlx::AnyConnection;

use super::StoreError;

/// A node as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct NodeRow {
    /// `[cluster] node_id`.
    pub id: String,
    /// `ip:port` of its HTTP, for forwarded commands.
    pub http_address: String,
    /// Unix ms of its last start.
    pub started_at: i64,
    /// Unix ms of its last renewal.
    pub heartbeat_at: i64,
    /// Unix ms after which it is dead unless renewed.
    pub lease_expires_at: i64,
    /// Unix ms of a clean stop.
    pub left_at: Option<i64>,
    /// Unix ms at which a survivor ended its calls.
    pub reaped_at: Option<i64>,
}

/// Register (or re-register after a restart) node `id`, alive until
/// `lease_expires_at`.
pub async fn register(
    conn: &mut AnyConnection,
    id: &str,
    http_address: &str,
    now_ms: i64,
    lease_expires_at: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO nodes (id, http_address, started_at, heartbeat_at, lease_expires_at) \
         VALUES ($1, $2, $3, $3, $4) \
         ON CONFLICT (id) DO UPDATE SET http_address = excluded.http_address, \
         started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at, \
         lease_expires_at = excluded.lease_expires_at, left_at = NULL, reaped_at = NULL",
    )
    .bind(id)
    .bind(http_address)
    .bind(now_ms)
    .bind(lease_expires_at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Renew node `id`'s lease. Returns `false` when the node was declared
/// dead (reaped) meanwhile, or is unknown: it must register again.
pub async fn renew(
    conn: &mut AnyConnection,
    id: &str,
    now_ms: i64,
    lease_expires_at: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE nodes SET heartbeat_at = $2, lease_expires_at = $3 \
         WHERE id = $1 AND reaped_at IS NULL",
    )
    .bind(id)
    .bind(now_ms)
    .bind(lease_expires_at)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A clean stop of node `id`: its lease ends now (its calls were drained).
/// A node that left is never reaped ([`expired`], [`claim_dead`] skip it)
/// until it registers again.
pub async fn leave(conn: &mut AnyConnection, id: &str, now_ms: i64) -> Result<(), StoreError> {
    sqlx::query("UPDATE nodes SET left_at = $2, lease_expires_at = $2 WHERE id = $1")
        .bind(id)
        .bind(now_ms)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Nodes other than `self_id` whose lease ran out before `now_ms`, that
/// did not leave cleanly and that nobody reaped yet.
pub async fn expired(
    conn: &mut AnyConnection,
    self_id: &str,
    now_ms: i64,
) -> Result<Vec<String>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM nodes WHERE id <> $1 AND lease_expires_at < $2 AND reaped_at IS NULL \
         AND left_at IS NULL ORDER BY id",
    )
    .bind(self_id)
    .bind(now_ms)
    .fetch_all(&mut *conn)
    .await?)
}

/// Declare node `id` dead if its lease still is expired, it did not leave
/// and nobody did yet. Returns whether this caller won (and must end its
/// calls).
pub async fn claim_dead(
    conn: &mut AnyConnection,
    id: &str,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE nodes SET reaped_at = $2 \
         WHERE id = $1 AND lease_expires_at < $2 AND reaped_at IS NULL AND left_at IS NULL",
    )
    .bind(id)
    .bind(now_ms)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Node `id`, if it ever registered.
pub async fn get(conn: &mut AnyConnection, id: &str) -> Result<Option<NodeRow>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, http_address, started_at, heartbeat_at, lease_expires_at, left_at, reaped_at \
         FROM nodes WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?)
}

/// Sessions whose live call another node than `self_id` owns: this node
/// must refuse new calls for them (one live call per session).
pub async fn sessions_busy_elsewhere(
    conn: &mut AnyConnection,
    self_id: &str,
) -> Result<Vec<String>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT s.id FROM sessions s JOIN calls c ON c.id = s.active_call_id \
         WHERE s.state = 'active' AND c.ended_at IS NULL \
         AND c.node_id IS NOT NULL AND c.node_id <> $1 ORDER BY s.id",
    )
    .bind(self_id)
    .fetch_all(&mut *conn)
    .await?)
}

/// Whether session `session_id`'s live call is owned by another node than
/// `self_id`.
pub async fn session_busy_elsewhere(
    conn: &mut AnyConnection,
    self_id: &str,
    session_id: &str,
) -> Result<bool, StoreError> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM sessions s JOIN calls c ON c.id = s.active_call_id \
         WHERE s.id = $2 AND s.state = 'active' AND c.ended_at IS NULL \
         AND c.node_id IS NOT NULL AND c.node_id <> $1",
    )
    .bind(self_id)
    .bind(session_id)
    .fetch_one(&mut *conn)
    .await?;
    Ok(n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::{store, TempDir};

    #[tokio::test]
    async fn lease_renewal_expiry_and_a_single_reaper() {
        let dir = TempDir::new("nodes");
        let s = store(&dir).await;
        let mut c = s.pool().acquire().await.unwrap_or_else(|e| panic!("{e}"));
        let ok = |r: Result<(), StoreError>| r.unwrap_or_else(|e| panic!("{e}"));
        ok(register(&mut c, "a", "127.0.0.1:1", 1_000, 11_000).await);
        ok(register(&mut c, "b", "127.0.0.1:2", 1_000, 11_000).await);
        assert_eq!(renew(&mut c, "b", 5_000, 15_000).await.ok(), Some(true));
        assert_eq!(
            renew(&mut c, "nobody", 5_000, 15_000).await.ok(),
            Some(false)
        );

        // At 12 s, a's lease (11 s) ran out; b's (15 s) did not.
        let dead = expired(&mut c, "b", 12_000).await.unwrap_or_default();
        assert_eq!(dead, ["a"]);
        assert!(expired(&mut c, "a", 12_000)
            .await
            .unwrap_or_default()
            .is_empty());
        assert_eq!(claim_dead(&mut c, "a", 12_000).await.ok(), Some(true));
        assert_eq!(
            claim_dead(&mut c, "a", 12_001).await.ok(),
            Some(false),
            "once"
        );
        assert!(expired(&mut c, "b", 13_000)
            .await
            .unwrap_or_default()
            .is_empty());
        assert_eq!(
            claim_dead(&mut c, "b", 13_000).await.ok(),
            Some(false),
            "b is alive"
        );

        // A reaped node cannot renew: it registers again (restart).
        assert_eq!(renew(&mut c, "a", 13_000, 23_000).await.ok(), Some(false));
        ok(register(&mut c, "a", "127.0.0.1:9", 14_000, 24_000).await);
        let a = get(&mut c, "a").await.ok().flatten();
        assert_eq!(
            a.map(|n| (n.http_address, n.reaped_at, n.lease_expires_at)),
            Some(("127.0.0.1:9".to_string(), None, 24_000))
        );

        // A clean stop ends the lease but is no death: never reaped.
        ok(leave(&mut c, "b", 14_000).await);
        assert!(expired(&mut c, "a", 30_000)
            .await
            .unwrap_or_default()
            .is_empty());
        assert_eq!(
            claim_dead(&mut c, "b", 30_000).await.ok(),
            Some(false),
            "b left"
        );
        let b = get(&mut c, "b").await.ok().flatten();
        assert_eq!(
            b.map(|n| (n.left_at, n.reaped_at, n.lease_expires_at)),
            Some((Some(14_000), None, 14_000))
        );
        // Until it registers again: then its lease counts once more.
        ok(register(&mut c, "b", "127.0.0.1:2", 31_000, 41_000).await);
        assert_eq!(
            expired(&mut c, "a", 41_001).await.unwrap_or_default(),
            ["b"]
        );
    }

    /// A session whose live call node "b" owns is busy for node "a" (not
    /// for "b", whose engine knows its call) until the call ends; node
    /// "b"'s operations in flight are listed for its reaper.
    #[tokio::test]
    async fn sessions_busy_on_another_node_and_its_operations_in_flight() {
        use crate::store::calls::{self, NewCall};
        use crate::store::operations::{self, OperationRow, STATUS_IN_PROGRESS};
        use crate::store::sessions::{self, SessionRow};
        use crate::store::{numbers, tenants};

        let dir = TempDir::new("nodes-busy");
        let s = store(&dir).await;
        let mut c = s.pool().acquire().await.unwrap_or_else(|e| panic!("{e}"));
        let ok = |r: Result<(), StoreError>| r.unwrap_or_else(|e| panic!("{e}"));
        let limits = tenants::TenantLimits::from(&sip_config::TenantConfig::default());
        tenants::insert(&mut c, "ten_1", "acme", &limits, 1)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        for (n, id) in [("+15550000001", "ses_1"), ("+15550000002", "ses_2")] {
            ok(numbers::insert(&mut c, n, "ten_1", 1).await);
            let session = SessionRow {
                id: id.into(),
                tenant_id: "ten_1".into(),
                masked_number: n.into(),
                party_a: "+14155550101".into(),
                party_b: "+14155550202".into(),
                record: 0,
                ttl_minutes: 60,
                state: "open".into(),
                metadata: "{}".into(),
                created_at: 1,
                expires_at: 3_600_001,
                completed_at: None,
                completion_reason: None,
                call_count: 0,
                active_call_id: None,
                inbound: "bridge".into(),
            };
            ok(sessions::insert(&mut c, &session).await);
        }
        // ses_1's live call is on b, ses_2's on a.
        for (call, session, node) in [("cal_1", "ses_1", "b"), ("cal_2", "ses_2", "a")] {
            let new = NewCall {
                id: call,
                session_id: session,
                direction: "inbound",
                state: "ringing",
                caller: "+14155550101",
                callee: "+14155550202",
                started_at: 10,
            };
            assert!(calls::insert(&mut c, &new).await.unwrap_or(false));
            sqlx::query("UPDATE calls SET node_id = $1 WHERE id = $2")
                .bind(node)
                .bind(call)
                .execute(&mut *c)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            ok(sessions::call_started(&mut c, session, call).await);
        }
        assert_eq!(
            sessions_busy_elsewhere(&mut c, "a").await.ok(),
            Some(vec!["ses_1".to_string()])
        );
        assert_eq!(
            sessions_busy_elsewhere(&mut c, "b").await.ok(),
            Some(vec!["ses_2".to_string()])
        );
        assert!(session_busy_elsewhere(&mut c, "a", "ses_1")
            .await
            .unwrap_or_else(|e| panic!("{e}")));
        assert!(
            !session_busy_elsewhere(&mut c, "b", "ses_1")
                .await
                .unwrap_or_else(|e| panic!("{e}")),
            "b carries it"
        );
        assert!(
            !session_busy_elsewhere(&mut c, "a", "ses_2")
                .await
                .unwrap_or_else(|e| panic!("{e}")),
            "a carries it"
        );
        assert!(!session_busy_elsewhere(&mut c, "a", "ses_unknown")
            .await
            .unwrap_or_else(|e| panic!("{e}")));

        // b's operation in flight is b's, not a's.
        let op = OperationRow {
            id: "op_1".into(),
            tenant_id: "ten_1".into(),
            call_id: "cal_1".into(),
            command: "hangup".into(),
            command_uid: None,
            cause: Some("NORMAL_CLEARING".into()),
            status: STATUS_IN_PROGRESS.into(),
            error: None,
            error_message: None,
            created_at: 20,
            completed_at: None,
        };
        assert!(operations::insert(&mut c, &op).await.unwrap_or(false));
        sqlx::query("UPDATE operations SET node_id = 'b' WHERE id = 'op_1'")
            .execute(&mut *c)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            operations::list_in_progress_on_node(&mut c, "b").await.ok(),
            Some(vec!["op_1".to_string()])
        );
        assert_eq!(
            operations::list_in_progress_on_node(&mut c, "a").await.ok(),
            Some(vec![])
        );

        // The call on b ends: ses_1 is free everywhere.
        sqlx::query("UPDATE calls SET ended_at = 30, state = 'completed' WHERE id = 'cal_1'")
            .execute(&mut *c)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        ok(sessions::call_ended(&mut c, "ses_1", "cal_1").await);
        assert!(!session_busy_elsewhere(&mut c, "a", "ses_1")
            .await
            .unwrap_or_else(|e| panic!("{e}")));
        assert_eq!(
            sessions_busy_elsewhere(&mut c, "a").await.ok(),
            Some(vec![])
        );
    }
}
