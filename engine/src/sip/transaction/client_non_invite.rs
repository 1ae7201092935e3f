//! Non-INVITE client transaction (RFC 3261 §17.1.2): BYE, CANCEL, OPTIONS,
//! re-INVITE's siblings (UPDATE, INFO, …).
//!
//! ```text
//! Trying --1xx--> Proceeding --200-699--> Completed --K--> Terminated
//!   `----------200-699--------^
//! Trying/Proceeding --F--> Terminated (Timeout)
//! ```

#[cfg(test)] // Named by the tests through `use super::*`.
use std::time::Duration;
use std::time::Instant;

use rsipstack::sip::{Request, Response};

use super::client_invite::ClientEvent;
use super::core::{delegate_to_core, TsxCore, TsxState};
use super::key::TsxKey;
use super::timers::{Reliability, TimerConfig, TsxTimer, MIN_RETRANSMIT};

/// States of the non-INVITE client transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientNonInviteState {
    /// Request sent, nothing heard; retransmitting (timer E) over UDP.
    Trying,
    /// A provisional arrived; retransmitting every T2 over UDP.
    Proceeding,
    /// A final arrived; absorbing retransmits until timer K.
    Completed,
    /// Done; drop the transaction after draining its queues.
    Terminated,
}

impl TsxState for ClientNonInviteState {
    const TERMINATED: Self = ClientNonInviteState::Terminated;
}

/// The non-INVITE client transaction, sans-IO.
#[derive(Debug)]
pub struct ClientNonInviteTsx {
    /// Repeats the request (timer E) while Trying or Proceeding.
    core: TsxCore<ClientNonInviteState, ClientEvent>,
}

impl ClientNonInviteTsx {
    /// Starts the transaction: queues the first transmission of `req`, arms
    /// timer E (unreliable transports) and timer F.
    pub fn new(req: Request, rel: Reliability, timers: TimerConfig, now: Instant) -> Self {
        let mut core = TsxCore::new(req, ClientNonInviteState::Trying, rel, timers);
        core.send_request(TsxTimer::E, TsxTimer::F, now);
        ClientNonInviteTsx { core }
    }

    /// Feeds a response matched to this transaction: provisionals are
    /// passed up and move to Proceeding; the first final is passed up and
    /// moves to Completed (timer K); later finals are absorbed.
    pub fn on_response(&mut self, resp: Response, now: Instant) {
        let code = resp.status_code.code();
        match (self.core.state(), code) {
            (ClientNonInviteState::Trying | ClientNonInviteState::Proceeding, 100..=199) => {
                self.core.set_state(ClientNonInviteState::Proceeding);
                self.core.emit(ClientEvent::Response(resp));
            }
            (ClientNonInviteState::Trying | ClientNonInviteState::Proceeding, 200..=699) => {
                self.core.emit(ClientEvent::Response(resp));
                self.core
                    .enter_or_terminate(ClientNonInviteState::Completed, TsxTimer::K, now);
            }
            _ => {}
        }
    }

    /// Fires the timers due at `now`: E retransmits (interval doubling up
    /// to T2 in Trying, T2 in Proceeding); F queues
    /// [`ClientEvent::Timeout`] and terminates; K terminates.
    pub fn handle_timeout(&mut self, now: Instant) {
        for timer in self.core.take_due(now) {
            match (self.core.state(), timer) {
                (ClientNonInviteState::Trying, TsxTimer::E) => {
                    let t2 = self.core.config().t2;
                    self.core.retransmit(TsxTimer::E, now, Some(t2));
                }
                (ClientNonInviteState::Proceeding, TsxTimer::E) => {
                    let t2 = self.core.config().t2;
                    self.core.resend();
                    self.core
                        .arm_after(TsxTimer::E, now, t2.max(MIN_RETRANSMIT));
                }
                (ClientNonInviteState::Trying | ClientNonInviteState::Proceeding, TsxTimer::F) => {
                    self.core.terminate_with(ClientEvent::Timeout);
                }
                (ClientNonInviteState::Completed, TsxTimer::K) => self.core.terminate(),
                _ => {}
            }
        }
    }

    delegate_to_core!(ClientNonInviteState, ClientEvent);

    /// The request this transaction sends.
    pub fn request(&self) -> &Request {
        self.core.request()
    }

