//! The B leg: dialling the callee (or the next trunk), answering the
//! trunk's digest challenge, relaying the callee's responses to the caller,
//! CANCEL and ACK.

use std::time::Instant;

use bytes::Bytes;
use rsipstack::sip::prelude::*;
use rsipstack::sip::{Request, Response};

use super::*;

impl Call {
    /// Dial the callee: the B-leg INVITE, built from scratch with the
    /// masked number as caller ID.
    pub(super) fn start_b_leg(&mut self, now: Instant) -> Result<(), CallError> {
        let offer = self.last_b_sdp.clone().unwrap_or_default();
        let target_host = self.setup.b_dest.addr.to_string();
        self.b_invite_cseq += 1;
        let invite = outbound::invite(&OutboundInvite {
            local: &self.setup.local,
            caller_id: &self.setup.masked,
            callee: &self.setup.callee,
            target_host: &target_host,
            request_uri: self.setup.b_request_uri.as_deref(),
            call_id: &self.b_call_id,
            from_tag: &self.b_from_tag,
            branch: &ids::new_branch(),
            transport: self.setup.b_dest.transport.via_name(),
            cseq: self.b_invite_cseq,
            max_forwards: self.b_max_forwards,
            sdp: offer,
        })
        .map_err(|e| CallError::Build(e.to_string()))?;
        self.b_tsx = Some(ClientInviteTsx::new(
            invite,
            self.setup.b_dest.transport.reliability(),
            self.setup.timers,
            now,
        ));
        self.control_deadline = None;
        self.ring_deadline = Some(now + self.setup.ring_timeout);
        if self.phase == Phase::Held {
            self.phase = Phase::Calling;
        }
        Ok(())
    }

    /// Whether a B-leg INVITE is out and not answered.
    pub(super) fn b_calling(&self) -> bool {
        !self.b_up && self.b_tsx.as_ref().is_some_and(|t| !t.is_terminated())
    }

    pub(super) fn on_b_tsx_event(&mut self, ev: ClientEvent, now: Instant) {
        let resp = match ev {
            ClientEvent::Response(resp) => resp,
            ClientEvent::Timeout => {
                if self.fail_over_b(now) {
                    return;
                }
                if !self.b_up {
                    let cause = cause_named("RECOVERY_ON_TIMER_EXPIRE");
                    self.b_failed(408, cause, HangupBy::System, now);
                }
                return;
            }
        };
        let status = resp.status_code.code();
        match status {
            100..=199 => {
                if status > 100 || !self.b_provisional {
                    self.b_provisional = true;
                }
                if self.b_cancel_pending {
                    self.b_cancel_pending = false;
                    self.send_cancel_b(now);
                }
                if status == 100 || self.b_up || self.phase == Phase::Ended {
                    return;
                }
                if !self.ringing {
                    self.ringing = true;
                    self.out.push_back(CallOutput::Event(CallEvent::Ringing));
                }
                if self.phase != Phase::Calling {
                    return; // A already answered by the API
                }
                let body = self.relay_sdp_to_a(&resp);
                let status = if status == 181 || status == 182 {
                    180
                } else {
                    status
                };
                let contact = outbound::contact(&self.setup.local, &self.setup.masked);
                self.respond_a(
                    status,
                    &[("Contact", contact)],
                    body.map(|b| ("application/sdp", b)),
                    now,
                );
            }
            200..=299 => self.on_b_answer(resp, now),
            401 | 407 if !self.b_up && self.retry_b_with_credentials(&resp, now) => {}
            408 | 503 if self.fail_over_b(now) => {}
            _ => {
                if self.b_up {
                    return;
                }
                let cause = resp
                    .header_value("Reason")
                    .and_then(|r| q850::parse_reason(&r))
                    .unwrap_or_else(|| q850::cause_for_sip_status(status));
                // Redirects would reveal B's contacts: turn them into 480.
                let relay = if (300..400).contains(&status) {
                    480
                } else {
                    status
                };
                self.b_failed(relay, cause, HangupBy::B, now);
            }
        }
    }

