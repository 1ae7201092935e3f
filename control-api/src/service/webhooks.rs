//! Webhook endpoints: set (`PUT /v1/webhook`, a new `whsec_` secret each
//! time), read, remove, list recent attempts, and the `[[tenants]]
//! webhook_url` of the config applied at start.
//!
//! A configured URL gets a secret generated once and written to
//! `<data dir>/webhook-secret-<tenant>` (mode 0600; the path is logged,
//! the secret never is). Changing the URL in the config keeps the secret;
//! removing it removes the endpoint the config created (not one set
//! through the API).

use std::path::{Path, PathBuf};

use crate::store::tenants;
use crate::store::webhook_deliveries::{self as deliveries, AttemptRow};
use crate::store::webhook_endpoints::{self as endpoints, EndpointRow, SOURCE_API, SOURCE_CONFIG};
use crate::store::{Store, StoreError};
use crate::util::ids;
use crate::util::time::Clock;
use crate::webhook::signature::new_secret;

/// Longest accepted URL.
pub const URL_MAX_LEN: usize = 2048;
/// Prefix of the file holding a configured endpoint's secret.
pub const SECRET_FILE_PREFIX: &str = "webhook-secret-";

/// Why applying the config's webhook URLs failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookConfigError {
    /// The secret file could not be written.
    #[error("cannot write the webhook secret of tenant `{tenant}` to {path}: {source}")]
    SecretFile {
        /// Tenant name.
        tenant: String,
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Check a webhook URL: `http://` or `https://` with a host, no spaces,
/// at most [`URL_MAX_LEN`] bytes. Returns the problem.
pub fn check_url(url: &str) -> Result<(), String> {
    if url.len() > URL_MAX_LEN {
        return Err(format!("must be at most {URL_MAX_LEN} characters"));
    }
    let parsed = reqwest::Url::parse(url)
        .map_err(|_| "must be an absolute http:// or https:// URL".to_string())?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err("must be an http:// or https:// URL".into());
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("must name a host".into());
    }
    if url.chars().any(char::is_whitespace) {
        return Err("must not contain spaces".into());
    }
    Ok(())
}

/// Set the tenant's endpoint to `url` with a new secret (enabled).
/// Returns the endpoint, whose secret is shown to the caller once.
pub async fn put(
    store: &Store,
    clock: &Clock,
    tenant_id: &str,
    url: &str,
) -> Result<EndpointRow, StoreError> {
    let now = clock.now_ms();
    let mut tx = store.begin().await?;
    let row = EndpointRow {
        id: ids::webhook_endpoint_id(),
        tenant_id: tenant_id.to_string(),
        url: url.to_string(),
        secret: new_secret(),
        source: SOURCE_API.to_string(),
        created_at: now,
        updated_at: now,
        disabled_at: None,
        disabled_reason: None,
    };
    endpoints::upsert(&mut tx, &row).await?;
    let stored = endpoints::get_for_tenant(&mut tx, tenant_id)
        .await?
        .ok_or_else(|| StoreError::Corrupt("webhook endpoint vanished".into()))?;
    tx.commit().await?;
    tracing::info!(tenant_id, endpoint = %crate::webhook::log_origin(url), "webhook endpoint set");
    Ok(stored)
}

/// The tenant's endpoint.
pub async fn get(store: &Store, tenant_id: &str) -> Result<Option<EndpointRow>, StoreError> {
    let mut conn = store.pool().acquire().await?;
    endpoints::get_for_tenant(&mut conn, tenant_id).await
}

/// Remove the tenant's endpoint; its pending deliveries are dropped
/// (`disabled`). Returns whether there was one.
pub async fn delete(store: &Store, clock: &Clock, tenant_id: &str) -> Result<bool, StoreError> {
    let mut tx = store.begin().await?;
    let removed = remove(&mut tx, clock.now_ms(), tenant_id).await?;
    tx.commit().await?;
    if removed {
        tracing::info!(tenant_id, "webhook endpoint removed");
    }
    Ok(removed)
}

async fn remove(
    conn: &mut sqlx::AnyConnection,
    now: i64,
    tenant_id: &str,
) -> Result<bool, StoreError> {
    let Some(row) = endpoints::delete(conn, tenant_id).await? else {
        return Ok(false);
    };
    deliveries::disable_pending(conn, &row.id, "the webhook endpoint was removed", now).await?;
    Ok(true)
}

/// The tenant's most recent delivery attempts, newest first.
pub async fn recent_attempts(
    store: &Store,
    tenant_id: &str,
    limit: i64,
) -> Result<Vec<AttemptRow>, StoreError> {
    let mut conn = store.pool().acquire().await?;
    deliveries::recent_attempts(&mut conn, tenant_id, limit).await
}

