//! The SSE event stream: replay from the `events` table, then live from
//! the event bus, with no gap and no duplicate.
//!
//! The stream subscribes to the bus *before* it reads the table, and skips
//! live rows whose id it has already sent (the bus publishes in id order,
//! after commit; see [`crate::service::events`]). A subscriber that falls
//! behind the bus's capacity gets a final `event: error` (`reason:
//! lagged`) and is cut off: it reconnects with `Last-Event-ID`. A call's
//! stream ends [`CLOSE_LINGER`] after the call's final event.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::response::sse::Event;
use futures_util::stream::{self, Stream};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;

use crate::service::events::EventBus;
use crate::store::events::{self, EventRow};
use crate::store::{Store, StoreError};

/// Open SSE streams allowed at once (not configurable yet: `[http]` has no
/// key for it). Over it: 503 `too_many_sse_streams`.
pub const MAX_SSE_STREAMS: usize = 1000;
/// `Retry-After` of that 503, in seconds.
pub const SSE_RETRY_AFTER_SECS: u64 = 5;
/// Heartbeat comment interval.
pub const HEARTBEAT: Duration = Duration::from_secs(15);
/// How long a call stream stays open after the call's final event (events
/// that follow it closely, like `command.result`, still go out).
pub const CLOSE_LINGER: Duration = Duration::from_secs(3);
/// How long a recorded call's stream waits after `call.hangup` for
/// `recording.ready`.
pub const RECORDING_WAIT: Duration = Duration::from_secs(60);
/// Rows read from the table at a time while replaying.
const PAGE: i64 = 200;

/// Counts open streams against a cap. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SseLimiter {
    open: Arc<AtomicUsize>,
    max: usize,
}

impl SseLimiter {
    /// A limiter allowing `max` streams.
    pub fn new(max: usize) -> Self {
        SseLimiter {
            open: Arc::new(AtomicUsize::new(0)),
            max,
        }
    }

    /// The cap.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Streams open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// A permit for one more stream, unless the cap is reached.
    pub fn try_acquire(&self) -> Option<SsePermit> {
        self.open
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < self.max).then_some(n + 1)
            })
            .ok()
            .map(|_| SsePermit {
                open: self.open.clone(),
            })
    }
}

/// One open stream; released when dropped (the client went away or the
/// stream ended).
#[derive(Debug)]
pub struct SsePermit {
    open: Arc<AtomicUsize>,
}

impl Drop for SsePermit {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What a stream carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSpec {
    /// The tenant's events only.
    pub tenant_id: String,
    /// Only this call's events (a call stream).
    pub call_id: Option<String>,
    /// Only these types, when given.
    pub types: Option<Vec<String>>,
    /// Replay rows after this id first (`Last-Event-ID`); `None`: a tenant
    /// stream starts live, a call stream replays the call from its start.
    pub after_id: Option<i64>,
    /// The call's session records calls: its final event is
    /// `recording.ready`, not `call.hangup`.
    pub recorded: bool,
}

impl StreamSpec {
    fn matches(&self, row: &EventRow) -> bool {
        row.tenant_id == self.tenant_id
            && self
                .call_id
                .as_ref()
                .is_none_or(|c| row.call_id.as_ref() == Some(c))
            && self.types.as_ref().is_none_or(|t| t.contains(&row.kind))
    }
}

struct State {
    store: Store,
    spec: StreamSpec,
    live: broadcast::Receiver<Arc<EventRow>>,
    closing: watch::Receiver<bool>,
    last_id: i64,
    backlog: VecDeque<EventRow>,
    backlog_done: bool,
    close_at: Option<Instant>,
    done: bool,
    _permit: SsePermit,
}

/// The SSE message of an event row.
pub fn to_event(row: &EventRow) -> Event {
    Event::default()
        .id(row.id.to_string())
        .event(row.kind.as_str())
        .data(row.envelope_json())
}

fn error_event(reason: &str, message: &str) -> Event {
    Event::default()
        .event("error")
        .data(serde_json::json!({"reason": reason, "message": message}).to_string())
}

/// The stream for `spec`. Subscribes to `bus` now, before any replay.
pub fn event_stream(
    store: Store,
    bus: &EventBus,
    spec: StreamSpec,
    permit: SsePermit,
) -> impl Stream<Item = Result<Event, Infallible>> + Send + 'static {
    let replay = spec.after_id.is_some() || spec.call_id.is_some();
    let state = State {
        store,
        live: bus.subscribe(),
        closing: bus.closing(),
        last_id: spec.after_id.unwrap_or(0).max(0),
        backlog: VecDeque::new(),
        backlog_done: !replay,
        close_at: None,
        done: false,
        spec,
        _permit: permit,
    };
    stream::unfold(state, |mut state| async move {
        let event = state.next_event().await?;
        Some((Ok(event), state))
    })
}

