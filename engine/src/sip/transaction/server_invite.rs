//! INVITE server transaction (RFC 3261 §17.2.1, RFC 6026 §7.1), plus the
//! 2xx retransmission that RFC 3261 §13.3.1.4 gives the UAS core.
//!
//! ```text
//! Proceeding --2xx--> Accepted --L--> Terminated   (2xx resent until ACK)
//!     `--3xx-6xx--> Completed --ACK--> Confirmed --I--> Terminated
//!                       `--H--> Terminated (Timeout)
//! ```

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rsipstack::sip::{Method, Request, Response};

use super::client_invite::key_of;
use super::key::TsxKey;
use super::timers::{backoff, Reliability, TimerConfig, TimerSet, TsxTimer};
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

/// The INVITE server transaction, sans-IO.
#[derive(Debug)]
pub struct ServerInviteTsx {
    request: Request,
    key: TsxKey,
    rel: Reliability,
    config: TimerConfig,
    state: ServerInviteState,
    last_response: Option<Bytes>,
    retransmit_interval: Duration,
    ack_seen: bool,
    timers: TimerSet,
    transmits: VecDeque<Bytes>,
    events: VecDeque<ServerEvent>,
}

impl ServerInviteTsx {
    /// Starts the transaction for a received INVITE, in Proceeding.
    ///
    /// Nothing is sent: the TU must answer within 200 ms (§17.2.1), at
    /// least with `respond(build_response(&invite, StatusCode::Trying,
    /// None))`, so that the peer stops retransmitting.
    pub fn new(invite: Request, rel: Reliability, timers: TimerConfig, _now: Instant) -> Self {
        ServerInviteTsx {
            key: key_of(&invite),
            request: invite,
            rel,
            config: timers,
            state: ServerInviteState::Proceeding,
            last_response: None,
            retransmit_interval: timers.t1,
            ack_seen: false,
            timers: TimerSet::default(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// Feeds a request matched to this transaction by [`TsxKey`]: a
    /// retransmitted INVITE re-sends the last response (if any); the ACK
    /// of a non-2xx final moves Completed to Confirmed (timer I). Anything
    /// else, including an ACK outside Completed, is absorbed: a 2xx ACK
    /// belongs to the dialog, the TU reports it with
    /// [`ack_received`](Self::ack_received).
    pub fn on_request(&mut self, req: Request, now: Instant) {
        match (req.method, self.state) {
            (
                Method::Invite,
                ServerInviteState::Proceeding
                | ServerInviteState::Accepted
                | ServerInviteState::Completed,
            ) => {
                if let Some(last) = &self.last_response {
                    self.transmits.push_back(last.clone());
                }
            }
            (Method::Ack, ServerInviteState::Completed) => {
                self.timers.clear();
                let i = self.config.duration(TsxTimer::I, self.rel);
                if i.is_zero() {
                    self.terminate();
                } else {
                    self.state = ServerInviteState::Confirmed;
                    self.timers.arm(TsxTimer::I, now, i);
                }
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
        let code = resp.status_code.code();
        if !(100..=699).contains(&code) {
            return Err(TsxError::InvalidStatus(code));
        }
        match (self.state, code) {
            (ServerInviteState::Proceeding, 100..=199) => self.send(resp),
            (ServerInviteState::Proceeding | ServerInviteState::Accepted, 200..=299) => {
                if self.state == ServerInviteState::Proceeding {
                    self.state = ServerInviteState::Accepted;
                    self.timers.arm(
                        TsxTimer::L,
                        now,
                        self.config.duration(TsxTimer::L, self.rel),
                    );
                }
                self.send(resp);
                if !self.ack_seen {
                    self.retransmit_interval = self.config.t1;
                    self.timers.arm(TsxTimer::G, now, self.config.t1);
                }
            }
            (ServerInviteState::Proceeding, 300..=699) => {
                self.state = ServerInviteState::Completed;
                self.send(resp);
                if self.rel.is_unreliable() {
                    self.retransmit_interval = self.config.t1;
                    self.timers.arm(TsxTimer::G, now, self.config.t1);
                }
                self.timers.arm(
                    TsxTimer::H,
                    now,
                    self.config.duration(TsxTimer::H, self.rel),
                );
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
        if self.state == ServerInviteState::Accepted {
            self.ack_seen = true;
            self.timers.cancel(TsxTimer::G);
        }
    }

    /// Fires the timers due at `now`: G retransmits the final (interval
    /// doubling, capped at T2); H queues [`ServerEvent::Timeout`]; I
    /// terminates; L terminates, with [`ServerEvent::AckTimeout`] if the
    /// 2xx was never ACKed.
    pub fn handle_timeout(&mut self, now: Instant) {
        for timer in self.timers.take_due(now) {
            match (self.state, timer) {
                (ServerInviteState::Completed | ServerInviteState::Accepted, TsxTimer::G) => {
                    if let Some(last) = &self.last_response {
                        self.transmits.push_back(last.clone());
                    }
                    self.retransmit_interval =
                        backoff(self.retransmit_interval, Some(self.config.t2));
                    self.timers.arm(TsxTimer::G, now, self.retransmit_interval);
                }
                (ServerInviteState::Completed, TsxTimer::H) => {
                    self.events.push_back(ServerEvent::Timeout);
                    self.terminate();
                }
                (ServerInviteState::Confirmed, TsxTimer::I) => self.terminate(),
                (ServerInviteState::Accepted, TsxTimer::L) => {
                    if !self.ack_seen {
                        self.events.push_back(ServerEvent::AckTimeout);
                    }
                    self.terminate();
                }
                _ => {}
            }
        }
    }

    /// The next datagram/segment to send to the transaction's peer (the
    /// top Via's `received`/`rport` address, RFC 3581).
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.transmits.pop_front()
    }

    /// The next event for the TU.
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// The current state.
    pub fn state(&self) -> ServerInviteState {
        self.state
    }

    /// True once the transaction is over (its queues may still hold items).
    pub fn is_terminated(&self) -> bool {
        self.state == ServerInviteState::Terminated
    }

    /// The INVITE that created this transaction.
    pub fn request(&self) -> &Request {
        &self.request
    }

    /// The transaction key (INVITE branch, method INVITE).
    pub fn key(&self) -> &TsxKey {
        &self.key
    }

    fn send(&mut self, resp: Response) {
        let bytes = Bytes::from(resp.to_bytes());
        self.transmits.push_back(bytes.clone());
        self.last_response = Some(bytes);
    }

    fn terminate(&mut self) {
        self.state = ServerInviteState::Terminated;
        self.timers.clear();
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
