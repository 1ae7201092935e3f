//! `POST /v1/calls/{id}/commands/{answer|hangup|disconnect}` and
//! `GET /v1/operations/{id}`.
//!
//! Each command has its own route, so an unknown command name is a 404 from
//! the router's fallback before any body is read.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{Map, Value};

use crate::app::AppState;
use crate::error::ApiError;
use crate::http::auth::Authed;
use crate::http::body::OptionalJsonObject;
use crate::http::id::IdPath;
use crate::service::commands::{is_known_cause, CallCommand, CommandRequest, COMMAND_TIMEOUT_MS};
use crate::view::OperationView;

/// Longest `command_uid`.
pub const COMMAND_UID_MAX: usize = 128;
/// Longest `cause`.
pub const CAUSE_MAX: usize = 64;
const FIELDS: [&str; 2] = ["command_uid", "cause"];

/// `POST /v1/calls/{id}/commands/answer` → 202.
pub async fn answer(
    state: State<AppState>,
    tenant: Authed,
    id: IdPath,
    body: OptionalJsonObject,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    submit(state, tenant, id, CallCommand::Answer, body).await
}

/// `POST /v1/calls/{id}/commands/hangup` → 202.
pub async fn hangup(
    state: State<AppState>,
    tenant: Authed,
    id: IdPath,
    body: OptionalJsonObject,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    submit(state, tenant, id, CallCommand::Hangup, body).await
}

/// `POST /v1/calls/{id}/commands/disconnect` → 202.
pub async fn disconnect(
    state: State<AppState>,
    tenant: Authed,
    id: IdPath,
    body: OptionalJsonObject,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    submit(state, tenant, id, CallCommand::Disconnect, body).await
}

async fn submit(
    State(state): State<AppState>,
    Authed(tenant): Authed,
    IdPath(id): IdPath,
    command: CallCommand,
    OptionalJsonObject(body): OptionalJsonObject,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let req = validate(command, &body)?;
    let submitted = state.commands.submit(&tenant.id, &id, req).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({
            "operation_id": submitted.operation.id,
            "status": submitted.operation.status,
            "timeout_ms": COMMAND_TIMEOUT_MS,
            "replayed": submitted.replayed,
        })),
    ))
}

/// `GET /v1/operations/{id}` → Operation (404 for another tenant's).
pub async fn operation(
    State(state): State<AppState>,
    Authed(tenant): Authed,
    IdPath(id): IdPath,
) -> Result<Json<OperationView>, ApiError> {
    let op = state
        .commands
        .get(&tenant.id, &id)
        .await?
        .ok_or(ApiError::NotFound("no such operation"))?;
    Ok(Json(OperationView::from(&op)))
}

