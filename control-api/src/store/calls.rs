//! `calls`: one row per call the engine reported, updated as it progresses.

use sqlx::AnyConnection;

use super::StoreError;

/// A call as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CallRow {
    /// Engine call id (`cal_…`).
    pub id: String,
    /// Owning tenant (the session's).
    pub tenant_id: String,
    /// Session whose route admitted it.
    pub session_id: String,
    /// `inbound` or `outbound`.
    pub direction: String,
    /// `queued|ringing|answered|bridged|completed|failed|cancelled`.
    pub state: String,
    /// Real number of the calling party.
    pub caller: String,
    /// Real number of the called party.
    pub callee: String,
    /// Unix ms.
    pub started_at: i64,
    /// Unix ms, once answered.
    pub answered_at: Option<i64>,
    /// Unix ms, once over.
    pub ended_at: Option<i64>,
    /// Answered duration in ms (0 if never answered), once over.
    pub duration_ms: Option<i64>,
    /// Q.850 cause name, once over.
    pub hangup_cause: Option<String>,
    /// `a|b|api|ttl|system`, once over.
    pub hangup_by: Option<String>,
    /// Final SIP status, if any.
    pub sip_status: Option<i64>,
    /// Where the recording is, once ready.
    pub recording_url: Option<String>,
    /// Media quality JSON (`{"a": …, "b": …}`), once over.
    pub quality: Option<String>,
}

/// A call that just started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCall<'a> {
    /// Engine call id.
    pub id: &'a str,
    /// Session id.
    pub session_id: &'a str,
    /// `inbound` or `outbound`.
    pub direction: &'a str,
    /// Initial state.
    pub state: &'a str,
    /// Caller's real number.
    pub caller: &'a str,
    /// Callee's real number.
    pub callee: &'a str,
    /// Unix ms.
    pub started_at: i64,
}

/// How a call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallEnd<'a> {
    /// Unix ms.
    pub ended_at: i64,
    /// Q.850 cause name.
    pub cause: &'a str,
    /// `a|b|api|ttl|system`.
    pub by: &'a str,
    /// Final SIP status, if any.
    pub sip_status: Option<i64>,
    /// Whether the engine says the call was answered (even if the answer
    /// event was never recorded).
    pub answered: bool,
    /// Final state when the call was answered (`completed`).
    pub state_if_answered: &'a str,
    /// Final state when it was not (`failed` or `cancelled`).
    pub state_if_unanswered: &'a str,
    /// Media quality JSON, if known.
    pub quality: Option<String>,
}

macro_rules! select_call {
    ($tail:literal) => {
        concat!(
            "SELECT id, tenant_id, session_id, direction, state, caller, callee, started_at, ",
            "answered_at, ended_at, duration_ms, hangup_cause, hangup_by, sip_status, recording_url, quality ",
            "FROM calls ",
            $tail
        )
    };
}

