//! Non-INVITE client transaction (RFC 3261 §17.1.2): BYE, CANCEL, OPTIONS,
//! re-INVITE's siblings (UPDATE, INFO, …).
//!
//! ```text
//! Trying --1xx--> Proceeding --200-699--> Completed --K--> Terminated
//!   `----------200-699--------^
//! Trying/Proceeding --F--> Terminated (Timeout)
//! ```

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rsipstack::sip::{Request, Response};

use super::client_invite::{key_of, ClientEvent};
use super::key::TsxKey;
use super::timers::{backoff, Reliability, TimerConfig, TimerSet, TsxTimer, MIN_RETRANSMIT};

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

/// The non-INVITE client transaction, sans-IO.
#[derive(Debug)]
pub struct ClientNonInviteTsx {
    request: Request,
    key: TsxKey,
    rel: Reliability,
    config: TimerConfig,
    state: ClientNonInviteState,
    request_bytes: Bytes,
    retransmit_interval: Duration,
    timers: TimerSet,
    transmits: VecDeque<Bytes>,
    events: VecDeque<ClientEvent>,
}

impl ClientNonInviteTsx {
    /// Starts the transaction: queues the first transmission of `req`, arms
    /// timer E (unreliable transports) and timer F.
    pub fn new(req: Request, rel: Reliability, timers: TimerConfig, now: Instant) -> Self {
        let key = key_of(&req);
        let request_bytes = Bytes::from(req.to_bytes());
        let mut tsx = ClientNonInviteTsx {
            request: req,
            key,
            rel,
            config: timers,
            state: ClientNonInviteState::Trying,
            request_bytes: request_bytes.clone(),
            retransmit_interval: timers.t1,
            timers: TimerSet::default(),
            transmits: VecDeque::from([request_bytes]),
            events: VecDeque::new(),
        };
        if rel.is_unreliable() {
            tsx.timers.arm(TsxTimer::E, now, timers.t1);
        }
        tsx.timers
            .arm(TsxTimer::F, now, timers.duration(TsxTimer::F, rel));
        tsx
    }

    /// Feeds a response matched to this transaction: provisionals are
    /// passed up and move to Proceeding; the first final is passed up and
    /// moves to Completed (timer K); later finals are absorbed.
    pub fn on_response(&mut self, resp: Response, now: Instant) {
        let code = resp.status_code.code();
        match (self.state, code) {
            (ClientNonInviteState::Trying | ClientNonInviteState::Proceeding, 100..=199) => {
                self.state = ClientNonInviteState::Proceeding;
                self.events.push_back(ClientEvent::Response(resp));
            }
            (ClientNonInviteState::Trying | ClientNonInviteState::Proceeding, 200..=699) => {
                self.events.push_back(ClientEvent::Response(resp));
                self.timers.clear();
                let k = self.config.duration(TsxTimer::K, self.rel);
                if k.is_zero() {
                    self.terminate();
                } else {
                    self.state = ClientNonInviteState::Completed;
                    self.timers.arm(TsxTimer::K, now, k);
                }
            }
            _ => {}
        }
    }

    /// Fires the timers due at `now`: E retransmits (interval doubling up
    /// to T2 in Trying, T2 in Proceeding); F queues
    /// [`ClientEvent::Timeout`] and terminates; K terminates.
    pub fn handle_timeout(&mut self, now: Instant) {
        for timer in self.timers.take_due(now) {
            match (self.state, timer) {
                (ClientNonInviteState::Trying, TsxTimer::E) => {
                    self.transmits.push_back(self.request_bytes.clone());
                    self.retransmit_interval =
                        backoff(self.retransmit_interval, Some(self.config.t2));
                    self.timers.arm(TsxTimer::E, now, self.retransmit_interval);
                }
                (ClientNonInviteState::Proceeding, TsxTimer::E) => {
                    self.transmits.push_back(self.request_bytes.clone());
                    self.timers
                        .arm(TsxTimer::E, now, self.config.t2.max(MIN_RETRANSMIT));
                }
                (ClientNonInviteState::Trying | ClientNonInviteState::Proceeding, TsxTimer::F) => {
                    self.events.push_back(ClientEvent::Timeout);
                    self.terminate();
                }
                (ClientNonInviteState::Completed, TsxTimer::K) => self.terminate(),
                _ => {}
            }
        }
    }

    /// The next datagram/segment to send to the transaction's peer.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.transmits.pop_front()
    }

    /// The next event for the TU.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// The current state.
    pub fn state(&self) -> ClientNonInviteState {
        self.state
    }

    /// True once the transaction is over (its queues may still hold items).
    pub fn is_terminated(&self) -> bool {
        self.state == ClientNonInviteState::Terminated
    }

    /// The request this transaction sends.
    pub fn request(&self) -> &Request {
        &self.request
    }

    /// The transaction key (branch and method of the request).
    pub fn key(&self) -> &TsxKey {
        &self.key
    }

    fn terminate(&mut self) {
        self.state = ClientNonInviteState::Terminated;
        self.timers.clear();
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