impl State {
    async fn next_event(&mut self) -> Option<Event> {
        loop {
            if self.done {
                return None;
            }
            if let Some(row) = self.backlog.pop_front() {
                self.last_id = self.last_id.max(row.id);
                if self.spec.matches(&row) {
                    self.sent(&row);
                    return Some(to_event(&row));
                }
                continue;
            }
            if !self.backlog_done {
                match self.fetch_page().await {
                    Ok(()) => continue,
                    Err(e) => {
                        tracing::warn!(error = %e, "SSE replay failed");
                        self.done = true;
                        return Some(error_event(
                            "unavailable",
                            "the event log could not be read; reconnect with Last-Event-ID",
                        ));
                    }
                }
            }
            let close_at = self.close_at;
            let closing = async {
                match close_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            let got = tokio::select! {
                _ = self.closing.wait_for(|c| *c) => return None,
                () = closing => return None,
                got = self.live.recv() => got,
            };
            match got {
                Ok(row) => {
                    if row.id <= self.last_id || !self.spec.matches(&row) {
                        continue;
                    }
                    self.last_id = row.id;
                    self.sent(&row);
                    return Some(to_event(&row));
                }
                Err(RecvError::Lagged(missed)) => {
                    self.done = true;
                    return Some(error_event(
                        "lagged",
                        &format!(
                            "the client fell {missed} events behind; reconnect with \
                             Last-Event-ID {} to resume",
                            self.last_id
                        ),
                    ));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    }

    async fn fetch_page(&mut self) -> Result<(), StoreError> {
        let mut conn = self.store.pool().acquire().await?;
        let rows = events::list_after_for(
            &mut conn,
            &self.spec.tenant_id,
            self.spec.call_id.as_deref(),
            self.last_id,
            PAGE,
        )
        .await?;
        self.backlog_done = i64::try_from(rows.len()).unwrap_or(i64::MAX) < PAGE;
        self.backlog = rows.into();
        Ok(())
    }

    /// Notice a call's final event.
    fn sent(&mut self, row: &EventRow) {
        if self.spec.call_id.is_none() {
            return;
        }
        let linger = match row.kind.as_str() {
            "call.hangup" if self.spec.recorded => RECORDING_WAIT,
            "call.hangup" | "recording.ready" => CLOSE_LINGER,
            _ => return,
        };
        let at = Instant::now() + linger;
        self.close_at = Some(self.close_at.map_or(at, |c| c.min(at)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i64, kind: &str, call: Option<&str>) -> EventRow {
        EventRow {
            id,
            tenant_id: "ten_1".into(),
            session_id: None,
            call_id: call.map(str::to_string),
            kind: kind.into(),
            data: "{}".into(),
            created_at: 0,
        }
    }

    #[test]
    fn limiter_caps_and_releases() {
        let l = SseLimiter::new(2);
        let a = l.try_acquire();
        let b = l.try_acquire();
        assert!(a.is_some() && b.is_some());
        assert!(l.try_acquire().is_none(), "the third is refused");
        assert_eq!(l.open(), 2);
        drop(a);
        assert_eq!(l.open(), 1);
        assert!(l.try_acquire().is_some());
    }

    #[test]
    fn spec_filters_tenant_call_and_types() {
        let spec = StreamSpec {
            tenant_id: "ten_1".into(),
            call_id: Some("cal_1".into()),
            types: Some(vec!["call.hangup".into()]),
            after_id: None,
            recorded: false,
        };
        assert!(spec.matches(&row(1, "call.hangup", Some("cal_1"))));
        assert!(!spec.matches(&row(1, "call.ringing", Some("cal_1"))));
        assert!(!spec.matches(&row(1, "call.hangup", Some("cal_2"))));
        assert!(!spec.matches(&row(1, "call.hangup", None)));
        let mut other = row(1, "call.hangup", Some("cal_1"));
        other.tenant_id = "ten_2".into();
        assert!(!spec.matches(&other));
        let all = StreamSpec {
            call_id: None,
            types: None,
            ..spec
        };
        assert!(all.matches(&row(1, "session.created", None)));
    }

    async fn seeded(
        tag: &str,
        capacity: usize,
    ) -> (crate::store::testing::TempDir, Store, EventBus) {
        use crate::store::tenants::{self, TenantLimits};
        let dir = crate::store::testing::TempDir::new(tag);
        let s = crate::store::testing::store(&dir).await;
        let mut c = s.pool().acquire().await.unwrap_or_else(|e| panic!("{e}"));
        let limits = TenantLimits::from(&sip_config::TenantConfig::default());
        tenants::insert(&mut c, "ten_1", "acme", &limits, 0)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        (dir, s.clone(), EventBus::new(capacity, 0))
    }

    async fn append(s: &Store, bus: &EventBus, n: usize) {
        for i in 0..n {
            let data = serde_json::json!({ "i": i });
            let mut tx = bus.begin(s).await.unwrap_or_else(|e| panic!("{e}"));
            tx.append(&events::NewEvent {
                tenant_id: "ten_1",
                session_id: None,
                call_id: None,
                kind: "session.created",
                data: &data,
                created_at: 0,
            })
            .await
            .unwrap_or_else(|e| panic!("{e}"));
            tx.commit().await.unwrap_or_else(|e| panic!("{e}"));
        }
    }

    fn tenant_spec(after_id: Option<i64>) -> StreamSpec {
        StreamSpec {
            tenant_id: "ten_1".into(),
            call_id: None,
            types: None,
            after_id,
            recorded: false,
        }
    }

    #[tokio::test]
    async fn a_lagging_subscriber_gets_an_error_and_is_cut_off() {
        use futures_util::StreamExt as _;
        let (_dir, s, bus) = seeded("sse-lag", 2).await;
        let limiter = SseLimiter::new(1);
        let permit = limiter.try_acquire().unwrap_or_else(|| panic!("permit"));
        let mut stream = Box::pin(event_stream(s.clone(), &bus, tenant_spec(None), permit));
        append(&s, &bus, 5).await;
        let first = stream.next().await.map(|e| format!("{e:?}"));
        let first = first.unwrap_or_default();
        assert!(
            first.contains("event: error") && first.contains("lagged"),
            "{first}"
        );
        assert!(stream.next().await.is_none(), "cut off after the error");
        drop(stream);
        assert_eq!(limiter.open(), 0, "the permit is released with the stream");
    }

    #[tokio::test]
    async fn replays_then_goes_live_without_duplicates() {
        use futures_util::StreamExt as _;
        let (_dir, s, bus) = seeded("sse-replay", 16).await;
        append(&s, &bus, 3).await;
        let limiter = SseLimiter::new(1);
        let permit = limiter.try_acquire().unwrap_or_else(|| panic!("permit"));
        let stream = event_stream(s.clone(), &bus, tenant_spec(Some(1)), permit);
        let mut stream = std::pin::pin!(stream);
        // Committed after the subscription: in the table and on the bus.
        append(&s, &bus, 2).await;
        let mut ids = Vec::new();
        for _ in 0..4 {
            let e = stream
                .next()
                .await
                .map(|e| format!("{e:?}"))
                .unwrap_or_default();
            // Debug shows the wire text with `\n` escaped: `b"id: 2\nevent: …`.
            let id = e.split_once("id: ").and_then(|(_, rest)| {
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                digits.parse::<i64>().ok()
            });
            ids.push(id.unwrap_or_else(|| panic!("no id in {e}")));
        }
        assert_eq!(ids, [2, 3, 4, 5]);
        bus.close_streams();
        assert!(stream.next().await.is_none(), "closed on shutdown");
    }
}
