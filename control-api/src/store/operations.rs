//! `operations`: one row per accepted call-control command and its result.

use sqlx::AnyConnection;

use super::StoreError;

/// `status` while the engine has not answered (at most 2 s).
pub const STATUS_IN_PROGRESS: &str = "in_progress";

/// An operation as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct OperationRow {
    /// UUID v4.
    pub id: String,
    /// Owning tenant (the call's).
    pub tenant_id: String,
    /// The call the command is for.
    pub call_id: String,
    /// `answer`, `hangup` or `disconnect`.
    pub command: String,
    /// The client's de-duplication key, if given.
    pub command_uid: Option<String>,
    /// Q.850 cause name (hangup only).
    pub cause: Option<String>,
    /// `in_progress`, `succeeded`, `failed` or `timeout`.
    pub status: String,
    /// Error code when not succeeded.
    pub error: Option<String>,
    /// Human-readable error detail.
    pub error_message: Option<String>,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms, once the result is known.
    pub completed_at: Option<i64>,
}

/// How an operation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationEnd<'a> {
    /// `succeeded`, `failed` or `timeout`.
    pub status: &'a str,
    /// Error code when not succeeded.
    pub error: Option<&'a str>,
    /// Error detail.
    pub error_message: Option<&'a str>,
    /// Unix ms.
    pub completed_at: i64,
}

macro_rules! select_operation {
    ($tail:literal) => {
        concat!(
            "SELECT id, tenant_id, call_id, command, command_uid, cause, status, error, ",
            "error_message, created_at, completed_at FROM operations ",
            $tail
        )
    };
}

/// Insert a new `in_progress` operation unless `(call_id, command_uid)`
/// already exists. Returns whether it was inserted.
pub async fn insert(conn: &mut AnyConnection, op: &OperationRow) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "INSERT INTO operations (id, tenant_id, call_id, command, command_uid, cause, status, \
         error, error_message, created_at, completed_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
         ON CONFLICT (call_id, command_uid) DO NOTHING",
    )
    .bind(&op.id)
    .bind(&op.tenant_id)
    .bind(&op.call_id)
    .bind(&op.command)
    .bind(op.command_uid.clone())
    .bind(op.cause.clone())
    .bind(&op.status)
    .bind(op.error.clone())
    .bind(op.error_message.clone())
    .bind(op.created_at)
    .bind(op.completed_at)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// An operation by id, only if `tenant_id` owns it.
pub async fn get_for_tenant(
    conn: &mut AnyConnection,
    tenant_id: &str,
    id: &str,
) -> Result<Option<OperationRow>, StoreError> {
    Ok(
        sqlx::query_as(select_operation!("WHERE id = $1 AND tenant_id = $2"))
            .bind(id)
            .bind(tenant_id)
            .fetch_optional(&mut *conn)
            .await?,
    )
}

/// An operation by id, any tenant.
pub async fn get(conn: &mut AnyConnection, id: &str) -> Result<Option<OperationRow>, StoreError> {
    Ok(sqlx::query_as(select_operation!("WHERE id = $1"))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?)
}

/// The operation created for `call_id` with `command_uid`, if any.
pub async fn find_by_uid(
    conn: &mut AnyConnection,
    call_id: &str,
    command_uid: &str,
) -> Result<Option<OperationRow>, StoreError> {
    Ok(
        sqlx::query_as(select_operation!("WHERE call_id = $1 AND command_uid = $2"))
            .bind(call_id)
            .bind(command_uid)
            .fetch_optional(&mut *conn)
            .await?,
    )
}

/// Record the result of an `in_progress` operation. Returns the updated row,
/// `None` when it was not in progress (already recorded).
pub async fn complete(
    conn: &mut AnyConnection,
    id: &str,
    end: &OperationEnd<'_>,
) -> Result<Option<OperationRow>, StoreError> {
    Ok(sqlx::query_as(
        "UPDATE operations SET status = $2, error = $3, error_message = $4, completed_at = $5 \
         WHERE id = $1 AND status = 'in_progress' \
         RETURNING id, tenant_id, call_id, command, command_uid, cause, status, error, \
         error_message, created_at, completed_at",
    )
    .bind(id)
    .bind(end.status)
    .bind(end.error)
    .bind(end.error_message)
    .bind(end.completed_at)
    .fetch_optional(&mut *conn)
    .await?)
}

/// Ids of this node's operations still `in_progress` (left by a stop or
/// crash); on a cluster, other nodes' operations in flight are theirs.
pub async fn list_in_progress(conn: &mut AnyConnection) -> Result<Vec<String>, StoreError> {
    let sql = format!(
        "SELECT id FROM operations WHERE status = 'in_progress' \
         AND (node_id IS NULL OR node_id = {}) ORDER BY created_at, id",
        super::current_node_sql(conn)
    );
    Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_all(&mut *conn)
        .await?)
}

/// Ids of node `node_id`'s operations still `in_progress`: after that node
/// died, their result can no longer come.
pub async fn list_in_progress_on_node(
    conn: &mut AnyConnection,
    node_id: &str,
) -> Result<Vec<String>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM operations WHERE status = 'in_progress' AND node_id = $1 \
         ORDER BY created_at, id",
    )
    .bind(node_id)
    .fetch_all(&mut *conn)
    .await?)
}
