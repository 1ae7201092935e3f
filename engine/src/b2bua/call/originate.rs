//! Originated calls (`POST /v1/calls/originate`): Maskline dials the first
//! party itself with the masked number as caller ID and its own SDP offer;
//! when that party answers, it dials the other party (the B leg, exactly
//! as for an inbound call, offered the codecs the first party chose) and
//! bridges them through the relay.
//!
//! ```text
//!  first party (A)            Maskline                 other party (B)
//!  INVITE ◀──────────────  (masked caller ID)
//!  180 ──────────────────▶  call.ringing
//!  200 ──────────────────▶  ACK, call.answered
//!                           INVITE ──────────────────▶
//!                           ◀──────────────────────── 180, 200 → ACK
//!                           call.bridged
//! ```
//!
//! Busy, no answer (ring timeout) or failure on the first leg ends the call
//! with that cause (`hangup_by: a`, or `system` for the timeout); on the
//! second leg the first party gets a BYE with the cause in `Reason`
//! (`hangup_by: b`). Once both are up, the call is an ordinary bridged call.

use std::time::Instant;

use rsipstack::sip::Response;

use super::b_leg::answer_challenge;
use super::*;

/// Where and how to reach the party an originated call dials first.
#[derive(Debug, Clone)]
pub struct FirstLeg {
    /// The party's real number (Request-URI and To of its leg only).
    pub number: String,
    /// Trunk or registered contact the INVITE goes to.
    pub dest: Endpoint,
    /// Request-URI for a registered contact (else `sip:<number>@<dest>`).
    pub request_uri: Option<String>,
    /// Credentials for the trunk's digest challenge.
    pub credentials: Option<TrunkCredentials>,
}

/// The first leg's INVITE client transaction and its bookkeeping.
pub(super) struct OutLeg {
    pub tsx: ClientInviteTsx,
    call_id: String,
    cseq: u32,
    provisional: bool,
    cancel_pending: bool,
    auth_tried: bool,
    credentials: Option<TrunkCredentials>,
}

impl Call {
    /// Start an originated call: INVITE to the first party with Maskline's
    /// offer at the A relay port. `setup.callee` and `setup.b_dest` describe
    /// the party dialled once the first one answers.
    pub fn originate(setup: CallSetup, first: FirstLeg, now: Instant) -> Result<Call, CallError> {
        let b_sdp_id: u64 = rand::random::<u32>().into();
        let mut call = Call::blank(setup, first.dest, first.dest, b_sdp_id);
        call.phase = Phase::Originating;
        call.a_sdp_version = 1;
        let offer = sdp::offer(&RewriteParams {
            local_ip: call.setup.local.public_ip,
            rtp_port: call.setup.a_rtp_port,
            session_id: call.a_sdp_id,
            session_version: call.a_sdp_version,
        });
        call.last_a_sdp = Some(offer.clone());
        let call_id = ids::new_call_id(&outbound::uri_host(call.setup.local.public_ip));
        let target_host = first.dest.addr.to_string();
        let invite = outbound::invite(&OutboundInvite {
            local: &call.setup.local,
            caller_id: &call.setup.masked,
            callee: &first.number,
            target_host: &target_host,
            request_uri: first.request_uri.as_deref(),
            call_id: &call_id,
            from_tag: &call.a_tag,
            branch: &ids::new_branch(),
            transport: first.dest.transport.via_name(),
            cseq: 1,
            max_forwards: 70,
            sdp: offer,
        })
        .map_err(|e| CallError::Build(e.to_string()))?;
        call.a_out = Some(OutLeg {
            tsx: ClientInviteTsx::new(
                invite,
                first.dest.transport.reliability(),
                call.setup.timers,
                now,
            ),
            call_id,
            cseq: 1,
            provisional: false,
            cancel_pending: false,
            auth_tried: false,
            credentials: first.credentials,
        });
        call.ring_deadline = Some(now + call.setup.ring_timeout);
        call.pump(now);
        Ok(call)
    }

    /// Call-ID of the A leg when Maskline dialled it (originated calls).
    pub fn a_call_id(&self) -> Option<&str> {
        self.a_out.as_ref().map(|o| o.call_id.as_str())
    }

    /// A response on the A leg to our INVITE; false when it is not ours.
    pub(super) fn on_a_out_response(
        &mut self,
        branch: &Option<String>,
        resp: &Response,
        now: Instant,
    ) -> bool {
        match &mut self.a_out {
            Some(o) if Some(o.tsx.key().branch.as_str()) == branch.as_deref() => {
                o.tsx.on_response(resp.clone(), now);
                true
            }
            _ => false,
        }
    }

