//! Non-INVITE server transaction (RFC 3261 §17.2.2).
//!
//! ```text
//! Trying --1xx--> Proceeding --200-699--> Completed --J--> Terminated
//!   `----------200-699--------^
//! ```

use std::time::Instant;

use rsipstack::sip::{Request, Response};

use super::core::{checked_status, delegate_to_core, TsxCore, TsxState};
use super::key::TsxKey;
use super::server_invite::ServerEvent;
use super::timers::{Reliability, TimerConfig, TsxTimer};
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

impl TsxState for ServerNonInviteState {
    const TERMINATED: Self = ServerNonInviteState::Terminated;
}

/// The non-INVITE server transaction, sans-IO.
///
/// Its `poll_event` never yields today: a non-INVITE server transaction
/// has no timeout the TU must hear about (§17.2.2); it is there so drivers
/// handle all transactions alike.
#[derive(Debug)]
pub struct ServerNonInviteTsx {
    /// Repeats the last response to retransmitted requests.
    core: TsxCore<ServerNonInviteState, ServerEvent>,
}

impl ServerNonInviteTsx {
    /// Starts the transaction for a received request, in Trying. Nothing
    /// is sent until the TU responds.
    pub fn new(req: Request, rel: Reliability, timers: TimerConfig, _now: Instant) -> Self {
        ServerNonInviteTsx {
            core: TsxCore::new(req, ServerNonInviteState::Trying, rel, timers),
        }
    }

    /// Feeds a retransmission of the request: in Proceeding and Completed
    /// the last response is sent again; in Trying it is absorbed.
    pub fn on_request(&mut self, _req: Request, _now: Instant) {
        if matches!(
            self.core.state(),
            ServerNonInviteState::Proceeding | ServerNonInviteState::Completed
        ) {
            self.core.resend();
        }
    }

    /// Sends a response from the TU: 1xx → Proceeding; 200–699 → Completed
    /// and timer J (64·T1 over UDP; over TCP the transaction ends at once).
    /// Anything after the final is [`TsxError::InvalidState`].
    pub fn respond(&mut self, resp: Response, now: Instant) -> Result<(), TsxError> {
        let code = checked_status(&resp)?;
        if !matches!(
            self.core.state(),
            ServerNonInviteState::Trying | ServerNonInviteState::Proceeding
        ) {
            return Err(TsxError::InvalidState);
        }
        self.core.send_repeatable(resp.to_bytes());
        if code < 200 {
            self.core.set_state(ServerNonInviteState::Proceeding);
        } else {
            self.core
                .enter_or_terminate(ServerNonInviteState::Completed, TsxTimer::J, now);
        }
        Ok(())
    }

    /// Fires the timers due at `now`: J terminates.
    pub fn handle_timeout(&mut self, now: Instant) {
        for timer in self.core.take_due(now) {
            if (self.core.state(), timer) == (ServerNonInviteState::Completed, TsxTimer::J) {
                self.core.terminate();
            }
        }
    }

    delegate_to_core!(ServerNonInviteState, ServerEvent);

    /// The request that created this transaction.
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
