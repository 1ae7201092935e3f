//! Mid-call requests relayed end to end: re-INVITE and UPDATE (hold,
//! unhold, codec changes: SDP rewritten for the other leg, media targets
//! updated) and INFO (DTMF, application data). A re-INVITE without SDP, or
//! one arriving while another is in progress (RFC 3261 §14.2 glare → 491),
//! is answered locally.

use std::time::Instant;

use rsipstack::sip::prelude::*;
use rsipstack::sip::{Method, Request, Response};

use super::{other, Call, CallOutput, Leg, Phase};
use crate::b2bua::outbound::{self, ALLOW};
use crate::sdp::{self, RewriteParams};
use crate::sip::ids;
use crate::sip::message;
use crate::sip::transaction::{
    ClientEvent, ClientInviteTsx, ClientNonInviteTsx, ServerInviteTsx, ServerNonInviteTsx,
};
use crate::sip::transport::{response_endpoint, Endpoint};

/// A re-INVITE from leg `from` relayed to the other leg.
pub(super) struct RelayedInvite {
    pub from: Leg,
    pub server: ServerInviteTsx,
    pub server_dest: Endpoint,
    pub server_cseq: u32,
    pub client: ClientInviteTsx,
    pub client_dest: Endpoint,
    pub client_cseq: u32,
    pub answered: bool,
}

/// An UPDATE or INFO from leg `from` relayed to the other leg.
pub(super) struct RelayedNonInvite {
    pub from: Leg,
    pub server: ServerNonInviteTsx,
    pub server_dest: Endpoint,
    pub client: ClientNonInviteTsx,
    pub client_dest: Endpoint,
    pub answered: bool,
}

impl Call {
    /// Where requests to `leg` go.
    pub(super) fn leg_dest(&self, leg: Leg) -> Endpoint {
        match leg {
            Leg::A => self.a_src,
            Leg::B => self.setup.b_dest,
        }
    }

    /// Rewrite an SDP body for `to`: its relay port, its SDP session, a new
    /// version. Returns `None` when the body is not usable SDP.
    pub(super) fn sdp_for(&mut self, to: Leg, body: &[u8]) -> Option<Vec<u8>> {
        let (port, id, version) = match to {
            Leg::A => (
                self.setup.a_rtp_port,
                self.a_sdp_id,
                &mut self.a_sdp_version,
            ),
            Leg::B => (
                self.setup.b_rtp_port,
                self.b_sdp_id,
                &mut self.b_sdp_version,
            ),
        };
        *version += 1;
        let params = RewriteParams {
            local_ip: self.setup.local.public_ip,
            rtp_port: port,
            session_id: id,
            session_version: *version,
        };
        let out = sdp::rewrite(body, &params).ok()?;
        match to {
            Leg::A => self.last_a_sdp = Some(out.clone()),
            Leg::B => self.last_b_sdp = Some(out.clone()),
        }
        Some(out)
    }

    /// Note the media target a leg announced in `body`.
    pub(super) fn learn_media(&mut self, leg: Leg, body: &[u8]) {
        if let Ok(target) = sdp::remote_media(body) {
            self.on_hold[leg as usize] = target.direction != crate::sdp::Direction::SendRecv;
            self.out.push_back(CallOutput::Media(leg, target));
            self.out.push_back(CallOutput::Codecs(
                leg,
                crate::media::codec::payload_map(body),
            ));
        }
    }

    /// Whether a mid-call request from `leg` can be relayed now.
    fn can_relay(&self, leg: Leg) -> bool {
        self.phase == Phase::Confirmed
            && self.dialog(leg).is_some()
            && self.dialog(other(leg)).is_some()
    }