    /// The B leg failed (or gave no answer) with `status`: an unanswered
    /// caller gets that failure, a caller the API answered gets a BYE.
    pub(super) fn b_failed(&mut self, status: u16, cause: Cause, by: HangupBy, now: Instant) {
        match self.phase {
            Phase::Held | Phase::Calling => {
                self.fail_a(status, cause, now);
                self.ended(cause, Some(status), by, now);
            }
            Phase::Answered | Phase::Confirmed => {
                self.bye(Leg::A, Some(cause), now);
                self.ended(cause, Some(status), by, now);
            }
            Phase::Originating | Phase::Ended => {}
        }
    }

    /// Answer the trunk's digest challenge once (RFC 3261 §22.2): the same
    /// INVITE with credentials, next CSeq, new branch. False when there is
    /// nothing to answer with (the failure is then relayed to A).
    pub(super) fn retry_b_with_credentials(&mut self, resp: &Response, now: Instant) -> bool {
        if self.b_auth_tried {
            return false;
        }
        let (Some(creds), Some(b_tsx)) = (&self.setup.b_credentials, &self.b_tsx) else {
            return false;
        };
        let Some(invite) = answer_challenge(creds, b_tsx.request(), resp, self.b_invite_cseq + 1)
        else {
            return false;
        };
        self.b_invite_cseq += 1;
        self.b_auth_tried = true;
        self.b_provisional = false;
        self.b_tsx = Some(ClientInviteTsx::new(
            invite,
            self.setup.b_dest.transport.reliability(),
            self.setup.timers,
            now,
        ));
        true
    }

    /// Try the next trunk (same Call-ID and From tag, next CSeq) when the
    /// current one failed before ringing. False when none is left.
    pub(super) fn fail_over_b(&mut self, now: Instant) -> bool {
        if self.b_up
            || self.phase == Phase::Ended
            || self.ringing
            || self.setup.b_alternatives.is_empty()
        {
            return false;
        }
        let Some(offer) = self.last_b_sdp.clone() else {
            return false;
        };
        let next = self.setup.b_alternatives.remove(0);
        tracing::info!(trunk = %next.name, "B leg failed; trying the next trunk");
        self.setup.b_dest = next.endpoint;
        self.setup.b_credentials = next.credentials;
        self.setup.b_request_uri = None;
        self.b_auth_tried = false;
        self.b_provisional = false;
        self.b_invite_cseq += 1;
        let target_host = next.endpoint.addr.to_string();
        let Ok(invite) = outbound::invite(&OutboundInvite {
            local: &self.setup.local,
            caller_id: &self.setup.masked,
            callee: &self.setup.callee,
            target_host: &target_host,
            request_uri: None,
            call_id: &self.b_call_id,
            from_tag: &self.b_from_tag,
            branch: &ids::new_branch(),
            transport: next.endpoint.transport.via_name(),
            cseq: self.b_invite_cseq,
            max_forwards: self.b_max_forwards,
            sdp: offer,
        }) else {
            return false;
        };
        self.b_tsx = Some(ClientInviteTsx::new(
            invite,
            next.endpoint.transport.reliability(),
            self.setup.timers,
            now,
        ));
        true
    }

    pub(super) fn on_b_answer(&mut self, resp: Response, now: Instant) {
        // Every 2xx (also a retransmission) needs an ACK.
        if self.b_dialog.is_none() {
            let Some(b_tsx) = &self.b_tsx else { return };
            match Dialog::uac_from_response(b_tsx.request(), &resp) {
                Ok(d) => self.b_dialog = Some(d),
                Err(_) => return,
            }
        }
        self.ack_b(now);
        if self.b_up {
            return; // retransmitted 2xx
        }
        match self.phase {
            Phase::Calling => {}
            Phase::Answered | Phase::Confirmed => {
                // The API answered A earlier; now B is up too. A's media
                // already points at the relay: nothing to tell A.
                self.b_up = true;
                self.answered = true;
                self.ring_deadline = None;
                if let Some((plan, _)) = codecs::plan_from_answer(&self.a_codecs, &resp.body) {
                    self.out.push_back(CallOutput::Transcode(plan));
                }
                self.learn_media(Leg::B, &resp.body);
                if self.phase == Phase::Confirmed {
                    self.out.push_back(CallOutput::Event(CallEvent::Bridged));
                }
                return;
            }
            Phase::Originating | Phase::Held | Phase::Ended => {
                // Answer after we gave up (CANCEL crossed the 200, TTL, …).
                if !self.hangup_sent {
                    self.hangup_sent = true;
                    self.bye(Leg::B, None, now);
                }
                return;
            }
        }
        self.b_up = true;
        self.answered = true;
        self.ring_deadline = None;
        self.out.push_back(CallOutput::Event(CallEvent::Answered));
        let body = self.relay_sdp_to_a(&resp);
        let Some(body) = body else {
            // A 2xx without SDP to our offer is unusable.
            self.hangup_sent = true;
            self.bye(Leg::B, None, now);
            let cause = cause_named("INCOMPATIBLE_DESTINATION");
            self.fail_a(488, cause, now);
            self.ended(cause, Some(488), HangupBy::System, now);
            return;
        };
        self.send_200_to_a(body, now);
    }

