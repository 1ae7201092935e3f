//! `webhook_deliveries` (the outbox: one row per event and endpoint) and
//! `webhook_attempts` (one row per HTTP attempt).

use sqlx::AnyConnection;

use super::StoreError;

/// `status` of a delivery still to be attempted.
pub const PENDING: &str = "pending";
/// `status` of a delivery the receiver accepted (2xx).
pub const DELIVERED: &str = "delivered";
/// `status` of a delivery whose retries are exhausted.
pub const FAILED: &str = "failed";
/// `status` of a delivery dropped because its endpoint was disabled or
/// removed.
pub const DISABLED: &str = "disabled";

/// Queue one pending delivery per enabled endpoint of each event's tenant
/// for the events `event_ids`, first due at `first_attempt_at`. Returns how
/// many were queued.
pub async fn enqueue(
    conn: &mut AnyConnection,
    event_ids: &[i64],
    first_attempt_at: i64,
    now_ms: i64,
) -> Result<u64, StoreError> {
    if event_ids.is_empty() {
        return Ok(0);
    }
    let ids = super::placeholders(3, event_ids.len());
    let mut q = sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO webhook_deliveries (tenant_id, event_id, endpoint_id, status, attempts, \
         next_attempt_at, created_at, updated_at) \
         SELECT e.tenant_id, e.id, w.id, 'pending', 0, $1, $2, $2 FROM events e \
         JOIN webhook_endpoints w ON w.tenant_id = e.tenant_id AND w.disabled_at IS NULL \
         WHERE e.id IN ({ids})"
    )))
    .bind(first_attempt_at)
    .bind(now_ms);
    for id in event_ids {
        q = q.bind(*id);
    }
    Ok(q.execute(&mut *conn).await?.rows_affected())
}

/// A pending delivery with what its attempt needs.
#[derive(Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DueDelivery {
    /// Delivery id.
    pub id: i64,
    /// Owning tenant.
    pub tenant_id: String,
    /// Event id (the `webhook-id` source).
    pub event_id: i64,
    /// Endpoint id.
    pub endpoint_id: String,
    /// Attempts made so far.
    pub attempts: i64,
    /// The endpoint's URL now.
    pub url: String,
    /// The endpoint's secret now (never logged).
    pub secret: String,
}

impl std::fmt::Debug for DueDelivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DueDelivery")
            .field("id", &self.id)
            .field("event_id", &self.event_id)
            .field("attempts", &self.attempts)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// Pending deliveries due at `now_ms` to enabled endpoints, oldest due first.
pub async fn due(
    conn: &mut AnyConnection,
    now_ms: i64,
    limit: i64,
) -> Result<Vec<DueDelivery>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT d.id, d.tenant_id, d.event_id, d.endpoint_id, d.attempts, e.url, e.secret \
         FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id \
         WHERE d.status = 'pending' AND d.next_attempt_at <= $1 AND e.disabled_at IS NULL \
         ORDER BY d.next_attempt_at, d.id LIMIT $2",
    )
    .bind(now_ms)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?)
}

/// Claim the pending deliveries due at `now_ms` (at most `limit`, oldest
/// due first) for one attempt each: their `next_attempt_at` moves to
/// `claim_until`, so no other worker (another node's) takes them until
/// then; recording the attempt sets it for real. A worker that dies with
/// a claim lets the delivery be retried at `claim_until`.
///
/// PostgreSQL: one statement whose rows are locked `FOR UPDATE SKIP
/// LOCKED`, so concurrent workers claim disjoint batches without waiting.
/// SQLite (one node, one worker): select, then move.
pub async fn claim_due(
    conn: &mut AnyConnection,
    now_ms: i64,
    limit: i64,
    claim_until: i64,
) -> Result<Vec<DueDelivery>, StoreError> {
    let mut rows: Vec<DueDelivery> = if super::is_postgres(conn) {
        sqlx::query_as(
            "UPDATE webhook_deliveries d SET next_attempt_at = $3 \
             FROM webhook_endpoints e \
             WHERE e.id = d.endpoint_id AND d.id IN ( \
                 SELECT d2.id FROM webhook_deliveries d2 \
                 JOIN webhook_endpoints e2 ON e2.id = d2.endpoint_id \
                 WHERE d2.status = 'pending' AND d2.next_attempt_at <= $1 \
                   AND e2.disabled_at IS NULL \
                 ORDER BY d2.next_attempt_at, d2.id LIMIT $2 \
                 FOR UPDATE OF d2 SKIP LOCKED) \
             RETURNING d.id, d.tenant_id, d.event_id, d.endpoint_id, d.attempts, e.url, e.secret",
        )
        .bind(now_ms)
        .bind(limit)
        .bind(claim_until)
        .fetch_all(&mut *conn)
        .await?
    } else {
        let rows = due(conn, now_ms, limit).await?;
        for d in &rows {
            sqlx::query(
                "UPDATE webhook_deliveries SET next_attempt_at = $2 \
                 WHERE id = $1 AND status = 'pending'",
            )
            .bind(d.id)
            .bind(claim_until)
            .execute(&mut *conn)
            .await?;
        }
        rows
    };
    rows.sort_by_key(|d| d.id);
    Ok(rows)
}

