//! The plumbing the four transaction state machines share.
//!
//! A [`TsxCore`] holds everything a transaction has besides its
//! transitions: its request and key, the transport's reliability and the
//! timer values, the current state (with Terminated handling), the armed
//! timers, the queues drained by `poll_transmit` / `poll_event`, and the
//! one message it repeats (the request or ACK for a client, the last
//! response for a server) with the current retransmit interval. Each state
//! machine keeps only its own `match` on state and input, and gets its
//! public `poll_*` / `state` / `is_terminated` methods from
//! [`delegate_to_core!`].

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rsipstack::sip::{Request, Response};

use super::key::TsxKey;
use super::timers::{backoff, Reliability, TimerConfig, TimerSet, TsxTimer};
use super::TsxError;

/// A transaction's state enum: it has a final Terminated state.
pub(crate) trait TsxState: Copy + Eq {
    /// The state in which the transaction is over.
    const TERMINATED: Self;
}

/// What every transaction holds besides its transitions; `S` is its state
/// enum, `E` the events it reports to the TU.
#[derive(Debug)]
pub(crate) struct TsxCore<S, E> {
    request: Request,
    key: TsxKey,
    rel: Reliability,
    config: TimerConfig,
    state: S,
    timers: TimerSet,
    transmits: VecDeque<Bytes>,
    events: VecDeque<E>,
    /// What a retransmission (or an absorbed retransmission from the peer)
    /// sends again.
    repeat: Option<Bytes>,
    /// The current retransmit interval of the timer that repeats.
    interval: Duration,
}

