//! The call state machine: both legs of one masked call, sans-IO.
//!
//! Inputs: SIP messages from either leg ([`Call::on_message`]), timer expiry
//! ([`Call::on_timeout`]) and hangup commands ([`Call::hangup`]); time is
//! always passed in. Outputs are polled with [`Call::poll_output`]:
//! datagrams to send, media targets for the relay and call events. The
//! driver owns the sockets and the clock.
//!
//! ```text
//!  A (caller)                 Maskline                      B (callee)
//!  INVITE ───────────────▶  100 Trying                 INVITE (new Call-ID,
//!                           ────────────────────────▶   masked caller ID)
//!  180/183 ◀─────────────────────────────────────────── 180/183
//!  200 (our SDP) ◀────────────────────────────────────── 200   ──▶ ACK
//!  ACK ──────────────────▶  (bridged)
//!  BYE ──────────────────▶  200 ; BYE ─────────────────▶ 200
//! ```

use std::collections::VecDeque;

use crate::sip::transport::{response_endpoint, Endpoint};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rsipstack::sip::prelude::*;
use rsipstack::sip::{Method, Request, Response, SipMessage};

mod b_leg;
mod codecs;
mod control;
mod mid_call;
mod originate;
pub mod session_timer;

pub use self::originate::FirstLeg;

use self::mid_call::{send_all, RelayedInvite, RelayedNonInvite};
use super::outbound::{self, LocalIdentity, OutboundInvite, ALLOW};
use crate::handle::HangupBy;
use crate::sdp::{self, MediaTarget, RewriteParams};
use crate::sip::auth;
use crate::sip::dialog::Dialog;
use crate::sip::ids;
use crate::sip::message;
use crate::sip::q850::{self, Cause};
use crate::sip::transaction::{
    build_cancel, ClientEvent, ClientInviteTsx, ClientNonInviteTsx, ServerEvent, ServerInviteTsx,
    ServerNonInviteTsx, TimerConfig,
};

/// Which leg a message belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum Leg {
    /// The caller's (inbound) leg.
    A,
    /// The callee's (outbound) leg.
    B,
}

/// Everything a new call needs; decided by routing and admission.
#[derive(Debug, Clone)]
pub struct CallSetup {
    /// Our identity on the wire.
    pub local: LocalIdentity,
    /// The masked number (shown to both parties).
    pub masked: String,
    /// Real number of the callee (dialled on the B leg).
    pub callee: String,
    /// Where the B-leg INVITE goes (trunk or registered contact).
    pub b_dest: Endpoint,
    /// Request-URI of the B-leg INVITE when calling a registered contact
    /// (else `sip:<callee>@<b_dest>`).
    pub b_request_uri: Option<String>,
    /// Digest credentials (username, password, expected realm) for when
    /// the trunk challenges the B-leg INVITE with 401/407.
    pub b_credentials: Option<TrunkCredentials>,
    /// Further trunks to try, in order, when the B leg times out or gets
    /// 408/503 before ringing.
    pub b_alternatives: Vec<crate::trunks::TrunkTarget>,
    /// Relay port the A leg sends media to.
    pub a_rtp_port: u16,
    /// Relay port the B leg sends media to.
    pub b_rtp_port: u16,
    /// Transaction timers.
    pub timers: TimerConfig,
    /// Unanswered B leg → NO_ANSWER after this.
    pub ring_timeout: Duration,
    /// Control mode: hold the caller ringing for the control API instead of
    /// dialling B at once; with no command within this time, dial B.
    pub control_timeout: Option<Duration>,
}

/// Credentials Maskline answers a trunk's digest challenge with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrunkCredentials {
    /// Username.
    pub username: String,
    /// Password.
    pub password: String,
    /// Only answer challenges for this realm (any when `None`).
    pub realm: Option<String>,
}

/// Result of the `answer` command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerOutcome {
    /// Already answered and confirmed.
    Done,
    /// 200 OK sent; done when the caller's ACK arrives ([`CallEvent::Answered`]).
    Pending,
    /// Not applicable in this state.
    Invalid(&'static str),
}

