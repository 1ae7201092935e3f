//! Webhooks per Standard Webhooks v1: [`signature`] (secrets, signing),
//! [`retry`] (schedule, jitter, `Retry-After`) and the outbox [`worker`].
//! Endpoints are managed by [`crate::service::webhooks`]; deliveries are
//! queued by [`crate::service::events::EventTx::append`].

pub mod retry;
pub mod signature;
pub mod worker;
