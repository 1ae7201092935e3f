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
pub async fn leave(conn: &mut AnyConnection, id: &str, now_ms: i64) -> Result<(), StoreError> {
    sqlx::query("UPDATE nodes SET left_at = $2, lease_expires_at = $2 WHERE id = $1")
        .bind(id)
        .bind(now_ms)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Nodes other than `self_id` whose lease ran out before `now_ms` and that
/// nobody reaped yet.
pub async fn expired(
    conn: &mut AnyConnection,
    self_id: &str,
    now_ms: i64,
) -> Result<Vec<String>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM nodes WHERE id <> $1 AND lease_expires_at < $2 AND reaped_at IS NULL \
         ORDER BY id",
    )
    .bind(self_id)
    .bind(now_ms)
    .fetch_all(&mut *conn)
    .await?)
}

/// Declare node `id` dead if its lease still is expired and nobody did
/// yet. Returns whether this caller won (and must end its calls).
pub async fn claim_dead(
    conn: &mut AnyConnection,
    id: &str,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE nodes SET reaped_at = $2 \
         WHERE id = $1 AND lease_expires_at < $2 AND reaped_at IS NULL",
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

        ok(leave(&mut c, "b", 14_000).await);
        assert_eq!(
            expired(&mut c, "a", 14_001).await.unwrap_or_default(),
            ["b"]
        );
    }
}
