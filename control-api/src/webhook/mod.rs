//! Webhooks per Standard Webhooks v1: [`signature`] (secrets, signing),
//! [`retry`] (schedule, jitter, `Retry-After`) and the outbox [`worker`].
//! Endpoints are managed by [`crate::service::webhooks`]; deliveries are
//! queued by [`crate::service::events::EventTx::append`].

pub mod retry;
pub mod signature;
pub mod worker;

/// What of a webhook URL may be logged: its origin (scheme, host, port).
/// The path and query may carry a token (Slack-style hooks), so they never
/// reach the logs.
pub fn log_origin(url: &str) -> String {
    reqwest::Url::parse(url)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default()
}
