//! RFC 3261 §17 timer values (Table 4) and the per-transaction timer set.
//!
//! All timers of all four transaction kinds live in one enum, [`TsxTimer`];
//! [`TimerConfig::duration`] gives each one's first value for a transport's
//! [`Reliability`]. Nothing here reads a clock: deadlines are computed from a
//! `now` the caller passes in.

use std::time::{Duration, Instant};

use rsipstack::sip::Transport;

/// Base timer values T1, T2 and T4 (RFC 3261 §17.1.1.1 and Table 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerConfig {
    /// RTT estimate: first retransmit interval and the unit of the 64·T1
    /// timeouts (default 500 ms).
    pub t1: Duration,
    /// Cap on retransmit intervals for non-INVITE requests and responses
    /// to INVITE (default 4 s).
    pub t2: Duration,
    /// Maximum time a message stays in the network (default 5 s).
    pub t4: Duration,
}

impl Default for TimerConfig {
    fn default() -> Self {
        Self {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

/// Timer D's value on unreliable transports ("at least 32 s", §17.1.1.2).
const TIMER_D_UNRELIABLE: Duration = Duration::from_secs(32);

impl TimerConfig {
    /// 64·T1: the transaction timeout used by timers B, F, H, J, L and M.
    pub fn t1_x64(&self) -> Duration {
        self.t1.saturating_mul(64)
    }

    /// The first (or only) value of `timer` on a transport of the given
    /// reliability. Zero means "fires at once": the state it guards is
    /// skipped. Retransmit timers (A, E, G) are zero on reliable transports
    /// because nothing is retransmitted there.
    pub fn duration(&self, timer: TsxTimer, rel: Reliability) -> Duration {
        let unreliable_only = |d: Duration| match rel {
            Reliability::Unreliable => d,
            Reliability::Reliable => Duration::ZERO,
        };
        match timer {
            TsxTimer::A | TsxTimer::E | TsxTimer::G => unreliable_only(self.t1),
            TsxTimer::B | TsxTimer::F | TsxTimer::H | TsxTimer::L | TsxTimer::M => self.t1_x64(),
            TsxTimer::D => unreliable_only(TIMER_D_UNRELIABLE.max(self.t1_x64())),
            TsxTimer::I | TsxTimer::K => unreliable_only(self.t4),
            TsxTimer::J => unreliable_only(self.t1_x64()),
        }
    }
}

/// Every RFC 3261 / RFC 6026 transaction timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TsxTimer {
    /// INVITE client: request retransmit, starts at T1 and doubles without
    /// cap (unreliable only).
    A,
    /// INVITE client: transaction timeout in Calling, 64·T1.
    B,
    /// INVITE client: wait in Completed for final-response retransmits,
    /// 32 s unreliable, 0 reliable.
    D,
    /// Non-INVITE client: request retransmit, T1 doubling capped at T2;
    /// T2 in Proceeding (unreliable only).
    E,
    /// Non-INVITE client: transaction timeout, 64·T1.
    F,
    /// INVITE server: response retransmit, T1 doubling capped at T2. Used
    /// for the non-2xx final in Completed (unreliable only) and for the 2xx
    /// in Accepted (all transports, RFC 3261 §13.3.1.4).
    G,
    /// INVITE server: wait for the ACK of a non-2xx final, 64·T1.
    H,
    /// INVITE server: absorb ACK retransmits in Confirmed, T4 unreliable,
    /// 0 reliable.
    I,
    /// Non-INVITE server: absorb request retransmits in Completed, 64·T1
    /// unreliable, 0 reliable.
    J,
    /// Non-INVITE client: absorb response retransmits in Completed, T4
    /// unreliable, 0 reliable.
    K,
    /// INVITE server (RFC 6026): lifetime of Accepted, 64·T1; ends the
    /// 2xx retransmits and reports a missing ACK.
    L,
    /// INVITE client (RFC 6026): lifetime of Accepted, 64·T1; 2xx
    /// retransmits and forked 2xx are passed to the TU until it fires.
    M,
}

impl TsxTimer {
    const ALL: [TsxTimer; 12] = [
        TsxTimer::A,
        TsxTimer::B,
        TsxTimer::D,
        TsxTimer::E,
        TsxTimer::F,
        TsxTimer::G,
        TsxTimer::H,
        TsxTimer::I,
        TsxTimer::J,
        TsxTimer::K,
        TsxTimer::L,
        TsxTimer::M,
    ];

    fn index(self) -> usize {
        match self {
            TsxTimer::A => 0,
            TsxTimer::B => 1,
            TsxTimer::D => 2,
            TsxTimer::E => 3,
            TsxTimer::F => 4,
            TsxTimer::G => 5,
            TsxTimer::H => 6,
            TsxTimer::I => 7,
            TsxTimer::J => 8,
            TsxTimer::K => 9,
            TsxTimer::L => 10,
            TsxTimer::M => 11,
        }
    }
}

/// Whether the transport retransmits for us (RFC 3261 §17: reliable
/// transports disable the retransmit timers and zero D, I, J and K).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reliability {
    /// UDP: the transaction retransmits.
    Unreliable,
    /// TCP, TLS, SCTP, WebSocket.
    Reliable,
}

impl Reliability {
    /// The reliability of a SIP transport: only UDP is unreliable.
    pub fn of_transport(transport: Transport) -> Self {
        match transport {
            Transport::Udp => Reliability::Unreliable,
            _ => Reliability::Reliable,
        }
    }

