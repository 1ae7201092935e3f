//! INVITE client transaction (RFC 3261 §17.1.1, RFC 6026 §8.4).
//!
//! ```text
//! Calling --1xx--> Proceeding --2xx--> Accepted --M--> Terminated
//!    |  \___2xx________________________^
//!    |------3xx-6xx----> Completed --D--> Terminated   (ACK sent here)
//!    `--B--> Terminated (Timeout)
//! ```

use std::time::Instant;

use rsipstack::sip::{Request, Response};

use super::build::build_ack_for_non_2xx;
use super::core::{delegate_to_core, TsxCore, TsxState};
use super::key::TsxKey;
use super::timers::{Reliability, TimerConfig, TsxTimer};

/// What a client transaction tells its TU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// A response for the TU: every provisional, the first non-2xx final,
    /// and (INVITE) every 2xx received while Accepted, so the TU re-ACKs.
    Response(Response),
    /// No final response in time (timer B or F): the TU treats it as a 408.
    Timeout,
}

/// States of the INVITE client transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientInviteState {
    /// INVITE sent, nothing heard; retransmitting (timer A) over UDP.
    Calling,
    /// A provisional response arrived; waiting for a final one.
    Proceeding,
    /// A 2xx arrived (RFC 6026); further 2xx are passed up until timer M.
    Accepted,
    /// A 3xx–6xx arrived and was ACKed; absorbing retransmits until timer D.
    Completed,
    /// Done; drop the transaction after draining its queues.
    Terminated,
}

impl TsxState for ClientInviteState {
    const TERMINATED: Self = ClientInviteState::Terminated;
}

/// The INVITE client transaction, sans-IO.
#[derive(Debug)]
pub struct ClientInviteTsx {
    /// Repeats the INVITE (timer A) while Calling, the ACK once Completed.
    core: TsxCore<ClientInviteState, ClientEvent>,
}

impl ClientInviteTsx {
    /// Starts the transaction: queues the first transmission of `invite`,
    /// arms timer A (unreliable transports) and timer B.
    ///
    /// The key is taken from `invite`'s top Via; build the INVITE with a
    /// fresh `new_branch()`. Without a usable branch the key's branch is
    /// empty.
    pub fn new(invite: Request, rel: Reliability, timers: TimerConfig, now: Instant) -> Self {
        let mut core = TsxCore::new(invite, ClientInviteState::Calling, rel, timers);
        core.send_request(TsxTimer::A, TsxTimer::B, now);
        ClientInviteTsx { core }
    }

    /// Feeds a response matched to this transaction.
    ///
    /// 1xx → Proceeding (passed up); 2xx → Accepted, every 2xx passed up
    /// (the TU ACKs each), timer M; 3xx–6xx → Completed, the ACK is queued
    /// with the INVITE's branch, the response passed up once, timer D; a
    /// retransmitted final re-sends the ACK and is not passed up. Responses
    /// that make no sense in the current state are dropped.
    pub fn on_response(&mut self, resp: Response, now: Instant) {
        let code = resp.status_code.code();
        match (self.core.state(), code) {
            (ClientInviteState::Calling | ClientInviteState::Proceeding, 100..=199) => {
                self.core.set_state(ClientInviteState::Proceeding);
                self.core.cancel(TsxTimer::A);
                self.core.cancel(TsxTimer::B);
                self.core.emit(ClientEvent::Response(resp));
            }
            (ClientInviteState::Calling | ClientInviteState::Proceeding, 200..=299) => {
                self.core.set_state(ClientInviteState::Accepted);
                self.core.clear_timers();
                self.core.arm(TsxTimer::M, now);
                self.core.emit(ClientEvent::Response(resp));
            }
            (ClientInviteState::Accepted, 200..=299) => {
                self.core.emit(ClientEvent::Response(resp));
            }
            (ClientInviteState::Calling | ClientInviteState::Proceeding, 300..=699) => {
                let ack = build_ack_for_non_2xx(self.core.request(), &resp);
                self.core.send_repeatable(ack.to_bytes());
                self.core.emit(ClientEvent::Response(resp));
                self.core
                    .enter_or_terminate(ClientInviteState::Completed, TsxTimer::D, now);
            }
            (ClientInviteState::Completed, 300..=699) => self.core.resend(),
            _ => {}
        }
    }

