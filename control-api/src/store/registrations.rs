//! `registrations`: softphone bindings as the engine reported them, one row
//! per user (JSON list), so that a restart keeps every registration.

use sqlx::AnyPool;

use super::StoreError;

/// Replace a user's bindings (`bindings_json` = `[]` when unregistered).
pub async fn save(
    pool: &AnyPool,
    username: &str,
    bindings_json: &str,
    now_ms: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO registrations (username, bindings, updated_at) VALUES ($1, $2, $3) \
         ON CONFLICT (username) DO UPDATE SET bindings = excluded.bindings, updated_at = excluded.updated_at",
    )
    .bind(username)
    .bind(bindings_json)
    .bind(now_ms)
    .execute(pool)
    .await?;
    Ok(())
}

/// Every stored (username, bindings JSON).
pub async fn load_all(pool: &AnyPool) -> Result<Vec<(String, String)>, StoreError> {
    Ok(
        sqlx::query_as("SELECT username, bindings FROM registrations")
            .fetch_all(pool)
            .await?,
    )
}
