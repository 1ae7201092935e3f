//! `numbers`: each tenant's pool of masked numbers and their allocation.

use sqlx::AnyConnection;

use super::StoreError;

/// A pool number as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct NumberRow {
    /// The masked number, E.164 with `+`.
    pub e164: String,
    /// Owning tenant.
    pub tenant_id: String,
    /// Session holding it, if any.
    pub session_id: Option<String>,
    /// When it was last released (unix ms); `None` if never used.
    pub released_at: Option<i64>,
    /// When it joined the pool (unix ms).
    pub added_at: i64,
    /// When it was taken out of the pool (`maskline numbers remove`).
    pub removed_at: Option<i64>,
}

/// Give a free number of `tenant_id` to `session_id`, exclusively: never-used
/// numbers first, then the least recently released one. `None` when the
/// tenant has no free number. See [`allocate_many`].
pub async fn allocate(
    conn: &mut AnyConnection,
    tenant_id: &str,
    session_id: &str,
) -> Result<Option<String>, StoreError> {
    Ok(allocate_many(conn, tenant_id, &[session_id])
        .await?
        .into_iter()
        .next())
}

/// Give free numbers of `tenant_id` to `session_ids`, in allocation order
/// (as [`allocate`]), with two statements whatever their count. Returns
/// one number per session from the first; fewer when the pool runs out.
///
/// Run it in a transaction from [`super::Store::begin`]. SQLite: that is
/// `BEGIN IMMEDIATE`, so no other connection writes between the two
/// statements. PostgreSQL: the candidates are locked with `FOR UPDATE SKIP
/// LOCKED`, so concurrent allocations (on any node) each take different
/// numbers without waiting for one another.
pub async fn allocate_many(
    conn: &mut AnyConnection,
    tenant_id: &str,
    session_ids: &[&str],
) -> Result<Vec<String>, StoreError> {
    if session_ids.is_empty() {
        return Ok(Vec::new());
    }
    let lock = if super::is_postgres(conn) {
        " FOR UPDATE SKIP LOCKED"
    } else {
        ""
    };
    let free: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT e164 FROM numbers WHERE tenant_id = $1 AND session_id IS NULL \
         AND removed_at IS NULL ORDER BY released_at IS NOT NULL, released_at, added_at, e164 \
         LIMIT $2{lock}"
    )))
    .bind(tenant_id)
    .bind(i64::try_from(session_ids.len()).unwrap_or(i64::MAX))
    .fetch_all(&mut *conn)
    .await?;
    if free.is_empty() {
        return Ok(free);
    }
    // Numbers are $1…$n, their sessions $n+1…$2n.
    let n = free.len();
    let cases: String = (1..=n)
        .map(|i| format!(" WHEN ${i} THEN ${}", n + i))
        .collect();
    let mut q = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE numbers SET session_id = CASE e164{cases} END \
         WHERE e164 IN ({}) AND session_id IS NULL",
        super::placeholders(1, n)
    )));
    for number in &free {
        q = q.bind(number.as_str());
    }
    for session in session_ids.iter().take(n) {
        q = q.bind(*session);
    }
    let taken = q.execute(&mut *conn).await?.rows_affected();
    if usize::try_from(taken).ok() != Some(free.len()) {
        return Err(StoreError::Corrupt(format!(
            "numbers: {taken} of {} free numbers taken concurrently",
            free.len()
        )));
    }
    Ok(free)
}

/// Return `e164` to its pool if `session_id` still holds it; `released_at`
/// becomes `now_ms`.
pub async fn release(
    conn: &mut AnyConnection,
    e164: &str,
    session_id: &str,
    now_ms: i64,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE numbers SET session_id = NULL, released_at = $3 WHERE e164 = $1 AND session_id = $2")
        .bind(e164)
        .bind(session_id)
        .bind(now_ms)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The number's row, if it is in any pool.
pub async fn find(conn: &mut AnyConnection, e164: &str) -> Result<Option<NumberRow>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT e164, tenant_id, session_id, released_at, added_at, removed_at FROM numbers \
         WHERE e164 = $1",
    )
    .bind(e164)
    .fetch_optional(&mut *conn)
    .await?)
}

/// Every number of a tenant's pool (removed ones excluded), by number.
pub async fn list_for_tenant(
    conn: &mut AnyConnection,
    tenant_id: &str,
) -> Result<Vec<NumberRow>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT e164, tenant_id, session_id, released_at, added_at, removed_at FROM numbers \
         WHERE tenant_id = $1 AND removed_at IS NULL ORDER BY e164",
    )
    .bind(tenant_id)
    .fetch_all(&mut *conn)
    .await?)
}

/// Every number of every pool, removed ones included (a cluster node's
/// full route reload drops the routes of those no open session holds).
pub async fn all(conn: &mut AnyConnection) -> Result<Vec<String>, StoreError> {
    Ok(sqlx::query_scalar("SELECT e164 FROM numbers ORDER BY e164")
        .fetch_all(&mut *conn)
        .await?)
}

