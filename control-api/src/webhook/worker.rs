//! The delivery worker over the `webhook_deliveries` outbox.
//!
//! It sleeps until the next pending delivery is due (or the event pipeline
//! queues new ones), POSTs every due delivery (a batch at a time, in
//! parallel) with Standard Webhooks headers, and records each attempt:
//! 2xx delivered; 410 disables the endpoint; anything else (or no answer
//! within `[webhooks] timeout_secs`) is retried per the schedule, later if
//! `Retry-After` says so, and fails once the schedule is exhausted. All
//! state is in the store, so pending deliveries resume after a restart.

use std::time::{Duration, Instant};

use rand::Rng;
use reqwest::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use tokio::task::JoinSet;

use crate::service::events::EventBus;
use crate::store::webhook_deliveries::{self as deliveries, AttemptRecord, DueDelivery};
use crate::store::{events, webhook_endpoints, Store, StoreError};
use crate::util::time::Clock;
use crate::webhook::retry::{parse_retry_after, RetryPolicy};
use crate::webhook::signature::{message_id, sign};

/// Deliveries attempted at once.
const BATCH: i64 = 16;
/// Longest sleep when nothing is due (a missed wake-up costs at most this).
const MAX_IDLE: Duration = Duration::from_secs(60);
/// Added to the request timeout for a claim on a delivery.
const CLAIM_MARGIN_MS: i64 = 30_000;
/// Pause after a store failure before trying again.
const STORE_BACKOFF: Duration = Duration::from_secs(1);
/// `User-Agent` of deliveries.
const USER_AGENT: &str = concat!("Maskline-Webhooks/", env!("CARGO_PKG_VERSION"));

/// What one pass over the due deliveries did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batch {
    /// Deliveries that were due.
    pub due: usize,
    /// Attempts recorded.
    pub recorded: usize,
}

/// What one HTTP attempt gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// A response with this status (and `Retry-After`, if any).
    Status {
        /// HTTP status.
        code: u16,
        /// Parsed `Retry-After`.
        retry_after: Option<Duration>,
    },
    /// No response: connection refused, timeout, …
    Error(String),
}

/// What to do with a delivery after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// 2xx: done.
    Delivered,
    /// Try again after this delay.
    Retry(Duration),
    /// Schedule exhausted.
    Failed,
    /// 410 Gone: the endpoint is disabled.
    Disable,
}

impl Verdict {
    /// The attempt's `outcome` column.
    pub fn outcome(&self) -> &'static str {
        match self {
            Verdict::Delivered => "delivered",
            Verdict::Retry(_) => "retry",
            Verdict::Failed => "failed",
            Verdict::Disable => "disabled",
        }
    }

    /// The delivery's new `status`.
    pub fn status(&self) -> &'static str {
        match self {
            Verdict::Delivered => deliveries::DELIVERED,
            Verdict::Retry(_) => deliveries::PENDING,
            Verdict::Failed => deliveries::FAILED,
            Verdict::Disable => deliveries::DISABLED,
        }
    }
}

/// Decide after attempt number `attempt` (1-based); `unit` in `[-1, 1]`
/// picks the jitter.
pub fn judge(policy: &RetryPolicy, attempt: usize, response: &Response, unit: f64) -> Verdict {
    let retry_after = match response {
        Response::Status { code, .. } if (200..300).contains(code) => return Verdict::Delivered,
        Response::Status { code: 410, .. } => return Verdict::Disable,
        Response::Status { retry_after, .. } => *retry_after,
        Response::Error(_) => None,
    };
    match policy.next_delay(attempt, retry_after, unit) {
        Some(delay) => Verdict::Retry(delay),
        None => Verdict::Failed,
    }
}

/// The worker. Cheap to clone.
#[derive(Clone)]
pub struct WebhookWorker {
    store: Store,
    bus: EventBus,
    client: reqwest::Client,
    policy: RetryPolicy,
    clock: Clock,
    request_timeout: Duration,
}