/// Something that happened, for the driver to turn into an engine event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallEvent {
    /// First 180/183 from B.
    Ringing,
    /// B answered.
    Answered,
    /// A acknowledged our 200: both legs are up.
    Bridged,
    /// The call ended.
    Hangup {
        /// Q.850 cause.
        cause: Cause,
        /// Final SIP status of the call (200 once answered).
        sip_status: Option<u16>,
        /// Who ended it.
        by: HangupBy,
        /// Whether B ever answered.
        answered: bool,
    },
}

/// An instruction for the driver.
#[derive(Debug, Clone)]
pub enum CallOutput {
    /// Send these bytes over UDP.
    Send {
        /// Destination.
        dest: Endpoint,
        /// Wire bytes.
        bytes: Bytes,
    },
    /// A leg's media target changed.
    Media(Leg, MediaTarget),
    /// A leg's payload types (from its SDP), for the recorder.
    Codecs(Leg, Vec<(u8, crate::media::codec::Codec)>),
    /// The legs share no codec: the relay must transcode per this plan.
    Transcode(crate::media::transcoding::TranscodePlan),
    /// A call event.
    Event(CallEvent),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Originated call: dialling the first party, nobody answered yet.
    Originating,
    /// Control mode: A hears ringing, no B leg yet, waiting for a command.
    Held,
    /// A not answered yet, B leg being set up.
    Calling,
    /// 200 sent to A, waiting for its ACK.
    Answered,
    /// Both legs confirmed.
    Confirmed,
    /// Over (transactions may still be absorbing retransmissions).
    Ended,
}

/// How long an ended call lingers at most to absorb retransmissions.
const LINGER: Duration = Duration::from_secs(32);

struct NonInvite<T> {
    leg: Leg,
    dest: Endpoint,
    tsx: T,
}

/// One masked call.
pub struct Call {
    setup: CallSetup,
    phase: Phase,
    out: VecDeque<CallOutput>,
    // A leg: we are UAS of the caller's INVITE (inbound calls) or UAC of
    // our own INVITE to the first party (originated calls).
    a_tsx: Option<ServerInviteTsx>,
    a_out: Option<originate::OutLeg>,
    a_dest: Endpoint,
    /// Where A's INVITE came from: in-dialog requests to A go there
    /// (symmetric signalling works through NAT and with trunks alike).
    a_src: Endpoint,
    a_tag: String,
    a_dialog: Option<Dialog>,
    a_sdp_id: u64,
    a_sdp_version: u64,
    b_sdp_id: u64,
    b_sdp_version: u64,
    // B leg (we are UAC).
    /// The B leg's INVITE transaction (none while held in control mode).
    b_tsx: Option<ClientInviteTsx>,
    /// B answered.
    b_up: bool,
    /// Payload types the caller offered.
    a_codecs: Vec<(u8, crate::media::codec::Codec)>,
    /// Per leg (A, B): its last SDP was not `sendrecv` (hold).
    on_hold: [bool; 2],
    control_deadline: Option<Instant>,
    b_call_id: String,
    b_dialog: Option<Dialog>,
    b_provisional: bool,
    b_cancel_pending: bool,
    b_invite_cseq: u32,
    b_from_tag: String,
    b_max_forwards: u8,
    b_auth_tried: bool,
    // Bookkeeping.
    ringing: bool,
    answered: bool,
    hangup_sent: bool,
    ring_deadline: Option<Instant>,
    /// RFC 4028 timer asked for by A, and when its refresh is overdue.
    session_timer: Option<session_timer::SessionTimer>,
    session_deadline: Option<Instant>,
    linger_deadline: Option<Instant>,
    last_a_sdp: Option<Vec<u8>>,
    last_b_sdp: Option<Vec<u8>>,
    client_nits: Vec<NonInvite<ClientNonInviteTsx>>,
    server_nits: Vec<NonInvite<ServerNonInviteTsx>>,
    /// Re-INVITEs answered locally (leg, CSeq, response destination).
    reinvites: Vec<(Leg, u32, Endpoint, ServerInviteTsx)>,
    relayed_invites: Vec<RelayedInvite>,
    relayed_nits: Vec<RelayedNonInvite>,
}