    /// True for [`Reliability::Unreliable`].
    pub fn is_unreliable(self) -> bool {
        self == Reliability::Unreliable
    }
}

/// The armed timers of one transaction: at most one deadline per timer.
#[derive(Debug, Clone, Default)]
pub(crate) struct TimerSet {
    deadlines: [Option<Instant>; 12],
}

impl TimerSet {
    /// Arms (or re-arms) `timer` to fire `after` `now`. A deadline past
    /// the end of `Instant` (an absurd configuration) is never armed.
    pub(crate) fn arm(&mut self, timer: TsxTimer, now: Instant, after: Duration) {
        if let Some(slot) = self.deadlines.get_mut(timer.index()) {
            *slot = now.checked_add(after);
        }
    }

    /// Disarms `timer`.
    pub(crate) fn cancel(&mut self, timer: TsxTimer) {
        if let Some(slot) = self.deadlines.get_mut(timer.index()) {
            *slot = None;
        }
    }

    /// Disarms every timer.
    pub(crate) fn clear(&mut self) {
        self.deadlines = [None; 12];
    }

    /// The earliest armed deadline.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.deadlines.iter().flatten().min().copied()
    }

    /// Disarms and returns the timers due at `now`, earliest first. Timers
    /// re-armed while handling these are left for the next call, so one
    /// `handle_timeout` always ends.
    pub(crate) fn take_due(&mut self, now: Instant) -> Vec<TsxTimer> {
        let mut due: Vec<(Instant, TsxTimer)> = TsxTimer::ALL
            .iter()
            .filter_map(|t| {
                let at = self.deadlines.get(t.index()).copied().flatten()?;
                (at <= now).then_some((at, *t))
            })
            .collect();
        due.sort_by_key(|(at, _)| *at);
        for (_, t) in &due {
            self.cancel(*t);
        }
        due.into_iter().map(|(_, t)| t).collect()
    }
}

/// The shortest retransmit interval, so that a zero T1/T2 in the config
/// cannot make a driver spin on a timer that is always due.
pub(crate) const MIN_RETRANSMIT: Duration = Duration::from_millis(1);

/// The next retransmit interval: doubled, capped at `cap` when given, and
/// never below [`MIN_RETRANSMIT`].
pub(crate) fn backoff(interval: Duration, cap: Option<Duration>) -> Duration {
    let doubled = interval.saturating_mul(2);
    let next = match cap {
        Some(cap) => doubled.min(cap),
        None => doubled,
    };
    next.max(MIN_RETRANSMIT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_4_defaults() {
        let c = TimerConfig::default();
        let u = Reliability::Unreliable;
        let r = Reliability::Reliable;
        assert_eq!(c.duration(TsxTimer::A, u), Duration::from_millis(500));
        assert_eq!(c.duration(TsxTimer::A, r), Duration::ZERO);
        for t in [
            TsxTimer::B,
            TsxTimer::F,
            TsxTimer::H,
            TsxTimer::L,
            TsxTimer::M,
        ] {
            assert_eq!(c.duration(t, u), Duration::from_secs(32), "{t:?}");
            assert_eq!(c.duration(t, r), Duration::from_secs(32), "{t:?}");
        }
        assert_eq!(c.duration(TsxTimer::D, u), Duration::from_secs(32));
        assert_eq!(c.duration(TsxTimer::J, u), Duration::from_secs(32));
        assert_eq!(c.duration(TsxTimer::I, u), Duration::from_secs(5));
        assert_eq!(c.duration(TsxTimer::K, u), Duration::from_secs(5));
        for t in [TsxTimer::D, TsxTimer::I, TsxTimer::J, TsxTimer::K] {
            assert_eq!(c.duration(t, r), Duration::ZERO, "{t:?}");
        }
    }

    #[test]
    fn reliability_of_transport() {
        assert_eq!(
            Reliability::of_transport(Transport::Udp),
            Reliability::Unreliable
        );
        assert_eq!(
            Reliability::of_transport(Transport::Tcp),
            Reliability::Reliable
        );
    }

    #[test]
    fn timer_set_orders_and_rearms() {
        let base = Instant::now();
        let mut set = TimerSet::default();
        assert_eq!(set.next(), None);
        set.arm(TsxTimer::B, base, Duration::from_secs(32));
        set.arm(TsxTimer::A, base, Duration::from_millis(500));
        assert_eq!(set.next(), Some(base + Duration::from_millis(500)));
        assert!(set.take_due(base).is_empty());
        let due = set.take_due(base + Duration::from_secs(40));
        assert_eq!(due, vec![TsxTimer::A, TsxTimer::B]);
        assert_eq!(set.next(), None);
        set.arm(TsxTimer::K, base, Duration::ZERO);
        set.cancel(TsxTimer::K);
        assert_eq!(set.next(), None);
        set.arm(TsxTimer::K, base, Duration::MAX);
        assert_eq!(set.next(), None, "an overflowing deadline is not armed");
    }

    #[test]
    fn backoff_caps() {
        let half = Duration::from_millis(500);
        let t2 = Duration::from_secs(4);
        assert_eq!(backoff(half, Some(t2)), Duration::from_secs(1));
        assert_eq!(backoff(Duration::from_secs(4), Some(t2)), t2);
        assert_eq!(
            backoff(Duration::from_secs(4), None),
            Duration::from_secs(8)
        );
    }
}