    /// Rewrite B's SDP (if any) for A, record B's media target.
    pub(super) fn relay_sdp_to_a(&mut self, resp: &Response) -> Option<Vec<u8>> {
        if !message::has_sdp(resp, &resp.body) {
            return None;
        }
        let mut body = self.sdp_for(Leg::A, &resp.body)?;
        if let Some((plan, keep)) = codecs::plan_from_answer(&self.a_codecs, &resp.body) {
            // The callee chose a codec the caller did not offer: answer the
            // caller with its own codec and transcode between them.
            body = sdp::keep_payloads(&body, &keep);
            self.last_a_sdp = Some(body.clone());
            self.out.push_back(CallOutput::Transcode(plan));
        }
        self.learn_media(Leg::B, &resp.body);
        Some(body)
    }

    pub(super) fn ack_b(&mut self, _now: Instant) {
        let Some(d) = &self.b_dialog else { return };
        let transport = self.setup.b_dest.transport.via_name();
        let ack = d.ack_for_2xx(
            self.b_invite_cseq,
            &self.setup.local.sent_by,
            transport,
            &ids::new_branch(),
        );
        self.out.push_back(CallOutput::Send {
            dest: self.setup.b_dest,
            bytes: Bytes::from(ack.to_bytes()),
        });
    }

    pub(super) fn cancel_b(&mut self, now: Instant) {
        if !self.b_calling() {
            return;
        }
        if self.b_provisional {
            self.send_cancel_b(now);
        } else {
            // RFC 3261 §9.1: no CANCEL before a provisional response.
            self.b_cancel_pending = true;
        }
    }

    pub(super) fn send_cancel_b(&mut self, now: Instant) {
        let Some(b_tsx) = &self.b_tsx else { return };
        let cancel = build_cancel(b_tsx.request());
        let tsx = ClientNonInviteTsx::new(
            cancel,
            self.setup.b_dest.transport.reliability(),
            self.setup.timers,
            now,
        );
        self.client_nits.push(NonInvite {
            leg: Leg::B,
            dest: self.setup.b_dest,
            tsx,
        });
    }
}

/// `invite` again with credentials for the digest challenge in `resp` (a
/// 401 or 407), as CSeq `cseq` on a new branch; `None` when the challenge
/// is unusable or for another realm than the credentials'.
pub(super) fn answer_challenge(
    creds: &TrunkCredentials,
    invite: &Request,
    resp: &Response,
    cseq: u32,
) -> Option<Request> {
    let (challenge_header, answer_header) = match resp.status_code.code() {
        401 => ("WWW-Authenticate", "Authorization"),
        _ => ("Proxy-Authenticate", "Proxy-Authorization"),
    };
    let values: Vec<String> = resp
        .headers
        .iter()
        .filter(|h| h.name().eq_ignore_ascii_case(challenge_header))
        .map(|h| h.value().to_string())
        .collect();
    let challenge = auth::pick_challenge(values.iter().map(String::as_str)).ok()?;
    if creds.realm.as_ref().is_some_and(|r| *r != challenge.realm) {
        return None;
    }
    let uri = invite.uri.to_string();
    let value = auth::authorization(
        &challenge,
        &creds.username,
        &creds.password,
        "INVITE",
        &uri,
        &ids::new_tag(),
        1,
    );
    Some(outbound::with_credentials(
        invite,
        answer_header,
        value,
        &ids::new_branch(),
        cseq,
    ))
}
