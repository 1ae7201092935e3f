//! `POST /v1/calls/originate` and `POST /v1/calls/{id}/cancel`.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Json;
use serde_json::{json, Map, Value};

use crate::app::AppState;
use crate::error::ApiError;
use crate::http::auth::Authed;
use crate::http::body::JsonObject;
use crate::http::id::IdPath;
use crate::service::idempotency;
use crate::service::originate::Party;
use crate::view::CallView;

const FIELDS: [&str; 2] = ["session_id", "from_party"];

/// `POST /v1/calls/originate` `{session_id, from_party: "a"|"b"}` → 201
/// Call (`ringing`), or 202 Call with `state: "queued"` and `position` when
/// the tenant's calls-per-second rate queues it. Supports
/// `Idempotency-Key`.
pub async fn originate(
    State(state): State<AppState>,
    Authed(tenant): Authed,
    headers: HeaderMap,
    JsonObject(body): JsonObject,
) -> Result<Response, ApiError> {
    let key = idempotency::key_from(&headers)?;
    let body = Value::Object(body);
    idempotency::run(
        &state.store,
        state.sessions.clock(),
        &tenant.id,
        key,
        "POST /v1/calls/originate",
        &body,
        || async {
            let Value::Object(fields) = &body else {
                return Err(ApiError::Internal("body is not an object".into()));
            };
            let (session_id, party) = validate(fields)?;
            let done = state
                .originate
                .originate(&tenant, &session_id, party)
                .await?;
            let mut view = CallView::from(&done.call).to_value();
            let status = match done.position {
                Some(p) => {
                    view["position"] = json!(p);
                    StatusCode::ACCEPTED
                }
                None => StatusCode::CREATED,
            };
            Ok((status, view))
        },
    )
    .await
}

/// `POST /v1/calls/{id}/cancel` → `{cancelled: bool}`: cancels a queued or
/// still-ringing call; idempotent (a cancelled call answers `true` again).
pub async fn cancel(
    State(state): State<AppState>,
    Authed(tenant): Authed,
    IdPath(id): IdPath,
) -> Result<Json<Value>, ApiError> {
    let cancelled = state.originate.cancel(&tenant.id, &id).await?;
    Ok(Json(json!({ "cancelled": cancelled })))
}

/// Check an originate body; every bad field is reported at once.
pub fn validate(body: &Map<String, Value>) -> Result<(String, Party), ApiError> {
    let mut errors = BTreeMap::new();
    for key in body.keys() {
        if !FIELDS.contains(&key.as_str()) {
            errors.insert(key.clone(), "unknown field".to_string());
        }
    }
    let session_id = match body.get("session_id") {
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 64 => Some(s.clone()),
        None | Some(Value::Null) => {
            errors.insert("session_id".into(), "is required".into());
            None
        }
        Some(_) => {
            errors.insert("session_id".into(), "must be a session id (ses_…)".into());
            None
        }
    };
    let party = match body.get("from_party") {
        Some(Value::String(s)) if s == "a" => Some(Party::A),
        Some(Value::String(s)) if s == "b" => Some(Party::B),
        None | Some(Value::Null) => {
            errors.insert("from_party".into(), "is required (\"a\" or \"b\")".into());
            None
        }
        Some(_) => {
            errors.insert("from_party".into(), "must be \"a\" or \"b\"".into());
            None
        }
    };
    match (session_id, party) {
        (Some(s), Some(p)) if errors.is_empty() => Ok((s, p)),
        _ => Err(ApiError::Validation(errors)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(body: Value) -> Result<(String, Party), BTreeMap<String, String>> {
        let Value::Object(m) = body else {
            panic!("not an object")
        };
        validate(&m).map_err(|e| match e {
            ApiError::Validation(f) => f,
            other => panic!("{other:?}"),
        })
    }

    #[test]
    fn valid_bodies() {
        assert_eq!(
            check(json!({"session_id": "ses_1", "from_party": "b"})).unwrap(),
            ("ses_1".to_string(), Party::B)
        );
    }

    #[test]
    fn every_bad_field_is_named() {
        let f = check(json!({"from_party": "c", "extra": 1})).unwrap_err();
        assert_eq!(f.len(), 3, "{f:?}");
        assert!(f.contains_key("session_id"));
        assert!(f.contains_key("from_party"));
        assert!(f.contains_key("extra"));
        let f = check(json!({"session_id": 5, "from_party": null})).unwrap_err();
        assert!(f.contains_key("session_id") && f.contains_key("from_party"));
    }
}
