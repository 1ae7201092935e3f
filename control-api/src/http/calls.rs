//! `GET /v1/calls/{id}`.

use axum::extract::State;
use axum::Json;

use crate::app::AppState;
use crate::error::ApiError;
use crate::http::auth::Authed;
use crate::http::id::IdPath;
use crate::store::calls;
use crate::view::CallView;

/// `GET /v1/calls/{id}` → Call (404 for another tenant's call).
pub async fn get(
    State(state): State<AppState>,
    Authed(tenant): Authed,
    IdPath(id): IdPath,
) -> Result<Json<CallView>, ApiError> {
    let mut conn = state
        .store
        .pool()
        .acquire()
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let call = calls::get_for_tenant(&mut conn, &tenant.id, &id)
        .await?
        .ok_or(ApiError::NotFound("no such call"))?;
    Ok(Json(CallView::from(&call)))
}
