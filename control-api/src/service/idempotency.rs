//! `Idempotency-Key` for POSTs that create.
//!
//! [`run`] wraps a handler's work: the first request with a key claims it
//! (a row in `idempotency_keys`), runs, and stores its response; the same
//! key with the same body (canonical JSON, SHA-256) gets the stored
//! response back with `replayed: true`; a different body gets 409
//! `idempotency_conflict`; a key still held by a running request gets 409
//! `idempotency_in_progress` (or `idempotency_state_unknown` once the lock
//! is older than [`LOCK_STALE_MS`]). Keys are per tenant and kept
//! [`RETENTION_MS`]. Failed requests (any error) release the key, so
//! nothing is created and the client may retry with it.

use std::future::Future;
use std::sync::atomic::{AtomicI64, Ordering};

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::store::idempotency::{self as rows, Claim, IdempotencyRow};
use crate::store::{Store, StoreError};
use crate::util::time::Clock;

/// The request header.
pub const HEADER: &str = "idempotency-key";
/// Longest accepted key, in bytes.
pub const MAX_KEY_LEN: usize = 255;
/// How long a key is kept (24 h).
pub const RETENTION_MS: i64 = 24 * 3_600_000;
/// A lock with no stored response older than this (120 s) means the first
/// request died mid-way: `idempotency_state_unknown`.
pub const LOCK_STALE_MS: i64 = 120_000;
/// `retry_after_seconds` / `Retry-After` for `idempotency_in_progress`.
pub const RETRY_AFTER_SECS: u64 = 1;
/// How often [`run`] purges expired keys (also at the first request).
pub const PURGE_EVERY_MS: i64 = 10 * 60_000;

static LAST_PURGE_MS: AtomicI64 = AtomicI64::new(i64::MIN);

/// The request's `Idempotency-Key`: `None` when absent, 400
/// `idempotency_key_invalid` when empty, longer than [`MAX_KEY_LEN`] or not
/// visible ASCII.
pub fn key_from(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(v) = headers.get(HEADER) else {
        return Ok(None);
    };
    let bytes = v.as_bytes();
    if bytes.is_empty() || bytes.len() > MAX_KEY_LEN {
        return Err(ApiError::IdempotencyKeyInvalid(format!(
            "Idempotency-Key must be 1–{MAX_KEY_LEN} characters (got {})",
            bytes.len()
        )));
    }
    match v.to_str() {
        Ok(s) if s.bytes().all(|b| b.is_ascii_graphic()) => Ok(Some(s.to_string())),
        _ => Err(ApiError::IdempotencyKeyInvalid(
            "Idempotency-Key must be printable ASCII without spaces".into(),
        )),
    }
}

