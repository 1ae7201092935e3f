//! INVITE server transaction (RFC 3261 §17.2.1, RFC 6026 §7.1), plus the
//! 2xx retransmission that RFC 3261 §13.3.1.4 gives the UAS core.
//!
//! ```text
//! Proceeding --2xx--> Accepted --L--> Terminated   (2xx resent until ACK)
//!     `--3xx-6xx--> Completed --ACK--> Confirmed --I--> Terminated
//!                       `--H--> Terminated (Timeout)
//! ```

use std::time::Instant;

use rsipstack::sip::{Method, Request, Response};

use super::core::{checked_status, delegate_to_core, TsxCore, TsxState};
use super::key::TsxKey;
use super::timers::{Reliability, TimerConfig, TsxTimer};
use super::TsxError;

/// What a server transaction tells its TU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerEvent {
    /// The 2xx was retransmitted for 64·T1 (timer L) and the TU never
    /// reported its ACK: per §13.3.1.4 the TU should end the session (BYE).
    AckTimeout,
    /// No ACK for the non-2xx final within 64·T1 (timer H).
    Timeout,
}

/// States of the INVITE server transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerInviteState {
    /// INVITE received; the TU may send provisionals.
    Proceeding,
    /// A 2xx was sent (RFC 6026); it is retransmitted until the TU reports
    /// the ACK, and the state ends with timer L.
    Accepted,
    /// A 3xx–6xx was sent; retransmitted (timer G, UDP) until the ACK.
    Completed,
    /// The ACK for the non-2xx arrived; absorbing ACK retransmits (timer I).
    Confirmed,
    /// Done; drop the transaction after draining its queues.
    Terminated,
}

impl TsxState for ServerInviteState {
    const TERMINATED: Self = ServerInviteState::Terminated;
}

/// The INVITE server transaction, sans-IO.
///
/// Its transmits go to the transaction's peer: the top Via's
/// `received`/`rport` address (RFC 3581).
#[derive(Debug)]
pub struct ServerInviteTsx {
    /// Repeats the last response (timer G, retransmitted INVITEs).
    core: TsxCore<ServerInviteState, ServerEvent>,
    ack_seen: bool,
}

impl ServerInviteTsx {
    /// Starts the transaction for a received INVITE, in Proceeding.
    ///
    /// Nothing is sent: the TU must answer within 200 ms (§17.2.1), at
    /// least with `respond(build_response(&invite, StatusCode::Trying,
    /// None))`, so that the peer stops retransmitting.
    pub fn new(invite: Request, rel: Reliability, timers: TimerConfig, _now: Instant) -> Self {
        ServerInviteTsx {
            core: TsxCore::new(invite, ServerInviteState::Proceeding, rel, timers),
            ack_seen: false,
        }
    }

    /// Feeds a request matched to this transaction by [`TsxKey`]: a
    /// retransmitted INVITE re-sends the last response (if any); the ACK
    /// of a non-2xx final moves Completed to Confirmed (timer I). Anything
    /// else, including an ACK outside Completed, is absorbed: a 2xx ACK
    /// belongs to the dialog, the TU reports it with
    /// [`ack_received`](Self::ack_received).
    pub fn on_request(&mut self, req: Request, now: Instant) {
        match (req.method, self.core.state()) {
            (
                Method::Invite,
                ServerInviteState::Proceeding
                | ServerInviteState::Accepted
                | ServerInviteState::Completed,
            ) => self.core.resend(),
            (Method::Ack, ServerInviteState::Completed) => {
                self.core
                    .enter_or_terminate(ServerInviteState::Confirmed, TsxTimer::I, now);
            }
            _ => {}
        }
    }

    /// Sends a response from the TU.
    ///
    /// 1xx: sent, stays Proceeding. 2xx: Accepted; the 2xx is retransmitted
    /// (T1 doubling, capped at T2, on every transport as §13.3.1.4 asks)
    /// until [`ack_received`](Self::ack_received), and timer L (64·T1) ends
    /// the state with [`ServerEvent::AckTimeout`] if no ACK came. 3xx–6xx:
    /// Completed; retransmitted by timer G over UDP, timer H reports
    /// [`ServerEvent::Timeout`]. A further 2xx is allowed in Accepted;
    /// anything after a non-2xx final is [`TsxError::InvalidState`].
    pub fn respond(&mut self, resp: Response, now: Instant) -> Result<(), TsxError> {
        let code = checked_status(&resp)?;
        match (self.core.state(), code) {
            (ServerInviteState::Proceeding, 100..=199) => {
                self.core.send_repeatable(resp.to_bytes())
            }
            (ServerInviteState::Proceeding | ServerInviteState::Accepted, 200..=299) => {
                if self.core.state() == ServerInviteState::Proceeding {
                    self.core.set_state(ServerInviteState::Accepted);
                    self.core.arm(TsxTimer::L, now);
                }
                self.core.send_repeatable(resp.to_bytes());
                if !self.ack_seen {
                    self.core.start_retransmit(TsxTimer::G, now);
                }
            }
            (ServerInviteState::Proceeding, 300..=699) => {
                self.core.set_state(ServerInviteState::Completed);
                self.core.send_repeatable(resp.to_bytes());
                if self.core.rel().is_unreliable() {
                    self.core.start_retransmit(TsxTimer::G, now);
                }
                self.core.arm(TsxTimer::H, now);
            }
            _ => return Err(TsxError::InvalidState),
        }
        Ok(())
    }