/// Insert a call under its session's tenant. Returns `false` when the session
/// does not exist or the call is already known (a replayed event).
pub async fn insert(conn: &mut AnyConnection, c: &NewCall<'_>) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "INSERT INTO calls (id, tenant_id, session_id, direction, state, caller, callee, started_at) \
         SELECT $1, tenant_id, id, $3, $4, $5, $6, $7 FROM sessions WHERE id = $2 \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(c.id)
    .bind(c.session_id)
    .bind(c.direction)
    .bind(c.state)
    .bind(c.caller)
    .bind(c.callee)
    .bind(c.started_at)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Move a live call to `state`, only from one of `from` (at most three
/// states). Returns whether it changed. `answered_at` is set when given and
/// not set yet.
pub async fn advance(
    conn: &mut AnyConnection,
    id: &str,
    state: &str,
    from: &[&str],
    answered_at: Option<i64>,
) -> Result<bool, StoreError> {
    let Some(last) = from.last() else {
        return Ok(false);
    };
    let allowed = |i: usize| from.get(i).unwrap_or(last).to_string();
    let done = sqlx::query(
        "UPDATE calls SET state = $2, answered_at = COALESCE(answered_at, $3) \
         WHERE id = $1 AND ended_at IS NULL AND state IN ($4, $5, $6)",
    )
    .bind(id)
    .bind(state)
    .bind(answered_at)
    .bind(allowed(0))
    .bind(allowed(1))
    .bind(allowed(2))
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// End a live call. Returns whether it changed. It ends in
/// `state_if_answered` when the engine says it was answered or an answer
/// was recorded; but an originated call's `answered_at` is only its first
/// party's answer: unless it was bridged, it ends in `state_if_unanswered`.
pub async fn end(conn: &mut AnyConnection, id: &str, e: &CallEnd<'_>) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE calls SET ended_at = $2, hangup_cause = $3, hangup_by = $4, sip_status = $5, \
         duration_ms = CASE WHEN answered_at IS NULL THEN 0 \
                            WHEN $2 > answered_at THEN $2 - answered_at ELSE 0 END, \
         state = CASE WHEN $8 = 1 OR (answered_at IS NOT NULL \
                      AND (direction <> 'outbound' OR state = 'bridged')) THEN $6 ELSE $7 END, \
         quality = $9 \
         WHERE id = $1 AND ended_at IS NULL",
    )
    .bind(id)
    .bind(e.ended_at)
    .bind(e.cause)
    .bind(e.by)
    .bind(e.sip_status)
    .bind(e.state_if_answered)
    .bind(e.state_if_unanswered)
    .bind(i64::from(e.answered))
    .bind(e.quality.as_deref())
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Record where the call's finished recording is served.
pub async fn set_recording_url(
    conn: &mut AnyConnection,
    id: &str,
    url: &str,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE calls SET recording_url = $2 WHERE id = $1")
        .bind(id)
        .bind(url)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// A call by id, any tenant.
pub async fn get(conn: &mut AnyConnection, id: &str) -> Result<Option<CallRow>, StoreError> {
    Ok(sqlx::query_as(select_call!("WHERE id = $1"))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?)
}

/// A call by id, only if `tenant_id` owns it.
pub async fn get_for_tenant(
    conn: &mut AnyConnection,
    tenant_id: &str,
    id: &str,
) -> Result<Option<CallRow>, StoreError> {
    Ok(
        sqlx::query_as(select_call!("WHERE id = $1 AND tenant_id = $2"))
            .bind(id)
            .bind(tenant_id)
            .fetch_optional(&mut *conn)
            .await?,
    )
}

/// A session's calls, newest first.
pub async fn list_for_session(
    conn: &mut AnyConnection,
    session_id: &str,
) -> Result<Vec<CallRow>, StoreError> {
    Ok(sqlx::query_as(select_call!(
        "WHERE session_id = $1 ORDER BY started_at DESC, id DESC"
    ))
    .bind(session_id)
    .fetch_all(&mut *conn)
    .await?)
}

/// This node's calls that never ended (left by a crash): on a cluster
/// node, those it owns (and any without an owner); other nodes' live calls
/// are theirs.
pub async fn list_live(conn: &mut AnyConnection) -> Result<Vec<CallRow>, StoreError> {
    let sql = format!(
        "{} WHERE ended_at IS NULL AND (node_id IS NULL OR node_id = {}) ORDER BY started_at, id",
        select_call!(""),
        super::current_node_sql(conn)
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .fetch_all(&mut *conn)
        .await?)
}

/// Live calls owned by node `node_id` (a dead node's, for its reaper).
pub async fn list_live_on_node(
    conn: &mut AnyConnection,
    node_id: &str,
) -> Result<Vec<CallRow>, StoreError> {
    Ok(sqlx::query_as(select_call!(
        "WHERE ended_at IS NULL AND node_id = $1 ORDER BY started_at, id"
    ))
    .bind(node_id)
    .fetch_all(&mut *conn)
    .await?)
}

/// The node that owns call `id`: `None` when there is no such call,
/// `Some(None)` when it has no owner (a single node's call).
pub async fn owner(
    conn: &mut AnyConnection,
    id: &str,
) -> Result<Option<Option<String>>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT node_id FROM calls WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sessions::{self, SessionRow};
    use crate::store::testing::{store, TempDir};
    use crate::store::{numbers, tenants};

    #[tokio::test]
    async fn an_originated_call_ends_answered_only_once_bridged() {
        let dir = TempDir::new("calls-end");
        let s = store(&dir).await;
        let mut c = s.pool().acquire().await.unwrap_or_else(|e| panic!("{e}"));
        let limits = tenants::TenantLimits::from(&sip_config::TenantConfig::default());
        tenants::insert(&mut c, "ten_1", "acme", &limits, 1)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        numbers::insert(&mut c, "+15550000001", "ten_1", 1)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let session = SessionRow {
            id: "ses_1".into(),
            tenant_id: "ten_1".into(),
            masked_number: "+15550000001".into(),
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
        sessions::insert(&mut c, &session)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        // (call, direction, state reached with an answer recorded, final
        // state when the engine says "not answered").
        for (id, direction, reached, want) in [
            ("cal_in", "inbound", "answered", "completed"),
            ("cal_first_leg_only", "outbound", "answered", "failed"),
            ("cal_bridged", "outbound", "bridged", "completed"),
        ] {
            let new = NewCall {
                id,
                session_id: "ses_1",
                direction,
                state: "ringing",
                caller: "+14155550101",
                callee: "+14155550202",
                started_at: 10,
            };
            assert!(insert(&mut c, &new).await.unwrap_or(false));
            assert!(
                advance(&mut c, id, reached, &["ringing", "answered"], Some(20))
                    .await
                    .unwrap_or(false)
            );
            let ended = end(
                &mut c,
                id,
                &CallEnd {
                    ended_at: 30,
                    cause: "USER_BUSY",
                    by: "b",
                    sip_status: Some(486),
                    answered: false,
                    state_if_answered: "completed",
                    state_if_unanswered: "failed",
                    quality: None,
                },
            )
            .await;
            assert!(ended.unwrap_or(false));
            let state = get(&mut c, id).await.ok().flatten().map(|r| r.state);
            assert_eq!(state.as_deref(), Some(want), "{id}");
        }
    }
}
