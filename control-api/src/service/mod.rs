//! Business logic between the HTTP handlers and the store.
//!
//! - [`sessions`]: create / read / complete sessions, routes and TTL timers.
//! - [`ttl`]: the timer task and the expiry worker.
//! - [`engine_events`]: persisting the engine's call events.
//! - [`recovery`]: start-up recovery after a stop or crash.
//! - [`bootstrap`]: tenants from the config, the `dev` tenant.
//! - [`admin`]: the CLI's `tenant create` and `numbers add`.

pub mod admin;
pub mod bootstrap;
pub mod engine_events;
pub mod recovery;
pub mod registrations;
pub mod sessions;
pub mod ttl;
