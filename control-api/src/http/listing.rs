//! `GET /v1/sessions` and `GET /v1/calls`: newest first, keyset-paged.
//!
//! Query parameters: `limit` (1–100, default 25), `cursor` (opaque: the
//! previous page's `next_cursor`), `since` (a duration `15m`, `1h`, `24h`,
//! `7d`, `30d` — any whole number of `s`, `m`, `h` or `d` — or an RFC 3339
//! time; default `24h`), `state`, and for calls `session_id`. A bad
//! parameter is a 422 `validation_failed` naming it.

use std::collections::BTreeMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::Serialize;

use crate::app::AppState;
use crate::error::ApiError;
use crate::http::auth::Authed;
use crate::store::listing::{self, Filter, Key};
use crate::store::StoreError;
use crate::util::time::parse_rfc3339;
use crate::view::{CallView, SessionView};

/// Default page size.
pub const DEFAULT_LIMIT: i64 = 25;
/// Largest page size.
pub const MAX_LIMIT: i64 = 100;
/// Default `since`: the last 24 hours.
pub const DEFAULT_SINCE_MS: i64 = 24 * 3_600_000;
/// Session states accepted by `state`.
pub const SESSION_STATES: [&str; 3] = ["open", "active", "completed"];
/// Call states accepted by `state`.
pub const CALL_STATES: [&str; 7] = [
    "queued",
    "ringing",
    "answered",
    "bridged",
    "completed",
    "failed",
    "cancelled",
];

/// A page of results.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page<T> {
    /// The rows, newest first.
    pub data: Vec<T>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// Parsed, validated listing parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListParams {
    /// Page size.
    pub limit: i64,
    /// Where to continue.
    pub after: Option<Key>,
    /// Lower bound on creation time, unix ms.
    pub since_ms: i64,
    /// State filter.
    pub state: Option<String>,
    /// Session filter (calls only).
    pub session_id: Option<String>,
}

/// `GET /v1/sessions` → `{data: [Session], next_cursor}`.
pub async fn sessions(
    State(state): State<AppState>,
    Authed(tenant): Authed,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<Page<SessionView>>, ApiError> {
    let now = state.sessions.clock().now_ms();
    let p = parse(&pairs(query)?, &SESSION_STATES, false, now)?;
    let mut conn = state
        .store
        .pool()
        .acquire()
        .await
        .map_err(StoreError::from)?;
    let (rows, next) = listing::sessions(&mut conn, &filter(&tenant.id, &p)).await?;
    Ok(Json(Page {
        data: rows.iter().map(SessionView::from).collect(),
        next_cursor: next.as_ref().map(encode_cursor),
    }))
}

/// `GET /v1/calls` → `{data: [Call], next_cursor}`.
pub async fn calls(
    State(state): State<AppState>,
    Authed(tenant): Authed,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<Page<CallView>>, ApiError> {
    let now = state.sessions.clock().now_ms();
    let p = parse(&pairs(query)?, &CALL_STATES, true, now)?;
    let mut conn = state
        .store
        .pool()
        .acquire()
        .await
        .map_err(StoreError::from)?;
    let (rows, next) = listing::calls(&mut conn, &filter(&tenant.id, &p)).await?;
    Ok(Json(Page {
        data: rows.iter().map(CallView::from).collect(),
        next_cursor: next.as_ref().map(encode_cursor),
    }))
}

fn pairs(
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Vec<(String, String)>, ApiError> {
    query
        .map(|Query(q)| q)
        .map_err(|e| ApiError::field("query", format!("cannot be parsed: {e}")))
}

fn filter<'a>(tenant_id: &'a str, p: &'a ListParams) -> Filter<'a> {
    Filter {
        tenant_id,
        since_ms: p.since_ms,
        state: p.state.as_deref(),
        session_id: p.session_id.as_deref(),
        after: p.after.as_ref(),
        limit: p.limit,
    }
}

/// Validate the query pairs; every bad parameter is named at once.
pub fn parse(
    pairs: &[(String, String)],
    states: &[&str],
    with_session: bool,
    now_ms: i64,
) -> Result<ListParams, ApiError> {
    let mut errors = BTreeMap::new();
    let mut p = ListParams {
        limit: DEFAULT_LIMIT,
        after: None,
        since_ms: now_ms.saturating_sub(DEFAULT_SINCE_MS),
        state: None,
        session_id: None,
    };
    let mut seen = Vec::new();
    for (name, value) in pairs {
        if seen.contains(&name.as_str()) {
            errors.insert(name.clone(), "given more than once".to_string());
            continue;
        }
        seen.push(name.as_str());
        match name.as_str() {
            "limit" => match value.parse::<i64>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => p.limit = n,
                _ => {
                    errors.insert(
                        name.clone(),
                        format!("must be a whole number from 1 to {MAX_LIMIT}"),
                    );
                }
            },
            "cursor" => match decode_cursor(value) {
                Some(k) => p.after = Some(k),
                None => {
                    errors.insert(
                        name.clone(),
                        "is not a cursor from a previous page's next_cursor".to_string(),
                    );
                }
            },
            "since" => match parse_since(value, now_ms) {
                Some(ms) => p.since_ms = ms,
                None => {
                    errors.insert(
                        name.clone(),
                        "must be a duration such as 15m, 1h, 24h, 7d, 30d or an RFC 3339 time \
                         such as 2026-11-23T15:04:05Z"
                            .to_string(),
                    );
                }
            },
            "state" if states.contains(&value.as_str()) => p.state = Some(value.clone()),
            "state" => {
                errors.insert(
                    name.clone(),
                    format!("must be one of {}", states.join(", ")),
                );
            }
            "session_id" if with_session && !value.is_empty() && value.len() <= 64 => {
                p.session_id = Some(value.clone());
            }
            "session_id" if with_session => {
                errors.insert(name.clone(), "must be a session id (ses_…)".to_string());
            }
            _ => {
                errors.insert(name.clone(), "unknown query parameter".to_string());
            }
        }
    }
    if errors.is_empty() {
        Ok(p)
    } else {
        Err(ApiError::Validation(errors))
    }
}

/// `since` → unix ms: `<n>s|m|h|d` before `now_ms`, or an RFC 3339 time.
pub fn parse_since(s: &str, now_ms: i64) -> Option<i64> {
    if let Some(ms) = parse_rfc3339(s) {
        return Some(ms);
    }
    let unit_ms: i64 = match s.as_bytes().last()? {
        b's' => 1000,
        b'm' => 60_000,
        b'h' => 3_600_000,
        b'd' => 86_400_000,
        _ => return None,
    };
    let digits = s.get(..s.len() - 1)?;
    if digits.is_empty() || digits.len() > 9 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: i64 = digits.parse().ok()?;
    Some(now_ms.saturating_sub(n.checked_mul(unit_ms)?))
}

/// The opaque cursor: base64url of `created_ms:id`.
pub fn encode_cursor(k: &Key) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}:{}", k.created, k.id))
}

