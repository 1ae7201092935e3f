//! The thin tokio layer: the SIP socket and its receive loop, admission of
//! new calls, one actor task per call, and the command loop.

mod call_actor;
mod commands;
mod dispatch;
pub mod engine;
mod keepalive;
mod limiter;
mod originate;
mod register;
mod shared;

pub(crate) use register::now_unix;
pub(crate) use shared::Shared;
mod tcp;
