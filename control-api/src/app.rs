//! Application state shared by the handlers, and the router.

use std::net::SocketAddr;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;

use crate::http;
use crate::service::sessions::SessionService;
use crate::store::Store;

/// Largest accepted request body.
pub const BODY_LIMIT_BYTES: usize = 64 * 1024;

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// Session lifecycle (holds the engine handle and the clock).
    pub sessions: SessionService,
    /// The store.
    pub store: Store,
    /// Where SIP listens (bound).
    pub sip_addr: SocketAddr,
    /// Where HTTP listens (bound).
    pub http_addr: SocketAddr,
}

/// The whole HTTP API.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(http::health::healthz))
        .route("/v1/sessions", post(http::sessions::create))
        .route("/v1/sessions/{id}", get(http::sessions::get))
        .route("/v1/sessions/{id}/complete", post(http::sessions::complete))
        .route("/v1/calls/{id}", get(http::calls::get))
        .fallback(http::not_found)
        .method_not_allowed_fallback(http::method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
        .with_state(state)
}
