//! `api_keys` lookups for the operator CLI (`maskline key revoke`).
//! Inserting keys and authenticating by hash live in [`super::tenants`].

use sqlx::AnyConnection;

use super::StoreError;

/// An API key row (only the hash of the key is stored).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ApiKeyRow {
    /// `key_…`
    pub id: String,
    /// Owning tenant.
    pub tenant_id: String,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms, once revoked.
    pub revoked_at: Option<i64>,
}

/// Keys whose id starts with `prefix` (at most `limit`), by id.
pub async fn find_by_id_prefix(
    conn: &mut AnyConnection,
    prefix: &str,
    limit: i64,
) -> Result<Vec<ApiKeyRow>, StoreError> {
    // Ids are `[a-z0-9_]`; escape LIKE's wildcards anyway.
    let pattern = format!(
        "{}%",
        prefix
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    );
    Ok(sqlx::query_as(
        "SELECT id, tenant_id, created_at, revoked_at FROM api_keys \
         WHERE id LIKE $1 ESCAPE '\\' ORDER BY id LIMIT $2",
    )
    .bind(pattern)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?)
}

/// The key with this hash, revoked or not.
pub async fn find_by_hash(
    conn: &mut AnyConnection,
    key_hash: &str,
) -> Result<Option<ApiKeyRow>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, tenant_id, created_at, revoked_at FROM api_keys WHERE key_hash = $1",
    )
    .bind(key_hash)
    .fetch_optional(&mut *conn)
    .await?)
}

/// Revoke a key unless it already is. Returns whether it changed.
pub async fn revoke(conn: &mut AnyConnection, id: &str, now_ms: i64) -> Result<bool, StoreError> {
    let done =
        sqlx::query("UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
            .bind(id)
            .bind(now_ms)
            .execute(&mut *conn)
            .await?;
    Ok(done.rows_affected() == 1)
}
