//! Session TTL timers: one task holding a min-heap of deadlines. Expired
//! session ids come out of a channel; [`run_expiry`] completes them.
//!
//! Deadlines are unix milliseconds read from the injected [`Clock`]; the task
//! sleeps on tokio's timer for the remaining time and re-checks the clock on
//! wake-up, so a wall-clock jump only delays or advances the next check.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::service::sessions::SessionService;
use crate::util::time::Clock;

/// Longest single sleep, so that a wall-clock change is noticed within it.
const MAX_SLEEP: Duration = Duration::from_secs(60);

#[derive(Debug)]
enum Msg {
    Schedule {
        session_id: String,
        expires_at_ms: i64,
    },
    Cancel {
        session_id: String,
    },
}

/// Handle to the timer task. Cheap to clone; the task ends when every handle
/// is dropped or the expiry receiver is closed.
#[derive(Debug, Clone)]
pub struct TtlTimers {
    tx: mpsc::UnboundedSender<Msg>,
}

impl TtlTimers {
    /// Spawn the timer task. Returns the handle, the receiver of expired
    /// session ids (each id once per deadline reached) and the task.
    pub fn spawn(clock: Clock) -> (TtlTimers, mpsc::UnboundedReceiver<String>, JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let (expired_tx, expired_rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run_timers(clock, rx, expired_tx));
        (TtlTimers { tx }, expired_rx, task)
    }

    /// Arm (or re-arm) the timer of a session.
    pub fn schedule(&self, session_id: &str, expires_at_ms: i64) {
        let _ = self.tx.send(Msg::Schedule {
            session_id: session_id.to_string(),
            expires_at_ms,
        });
    }

    /// Disarm the timer of a session (no effect if none is armed).
    pub fn cancel(&self, session_id: &str) {
        let _ = self.tx.send(Msg::Cancel {
            session_id: session_id.to_string(),
        });
    }
}

async fn run_timers(
    clock: Clock,
    mut rx: mpsc::UnboundedReceiver<Msg>,
    expired: mpsc::UnboundedSender<String>,
) {
    // Cancelled or re-armed entries stay in the heap and are skipped when
    // popped: `armed` holds the one live deadline per session.
    let mut heap: BinaryHeap<Reverse<(i64, String)>> = BinaryHeap::new();
    let mut armed: HashMap<String, i64> = HashMap::new();
    loop {
        let now = clock.now_ms();
        while let Some(Reverse((at, _))) = heap.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((at, id))) = heap.pop() else {
                break;
            };
            if armed.get(&id) == Some(&at) {
                armed.remove(&id);
                if expired.send(id).is_err() {
                    return;
                }
            }
        }
        let wait = heap.peek().map(|Reverse((at, _))| {
            Duration::from_millis(u64::try_from(at.saturating_sub(now)).unwrap_or(0)).min(MAX_SLEEP)
        });
        tokio::select! {
            msg = rx.recv() => match msg {
                None => return,
                Some(Msg::Schedule { session_id, expires_at_ms }) => {
                    armed.insert(session_id.clone(), expires_at_ms);
                    heap.push(Reverse((expires_at_ms, session_id)));
                }
                Some(Msg::Cancel { session_id }) => {
                    armed.remove(&session_id);
                }
            },
            _ = sleep_opt(wait) => {}
            _ = expired.closed() => return,
        }
    }
}

async fn sleep_opt(wait: Option<Duration>) {
    match wait {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

/// Complete every session whose timer fired (`completion_reason:
/// ttl_expired`), in order, until the timer task ends.
pub async fn run_expiry(sessions: SessionService, mut expired: mpsc::UnboundedReceiver<String>) {
    while let Some(session_id) = expired.recv().await {
        match sessions.expire(&session_id).await {
            Ok(Some(_)) => tracing::info!(session_id = %session_id, "session expired"),
            Ok(None) => {}
            Err(e) => {
                tracing::error!(session_id = %session_id, error = %e, "cannot expire session")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: i64 = 1_795_446_245_000;

    #[tokio::test(start_paused = true)]
    async fn fires_at_the_deadline_not_before() {
        let clock = Clock::tokio(BASE);
        let (timers, mut expired, _task) = TtlTimers::spawn(clock.clone());
        timers.schedule("ses_a", BASE + 60_000);
        let id = expired.recv().await;
        assert_eq!(id.as_deref(), Some("ses_a"));
        assert_eq!(clock.now_ms(), BASE + 60_000, "fired exactly at expires_at");
    }

    #[tokio::test(start_paused = true)]
    async fn fires_in_deadline_order_and_skips_cancelled() {
        let clock = Clock::tokio(BASE);
        let (timers, mut expired, _task) = TtlTimers::spawn(clock.clone());
        timers.schedule("ses_late", BASE + 180_000);
        timers.schedule("ses_cancelled", BASE + 60_000);
        timers.schedule("ses_mid", BASE + 120_000);
        timers.cancel("ses_cancelled");
        assert_eq!(expired.recv().await.as_deref(), Some("ses_mid"));
        assert_eq!(clock.now_ms(), BASE + 120_000);
        assert_eq!(expired.recv().await.as_deref(), Some("ses_late"));
        assert_eq!(clock.now_ms(), BASE + 180_000);
        drop(timers);
        assert_eq!(expired.recv().await, None, "task ends with its handles");
    }

    #[tokio::test(start_paused = true)]
    async fn rearming_moves_the_deadline_and_past_deadlines_fire_at_once() {
        let clock = Clock::tokio(BASE);
        let (timers, mut expired, _task) = TtlTimers::spawn(clock.clone());
        timers.schedule("ses_a", BASE + 60_000);
        timers.schedule("ses_a", BASE + 600_000);
        timers.schedule("ses_past", BASE - 1);
        assert_eq!(expired.recv().await.as_deref(), Some("ses_past"));
        assert_eq!(clock.now_ms(), BASE);
        assert_eq!(expired.recv().await.as_deref(), Some("ses_a"));
        assert_eq!(
            clock.now_ms(),
            BASE + 600_000,
            "the first deadline was replaced"
        );
    }
}