/// Inverse of [`encode_cursor`]; `None` when it is not one.
pub fn decode_cursor(s: &str) -> Option<Key> {
    let bytes = URL_SAFE_NO_PAD.decode(s).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (created, id) = text.split_once(':')?;
    if id.is_empty() || created.is_empty() {
        return None;
    }
    Some(Key {
        created: created.parse().ok()?,
        id: id.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| ((*a).to_string(), (*b).to_string()))
            .collect()
    }

    fn bad(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        match parse(&q(pairs), &CALL_STATES, true, NOW) {
            Err(ApiError::Validation(f)) => f,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn defaults() {
        let p = parse(&[], &SESSION_STATES, false, NOW).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(p.limit, 25);
        assert_eq!(p.since_ms, NOW - DEFAULT_SINCE_MS);
        assert_eq!((p.after, p.state, p.session_id), (None, None, None));
    }

    #[test]
    fn since_forms() {
        assert_eq!(parse_since("15m", NOW), Some(NOW - 900_000));
        assert_eq!(parse_since("1h", NOW), Some(NOW - 3_600_000));
        assert_eq!(parse_since("30d", NOW), Some(NOW - 30 * 86_400_000));
        assert_eq!(
            parse_since("2026-11-23T15:04:05Z", NOW),
            parse_rfc3339("2026-11-23T15:04:05.000Z")
        );
        for b in ["", "h", "1y", "-1h", "1.5h", "9999999999d", "yesterday"] {
            assert_eq!(parse_since(b, NOW), None, "{b}");
        }
    }

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let k = Key {
            created: 1_700_000_000_123,
            id: "ses_abc".into(),
        };
        assert_eq!(decode_cursor(&encode_cursor(&k)), Some(k));
        for b in ["", "!!", "bm9jb2xvbg", &URL_SAFE_NO_PAD.encode("x:ses_1")] {
            assert_eq!(decode_cursor(b), None, "{b}");
        }
    }

    #[test]
    fn bad_parameters_are_named() {
        for l in ["0", "101", "x", "-1"] {
            assert!(bad(&[("limit", l)]).contains_key("limit"), "{l}");
        }
        assert!(bad(&[("since", "1y")]).contains_key("since"));
        assert!(bad(&[("cursor", "zz")]).contains_key("cursor"));
        assert!(
            bad(&[("state", "open")]).contains_key("state"),
            "open is not a call state"
        );
        assert!(bad(&[("limit", "1"), ("limit", "2")]).contains_key("limit"));
        assert!(bad(&[("colour", "red")]).contains_key("colour"));
        let f = bad(&[("limit", "0"), ("since", "x"), ("session_id", "")]);
        assert_eq!(f.len(), 3);
        match parse(&q(&[("session_id", "ses_1")]), &SESSION_STATES, false, NOW) {
            Err(ApiError::Validation(f)) => assert!(f.contains_key("session_id")),
            other => panic!("sessions take no session_id: {other:?}"),
        }
    }

    #[test]
    fn good_parameters_accepted() {
        let p = parse(
            &q(&[
                ("limit", "100"),
                ("state", "bridged"),
                ("session_id", "ses_1"),
                ("since", "7d"),
            ]),
            &CALL_STATES,
            true,
            NOW,
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(p.limit, 100);
        assert_eq!(p.state.as_deref(), Some("bridged"));
        assert_eq!(p.session_id.as_deref(), Some("ses_1"));
        assert_eq!(p.since_ms, NOW - 7 * 86_400_000);
    }
}
