//! Tenants from the config: `[[tenants]]` upserted by name (limits, hashed
//! bootstrap keys, pool numbers), or the `dev` tenant when the config has
//! none, whose key is generated on first start and kept in the data dir.

use std::path::{Path, PathBuf};

use maskline_engine::sip::e164;
use sqlx::AnyConnection;

use crate::store::tenants::{self, TenantLimits, TenantRow};
use crate::store::{numbers, Store, StoreError};
use crate::util::ids;
use crate::util::time::Clock;

/// Name of the tenant created when the config has no `[[tenants]]`.
pub const DEV_TENANT: &str = "dev";
/// File (in the data dir) holding the dev tenant's API key.
pub const DEV_KEY_FILE: &str = "dev-api-key";

/// The dev tenant's demo pool: +15550000001 … +15550000010.
pub fn dev_numbers() -> Vec<String> {
    (1..=10).map(|i| format!("+155500000{i:02}")).collect()
}

/// Where the dev tenant's key is, after bootstrap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DevKey {
    /// Created now: print it once.
    Created {
        /// The key.
        key: String,
        /// The file it was written to.
        path: PathBuf,
    },
    /// Created on an earlier start.
    Existing {
        /// The file it was written to then.
        path: PathBuf,
    },
}

/// Why bootstrap failed. Each message names the config key at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BootstrapError {
    /// A configured number is not E.164.
    #[error("tenants[{index}].numbers: `{number}` is not an E.164 number (e.g. +15550000001)")]
    InvalidNumber {
        /// Index in `[[tenants]]`.
        index: usize,
        /// The value.
        number: String,
    },
    /// A configured number belongs to another tenant.
    #[error("tenants[{index}].numbers: {number} already belongs to tenant `{owner}`; remove it from one of them")]
    NumberOwned {
        /// Index in `[[tenants]]`.
        index: usize,
        /// The number.
        number: String,
        /// The other tenant's name.
        owner: String,
    },
    /// A configured API key is another tenant's.
    #[error("tenants[{index}].api_keys: key #{key_index} is already a key of tenant `{owner}`")]
    KeyOwned {
        /// Index in `[[tenants]]`.
        index: usize,
        /// Index in `api_keys`.
        key_index: usize,
        /// The other tenant's name.
        owner: String,
    },
    /// The dev key file could not be written.
    #[error("cannot write the dev API key to {path}: {source}")]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for BootstrapError {
    fn from(e: sqlx::Error) -> Self {
        BootstrapError::Store(e.into())
    }
}

/// Apply the config's tenants (or the dev tenant). Returns the dev key
/// information when the dev tenant is in use.
pub async fn apply(
    store: &Store,
    config: &sip_config::Config,
    clock: &Clock,
) -> Result<Option<DevKey>, BootstrapError> {
    if config.tenants.is_empty() {
        return ensure_dev(store, clock).await.map(Some);
    }
    for (index, t) in config.tenants.iter().enumerate() {
        apply_tenant(store, index, t, clock).await?;
    }
    Ok(None)
}

async fn apply_tenant(
    store: &Store,
    index: usize,
    cfg: &sip_config::TenantConfig,
    clock: &Clock,
) -> Result<(), BootstrapError> {
    let now = clock.now_ms();
    let limits = TenantLimits::from(cfg);
    let mut tx = store.begin().await?;
    let tenant = match tenants::find_by_name(&mut tx, &cfg.name).await? {
        Some(t) => {
            tenants::update_limits(&mut tx, &t.id, &limits).await?;
            t
        }
        None => tenants::insert(&mut tx, &ids::tenant_id(), &cfg.name, &limits, now).await?,
    };
    for (key_index, key) in cfg.api_keys.iter().enumerate() {
        let hash = ids::hash_api_key(key);
        match tenants::key_owner(&mut tx, &hash).await? {
            None => {
                tenants::insert_api_key(&mut tx, &ids::api_key_id(), &tenant.id, &hash, now).await?
            }
            Some(owner) if owner == tenant.id => {}
            Some(owner) => {
                let owner = tenant_name(&mut tx, &owner).await?;
                return Err(BootstrapError::KeyOwned {
                    index,
                    key_index,
                    owner,
                });
            }
        }
    }
    for raw in &cfg.numbers {
        match classify(&mut tx, &tenant, raw).await? {
            NumberStatus::Invalid => {
                return Err(BootstrapError::InvalidNumber {
                    index,
                    number: raw.clone(),
                })
            }
            NumberStatus::Free(n) => numbers::insert(&mut tx, &n, &tenant.id, now).await?,
            NumberStatus::Ours(_) => {}
            NumberStatus::Theirs { number, owner } => {
                return Err(BootstrapError::NumberOwned {
                    index,
                    number,
                    owner,
                })
            }
        }
    }
    tx.commit().await?;
    tracing::info!(tenant = %cfg.name, tenant_id = %tenant.id, "tenant configured");
    Ok(())
}