    /// The TU matched the ACK for the 2xx (it has its own branch, so it
    /// reaches the dialog, not this transaction): stop retransmitting the
    /// 2xx. The transaction stays Accepted until timer L, absorbing
    /// INVITE retransmits.
    pub fn ack_received(&mut self, _now: Instant) {
        if self.core.state() == ServerInviteState::Accepted {
            self.ack_seen = true;
            self.core.cancel(TsxTimer::G);
        }
    }

    /// Fires the timers due at `now`: G retransmits the final (interval
    /// doubling, capped at T2); H queues [`ServerEvent::Timeout`]; I
    /// terminates; L terminates, with [`ServerEvent::AckTimeout`] if the
    /// 2xx was never ACKed.
    pub fn handle_timeout(&mut self, now: Instant) {
        for timer in self.core.take_due(now) {
            match (self.core.state(), timer) {
                (ServerInviteState::Completed | ServerInviteState::Accepted, TsxTimer::G) => {
                    let t2 = self.core.config().t2;
                    self.core.retransmit(TsxTimer::G, now, Some(t2));
                }
                (ServerInviteState::Completed, TsxTimer::H) => {
                    self.core.terminate_with(ServerEvent::Timeout);
                }
                (ServerInviteState::Confirmed, TsxTimer::I) => self.core.terminate(),
                (ServerInviteState::Accepted, TsxTimer::L) if !self.ack_seen => {
                    self.core.terminate_with(ServerEvent::AckTimeout);
                }
                (ServerInviteState::Accepted, TsxTimer::L) => self.core.terminate(),
                _ => {}
            }
        }
    }

    delegate_to_core!(ServerInviteState, ServerEvent);

    /// The INVITE that created this transaction.
    pub fn request(&self) -> &Request {
        self.core.request()
    }

