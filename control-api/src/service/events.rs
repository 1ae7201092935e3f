//! The event pipeline: persist, then publish.
//!
//! Every event is written by an [`EventTx`]: a store transaction taken under
//! the process-wide event writer lock. [`EventTx::append`] inserts the
//! `events` row and, in the same transaction, one `webhook_deliveries`
//! outbox row per enabled endpoint of the tenant; [`EventTx::commit`]
//! commits, then publishes the rows on a [`broadcast`] channel (SSE
//! subscribers) and wakes the webhook worker, and only then releases the
//! lock. So rows are published in id order, never before they are durable,
//! and an SSE client that subscribes before reading the table (then skips
//! ids it already sent) sees no gap and no duplicate.
//!
//! Publishing never waits: a subscriber that falls more than the channel's
//! capacity behind gets `Lagged` and is cut off by its stream, the engine
//! and the writers are never slowed.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use sqlx::{Any, AnyConnection, Transaction};
use tokio::sync::{broadcast, watch, Mutex, Notify, OwnedMutexGuard};

use crate::store::cluster_locks::{self, ClusterLock};
use crate::store::events::{self, EventRow, NewEvent};
use crate::store::{webhook_deliveries, Store, StoreError};
use crate::util::time::Clock;

/// Every event type, as in CONTRACT.md.
pub const EVENT_TYPES: [&str; 9] = [
    "session.created",
    "session.completed",
    "call.initiated",
    "call.ringing",
    "call.answered",
    "call.bridged",
    "call.hangup",
    "recording.ready",
    "command.result",
];

/// Events a live subscriber may be behind before it is cut off.
pub const DEFAULT_CAPACITY: usize = 1024;

/// The publish side of the pipeline. Cheap to clone.
#[derive(Clone)]
pub struct EventBus {
    inner: Arc<Inner>,
}

struct Inner {
    live: broadcast::Sender<Arc<EventRow>>,
    writer: Arc<Mutex<()>>,
    outbox: Notify,
    first_attempt_delay_ms: i64,
    wall: Clock,
    closing: watch::Sender<bool>,
    /// Cluster mode: the node's event feed publishes every row (its own
    /// and other nodes', in id order, read from the table); a commit only
    /// wakes it. See `crate::cluster::feed`.
    feed: std::sync::OnceLock<Arc<Notify>>,
}

impl std::fmt::Debug for EventBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventBus")
            .field("subscribers", &self.inner.live.receiver_count())
            .finish_non_exhaustive()
    }
}

impl EventBus {
    /// A bus whose subscribers may lag `capacity` events; webhook
    /// deliveries are first due `first_attempt_delay_ms` after the event.
    pub fn new(capacity: usize, first_attempt_delay_ms: i64) -> Self {
        let (live, _) = broadcast::channel(capacity.max(1));
        let (closing, _) = watch::channel(false);
        EventBus {
            inner: Arc::new(Inner {
                live,
                writer: Arc::new(Mutex::new(())),
                outbox: Notify::new(),
                first_attempt_delay_ms: first_attempt_delay_ms.max(0),
                wall: Clock::system(),
                closing,
                feed: std::sync::OnceLock::new(),
            }),
        }
    }

    /// Receive every event committed from now on, in id order.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<EventRow>> {
        self.inner.live.subscribe()
    }

    /// Start an event-writing transaction: take the writer lock, then
    /// `BEGIN`. Every transaction that appends events must start here.
    pub async fn begin(&self, store: &Store) -> Result<EventTx, StoreError> {
        let guard = self.inner.writer.clone().lock_owned().await;
        let mut tx = store.begin().await?;
        // PostgreSQL: event ids commit in id order across nodes too.
        cluster_locks::lock(&mut tx, ClusterLock::EventLog).await?;
        Ok(EventTx {
            tx,
            rows: Vec::new(),
            queued: 0,
            bus: self.clone(),
            _writer: guard,
        })
    }

    /// Wait until new webhook deliveries may be due (the worker's wake-up).
    /// A notification sent while nobody waits is kept for the next call.
    pub async fn outbox_notified(&self) {
        self.inner.outbox.notified().await;
    }

    /// Wake the webhook worker.
    pub fn notify_outbox(&self) {
        self.inner.outbox.notify_one();
    }

    /// Resolves once [`EventBus::close_streams`] was called (also when it
    /// was called before).
    pub fn closing(&self) -> watch::Receiver<bool> {
        self.inner.closing.subscribe()
    }

    /// Ask every open SSE stream to end (graceful stop).
    pub fn close_streams(&self) {
        self.inner.closing.send_replace(true);
    }

    /// Cluster mode: from now on commits wake `feed` instead of publishing
    /// their rows, and the feed publishes with [`EventBus::publish`]. Set
    /// once, before events are written.
    pub fn attach_feed(&self, feed: Arc<Notify>) {
        let _ = self.inner.feed.set(feed);
    }

    /// Publish a committed row to the live subscribers (the cluster feed;
    /// rows must come in id order).
    pub fn publish(&self, row: Arc<EventRow>) {
        let _ = self.inner.live.send(row);
    }

    /// Current number of live subscribers.
    pub fn subscriber_count(&self) -> usize {
        self.inner.live.receiver_count()
    }
}

/// A store transaction that may append events; see the module docs.
pub struct EventTx {
    tx: Transaction<'static, Any>,
    rows: Vec<EventRow>,
    queued: u64,
    bus: EventBus,
    _writer: OwnedMutexGuard<()>,
}

