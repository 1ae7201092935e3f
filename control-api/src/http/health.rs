//! `GET /healthz` (liveness) and `GET /readyz` (readiness). HTTP only binds
//! after the engine's SIP and RTP are up, so a 200 from `/healthz` means all
//! three are listening; `/readyz` also asks whether this instance should get
//! traffic now: the store answers a query and SIP takes new calls (bound,
//! not draining after SIGTERM).

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use maskline_engine::SipNotReady;
use serde_json::{json, Value};

use crate::app::AppState;

/// How long the store may take to answer the readiness query.
pub const STORE_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// `{"status":"ok","sip":"<addr>","http":"<addr>"}`
pub async fn healthz(State(state): State<AppState>) -> Json<Value> {
    Json(json!({
        "status": "ok",
        "sip": state.sip_addr.to_string(),
        "http": state.http_addr.to_string(),
    }))
}

/// Why an instance is not ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotReady {
    /// The store did not answer `SELECT 1` within [`STORE_CHECK_TIMEOUT`].
    StoreTimeout,
    /// The store answered the query with an error.
    StoreError,
    /// The engine is gone, so its SIP socket is not bound.
    SipStopped,
    /// SIGTERM: new INVITEs get 503 while live calls finish.
    Draining,
}

impl NotReady {
    /// The `reason` code of the 503 body.
    pub fn code(self) -> &'static str {
        match self {
            NotReady::StoreTimeout => "store_timeout",
            NotReady::StoreError => "store_unavailable",
            NotReady::SipStopped => "sip_stopped",
            NotReady::Draining => "draining",
        }
    }

    /// A sentence for operators.
    pub fn message(self) -> &'static str {
        match self {
            NotReady::StoreTimeout => "the store did not answer within 2 s",
            NotReady::StoreError => "the store answered with an error",
            NotReady::SipStopped => "the SIP engine is not running",
            NotReady::Draining => "draining: new calls are refused while live calls finish",
        }
    }
}

/// `200 {"status":"ready"}`, or `503 {"status":"not_ready","reason":code,
/// "message":…}` with the first failing check (store, then SIP).
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    match check(&state).await {
        Ok(()) => (StatusCode::OK, Json(json!({ "status": "ready" }))),
        Err(why) => {
            tracing::warn!(reason = why.code(), "not ready");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({
                    "status": "not_ready",
                    "reason": why.code(),
                    "message": why.message(),
                })),
            )
        }
    }
}

async fn check(state: &AppState) -> Result<(), NotReady> {
    let query = sqlx::query("SELECT 1").execute(state.store.pool());
    match tokio::time::timeout(STORE_CHECK_TIMEOUT, query).await {
        Err(_) => return Err(NotReady::StoreTimeout),
        Ok(Err(_)) => return Err(NotReady::StoreError),
        Ok(Ok(_)) => {}
    }
    state
        .sessions
        .engine()
        .sip_ready()
        .map_err(|why| match why {
            SipNotReady::Draining => NotReady::Draining,
            _ => NotReady::SipStopped,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_distinct_codes() {
        let all = [
            NotReady::StoreTimeout,
            NotReady::StoreError,
            NotReady::SipStopped,
            NotReady::Draining,
        ];
        let mut codes: Vec<&str> = all.iter().map(|r| r.code()).collect();
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), all.len());
        assert!(all.iter().all(|r| !r.message().is_empty()));
    }
}