async fn ensure_dev(store: &Store, clock: &Clock) -> Result<DevKey, BootstrapError> {
    let now = clock.now_ms();
    let path = store.data_dir().join(DEV_KEY_FILE);
    let mut tx = store.begin().await?;
    let (tenant, created) = match tenants::find_by_name(&mut tx, DEV_TENANT).await? {
        Some(t) => (t, None),
        None => {
            let limits = TenantLimits::from(&sip_config::TenantConfig::default());
            let t = tenants::insert(&mut tx, &ids::tenant_id(), DEV_TENANT, &limits, now).await?;
            let key = ids::api_key();
            tenants::insert_api_key(
                &mut tx,
                &ids::api_key_id(),
                &t.id,
                &ids::hash_api_key(&key),
                now,
            )
            .await?;
            (t, Some(key))
        }
    };
    for raw in dev_numbers() {
        match classify(&mut tx, &tenant, &raw).await? {
            NumberStatus::Free(n) => numbers::insert(&mut tx, &n, &tenant.id, now).await?,
            NumberStatus::Theirs { number, owner } => {
                tracing::warn!(number = %number, owner = %owner, "demo number belongs to another tenant; not added to dev")
            }
            NumberStatus::Ours(_) | NumberStatus::Invalid => {}
        }
    }
    // Write the key before committing: if the file cannot be written the
    // tenant is not created and the next start tries again.
    if let Some(key) = &created {
        write_key_file(&path, key).map_err(|source| BootstrapError::KeyFile {
            path: path.clone(),
            source,
        })?;
    }
    tx.commit().await?;
    Ok(match created {
        Some(key) => DevKey::Created { key, path },
        None => DevKey::Existing { path },
    })
}

/// Write `key` + newline to `path`, readable by the owner only.
fn write_key_file(path: &Path, key: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(format!("{key}\n").as_bytes())?;
    file.sync_all()
}

/// Where a number stands relative to a tenant's pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NumberStatus {
    /// Not E.164.
    Invalid,
    /// In no pool (normalised).
    Free(String),
    /// Already in this tenant's pool (normalised).
    Ours(String),
    /// In another tenant's pool.
    Theirs {
        /// Normalised number.
        number: String,
        /// The other tenant's name.
        owner: String,
    },
}

pub(crate) async fn classify(
    conn: &mut AnyConnection,
    tenant: &TenantRow,
    raw: &str,
) -> Result<NumberStatus, StoreError> {
    let Some(number) = e164::normalize(raw) else {
        return Ok(NumberStatus::Invalid);
    };
    Ok(match numbers::find(conn, &number).await? {
        None => NumberStatus::Free(number),
        Some(row) if row.tenant_id == tenant.id => NumberStatus::Ours(number),
        Some(row) => NumberStatus::Theirs {
            number,
            owner: tenant_name(conn, &row.tenant_id).await?,
        },
    })
}

