//! End-to-end tests: the real `maskline` binary on loopback ports, driven by
//! SIPp, the raw SIP peer of `maskline_e2e::sip` and HTTP.
//!
//! Build the binary first (`cargo build -p maskline`) or point
//! `MASKLINE_BIN` at one. Every test starts its own instance on its own
//! block of ports, so they run in parallel. When one fails, its output
//! shows the tail of that instance's log (and SIPp's traces where used).

mod calls;
mod cluster;
mod commands;
mod flood;
mod flows;
mod harness;
mod media;
mod originate;
mod readiness;
mod rejects;
mod restart;
mod robustness;
mod schema;
mod sessions;
mod softphones;
mod transcoding;
mod trunks;
mod webhook_crash;
mod webhooks;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use maskline_e2e::sip::{header_uri, uri_user};
use maskline_e2e::{BridgedCall, SipMessage};

/// Overall bound of one test.
pub const TEST_LIMIT: Duration = Duration::from_secs(30);
/// Overall bound of the TTL test: a one-minute TTL plus margin.
pub const TTL_TEST_LIMIT: Duration = Duration::from_secs(100);

/// 127.0.0.1.
pub const LOOPBACK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

/// A number without its `+`.
pub fn digits(number: &str) -> &str {
    number.trim_start_matches('+')
}

/// The user of the URI in header `name` of `msg`, without `+`.
pub fn header_user<'a>(msg: &'a SipMessage, name: &str) -> Option<&'a str> {
    msg.header(name)
        .map(header_uri)
        .and_then(uri_user)
        .map(digits)
}

/// The checks every outbound leg must pass: `invite` is what the callee got
/// for a call from `caller` (whose INVITE is `call.invite`) to `callee` via
/// `masked`.
pub fn assert_masked_outbound_leg(call: &BridgedCall, masked: &str, caller: &str, callee: &str) {
    let inv = &call.callee_invite;
    let text = inv.raw_text();
    assert_eq!(
        inv.request_uri().and_then(uri_user).map(digits),
        Some(digits(callee)),
        "the outbound INVITE must dial the other party:\n{text}"
    );
    assert_eq!(
        header_user(inv, "from"),
        Some(digits(masked)),
        "From must show the masked number:\n{text}"
    );
    assert_eq!(
        header_user(inv, "p-asserted-identity"),
        Some(digits(masked)),
        "P-Asserted-Identity must show the masked number:\n{text}"
    );
    assert_ne!(
        inv.call_id(),
        Some(call.invite.call_id.as_str()),
        "Call-ID must be new"
    );
    assert_ne!(
        inv.from_tag(),
        Some(call.invite.tag.as_str()),
        "From tag must be new"
    );
    assert!(
        maskline_e2e::find_bytes(&inv.raw, call.invite.call_id.as_bytes()).is_none(),
        "the caller's Call-ID leaks to the callee:\n{text}"
    );
    assert!(
        maskline_e2e::find_bytes(&inv.raw, call.invite.tag.as_bytes()).is_none(),
        "the caller's tag leaks to the callee:\n{text}"
    );
    assert!(
        inv.body_text().lines().any(|l| l.starts_with("o=")),
        "the outbound SDP has an o= line:\n{text}"
    );
    maskline_e2e::assert_absent(&inv.raw, caller, "the outbound INVITE");
}

/// Maskline's SDP on both legs must point at its own relay, inside its RTP
/// range, not at the parties' sockets.
pub fn assert_media_anchored(call: &BridgedCall, rtp_range: (u16, u16)) {
    let (to_caller, to_callee) = match call.relay_addrs() {
        Ok(pair) => pair,
        Err(e) => panic!("{e}"),
    };
    let in_range = |a: SocketAddr| (rtp_range.0..=rtp_range.1).contains(&a.port());
    assert!(
        in_range(to_caller) && to_caller != call.callee_rtp.local_addr(),
        "the caller must be given a relay port in {rtp_range:?}, got {to_caller}"
    );
    assert!(
        in_range(to_callee) && to_callee != call.caller_rtp.local_addr(),
        "the callee must be given a relay port in {rtp_range:?}, got {to_callee}"
    );
}