impl<S: TsxState, E> TsxCore<S, E> {
    /// A transaction for `request` in `state`, with nothing queued or armed.
    pub(crate) fn new(request: Request, state: S, rel: Reliability, config: TimerConfig) -> Self {
        TsxCore {
            key: key_of(&request),
            request,
            rel,
            config,
            state,
            timers: TimerSet::default(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            repeat: None,
            interval: config.t1,
        }
    }

    /// The request the transaction was created with.
    pub(crate) fn request(&self) -> &Request {
        &self.request
    }

    /// The transaction key.
    pub(crate) fn key(&self) -> &TsxKey {
        &self.key
    }

    /// Whether the transport is reliable.
    pub(crate) fn rel(&self) -> Reliability {
        self.rel
    }

    /// The timer values.
    pub(crate) fn config(&self) -> TimerConfig {
        self.config
    }

    /// The current state.
    pub(crate) fn state(&self) -> S {
        self.state
    }

    /// Moves to `state` (timers are left as they are).
    pub(crate) fn set_state(&mut self, state: S) {
        self.state = state;
    }

    /// True once the transaction is over.
    pub(crate) fn is_terminated(&self) -> bool {
        self.state == S::TERMINATED
    }

    /// Ends the transaction: Terminated, every timer disarmed. The queues
    /// keep what they hold until drained.
    pub(crate) fn terminate(&mut self) {
        self.state = S::TERMINATED;
        self.timers.clear();
    }

    /// Reports `event` to the TU, then terminates.
    pub(crate) fn terminate_with(&mut self, event: E) {
        self.emit(event);
        self.terminate();
    }

    /// Disarms every timer and enters `state`, which lasts until `timer`
    /// fires; when `timer` is zero on this transport (Completed and
    /// Confirmed on reliable transports), terminates at once instead.
    pub(crate) fn enter_or_terminate(&mut self, state: S, timer: TsxTimer, now: Instant) {
        self.timers.clear();
        let wait = self.config.duration(timer, self.rel);
        if wait.is_zero() {
            self.terminate();
        } else {
            self.state = state;
            self.timers.arm(timer, now, wait);
        }
    }

    /// Starts a client transaction: queues the request, kept for
    /// retransmission by `retransmit` (armed at T1 on unreliable transports
    /// only), and arms `timeout`.
    pub(crate) fn send_request(&mut self, retransmit: TsxTimer, timeout: TsxTimer, now: Instant) {
        self.send_repeatable(self.request.to_bytes());
        if self.rel.is_unreliable() {
            self.start_retransmit(retransmit, now);
        }
        self.arm(timeout, now);
    }

    /// Queues `wire` for the peer and keeps it as what
    /// [`resend`](Self::resend) and [`retransmit`](Self::retransmit) send.
    pub(crate) fn send_repeatable(&mut self, wire: Vec<u8>) {
        let bytes = Bytes::from(wire);
        self.transmits.push_back(bytes.clone());
        self.repeat = Some(bytes);
    }

    /// Queues the kept message again, if there is one.
    pub(crate) fn resend(&mut self) {
        if let Some(bytes) = &self.repeat {
            self.transmits.push_back(bytes.clone());
        }
    }

    /// Queues `event` for the TU.
    pub(crate) fn emit(&mut self, event: E) {
        self.events.push_back(event);
    }

    /// Arms `timer` for its configured value on this transport.
    pub(crate) fn arm(&mut self, timer: TsxTimer, now: Instant) {
        let after = self.config.duration(timer, self.rel);
        self.timers.arm(timer, now, after);
    }

    /// Arms `timer` to fire `after` `now`.
    pub(crate) fn arm_after(&mut self, timer: TsxTimer, now: Instant, after: Duration) {
        self.timers.arm(timer, now, after);
    }

    /// Disarms `timer`.
    pub(crate) fn cancel(&mut self, timer: TsxTimer) {
        self.timers.cancel(timer);
    }

    /// Disarms every timer.
    pub(crate) fn clear_timers(&mut self) {
        self.timers.clear();
    }

    /// Disarms and returns the timers due at `now`, earliest first.
    pub(crate) fn take_due(&mut self, now: Instant) -> Vec<TsxTimer> {
        self.timers.take_due(now)
    }

    /// Starts the retransmit timer `timer` at T1.
    pub(crate) fn start_retransmit(&mut self, timer: TsxTimer, now: Instant) {
        self.interval = self.config.t1;
        self.timers.arm(timer, now, self.interval);
    }

    /// `timer` fired: sends the kept message again and re-arms `timer` at
    /// the doubled interval (capped at `cap` when given).
    pub(crate) fn retransmit(&mut self, timer: TsxTimer, now: Instant, cap: Option<Duration>) {
        self.resend();
        self.interval = backoff(self.interval, cap);
        self.timers.arm(timer, now, self.interval);
    }

    /// The next queued datagram/segment for the peer.
    pub(crate) fn poll_transmit(&mut self) -> Option<Bytes> {
        self.transmits.pop_front()
    }

    /// The next queued event for the TU.
    pub(crate) fn poll_event(&mut self) -> Option<E> {
        self.events.pop_front()
    }

    /// The earliest armed deadline.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }
}

/// The status code of a response the TU hands to a server transaction, if
/// it is a valid SIP status (100–699).
pub(crate) fn checked_status(resp: &Response) -> Result<u16, TsxError> {
    let code = resp.status_code.code();
    if (100..=699).contains(&code) {
        Ok(code)
    } else {
        Err(TsxError::InvalidStatus(code))
    }
}

/// The key of a request the transaction layer was given (built by us, or
/// already matched by key); an empty branch if it has no usable one.
fn key_of(req: &Request) -> TsxKey {
    TsxKey::from_request(req).unwrap_or_else(|_| TsxKey {
        branch: String::new(),
        method: req.method,
    })
}

/// The public draining and inspection methods every transaction has, as
/// delegations to its `core: TsxCore<$state, $event>` field. Invoke inside
/// the transaction's inherent `impl`, which must define `handle_timeout`.
macro_rules! delegate_to_core {
    ($state:ty, $event:ty) => {
        /// The next datagram/segment to send to the transaction's peer.
        pub fn poll_transmit(&mut self) -> Option<::bytes::Bytes> {
            self.core.poll_transmit()
        }

        /// The next event for the TU.
        pub fn poll_event(&mut self) -> Option<$event> {
            self.core.poll_event()
        }

        /// When [`handle_timeout`](Self::handle_timeout) should next be called.
        pub fn poll_timeout(&self) -> Option<::std::time::Instant> {
            self.core.poll_timeout()
        }

        /// The current state.
        pub fn state(&self) -> $state {
            self.core.state()
        }

        /// True once the transaction is over (its queues may still hold items).
        pub fn is_terminated(&self) -> bool {
            self.core.is_terminated()
        }
    };
}
pub(crate) use delegate_to_core;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::transaction::test_support::{invite, request, response, Clock};

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum State {
        Open,
        Waiting,
        Done,
    }

