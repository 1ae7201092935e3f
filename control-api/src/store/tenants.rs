//! `tenants` and their `api_keys` (stored as SHA-256 hex, never in clear).

use sqlx::AnyConnection;

use super::StoreError;

/// A tenant as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TenantRow {
    /// `ten_…`
    pub id: String,
    /// Unique name.
    pub name: String,
    /// TTL of a session when the request names none.
    pub default_ttl_minutes: i64,
    /// Largest TTL a request may ask for.
    pub max_ttl_minutes: i64,
    /// Concurrent calls cap.
    pub max_concurrent_calls: i64,
    /// Originate rate.
    pub calls_per_second: i64,
    /// Optional webhook URL.
    pub webhook_url: Option<String>,
    /// Unix ms.
    pub created_at: i64,
}

/// The settings of a tenant that config or CLI provide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantLimits {
    /// TTL of a session when the request names none.
    pub default_ttl_minutes: i64,
    /// Largest TTL a request may ask for.
    pub max_ttl_minutes: i64,
    /// Concurrent calls cap.
    pub max_concurrent_calls: i64,
    /// Originate rate.
    pub calls_per_second: i64,
    /// Optional webhook URL.
    pub webhook_url: Option<String>,
}

impl From<&sip_config::TenantConfig> for TenantLimits {
    fn from(t: &sip_config::TenantConfig) -> Self {
        TenantLimits {
            default_ttl_minutes: i64::from(t.default_ttl_minutes),
            max_ttl_minutes: i64::from(t.max_ttl_minutes),
            max_concurrent_calls: i64::from(t.max_concurrent_calls),
            calls_per_second: i64::from(t.calls_per_second),
            webhook_url: t.webhook_url.clone(),
        }
    }
}

/// `SELECT <all tenant columns> FROM tenants <tail>` as a literal.
macro_rules! select_tenant {
    ($tail:literal) => {
        concat!(
            "SELECT t.id, t.name, t.default_ttl_minutes, t.max_ttl_minutes, t.max_concurrent_calls, ",
            "t.calls_per_second, t.webhook_url, t.created_at FROM tenants t ",
            $tail
        )
    };
}

/// Insert a tenant.
pub async fn insert(
    conn: &mut AnyConnection,
    id: &str,
    name: &str,
    limits: &TenantLimits,
    now_ms: i64,
) -> Result<TenantRow, StoreError> {
    sqlx::query(
        "INSERT INTO tenants (id, name, default_ttl_minutes, max_ttl_minutes, \
         max_concurrent_calls, calls_per_second, webhook_url, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(id)
    .bind(name)
    .bind(limits.default_ttl_minutes)
    .bind(limits.max_ttl_minutes)
    .bind(limits.max_concurrent_calls)
    .bind(limits.calls_per_second)
    .bind(limits.webhook_url.clone())
    .bind(now_ms)
    .execute(&mut *conn)
    .await?;
    Ok(TenantRow {
        id: id.to_string(),
        name: name.to_string(),
        default_ttl_minutes: limits.default_ttl_minutes,
        max_ttl_minutes: limits.max_ttl_minutes,
        max_concurrent_calls: limits.max_concurrent_calls,
        calls_per_second: limits.calls_per_second,
        webhook_url: limits.webhook_url.clone(),
        created_at: now_ms,
    })
}

/// Replace a tenant's limits.
pub async fn update_limits(
    conn: &mut AnyConnection,
    id: &str,
    limits: &TenantLimits,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE tenants SET default_ttl_minutes = $2, max_ttl_minutes = $3, \
         max_concurrent_calls = $4, calls_per_second = $5, webhook_url = $6 WHERE id = $1",
    )
    .bind(id)
    .bind(limits.default_ttl_minutes)
    .bind(limits.max_ttl_minutes)
    .bind(limits.max_concurrent_calls)
    .bind(limits.calls_per_second)
    .bind(limits.webhook_url.clone())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The tenant called `name`.
pub async fn find_by_name(
    conn: &mut AnyConnection,
    name: &str,
) -> Result<Option<TenantRow>, StoreError> {
    Ok(sqlx::query_as(select_tenant!("WHERE t.name = $1"))
        .bind(name)
        .fetch_optional(&mut *conn)
        .await?)
}

/// The tenant with id `id`.
pub async fn find_by_id(
    conn: &mut AnyConnection,
    id: &str,
) -> Result<Option<TenantRow>, StoreError> {
    Ok(sqlx::query_as(select_tenant!("WHERE t.id = $1"))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?)
}

/// The tenant named or identified by `name_or_id`.
pub async fn find_by_name_or_id(
    conn: &mut AnyConnection,
    name_or_id: &str,
) -> Result<Option<TenantRow>, StoreError> {
    if let Some(t) = find_by_id(conn, name_or_id).await? {
        return Ok(Some(t));
    }
    find_by_name(conn, name_or_id).await
}

/// The tenant owning the (non-revoked) API key with this SHA-256 hex hash.
pub async fn find_by_key_hash(
    conn: &mut AnyConnection,
    key_hash: &str,
) -> Result<Option<TenantRow>, StoreError> {
    Ok(sqlx::query_as(select_tenant!(
        "JOIN api_keys k ON k.tenant_id = t.id WHERE k.key_hash = $1 AND k.revoked_at IS NULL"
    ))
    .bind(key_hash)
    .fetch_optional(&mut *conn)
    .await?)
}

/// The tenant id that holds an API key hash (revoked or not), if any.
pub async fn key_owner(
    conn: &mut AnyConnection,
    key_hash: &str,
) -> Result<Option<String>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT tenant_id FROM api_keys WHERE key_hash = $1")
            .bind(key_hash)
            .fetch_optional(&mut *conn)
            .await?,
    )
}