/// When the next pending delivery to an enabled endpoint is due, if any.
pub async fn next_due_at(conn: &mut AnyConnection) -> Result<Option<i64>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT MIN(d.next_attempt_at) FROM webhook_deliveries d \
         JOIN webhook_endpoints e ON e.id = d.endpoint_id \
         WHERE d.status = 'pending' AND e.disabled_at IS NULL",
    )
    .fetch_one(&mut *conn)
    .await?)
}

/// The outcome of one attempt, to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRecord<'a> {
    /// Delivery id.
    pub delivery_id: i64,
    /// Owning tenant.
    pub tenant_id: &'a str,
    /// Event id.
    pub event_id: i64,
    /// 1-based attempt number.
    pub attempt: i64,
    /// URL attempted.
    pub url: &'a str,
    /// HTTP status, if a response came.
    pub status_code: Option<i64>,
    /// Transport error or non-2xx summary.
    pub error: Option<&'a str>,
    /// `delivered`, `retry`, `failed` or `disabled`.
    pub outcome: &'a str,
    /// Request duration.
    pub duration_ms: i64,
    /// Unix ms.
    pub at: i64,
    /// The delivery's new status.
    pub status: &'a str,
    /// When to try again (`retry` only).
    pub next_attempt_at: Option<i64>,
}

/// Record an attempt: append to `webhook_attempts` and update the delivery.
pub async fn record_attempt(
    conn: &mut AnyConnection,
    a: &AttemptRecord<'_>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO webhook_attempts (tenant_id, delivery_id, event_id, attempt, url, \
         status_code, error, outcome, duration_ms, at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(a.tenant_id)
    .bind(a.delivery_id)
    .bind(a.event_id)
    .bind(a.attempt)
    .bind(a.url)
    .bind(a.status_code)
    .bind(a.error)
    .bind(a.outcome)
    .bind(a.duration_ms)
    .bind(a.at)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE webhook_deliveries SET status = $2, attempts = $3, next_attempt_at = $4, \
         last_status_code = $5, last_error = $6, updated_at = $7 WHERE id = $1",
    )
    .bind(a.delivery_id)
    .bind(a.status)
    .bind(a.attempt)
    .bind(a.next_attempt_at)
    .bind(a.status_code)
    .bind(a.error)
    .bind(a.at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Drop every pending delivery of an endpoint (disabled or removed).
pub async fn disable_pending(
    conn: &mut AnyConnection,
    endpoint_id: &str,
    reason: &str,
    now_ms: i64,
) -> Result<u64, StoreError> {
    let done = sqlx::query(
        "UPDATE webhook_deliveries SET status = 'disabled', next_attempt_at = NULL, \
         last_error = COALESCE(last_error, $2), updated_at = $3 \
         WHERE endpoint_id = $1 AND status = 'pending'",
    )
    .bind(endpoint_id)
    .bind(reason)
    .bind(now_ms)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected())
}

/// One attempt as listed by `GET /v1/webhook/deliveries`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AttemptRow {
    /// Attempt row id.
    pub id: i64,
    /// Delivery id.
    pub delivery_id: i64,
    /// Event id.
    pub event_id: i64,
    /// Event type.
    pub event_type: String,
    /// 1-based attempt number.
    pub attempt: i64,
    /// URL attempted.
    pub url: String,
    /// HTTP status, if a response came.
    pub status_code: Option<i64>,
    /// Error summary.
    pub error: Option<String>,
    /// `delivered`, `retry`, `failed` or `disabled`.
    pub outcome: String,
    /// Request duration.
    pub duration_ms: i64,
    /// Unix ms.
    pub at: i64,
    /// The delivery's status now.
    pub delivery_status: String,
    /// When the delivery is next tried, if pending.
    pub next_attempt_at: Option<i64>,
}

