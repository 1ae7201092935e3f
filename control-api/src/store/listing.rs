//! Keyset-paged listing of `sessions` and `calls`, newest first.
//!
//! Pages are ordered by `(created, id)` descending (`created_at` for
//! sessions, `started_at` for calls); the next page starts strictly after
//! the last row's key, so rows added between pages never shift it.

use sqlx::AnyConnection;

use super::calls::CallRow;
use super::sessions::SessionRow;
use super::StoreError;

/// Where a page starts: the `(created, id)` key of the previous page's
/// last row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    /// Unix ms (`created_at` / `started_at`).
    pub created: i64,
    /// Row id.
    pub id: String,
}

/// What to list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter<'a> {
    /// Owning tenant.
    pub tenant_id: &'a str,
    /// Only rows created at or after this (unix ms).
    pub since_ms: i64,
    /// Only rows in this state.
    pub state: Option<&'a str>,
    /// Calls only: only calls of this session.
    pub session_id: Option<&'a str>,
    /// Start after this key.
    pub after: Option<&'a Key>,
    /// Rows to return (the query fetches one more to know if a page follows).
    pub limit: i64,
}

const SESSION_COLUMNS: &str = "SELECT id, tenant_id, masked_number, party_a, party_b, record, \
     ttl_minutes, state, metadata, created_at, expires_at, completed_at, completion_reason, \
     call_count, active_call_id, inbound FROM sessions";
const CALL_COLUMNS: &str = "SELECT id, tenant_id, session_id, direction, state, caller, callee, \
     started_at, answered_at, ended_at, duration_ms, hangup_cause, hangup_by, sip_status, \
     recording_url, quality FROM calls";

/// The SQL for one page (only fixed column names and numbered
/// placeholders are interpolated, never input); binds are tenant, since, then (in order) state,
/// session, cursor created, cursor created, cursor id, limit.
fn page_sql(columns: &str, created: &str, f: &Filter<'_>) -> String {
    let mut sql = format!("{columns} WHERE tenant_id = $1 AND {created} >= $2");
    let mut n = 2;
    if f.state.is_some() {
        n += 1;
        sql.push_str(&format!(" AND state = ${n}"));
    }
    if f.session_id.is_some() {
        n += 1;
        sql.push_str(&format!(" AND session_id = ${n}"));
    }
    if f.after.is_some() {
        sql.push_str(&format!(
            " AND ({created} < ${} OR ({created} = ${} AND id < ${}))",
            n + 1,
            n + 2,
            n + 3
        ));
        n += 3;
    }
    sql.push_str(&format!(
        " ORDER BY {created} DESC, id DESC LIMIT ${}",
        n + 1
    ));
    sql
}

macro_rules! bind_filter {
    ($q:expr, $f:expr) => {{
        let mut q = $q.bind($f.tenant_id.to_string()).bind($f.since_ms);
        if let Some(s) = $f.state {
            q = q.bind(s.to_string());
        }
        if let Some(s) = $f.session_id {
            q = q.bind(s.to_string());
        }
        if let Some(k) = $f.after {
            q = q.bind(k.created).bind(k.created).bind(k.id.clone());
        }
        q.bind($f.limit.saturating_add(1))
    }};
}

/// One page of a tenant's sessions, newest first, plus the key to continue
/// from when more rows follow.
pub async fn sessions(
    conn: &mut AnyConnection,
    f: &Filter<'_>,
) -> Result<(Vec<SessionRow>, Option<Key>), StoreError> {
    let sql = page_sql(SESSION_COLUMNS, "created_at", f);
    let rows: Vec<SessionRow> = bind_filter!(sqlx::query_as(sqlx::AssertSqlSafe(sql)), f)
        .fetch_all(&mut *conn)
        .await?;
    Ok(split(rows, f.limit, |r| Key {
        created: r.created_at,
        id: r.id.clone(),
    }))
}

/// One page of a tenant's calls, newest first, plus the key to continue
/// from when more rows follow.
pub async fn calls(
    conn: &mut AnyConnection,
    f: &Filter<'_>,
) -> Result<(Vec<CallRow>, Option<Key>), StoreError> {
    let sql = page_sql(CALL_COLUMNS, "started_at", f);
    let rows: Vec<CallRow> = bind_filter!(sqlx::query_as(sqlx::AssertSqlSafe(sql)), f)
        .fetch_all(&mut *conn)
        .await?;
    Ok(split(rows, f.limit, |r| Key {
        created: r.started_at,
        id: r.id.clone(),
    }))
}

/// Cut the extra row off and derive the next key from the last kept row.
fn split<T>(mut rows: Vec<T>, limit: i64, key: impl Fn(&T) -> Key) -> (Vec<T>, Option<Key>) {
    let limit = usize::try_from(limit).unwrap_or(0);
    if rows.len() > limit {
        rows.truncate(limit);
        let next = rows.last().map(key);
        (rows, next)
    } else {
        (rows, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sql_numbers_placeholders_in_bind_order() {
        let key = Key {
            created: 5,
            id: "ses_x".into(),
        };
        let f = Filter {
            tenant_id: "t",
            since_ms: 0,
            state: Some("open"),
            session_id: Some("ses_1"),
            after: Some(&key),
            limit: 10,
        };
        let sql = page_sql("SELECT * FROM calls", "started_at", &f);
        assert!(sql.ends_with(
            "state = $3 AND session_id = $4 AND (started_at < $5 OR (started_at = $6 AND id < $7)) \
             ORDER BY started_at DESC, id DESC LIMIT $8"
        ));
        let bare = Filter {
            state: None,
            session_id: None,
            after: None,
            ..f
        };
        assert!(page_sql("S", "created_at", &bare)
            .ends_with("created_at >= $2 ORDER BY created_at DESC, id DESC LIMIT $3"));
    }

    #[test]
    fn split_keeps_limit_and_points_at_last_kept() {
        let key = |v: &i64| Key {
            created: *v,
            id: v.to_string(),
        };
        let (rows, next) = split(vec![9, 8, 7], 2, key);
        assert_eq!(rows, [9, 8]);
        assert_eq!(next.map(|k| k.created), Some(8));
        let (rows, next) = split(vec![9, 8], 2, key);
        assert_eq!((rows.len(), next), (2, None));
    }
}