/// Apply `[[tenants]] webhook_url` (run after the tenants are bootstrapped).
pub async fn apply_config(
    store: &Store,
    config: &sip_config::Config,
    clock: &Clock,
) -> Result<(), WebhookConfigError> {
    for t in &config.tenants {
        let now = clock.now_ms();
        let mut tx = store.begin().await?;
        let Some(tenant) = tenants::find_by_name(&mut tx, &t.name).await? else {
            continue;
        };
        let existing = endpoints::get_for_tenant(&mut tx, &tenant.id).await?;
        match (&t.webhook_url, existing) {
            (Some(url), None) => {
                let row = EndpointRow {
                    id: ids::webhook_endpoint_id(),
                    tenant_id: tenant.id.clone(),
                    url: url.clone(),
                    secret: new_secret(),
                    source: SOURCE_CONFIG.to_string(),
                    created_at: now,
                    updated_at: now,
                    disabled_at: None,
                    disabled_reason: None,
                };
                endpoints::upsert(&mut tx, &row).await?;
                // Written before the commit: if it cannot be written the
                // endpoint is not created and the next start tries again.
                let path = secret_path(store.data_dir(), &t.name);
                write_secret(&path, &row.secret).map_err(|source| {
                    WebhookConfigError::SecretFile {
                        tenant: t.name.clone(),
                        path: path.clone(),
                        source,
                    }
                })?;
                tracing::info!(tenant = %t.name, endpoint = %crate::webhook::log_origin(url), secret_file = %path.display(),
                    "webhook endpoint configured; its signing secret is in the secret file");
            }
            (Some(url), Some(e)) if &e.url != url => {
                endpoints::set_url(&mut tx, &tenant.id, url, now).await?;
                tracing::info!(tenant = %t.name, endpoint = %crate::webhook::log_origin(url), "webhook URL changed (secret kept)");
            }
            (None, Some(e)) if e.source == SOURCE_CONFIG => {
                remove(&mut tx, now, &tenant.id).await?;
                tracing::info!(tenant = %t.name, "configured webhook endpoint removed");
            }
            _ => {}
        }
        tx.commit().await.map_err(StoreError::from)?;
    }
    Ok(())
}

/// Where the secret of tenant `name`'s configured endpoint is written.
pub fn secret_path(data_dir: &Path, name: &str) -> PathBuf {
    data_dir.join(format!("{SECRET_FILE_PREFIX}{name}"))
}

fn write_secret(path: &Path, secret: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(secret.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tenants::TenantLimits;
    use crate::store::testing::{store, TempDir};

    #[test]
    fn urls() {
        for ok in ["http://127.0.0.1:9000/hooks", "https://example.com/a?b=c"] {
            assert_eq!(check_url(ok), Ok(()), "{ok}");
        }
        for bad in [
            "ftp://example.com/",
            "example.com/hooks",
            "http://",
            "mailto:x@example.com",
            "http://exa mple.com/",
            "",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
        let long = format!("http://example.com/{}", "a".repeat(URL_MAX_LEN));
        assert!(check_url(&long).is_err_and(|e| e.contains("2048")));
    }

    async fn setup(dir: &TempDir) -> (Store, Clock) {
        let s = store(dir).await;
        let mut c = s.pool().acquire().await.unwrap_or_else(|e| panic!("{e}"));
        let limits = TenantLimits::from(&sip_config::TenantConfig::default());
        tenants::insert(&mut c, "ten_1", "acme", &limits, 0)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        (s.clone(), Clock::manual(1_000))
    }

    fn config(url: Option<&str>) -> sip_config::Config {
        sip_config::Config {
            tenants: vec![sip_config::TenantConfig {
                name: "acme".into(),
                webhook_url: url.map(str::to_string),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn put_rotates_the_secret_and_delete_removes() {
        let dir = TempDir::new("wh-put");
        let (s, clock) = setup(&dir).await;
        let a = put(&s, &clock, "ten_1", "http://127.0.0.1:1/a").await;
        let a = a.unwrap_or_else(|e| panic!("{e}"));
        let b = put(&s, &clock, "ten_1", "http://127.0.0.1:1/b").await;
        let b = b.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a.id, b.id, "one endpoint per tenant");
        assert_ne!(a.secret, b.secret, "a new secret each time");
        assert_eq!(b.url, "http://127.0.0.1:1/b");
        assert!(delete(&s, &clock, "ten_1").await.is_ok_and(|d| d));
        assert!(delete(&s, &clock, "ten_1").await.is_ok_and(|d| !d));
        assert!(get(&s, "ten_1").await.is_ok_and(|e| e.is_none()));
    }

    #[tokio::test]
    async fn configured_url_gets_a_secret_file_once() {
        let dir = TempDir::new("wh-config");
        let (s, clock) = setup(&dir).await;
        apply_config(&s, &config(Some("http://127.0.0.1:1/a")), &clock)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let first = get(&s, "ten_1").await.ok().flatten();
        let first = first.unwrap_or_else(|| panic!("no endpoint"));
        let path = secret_path(s.data_dir(), "acme");
        let written = std::fs::read_to_string(&path).unwrap_or_default();
        assert_eq!(written.trim(), first.secret);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).map(|m| m.permissions().mode() & 0o777);
            assert_eq!(mode.ok(), Some(0o600));
        }

        // Same URL again: nothing changes. New URL: the secret is kept.
        apply_config(&s, &config(Some("http://127.0.0.1:1/a")), &clock)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        apply_config(&s, &config(Some("http://127.0.0.1:1/b")), &clock)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let now = get(&s, "ten_1").await.ok().flatten();
        let now = now.unwrap_or_else(|| panic!("no endpoint"));
        assert_eq!(
            (now.url.as_str(), now.secret.as_str()),
            ("http://127.0.0.1:1/b", first.secret.as_str())
        );

        // Removed from the config: removed.
        apply_config(&s, &config(None), &clock)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(get(&s, "ten_1").await.is_ok_and(|e| e.is_none()));
    }

    #[tokio::test]
    async fn config_without_url_keeps_an_api_endpoint() {
        let dir = TempDir::new("wh-config-api");
        let (s, clock) = setup(&dir).await;
        put(&s, &clock, "ten_1", "http://127.0.0.1:1/api")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        apply_config(&s, &config(None), &clock)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(get(&s, "ten_1")
            .await
            .is_ok_and(|e| e.is_some_and(|e| e.url == "http://127.0.0.1:1/api")));
    }
}
