//! Application state shared by the handlers, and the router.

use std::net::SocketAddr;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};
use axum::Router;

use crate::http;
use crate::http::sse::SseLimiter;
use crate::service::commands::CommandService;
use crate::service::events::EventBus;
use crate::service::originate::OriginateService;
use crate::service::recordings::RecordingService;
use crate::service::sessions::SessionService;
use crate::store::Store;

/// Largest accepted request body.
pub const BODY_LIMIT_BYTES: usize = 64 * 1024;

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// Session lifecycle (holds the engine handle and the clock).
    pub sessions: SessionService,
    /// Call-control commands and operations.
    pub commands: CommandService,
    /// The event pipeline (SSE subscribes here).
    pub events: EventBus,
    /// Open SSE streams and their cap.
    pub sse: SseLimiter,
    /// Per-API-key request budget.
    pub rate_limit: crate::http::rate_limit::KeyLimiter,
    /// API keys verified in the last second.
    pub keys: crate::http::key_cache::KeyCache,
    /// Recording files and pause/resume.
    pub recordings: RecordingService,
    /// Originated calls, limits and the calls-per-second queue.
    pub originate: OriginateService,
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
        .route("/readyz", get(http::health::readyz))
        .route("/metrics", get(http::metrics::metrics))
        .route("/openapi.json", get(http::openapi::spec))
        .route("/docs", get(http::openapi::docs))
        .route(
            "/v1/sessions",
            post(http::sessions::create).get(http::listing::sessions),
        )
        .route("/v1/sessions/{id}", get(http::sessions::get))
        .route("/v1/sessions/{id}/complete", post(http::sessions::complete))
        .route("/v1/calls", get(http::listing::calls))
        .route("/v1/calls/originate", post(http::originate::originate))
        .route("/v1/calls/{id}", get(http::calls::get))
        .route("/v1/calls/{id}/cancel", post(http::originate::cancel))
        .route(
            "/v1/calls/{id}/commands/answer",
            post(http::commands::answer),
        )
        .route(
            "/v1/calls/{id}/commands/hangup",
            post(http::commands::hangup),
        )
        .route(
            "/v1/calls/{id}/commands/disconnect",
            post(http::commands::disconnect),
        )
        .route("/v1/calls/{id}/events", get(http::events::call_stream))
        .route("/v1/calls/{id}/recording", get(http::recordings::download))
        .route(
            "/v1/calls/{id}/recording/pause",
            post(http::recordings::pause),
        )
        .route(
            "/v1/calls/{id}/recording/resume",
            post(http::recordings::resume),
        )
        .route("/v1/operations/{id}", get(http::commands::operation))
        .route("/v1/events", get(http::events::tenant_stream))
        .route(
            "/v1/webhook",
            put(http::webhooks::put)
                .get(http::webhooks::get)
                .delete(http::webhooks::delete),
        )
        .route("/v1/webhook/deliveries", get(http::webhooks::deliveries))
        .fallback(http::not_found)
        .method_not_allowed_fallback(http::method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
        .with_state(state)
}