    /// The transaction key (branch and method of the request).
    pub fn key(&self) -> &TsxKey {
        self.core.key()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::transaction::test_support::{options, response, text, Clock};

    fn udp(clock: &Clock) -> ClientNonInviteTsx {
        ClientNonInviteTsx::new(
            options(),
            Reliability::Unreliable,
            TimerConfig::default(),
            clock.ms(0),
        )
    }

    /// Fires every timer up to `until_ms`; returns when (ms) the request went
    /// out again.
    fn retransmit_times(tsx: &mut ClientNonInviteTsx, clock: &Clock, until_ms: u64) -> Vec<u64> {
        let mut times = Vec::new();
        while let Some(at) = tsx.poll_timeout() {
            if at > clock.ms(until_ms) {
                break;
            }
            tsx.handle_timeout(at);
            while let Some(bytes) = tsx.poll_transmit() {
                assert!(text(&bytes).starts_with("OPTIONS "));
                times.push((at - clock.0).as_millis() as u64);
            }
        }
        times
    }

    #[test]
    fn timer_e_doubles_to_t2_then_f_times_out() {
        let clock = Clock::new();
        let mut tsx = udp(&clock);
        assert!(tsx.poll_transmit().is_some());
        let times = retransmit_times(&mut tsx, &clock, 31_999);
        // Intervals 0.5, 1, 2, 4, 4, 4, ...
        assert_eq!(
            times,
            vec![500, 1_500, 3_500, 7_500, 11_500, 15_500, 19_500, 23_500, 27_500, 31_500]
        );
        assert_eq!(tsx.poll_timeout(), Some(clock.ms(32_000)));
        tsx.handle_timeout(clock.ms(32_000));
        assert_eq!(tsx.poll_event(), Some(ClientEvent::Timeout));
        assert!(tsx.is_terminated());
        assert_eq!(tsx.poll_timeout(), None);
    }

    #[test]
    fn proceeding_retransmits_every_t2() {
        let clock = Clock::new();
        let mut tsx = udp(&clock);
        tsx.poll_transmit();
        assert_eq!(retransmit_times(&mut tsx, &clock, 600), vec![500]);
        let trying = response(&options(), 100);
        tsx.on_response(trying.clone(), clock.ms(700));
        assert_eq!(tsx.state(), ClientNonInviteState::Proceeding);
        assert_eq!(tsx.poll_event(), Some(ClientEvent::Response(trying)));
        // E was armed for 1.5 s in Trying; from then on every T2.
        assert_eq!(
            retransmit_times(&mut tsx, &clock, 14_000),
            vec![1_500, 5_500, 9_500, 13_500]
        );
    }

    #[test]
    fn final_completes_then_k_terminates() {
        let clock = Clock::new();
        let mut tsx = udp(&clock);
        tsx.poll_transmit();
        let ok = response(&options(), 200);
        tsx.on_response(ok.clone(), clock.ms(300));
        assert_eq!(tsx.state(), ClientNonInviteState::Completed);
        assert_eq!(tsx.poll_event(), Some(ClientEvent::Response(ok.clone())));
        tsx.on_response(ok, clock.ms(400));
        assert_eq!(tsx.poll_event(), None);
        assert_eq!(tsx.poll_transmit(), None);
        assert_eq!(tsx.poll_timeout(), Some(clock.ms(5_300)));
        tsx.handle_timeout(clock.ms(5_300));
        assert!(tsx.is_terminated());
    }

    #[test]
    fn zero_t2_never_makes_a_timer_always_due() {
        let clock = Clock::new();
        let config = TimerConfig {
            t2: Duration::ZERO,
            ..TimerConfig::default()
        };
        let mut tsx =
            ClientNonInviteTsx::new(options(), Reliability::Unreliable, config, clock.ms(0));
        tsx.on_response(response(&options(), 100), clock.ms(0));
        let mut last = clock.ms(0);
        let mut fired = 0;
        while let Some(at) = tsx.poll_timeout() {
            assert!(
                at > last || fired == 0,
                "timer due again at the same instant"
            );
            tsx.handle_timeout(at);
            last = at;
            fired += 1;
            assert!(fired <= 40_000, "timer F never came");
        }
        assert_eq!(last, clock.ms(32_000));
        assert!(tsx.is_terminated());
    }

    #[test]
    fn reliable_has_no_e_and_no_k() {
        let clock = Clock::new();
        let mut tsx = ClientNonInviteTsx::new(
            options(),
            Reliability::Reliable,
            TimerConfig::default(),
            clock.ms(0),
        );
        assert!(tsx.poll_transmit().is_some());
        assert_eq!(tsx.poll_timeout(), Some(clock.ms(32_000)));
        tsx.on_response(response(&options(), 404), clock.ms(10));
        assert!(tsx.poll_event().is_some());
        assert!(tsx.is_terminated());
        assert_eq!(tsx.poll_transmit(), None);
    }
}