/// A tenant's most recent attempts, newest first.
pub async fn recent_attempts(
    conn: &mut AnyConnection,
    tenant_id: &str,
    limit: i64,
) -> Result<Vec<AttemptRow>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT a.id, a.delivery_id, a.event_id, ev.type AS event_type, a.attempt, a.url, \
         a.status_code, a.error, a.outcome, a.duration_ms, a.at, d.status AS delivery_status, \
         d.next_attempt_at FROM webhook_attempts a \
         JOIN webhook_deliveries d ON d.id = a.delivery_id \
         JOIN events ev ON ev.id = a.event_id \
         WHERE a.tenant_id = $1 ORDER BY a.id DESC LIMIT $2",
    )
    .bind(tenant_id)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?)
}

/// A delivery's status, attempts and last status code (tests, diagnostics).
pub async fn status_of(
    conn: &mut AnyConnection,
    id: i64,
) -> Result<Option<(String, i64, Option<i64>)>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT status, attempts, last_status_code FROM webhook_deliveries WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::events::{self, NewEvent};
    use crate::store::tenants::{self, TenantLimits};
    use crate::store::testing::{store, TempDir};
    use crate::store::webhook_endpoints::{self, EndpointRow};

    /// Workers claiming at once (each in its own transaction, as two nodes
    /// would) get disjoint deliveries, and a claimed delivery is due again
    /// only when its claim runs out.
    #[tokio::test]
    async fn concurrent_claims_are_disjoint_and_claims_expire() {
        let dir = TempDir::new("deliveries-claim");
        let s = store(&dir).await;
        {
            let mut c = s.pool().acquire().await.unwrap_or_else(|e| panic!("{e}"));
            let limits = TenantLimits::from(&sip_config::TenantConfig::default());
            tenants::insert(&mut c, "ten_1", "one", &limits, 0)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let endpoint = EndpointRow {
                id: "whe_1".into(),
                tenant_id: "ten_1".into(),
                url: "http://127.0.0.1:9/hooks".into(),
                secret: "whsec_x".into(),
                source: webhook_endpoints::SOURCE_API.into(),
                created_at: 0,
                updated_at: 0,
                disabled_at: None,
                disabled_reason: None,
            };
            webhook_endpoints::upsert(&mut c, &endpoint)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let data = serde_json::json!({});
            for _ in 0..10 {
                let ids = events::insert_many(
                    &mut c,
                    &[NewEvent {
                        tenant_id: "ten_1",
                        session_id: None,
                        call_id: None,
                        kind: "session.created",
                        data: &data,
                        created_at: 0,
                    }],
                )
                .await
                .unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(enqueue(&mut c, &ids, 100, 0).await.ok(), Some(1));
            }
        }
        let claims: Vec<_> = (0..2)
            .map(|_| {
                let s = s.clone();
                tokio::spawn(async move {
                    let mut tx = s.begin().await.unwrap_or_else(|e| panic!("{e}"));
                    let got = claim_due(&mut tx, 1_000, 6, 60_000)
                        .await
                        .unwrap_or_else(|e| panic!("{e}"));
                    tx.commit().await.unwrap_or_else(|e| panic!("{e}"));
                    got.into_iter().map(|d| d.id).collect::<Vec<i64>>()
                })
            })
            .collect();
        let mut all = Vec::new();
        for c in claims {
            all.extend(c.await.unwrap_or_else(|e| panic!("{e}")));
        }
        all.sort_unstable();
        let before = all.len();
        all.dedup();
        assert_eq!(
            (before, all.len()),
            (10, 10),
            "disjoint and complete: {all:?}"
        );

        let mut c = s.pool().acquire().await.unwrap_or_else(|e| panic!("{e}"));
        let again = claim_due(&mut c, 59_999, 16, 120_000)
            .await
            .unwrap_or_default();
        assert!(again.is_empty(), "still claimed: {again:?}");
        assert_eq!(next_due_at(&mut c).await.ok().flatten(), Some(60_000));
        let expired = claim_due(&mut c, 60_000, 16, 120_000)
            .await
            .unwrap_or_default();
        assert_eq!(expired.len(), 10, "claims ran out");
        assert!(expired.iter().all(|d| d.url == "http://127.0.0.1:9/hooks"));
    }
}