impl EventTx {
    /// Append an event and queue its webhook deliveries. Returns the row.
    pub async fn append(&mut self, e: &NewEvent<'_>) -> Result<EventRow, StoreError> {
        let mut rows = self.append_many(std::slice::from_ref(e)).await?;
        rows.pop()
            .ok_or_else(|| StoreError::Corrupt("events: no row for an append".into()))
    }

    /// Append events and queue their webhook deliveries with one statement
    /// each. Returns the rows, in order.
    pub async fn append_many(&mut self, es: &[NewEvent<'_>]) -> Result<Vec<EventRow>, StoreError> {
        let ids = events::insert_many(&mut self.tx, es).await?;
        let now = self.bus.inner.wall.now_ms();
        let first = now.saturating_add(self.bus.inner.first_attempt_delay_ms);
        self.queued += webhook_deliveries::enqueue(&mut self.tx, &ids, first, now).await?;
        let rows: Vec<EventRow> = ids
            .into_iter()
            .zip(es)
            .map(|(id, e)| EventRow {
                id,
                tenant_id: e.tenant_id.to_string(),
                session_id: e.session_id.map(str::to_string),
                call_id: e.call_id.map(str::to_string),
                kind: e.kind.to_string(),
                data: e.data.to_string(),
                created_at: e.created_at,
            })
            .collect();
        self.rows.extend(rows.iter().cloned());
        Ok(rows)
    }

    /// Commit, then publish the appended rows in order and wake the webhook
    /// worker; the writer lock is released last.
    pub async fn commit(self) -> Result<(), StoreError> {
        let EventTx {
            tx,
            rows,
            queued,
            bus,
            _writer,
        } = self;
        tx.commit().await?;
        if let Some(feed) = bus.inner.feed.get() {
            feed.notify_one();
        } else {
            for row in rows {
                // No subscriber is not an error.
                let _ = bus.inner.live.send(Arc::new(row));
            }
        }
        if queued > 0 {
            bus.notify_outbox();
        }
        drop(_writer);
        Ok(())
    }

    /// Roll back; nothing is published.
    pub async fn rollback(self) -> Result<(), StoreError> {
        self.tx.rollback().await?;
        Ok(())
    }
}

impl Deref for EventTx {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        &self.tx
    }
}

impl DerefMut for EventTx {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.tx
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tenants::{self, TenantLimits};
    use crate::store::testing::{store, TempDir};

    async fn tenant(s: &Store, id: &str) {
        let mut c = s.pool().acquire().await.unwrap_or_else(|e| panic!("{e}"));
        let limits = TenantLimits::from(&sip_config::TenantConfig::default());
        tenants::insert(&mut c, id, id, &limits, 0)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }

    fn event<'a>(tenant: &'a str, data: &'a serde_json::Value) -> NewEvent<'a> {
        NewEvent {
            tenant_id: tenant,
            session_id: None,
            call_id: None,
            kind: "session.created",
            data,
            created_at: 5,
        }
    }

    #[tokio::test]
    async fn publishes_after_commit_in_order_and_not_on_rollback() {
        let dir = TempDir::new("bus");
        let s = store(&dir).await;
        tenant(&s, "ten_1").await;
        let bus = EventBus::new(16, 0);
        let mut rx = bus.subscribe();
        let data = serde_json::json!({"n": 1});

        let mut tx = bus.begin(&s).await.unwrap_or_else(|e| panic!("{e}"));
        let a = tx.append(&event("ten_1", &data)).await;
        let b = tx.append(&event("ten_1", &data)).await;
        assert!(rx.try_recv().is_err(), "nothing before commit");
        tx.commit().await.unwrap_or_else(|e| panic!("{e}"));
        let (a, b) = (a.map(|r| r.id).ok(), b.map(|r| r.id).ok());
        assert_eq!(rx.try_recv().ok().map(|r| r.id), a);
        assert_eq!(rx.try_recv().ok().map(|r| r.id), b);

        let mut tx = bus.begin(&s).await.unwrap_or_else(|e| panic!("{e}"));
        let _ = tx.append(&event("ten_1", &data)).await;
        tx.rollback().await.unwrap_or_else(|e| panic!("{e}"));
        assert!(
            rx.try_recv().is_err(),
            "a rolled back event is not published"
        );
        let mut c = s.pool().acquire().await.unwrap_or_else(|e| panic!("{e}"));
        let all = events::list_after(&mut c, "ten_1", 0, 10)
            .await
            .unwrap_or_default();
        assert_eq!(all.len(), 2);
    }

    #[tokio::test]
    async fn concurrent_writers_publish_in_id_order() {
        let dir = TempDir::new("bus-order");
        let s = store(&dir).await;
        tenant(&s, "ten_1").await;
        let bus = EventBus::new(256, 0);
        let mut rx = bus.subscribe();
        let mut tasks = Vec::new();
        for n in 0..8 {
            let (bus, s) = (bus.clone(), s.clone());
            tasks.push(tokio::spawn(async move {
                for i in 0..5 {
                    let data = serde_json::json!({"task": n, "i": i});
                    let mut tx = bus.begin(&s).await?;
                    tx.append(&event("ten_1", &data)).await?;
                    tx.commit().await?;
                }
                Ok::<(), StoreError>(())
            }));
        }
        for t in tasks {
            assert!(matches!(t.await, Ok(Ok(()))));
        }
        let mut ids = Vec::new();
        while let Ok(row) = rx.try_recv() {
            ids.push(row.id);
        }
        assert_eq!(ids.len(), 40);
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    }
}