    /// The transaction key (INVITE branch, method INVITE).
    pub fn key(&self) -> &TsxKey {
        self.core.key()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::transaction::build::build_ack_for_non_2xx;
    use crate::sip::transaction::test_support::{invite, response, text, Clock};

    fn udp(clock: &Clock) -> ServerInviteTsx {
        ServerInviteTsx::new(
            invite(),
            Reliability::Unreliable,
            TimerConfig::default(),
            clock.ms(0),
        )
    }

    /// Fires every timer up to `until_ms`; returns when (ms) something was
    /// sent and the status line sent.
    fn sends(tsx: &mut ServerInviteTsx, clock: &Clock, until_ms: u64) -> Vec<(u64, String)> {
        let mut out = Vec::new();
        while let Some(at) = tsx.poll_timeout() {
            if at > clock.ms(until_ms) {
                break;
            }
            tsx.handle_timeout(at);
            while let Some(bytes) = tsx.poll_transmit() {
                let line = text(&bytes).lines().next().unwrap_or("").to_string();
                out.push(((at - clock.0).as_millis() as u64, line));
            }
        }
        out
    }

    fn times(sent: &[(u64, String)]) -> Vec<u64> {
        sent.iter().map(|(t, _)| *t).collect()
    }

    #[test]
    fn retransmitted_invite_resends_last_provisional() {
        let clock = Clock::new();
        let mut tsx = udp(&clock);
        tsx.on_request(invite(), clock.ms(100));
        assert_eq!(tsx.poll_transmit(), None, "nothing sent yet");
        assert_eq!(tsx.respond(response(&invite(), 100), clock.ms(150)), Ok(()));
        assert_eq!(tsx.respond(response(&invite(), 180), clock.ms(200)), Ok(()));
        assert!(tsx
            .poll_transmit()
            .is_some_and(|b| text(&b).starts_with("SIP/2.0 100 ")));
        assert!(tsx
            .poll_transmit()
            .is_some_and(|b| text(&b).starts_with("SIP/2.0 180 ")));
        tsx.on_request(invite(), clock.ms(500));
        assert!(tsx
            .poll_transmit()
            .is_some_and(|b| text(&b).starts_with("SIP/2.0 180 ")));
        assert_eq!(tsx.poll_transmit(), None);
        assert_eq!(tsx.state(), ServerInviteState::Proceeding);
        assert_eq!(tsx.poll_timeout(), None);
    }

    #[test]
    fn busy_is_retransmitted_by_g_until_ack_then_i() {
        let clock = Clock::new();
        let mut tsx = udp(&clock);
        let busy = response(&invite(), 486);
        assert_eq!(tsx.respond(busy.clone(), clock.ms(0)), Ok(()));
        assert_eq!(tsx.state(), ServerInviteState::Completed);
        assert!(tsx.poll_transmit().is_some());
        let sent = sends(&mut tsx, &clock, 12_000);
        // Intervals 0.5, 1, 2, 4, 4.
        assert_eq!(times(&sent), vec![500, 1_500, 3_500, 7_500, 11_500]);
        assert!(sent.iter().all(|(_, l)| l == "SIP/2.0 486 Busy Here"));
        tsx.on_request(invite(), clock.ms(12_100));
        assert!(tsx
            .poll_transmit()
            .is_some_and(|b| text(&b).starts_with("SIP/2.0 486 ")));
        assert_eq!(
            tsx.respond(response(&invite(), 200), clock.ms(12_150)),
            Err(TsxError::InvalidState)
        );

        tsx.on_request(build_ack_for_non_2xx(&invite(), &busy), clock.ms(12_200));
        assert_eq!(tsx.state(), ServerInviteState::Confirmed);
        assert_eq!(tsx.poll_timeout(), Some(clock.ms(17_200)));
        assert!(sends(&mut tsx, &clock, 17_199).is_empty());
        tsx.handle_timeout(clock.ms(17_200));
        assert!(tsx.is_terminated());
        assert_eq!(tsx.poll_transmit(), None);
        assert_eq!(tsx.poll_event(), None);
    }

    #[test]
    fn no_ack_for_busy_times_out_with_h() {
        let clock = Clock::new();
        let mut tsx = udp(&clock);
        assert_eq!(tsx.respond(response(&invite(), 486), clock.ms(0)), Ok(()));
        let sent = sends(&mut tsx, &clock, 31_999);
        assert_eq!(sent.len(), 1 + 10, "first send plus G retransmits");
        assert_eq!(tsx.poll_event(), None);
        tsx.handle_timeout(clock.ms(32_000));
        assert_eq!(tsx.poll_event(), Some(ServerEvent::Timeout));
        assert!(tsx.is_terminated());
    }

    #[test]
    fn ok_is_retransmitted_until_ack_received() {
        let clock = Clock::new();
        let mut tsx = udp(&clock);
        assert_eq!(
            tsx.respond(response(&invite(), 200), clock.ms(1_000)),
            Ok(())
        );
        assert_eq!(tsx.state(), ServerInviteState::Accepted);
        assert!(tsx.poll_transmit().is_some());
        let sent = sends(&mut tsx, &clock, 9_000);
        assert_eq!(times(&sent), vec![1_500, 2_500, 4_500, 8_500]);
        assert!(sent.iter().all(|(_, l)| l == "SIP/2.0 200 OK"));
        tsx.ack_received(clock.ms(9_000));
        // No more 2xx; L (64·T1 after the 2xx) ends the state quietly.
        assert_eq!(tsx.poll_timeout(), Some(clock.ms(33_000)));
        assert!(sends(&mut tsx, &clock, 32_999).is_empty());
        tsx.handle_timeout(clock.ms(33_000));
        assert!(tsx.is_terminated());
        assert_eq!(tsx.poll_event(), None);
    }

    #[test]
    fn ok_without_ack_reports_ack_timeout_at_l() {
        let clock = Clock::new();
        let mut tsx = ServerInviteTsx::new(
            invite(),
            Reliability::Reliable,
            TimerConfig::default(),
            clock.ms(0),
        );
        assert_eq!(tsx.respond(response(&invite(), 200), clock.ms(0)), Ok(()));
        assert!(tsx.poll_transmit().is_some());
        let sent = sends(&mut tsx, &clock, 31_999);
        // Retransmitted over TCP too (§13.3.1.4): 0.5, 1.5, 3.5, 7.5, 11.5 …
        assert_eq!(sent.len(), 10);
        assert_eq!(tsx.poll_event(), None);
        tsx.handle_timeout(clock.ms(32_000));
        assert_eq!(tsx.poll_event(), Some(ServerEvent::AckTimeout));
        assert!(tsx.is_terminated());
    }

    #[test]
    fn reliable_busy_has_no_g_and_ack_terminates() {
        let clock = Clock::new();
        let mut tsx = ServerInviteTsx::new(
            invite(),
            Reliability::Reliable,
            TimerConfig::default(),
            clock.ms(0),
        );
        let busy = response(&invite(), 486);
        assert_eq!(tsx.respond(busy.clone(), clock.ms(0)), Ok(()));
        assert!(tsx.poll_transmit().is_some());
        assert_eq!(tsx.poll_timeout(), Some(clock.ms(32_000)));
        tsx.on_request(build_ack_for_non_2xx(&invite(), &busy), clock.ms(50));
        assert!(tsx.is_terminated());
    }

    #[test]
    fn invalid_status_is_rejected() {
        let clock = Clock::new();
        let mut tsx = udp(&clock);
        assert_eq!(
            tsx.respond(response(&invite(), 700), clock.ms(0)),
            Err(TsxError::InvalidStatus(700))
        );
        assert_eq!(tsx.poll_transmit(), None);
    }
}