    pub(super) fn on_a_out_event(&mut self, ev: ClientEvent, now: Instant) {
        let resp = match ev {
            ClientEvent::Response(resp) => resp,
            ClientEvent::Timeout => {
                if self.phase == Phase::Originating {
                    let cause = cause_named("RECOVERY_ON_TIMER_EXPIRE");
                    self.ended(cause, Some(408), HangupBy::System, now);
                }
                return;
            }
        };
        let status = resp.status_code.code();
        match status {
            100..=199 => {
                let Some(o) = &mut self.a_out else { return };
                o.provisional = true;
                if std::mem::take(&mut o.cancel_pending) {
                    self.send_cancel_a(now);
                }
                if status > 100 && self.phase == Phase::Originating && !self.ringing {
                    self.ringing = true;
                    self.out.push_back(CallOutput::Event(CallEvent::Ringing));
                }
            }
            200..=299 => self.on_a_answer(resp, now),
            401 | 407 if self.retry_a_with_credentials(&resp, now) => {}
            _ => {
                if self.phase != Phase::Originating {
                    return;
                }
                let cause = resp
                    .header_value("Reason")
                    .and_then(|r| q850::parse_reason(&r))
                    .unwrap_or_else(|| q850::cause_for_sip_status(status));
                let status = if (300..400).contains(&status) {
                    480
                } else {
                    status
                };
                self.ended(cause, Some(status), HangupBy::A, now);
            }
        }
    }

    /// The first party answered: ACK, learn its media, dial the other party
    /// with the codecs it chose.
    fn on_a_answer(&mut self, resp: Response, now: Instant) {
        if self.a_dialog.is_none() {
            let Some(o) = &self.a_out else { return };
            match Dialog::uac_from_response(o.tsx.request(), &resp) {
                Ok(d) => self.a_dialog = Some(d),
                Err(_) => return,
            }
        }
        self.ack_a();
        if self.phase != Phase::Originating {
            // Answer after we gave up (cancelled, hung up): end it.
            if self.phase == Phase::Ended && !self.hangup_sent {
                self.hangup_sent = true;
                self.bye(Leg::A, None, now);
            }
            return;
        }
        self.ring_deadline = None;
        let a_codecs = codecs::supported(&crate::media::codec::payload_map(&resp.body));
        let b_offer =
            if message::has_sdp(&resp, &resp.body) && a_codecs.iter().any(|(_, c)| c.is_audio()) {
                self.sdp_for(Leg::B, &resp.body)
                    .map(|rewritten| codecs::offer_for_b(&rewritten, &a_codecs))
            } else {
                None
            };
        let Some(b_offer) = b_offer else {
            // No usable answer to our offer.
            self.bye(Leg::A, None, now);
            let cause = cause_named("INCOMPATIBLE_DESTINATION");
            self.ended(cause, Some(488), HangupBy::System, now);
            return;
        };
        self.a_codecs = a_codecs;
        self.learn_media(Leg::A, &resp.body);
        self.phase = Phase::Confirmed;
        self.out.push_back(CallOutput::Event(CallEvent::Answered));
        // The second party's ringing is its own: let its 180 count again
        // for trunk failover (which only happens before ringing).
        self.ringing = false;
        self.last_b_sdp = Some(b_offer);
        if self.start_b_leg(now).is_err() {
            let cause = cause_named("NORMAL_TEMPORARY_FAILURE");
            self.bye(Leg::A, Some(cause), now);
            self.ended(cause, Some(500), HangupBy::System, now);
        }
    }

    fn ack_a(&mut self) {
        let (Some(d), Some(o)) = (&self.a_dialog, &self.a_out) else {
            return;
        };
        let ack = d.ack_for_2xx(
            o.cseq,
            &self.setup.local.sent_by,
            self.a_src.transport.via_name(),
            &ids::new_branch(),
        );
        self.out.push_back(CallOutput::Send {
            dest: self.a_src,
            bytes: bytes::Bytes::from(ack.to_bytes()),
        });
    }

    fn retry_a_with_credentials(&mut self, resp: &Response, now: Instant) -> bool {
        let dest = self.a_src;
        let timers = self.setup.timers;
        let Some(o) = &mut self.a_out else {
            return false;
        };
        if o.auth_tried || self.phase != Phase::Originating {
            return false;
        }
        let Some(creds) = &o.credentials else {
            return false;
        };
        let Some(invite) = answer_challenge(creds, o.tsx.request(), resp, o.cseq + 1) else {
            return false;
        };
        o.cseq += 1;
        o.auth_tried = true;
        o.provisional = false;
        o.tsx = ClientInviteTsx::new(invite, dest.transport.reliability(), timers, now);
        true
    }

    /// Stop ringing the first party: CANCEL now, or once it has sent a
    /// provisional response (RFC 3261 §9.1).
    pub(super) fn cancel_a(&mut self, now: Instant) {
        let Some(o) = &mut self.a_out else { return };
        if o.tsx.is_terminated() || self.a_dialog.is_some() {
            return;
        }
        if o.provisional {
            self.send_cancel_a(now);
        } else {
            o.cancel_pending = true;
        }
    }

    fn send_cancel_a(&mut self, now: Instant) {
        let Some(o) = &self.a_out else { return };
        let cancel = build_cancel(o.tsx.request());
        let tsx = ClientNonInviteTsx::new(
            cancel,
            self.a_src.transport.reliability(),
            self.setup.timers,
            now,
        );
        self.client_nits.push(NonInvite {
            leg: Leg::A,
            dest: self.a_src,
            tsx,
        });
    }
}
