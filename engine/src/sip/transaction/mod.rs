//! RFC 3261 §17 transactions (with RFC 6026's Accepted state), sans-IO.
//!
//! Each transaction is a deterministic state machine in the style of
//! `quinn-proto`: the owner feeds it messages (`on_response` /
//! `on_request`), TU decisions (`respond`, `ack_received`) and the current
//! time (`handle_timeout(now)`), then drains what it wants done:
//! `poll_transmit()` (wire bytes for the transaction's peer), `poll_event()`
//! (news for the TU) and `poll_timeout()` (when to call `handle_timeout`
//! next). Nothing here reads a clock, opens a socket or spawns a task.
//!
//! Drain `poll_transmit` and `poll_event` after every input, even once
//! `is_terminated()` is true: the last input may have queued an ACK or a
//! timeout event on its way out.
//!
//! # Layout
//! - [`key`]: the branch + method key that matches messages to transactions.
//! - [`timers`]: T1/T2/T4, the timer enum and reliability.
//! - [`client_invite`], [`client_non_invite`], [`server_invite`],
//!   [`server_non_invite`]: the four state machines.
//! - [`build`]: ACK (non-2xx), CANCEL and response construction.
//! - `core` (internal): the queues, timers, retransmission and Terminated
//!   handling the four state machines share.

pub mod build;
pub mod client_invite;
pub mod client_non_invite;
mod core;
pub mod key;
pub mod server_invite;
pub mod server_non_invite;
pub mod timers;

pub use build::{build_ack_for_non_2xx, build_cancel, build_response};
pub use client_invite::{ClientEvent, ClientInviteState, ClientInviteTsx};
pub use client_non_invite::{ClientNonInviteState, ClientNonInviteTsx};
pub use key::TsxKey;
pub use server_invite::{ServerEvent, ServerInviteState, ServerInviteTsx};
pub use server_non_invite::{ServerNonInviteState, ServerNonInviteTsx};
pub use timers::{Reliability, TimerConfig, TsxTimer};

/// Errors of the transaction layer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TsxError {
    /// A header the operation needs is absent (the header's name).
    #[error("missing {0} header")]
    MissingHeader(&'static str),
    /// A header is present but cannot be parsed (the header's name).
    #[error("malformed {0} header")]
    InvalidHeader(&'static str),
    /// The top Via has no `branch` parameter (RFC 2543 peers are not
    /// supported).
    #[error("top Via has no branch parameter")]
    MissingBranch,
    /// The TU asked for something the current state does not allow, such
    /// as a second final response.
    #[error("not allowed in the transaction's current state")]
    InvalidState,
    /// A response status outside 100–699.
    #[error("status {0} is not a valid SIP response status")]
    InvalidStatus(u16),
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Fixtures shared by the transaction and dialog tests.

    use std::time::{Duration, Instant};

    use rsipstack::sip::{Request, Response, SipMessage};

    /// A fake clock: a fixed base plus offsets.
    pub(crate) struct Clock(pub(crate) Instant);

    impl Clock {
        pub(crate) fn new() -> Self {
            Clock(Instant::now())
        }
        /// The instant `ms` milliseconds after the base.
        pub(crate) fn ms(&self, ms: u64) -> Instant {
            self.0 + Duration::from_millis(ms)
        }
    }

    pub(crate) const INVITE: &str = concat!(
        "INVITE sip:+15550000002@carrier.example.com SIP/2.0\r\n",
        "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKclient1;rport\r\n",
        "Max-Forwards: 70\r\n",
        "Route: <sip:edge.example.com;lr>\r\n",
        "From: \"Masked\" <sip:+15550000001@127.0.0.1>;tag=ltag1\r\n",
        "To: <sip:+15550000002@carrier.example.com>\r\n",
        "Call-ID: cid-1@127.0.0.1\r\n",
        "CSeq: 7 INVITE\r\n",
        "Contact: <sip:maskline@127.0.0.1:5060>\r\n",
        "Content-Type: application/sdp\r\n",
        "Content-Length: 4\r\n",
        "\r\n",
        "v=0\n",
    );

    pub(crate) const OPTIONS: &str = concat!(
        "OPTIONS sip:carrier.example.com SIP/2.0\r\n",
        "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKopt1;rport\r\n",
        "Max-Forwards: 70\r\n",
        "From: <sip:maskline@127.0.0.1>;tag=otag\r\n",
        "To: <sip:carrier.example.com>\r\n",
        "Call-ID: cid-opt@127.0.0.1\r\n",
        "CSeq: 1 OPTIONS\r\n",
        "Content-Length: 0\r\n",
        "\r\n",
    );

    pub(crate) fn request(text: &str) -> Request {
        match Request::try_from(text) {
            Ok(r) => r,
            Err(e) => panic!("fixture does not parse: {e}"),
        }
    }

    pub(crate) fn invite() -> Request {
        request(INVITE)
    }

    pub(crate) fn options() -> Request {
        request(OPTIONS)
    }

    /// A response to `req` with `code`, with To tag `rtag1` unless 100.
    pub(crate) fn response(req: &Request, code: u16) -> Response {
        let tag = (code != 100).then_some("rtag1");
        super::build_response(req, code.into(), tag)
    }

    pub(crate) fn parse(bytes: &[u8]) -> SipMessage {
        match SipMessage::try_from(bytes::Bytes::copy_from_slice(bytes)) {
            Ok(m) => m,
            Err(e) => panic!("transmit does not parse: {e}"),
        }
    }

    pub(crate) fn text(bytes: &[u8]) -> String {
        String::from_utf8_lossy(bytes).into_owned()
    }
}
