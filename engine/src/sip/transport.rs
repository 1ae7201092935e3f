//! Where a SIP message goes: transport plus address.

use std::fmt;
use std::net::SocketAddr;

use super::transaction::Reliability;

/// A SIP transport.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// UDP (RFC 3261 §18.1, unreliable: transactions retransmit).
    #[default]
    Udp,
    /// TCP (stream framed by Content-Length; reliable).
    Tcp,
}

impl Transport {
    /// The name in a Via header (`UDP`, `TCP`).
    pub fn via_name(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        }
    }

    /// Transaction reliability over this transport.
    pub fn reliability(self) -> Reliability {
        match self {
            Transport::Udp => Reliability::Unreliable,
            Transport::Tcp => Reliability::Reliable,
        }
    }
}

impl From<sip_config::TrunkTransport> for Transport {
    fn from(t: sip_config::TrunkTransport) -> Self {
        match t {
            sip_config::TrunkTransport::Udp => Transport::Udp,
            sip_config::TrunkTransport::Tcp => Transport::Tcp,
        }
    }
}

/// A peer: transport and address. Over TCP the address names the
/// connection (an accepted one, or one to open).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Endpoint {
    /// Transport.
    pub transport: Transport,
    /// Remote address.
    pub addr: SocketAddr,
}

impl Endpoint {
    /// A UDP endpoint.
    pub fn udp(addr: SocketAddr) -> Self {
        Endpoint {
            transport: Transport::Udp,
            addr,
        }
    }

    /// A TCP endpoint.
    pub fn tcp(addr: SocketAddr) -> Self {
        Endpoint {
            transport: Transport::Tcp,
            addr,
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}",
            self.transport.via_name().to_ascii_lowercase(),
            self.addr
        )
    }
}

/// Where the response to `req`, received from `src`, goes: back over the
/// same TCP connection, or over UDP per RFC 3261 §18.2.2 / RFC 3581.
pub fn response_endpoint(req: &rsipstack::sip::Request, src: Endpoint) -> Endpoint {
    match src.transport {
        Transport::Tcp => src,
        Transport::Udp => Endpoint::udp(super::message::response_destination(req, src.addr)),
    }
}