/// Why a call could not be created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// The A-leg offer could not be rewritten.
    #[error("bad SDP offer: {0}")]
    Sdp(#[from] sdp::SdpError),
    /// The caller offered no codec Maskline supports (PCMU, PCMA, Opus).
    #[error("no supported codec offered")]
    NoCommonCodec,
    /// The B-leg request could not be built.
    #[error("cannot build the outbound INVITE: {0}")]
    Build(String),
}

impl Call {
    /// Start a call for an admitted A-leg INVITE received from `src`:
    /// answers 100 Trying and sends the B-leg INVITE.
    pub fn new(
        setup: CallSetup,
        invite: Request,
        src: Endpoint,
        now: Instant,
    ) -> Result<Call, CallError> {
        let a_dest = response_endpoint(&invite, src);
        let a_media = sdp::remote_media(&invite.body)?;
        let b_sdp_id: u64 = rand::random::<u32>().into();
        let offer = sdp::rewrite(
            &invite.body,
            &RewriteParams {
                local_ip: setup.local.public_ip,
                rtp_port: setup.b_rtp_port,
                session_id: b_sdp_id,
                session_version: 1,
            },
        )?;
        // Offer only what Maskline can honour (relay, record, transcode).
        let a_codecs = codecs::supported(&crate::media::codec::payload_map(&invite.body));
        if !a_codecs.iter().any(|(_, c)| c.is_audio()) {
            return Err(CallError::NoCommonCodec);
        }
        let offer = codecs::offer_for_b(&offer, &a_codecs);
        let max_forwards = invite
            .header_value("Max-Forwards")
            .and_then(|v| v.parse::<u8>().ok())
            .map(|mf| mf.saturating_sub(1).min(70))
            .unwrap_or(70);
        let session_timer = session_timer::SessionTimer::from_request(&invite);
        let mut a_tsx =
            ServerInviteTsx::new(invite, src.transport.reliability(), setup.timers, now);
        let trying = message::response(a_tsx.request(), 100, None, &[], None);
        let _ = a_tsx.respond(trying, now);
        let control_deadline = setup.control_timeout.map(|t| now + t);
        let mut call = Call::blank(setup, a_dest, src, b_sdp_id);
        call.control_deadline = control_deadline;
        call.a_codecs = a_codecs;
        call.session_timer = session_timer;
        call.a_tsx = Some(a_tsx);
        call.b_max_forwards = max_forwards;
        call.last_b_sdp = Some(offer);
        call.on_hold[Leg::A as usize] = a_media.direction != crate::sdp::Direction::SendRecv;
        call.out.push_back(CallOutput::Media(Leg::A, a_media));
        call.out.push_back(CallOutput::Codecs(
            Leg::A,
            crate::media::codec::payload_map(&call.a_invite_body()),
        ));
        if call.control_deadline.is_some() {
            // Control mode: the caller hears ringback while the platform
            // decides.
            let contact = outbound::contact(&call.setup.local, &call.setup.masked);
            call.respond_a(180, &[("Contact", contact)], None, now);
        } else {
            call.start_b_leg(now)?;
        }
        call.pump(now);
        Ok(call)
    }