/// Canonical JSON: object keys sorted at every level, no whitespace.
pub fn canonical_json(v: &Value) -> String {
    let mut out = String::new();
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                if let Some(inner) = m.get(k) {
                    write_canonical(inner, out);
                }
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, inner) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(inner, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// SHA-256 hex of the canonical JSON of `body`.
pub fn body_hash(body: &Value) -> String {
    hex::encode(Sha256::digest(canonical_json(body).as_bytes()))
}

/// Run `work` at most once per (tenant, key).
///
/// `scope` names the endpoint (`"POST /v1/sessions"`); the same key on
/// another endpoint is an `idempotency_conflict`. `work` returns the status
/// and JSON object to answer; a `replayed` field is added to it (`false`
/// now, `true` on replays). Without a key `work` simply runs (no
/// `replayed` field).
pub async fn run<F, Fut>(
    store: &Store,
    clock: &Clock,
    tenant_id: &str,
    key: Option<String>,
    scope: &str,
    body: &Value,
    work: F,
) -> Result<Response, ApiError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<(StatusCode, Value), ApiError>>,
{
    let Some(key) = key else {
        let (status, value) = work().await?;
        return Ok((status, Json(value)).into_response());
    };
    let now = clock.now_ms();
    purge_if_due(store, now).await;
    let claim_row = IdempotencyRow {
        tenant_id: tenant_id.to_string(),
        key: key.clone(),
        scope: scope.to_string(),
        request_hash: body_hash(body),
        status: None,
        response: None,
        locked_at: now,
        created_at: now,
    };
    let claim = {
        let mut conn = store.pool().acquire().await.map_err(StoreError::from)?;
        rows::claim(&mut conn, &claim_row, now - RETENTION_MS).await?
    };
    if let Claim::Existing(row) = claim {
        return replay(&row, &claim_row, now);
    }
    let outcome = work().await;
    let mut conn = store.pool().acquire().await.map_err(StoreError::from)?;
    match outcome {
        Ok((status, mut value)) => {
            set_replayed(&mut value, false);
            let text = value.to_string();
            rows::finish(
                &mut conn,
                tenant_id,
                &key,
                i64::from(status.as_u16()),
                &text,
            )
            .await?;
            Ok((status, Json(value)).into_response())
        }
        Err(e) => {
            rows::release(&mut conn, tenant_id, &key).await?;
            Err(e)
        }
    }
}

/// The answer for a key another request already took.
fn replay(row: &IdempotencyRow, req: &IdempotencyRow, now: i64) -> Result<Response, ApiError> {
    if row.scope != req.scope || row.request_hash != req.request_hash {
        return Err(ApiError::IdempotencyConflict);
    }
    match (row.status, row.response.as_deref()) {
        (Some(status), Some(text)) => {
            let mut value: Value = serde_json::from_str(text)
                .map_err(|e| ApiError::Internal(format!("stored idempotent response: {e}")))?;
            set_replayed(&mut value, true);
            let status = u16::try_from(status)
                .ok()
                .and_then(|s| StatusCode::from_u16(s).ok())
                .ok_or_else(|| ApiError::Internal(format!("stored status {status}")))?;
            Ok((status, Json(value)).into_response())
        }
        _ if now.saturating_sub(row.locked_at) > LOCK_STALE_MS => {
            Err(ApiError::IdempotencyStateUnknown)
        }
        _ => Err(ApiError::IdempotencyInProgress {
            retry_after_secs: RETRY_AFTER_SECS,
        }),
    }
}

fn set_replayed(value: &mut Value, replayed: bool) {
    if let Some(obj) = value.as_object_mut() {
        obj.insert("replayed".into(), Value::Bool(replayed));
    }
}

/// Delete keys older than [`RETENTION_MS`]. Returns how many.
pub async fn purge_expired(store: &Store, now_ms: i64) -> Result<u64, StoreError> {
    let mut conn = store.pool().acquire().await?;
    rows::purge(&mut conn, now_ms - RETENTION_MS).await
}

async fn purge_if_due(store: &Store, now: i64) {
    let last = LAST_PURGE_MS.load(Ordering::Relaxed);
    if now.saturating_sub(last) < PURGE_EVERY_MS
        || LAST_PURGE_MS
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
    {
        return;
    }
    if let Err(e) = purge_expired(store, now).await {
        tracing::warn!(error = %e, "cannot purge expired idempotency keys");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use serde_json::json;

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let a = json!({"b": 1, "a": {"z": [1, {"y": 2, "x": 3}], "c": "s"}});
        assert_eq!(
            canonical_json(&a),
            r#"{"a":{"c":"s","z":[1,{"x":3,"y":2}]},"b":1}"#
        );
        let b: Value = serde_json::from_str(r#"{ "a": {"z":[1,{"x":3,"y":2}],"c":"s"}, "b":1 }"#)
            .unwrap_or_default();
        assert_eq!(body_hash(&a), body_hash(&b));
        assert_ne!(body_hash(&a), body_hash(&json!({"b": 2})));
    }

    #[test]
    fn key_length_and_charset_checked() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(v) {
                h.insert(HEADER, v);
            }
            key_from(&h)
        };
        assert!(matches!(key_from(&HeaderMap::new()), Ok(None)));
        assert!(matches!(with("k-1"), Ok(Some(k)) if k == "k-1"));
        assert!(matches!(with(&"x".repeat(255)), Ok(Some(_))));
        for bad in ["", &"x".repeat(256), "a b"] {
            assert!(
                matches!(with(bad), Err(ApiError::IdempotencyKeyInvalid(_))),
                "{bad:?}"
            );
        }
    }

    fn row(hash: &str, status: Option<i64>, locked_at: i64) -> IdempotencyRow {
        IdempotencyRow {
            tenant_id: "t".into(),
            key: "k".into(),
            scope: "POST /v1/sessions".into(),
            request_hash: hash.into(),
            status,
            response: status.map(|_| r#"{"id":"ses_1","replayed":false}"#.into()),
            locked_at,
            created_at: locked_at,
        }
    }

    #[test]
    fn replay_rows() {
        let req = row("h", None, 1_000_000);
        assert!(matches!(
            replay(&row("other", Some(201), 0), &req, 1_000_000),
            Err(ApiError::IdempotencyConflict)
        ));
        let ok = replay(&row("h", Some(201), 0), &req, 1_000_000);
        assert!(matches!(&ok, Ok(r) if r.status() == StatusCode::CREATED));
        assert!(matches!(
            replay(&row("h", None, 1_000_000 - LOCK_STALE_MS), &req, 1_000_000),
            Err(ApiError::IdempotencyInProgress { .. })
        ));
        assert!(matches!(
            replay(
                &row("h", None, 1_000_000 - LOCK_STALE_MS - 1),
                &req,
                1_000_000
            ),
            Err(ApiError::IdempotencyStateUnknown)
        ));
    }
}
