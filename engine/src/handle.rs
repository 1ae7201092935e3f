//! The engine's whole public surface: [`EngineHandle`] (commands in) and
//! [`EngineEvent`] (events out).
//!
//! The control plane never touches SIP or RTP directly. It keeps the routing
//! table in sync ([`EngineHandle::upsert_route`], [`EngineHandle::remove_route`]),
//! sends call commands ([`EngineHandle::send`]) and consumes the single event
//! stream returned by [`crate::Engine::start`].

use std::time::SystemTime;

use tokio::sync::{mpsc, oneshot};

use crate::routing::{Route, RouteTable};

/// Who ended a call, as reported in `call.hangup`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HangupBy {
    /// The caller's side (party that placed the inbound call).
    A,
    /// The callee's side.
    B,
    /// A control-API command.
    Api,
    /// The session reached its TTL.
    Ttl,
    /// Maskline itself (timeouts, errors, shutdown).
    System,
}

impl HangupBy {
    /// Lower-case name as used in the API (`a`, `b`, `api`, `ttl`, `system`).
    pub fn as_str(self) -> &'static str {
        match self {
            HangupBy::A => "a",
            HangupBy::B => "b",
            HangupBy::Api => "api",
            HangupBy::Ttl => "ttl",
            HangupBy::System => "system",
        }
    }
}

/// Direction of a call relative to Maskline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// A party dialled the masked number.
    Inbound,
    /// Maskline originated the call (API).
    Outbound,
}

/// Something that happened to a call. Every event carries the engine's call
/// id (`cal_…`) and the session id of the route that admitted it.
#[derive(Debug, Clone, PartialEq)]
pub enum EngineEvent {
    /// A call was admitted and its outbound leg is being set up.
    CallInitiated {
        /// Engine call id (`cal_…`).
        call_id: String,
        /// Session whose route admitted the call.
        session_id: String,
        /// Inbound or outbound.
        direction: Direction,
        /// Real number of the calling party (E.164).
        caller: String,
        /// Real number of the called party (E.164).
        callee: String,
        /// When the call was admitted.
        at: SystemTime,
    },
    /// The far leg answered 180/183.
    CallRinging {
        /// Engine call id.
        call_id: String,
        /// Session id.
        session_id: String,
        /// When the first provisional response arrived.
        at: SystemTime,
    },
    /// The far leg answered 200 OK.
    CallAnswered {
        /// Engine call id.
        call_id: String,
        /// Session id.
        session_id: String,
        /// When the 200 OK arrived.
        at: SystemTime,
    },
    /// Both legs are confirmed (ACKed) and media is relayed.
    CallBridged {
        /// Engine call id.
        call_id: String,
        /// Session id.
        session_id: String,
        /// When the bridge was complete.
        at: SystemTime,
    },
    /// The call is over; its media ports are released.
    CallHangup {
        /// Engine call id.
        call_id: String,
        /// Session id.
        session_id: String,
        /// Q.850 cause name, e.g. `NORMAL_CLEARING`, `USER_BUSY`.
        cause: String,
        /// Final SIP status relevant to the hangup (failure response of the
        /// far leg, or 200 for a normal clear after answer), if any.
        sip_status: Option<u16>,
        /// Who ended it.
        hangup_by: HangupBy,
        /// Whether the call was ever answered.
        answered: bool,
        /// When the call ended.
        at: SystemTime,
        /// Media counters of the call.
        media: MediaStats,
    },
    /// A recorded call's WAV file is complete (after `CallHangup`).
    RecordingReady {
        /// Engine call id.
        call_id: String,
        /// Session id.
        session_id: String,
        /// The WAV file (`<recording.dir>/<call_id>.wav`).
        path: std::path::PathBuf,
        /// Length of the file.
        duration_ms: u64,
        /// Packets that did not make it into the file (queue full, late,
        /// undecodable).
        dropped_packets: u64,
        /// When the file was finalised.
        at: SystemTime,
    },
}

impl EngineEvent {
    /// The engine call id the event is about.
    pub fn call_id(&self) -> &str {
        match self {
            EngineEvent::CallInitiated { call_id, .. }
            | EngineEvent::CallRinging { call_id, .. }
            | EngineEvent::CallAnswered { call_id, .. }
            | EngineEvent::CallBridged { call_id, .. }
            | EngineEvent::CallHangup { call_id, .. }
            | EngineEvent::RecordingReady { call_id, .. } => call_id,
        }
    }