/// Check a command body; every bad field is reported at once.
pub fn validate(
    command: CallCommand,
    body: &Map<String, Value>,
) -> Result<CommandRequest, ApiError> {
    let mut errors = BTreeMap::new();
    for key in body.keys() {
        if !FIELDS.contains(&key.as_str()) {
            errors.insert(key.clone(), "unknown field".to_string());
        }
    }
    let command_uid = match body.get("command_uid") {
        None | Some(Value::Null) => None,
        Some(Value::String(uid)) => {
            if uid.is_empty() || uid.len() > COMMAND_UID_MAX {
                errors.insert(
                    "command_uid".into(),
                    format!("must be 1 to {COMMAND_UID_MAX} characters"),
                );
            } else if !uid
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
            {
                errors.insert(
                    "command_uid".into(),
                    "may only contain letters, digits, `.`, `_` and `-`".into(),
                );
            }
            Some(uid.clone())
        }
        Some(_) => {
            errors.insert("command_uid".into(), "must be a string".into());
            None
        }
    };
    let cause = match body.get("cause") {
        None | Some(Value::Null) => None,
        Some(_) if command != CallCommand::Hangup => {
            errors.insert(
                "cause".into(),
                format!("only hangup takes a cause, not {}", command.as_str()),
            );
            None
        }
        Some(Value::String(cause)) => {
            if cause.is_empty() || cause.len() > CAUSE_MAX {
                errors.insert(
                    "cause".into(),
                    format!("must be 1 to {CAUSE_MAX} characters"),
                );
            } else if !cause.bytes().all(|b| b.is_ascii_uppercase() || b == b'_') {
                errors.insert(
                    "cause".into(),
                    "must be upper-case letters and `_`, e.g. USER_BUSY".into(),
                );
            } else if !is_known_cause(cause) {
                errors.insert(
                    "cause".into(),
                    format!(
                        "`{cause}` is not a Q.850 cause name (e.g. NORMAL_CLEARING, USER_BUSY, CALL_REJECTED)"
                    ),
                );
            }
            Some(cause.clone())
        }
        Some(_) => {
            errors.insert("cause".into(), "must be a string".into());
            None
        }
    };
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    Ok(CommandRequest {
        command,
        command_uid,
        cause,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(
        command: CallCommand,
        body: Value,
    ) -> Result<CommandRequest, BTreeMap<String, String>> {
        let Value::Object(map) = body else {
            panic!("test body must be an object")
        };
        validate(command, &map).map_err(|e| match e {
            ApiError::Validation(f) => f,
            other => panic!("{other:?}"),
        })
    }

    fn error(command: CallCommand, body: Value, field: &str) -> String {
        match check(command, body) {
            Ok(ok) => panic!("accepted: {ok:?}"),
            Err(f) => f.get(field).cloned().unwrap_or_else(|| panic!("{f:?}")),
        }
    }

    #[test]
    fn empty_and_full_bodies() {
        let r = check(CallCommand::Answer, json!({}));
        assert_eq!(
            r,
            Ok(CommandRequest {
                command: CallCommand::Answer,
                command_uid: None,
                cause: None
            })
        );
        let uid = "a".repeat(COMMAND_UID_MAX);
        let r = check(
            CallCommand::Hangup,
            json!({"command_uid": uid, "cause": "USER_BUSY"}),
        );
        assert!(r.is_ok_and(|r| r.cause.as_deref() == Some("USER_BUSY")
            && r.command_uid.is_some_and(|u| u.len() == COMMAND_UID_MAX)));
        let r = check(
            CallCommand::Disconnect,
            json!({"command_uid": "Ab.9_-x", "cause": null}),
        );
        assert!(r.is_ok_and(|r| r.command_uid.as_deref() == Some("Ab.9_-x")));
    }

    #[test]
    fn every_bad_field_is_named() {
        use CallCommand::*;
        let long_uid = "a".repeat(COMMAND_UID_MAX + 1);
        assert_eq!(
            error(Answer, json!({"command_uid": long_uid}), "command_uid"),
            "must be 1 to 128 characters"
        );
        assert_eq!(
            error(Answer, json!({"command_uid": ""}), "command_uid"),
            "must be 1 to 128 characters"
        );
        assert!(error(Answer, json!({"command_uid": "a b"}), "command_uid").starts_with("may only"));
        assert!(error(Answer, json!({"command_uid": "é"}), "command_uid").starts_with("may only"));
        assert_eq!(
            error(Answer, json!({"command_uid": 5}), "command_uid"),
            "must be a string"
        );
        assert_eq!(
            error(Answer, json!({"cause": "USER_BUSY"}), "cause"),
            "only hangup takes a cause, not answer"
        );
        assert_eq!(
            error(Disconnect, json!({"cause": "USER_BUSY"}), "cause"),
            "only hangup takes a cause, not disconnect"
        );
        let long_cause = "A".repeat(CAUSE_MAX + 1);
        assert_eq!(
            error(Hangup, json!({"cause": long_cause}), "cause"),
            "must be 1 to 64 characters"
        );
        assert!(
            error(Hangup, json!({"cause": "user_busy"}), "cause").starts_with("must be upper-case")
        );
        assert!(
            error(Hangup, json!({"cause": "USER-BUSY"}), "cause").starts_with("must be upper-case")
        );
        assert!(
            error(Hangup, json!({"cause": "NOT_A_CAUSE"}), "cause").contains("not a Q.850 cause")
        );
        assert_eq!(
            error(Hangup, json!({"cause": 17}), "cause"),
            "must be a string"
        );
        assert_eq!(
            error(Hangup, json!({"reason": "x"}), "reason"),
            "unknown field"
        );
    }

    #[test]
    fn all_problems_reported_together() {
        let f = check(
            CallCommand::Hangup,
            json!({"command_uid": "no spaces", "cause": "nope", "extra": 1}),
        );
        let keys: Vec<String> = f.err().unwrap_or_default().into_keys().collect();
        assert_eq!(keys, ["cause", "command_uid", "extra"]);
    }
}
