//! HTTP Digest authentication for SIP (RFC 3261 §22, RFC 2617, RFC 7616,
//! RFC 8760), both sides, sans-IO: the caller passes header values and the
//! current time.
//!
//! - Server side ([`NonceSecret`]): the registrar or the INVITE handler
//!   sends [`NonceSecret::challenge`] values in `WWW-Authenticate` (401) or
//!   `Proxy-Authenticate` (407) and checks the answer with
//!   [`NonceSecret::verify`]. Nonces are stateless: they carry their own
//!   timestamp and a MAC over it, the realm and the algorithm.
//! - Client side ([`parse_challenge`], [`authorization`]): Maskline
//!   answering a carrier's 401/407 on an outbound leg.
//!
//! # Layout
//! - `params`: the `Digest k=v, k="v"` list parser and quoting.
//! - `credentials`: [`Algorithm`], the response computation, parsed
//!   `Authorization` values.
//! - `challenge`: the server side.
//! - `client`: the client side.

mod challenge;
mod client;
mod credentials;
mod params;

pub use challenge::NonceSecret;
pub use client::{authorization, parse_challenge, pick_challenge, Challenge};
pub use credentials::Algorithm;

/// Why credentials or a challenge were not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No credentials (empty header value): send a challenge.
    #[error("no digest credentials")]
    Missing,
    /// Not a parseable `Digest` value, or a required parameter is missing.
    #[error("malformed digest header")]
    Malformed,
    /// The username is not known to the lookup.
    #[error("unknown user")]
    UnknownUser,
    /// The response does not match, or the nonce was not minted by us.
    #[error("digest response does not match")]
    BadResponse,
    /// The nonce was ours and the response right, but the nonce expired:
    /// challenge again with `stale=true`.
    #[error("stale nonce")]
    StaleNonce,
    /// The algorithm is not one we offer or implement.
    #[error("unsupported digest algorithm")]
    UnsupportedAlgorithm,
    /// A `qop` other than `auth` (e.g. `auth-int`) was asked or used.
    #[error("unsupported digest qop")]
    UnsupportedQop,
    /// The credentials name another realm than ours.
    #[error("realm mismatch")]
    RealmMismatch,
}
