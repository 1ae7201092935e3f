//! `idempotency_keys`: one row per (tenant, `Idempotency-Key`). While the
//! first request runs, `status` and `response` are NULL (the row is the
//! lock); afterwards they hold what was answered.

use sqlx::AnyConnection;

use super::StoreError;

/// A stored key.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct IdempotencyRow {
    /// Owning tenant.
    pub tenant_id: String,
    /// The client's key.
    pub key: String,
    /// The endpoint it was first used on, e.g. `POST /v1/sessions`.
    pub scope: String,
    /// SHA-256 hex of the canonical request body.
    pub request_hash: String,
    /// HTTP status of the stored response, once done.
    pub status: Option<i64>,
    /// JSON body of the stored response, once done.
    pub response: Option<String>,
    /// Unix ms the first request took the key.
    pub locked_at: i64,
    /// Unix ms the row was created (expiry is counted from here).
    pub created_at: i64,
}

/// What [`claim`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The key was free: this request owns it now.
    Claimed,
    /// Another request took the key first.
    Existing(IdempotencyRow),
}

/// Take `key` for this request unless a live row holds it. A row created
/// before `expired_before_ms` is dropped first, so a key can be reused once
/// it has expired.
pub async fn claim(
    conn: &mut AnyConnection,
    row: &IdempotencyRow,
    expired_before_ms: i64,
) -> Result<Claim, StoreError> {
    sqlx::query(
        "DELETE FROM idempotency_keys WHERE tenant_id = $1 AND key = $2 AND created_at < $3",
    )
    .bind(&row.tenant_id)
    .bind(&row.key)
    .bind(expired_before_ms)
    .execute(&mut *conn)
    .await?;
    let done = sqlx::query(
        "INSERT INTO idempotency_keys (tenant_id, key, scope, request_hash, status, response, \
         locked_at, created_at) VALUES ($1, $2, $3, $4, NULL, NULL, $5, $6) \
         ON CONFLICT (tenant_id, key) DO NOTHING",
    )
    .bind(&row.tenant_id)
    .bind(&row.key)
    .bind(&row.scope)
    .bind(&row.request_hash)
    .bind(row.locked_at)
    .bind(row.created_at)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() == 1 {
        return Ok(Claim::Claimed);
    }
    let existing: Option<IdempotencyRow> = sqlx::query_as(
        "SELECT tenant_id, key, scope, request_hash, status, response, locked_at, created_at \
         FROM idempotency_keys WHERE tenant_id = $1 AND key = $2",
    )
    .bind(&row.tenant_id)
    .bind(&row.key)
    .fetch_optional(&mut *conn)
    .await?;
    match existing {
        Some(e) => Ok(Claim::Existing(e)),
        // Purged between the insert and the select: the caller may retry.
        None => Err(StoreError::Corrupt(
            "idempotency key vanished while being claimed".into(),
        )),
    }
}

/// Store the response of the request that holds the key.
pub async fn finish(
    conn: &mut AnyConnection,
    tenant_id: &str,
    key: &str,
    status: i64,
    response: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE idempotency_keys SET status = $3, response = $4 WHERE tenant_id = $1 AND key = $2",
    )
    .bind(tenant_id)
    .bind(key)
    .bind(status)
    .bind(response)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Drop the key (the request failed before creating anything), so the
/// client can retry with it.
pub async fn release(
    conn: &mut AnyConnection,
    tenant_id: &str,
    key: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "DELETE FROM idempotency_keys WHERE tenant_id = $1 AND key = $2 AND response IS NULL",
    )
    .bind(tenant_id)
    .bind(key)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Delete every key created before `before_ms`. Returns how many.
pub async fn purge(conn: &mut AnyConnection, before_ms: i64) -> Result<u64, StoreError> {
    let done = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
        .bind(before_ms)
        .execute(&mut *conn)
        .await?;
    Ok(done.rows_affected())
}