    /// An in-dialog INVITE from `leg`.
    pub(super) fn on_reinvite(&mut self, leg: Leg, req: Request, src: Endpoint, now: Instant) {
        let server_dest = response_endpoint(&req, src);
        let server_cseq = message::cseq(&req).map(|(n, _)| n).unwrap_or(0);
        if message::to_tag(&req).is_none() || self.dialog(leg).is_none() {
            return self.answer_invite_locally(leg, req, src, 481, now);
        }
        if let Some(d) = self.dialog_mut(leg) {
            if d.check_remote_cseq(&req).is_err() {
                return self.answer_invite_locally(leg, req, src, 500, now);
            }
        }
        let busy = self.relayed_invites.iter().any(|r| !r.answered);
        if busy || !self.can_relay(leg) || !message::has_sdp(&req, &req.body) {
            let status = if busy { 491 } else { 200 };
            return self.answer_invite_locally(leg, req, src, status, now);
        }
        let to = other(leg);
        let Some(body) = self.sdp_for(to, &req.body.clone()) else {
            return self.answer_invite_locally(leg, req, src, 488, now);
        };
        self.learn_media(leg, &req.body);
        let mut server =
            ServerInviteTsx::new(req, src.transport.reliability(), self.setup.timers, now);
        let trying = message::response(server.request(), 100, None, &[], None);
        let _ = server.respond(trying, now);
        let client_dest = self.leg_dest(to);
        let contact = outbound::contact(&self.setup.local, &self.setup.masked);
        let sent_by = self.setup.local.sent_by.clone();
        let Some(d) = self.dialog_mut(to) else { return };
        let invite = d.new_request(
            Method::Invite,
            &sent_by,
            client_dest.transport.via_name(),
            &ids::new_branch(),
            Some(&contact),
            Some(("application/sdp", body)),
        );
        let client_cseq = message::cseq(&invite).map(|(n, _)| n).unwrap_or(0);
        let client = ClientInviteTsx::new(
            invite,
            client_dest.transport.reliability(),
            self.setup.timers,
            now,
        );
        self.relayed_invites.push(RelayedInvite {
            from: leg,
            server,
            server_dest,
            server_cseq,
            client,
            client_dest,
            client_cseq,
            answered: false,
        });
    }

    /// An in-dialog UPDATE or INFO from `leg`.
    pub(super) fn on_mid_call_request(
        &mut self,
        leg: Leg,
        req: Request,
        src: Endpoint,
        now: Instant,
    ) {
        if self.dialog(leg).is_none() {
            return self.answer_non_invite(leg, req, src, 481, now);
        }
        if !self.can_relay(leg) {
            // Early-dialog UPDATE/INFO: accept without relaying.
            return self.answer_non_invite(leg, req, src, 200, now);
        }
        let to = other(leg);
        let body = if message::has_sdp(&req, &req.body) {
            let Some(b) = self.sdp_for(to, &req.body.clone()) else {
                return self.answer_non_invite(leg, req, src, 488, now);
            };
            self.learn_media(leg, &req.body);
            Some(("application/sdp".to_string(), b))
        } else if !req.body.is_empty() {
            let ct = req
                .header_value("Content-Type")
                .unwrap_or_else(|| "application/octet-stream".into());
            Some((ct, req.body.clone()))
        } else {
            None
        };
        let server_dest = response_endpoint(&req, src);
        let method = req.method;
        let server =
            ServerNonInviteTsx::new(req, src.transport.reliability(), self.setup.timers, now);
        let client_dest = self.leg_dest(to);
        let contact = outbound::contact(&self.setup.local, &self.setup.masked);
        let sent_by = self.setup.local.sent_by.clone();
        let Some(d) = self.dialog_mut(to) else { return };
        let relayed = d.new_request(
            method,
            &sent_by,
            client_dest.transport.via_name(),
            &ids::new_branch(),
            Some(&contact),
            body.as_ref().map(|(ct, b)| (ct.as_str(), b.clone())),
        );
        let client = ClientNonInviteTsx::new(
            relayed,
            client_dest.transport.reliability(),
            self.setup.timers,
            now,
        );
        self.relayed_nits.push(RelayedNonInvite {
            from: leg,
            server,
            server_dest,
            client,
            client_dest,
            answered: false,
        });
    }

    /// An ACK from `leg` for a relayed re-INVITE's 2xx; false if none matched.
    pub(super) fn ack_relayed(&mut self, leg: Leg, cseq: Option<u32>, now: Instant) -> bool {
        match self
            .relayed_invites
            .iter_mut()
            .find(|r| r.from == leg && Some(r.server_cseq) == cseq)
        {
            Some(r) => {
                r.server.ack_received(now);
                true
            }
            None => false,
        }
    }

