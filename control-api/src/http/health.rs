//! `GET /healthz`. HTTP only binds after the engine's SIP and RTP are up, so
//! a 200 here means all three are listening.

use axum::extract::State;
use axum::Json;

use crate::app::AppState;

/// `{"status":"ok","sip":"<addr>","http":"<addr>"}`
pub async fn healthz(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "status": "ok",
        "sip": state.sip_addr.to_string(),
        "http": state.http_addr.to_string(),
    }))
}
