//! `sessions`: masked-number sessions and their lifecycle columns.

use sqlx::AnyConnection;

use super::StoreError;

/// A session as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SessionRow {
    /// `ses_…`
    pub id: String,
    /// Owning tenant.
    pub tenant_id: String,
    /// The pool number it holds (E.164).
    pub masked_number: String,
    /// Party A's real number (E.164).
    pub party_a: String,
    /// Party B's real number (E.164).
    pub party_b: String,
    /// 1 when calls are recorded, else 0.
    pub record: i64,
    /// TTL the session was created with.
    pub ttl_minutes: i64,
    /// `open`, `active` or `completed`.
    pub state: String,
    /// JSON object text.
    pub metadata: String,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms.
    pub expires_at: i64,
    /// Unix ms, once completed.
    pub completed_at: Option<i64>,
    /// `ttl_expired` or `closed`, once completed.
    pub completion_reason: Option<String>,
    /// Calls the session has seen.
    pub call_count: i64,
    /// The live call, if any.
    pub active_call_id: Option<String>,
    /// `bridge` (inbound calls bridged at once) or `control` (held ringing
    /// for the control API).
    pub inbound: String,
}

impl SessionRow {
    /// Whether the session is over.
    pub fn is_completed(&self) -> bool {
        self.state == STATE_COMPLETED
    }
}

/// `state` of a session without a live call.
pub const STATE_OPEN: &str = "open";
/// `state` of a session with a live call.
pub const STATE_ACTIVE: &str = "active";
/// `state` of a finished session.
pub const STATE_COMPLETED: &str = "completed";
/// `inbound` of a session whose inbound calls are bridged at once.
pub const INBOUND_BRIDGE: &str = "bridge";
/// `inbound` of a session whose inbound calls wait for a command.
pub const INBOUND_CONTROL: &str = "control";

macro_rules! select_session {
    ($tail:literal) => {
        concat!(
            "SELECT id, tenant_id, masked_number, party_a, party_b, record, ttl_minutes, state, ",
            "metadata, created_at, expires_at, completed_at, completion_reason, call_count, ",
            "active_call_id, inbound FROM sessions ",
            $tail
        )
    };
}

/// Insert a new session.
pub async fn insert(conn: &mut AnyConnection, s: &SessionRow) -> Result<(), StoreError> {
    insert_many(conn, std::slice::from_ref(s)).await
}

/// Store new sessions with one statement.
pub async fn insert_many(conn: &mut AnyConnection, rows: &[SessionRow]) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut q = sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO sessions (id, tenant_id, masked_number, party_a, party_b, record, ttl_minutes, \
         state, metadata, created_at, expires_at, completed_at, completion_reason, call_count, \
         active_call_id, inbound) VALUES {}",
        super::values_placeholders(rows.len(), 16)
    )));
    for s in rows {
        q = q
            .bind(&s.id)
            .bind(&s.tenant_id)
            .bind(&s.masked_number)
            .bind(&s.party_a)
            .bind(&s.party_b)
            .bind(s.record)
            .bind(s.ttl_minutes)
            .bind(&s.state)
            .bind(&s.metadata)
            .bind(s.created_at)
            .bind(s.expires_at)
            .bind(s.completed_at)
            .bind(s.completion_reason.clone())
            .bind(s.call_count)
            .bind(s.active_call_id.clone())
            .bind(&s.inbound);
    }
    q.execute(&mut *conn).await?;
    Ok(())
}

/// A session by id, any tenant.
pub async fn get(conn: &mut AnyConnection, id: &str) -> Result<Option<SessionRow>, StoreError> {
    Ok(sqlx::query_as(select_session!("WHERE id = $1"))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?)
}

/// A session by id, only if `tenant_id` owns it.
pub async fn get_for_tenant(
    conn: &mut AnyConnection,
    tenant_id: &str,
    id: &str,
) -> Result<Option<SessionRow>, StoreError> {
    Ok(
        sqlx::query_as(select_session!("WHERE id = $1 AND tenant_id = $2"))
            .bind(id)
            .bind(tenant_id)
            .fetch_optional(&mut *conn)
            .await?,
    )
}

/// Mark a session completed unless it already is. Returns the updated row,
/// or `None` when it does not exist or was already completed.
pub async fn complete(
    conn: &mut AnyConnection,
    id: &str,
    reason: &str,
    now_ms: i64,
) -> Result<Option<SessionRow>, StoreError> {
    Ok(sqlx::query_as(
        "UPDATE sessions SET state = 'completed', completed_at = $2, completion_reason = $3 \
         WHERE id = $1 AND state <> 'completed' \
         RETURNING id, tenant_id, masked_number, party_a, party_b, record, ttl_minutes, state, \
         metadata, created_at, expires_at, completed_at, completion_reason, call_count, active_call_id, \
         inbound",
    )
    .bind(id)
    .bind(now_ms)
    .bind(reason)
    .fetch_optional(&mut *conn)
    .await?)
}

/// Every session not yet completed (recovery), oldest first.
pub async fn list_not_completed(conn: &mut AnyConnection) -> Result<Vec<SessionRow>, StoreError> {
    Ok(sqlx::query_as(select_session!(
        "WHERE state <> 'completed' ORDER BY expires_at, id"
    ))
    .fetch_all(&mut *conn)
    .await?)
}

/// Recovery: sessions left `active` by a crash go back to `open` with no
/// live call, except (on a cluster) those whose live call another node
/// owns. Returns how many changed.
pub async fn reset_active(conn: &mut AnyConnection) -> Result<u64, StoreError> {
    let sql = format!(
        "UPDATE sessions SET state = 'open', active_call_id = NULL WHERE state = 'active' \
         AND NOT EXISTS (SELECT 1 FROM calls c WHERE c.id = sessions.active_call_id \
             AND c.ended_at IS NULL AND c.node_id IS NOT NULL AND c.node_id <> {})",
        super::current_node_sql(conn)
    );
    let done = sqlx::query(sqlx::AssertSqlSafe(sql))
        .execute(&mut *conn)
        .await?;
    Ok(done.rows_affected())
}

/// A call started: count it, make it the live call and mark the session
/// `active` (a completed session stays completed).
pub async fn call_started(
    conn: &mut AnyConnection,
    id: &str,
    call_id: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE sessions SET call_count = call_count + 1, \
         state = CASE WHEN state = 'completed' THEN state ELSE 'active' END, \
         active_call_id = CASE WHEN state = 'completed' THEN active_call_id ELSE $2 END \
         WHERE id = $1",
    )
    .bind(id)
    .bind(call_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A call ended: if it was the live call, clear it, and an `active` session
/// goes back to `open`.
pub async fn call_ended(
    conn: &mut AnyConnection,
    id: &str,
    call_id: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE sessions SET active_call_id = NULL, \
         state = CASE WHEN state = 'active' THEN 'open' ELSE state END \
         WHERE id = $1 AND active_call_id = $2",
    )
    .bind(id)
    .bind(call_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