    /// A call with no leg started: the common part of [`Call::new`] and
    /// [`Call::originate`].
    fn blank(setup: CallSetup, a_dest: Endpoint, a_src: Endpoint, b_sdp_id: u64) -> Call {
        let b_call_id = ids::new_call_id(&outbound::uri_host(setup.local.public_ip));
        Call {
            ring_deadline: None,
            control_deadline: None,
            b_up: false,
            a_codecs: Vec::new(),
            on_hold: [false; 2],
            session_timer: None,
            session_deadline: None,
            phase: Phase::Held,
            out: VecDeque::new(),
            a_tsx: None,
            a_out: None,
            a_dest,
            a_src,
            a_tag: ids::new_tag(),
            a_dialog: None,
            a_sdp_id: rand::random::<u32>().into(),
            a_sdp_version: 0,
            b_sdp_id,
            b_sdp_version: 1,
            b_tsx: None,
            b_call_id,
            b_dialog: None,
            b_provisional: false,
            b_cancel_pending: false,
            b_invite_cseq: 0,
            b_from_tag: ids::new_tag(),
            b_max_forwards: 70,
            b_auth_tried: false,
            ringing: false,
            answered: false,
            hangup_sent: false,
            linger_deadline: None,
            last_a_sdp: None,
            last_b_sdp: None,
            client_nits: Vec::new(),
            server_nits: Vec::new(),
            reinvites: Vec::new(),
            relayed_invites: Vec::new(),
            relayed_nits: Vec::new(),
            setup,
        }
    }

    /// Whether media is expected both ways: the call is bridged and no leg
    /// is on hold (a held leg may legitimately send nothing).
    pub fn media_expected(&self) -> bool {
        self.phase == Phase::Confirmed && self.b_up && !self.on_hold.iter().any(|h| *h)
    }

    /// Call-ID of the B leg (for the driver's index).
    pub fn b_call_id(&self) -> &str {
        &self.b_call_id
    }

    /// Next output, if any.
    pub fn poll_output(&mut self) -> Option<CallOutput> {
        self.out.pop_front()
    }

