//! State shared by the receive loop, the call actors and the command loop.

use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use crate::b2bua::outbound::LocalIdentity;
use crate::b2bua::Leg;
use crate::handle::{CommandError, CommandReply, EngineEvent, HangupBy};
use crate::media::ports::PortAllocator;
use crate::routing::RouteTable;
use crate::sip::transaction::TimerConfig;
use crate::sip::transport::{Endpoint, Transport};

/// Input of a call actor.
pub(crate) enum ActorInput {
    /// A SIP message for one of the call's legs.
    Sip(Leg, Box<rsipstack::sip::SipMessage>, Endpoint),
    /// `answer` command (reply when the caller's ACK arrives).
    Answer {
        reply: oneshot::Sender<Result<CommandReply, CommandError>>,
    },
    /// Pause (true) or resume (false) the call's recording.
    Recording {
        pause: bool,
        reply: oneshot::Sender<Result<CommandReply, CommandError>>,
    },
    /// `disconnect` command.
    Disconnect {
        reply: oneshot::Sender<Result<CommandReply, CommandError>>,
    },
    /// End the call.
    Hangup {
        cause: String,
        by: HangupBy,
        reply: oneshot::Sender<Result<CommandReply, CommandError>>,
    },
}

/// Mailbox depth of a call actor; a full mailbox drops the datagram (the
/// peer retransmits).
pub(crate) const MAILBOX: usize = 64;

/// Static settings derived from the config.
pub(crate) struct Settings {
    pub local: LocalIdentity,
    pub timers: TimerConfig,
    pub ring_timeout: Duration,
    /// Where call recordings are written (`<dir>/<call_id>.wav`).
    pub recording_dir: std::path::PathBuf,
    /// A bridged call whose leg sends no RTP this long is hung up.
    pub media_timeout: Duration,
    /// How long a call in control mode waits for a command.
    pub control_timeout: Duration,
    /// Softphone users: username (E.164) → password.
    pub users: std::collections::HashMap<String, String>,
    /// Digest algorithms offered in challenges.
    pub digest_algorithms: Vec<sip_config::DigestAlgorithm>,
}

/// A live call as seen from outside its actor.
#[derive(Clone)]
pub(crate) struct CallRef {
    pub engine_id: String,
    pub mailbox: mpsc::Sender<ActorInput>,
}

pub(crate) struct Shared {
    pub socket: Arc<UdpSocket>,
    pub settings: Settings,
    pub routes: RouteTable,
    pub trunks: crate::trunks::Trunks,
    pub ports: PortAllocator,
    /// SIP Call-ID → (leg, call).
    pub by_sip_call_id: DashMap<String, (Leg, CallRef)>,
    /// Session id → its live call (at most one per session).
    pub by_session: DashMap<String, CallRef>,
    /// Engine call id → call.
    pub by_engine_id: DashMap<String, CallRef>,
    pub events: mpsc::UnboundedSender<EngineEvent>,
    /// TCP connections by remote address.
    pub tcp: super::tcp::Connections,
    /// Location service of registered softphones.
    pub registrar: Arc<std::sync::Mutex<crate::sip::registrar::Registrar>>,
    /// Registration changes, for the control plane to store.
    pub registrations: mpsc::UnboundedSender<crate::handle::RegistrationEvent>,
    /// Counters for `/metrics`.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Draining: new calls are refused with 503.
    pub draining: std::sync::atomic::AtomicBool,
    /// Per-source request budget for non-trunk sources.
    pub limiter: super::limiter::SourceLimiter,
    /// Out-of-dialog requests waiting for their response, by Call-ID.
    pub pending: DashMap<String, tokio::sync::oneshot::Sender<rsipstack::sip::SipMessage>>,
    /// Mints and checks digest nonces.
    pub nonce: crate::sip::auth::NonceSecret,
}

impl Shared {
    /// Send one SIP message. Over TCP it goes on the connection to that
    /// address, opened if needed. Errors are logged, not returned: SIP
    /// recovers by retransmission or transaction timeout.
    pub async fn send(&self, dest: Endpoint, bytes: &[u8]) {
        match dest.transport {
            Transport::Udp => {
                if let Err(e) = self.socket.send_to(bytes, dest.addr).await {
                    tracing::debug!(%dest, error = %e, "SIP send failed");
                }
            }
            Transport::Tcp => self
                .tcp
                .send(dest.addr, bytes::Bytes::copy_from_slice(bytes)),
        }
    }

    /// Answer `req` statelessly with a final `status` (and a Q.850 `Reason`
    /// when `cause` names one). A retransmitted request is simply answered
    /// again; the ACK to it matches nothing and is dropped.
    pub async fn refuse(
        &self,
        req: &rsipstack::sip::Request,
        src: Endpoint,
        status: u16,
        cause: Option<&str>,
    ) {
        let mut extra = Vec::new();
        if let Some(c) = cause.and_then(crate::sip::q850::by_name) {
            extra.push(("Reason", crate::sip::q850::reason_header(c)));
        }
        let resp = crate::sip::message::response(
            req,
            status,
            Some(&crate::sip::ids::new_tag()),
            &extra,
            None,
        );
        self.send(
            crate::sip::transport::response_endpoint(req, src),
            &resp.to_bytes(),
        )
        .await;
    }
}