    /// Fires the timers due at `now`: A retransmits the INVITE and doubles
    /// its interval (no T2 cap for INVITE); B queues
    /// [`ClientEvent::Timeout`] and terminates; D and M terminate.
    pub fn handle_timeout(&mut self, now: Instant) {
        for timer in self.core.take_due(now) {
            match (self.core.state(), timer) {
                (ClientInviteState::Calling, TsxTimer::A) => {
                    self.core.retransmit(TsxTimer::A, now, None);
                }
                (ClientInviteState::Calling, TsxTimer::B) => {
                    self.core.terminate_with(ClientEvent::Timeout);
                }
                (ClientInviteState::Completed, TsxTimer::D)
                | (ClientInviteState::Accepted, TsxTimer::M) => self.core.terminate(),
                _ => {}
            }
        }
    }

    delegate_to_core!(ClientInviteState, ClientEvent);

    /// The INVITE this transaction sends.
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
    use crate::sip::transaction::test_support::{invite, parse, response, text, Clock};
    use rsipstack::sip::prelude::*;
    use rsipstack::sip::{Method, SipMessage};

    fn udp(clock: &Clock) -> ClientInviteTsx {
        ClientInviteTsx::new(
            invite(),
            Reliability::Unreliable,
            TimerConfig::default(),
            clock.ms(0),
        )
    }

    /// Drives timers up to `until_ms`, returning the times (ms) at which the
    /// INVITE was retransmitted.
    fn retransmit_times(tsx: &mut ClientInviteTsx, clock: &Clock, until_ms: u64) -> Vec<u64> {
        let mut times = Vec::new();
        while let Some(at) = tsx.poll_timeout() {
            if at > clock.ms(until_ms) {
                break;
            }
            tsx.handle_timeout(at);
            while let Some(bytes) = tsx.poll_transmit() {
                assert!(text(&bytes).starts_with("INVITE "));
                times.push((at - clock.0).as_millis() as u64);
            }
        }
        times
    }

    #[test]
    fn udp_retransmits_with_doubling_until_timer_b() {
        let clock = Clock::new();
        let mut tsx = udp(&clock);
        let first = tsx.poll_transmit();
        assert_eq!(first.as_deref(), Some(&invite().to_bytes()[..]));
        assert_eq!(tsx.poll_timeout(), Some(clock.ms(500)));
        let times = retransmit_times(&mut tsx, &clock, 31_999);
        assert_eq!(times, vec![500, 1_500, 3_500, 7_500, 15_500, 31_500]);
        assert_eq!(tsx.poll_event(), None);
        assert_eq!(tsx.poll_timeout(), Some(clock.ms(32_000)));
        tsx.handle_timeout(clock.ms(32_000));
        assert_eq!(tsx.poll_event(), Some(ClientEvent::Timeout));
        assert_eq!(tsx.poll_event(), None);
        assert!(tsx.is_terminated());
        assert_eq!(tsx.poll_timeout(), None);
    }

    #[test]
    fn provisional_stops_retransmits_and_timer_b() {
        let clock = Clock::new();
        let mut tsx = udp(&clock);
        tsx.poll_transmit();
        assert_eq!(retransmit_times(&mut tsx, &clock, 1_000), vec![500]);
        let ringing = response(&invite(), 180);
        tsx.on_response(ringing.clone(), clock.ms(1_200));
        assert_eq!(tsx.state(), ClientInviteState::Proceeding);
        assert_eq!(tsx.poll_event(), Some(ClientEvent::Response(ringing)));
        assert_eq!(tsx.poll_timeout(), None);
        tsx.handle_timeout(clock.ms(60_000));
        assert_eq!(tsx.poll_transmit(), None);
        assert_eq!(tsx.poll_event(), None);
        assert_eq!(tsx.state(), ClientInviteState::Proceeding);
    }

