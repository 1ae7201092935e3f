//! Maskline control plane: the REST API (axum), the store (sqlx), the
//! session lifecycle around the engine, and the `maskline` binary's logic.
//!
//! # Layout
//! - [`server`]: start-up order (store → tenants → engine → recovery →
//!   workers → HTTP) and graceful stop; [`serve`] is what `maskline serve`
//!   runs.
//! - [`app`]: [`app::AppState`] and the router.
//! - [`http`]: thin handlers (`auth`, `body`, `sessions`, `calls`,
//!   `commands`, `events` (SSE), `webhooks`, `health`).
//! - [`error`]: the one [`error::ApiError`] enum → status + JSON body.
//! - [`service`]: sessions, TTL timers, engine events, the event pipeline,
//!   commands, webhook endpoints, recovery, bootstrap, admin (CLI)
//!   operations.
//! - [`cluster`]: several nodes on one PostgreSQL: node leases and the
//!   dead-node reaper, route sync by LISTEN/NOTIFY, the event feed,
//!   command forwarding to the owner node.
//! - [`store`]: `sqlx::AnyPool` over SQLite (default) or PostgreSQL, one
//!   module per table; migrations in `migrations/{sqlite,postgres}`.
//! - [`view`]: the `Session`, `Call` and `Operation` JSON objects.
//! - [`webhook`]: Standard Webhooks signatures, retry policy and the
//!   outbox delivery worker.
//! - [`util`]: ids and RFC 3339 time, the injectable clock.

pub mod app;
pub mod cluster;
pub mod error;
pub mod http;
pub mod server;
pub mod service;
pub mod store;
pub mod util;
pub mod view;
pub mod webhook;

pub use server::{start, Running, ServeError, ServeOptions};

use service::bootstrap::DevKey;

/// Run the service per `config` until SIGINT or SIGTERM, then stop
/// gracefully. Prints the dev tenant's API key on its first start.
pub async fn serve(config: sip_config::Config) -> Result<(), ServeError> {
    let running = start(&config, ServeOptions::default()).await?;
    match running.dev_key() {
        Some(DevKey::Created { key, path }) => {
            println!("dev tenant API key: {key}");
            println!("(saved to {}; it is not shown again)", path.display());
        }
        Some(DevKey::Existing { path }) => {
            println!("dev tenant API key: see {}", path.display());
        }
        None => {}
    }
    println!(
        "maskline listening: SIP {} · HTTP http://{}",
        running.sip_addr(),
        running.http_addr()
    );
    running.run_until(shutdown_signal()).await
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT: stopping"),
        () = term => tracing::info!("SIGTERM: stopping"),
    }
}
