//! Engine counters for `/metrics`: relaxed atomics bumped where things
//! happen (never per packet: media totals are added when a call ends).

use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;

/// Counters since start.
#[derive(Debug, Default)]
pub struct Metrics {
    pub(crate) sip_messages: AtomicU64,
    pub(crate) sip_malformed: AtomicU64,
    pub(crate) sip_dropped_scanner: AtomicU64,
    pub(crate) sip_dropped_rate_limited: AtomicU64,
    pub(crate) call_attempts: AtomicU64,
    pub(crate) calls_rejected: DashMap<u16, u64>,
    pub(crate) calls_ended: DashMap<String, u64>,
    pub(crate) rtp_relayed: AtomicU64,
    pub(crate) rtp_dropped: AtomicU64,
    pub(crate) events_emitted: AtomicU64,
}

/// A snapshot of [`Metrics`] plus live gauges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// SIP messages received (UDP datagrams and TCP frames).
    pub sip_messages: u64,
    /// Of which could not be parsed.
    pub sip_malformed: u64,
    /// Requests from scanner user agents, dropped.
    pub sip_dropped_scanner: u64,
    /// Requests over a source's budget, dropped.
    pub sip_dropped_rate_limited: u64,
    /// INVITEs admitted as calls.
    pub call_attempts: u64,
    /// INVITEs refused before a call existed, by SIP status.
    pub calls_rejected: Vec<(u16, u64)>,
    /// Calls ended, by Q.850 cause.
    pub calls_ended: Vec<(String, u64)>,
    /// RTP packets relayed by ended calls.
    pub rtp_relayed: u64,
    /// RTP/RTCP packets dropped by ended calls' relays.
    pub rtp_dropped: u64,
    /// Calls live now.
    pub active_calls: u64,
    /// Free RTP port pairs now.
    pub free_port_pairs: u64,
    /// Registered softphone contacts now.
    pub registered_contacts: u64,
    /// Engine events handed to the control plane so far (it can wait until
    /// it has handled this many).
    pub events_emitted: u64,
}

impl Metrics {
    pub(crate) fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn rejected(&self, status: u16) {
        *self.calls_rejected.entry(status).or_default() += 1;
    }

    pub(crate) fn ended(&self, cause: &str, relayed: u64, dropped: u64) {
        *self.calls_ended.entry(cause.to_string()).or_default() += 1;
        self.rtp_relayed.fetch_add(relayed, Ordering::Relaxed);
        self.rtp_dropped.fetch_add(dropped, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> MetricsSnapshot {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut rejected: Vec<(u16, u64)> = self
            .calls_rejected
            .iter()
            .map(|e| (*e.key(), *e.value()))
            .collect();
        rejected.sort();
        let mut ended: Vec<(String, u64)> = self
            .calls_ended
            .iter()
            .map(|e| (e.key().clone(), *e.value()))
            .collect();
        ended.sort();
        MetricsSnapshot {
            sip_messages: load(&self.sip_messages),
            sip_malformed: load(&self.sip_malformed),
            sip_dropped_scanner: load(&self.sip_dropped_scanner),
            sip_dropped_rate_limited: load(&self.sip_dropped_rate_limited),
            call_attempts: load(&self.call_attempts),
            calls_rejected: rejected,
            calls_ended: ended,
            rtp_relayed: load(&self.rtp_relayed),
            rtp_dropped: load(&self.rtp_dropped),
            events_emitted: load(&self.events_emitted),
            ..MetricsSnapshot::default()
        }
    }
}
