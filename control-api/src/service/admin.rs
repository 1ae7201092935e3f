//! Operator commands behind the CLI: `tenant create`, `key create`,
//! `key revoke`, `numbers add`, `numbers remove`.

use crate::service::bootstrap::{classify, NumberStatus};
use crate::store::api_keys::{self, ApiKeyRow};
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
    /// `key revoke` was given something that is neither a key id (or a
    /// prefix of one) nor an API key.
    #[error("`{0}` is not a key id (key_…, or at least its first {KEY_PREFIX_MIN} characters) nor an API key (mk_…)")]
    InvalidKeyRef(String),
    /// No key matches.
    #[error("no API key with id `{0}` (or that key)")]
    UnknownKey(String),
    /// The prefix matches more than one key id.
    #[error("`{prefix}` matches several keys ({}); give more of the id", .ids.join(", "))]
    AmbiguousKey {
        /// What was given.
        prefix: String,
        /// The matching ids.
        ids: Vec<String>,
    },
    /// The key was already revoked.
    #[error("API key {0} is already revoked")]
    KeyRevoked(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for AdminError {
    fn from(e: sqlx::Error) -> Self {
        AdminError::Store(e.into())
    }
}

/// Shortest key-id prefix `key revoke` accepts (`key_` + 4).
pub const KEY_PREFIX_MIN: usize = 8;

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
    let mut restore: Vec<String> = Vec::new();
    for raw in raw_numbers {
        match classify(&mut tx, &t, raw).await? {
            NumberStatus::Invalid => problems.push(format!(
                "`{raw}` is not an E.164 number (e.g. +15550000001)"
            )),
            NumberStatus::Ours(n) => {
                let removed = numbers::find(&mut tx, &n)
                    .await?
                    .is_some_and(|row| row.removed_at.is_some());
                if removed && !restore.contains(&n) {
                    restore.push(n);
                } else {
                    problems.push(format!("{n} is already in the pool of `{}`", t.name))
                }
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
    for n in &restore {
        numbers::restore(&mut tx, n).await?;
    }
    tx.commit().await?;
    add.extend(restore);
    add.sort();
    Ok((t, add))
}

/// Take numbers out of the pool of `tenant` (name or id). All or nothing:
/// a number that is not E.164, not in this pool, or held by an open
/// session rejects the whole command. Past sessions keep their history.
pub async fn remove_numbers(
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
    let mut remove: Vec<String> = Vec::new();
    for raw in raw_numbers {
        match classify(&mut tx, &t, raw).await? {
            NumberStatus::Invalid => problems.push(format!(
                "`{raw}` is not an E.164 number (e.g. +15550000001)"
            )),
            NumberStatus::Free(n) | NumberStatus::Theirs { number: n, .. } => {
                problems.push(format!("{n} is not in the pool of `{}`", t.name))
            }
            NumberStatus::Ours(n) if remove.contains(&n) => {
                problems.push(format!("{n} is given twice"))
            }
            NumberStatus::Ours(n) => match numbers::find(&mut tx, &n).await? {
                Some(row) if row.removed_at.is_some() => {
                    problems.push(format!("{n} was already removed from `{}`", t.name))
                }
                Some(row) => match row.session_id {
                    Some(sid) => problems.push(format!(
                        "{n} is held by open session {sid}; complete it first"
                    )),
                    None => remove.push(n),
                },
                None => problems.push(format!("{n} is not in the pool of `{}`", t.name)),
            },
        }
    }
    if !problems.is_empty() {
        return Err(AdminError::Numbers(problems));
    }
    for n in &remove {
        numbers::mark_removed(&mut tx, n, now).await?;
    }
    tx.commit().await?;
    Ok((t, remove))
}

/// A new API key for `tenant` (name or id). Returns the tenant, the key's
/// id (for `key revoke`) and the key (shown once; only its hash is stored).
pub async fn create_key(
    store: &Store,
    tenant: &str,
    clock: &Clock,
) -> Result<(TenantRow, String, String), AdminError> {
    let mut tx = store.begin().await?;
    let t = tenants::find_by_name_or_id(&mut tx, tenant)
        .await?
        .ok_or_else(|| AdminError::UnknownTenant(tenant.to_string()))?;
    let id = ids::api_key_id();
    let key = ids::api_key();
    tenants::insert_api_key(
        &mut tx,
        &id,
        &t.id,
        &ids::hash_api_key(&key),
        clock.now_ms(),
    )
    .await?;
    tx.commit().await?;
    Ok((t, id, key))
}

/// Revoke an API key given by its id, a unique prefix of its id (at least
/// [`KEY_PREFIX_MIN`] characters) or the key itself. Requests with it get
/// 401 from then on. Returns the key row as it was before.
pub async fn revoke_key(
    store: &Store,
    key_ref: &str,
    clock: &Clock,
) -> Result<ApiKeyRow, AdminError> {
    let mut tx = store.begin().await?;
    let row = if key_ref.starts_with("mk_") {
        api_keys::find_by_hash(&mut tx, &ids::hash_api_key(key_ref))
            .await?
            .ok_or_else(|| AdminError::UnknownKey("(the given API key)".into()))?
    } else if key_ref.starts_with("key_")
        && key_ref.len() >= KEY_PREFIX_MIN
        && key_ref
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        let mut found = api_keys::find_by_id_prefix(&mut tx, key_ref, 10).await?;
        match found.len() {
            0 => return Err(AdminError::UnknownKey(key_ref.to_string())),
            1 => found.remove(0),
            _ => match found.iter().position(|k| k.id == key_ref) {
                Some(exact) => found.remove(exact),
                None => {
                    return Err(AdminError::AmbiguousKey {
                        prefix: key_ref.to_string(),
                        ids: found.into_iter().map(|k| k.id).collect(),
                    })
                }
            },
        }
    } else {
        return Err(AdminError::InvalidKeyRef(key_ref.to_string()));
    };
    if !api_keys::revoke(&mut tx, &row.id, clock.now_ms()).await? {
        return Err(AdminError::KeyRevoked(row.id));
    }
    tx.commit().await?;
    Ok(row)
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

    #[tokio::test]
    async fn remove_numbers_refuses_a_held_number_and_allocation_skips_removed() {
        let dir = TempDir::new("admin-remove");
        let s = store(&dir).await;
        let clock = Clock::manual(1);
        let (acme, _) = create_tenant(&s, "acme", &clock)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let nums = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        add_numbers(&s, "acme", &nums(&["+15550000001", "+15550000002"]), &clock)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut c = s.pool().acquire().await.unwrap_or_else(|e| panic!("{e}"));
        let held = numbers::allocate(&mut c, &acme.id, "ses_held")
            .await
            .ok()
            .flatten()
            .unwrap_or_default();
        assert_eq!(held, "+15550000001");
        drop(c);
        let err = remove_numbers(&s, "acme", &nums(&[&held]), &clock)
            .await
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("+15550000001 is held by open session ses_held; complete it first")
        );
        let (_, removed) = remove_numbers(&s, &acme.id, &nums(&["+15550000002"]), &clock)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(removed, nums(&["+15550000002"]));
        let mut c = s.pool().acquire().await.unwrap_or_else(|e| panic!("{e}"));
        let next = numbers::allocate(&mut c, &acme.id, "ses_next")
            .await
            .ok()
            .flatten();
        assert_eq!(next, None, "a removed number is not allocated");
        let pool = numbers::list_for_tenant(&mut c, &acme.id)
            .await
            .map(|v| v.len())
            .ok();
        assert_eq!(pool, Some(1));
        assert!(matches!(
            remove_numbers(&s, "acme", &[], &clock).await,
            Err(AdminError::NoNumbers)
        ));
    }

    #[tokio::test]
    async fn create_and_revoke_keys() {
        let dir = TempDir::new("admin-keys");
        let s = store(&dir).await;
        let clock = Clock::manual(1);
        create_tenant(&s, "acme", &clock)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let (t, id, key) = create_key(&s, "acme", &clock)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.name, "acme");
        assert!(matches!(
            create_key(&s, "nobody", &clock).await,
            Err(AdminError::UnknownTenant(_))
        ));
        assert!(matches!(
            revoke_key(&s, "key_", &clock).await,
            Err(AdminError::InvalidKeyRef(_))
        ));
        let mut c = s.pool().acquire().await.unwrap_or_else(|e| panic!("{e}"));
        for (kid, hash) in [("key_abcd1111", "h1"), ("key_abcd2222", "h2")] {
            tenants::insert_api_key(&mut c, kid, &t.id, hash, 1)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        }
        drop(c);
        let err = revoke_key(&s, "key_abcd", &clock)
            .await
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some(
                "`key_abcd` matches several keys (key_abcd1111, key_abcd2222); give more of the id"
            )
        );
        let row = revoke_key(&s, "key_abcd2", &clock)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(row.id, "key_abcd2222", "a unique prefix");
        let row = revoke_key(&s, &key, &clock)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(row.id, id);
        assert!(matches!(
            revoke_key(&s, &id, &clock).await,
            Err(AdminError::KeyRevoked(_))
        ));
        let mut c = s.pool().acquire().await.unwrap_or_else(|e| panic!("{e}"));
        let found = tenants::find_by_key_hash(&mut c, &ids::hash_api_key(&key))
            .await
            .ok()
            .flatten();
        assert_eq!(found, None);
    }
}
