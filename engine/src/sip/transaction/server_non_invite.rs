//! Non-INVITE server transaction (RFC 3261 §17.2.2).
//!
//! ```text
//! Trying --1xx--> Proceeding --200-699--> Completed --J--> Terminated
//!   `----------200-699--------^
//! ```

use std::collections::VecDeque;
use std::time::Instant;

use bytes::Bytes;
use rsipstack::sip::{Request, Response};

use super::client_invite::key_of;
use super::key::TsxKey;
use super::server_invite::ServerEvent;
use super::timers::{Reliability, TimerConfig, TimerSet, TsxTimer};
use super::TsxError;

/// States of the non-INVITE server transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerNonInviteState {
    /// Request received, nothing sent; retransmits are absorbed.
    Trying,
    /// A provisional was sent; retransmits get it again.
    Proceeding,
    /// A final was sent; retransmits get it again until timer J.
    Completed,
    /// Done; drop the transaction after draining its queues.
    Terminated,
}

/// The non-INVITE server transaction, sans-IO.
#[derive(Debug)]
pub struct ServerNonInviteTsx {
    request: Request,
    key: TsxKey,
    rel: Reliability,
    config: TimerConfig,
    state: ServerNonInviteState,
    last_response: Option<Bytes>,
    timers: TimerSet,
    transmits: VecDeque<Bytes>,
    events: VecDeque<ServerEvent>,
}

impl ServerNonInviteTsx {
    /// Starts the transaction for a received request, in Trying. Nothing
    /// is sent until the TU responds.
    pub fn new(req: Request, rel: Reliability, timers: TimerConfig, _now: Instant) -> Self {
        ServerNonInviteTsx {
            key: key_of(&req),
            request: req,
            rel,
            config: timers,
            state: ServerNonInviteState::Trying,
            last_response: None,
            timers: TimerSet::default(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// Feeds a retransmission of the request: in Proceeding and Completed
    /// the last response is sent again; in Trying it is absorbed.
    pub fn on_request(&mut self, _req: Request, _now: Instant) {
        if matches!(
            self.state,
            ServerNonInviteState::Proceeding | ServerNonInviteState::Completed
        ) {
            if let Some(last) = &self.last_response {
                self.transmits.push_back(last.clone());
            }
        }
    }

    /// Sends a response from the TU: 1xx → Proceeding; 200–699 → Completed
    /// and timer J (64·T1 over UDP; over TCP the transaction ends at once).
    /// Anything after the final is [`TsxError::InvalidState`].
    pub fn respond(&mut self, resp: Response, now: Instant) -> Result<(), TsxError> {
        let code = resp.status_code.code();
        if !(100..=699).contains(&code) {
            return Err(TsxError::InvalidStatus(code));
        }
        if !matches!(
            self.state,
            ServerNonInviteState::Trying | ServerNonInviteState::Proceeding
        ) {
            return Err(TsxError::InvalidState);
        }
        let bytes = Bytes::from(resp.to_bytes());
        self.transmits.push_back(bytes.clone());
        self.last_response = Some(bytes);
        if code < 200 {
            self.state = ServerNonInviteState::Proceeding;
            return Ok(());
        }
        let j = self.config.duration(TsxTimer::J, self.rel);
        if j.is_zero() {
            self.terminate();
        } else {
            self.state = ServerNonInviteState::Completed;
            self.timers.arm(TsxTimer::J, now, j);
        }
        Ok(())
    }

    /// Fires the timers due at `now`: J terminates.
    pub fn handle_timeout(&mut self, now: Instant) {
        for timer in self.timers.take_due(now) {
            if (self.state, timer) == (ServerNonInviteState::Completed, TsxTimer::J) {
                self.terminate();
            }
        }
    }

    /// The next datagram/segment to send to the transaction's peer.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.transmits.pop_front()
    }

    /// The next event for the TU. Never yields today: a non-INVITE server
    /// transaction has no timeout the TU must hear about (§17.2.2); it is
    /// here so drivers handle all transactions alike.
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// The current state.
    pub fn state(&self) -> ServerNonInviteState {
        self.state
    }

    /// True once the transaction is over (its queues may still hold items).
    pub fn is_terminated(&self) -> bool {
        self.state == ServerNonInviteState::Terminated
    }

    /// The request that created this transaction.
    pub fn request(&self) -> &Request {
        &self.request
    }

    /// The transaction key (branch and method of the request).
    pub fn key(&self) -> &TsxKey {
        &self.key
    }

    fn terminate(&mut self) {
        self.state = ServerNonInviteState::Terminated;
        self.timers.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::transaction::test_support::{options, response, text, Clock};

    fn tsx(rel: Reliability, clock: &Clock) -> ServerNonInviteTsx {
        ServerNonInviteTsx::new(options(), rel, TimerConfig::default(), clock.ms(0))
    }

    #[test]
    fn retransmission_gets_the_last_response_until_j() {
        let clock = Clock::new();
        let mut tsx = tsx(Reliability::Unreliable, &clock);
        tsx.on_request(options(), clock.ms(100));
        assert_eq!(tsx.poll_transmit(), None, "Trying absorbs");
        assert_eq!(
            tsx.respond(response(&options(), 100), clock.ms(150)),
            Ok(())
        );
        assert_eq!(tsx.state(), ServerNonInviteState::Proceeding);
        assert!(tsx
            .poll_transmit()
            .is_some_and(|b| text(&b).starts_with("SIP/2.0 100 ")));
        tsx.on_request(options(), clock.ms(500));
        assert!(tsx
            .poll_transmit()
            .is_some_and(|b| text(&b).starts_with("SIP/2.0 100 ")));

        assert_eq!(
            tsx.respond(response(&options(), 200), clock.ms(1_000)),
            Ok(())
        );
        assert_eq!(tsx.state(), ServerNonInviteState::Completed);
        assert!(tsx
            .poll_transmit()
            .is_some_and(|b| text(&b).starts_with("SIP/2.0 200 ")));
        tsx.on_request(options(), clock.ms(1_500));
        assert!(tsx
            .poll_transmit()
            .is_some_and(|b| text(&b).starts_with("SIP/2.0 200 ")));
        assert_eq!(tsx.poll_transmit(), None);
        assert_eq!(
            tsx.respond(response(&options(), 500), clock.ms(1_600)),
            Err(TsxError::InvalidState)
        );

        assert_eq!(tsx.poll_timeout(), Some(clock.ms(33_000)));
        tsx.handle_timeout(clock.ms(32_999));
        assert_eq!(tsx.state(), ServerNonInviteState::Completed);
        tsx.handle_timeout(clock.ms(33_000));
        assert!(tsx.is_terminated());
        assert_eq!(tsx.poll_event(), None);
    }

    #[test]
    fn reliable_j_is_zero() {
        let clock = Clock::new();
        let mut tsx = tsx(Reliability::Reliable, &clock);
        assert_eq!(tsx.respond(response(&options(), 200), clock.ms(10)), Ok(()));
        assert!(tsx.is_terminated());
        assert!(tsx.poll_transmit().is_some());
        assert_eq!(tsx.poll_timeout(), None);
    }
}
