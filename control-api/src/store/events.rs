//! `events`: the append-only event log. Its autoincrement id is the SSE
//! event id; rows are written in the same transaction as the state change
//! they describe, before anything is published.

use sqlx::AnyConnection;

use super::StoreError;

/// An event as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct EventRow {
    /// Monotonic id (the future SSE `id:`).
    pub id: i64,
    /// Owning tenant.
    pub tenant_id: String,
    /// Session concerned, if any.
    pub session_id: Option<String>,
    /// Call concerned, if any.
    pub call_id: Option<String>,
    /// `session.created`, `call.hangup`, …
    #[sqlx(rename = "type")]
    pub kind: String,
    /// JSON text of the event's `data`.
    pub data: String,
    /// Unix ms.
    pub created_at: i64,
}

/// A new event.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent<'a> {
    /// Owning tenant.
    pub tenant_id: &'a str,
    /// Session concerned, if any.
    pub session_id: Option<&'a str>,
    /// Call concerned, if any.
    pub call_id: Option<&'a str>,
    /// Event type.
    pub kind: &'a str,
    /// The `data` object.
    pub data: &'a serde_json::Value,
    /// Unix ms.
    pub created_at: i64,
}

/// Append an event; returns its id.
pub async fn insert(conn: &mut AnyConnection, e: &NewEvent<'_>) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(
        "INSERT INTO events (tenant_id, session_id, call_id, type, data, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(e.tenant_id)
    .bind(e.session_id)
    .bind(e.call_id)
    .bind(e.kind)
    .bind(e.data.to_string())
    .bind(e.created_at)
    .fetch_one(&mut *conn)
    .await?)
}

/// A tenant's events with id greater than `after_id`, oldest first.
pub async fn list_after(
    conn: &mut AnyConnection,
    tenant_id: &str,
    after_id: i64,
    limit: i64,
) -> Result<Vec<EventRow>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, tenant_id, session_id, call_id, type, data, created_at FROM events \
         WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3",
    )
    .bind(tenant_id)
    .bind(after_id)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?)
}