    /// Earliest time [`Call::on_timeout`] must be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t = [
            self.session_deadline,
            self.a_tsx.as_ref().and_then(|t| t.poll_timeout()),
            self.a_out.as_ref().and_then(|o| o.tsx.poll_timeout()),
            self.b_tsx.as_ref().and_then(|t| t.poll_timeout()),
            self.control_deadline,
            self.ring_deadline,
            self.linger_deadline,
        ]
        .into_iter()
        .flatten()
        .min();
        for n in &self.client_nits {
            t = min_opt(t, n.tsx.poll_timeout());
        }
        for n in &self.server_nits {
            t = min_opt(t, n.tsx.poll_timeout());
        }
        for (_, _, _, r) in &self.reinvites {
            t = min_opt(t, r.poll_timeout());
        }
        for r in &self.relayed_invites {
            t = min_opt(t, min_opt(r.server.poll_timeout(), r.client.poll_timeout()));
        }
        for r in &self.relayed_nits {
            t = min_opt(t, min_opt(r.server.poll_timeout(), r.client.poll_timeout()));
        }
        t
    }

    /// Whether the call is over and nothing is left to absorb: the driver
    /// can drop it.
    pub fn is_finished(&self) -> bool {
        self.phase == Phase::Ended
            && (self.linger_deadline.is_none()
                || (self.a_tsx.as_ref().is_none_or(|t| t.is_terminated())
                    && self.a_out.as_ref().is_none_or(|o| o.tsx.is_terminated())
                    && self.b_tsx.as_ref().is_none_or(|t| t.is_terminated())
                    && self.client_nits.is_empty()
                    && self.server_nits.is_empty()
                    && self.reinvites.is_empty()
                    && self.relayed_invites.is_empty()
                    && self.relayed_nits.is_empty()))
    }

    /// Whether the call has ended (the hangup event was emitted).
    pub fn is_ended(&self) -> bool {
        self.phase == Phase::Ended
    }

    /// Timers.
    pub fn on_timeout(&mut self, now: Instant) {
        if self.linger_deadline.is_some_and(|d| now >= d) {
            self.linger_deadline = None; // finished regardless of stragglers
            self.client_nits.clear();
            self.server_nits.clear();
            self.reinvites.clear();
            self.relayed_invites.clear();
            self.relayed_nits.clear();
            return;
        }
        if self.session_deadline.is_some_and(|d| now >= d) {
            self.session_deadline = None;
            if matches!(self.phase, Phase::Answered | Phase::Confirmed) {
                tracing::info!("session timer expired without refresh");
                let cause = cause_named("RECOVERY_ON_TIMER_EXPIRE");
                self.bye(Leg::A, Some(cause), now);
                self.bye(Leg::B, Some(cause), now);
                self.ended(cause, Some(200), HangupBy::System, now);
            }
        }
        if self.control_deadline.is_some_and(|d| now >= d) {
            self.control_deadline = None;
            if self.phase == Phase::Held {
                tracing::info!("no control command in time: default routing");
                if self.start_b_leg(now).is_err() {
                    self.hangup(
                        cause_named("NORMAL_TEMPORARY_FAILURE"),
                        HangupBy::System,
                        now,
                    );
                }
            }
        }
        if self.ring_deadline.is_some_and(|d| now >= d) {
            self.ring_deadline = None;
            if self.phase == Phase::Originating {
                self.cancel_a(now);
                self.ended(cause_named("NO_ANSWER"), Some(480), HangupBy::System, now);
            } else if self.b_calling() {
                let cause = cause_named("NO_ANSWER");
                self.b_failed(480, cause, HangupBy::System, now);
                self.cancel_b(now);
            }
        }
        if let Some(t) = &mut self.a_tsx {
            t.handle_timeout(now);
        }
        if let Some(o) = &mut self.a_out {
            o.tsx.handle_timeout(now);
        }
        if let Some(t) = &mut self.b_tsx {
            t.handle_timeout(now);
        }
        for n in &mut self.client_nits {
            n.tsx.handle_timeout(now);
        }
        for n in &mut self.server_nits {
            n.tsx.handle_timeout(now);
        }
        for (_, _, _, r) in &mut self.reinvites {
            r.handle_timeout(now);
        }
        for r in &mut self.relayed_invites {
            r.server.handle_timeout(now);
            r.client.handle_timeout(now);
        }
        for r in &mut self.relayed_nits {
            r.server.handle_timeout(now);
            r.client.handle_timeout(now);
        }
        self.pump(now);
    }

    /// A SIP message from `leg`, received from `src`.
    pub fn on_message(&mut self, leg: Leg, msg: SipMessage, src: Endpoint, now: Instant) {
        match msg {
            SipMessage::Request(req) => self.on_request(leg, req, src, now),
            SipMessage::Response(resp) => self.on_response(leg, resp, now),
        }
        self.pump(now);
    }

    /// End the call with `cause` (command, TTL, shutdown).
    pub fn hangup(&mut self, cause: Cause, by: HangupBy, now: Instant) -> bool {
        let live = match self.phase {
            Phase::Ended => false,
            Phase::Originating => {
                let status = match q850::sip_status_for(cause) {
                    s if s >= 400 => s,
                    _ => 487,
                };
                self.cancel_a(now);
                self.ended(cause, Some(status), by, now);
                true
            }
            Phase::Held | Phase::Calling => {
                let status = match q850::sip_status_for(cause) {
                    s if s >= 400 => s,
                    _ => 480,
                };
                self.fail_a(status, cause, now);
                self.cancel_b(now);
                self.ended(cause, Some(status), by, now);
                true
            }
            Phase::Answered | Phase::Confirmed => {
                self.bye(Leg::A, Some(cause), now);
                self.bye(Leg::B, Some(cause), now);
                self.cancel_b(now);
                self.ended(cause, Some(200), by, now);
                true
            }
        };
        self.pump(now);
        live
    }

    fn on_request(&mut self, leg: Leg, req: Request, src: Endpoint, now: Instant) {
        let branch = message::top_via_branch(&req);
        match (leg, req.method) {
            (Leg::A, Method::Invite | Method::Ack)
                if self.is_a_invite_branch(branch.as_deref()) =>
            {
                if let Some(t) = &mut self.a_tsx {
                    t.on_request(req, now)
                }
            }
            (_, Method::Ack) => self.on_ack(leg, &req, now),
            (Leg::A, Method::Cancel) => self.on_cancel(req, src, now),
            (_, Method::Bye) => self.on_bye(leg, req, src, now),
            (_, Method::Invite) => self.on_reinvite(leg, req, src, now),
            (_, Method::Update | Method::Info) => self.on_mid_call_request(leg, req, src, now),
            (_, Method::Options | Method::Notify) => {
                let status = if self.dialog(leg).is_some() { 200 } else { 481 };
                self.answer_non_invite(leg, req, src, status, now)
            }
            (_, Method::Cancel) => self.answer_non_invite(leg, req, src, 481, now),
            _ => self.answer_non_invite(leg, req, src, 405, now),
        }
    }

    fn dialog(&self, leg: Leg) -> Option<&Dialog> {
        match leg {
            Leg::A => self.a_dialog.as_ref(),
            Leg::B => self.b_dialog.as_ref(),
        }
    }

    fn on_ack(&mut self, leg: Leg, req: &Request, now: Instant) {
        let cseq = message::cseq(req).map(|(n, _)| n);
        if self.ack_relayed(leg, cseq, now) {
            return;
        }
        if let Some(r) = self
            .reinvites
            .iter_mut()
            .find(|(l, c, _, _)| *l == leg && Some(*c) == cseq)
        {
            r.3.ack_received(now);
            return;
        }
        if leg == Leg::A && self.phase == Phase::Answered {
            if let Some(t) = &mut self.a_tsx {
                t.ack_received(now);
            }
            self.phase = Phase::Confirmed;
            let ev = if self.b_up {
                CallEvent::Bridged
            } else {
                // Answered by the API: the answer is complete now.
                CallEvent::Answered
            };
            self.out.push_back(CallOutput::Event(ev));
        }
    }

    fn on_cancel(&mut self, req: Request, src: Endpoint, now: Instant) {
        // A CANCEL matches the INVITE by branch (RFC 3261 §9.2).
        let matches = self.is_a_invite_branch(message::top_via_branch(&req).as_deref());
        if !matches {
            self.answer_non_invite(Leg::A, req, src, 481, now);
            return;
        }
        self.answer_non_invite(Leg::A, req, src, 200, now);
        if matches!(self.phase, Phase::Held | Phase::Calling) {
            let cause = cause_named("ORIGINATOR_CANCEL");
            self.fail_a(487, cause, now);
            self.cancel_b(now);
            self.ended(cause, Some(487), HangupBy::A, now);
        }
    }

    fn on_bye(&mut self, leg: Leg, req: Request, src: Endpoint, now: Instant) {
        let known = match leg {
            Leg::A => self.a_dialog.is_some(),
            Leg::B => self.b_dialog.is_some(),
        };
        if !known || matches!(self.phase, Phase::Held | Phase::Calling) {
            self.answer_non_invite(leg, req, src, 481, now);
            return;
        }
        let cause = req
            .header_value("Reason")
            .and_then(|r| q850::parse_reason(&r))
            .unwrap_or_else(|| cause_named("NORMAL_CLEARING"));
        self.answer_non_invite(leg, req, src, 200, now);
        if self.phase != Phase::Ended {
            let other = other(leg);
            self.bye(other, Some(cause), now);
            self.cancel_b(now);
            let by = if leg == Leg::A {
                HangupBy::A
            } else {
                HangupBy::B
            };
            self.ended(cause, Some(200), by, now);
        }
    }

    fn dialog_mut(&mut self, leg: Leg) -> Option<&mut Dialog> {
        match leg {
            Leg::A => self.a_dialog.as_mut(),
            Leg::B => self.b_dialog.as_mut(),
        }
    }

    fn answer_non_invite(
        &mut self,
        leg: Leg,
        req: Request,
        src: Endpoint,
        status: u16,
        now: Instant,
    ) {
        let dest = response_endpoint(&req, src);
        let mut tsx =
            ServerNonInviteTsx::new(req, src.transport.reliability(), self.setup.timers, now);
        let extra = if status == 405 {
            vec![("Allow", ALLOW.to_string())]
        } else {
            vec![]
        };
        let resp = message::response(tsx.request(), status, None, &extra, None);
        let _ = tsx.respond(resp, now);
        while let Some(bytes) = tsx.poll_transmit() {
            self.out.push_back(CallOutput::Send { dest, bytes });
        }
        self.server_nits.push(NonInvite { leg, dest, tsx });
    }

    fn on_response(&mut self, leg: Leg, resp: Response, now: Instant) {
        let Some((_, method)) = message::cseq(&resp) else {
            return;
        };
        let branch = message::top_via_branch(&resp);
        if leg == Leg::A && method == Method::Invite && self.on_a_out_response(&branch, &resp, now)
        {
            return;
        }
        if leg == Leg::B && method == Method::Invite {
            if let Some(t) = self
                .b_tsx
                .as_mut()
                .filter(|t| Some(t.key().branch.as_str()) == branch.as_deref())
            {
                t.on_response(resp, now);
                return;
            }
        }
        if self.on_relayed_response(leg, branch.as_deref(), &resp, now) {
            return;
        }
        if let Some(n) = self
            .client_nits
            .iter_mut()
            .find(|n| n.leg == leg && Some(n.tsx.key().branch.as_str()) == branch.as_deref())
        {
            n.tsx.on_response(resp, now);
        }
    }

    /// Drain every transaction's transmits and events until quiet.
    fn pump(&mut self, now: Instant) {
        loop {
            if let Some(t) = &mut self.a_tsx {
                send_all(&mut self.out, self.a_dest, || t.poll_transmit());
            }
            if let Some(o) = &mut self.a_out {
                send_all(&mut self.out, self.a_dest, || o.tsx.poll_transmit());
            }
            if let Some(t) = &mut self.b_tsx {
                send_all(&mut self.out, self.setup.b_dest, || t.poll_transmit());
            }
            let mut a_events = Vec::new();
            if let Some(t) = &mut self.a_tsx {
                while let Some(ev) = t.poll_event() {
                    a_events.push(ev);
                }
            }
            let mut a_out_events = Vec::new();
            if let Some(o) = &mut self.a_out {
                while let Some(ev) = o.tsx.poll_event() {
                    a_out_events.push(ev);
                }
            }
            let mut b_events = Vec::new();
            if let Some(t) = &mut self.b_tsx {
                while let Some(ev) = t.poll_event() {
                    b_events.push(ev);
                }
            }
            for n in &mut self.client_nits {
                send_all(&mut self.out, n.dest, || n.tsx.poll_transmit());
                while n.tsx.poll_event().is_some() {}
            }
            for n in &mut self.server_nits {
                send_all(&mut self.out, n.dest, || n.tsx.poll_transmit());
            }
            for (_, _, dest, r) in &mut self.reinvites {
                send_all(&mut self.out, *dest, || r.poll_transmit());
                while r.poll_event().is_some() {}
            }
            self.pump_relayed(now);
            self.client_nits.retain(|n| !n.tsx.is_terminated());
            self.server_nits.retain(|n| !n.tsx.is_terminated());
            self.reinvites.retain(|(_, _, _, r)| !r.is_terminated());
            if a_events.is_empty() && a_out_events.is_empty() && b_events.is_empty() {
                break;
            }
            for ev in a_events {
                self.on_a_tsx_event(ev, now);
            }
            for ev in a_out_events {
                self.on_a_out_event(ev, now);
            }
            for ev in b_events {
                self.on_b_tsx_event(ev, now);
            }
        }
    }

    fn on_a_tsx_event(&mut self, ev: ServerEvent, now: Instant) {
        match ev {
            // A never acknowledged our 200: the call cannot be bridged.
            ServerEvent::AckTimeout if self.phase == Phase::Answered => {
                self.bye(Leg::A, None, now);
                self.bye(Leg::B, None, now);
                self.ended(
                    cause_named("RECOVERY_ON_TIMER_EXPIRE"),
                    Some(408),
                    HangupBy::System,
                    now,
                );
            }
            _ => {}
        }
    }

    /// Answer A's INVITE with `body` (our SDP) and set up A's dialog.
    fn send_200_to_a(&mut self, body: Vec<u8>, now: Instant) {
        let contact = outbound::contact(&self.setup.local, &self.setup.masked);
        let mut extra = vec![("Contact", contact), ("Allow", ALLOW.to_string())];
        if let Some(t) = self.session_timer {
            extra.extend(t.response_headers());
            self.session_deadline = Some(t.deadline(now));
        }
        self.respond_a(200, &extra, Some(("application/sdp", body)), now);
        self.a_dialog = self
            .a_tsx
            .as_ref()
            .and_then(|t| Dialog::uas_from_request(t.request(), &self.a_tag).ok());
        self.phase = Phase::Answered;
    }

    fn fail_a(&mut self, status: u16, cause: Cause, now: Instant) {
        self.respond_a(status, &[("Reason", q850::reason_header(cause))], None, now);
    }

    /// Respond to the caller's INVITE (inbound calls; a no-op on an
    /// originated call, whose A leg is our own INVITE).
    fn respond_a(
        &mut self,
        status: u16,
        extra: &[(&str, String)],
        body: Option<(&str, Vec<u8>)>,
        now: Instant,
    ) {
        let Some(t) = &mut self.a_tsx else { return };
        let resp = message::response(t.request(), status, Some(&self.a_tag), extra, body);
        let _ = t.respond(resp, now);
    }

    /// The caller's INVITE body (empty on an originated call).
    fn a_invite_body(&self) -> Vec<u8> {
        self.a_tsx
            .as_ref()
            .map(|t| t.request().body.clone())
            .unwrap_or_default()
    }

    /// Whether `branch` is the caller's INVITE transaction's.
    fn is_a_invite_branch(&self, branch: Option<&str>) -> bool {
        self.a_tsx
            .as_ref()
            .is_some_and(|t| Some(t.key().branch.as_str()) == branch)
    }

    fn bye(&mut self, leg: Leg, cause: Option<Cause>, now: Instant) {
        let sent_by = self.setup.local.sent_by.clone();
        let contact = outbound::contact(&self.setup.local, &self.setup.masked);
        let dest = match leg {
            Leg::A => self.a_src,
            Leg::B => self.setup.b_dest,
        };
        let Some(d) = self.dialog_mut(leg) else {
            return;
        };
        let mut bye = d.new_request(
            Method::Bye,
            &sent_by,
            dest.transport.via_name(),
            &ids::new_branch(),
            Some(&contact),
            None,
        );
        if let Some(cause) = cause {
            // Keep Content-Length last.
            bye.headers
                .retain(|h| !matches!(h, rsipstack::sip::Header::ContentLength(_)));
            bye.headers.push(rsipstack::sip::headers::make_header(
                "Reason",
                q850::reason_header(cause),
            ));
            bye.headers.push(rsipstack::sip::headers::make_header(
                "Content-Length",
                "0".into(),
            ));
        }
        let tsx =
            ClientNonInviteTsx::new(bye, dest.transport.reliability(), self.setup.timers, now);
        self.client_nits.push(NonInvite { leg, dest, tsx });
    }

    fn ended(&mut self, cause: Cause, sip_status: Option<u16>, by: HangupBy, now: Instant) {
        if self.phase == Phase::Ended {
            return;
        }
        self.phase = Phase::Ended;
        self.ring_deadline = None;
        self.linger_deadline = Some(now + LINGER);
        self.out.push_back(CallOutput::Event(CallEvent::Hangup {
            cause,
            sip_status,
            by,
            answered: self.answered,
        }));
    }
}

fn other(leg: Leg) -> Leg {
    match leg {
        Leg::A => Leg::B,
        Leg::B => Leg::A,
    }
}

fn min_opt(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

fn cause_named(name: &str) -> Cause {
    q850::by_name(name).unwrap_or(Cause {
        code: 16,
        name: "NORMAL_CLEARING",
    })
}
