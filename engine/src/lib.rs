//! Maskline engine: the SIP/RTP core of a phone-number masking B2BUA.
//!
//! No HTTP, no SQL: the control plane drives the engine through
//! [`EngineHandle`] and consumes [`EngineEvent`]s.
//!
//! # Layout
//! - [`sip`]: wire format (rsip types from rsipstack's `sip` module plus
//!   helpers), E.164, Q.850 ↔ SIP (RFC 3398), transports and TCP framing,
//!   the RFC 3261 transaction state machines and dialogs (sans-IO, time
//!   injected), digest auth (RFC 2617/7616/8760) and the registrar.
//! - [`sdp`]: SDP parse and rewrite so both legs point at the relay, and the
//!   payload-list edits used for codec negotiation.
//! - [`media`]: RTP port pairs, the per-call relay (latching, strict source,
//!   quality figures, transcoding path, recorder tap), codecs (G.711 tables,
//!   Opus, resampler, transcoder), RFC 4733 DTMF, RFC 3550 statistics and
//!   the stereo call recorder.
//! - [`routing`]: the masked-number table and the routing decision.
//! - [`trunks`]: carrier trunks: choice by prefix and priority, up/down.
//! - [`b2bua`]: the sans-IO call state machine owning both legs of a call
//!   (`call/`: the A leg and lifecycle, `b_leg`, `mid_call` relaying,
//!   `control` commands, `codecs` negotiation, `session_timer`).
//! - [`driver`]: the thin tokio layer: UDP/TCP transport, admission,
//!   registrar and keep-alives, call actors, commands, limits.
//! - [`handle`]: the public surface (commands in, events out) and
//!   [`metrics`] for `/metrics`.
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
    MediaStats, OriginateRequest, RegistrationEvent, SipNotReady,
};
pub use routing::{Route, RouteDecision, RouteTable};
