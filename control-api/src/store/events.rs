//! `events`: the append-only event log. Its autoincrement id is the SSE
//! event id and the source of the webhook `webhook-id`; rows are written in
//! the same transaction as the state change they describe, before anything
//! is published (see [`crate::service::events`]).

use sqlx::AnyConnection;

use super::StoreError;
use crate::util::time::format_rfc3339;

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

impl EventRow {
    /// The event envelope `{"id", "type", "created_at", "data"}` as compact
    /// JSON text, keys in that order; `id` is the row id as a string. This
    /// is the SSE `data:` and the webhook body.
    pub fn envelope_json(&self) -> String {
        let data = if serde_json::from_str::<serde::de::IgnoredAny>(&self.data).is_ok() {
            self.data.as_str()
        } else {
            "null"
        };
        let string = |s: &str| serde_json::Value::String(s.to_string()).to_string();
        format!(
            "{{\"id\":{},\"type\":{},\"created_at\":{},\"data\":{data}}}",
            string(&self.id.to_string()),
            string(&self.kind),
            string(&format_rfc3339(self.created_at)),
        )
    }
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

/// Append `events` with one statement; their ids, in the same order.
///
/// The ids come from `RETURNING`, whose row order neither SQLite nor
/// PostgreSQL promises: each returned row's session, call and type are
/// checked against the event at its position, and a mismatch is an error
/// (the caller's transaction is rolled back, nothing is misnumbered).
pub async fn insert_many(
    conn: &mut AnyConnection,
    events: &[NewEvent<'_>],
) -> Result<Vec<i64>, StoreError> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "INSERT INTO events (tenant_id, session_id, call_id, type, data, created_at) VALUES {} \
         RETURNING id, session_id, call_id, type",
        super::values_placeholders(events.len(), 6)
    );
    let mut q = sqlx::query_as::<_, (i64, Option<String>, Option<String>, String)>(
        sqlx::AssertSqlSafe(sql),
    );
    for e in events {
        q = q
            .bind(e.tenant_id)
            .bind(e.session_id)
            .bind(e.call_id)
            .bind(e.kind)
            .bind(e.data.to_string())
            .bind(e.created_at);
    }
    let rows = q.fetch_all(&mut *conn).await?;
    let in_order = rows.len() == events.len()
        && rows.iter().zip(events).all(|((_, s, c, k), e)| {
            s.as_deref() == e.session_id && c.as_deref() == e.call_id && k == e.kind
        });
    if !in_order {
        return Err(StoreError::Corrupt(
            "events: RETURNING rows not in insertion order".into(),
        ));
    }
    Ok(rows.into_iter().map(|(id, ..)| id).collect())
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

/// Events of a tenant (only call `call_id`'s when given) with id greater
/// than `after_id`, oldest first.
pub async fn list_after_for(
    conn: &mut AnyConnection,
    tenant_id: &str,
    call_id: Option<&str>,
    after_id: i64,
    limit: i64,
) -> Result<Vec<EventRow>, StoreError> {
    let Some(call_id) = call_id else {
        return list_after(conn, tenant_id, after_id, limit).await;
    };
    Ok(sqlx::query_as(
        "SELECT id, tenant_id, session_id, call_id, type, data, created_at FROM events \
         WHERE call_id = $1 AND tenant_id = $2 AND id > $3 ORDER BY id LIMIT $4",
    )
    .bind(call_id)
    .bind(tenant_id)
    .bind(after_id)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?)
}

/// Every tenant's events with id greater than `after_id`, oldest first
/// (a cluster node's event feed).
pub async fn list_since(
    conn: &mut AnyConnection,
    after_id: i64,
    limit: i64,
) -> Result<Vec<EventRow>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, tenant_id, session_id, call_id, type, data, created_at FROM events \
         WHERE id > $1 ORDER BY id LIMIT $2",
    )
    .bind(after_id)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?)
}

/// The largest event id (0 when there is none).
pub async fn max_id(conn: &mut AnyConnection) -> Result<i64, StoreError> {
    let max: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM events")
        .fetch_one(&mut *conn)
        .await?;
    Ok(max.unwrap_or(0))
}

/// One event by id.
pub async fn get(conn: &mut AnyConnection, id: i64) -> Result<Option<EventRow>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, tenant_id, session_id, call_id, type, data, created_at FROM events \
         WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(data: &str) -> EventRow {
        EventRow {
            id: 42,
            tenant_id: "ten_1".into(),
            session_id: None,
            call_id: Some("cal_1".into()),
            kind: "call.hangup".into(),
            data: data.into(),
            created_at: 1_795_446_245_123,
        }
    }

    #[test]
    fn envelope_has_fixed_key_order_and_string_id() {
        assert_eq!(
            row(r#"{"b":1,"a":"x"}"#).envelope_json(),
            r#"{"id":"42","type":"call.hangup","created_at":"2026-11-23T15:04:05.123Z","data":{"b":1,"a":"x"}}"#
        );
        let v: serde_json::Value =
            serde_json::from_str(&row("{}").envelope_json()).unwrap_or_default();
        assert_eq!(v["id"], "42");
    }

    #[test]
    fn corrupt_data_renders_as_null_not_broken_json() {
        let text = row("{not json").envelope_json();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        assert_eq!(v["data"], serde_json::Value::Null, "{text}");
        assert_eq!(v["type"], "call.hangup");
    }
}
