//! Cluster-wide locks: PostgreSQL transaction-level advisory locks, held
//! until the transaction ends. On SQLite, whose writers are serialised
//! anyway (`BEGIN IMMEDIATE`), each is a no-op.

use sqlx::AnyConnection;

use super::{is_postgres, StoreError};

/// One of Maskline's advisory locks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterLock {
    /// The event log: taken first by every transaction that appends
    /// events, so that event ids commit in id order cluster-wide (a reader
    /// of `id > last` never skips a row that commits later with a smaller
    /// id).
    EventLog,
    /// Start-up: applying the configured tenants, keys and numbers, so that
    /// nodes starting together do not race on the same rows.
    Startup,
}

impl ClusterLock {
    /// The advisory lock key ("maskline" in ASCII, plus the lock's number).
    pub fn key(self) -> i64 {
        const BASE: i64 = 0x6d61_736b_6c69_6e00;
        BASE + match self {
            ClusterLock::EventLog => 1,
            ClusterLock::Startup => 2,
        }
    }
}

/// Take `lock` for the rest of the transaction `conn` is in, waiting for
/// any other holder.
pub async fn lock(conn: &mut AnyConnection, lock: ClusterLock) -> Result<(), StoreError> {
    if !is_postgres(conn) {
        return Ok(());
    }
    // `pg_advisory_xact_lock` returns `void`, which the Any driver cannot
    // decode: count the one row instead.
    let _: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM (SELECT pg_advisory_xact_lock($1)) AS l")
        .bind(lock.key())
        .fetch_one(&mut *conn)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::{store, TempDir};

    #[test]
    fn keys_are_distinct() {
        assert_ne!(ClusterLock::EventLog.key(), ClusterLock::Startup.key());
    }

    /// A second transaction waits for the first one's lock (PostgreSQL), or
    /// for its write lock (SQLite): either way it gets in only after the
    /// first commits.
    #[tokio::test]
    async fn a_second_holder_waits_for_the_first_to_commit() {
        let dir = TempDir::new("cluster-locks");
        let s = store(&dir).await;
        let mut first = s.begin().await.unwrap_or_else(|e| panic!("{e}"));
        lock(&mut first, ClusterLock::EventLog)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let (got_tx, mut got) = tokio::sync::oneshot::channel();
        let s2 = s.clone();
        let second = tokio::spawn(async move {
            let mut tx = s2.begin().await.unwrap_or_else(|e| panic!("{e}"));
            lock(&mut tx, ClusterLock::EventLog)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let _ = got_tx.send(());
            tx.commit().await.unwrap_or_else(|e| panic!("{e}"));
        });
        // The second is blocked while the first holds the lock: give it
        // ample time to (wrongly) get through.
        let early = tokio::time::timeout(std::time::Duration::from_millis(300), &mut got).await;
        assert!(early.is_err(), "second transaction got the lock too early");
        first.commit().await.unwrap_or_else(|e| panic!("{e}"));
        tokio::time::timeout(std::time::Duration::from_secs(10), got)
            .await
            .unwrap_or_else(|_| panic!("second transaction never got the lock"))
            .unwrap_or_else(|e| panic!("{e}"));
        second.await.unwrap_or_else(|e| panic!("{e}"));
    }
}
