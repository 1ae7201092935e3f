//! Business logic between the HTTP handlers and the store.
//!
//! - [`sessions`]: create / read / complete sessions, routes and TTL timers.
//! - [`ttl`]: the timer task and the expiry worker.
//! - [`engine_events`]: persisting the engine's call events.
//! - [`events`]: the event pipeline (persist, then publish; outbox rows).
//! - [`group_commit`]: concurrent event-writing jobs sharing one commit.
//! - [`commands`]: call-control commands and their operations.
//! - [`recordings`]: recording files and pause/resume.
//! - [`webhooks`]: webhook endpoints (API and config).
//! - [`recovery`]: start-up recovery after a stop or crash.
//! - [`bootstrap`]: tenants from the config, the `dev` tenant.
//! - [`originate`]: originated calls, the concurrency cap and the
//!   calls-per-second queue, cancel.
//! - [`idempotency`]: `Idempotency-Key` on creating POSTs.
//! - [`admin`]: the CLI's tenant, key and number commands.

pub mod admin;
pub mod bootstrap;
pub mod commands;
pub mod engine_events;
pub mod events;
pub mod group_commit;
pub mod idempotency;
pub mod originate;
pub mod recordings;
pub mod recovery;
pub mod registrations;
pub mod sessions;
pub mod ttl;
pub mod webhooks;
