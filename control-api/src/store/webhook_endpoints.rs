//! `webhook_endpoints`: each tenant's webhook URL and signing secret (one
//! endpoint per tenant).

use sqlx::AnyConnection;

use super::StoreError;

/// `source` of an endpoint set with `PUT /v1/webhook`.
pub const SOURCE_API: &str = "api";
/// `source` of an endpoint from `[[tenants]] webhook_url`.
pub const SOURCE_CONFIG: &str = "config";

/// An endpoint as stored.
#[derive(Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct EndpointRow {
    /// `whe_…`
    pub id: String,
    /// Owning tenant.
    pub tenant_id: String,
    /// Where deliveries are POSTed.
    pub url: String,
    /// `whsec_…` (never logged).
    pub secret: String,
    /// `api` or `config`.
    pub source: String,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms of the last URL or secret change.
    pub updated_at: i64,
    /// Unix ms, when deliveries were stopped (a 410 from the receiver).
    pub disabled_at: Option<i64>,
    /// Why it was disabled.
    pub disabled_reason: Option<String>,
}

impl std::fmt::Debug for EndpointRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointRow")
            .field("id", &self.id)
            .field("tenant_id", &self.tenant_id)
            .field("url", &self.url)
            .field("secret", &"<redacted>")
            .field("source", &self.source)
            .field("disabled_at", &self.disabled_at)
            .finish_non_exhaustive()
    }
}

/// The tenant's endpoint, if any.
pub async fn get_for_tenant(
    conn: &mut AnyConnection,
    tenant_id: &str,
) -> Result<Option<EndpointRow>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, tenant_id, url, secret, source, created_at, updated_at, disabled_at, \
             disabled_reason FROM webhook_endpoints WHERE tenant_id = $1",
    )
    .bind(tenant_id)
    .fetch_optional(&mut *conn)
    .await?)
}

/// Insert or replace the tenant's endpoint (enabled). The row keeps its id
/// when it existed, so pending deliveries follow it to the new URL.
pub async fn upsert(conn: &mut AnyConnection, e: &EndpointRow) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO webhook_endpoints (id, tenant_id, url, secret, source, created_at, \
         updated_at, disabled_at, disabled_reason) VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, NULL) \
         ON CONFLICT (tenant_id) DO UPDATE SET url = excluded.url, secret = excluded.secret, \
         source = excluded.source, updated_at = excluded.updated_at, disabled_at = NULL, \
         disabled_reason = NULL",
    )
    .bind(&e.id)
    .bind(&e.tenant_id)
    .bind(&e.url)
    .bind(&e.secret)
    .bind(&e.source)
    .bind(e.created_at)
    .bind(e.updated_at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Change the URL of the tenant's endpoint (keeping its secret) and enable
/// it again.
pub async fn set_url(
    conn: &mut AnyConnection,
    tenant_id: &str,
    url: &str,
    now_ms: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE webhook_endpoints SET url = $2, updated_at = $3, disabled_at = NULL, \
         disabled_reason = NULL WHERE tenant_id = $1",
    )
    .bind(tenant_id)
    .bind(url)
    .bind(now_ms)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Remove the tenant's endpoint. Returns the removed row.
pub async fn delete(
    conn: &mut AnyConnection,
    tenant_id: &str,
) -> Result<Option<EndpointRow>, StoreError> {
    Ok(sqlx::query_as(
        "DELETE FROM webhook_endpoints WHERE tenant_id = $1 RETURNING id, tenant_id, url, secret, \
         source, created_at, updated_at, disabled_at, disabled_reason",
    )
    .bind(tenant_id)
    .fetch_optional(&mut *conn)
    .await?)
}

/// Stop deliveries to an endpoint (receiver answered 410 Gone).
pub async fn disable(
    conn: &mut AnyConnection,
    id: &str,
    reason: &str,
    now_ms: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE webhook_endpoints SET disabled_at = $2, disabled_reason = $3 \
         WHERE id = $1 AND disabled_at IS NULL",
    )
    .bind(id)
    .bind(now_ms)
    .bind(reason)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
