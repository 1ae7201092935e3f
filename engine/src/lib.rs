//! Maskline engine: the SIP/RTP core of a phone-number masking B2BUA.
//!
//! No HTTP, no SQL: the control plane drives the engine through
//! [`EngineHandle`] and consumes [`EngineEvent`]s.
//!
//! # Layout
//! - [`sip`]: wire format (rsip types from rsipstack's `sip` module plus
//!   helpers), E.164, Q.850 ↔ SIP mapping, and the RFC 3261 transaction state
//!   machines (sans-IO, time injected).
//! - [`sdp`]: SDP parse and rewrite so both legs point at the relay.
//! - [`media`]: RTP port-pair allocation and the per-call relay.
//! - [`routing`]: the masked-number table and the routing decision.
//! - [`b2bua`]: the sans-IO call state machine owning both legs of a call.
//! - [`driver`]: the thin tokio layer: UDP transport, call actors, timers.
//! - [`handle`]: the public surface (commands in, events out).
#![warn(missing_docs)]

pub mod b2bua;
pub mod driver;
pub mod handle;
pub mod media;
pub mod metrics;
pub mod routing;
pub mod sdp;
pub mod sip;
pub mod trunks;

pub use driver::engine::{Engine, StartError, Started};
pub use handle::{
    Command, CommandError, CommandReply, Direction, EngineEvent, EngineHandle, HangupBy,
    MediaStats, RegistrationEvent,
};
pub use routing::{Route, RouteDecision, RouteTable};