    /// A response from `leg` to a relayed request; false if none matched.
    pub(super) fn on_relayed_response(
        &mut self,
        leg: Leg,
        branch: Option<&str>,
        resp: &Response,
        now: Instant,
    ) -> bool {
        if let Some(r) = self
            .relayed_invites
            .iter_mut()
            .find(|r| r.from != leg && Some(r.client.key().branch.as_str()) == branch)
        {
            r.client.on_response(resp.clone(), now);
            return true;
        }
        if let Some(r) = self
            .relayed_nits
            .iter_mut()
            .find(|r| r.from != leg && Some(r.client.key().branch.as_str()) == branch)
        {
            r.client.on_response(resp.clone(), now);
            return true;
        }
        false
    }

    /// Drive relayed transactions: transmit, turn the far leg's final
    /// answer into the near leg's response.
    pub(super) fn pump_relayed(&mut self, now: Instant) {
        let mut finals: Vec<(usize, Response)> = Vec::new();
        for (i, r) in self.relayed_invites.iter_mut().enumerate() {
            send_all(&mut self.out, r.server_dest, || r.server.poll_transmit());
            send_all(&mut self.out, r.client_dest, || r.client.poll_transmit());
            while r.server.poll_event().is_some() {}
            while let Some(ev) = r.client.poll_event() {
                finals.extend(final_response(ev, r.client.request()).map(|f| (i, f)));
            }
        }
        for (i, resp) in finals {
            self.finish_relayed_invite(i, resp, now);
        }
        let mut nit_finals: Vec<(usize, Response)> = Vec::new();
        for (i, r) in self.relayed_nits.iter_mut().enumerate() {
            send_all(&mut self.out, r.server_dest, || r.server.poll_transmit());
            send_all(&mut self.out, r.client_dest, || r.client.poll_transmit());
            while let Some(ev) = r.client.poll_event() {
                nit_finals.extend(final_response(ev, r.client.request()).map(|f| (i, f)));
            }
        }
        for (i, resp) in nit_finals {
            self.finish_relayed_nit(i, resp, now);
        }
        // Final responses just queued by finish_relayed_*.
        for r in &mut self.relayed_invites {
            send_all(&mut self.out, r.server_dest, || r.server.poll_transmit());
        }
        for r in &mut self.relayed_nits {
            send_all(&mut self.out, r.server_dest, || r.server.poll_transmit());
        }
        self.relayed_invites
            .retain(|r| !(r.answered && r.server.is_terminated() && r.client.is_terminated()));
        self.relayed_nits
            .retain(|r| !(r.answered && r.server.is_terminated() && r.client.is_terminated()));
    }

    fn finish_relayed_invite(&mut self, i: usize, resp: Response, now: Instant) {
        let Some(r) = self.relayed_invites.get(i) else {
            return;
        };
        let (from, to, client_cseq, client_dest) =
            (r.from, other(r.from), r.client_cseq, r.client_dest);
        let status = resp.status_code.code();
        if (200..300).contains(&status) {
            // ACK every 2xx (retransmissions too) on the far leg.
            if let Some(d) = self.dialog(to) {
                let ack = d.ack_for_2xx(
                    client_cseq,
                    &self.setup.local.sent_by,
                    client_dest.transport.via_name(),
                    &ids::new_branch(),
                );
                self.out.push_back(CallOutput::Send {
                    dest: client_dest,
                    bytes: bytes::Bytes::from(ack.to_bytes()),
                });
            }
        }
        if self.relayed_invites.get(i).is_some_and(|r| r.answered) {
            return;
        }
        let body = if (200..300).contains(&status) && message::has_sdp(&resp, &resp.body) {
            self.learn_media(to, &resp.body);
            self.sdp_for(from, &resp.body.clone())
        } else {
            None
        };
        let contact = outbound::contact(&self.setup.local, &self.setup.masked);
        let extra = if (200..300).contains(&status) {
            let mut e = vec![("Contact", contact), ("Allow", ALLOW.to_string())];
            e.extend(self.session_refreshed(from, now));
            e
        } else {
            vec![]
        };
        let Some(r) = self.relayed_invites.get_mut(i) else {
            return;
        };
        r.answered = true;
        let reply = message::response(
            r.server.request(),
            status,
            None,
            &extra,
            body.map(|b| ("application/sdp", b)),
        );
        let _ = r.server.respond(reply, now);
    }

