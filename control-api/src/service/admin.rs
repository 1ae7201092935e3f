//! Operator commands behind the CLI: `tenant create`, `numbers add`.

use crate::service::bootstrap::{classify, NumberStatus};
use crate::store::tenants::{self, TenantLimits, TenantRow};
use crate::store::{numbers, Store, StoreError};
use crate::util::ids;
use crate::util::time::Clock;

/// Why an operator command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// The tenant name is empty, too long or has odd characters.
    #[error("invalid tenant name `{0}`: use 1–64 characters among A–Z a–z 0–9 . _ -")]
    InvalidName(String),
    /// A tenant with that name exists.
    #[error("tenant `{0}` already exists")]
    TenantExists(String),
    /// No tenant with that name or id.
    #[error("no tenant named or with id `{0}`")]
    UnknownTenant(String),
    /// No numbers given.
    #[error("no numbers given")]
    NoNumbers,
    /// Some numbers were rejected; nothing was added. One line per number.
    #[error("{}", .0.join("\n"))]
    Numbers(Vec<String>),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for AdminError {
    fn from(e: sqlx::Error) -> Self {
        AdminError::Store(e.into())
    }
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Create a tenant with default limits and a fresh API key. Returns the
/// tenant and the key (shown once; only its hash is stored).
pub async fn create_tenant(
    store: &Store,
    name: &str,
    clock: &Clock,
) -> Result<(TenantRow, String), AdminError> {
    if !valid_name(name) {
        return Err(AdminError::InvalidName(name.to_string()));
    }
    let now = clock.now_ms();
    let mut tx = store.begin().await?;
    if tenants::find_by_name(&mut tx, name).await?.is_some() {
        return Err(AdminError::TenantExists(name.to_string()));
    }
    let limits = TenantLimits::from(&sip_config::TenantConfig::default());
    let tenant = tenants::insert(&mut tx, &ids::tenant_id(), name, &limits, now).await?;
    let key = ids::api_key();
    tenants::insert_api_key(
        &mut tx,
        &ids::api_key_id(),
        &tenant.id,
        &ids::hash_api_key(&key),
        now,
    )
    .await?;
    tx.commit().await?;
    Ok((tenant, key))
}

/// Add numbers to the pool of `tenant` (name or id). All or nothing: any
/// invalid or already-owned number rejects the whole command.
pub async fn add_numbers(
    store: &Store,
    tenant: &str,
    raw_numbers: &[String],
    clock: &Clock,
) -> Result<(TenantRow, Vec<String>), AdminError> {
    if raw_numbers.is_empty() {
        return Err(AdminError::NoNumbers);
    }
    let now = clock.now_ms();
    let mut tx = store.begin().await?;
    let t = tenants::find_by_name_or_id(&mut tx, tenant)
        .await?
        .ok_or_else(|| AdminError::UnknownTenant(tenant.to_string()))?;
    let mut problems = Vec::new();
    let mut add: Vec<String> = Vec::new();
    for raw in raw_numbers {
        match classify(&mut tx, &t, raw).await? {
            NumberStatus::Invalid => problems.push(format!(
                "`{raw}` is not an E.164 number (e.g. +15550000001)"
            )),
            NumberStatus::Ours(n) => {
                problems.push(format!("{n} is already in the pool of `{}`", t.name))
            }
            NumberStatus::Theirs { number, owner } => {
                problems.push(format!("{number} already belongs to tenant `{owner}`"))
            }
            NumberStatus::Free(n) if add.contains(&n) => {
                problems.push(format!("{n} is given twice"))
            }
            NumberStatus::Free(n) => add.push(n),
        }
    }
    if !problems.is_empty() {
        return Err(AdminError::Numbers(problems));
    }
    for n in &add {
        numbers::insert(&mut tx, n, &t.id, now).await?;
    }
    tx.commit().await?;
    Ok((t, add))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::{store, TempDir};

    #[tokio::test]
    async fn create_tenant_then_add_numbers() {
        let dir = TempDir::new("admin");
        let s = store(&dir).await;
        let clock = Clock::manual(1);
        let (acme, key) = create_tenant(&s, "acme", &clock)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(acme.id.starts_with("ten_"));
        assert!(key.starts_with("mk_"));
        let err = create_tenant(&s, "acme", &clock)
            .await
            .err()
            .map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("tenant `acme` already exists"));
        assert!(matches!(
            create_tenant(&s, "a b", &clock).await,
            Err(AdminError::InvalidName(_))
        ));
        create_tenant(&s, "beta", &clock)
            .await
            .unwrap_or_else(|e| panic!("{e}"));

        let nums = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let (_, added) = add_numbers(
            &s,
            "acme",
            &nums(&["15550000001", "+1 555 000 0002"]),
            &clock,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(added, nums(&["+15550000001", "+15550000002"]));

        let err = add_numbers(
            &s,
            &acme.id,
            &nums(&["+15550000003", "x1", "+15550000001"]),
            &clock,
        )
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert_eq!(
            err,
            "`x1` is not an E.164 number (e.g. +15550000001)\n+15550000001 is already in the pool of `acme`"
        );
        let err = add_numbers(&s, "beta", &nums(&["+15550000002"]), &clock)
            .await
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("+15550000002 already belongs to tenant `acme`")
        );
        let mut c = s.pool().acquire().await.unwrap_or_else(|e| panic!("{e}"));
        let pool = numbers::list_for_tenant(&mut c, &acme.id)
            .await
            .map(|v| v.len())
            .ok();
        assert_eq!(pool, Some(2), "+15550000003 not added: all or nothing");
        assert!(matches!(
            add_numbers(&s, "nobody", &nums(&["+15550000009"]), &clock).await,
            Err(AdminError::UnknownTenant(_))
        ));
    }
}
