//! Support library of Maskline's end-to-end suite.
//!
//! Every test starts the real `maskline` binary on its own loopback ports
//! ([`Maskline::start`]) and drives it from the outside only: HTTP through
//! [`Api`], SIP through an independent raw-socket peer ([`SipPeer`], written
//! here from scratch, sharing no code with the engine) or through SIPp
//! ([`Sipp`]), and RTP through [`RtpEndpoint`]; softphone calls with real
//! baresip instances ([`Baresip`]) carrying test tones ([`audio`]).
//!
//! # Layout
//! - `error`: [`E2eError`], the one error type of the harness
//! - `ports`: a block of free loopback ports per test ([`PortBlock`])
//! - `config`: the TOML config a test instance runs with ([`StartOptions`])
//! - `server`: the `maskline` child process ([`Maskline`])
//! - `api`: the REST client with the `X-API-Key` header ([`Api`])
//! - `sip`: the raw SIP peer: message parsing, dialogs, the UDP peer
//! - `rtp`: an RTP endpoint that sends and checks recognisable payloads
//! - `sipp`: running the SIPp scenarios of `tests/sipp/`
//! - `baresip`: a headless baresip softphone driven through `ctrl_tcp`
//! - `audio`: test tones as WAV files and Goertzel checks of recordings
//! - `flows`: call set-ups shared by several tests ([`bridge_call`])
//! - `media`: μ-law tones, RTP and RFC 4733 packets, stereo WAV reading
//!   for the relay and recording tests
//! - `sse`: a Server-Sent Events client for `/v1/events` ([`SseStream`])
//! - `webhook_receiver`: `tests/webhooks/receiver.py`, a receiver that
//!   checks signatures with PyPI's `standardwebhooks` ([`WebhookReceiver`])
//! - `digest`: independent check of Digest credentials ([`digest::expected_response`])
//! - `pg`: a fresh PostgreSQL database per instance when
//!   `MASKLINE_TEST_PG_URL` is set ([`pg::PgDatabase`])
//! - `wait`: bounded polling of a condition ([`wait_for`]) and the overall
//!   bound of a test ([`bounded`])

mod api;
pub mod audio;
pub mod baresip;
mod config;
pub mod digest;
mod error;
mod flows;
pub mod media;
pub mod pg;
mod ports;
mod rtp;
mod server;
pub mod sip;
mod sipp;
mod sse;
mod wait;
mod webhook_receiver;

pub use api::{Api, Session};
pub use baresip::{Account, Baresip, BaresipEvent, BaresipOptions, SipTransport, SoftphonePorts};
pub use config::{StartOptions, TrunkSpec, API_KEY, PARTY_A, PARTY_B, POOL, STRANGER};
pub use error::{E2eError, Result};
pub use flows::{bridge_call, dial, BridgedCall, CallEnds};
pub use ports::{PortBlock, SippPorts};
pub use rtp::{RtpEndpoint, PAYLOAD_LEN};
pub use server::Maskline;
pub use sip::{Dialog, InviteSpec, OutgoingInvite, SipMessage, SipPeer, WAIT};
pub use sipp::{Sipp, SippOptions, SippOutcome};
pub use sse::{SseMessage, SseStream};
pub use wait::{bounded, wait_for};
pub use webhook_receiver::WebhookReceiver;

/// Every form in which `number` (E.164, with `+`) could leak in a message:
/// itself and its digits without `+`.
pub fn number_forms(number: &str) -> Vec<String> {
    let digits = number.trim_start_matches('+').to_string();
    vec![number.to_string(), digits]
}

/// Where `needle` first occurs in `haystack`, if anywhere.
pub fn find_bytes(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || needle.len() > haystack.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The lines of `text` around byte offset `at`, to show where a leak is.
pub fn context_at(text: &[u8], at: usize) -> String {
    let start = text
        .get(..at)
        .and_then(|b| b.iter().rposition(|c| *c == b'\n'))
        .map_or(0, |p| p + 1);
    let end = text
        .get(at..)
        .and_then(|b| b.iter().position(|c| *c == b'\n'))
        .map_or(text.len(), |p| at + p);
    String::from_utf8_lossy(text.get(start..end).unwrap_or_default()).into_owned()
}

/// Asserts that no form of `number` occurs in `bytes`; `what` names the
/// bytes in the failure message.
pub fn assert_absent(bytes: &[u8], number: &str, what: &str) {
    for form in number_forms(number) {
        if let Some(at) = find_bytes(bytes, form.as_bytes()) {
            panic!(
                "{what} leaks `{form}` in line `{}`\n--- all bytes ---\n{}",
                context_at(bytes, at),
                String::from_utf8_lossy(bytes)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_number_forms() {
        assert_eq!(number_forms("+15550001"), vec!["+15550001", "15550001"]);
        assert_eq!(find_bytes(b"From: <sip:15550001@x>", b"15550001"), Some(11));
        assert_eq!(find_bytes(b"abc", b""), None);
        assert_eq!(find_bytes(b"ab", b"abc"), None);
    }

    #[test]
    fn context_is_the_line_of_the_hit() {
        let text = b"INVITE x\r\nFrom: <sip:+1555@h>\r\nTo: y\r\n";
        let at = find_bytes(text, b"+1555").unwrap_or(0);
        assert_eq!(context_at(text, at).trim_end(), "From: <sip:+1555@h>");
    }

    #[test]
    #[should_panic(expected = "leaks")]
    fn assert_absent_catches_digits_without_plus() {
        assert_absent(b"o=14155550101 1 1 IN IP4 127.0.0.1", "+14155550101", "sdp");
    }
}