/// Store an API key hash for a tenant.
pub async fn insert_api_key(
    conn: &mut AnyConnection,
    id: &str,
    tenant_id: &str,
    key_hash: &str,
    now_ms: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO api_keys (id, tenant_id, key_hash, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(id)
    .bind(tenant_id)
    .bind(key_hash)
    .bind(now_ms)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::{store, TempDir};

    fn limits() -> TenantLimits {
        TenantLimits::from(&sip_config::TenantConfig::default())
    }

    #[tokio::test]
    async fn insert_find_and_key_lookup() {
        let dir = TempDir::new("tenants");
        let s = store(&dir).await;
        let mut c = s.pool().acquire().await.unwrap_or_else(|e| panic!("{e}"));
        let t = insert(&mut c, "ten_1", "acme", &limits(), 5)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            find_by_name(&mut c, "acme").await.ok().flatten(),
            Some(t.clone())
        );
        assert_eq!(
            find_by_name_or_id(&mut c, "ten_1").await.ok().flatten(),
            Some(t.clone())
        );
        assert_eq!(
            find_by_name_or_id(&mut c, "nope").await.ok().flatten(),
            None
        );
        assert!(
            insert(&mut c, "ten_2", "acme", &limits(), 5).await.is_err(),
            "name is unique"
        );

        insert_api_key(&mut c, "key_1", "ten_1", "h1", 6)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(find_by_key_hash(&mut c, "h1").await.ok().flatten(), Some(t));
        assert_eq!(find_by_key_hash(&mut c, "h2").await.ok().flatten(), None);
        assert_eq!(
            key_owner(&mut c, "h1").await.ok().flatten().as_deref(),
            Some("ten_1")
        );
        sqlx::query("UPDATE api_keys SET revoked_at = 7")
            .execute(&mut *c)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            find_by_key_hash(&mut c, "h1").await.ok().flatten(),
            None,
            "revoked"
        );

        let mut l = limits();
        l.max_ttl_minutes = 5;
        update_limits(&mut c, "ten_1", &l)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let t = find_by_id(&mut c, "ten_1")
            .await
            .ok()
            .flatten()
            .map(|t| t.max_ttl_minutes);
        assert_eq!(t, Some(5));
    }
}
