//! The B2BUA: one sans-IO [`Call`] per bridged call owns both legs — the
//! inbound (A) server side and the outbound (B) client side — their
//! transactions, dialogs and SDP, and tells its driver what to send, which
//! media targets to use and which events happened.
//!
//! - [`call`]: the state machine.
//! - [`outbound`]: building what goes to each leg (privacy lives here: the
//!   B-leg request is built from scratch and carries only the masked number).

pub mod call;
pub mod outbound;

pub use call::{Call, CallEvent, CallOutput, CallSetup, FirstLeg, Leg, TrunkCredentials};

#[cfg(test)]
mod tests;
