//! The one HTTP error type: every failure a handler can return, rendered as
//! `{"error": code, "message": …}` (+ `fields` for 422) with its status.

use std::collections::BTreeMap;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::service::commands::SubmitError;
use crate::service::originate::OriginateError;
use crate::service::sessions::SessionError;
use crate::store::StoreError;

/// A failed API request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// 401 `unauthenticated`: missing or unknown key, or wrong `X-App-ID`.
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// 404 `not_found`: no such object for this tenant, or no such route.
    #[error("{0}")]
    NotFound(&'static str),
    /// 405 `method_not_allowed`.
    #[error("method not allowed on this path")]
    MethodNotAllowed,
    /// 409 `number_pool_exhausted`.
    #[error("no free masked number in the tenant's pool; complete a session or add numbers")]
    NumberPoolExhausted,
    /// 409 `concurrent_call_not_allowed` with `active_call_ids` and
    /// `max_concurrent`: the tenant is at its concurrent-call cap.
    #[error("the tenant is at its cap of {max_concurrent} concurrent calls")]
    ConcurrentCallNotAllowed {
        /// The tenant's live calls.
        active_call_ids: Vec<String>,
        /// The cap (`max_concurrent_calls`).
        max_concurrent: i64,
    },
    /// 409 `session_busy`: the session already has a live call.
    #[error("the session already has a live call ({0})")]
    SessionBusy(String),
    /// 409 `session_completed`: the session is over.
    #[error("the session is completed")]
    SessionCompleted,
    /// 409 `call_ended`: a command for a call that is over.
    #[error("the call has already ended")]
    CallEnded,
    /// 409 `not_recording`: pause/resume for a call that is not being
    /// recorded.
    #[error("the call is not being recorded (session without `record`, or not answered yet)")]
    NotRecording,
    /// 409 `command_uid_conflict`: the `command_uid` was used on this call
    /// for another command (or cause).
    #[error("command_uid was already used on this call for `{0}`; use a new command_uid")]
    CommandUidConflict(String),
    /// 400 `idempotency_key_invalid`: the `Idempotency-Key` header is
    /// empty, longer than 255 characters or not printable ASCII.
    #[error("{0}")]
    IdempotencyKeyInvalid(String),
    /// 409 `idempotency_conflict`: the key was used with another body (or
    /// on another endpoint).
    #[error("this Idempotency-Key was already used with a different request; use a new key")]
    IdempotencyConflict,
    /// 409 `idempotency_in_progress` with `retry_after_seconds` and
    /// `Retry-After`: the first request with this key is still running.
    #[error("a request with this Idempotency-Key is still in progress; retry later")]
    IdempotencyInProgress {
        /// Seconds for `Retry-After`.
        retry_after_secs: u64,
    },
    /// 409 `idempotency_state_unknown`: the first request with this key
    /// stopped mid-way (lock older than 120 s, no stored response).
    #[error("the first request with this Idempotency-Key did not finish; check whether it took effect, then retry with a new key")]
    IdempotencyStateUnknown,
    /// 429 `rate_limited` with `Retry-After`: the API key sent more than
    /// `[http] rate_limit_per_sec`.
    #[error("too many requests for this API key; retry after {retry_after_secs} s")]
    RateLimited {
        /// Seconds for `Retry-After`.
        retry_after_secs: u64,
    },
    /// 503 `too_many_sse_streams` with `Retry-After`.
    #[error("too many open event streams ({max}); retry later")]
    TooManySseStreams {
        /// The cap.
        max: usize,
        /// Seconds for `Retry-After`.
        retry_after_secs: u64,
    },
    /// 413 `payload_too_large`.
    #[error("request body larger than {limit} bytes")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// 422 `validation_failed`, with a message per offending field.
    #[error("request validation failed")]
    Validation(BTreeMap<String, String>),
    /// 500 `internal`: details are logged, not returned.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    /// 422 for a single field.
    pub fn field(name: &str, message: impl Into<String>) -> Self {
        ApiError::Validation(BTreeMap::from([(name.to_string(), message.into())]))
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::IdempotencyKeyInvalid(_) => StatusCode::BAD_REQUEST,
            ApiError::IdempotencyConflict
            | ApiError::IdempotencyInProgress { .. }
            | ApiError::IdempotencyStateUnknown => StatusCode::CONFLICT,
            ApiError::NumberPoolExhausted
            | ApiError::ConcurrentCallNotAllowed { .. }
            | ApiError::SessionBusy(_)
            | ApiError::SessionCompleted
            | ApiError::CallEnded
            | ApiError::NotRecording
            | ApiError::CommandUidConflict(_) => StatusCode::CONFLICT,
            ApiError::TooManySseStreams { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable `error` code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthenticated(_) => "unauthenticated",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::IdempotencyKeyInvalid(_) => "idempotency_key_invalid",
            ApiError::IdempotencyConflict => "idempotency_conflict",
            ApiError::IdempotencyInProgress { .. } => "idempotency_in_progress",
            ApiError::IdempotencyStateUnknown => "idempotency_state_unknown",
            ApiError::NumberPoolExhausted => "number_pool_exhausted",
            ApiError::ConcurrentCallNotAllowed { .. } => "concurrent_call_not_allowed",
            ApiError::SessionBusy(_) => "session_busy",
            ApiError::SessionCompleted => "session_completed",
            ApiError::CallEnded => "call_ended",
            ApiError::NotRecording => "not_recording",
            ApiError::CommandUidConflict(_) => "command_uid_conflict",
            ApiError::TooManySseStreams { .. } => "too_many_sse_streams",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::Validation(_) => "validation_failed",
            ApiError::Internal(_) => "internal",
        }
    }

    /// The response body.
    pub fn body(&self) -> serde_json::Value {
        let mut body = serde_json::json!({ "error": self.code(), "message": self.to_string() });
        if let (ApiError::Validation(fields), Some(obj)) = (self, body.as_object_mut()) {
            let first = fields.iter().next().map(|(k, v)| format!("{k}: {v}"));
            if let Some(first) = first {
                let more = fields.len().saturating_sub(1);
                let msg = if more == 0 {
                    first
                } else {
                    format!("{first} (and {more} more)")
                };
                obj.insert("message".into(), serde_json::Value::String(msg));
            }
            obj.insert("fields".into(), serde_json::json!(fields));
        }
        if let (
            ApiError::ConcurrentCallNotAllowed {
                active_call_ids,
                max_concurrent,
            },
            Some(obj),
        ) = (self, body.as_object_mut())
        {
            obj.insert("active_call_ids".into(), serde_json::json!(active_call_ids));
            obj.insert("max_concurrent".into(), serde_json::json!(max_concurrent));
        }
        if let (ApiError::IdempotencyInProgress { retry_after_secs }, Some(obj)) =
            (self, body.as_object_mut())
        {
            obj.insert(
                "retry_after_seconds".into(),
                serde_json::json!(retry_after_secs),
            );
        }
        body
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(detail) = &self {
            tracing::error!(error = %detail, "request failed");
        }
        let mut resp = (self.status(), Json(self.body())).into_response();
        let retry_after = match &self {
            ApiError::TooManySseStreams {
                retry_after_secs, ..
            }
            | ApiError::IdempotencyInProgress { retry_after_secs }
            | ApiError::RateLimited { retry_after_secs } => Some(*retry_after_secs),
            _ => None,
        };
        if let Some(retry_after_secs) = retry_after {
            if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        resp
    }
}

impl From<SubmitError> for ApiError {
    fn from(e: SubmitError) -> Self {
        match e {
            SubmitError::NotFound => ApiError::NotFound("no such call"),
            SubmitError::CallEnded => ApiError::CallEnded,
            SubmitError::UidConflict(was) => ApiError::CommandUidConflict(was),
            SubmitError::Store(e) => e.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::Internal(e.to_string())
    }
}

impl From<OriginateError> for ApiError {
    fn from(e: OriginateError) -> Self {
        match e {
            OriginateError::NotFound("call") => ApiError::NotFound("no such call"),
            OriginateError::NotFound(_) => ApiError::NotFound("no such session"),
            OriginateError::SessionCompleted => ApiError::SessionCompleted,
            OriginateError::SessionBusy(call) => ApiError::SessionBusy(call),
            OriginateError::ConcurrencyCap {
                active_call_ids,
                max_concurrent,
            } => ApiError::ConcurrentCallNotAllowed {
                active_call_ids,
                max_concurrent,
            },
            OriginateError::Store(e) => e.into(),
        }
    }
}

impl From<SessionError> for ApiError {
    fn from(e: SessionError) -> Self {
        match e {
            SessionError::NotFound => ApiError::NotFound("no such session"),
            SessionError::PoolExhausted => ApiError::NumberPoolExhausted,
            SessionError::Store(e) => e.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_body_names_fields() {
        let mut fields = BTreeMap::new();
        fields.insert("party_a".to_string(), "is required".to_string());
        fields.insert("ttl_minutes".to_string(), "must be at most 240".to_string());
        let e = ApiError::Validation(fields);
        assert_eq!(e.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let b = e.body();
        assert_eq!(b["error"], "validation_failed");
        assert_eq!(b["fields"]["party_a"], "is required");
        assert_eq!(b["message"], "party_a: is required (and 1 more)");
    }

    #[test]
    fn codes_and_statuses() {
        let cases = [
            (ApiError::Unauthenticated("x"), 401, "unauthenticated"),
            (ApiError::NotFound("x"), 404, "not_found"),
            (ApiError::NumberPoolExhausted, 409, "number_pool_exhausted"),
            (ApiError::CallEnded, 409, "call_ended"),
            (ApiError::NotRecording, 409, "not_recording"),
            (
                ApiError::CommandUidConflict("answer".into()),
                409,
                "command_uid_conflict",
            ),
            (
                ApiError::TooManySseStreams {
                    max: 1,
                    retry_after_secs: 5,
                },
                503,
                "too_many_sse_streams",
            ),
            (
                ApiError::PayloadTooLarge { limit: 1 },
                413,
                "payload_too_large",
            ),
            (ApiError::Internal("secret detail".into()), 500, "internal"),
            (
                ApiError::IdempotencyKeyInvalid("x".into()),
                400,
                "idempotency_key_invalid",
            ),
            (ApiError::IdempotencyConflict, 409, "idempotency_conflict"),
            (
                ApiError::IdempotencyStateUnknown,
                409,
                "idempotency_state_unknown",
            ),
        ];
        for (e, status, code) in cases {
            assert_eq!(e.status().as_u16(), status);
            let b = e.body();
            assert_eq!(b["error"], code);
            assert!(b.get("fields").is_none());
            assert!(!b.to_string().contains("secret detail"));
        }
    }

    #[test]
    fn too_many_streams_sets_retry_after() {
        let resp = ApiError::TooManySseStreams {
            max: 1000,
            retry_after_secs: 5,
        }
        .into_response();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            resp.headers()
                .get(header::RETRY_AFTER)
                .map(|v| v.as_bytes()),
            Some(&b"5"[..])
        );
    }
}