impl WebhookWorker {
    /// A worker per `[webhooks]` (schedule and request timeout).
    pub fn new(
        store: Store,
        bus: EventBus,
        config: &sip_config::WebhooksConfig,
    ) -> Result<Self, reqwest::Error> {
        let request_timeout = Duration::from_secs(config.timeout_secs.max(1));
        let client = reqwest::Client::builder()
            .timeout(request_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(USER_AGENT)
            .build()?;
        Ok(WebhookWorker {
            store,
            bus,
            client,
            policy: RetryPolicy::from_secs(&config.retry_schedule_secs),
            clock: Clock::system(),
            request_timeout,
        })
    }

    /// Deliver until the task is aborted.
    pub async fn run(self) {
        loop {
            let wait = match self.run_once().await {
                Ok(Batch { due: 0, .. }) => self.idle_wait().await,
                Ok(Batch { due, recorded }) if recorded == due => continue,
                // Attempts that could not be recorded stay due: pause
                // rather than hammer the receivers.
                Ok(_) => STORE_BACKOFF,
                Err(e) => {
                    tracing::warn!(error = %e, "webhook outbox unavailable");
                    STORE_BACKOFF
                }
            };
            if wait.is_zero() {
                continue;
            }
            tokio::select! {
                () = self.bus.outbox_notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// How long a claimed delivery is kept from other workers (other
    /// nodes): the request timeout plus a margin to record the attempt.
    fn claim_ms(&self) -> i64 {
        i64::try_from(self.request_timeout.as_millis())
            .unwrap_or(i64::MAX)
            .saturating_add(CLAIM_MARGIN_MS)
    }

    /// How long nothing is due (capped at [`MAX_IDLE`]).
    async fn idle_wait(&self) -> Duration {
        let next = match self.store.pool().acquire().await {
            Ok(mut conn) => deliveries::next_due_at(&mut conn).await,
            Err(e) => Err(e.into()),
        };
        match next {
            Ok(Some(at)) => {
                let ms = at.saturating_sub(self.clock.now_ms()).max(0);
                Duration::from_millis(u64::try_from(ms).unwrap_or(0)).min(MAX_IDLE)
            }
            Ok(None) => MAX_IDLE,
            Err(e) => {
                tracing::warn!(error = %e, "webhook outbox unavailable");
                STORE_BACKOFF
            }
        }
    }

    /// Attempt every delivery due now (one batch).
    pub async fn run_once(&self) -> Result<Batch, StoreError> {
        let due = {
            let mut conn = self.store.pool().acquire().await?;
            let now = self.clock.now_ms();
            deliveries::claim_due(&mut conn, now, BATCH, now.saturating_add(self.claim_ms()))
                .await?
        };
        let mut batch = Batch {
            due: due.len(),
            recorded: 0,
        };
        let mut set = JoinSet::new();
        for d in due {
            let worker = self.clone();
            set.spawn(async move {
                let id = d.id;
                match worker.attempt(d).await {
                    Ok(()) => true,
                    Err(e) => {
                        tracing::warn!(delivery_id = id, error = %e, "webhook attempt not recorded");
                        false
                    }
                }
            });
        }
        while let Some(done) = set.join_next().await {
            if matches!(done, Ok(true)) {
                batch.recorded += 1;
            }
        }
        Ok(batch)
    }

    /// One HTTP attempt of `d`, recorded.
    async fn attempt(&self, d: DueDelivery) -> Result<(), StoreError> {
        let event = {
            let mut conn = self.store.pool().acquire().await?;
            events::get(&mut conn, d.event_id).await?
        };
        let attempt = usize::try_from(d.attempts).unwrap_or(0).saturating_add(1);
        let started = Instant::now();
        let response = match &event {
            Some(event) => {
                self.post(&d, &event.envelope_json(), message_id(event.id))
                    .await
            }
            None => Response::Error(format!("event {} not found", d.event_id)),
        };
        let duration_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        let unit = rand::rng().random_range(-1.0..=1.0);
        let verdict = judge(&self.policy, attempt, &response, unit);
        let now = self.clock.now_ms();
        let (status_code, error) = match &response {
            Response::Status { code, .. } if (200..300).contains(code) => (Some(*code), None),
            Response::Status { code, .. } => (Some(*code), Some(format!("HTTP {code}"))),
            Response::Error(e) => (None, Some(e.clone())),
        };
        tracing::info!(delivery_id = d.id, event_id = d.event_id, attempt,
            status_code = ?status_code, outcome = verdict.outcome(), "webhook attempt");
        let next_attempt_at = match &verdict {
            Verdict::Retry(delay) => {
                Some(now.saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX)))
            }
            _ => None,
        };
        let record = AttemptRecord {
            delivery_id: d.id,
            tenant_id: &d.tenant_id,
            event_id: d.event_id,
            attempt: i64::try_from(attempt).unwrap_or(i64::MAX),
            url: &d.url,
            status_code: status_code.map(i64::from),
            error: error.as_deref(),
            outcome: verdict.outcome(),
            duration_ms,
            at: now,
            status: verdict.status(),
            next_attempt_at,
        };
        let mut tx = self.store.begin().await?;
        deliveries::record_attempt(&mut tx, &record).await?;
        if verdict == Verdict::Disable {
            let reason = "the receiver answered 410 Gone";
            webhook_endpoints::disable(&mut tx, &d.endpoint_id, reason, now).await?;
            let dropped = deliveries::disable_pending(&mut tx, &d.endpoint_id, reason, now).await?;
            let origin = super::log_origin(&d.url);
            tracing::warn!(tenant_id = %d.tenant_id, endpoint = %origin, dropped,
                "webhook endpoint disabled (410 Gone)");
        }
        tx.commit().await?;
        Ok(())
    }

    /// POST the envelope with Standard Webhooks headers.
    async fn post(&self, d: &DueDelivery, body: &str, msg_id: String) -> Response {
        let timestamp = self.clock.now_ms().div_euclid(1000);
        let signature = match sign(&d.secret, &msg_id, timestamp, body) {
            Ok(s) => s,
            Err(e) => return Response::Error(e.to_string()),
        };
        let sent = self
            .client
            .post(&d.url)
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header("webhook-id", msg_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body.to_string())
            .send()
            .await;
        match sent {
            Ok(resp) => Response::Status {
                code: resp.status().as_u16(),
                retry_after: resp
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| parse_retry_after(v, self.clock.now_ms())),
            },
            Err(e) if e.is_timeout() => Response::Error("timed out".into()),
            Err(e) => Response::Error(e.without_url().to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16) -> Response {
        Response::Status {
            code,
            retry_after: None,
        }
    }

    #[test]
    fn verdicts() {
        let p = RetryPolicy::from_secs(&[0, 5, 300]);
        assert_eq!(judge(&p, 1, &status(200), 0.0), Verdict::Delivered);
        assert_eq!(judge(&p, 3, &status(204), 0.0), Verdict::Delivered);
        assert_eq!(judge(&p, 1, &status(410), 0.0), Verdict::Disable);
        assert_eq!(
            judge(&p, 1, &status(500), 0.0),
            Verdict::Retry(Duration::from_secs(5))
        );
        assert_eq!(
            judge(&p, 2, &Response::Error("refused".into()), 0.0),
            Verdict::Retry(Duration::from_secs(300))
        );
        assert_eq!(judge(&p, 3, &status(500), 0.0), Verdict::Failed);
        assert_eq!(judge(&p, 1, &status(301), 0.0).outcome(), "retry");
        let later = Response::Status {
            code: 503,
            retry_after: Some(Duration::from_secs(60)),
        };
        assert_eq!(
            judge(&p, 1, &later, 0.0),
            Verdict::Retry(Duration::from_secs(60))
        );
    }

    #[test]
    fn verdict_columns() {
        assert_eq!(
            (Verdict::Delivered.outcome(), Verdict::Delivered.status()),
            ("delivered", "delivered")
        );
        assert_eq!(
            (
                Verdict::Retry(Duration::ZERO).outcome(),
                Verdict::Retry(Duration::ZERO).status()
            ),
            ("retry", "pending")
        );
        assert_eq!(
            (Verdict::Failed.outcome(), Verdict::Failed.status()),
            ("failed", "failed")
        );
        assert_eq!(
            (Verdict::Disable.outcome(), Verdict::Disable.status()),
            ("disabled", "disabled")
        );
    }
}
