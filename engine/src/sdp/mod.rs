//! SDP parse and rewrite, so that both legs of a call send media to
//! Maskline's relay and nothing in the SDP identifies the other party.
//!
//! - [`remote_media`] reads where a peer wants to receive audio
//!   ([`MediaTarget`]).
//! - [`offer`] builds Maskline's own offer (a leg it dials first).
//! - [`rewrite`] turns a peer's SDP into the one Maskline sends on the other
//!   leg ([`RewriteParams`]).
//!
//! Parsing uses `rtc-sdp` behind a tolerant front end (documented in
//! `sdp/parse.rs`): real SIP peers send SDP that a strict RFC 8866 parser rejects
//! (no `t=`, lines out of order, LF-only line ends, `u=` that is not a URL,
//! unknown line types), and the parser never panics on network input.

mod codecs;
mod error;
mod offer;
mod parse;
mod rewrite;
mod target;

#[cfg(test)]
mod fixtures;

use std::net::{IpAddr, SocketAddr};

pub use codecs::{add_payloads, audio_payloads, keep_payloads};
pub use error::SdpError;
pub use offer::offer;
pub use parse::MAX_SDP_LEN;
pub use rewrite::rewrite;
pub use target::remote_media;

/// Where a peer wants to receive media, read from its SDP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaTarget {
    /// RTP address: the audio m-line's port at its `c=` address (media-level
    /// `c=` wins over session-level). Port 0 means the stream is disabled;
    /// `0.0.0.0`/`::` means the peer is on hold (does not want media).
    pub rtp: SocketAddr,
    /// RTCP address: `a=rtcp:<port> [IN IP4|IP6 <addr>]` when present, else
    /// the RTP port + 1 (port 0 when the stream is disabled). When
    /// [`rtcp_mux`](Self::rtcp_mux) is negotiated, RTCP goes to `rtp` instead.
    pub rtcp: SocketAddr,
    /// The peer offered or accepted RTP/RTCP multiplexing (`a=rtcp-mux`).
    pub rtcp_mux: bool,
    /// The peer's direction, from its own point of view: media-level
    /// attribute, else session-level, else `sendrecv`. A port of 0 gives
    /// [`Direction::Inactive`]; an unspecified address (`c=0.0.0.0`, the
    /// RFC 2543 hold) removes "receive" (`sendrecv` → `sendonly`,
    /// `recvonly` → `inactive`).
    pub direction: Direction,
    /// RTP payload types of the m-line, in the peer's order of preference
    /// (tokens that are not 0–127 are skipped).
    pub payload_types: Vec<u8>,
}

/// Media direction attribute (RFC 3264 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// `a=sendrecv` (the default).
    SendRecv,
    /// `a=sendonly`: the party sends but does not receive (puts on hold).
    SendOnly,
    /// `a=recvonly`: the party receives but does not send.
    RecvOnly,
    /// `a=inactive`: no media either way.
    Inactive,
}

impl Direction {
    /// The attribute name, e.g. `sendonly`.
    pub fn as_attribute(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// Parse an attribute name (`sendrecv`, `sendonly`, `recvonly`,
    /// `inactive`); `None` for any other attribute.
    pub fn from_attribute(name: &str) -> Option<Direction> {
        match name {
            "sendrecv" => Some(Direction::SendRecv),
            "sendonly" => Some(Direction::SendOnly),
            "recvonly" => Some(Direction::RecvOnly),
            "inactive" => Some(Direction::Inactive),
            _ => None,
        }
    }

    /// The same direction without the "receive" half.
    pub fn without_recv(self) -> Direction {
        match self {
            Direction::SendRecv | Direction::SendOnly => Direction::SendOnly,
            Direction::RecvOnly | Direction::Inactive => Direction::Inactive,
        }
    }
}

/// What [`rewrite`] puts in the SDP Maskline sends on the other leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RewriteParams {
    /// Maskline's media address for that leg (in `o=` and every `c=`).
    pub local_ip: IpAddr,
    /// Maskline's RTP port for that leg (RTCP is `rtp_port + 1`).
    pub rtp_port: u16,
    /// `o=` session id; keep it for the life of the dialog.
    pub session_id: u64,
    /// `o=` session version; increase it whenever the SDP changes.
    pub session_version: u64,
}