    /// The session id the event is about.
    pub fn session_id(&self) -> &str {
        match self {
            EngineEvent::CallInitiated { session_id, .. }
            | EngineEvent::CallRinging { session_id, .. }
            | EngineEvent::CallAnswered { session_id, .. }
            | EngineEvent::CallBridged { session_id, .. }
            | EngineEvent::CallHangup { session_id, .. }
            | EngineEvent::RecordingReady { session_id, .. } => session_id,
        }
    }
}

/// A softphone user's bindings changed (REGISTER, un-REGISTER, expiry).
/// The control plane stores them and gives them back at start with
/// [`EngineHandle::restore_registrations`], so a restart keeps them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationEvent {
    /// The user (E.164).
    pub username: String,
    /// Its live bindings after the change (empty: unregistered).
    pub bindings: Vec<crate::sip::registrar::Binding>,
}

/// Packet counters of one call's relay, per direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct MediaStats {
    /// RTP packets relayed from the A leg to the B leg.
    pub a_to_b_packets: u64,
    /// RTP packets relayed from the B leg to the A leg.
    pub b_to_a_packets: u64,
    /// Packets dropped (wrong source after latching, not RTP, send errors).
    pub dropped_packets: u64,
    /// What Maskline received from the caller's leg: packets, loss, jitter,
    /// and what the caller reported over RTCP.
    pub a: crate::media::stats::QualityStats,
    /// The same for the callee's leg.
    pub b: crate::media::stats::QualityStats,
}

/// A command for the engine. Results come back on a oneshot channel.
#[derive(Debug)]
#[non_exhaustive]
pub enum Command {
    /// Hang up every live call of a session (TTL expiry, session complete).
    HangupSession {
        /// Session whose calls end.
        session_id: String,
        /// Q.850 cause name sent in the `Reason` header.
        cause: String,
        /// Recorded as `hangup_by` on the call.
        by: HangupBy,
    },
    /// Hang up one call: BYE on answered legs, a final response with the
    /// cause's SIP status (RFC 3398) and `Reason` to an unanswered caller,
    /// CANCEL to an unanswered callee. Replies as soon as it is dispatched.
    Hangup {
        /// Engine call id.
        call_id: String,
        /// Q.850 cause name.
        cause: String,
        /// Recorded as `hangup_by`.
        by: HangupBy,
    },
    /// Answer an inbound call held in control mode: Maskline answers the
    /// caller itself (200 OK with the relay's SDP). Replies when the caller's
    /// ACK arrives; on an already answered call it replies at once.
    Answer {
        /// Engine call id.
        call_id: String,
    },
    /// Stop taking new calls (new INVITEs get 503 with `Retry-After`) and
    /// report how many calls are still live. Sent again, it just reports.
    Drain,
    /// Hang up every live call (end of a drain).
    HangupAll {
        /// Q.850 cause name.
        cause: String,
        /// Recorded as `hangup_by`.
        by: HangupBy,
    },
    /// Stop writing a call's recording: silence from now until
    /// [`Command::ResumeRecording`] (keeps card numbers out of it).
    PauseRecording {
        /// Engine call id.
        call_id: String,
    },
    /// Record again after [`Command::PauseRecording`].
    ResumeRecording {
        /// Engine call id.
        call_id: String,
    },
    /// Release control: a call held in control mode (ringing, or answered
    /// by [`Command::Answer`]) goes to the default routing and is bridged
    /// to the other party; a call already bridging or bridged is hung up
    /// with `NORMAL_CLEARING`. Replies as soon as it is dispatched.
    Disconnect {
        /// Engine call id.
        call_id: String,
    },
    /// Originate a call for a session: ring `first` with the masked number
    /// as caller ID; when it answers, ring `second` and bridge them. Replies
    /// once the first INVITE is under way; progress arrives as events
    /// (`CallInitiated` with direction outbound, ringing, answered when the
    /// first party picks up, bridged, hangup).
    Originate(OriginateRequest),
}

/// What [`Command::Originate`] needs: the session's route, in the order the
/// parties are dialled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginateRequest {
    /// Call id to use (chosen by the caller, `cal_…`), so the call can be
    /// recorded before the engine starts it.
    pub call_id: String,
    /// Session the call belongs to.
    pub session_id: String,
    /// The masked number shown to both parties.
    pub masked: String,
    /// Real number dialled first.
    pub first: String,
    /// Real number dialled once the first party answers.
    pub second: String,
    /// Record the call once bridged.
    pub record: bool,
}