    #[test]
    fn busy_is_acked_once_passed_up_and_absorbed() {
        let clock = Clock::new();
        let mut tsx = udp(&clock);
        tsx.poll_transmit();
        let busy = response(&invite(), 486);
        tsx.on_response(busy.clone(), clock.ms(100));
        assert_eq!(tsx.state(), ClientInviteState::Completed);
        let ack = match tsx.poll_transmit().map(|b| parse(&b)) {
            Some(SipMessage::Request(r)) => r,
            other => panic!("expected the ACK, got {other:?}"),
        };
        assert_eq!(ack.method, Method::Ack);
        assert_eq!(TsxKey::from_request(&ack).ok().as_ref(), Some(tsx.key()));
        assert_eq!(
            ack.to_header().ok().and_then(|t| t.tag().ok().flatten()),
            Some("rtag1".into())
        );
        assert_eq!(tsx.poll_event(), Some(ClientEvent::Response(busy.clone())));

        tsx.on_response(busy, clock.ms(600));
        assert!(tsx
            .poll_transmit()
            .is_some_and(|b| text(&b).starts_with("ACK ")));
        assert_eq!(tsx.poll_transmit(), None);
        assert_eq!(tsx.poll_event(), None);

        assert_eq!(tsx.poll_timeout(), Some(clock.ms(32_100)));
        tsx.handle_timeout(clock.ms(32_099));
        assert_eq!(tsx.state(), ClientInviteState::Completed);
        tsx.handle_timeout(clock.ms(32_100));
        assert!(tsx.is_terminated());
        assert_eq!(tsx.poll_transmit(), None);
    }

    #[test]
    fn ok_is_accepted_and_every_2xx_passed_up_until_m() {
        let clock = Clock::new();
        let mut tsx = udp(&clock);
        tsx.poll_transmit();
        let ok = response(&invite(), 200);
        tsx.on_response(ok.clone(), clock.ms(2_000));
        assert_eq!(tsx.state(), ClientInviteState::Accepted);
        assert_eq!(tsx.poll_transmit(), None, "the TU ACKs a 2xx, not the tsx");
        assert_eq!(tsx.poll_event(), Some(ClientEvent::Response(ok.clone())));
        tsx.on_response(ok.clone(), clock.ms(2_500));
        assert_eq!(tsx.poll_event(), Some(ClientEvent::Response(ok)));
        tsx.on_response(response(&invite(), 486), clock.ms(2_600));
        assert_eq!(tsx.poll_event(), None);
        assert_eq!(tsx.poll_transmit(), None);
        assert_eq!(tsx.poll_timeout(), Some(clock.ms(34_000)));
        tsx.handle_timeout(clock.ms(34_000));
        assert!(tsx.is_terminated());
    }

    #[test]
    fn reliable_sends_once_and_skips_completed() {
        let clock = Clock::new();
        let mut tsx = ClientInviteTsx::new(
            invite(),
            Reliability::Reliable,
            TimerConfig::default(),
            clock.ms(0),
        );
        assert!(tsx.poll_transmit().is_some());
        assert_eq!(tsx.poll_timeout(), Some(clock.ms(32_000)));
        tsx.handle_timeout(clock.ms(16_000));
        assert_eq!(tsx.poll_transmit(), None);
        tsx.on_response(response(&invite(), 603), clock.ms(17_000));
        assert!(tsx
            .poll_transmit()
            .is_some_and(|b| text(&b).starts_with("ACK ")));
        assert!(matches!(tsx.poll_event(), Some(ClientEvent::Response(_))));
        assert!(tsx.is_terminated());
    }
}
