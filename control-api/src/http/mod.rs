//! Thin HTTP handlers: extract, validate, call a service, render JSON.

pub mod auth;
pub mod body;
pub mod calls;
pub mod commands;
pub mod events;
pub mod health;
pub mod id;
pub mod key_cache;
pub mod listing;
pub mod metrics;
pub mod openapi;
pub mod originate;
pub mod range;
pub mod rate_limit;
pub mod recordings;
pub mod sessions;
pub mod sse;
pub mod webhooks;

use crate::error::ApiError;

/// Fallback for unknown paths: 404 `not_found`.
pub async fn not_found() -> ApiError {
    ApiError::NotFound("no such endpoint")
}

/// Fallback for a known path with the wrong method: 405.
pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
