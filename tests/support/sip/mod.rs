//! An independent SIP peer over raw UDP, written from scratch for the tests
//! (it shares no code with the engine, so a bug there cannot hide here).
//!
//! - `message`: parse just enough of a datagram (start line, headers by
//!   name, case-insensitive and compact forms, body) and header helpers
//! - `sdp`: the offers/answers the peer sends and the media address in SDP
//! - `dialog`: dialog state and in-dialog request building (ACK, BYE)
//! - `peer`: the UDP socket, waiting on messages, UAC and UAS behaviour

mod dialog;
mod message;
mod peer;
mod sdp;

pub use dialog::Dialog;
pub use message::{header_tag, header_uri, uri_host_port, uri_user, SipMessage, StartLine};
pub use peer::{InviteSpec, OutgoingInvite, SipPeer, WAIT};
pub use sdp::{media_addr, sdp_body};
