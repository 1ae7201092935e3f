//! `X-API-Key` authentication (and the optional `X-App-ID` check).
//!
//! The key is hashed (SHA-256 hex) and the hash looked up (a verified key
//! is trusted for a second, see [`crate::http::key_cache`]); keys are never
//! stored, compared or logged in clear.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::app::AppState;
use crate::error::ApiError;
use crate::store::tenants::{self, TenantRow};
use crate::util::ids::hash_api_key;

/// Header carrying the API key.
pub const API_KEY_HEADER: &str = "x-api-key";
/// Optional header naming the tenant id.
pub const APP_ID_HEADER: &str = "x-app-id";

/// The tenant the request's API key belongs to.
#[derive(Debug, Clone)]
pub struct Authed(pub TenantRow);

impl FromRequestParts<AppState> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(key) = parts.headers.get(API_KEY_HEADER) else {
            return Err(ApiError::Unauthenticated("missing X-API-Key header"));
        };
        let key = key
            .to_str()
            .map_err(|_| ApiError::Unauthenticated("unknown API key"))?
            .trim();
        if key.is_empty() {
            return Err(ApiError::Unauthenticated("missing X-API-Key header"));
        }
        let hash = hash_api_key(key);
        let now = std::time::Instant::now();
        state
            .rate_limit
            .check(&hash, now)
            .map_err(|retry_after_secs| ApiError::RateLimited { retry_after_secs })?;
        let tenant = match state.keys.get(&hash, now) {
            Some(tenant) => tenant,
            None => {
                let mut conn = state
                    .store
                    .pool()
                    .acquire()
                    .await
                    .map_err(|e| ApiError::Internal(e.to_string()))?;
                let tenant = tenants::find_by_key_hash(&mut conn, &hash)
                    .await?
                    .ok_or(ApiError::Unauthenticated("unknown API key"))?;
                state.keys.put(&hash, &tenant, now);
                tenant
            }
        };
        if let Some(app_id) = parts.headers.get(APP_ID_HEADER) {
            if app_id.to_str().ok().map(str::trim) != Some(tenant.id.as_str()) {
                return Err(ApiError::Unauthenticated(
                    "X-App-ID does not name the API key's tenant",
                ));
            }
        }
        Ok(Authed(tenant))
    }
}