async fn tenant_name(conn: &mut AnyConnection, id: &str) -> Result<String, StoreError> {
    Ok(tenants::find_by_id(conn, id)
        .await?
        .map(|t| t.name)
        .unwrap_or_else(|| id.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::{store, TempDir};

    fn tenant(name: &str, numbers: &[&str], keys: &[&str]) -> sip_config::TenantConfig {
        sip_config::TenantConfig {
            name: name.into(),
            numbers: numbers.iter().map(|s| s.to_string()).collect(),
            api_keys: keys.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    async fn tenant_by_key(s: &Store, key: &str) -> Option<TenantRow> {
        let mut c = s.pool().acquire().await.ok()?;
        tenants::find_by_key_hash(&mut c, &ids::hash_api_key(key))
            .await
            .ok()
            .flatten()
    }

    #[tokio::test]
    async fn dev_tenant_created_once_with_key_file() {
        let dir = TempDir::new("dev");
        let s = store(&dir).await;
        let clock = Clock::manual(1000);
        let config = sip_config::Config::default();
        let first = apply(&s, &config, &clock)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let Some(DevKey::Created { key, path }) = first else {
            panic!("{first:?}")
        };
        assert_eq!(path, s.data_dir().join(DEV_KEY_FILE));
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        assert_eq!(on_disk.trim(), key);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path)
                .map(|m| m.permissions().mode() & 0o777)
                .unwrap_or(0);
            assert_eq!(mode, 0o600);
        }
        let dev = tenant_by_key(&s, &key).await.map(|t| t.name);
        assert_eq!(dev.as_deref(), Some(DEV_TENANT));

        let second = apply(&s, &config, &clock)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(second, Some(DevKey::Existing { path }));
        let mut c = s.pool().acquire().await.unwrap_or_else(|e| panic!("{e}"));
        let t = tenants::find_by_name(&mut c, DEV_TENANT)
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("dev"));
        let pool: Vec<String> = numbers::list_for_tenant(&mut c, &t.id)
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|n| n.e164)
            .collect();
        assert_eq!(pool, dev_numbers());
        assert_eq!(pool.first().map(String::as_str), Some("+15550000001"));
        assert_eq!(pool.last().map(String::as_str), Some("+15550000010"));
    }

    #[tokio::test]
    async fn config_tenants_upserted_by_name() {
        let dir = TempDir::new("cfg");
        let s = store(&dir).await;
        let clock = Clock::manual(1000);
        let mut config = sip_config::Config {
            tenants: vec![tenant(
                "acme",
                &["+15550000001", "15550000002"],
                &["k-acme"],
            )],
            ..Default::default()
        };
        assert_eq!(apply(&s, &config, &clock).await.ok(), Some(None));
        let acme = tenant_by_key(&s, "k-acme")
            .await
            .unwrap_or_else(|| panic!("acme by key"));
        assert_eq!(acme.max_ttl_minutes, 240);

        config.tenants[0].max_ttl_minutes = 30;
        config.tenants[0].numbers.push("+15550000003".into());
        apply(&s, &config, &clock)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let again = tenant_by_key(&s, "k-acme")
            .await
            .unwrap_or_else(|| panic!("acme by key"));
        assert_eq!(again.id, acme.id, "same tenant, updated");
        assert_eq!(again.max_ttl_minutes, 30);
        let mut c = s.pool().acquire().await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            numbers::list_for_tenant(&mut c, &acme.id)
                .await
                .map(|v| v.len())
                .ok(),
            Some(3)
        );
        let dev = tenants::find_by_name(&mut c, DEV_TENANT)
            .await
            .ok()
            .flatten();
        assert_eq!(dev, None, "no dev tenant when tenants are configured");
    }

    #[tokio::test]
    async fn conflicts_name_the_key() {
        let dir = TempDir::new("conflict");
        let s = store(&dir).await;
        let clock = Clock::manual(1000);
        let mut config = sip_config::Config {
            tenants: vec![
                tenant("acme", &["+15550000001"], &["k1"]),
                tenant("beta", &["+15550000001"], &[]),
            ],
            ..Default::default()
        };
        let err = apply(&s, &config, &clock)
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert_eq!(err, "tenants[1].numbers: +15550000001 already belongs to tenant `acme`; remove it from one of them");

        config.tenants = vec![tenant("beta", &[], &["k1"])];
        let err = apply(&s, &config, &clock)
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert_eq!(
            err,
            "tenants[0].api_keys: key #0 is already a key of tenant `acme`"
        );

        config.tenants = vec![tenant("gamma", &["12ab"], &[])];
        let err = apply(&s, &config, &clock)
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.starts_with("tenants[0].numbers: `12ab` is not an E.164 number"),
            "{err}"
        );
    }
}