    impl TsxState for State {
        const TERMINATED: Self = State::Done;
    }

    fn core(rel: Reliability) -> TsxCore<State, u8> {
        TsxCore::new(invite(), State::Open, rel, TimerConfig::default())
    }

    #[test]
    fn resend_repeats_the_last_kept_message_only() {
        let mut core = core(Reliability::Unreliable);
        core.resend();
        assert_eq!(core.poll_transmit(), None, "nothing kept yet");
        core.send_repeatable(b"one".to_vec());
        core.send_repeatable(b"two".to_vec());
        core.resend();
        let sent: Vec<_> = std::iter::from_fn(|| core.poll_transmit()).collect();
        assert_eq!(sent, [&b"one"[..], b"two", b"two"]);
    }

    #[test]
    fn retransmit_backs_off_from_t1() {
        let clock = Clock::new();
        let mut core = core(Reliability::Unreliable);
        core.send_repeatable(b"req".to_vec());
        core.start_retransmit(TsxTimer::A, clock.ms(0));
        let mut at = Vec::new();
        while let Some(due) = core.poll_timeout().filter(|t| *t <= clock.ms(8_000)) {
            assert_eq!(core.take_due(due), vec![TsxTimer::A]);
            core.retransmit(TsxTimer::A, due, Some(Duration::from_secs(2)));
            at.push((due - clock.0).as_millis());
        }
        assert_eq!(at, vec![500, 1_500, 3_500, 5_500, 7_500]);
        assert_eq!(core.poll_transmit().as_deref(), Some(&b"req"[..]));
        assert_eq!(std::iter::from_fn(|| core.poll_transmit()).count(), 5);
    }

    #[test]
    fn enter_or_terminate_waits_only_on_unreliable() {
        let clock = Clock::new();
        let mut udp = core(Reliability::Unreliable);
        udp.arm(TsxTimer::B, clock.ms(0));
        udp.enter_or_terminate(State::Waiting, TsxTimer::K, clock.ms(10));
        assert_eq!(udp.state(), State::Waiting);
        assert_eq!(udp.poll_timeout(), Some(clock.ms(5_010)), "B was cleared");

        let mut tcp = core(Reliability::Reliable);
        tcp.arm(TsxTimer::B, clock.ms(0));
        tcp.enter_or_terminate(State::Waiting, TsxTimer::K, clock.ms(10));
        assert!(tcp.is_terminated());
        assert_eq!(tcp.poll_timeout(), None);
    }

    #[test]
    fn terminate_with_reports_then_ends() {
        let clock = Clock::new();
        let mut core = core(Reliability::Unreliable);
        core.arm(TsxTimer::F, clock.ms(0));
        core.emit(1);
        core.terminate_with(2);
        assert!(core.is_terminated());
        assert_eq!(core.poll_timeout(), None);
        assert_eq!(core.poll_event(), Some(1));
        assert_eq!(core.poll_event(), Some(2));
        assert_eq!(core.poll_event(), None);
    }

    #[test]
    fn status_outside_100_to_699_is_rejected() {
        assert_eq!(checked_status(&response(&invite(), 180)), Ok(180));
        assert_eq!(
            checked_status(&response(&invite(), 700)),
            Err(TsxError::InvalidStatus(700))
        );
    }

    #[test]
    fn key_of_a_request_without_branch_is_empty() {
        let core: TsxCore<State, u8> = TsxCore::new(
            request("OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h:5060\r\n\r\n"),
            State::Open,
            Reliability::Reliable,
            TimerConfig::default(),
        );
        assert_eq!(core.key().branch, "");
        assert_eq!(core.key().method, rsipstack::sip::Method::Options);
        assert_eq!(core.request().method, rsipstack::sip::Method::Options);
    }
}