    fn finish_relayed_nit(&mut self, i: usize, resp: Response, now: Instant) {
        let Some(r) = self.relayed_nits.get(i) else {
            return;
        };
        if r.answered {
            return;
        }
        let from = r.from;
        let status = resp.status_code.code();
        let body = if message::has_sdp(&resp, &resp.body) {
            self.learn_media(other(from), &resp.body);
            self.sdp_for(from, &resp.body.clone())
                .map(|b| ("application/sdp".to_string(), b))
        } else if !resp.body.is_empty() {
            let ct = resp
                .header_value("Content-Type")
                .unwrap_or_else(|| "application/octet-stream".into());
            Some((ct, resp.body.clone()))
        } else {
            None
        };
        let is_update = self
            .relayed_nits
            .get(i)
            .is_some_and(|r| r.server.request().method == Method::Update);
        let extra = if is_update && (200..300).contains(&status) {
            self.session_refreshed(from, now)
        } else {
            Vec::new()
        };
        let Some(r) = self.relayed_nits.get_mut(i) else {
            return;
        };
        r.answered = true;
        let reply = message::response(
            r.server.request(),
            status,
            None,
            &extra,
            body.as_ref().map(|(ct, b)| (ct.as_str(), b.clone())),
        );
        let _ = r.server.respond(reply, now);
    }

    /// A target refresh from `leg` succeeded: when it is A's and A runs a
    /// session timer, restart it and return the headers confirming it.
    fn session_refreshed(&mut self, leg: Leg, now: Instant) -> Vec<(&'static str, String)> {
        match (leg, self.session_timer) {
            (Leg::A, Some(t)) => {
                self.session_deadline = Some(t.deadline(now));
                t.response_headers()
            }
            _ => Vec::new(),
        }
    }

    /// Answer a re-INVITE here: `200` with the SDP this leg last got from us
    /// (a session refresh), or an error status.
    fn answer_invite_locally(
        &mut self,
        leg: Leg,
        req: Request,
        src: Endpoint,
        status: u16,
        now: Instant,
    ) {
        let dest = response_endpoint(&req, src);
        let cseq = message::cseq(&req).map(|(n, _)| n).unwrap_or(0);
        let mut tsx =
            ServerInviteTsx::new(req, src.transport.reliability(), self.setup.timers, now);
        let body = if status == 200 {
            match leg {
                Leg::A => self.last_a_sdp.clone(),
                Leg::B => self.last_b_sdp.clone(),
            }
        } else {
            None
        };
        let contact = outbound::contact(&self.setup.local, &self.setup.masked);
        let extra = if status == 200 {
            let mut e = vec![("Contact", contact), ("Allow", ALLOW.to_string())];
            e.extend(self.session_refreshed(leg, now));
            e
        } else {
            vec![]
        };
        let resp = message::response(
            tsx.request(),
            status,
            None,
            &extra,
            body.map(|b| ("application/sdp", b)),
        );
        let _ = tsx.respond(resp, now);
        while let Some(bytes) = tsx.poll_transmit() {
            self.out.push_back(CallOutput::Send { dest, bytes });
        }
        if status == 200 {
            self.reinvites.push((leg, cseq, dest, tsx));
        }
    }
}

/// Queue every datagram `next` yields for `dest`.
pub(super) fn send_all(
    out: &mut std::collections::VecDeque<CallOutput>,
    dest: Endpoint,
    mut next: impl FnMut() -> Option<bytes::Bytes>,
) {
    while let Some(bytes) = next() {
        out.push_back(CallOutput::Send { dest, bytes });
    }
}

/// The final response a client transaction event stands for (a
/// transaction timeout becomes a local 408); `None` for provisionals.
fn final_response(ev: ClientEvent, request: &Request) -> Option<Response> {
    match ev {
        ClientEvent::Response(resp) if resp.status_code.code() >= 200 => Some(resp),
        ClientEvent::Response(_) => None,
        ClientEvent::Timeout => Some(message::response(request, 408, None, &[], None)),
    }
}
