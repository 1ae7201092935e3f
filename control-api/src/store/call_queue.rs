//! Queries behind originated calls: live calls per tenant and session (the
//! concurrency cap, one call per session), and the `queued` rows of the
//! per-tenant calls-per-second queue, each claimed exactly once: by the
//! dialler (`queued` → `ringing`) or by a cancel (`queued` → `cancelled`).

use sqlx::AnyConnection;

use super::StoreError;

/// Ids of a tenant's live calls (any direction, queued included), oldest
/// first.
pub async fn live_for_tenant(
    conn: &mut AnyConnection,
    tenant_id: &str,
) -> Result<Vec<String>, StoreError> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT id FROM calls WHERE tenant_id = $1 AND ended_at IS NULL ORDER BY started_at, id",
    )
    .bind(tenant_id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// The id of a session's live call (queued included), if any.
pub async fn live_for_session(
    conn: &mut AnyConnection,
    session_id: &str,
) -> Result<Option<String>, StoreError> {
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT id FROM calls WHERE session_id = $1 AND ended_at IS NULL ORDER BY started_at LIMIT 1",
    )
    .bind(session_id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(|(id,)| id))
}

/// Take a queued call for dialling: `queued` → `ringing`, only while its
/// session is not completed. False: cancelled, or the session ended.
///
/// On a cluster, the claiming node becomes the call's owner (`node_id`):
/// it is the one that dials it.
pub async fn claim(conn: &mut AnyConnection, id: &str) -> Result<bool, StoreError> {
    let sql = format!(
        "UPDATE calls SET state = 'ringing', node_id = COALESCE({}, node_id) \
         WHERE id = $1 AND state = 'queued' AND ended_at IS NULL \
         AND EXISTS (SELECT 1 FROM sessions s WHERE s.id = calls.session_id AND s.state <> 'completed')",
        super::current_node_sql(conn)
    );
    let done = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// End a call that is still queued (never dialled) as `state` with
/// `cause`, `hangup_by` `by`. False when it was no longer queued.
pub async fn end_queued(
    conn: &mut AnyConnection,
    id: &str,
    state: &str,
    cause: &str,
    by: &str,
    at: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE calls SET state = $2, hangup_cause = $3, hangup_by = $4, ended_at = $5, \
         duration_ms = 0 WHERE id = $1 AND state = 'queued' AND ended_at IS NULL",
    )
    .bind(id)
    .bind(state)
    .bind(cause)
    .bind(by)
    .bind(at)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Every queued call (tenant, call id), oldest first: the queues to rebuild
/// after a restart.
pub async fn list_queued(conn: &mut AnyConnection) -> Result<Vec<(String, String)>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT tenant_id, id FROM calls WHERE state = 'queued' AND ended_at IS NULL \
         ORDER BY started_at, id",
    )
    .fetch_all(&mut *conn)
    .await?)
}