/// Add a number to a tenant's pool (the caller checked it is not owned).
pub async fn insert(
    conn: &mut AnyConnection,
    e164: &str,
    tenant_id: &str,
    now_ms: i64,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO numbers (e164, tenant_id, added_at) VALUES ($1, $2, $3)")
        .bind(e164)
        .bind(tenant_id)
        .bind(now_ms)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Take a number out of its pool (kept for past sessions' history).
pub async fn mark_removed(
    conn: &mut AnyConnection,
    e164: &str,
    now_ms: i64,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE numbers SET removed_at = $2 WHERE e164 = $1")
        .bind(e164)
        .bind(now_ms)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Put a removed number back into its pool.
pub async fn restore(conn: &mut AnyConnection, e164: &str) -> Result<(), StoreError> {
    sqlx::query("UPDATE numbers SET removed_at = NULL WHERE e164 = $1")
        .bind(e164)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tenants::{self, TenantLimits};
    use crate::store::testing::{store, TempDir};

    /// Concurrent allocations in open transactions: every one gets its own
    /// number, and only an empty pool gives `None`. On PostgreSQL all
    /// transactions hold their number until every one has allocated (a
    /// barrier), which only works because locked rows are skipped.
    #[tokio::test]
    async fn concurrent_allocations_in_open_transactions_get_distinct_numbers() {
        const TASKS: usize = 8;
        let dir = TempDir::new("numbers-concurrent");
        let s = store(&dir).await;
        {
            let mut c = s.pool().acquire().await.unwrap_or_else(|e| panic!("{e}"));
            let limits = TenantLimits::from(&sip_config::TenantConfig::default());
            tenants::insert(&mut c, "ten_1", "one", &limits, 0)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            for i in 0..10 {
                insert(&mut c, &format!("+1555000{i:04}"), "ten_1", 1)
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
            }
        }
        let pg = {
            let c = s.pool().acquire().await.unwrap_or_else(|e| panic!("{e}"));
            crate::store::is_postgres(&c)
        };
        let mut got = Vec::new();
        for round in 0..2 {
            let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(TASKS));
            let tasks: Vec<_> = (0..TASKS)
                .map(|i| {
                    let s = s.clone();
                    let barrier = barrier.clone();
                    tokio::spawn(async move {
                        let mut tx = s.begin().await.unwrap_or_else(|e| panic!("{e}"));
                        let n = allocate(&mut tx, "ten_1", &format!("s{round}-{i}"))
                            .await
                            .unwrap_or_else(|e| panic!("{e}"));
                        if pg {
                            barrier.wait().await;
                        }
                        tx.commit().await.unwrap_or_else(|e| panic!("{e}"));
                        n
                    })
                })
                .collect();
            for t in tasks {
                let n = tokio::time::timeout(std::time::Duration::from_secs(20), t)
                    .await
                    .unwrap_or_else(|_| panic!("allocation blocked (round {round})"))
                    .unwrap_or_else(|e| panic!("{e}"));
                got.push(n);
            }
        }
        let numbers: Vec<&String> = got.iter().flatten().collect();
        let distinct: std::collections::HashSet<_> = numbers.iter().collect();
        assert_eq!(numbers.len(), 10, "the whole pool is handed out: {got:?}");
        assert_eq!(distinct.len(), 10, "never twice: {got:?}");
        assert_eq!(got.iter().filter(|n| n.is_none()).count(), 2 * TASKS - 10);
    }

    #[tokio::test]
    async fn allocates_never_used_first_then_least_recently_released() {
        let dir = TempDir::new("numbers");
        let s = store(&dir).await;
        let mut c = s.pool().acquire().await.unwrap_or_else(|e| panic!("{e}"));
        let limits = TenantLimits::from(&sip_config::TenantConfig::default());
        for (id, name) in [("ten_1", "one"), ("ten_2", "two")] {
            tenants::insert(&mut c, id, name, &limits, 0)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        }
        for n in ["+15550000003", "+15550000001", "+15550000002"] {
            insert(&mut c, n, "ten_1", 1)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        }
        insert(&mut c, "+15559999999", "ten_2", 1)
            .await
            .unwrap_or_else(|e| panic!("{e}"));

        let mut alloc = async |sid: &str| {
            allocate(&mut c, "ten_1", sid)
                .await
                .unwrap_or_else(|e| panic!("{e}"))
        };
        assert_eq!(alloc("s1").await.as_deref(), Some("+15550000001"));
        assert_eq!(alloc("s2").await.as_deref(), Some("+15550000002"));
        assert_eq!(alloc("s3").await.as_deref(), Some("+15550000003"));
        assert_eq!(alloc("s4").await, None, "ten_2's number is not ours");

        let mut c = s.pool().acquire().await.unwrap_or_else(|e| panic!("{e}"));
        release(&mut c, "+15550000003", "s3", 100)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        release(&mut c, "+15550000001", "s1", 200)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        release(&mut c, "+15550000002", "wrong", 50)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let two = find(&mut c, "+15550000002").await.ok().flatten();
        assert_eq!(
            two.and_then(|n| n.session_id).as_deref(),
            Some("s2"),
            "wrong session cannot release"
        );

        assert_eq!(
            allocate(&mut c, "ten_1", "s5")
                .await
                .ok()
                .flatten()
                .as_deref(),
            Some("+15550000003")
        );
        assert_eq!(
            allocate(&mut c, "ten_1", "s6")
                .await
                .ok()
                .flatten()
                .as_deref(),
            Some("+15550000001")
        );
        assert_eq!(allocate(&mut c, "ten_1", "s7").await.ok().flatten(), None);
        let pool = list_for_tenant(&mut c, "ten_1").await.unwrap_or_default();
        assert_eq!(pool.len(), 3);
        assert!(
            insert(&mut c, "+15550000001", "ten_2", 3).await.is_err(),
            "primary key"
        );
    }
}