/// Result of a [`Command`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CommandReply {
    /// The command was carried out; the number says how many calls it touched.
    Done(usize),
}

/// Why a command could not be carried out.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CommandError {
    /// No live call with that id.
    #[error("no live call {0}")]
    UnknownCall(String),
    /// The engine is shutting down or gone.
    #[error("engine stopped")]
    Stopped,
    /// The session already has a live call (one call per session).
    #[error("session {0} already has a live call")]
    SessionBusy(String),
    /// Neither a registered contact nor a trunk reaches the number.
    #[error("no route to the number")]
    NoRoute,
    /// No RTP ports left, or the engine is draining.
    #[error("no capacity for a new call")]
    Congestion,
    /// The command does not apply to the call in its current state (for
    /// example `answer` on a call that is being bridged to the other party).
    #[error("call {call_id} is {state}: the command does not apply")]
    InvalidState {
        /// Engine call id.
        call_id: String,
        /// The call's state (`bridging`, `ended`, …).
        state: String,
    },
}

pub(crate) type CommandEnvelope = (Command, oneshot::Sender<Result<CommandReply, CommandError>>);

/// Why SIP does not take new calls (see [`EngineHandle::sip_ready`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SipNotReady {
    /// The engine is gone: its SIP socket is closed.
    #[error("the SIP engine is not running")]
    Stopped,
    /// SIGTERM drain: new INVITEs get 503 while live calls finish.
    #[error("draining")]
    Draining,
}

/// Cloneable handle to a running engine.
#[derive(Clone)]
pub struct EngineHandle {
    pub(crate) routes: RouteTable,
    pub(crate) commands: mpsc::Sender<CommandEnvelope>,
    pub(crate) registrar: std::sync::Arc<std::sync::Mutex<crate::sip::registrar::Registrar>>,
    pub(crate) metrics: std::sync::Arc<crate::metrics::Metrics>,
    pub(crate) ports: crate::media::ports::PortAllocator,
    pub(crate) live: std::sync::Weak<crate::driver::Shared>,
}

impl EngineHandle {
    /// Insert or replace the route for `route.masked`. Takes effect for the
    /// next INVITE; calls already up are not touched.
    pub fn upsert_route(&self, route: Route) {
        self.routes.upsert(route);
    }

    /// Remove the route for a masked number (E.164). Later INVITEs to it get
    /// 404. Live calls are not touched: send [`Command::HangupSession`].
    pub fn remove_route(&self, masked: &str) {
        self.routes.remove(masked);
    }

    /// Put back softphone bindings loaded from the store (at start).
    pub fn restore_registrations(&self, users: Vec<RegistrationEvent>) {
        if let Ok(mut r) = self.registrar.lock() {
            for u in users {
                r.restore(&u.username, u.bindings);
            }
        }
    }

    /// Counters and gauges for `/metrics`.
    pub fn metrics(&self) -> crate::metrics::MetricsSnapshot {
        let mut m = self.metrics.snapshot();
        m.free_port_pairs = self.ports.available() as u64;
        if let Some(shared) = self.live.upgrade() {
            m.active_calls = shared.by_session.len() as u64;
            m.registered_contacts = shared
                .registrar
                .lock()
                .map(|r| r.all(crate::driver::now_unix()).len() as u64)
                .unwrap_or(0);
        }
        m
    }

    /// Whether SIP takes new calls (for `/readyz`): the engine is running,
    /// so its SIP socket is bound, and it is not draining.
    pub fn sip_ready(&self) -> Result<(), SipNotReady> {
        let shared = self.live.upgrade().ok_or(SipNotReady::Stopped)?;
        shared
            .socket
            .local_addr()
            .map_err(|_| SipNotReady::Stopped)?;
        if shared.draining.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(SipNotReady::Draining);
        }
        Ok(())
    }

    /// The routing table (read access, for diagnostics and tests).
    pub fn routes(&self) -> &RouteTable {
        &self.routes
    }

    /// Send a command and wait for its result.
    pub async fn send(&self, command: Command) -> Result<CommandReply, CommandError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send((command, tx))
            .await
            .map_err(|_| CommandError::Stopped)?;
        rx.await.map_err(|_| CommandError::Stopped)?
    }
}
