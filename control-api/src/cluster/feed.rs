//! The node's event feed: the `events` table is the publisher.
//!
//! On a clustered node, SSE subscribers must see every node's events, in
//! id order, with no gap. The feed reads the rows after the last one it
//! published (`id > last`, in id order) and publishes them on the node's
//! [`EventBus`]; commits on this node no longer publish their own rows
//! but wake the feed. It reads when woken by `LISTEN maskline_events` (a
//! trigger NOTIFYs on every insert), by a local commit, or every
//! [`POLL`] in case a notification was lost with its connection.
//!
//! Reading `id > last` never skips a row: every event transaction takes
//! the cluster-wide event-log lock before its first insert and keeps it
//! until it commits, so event ids become visible in id order.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::cluster::Cluster;
use crate::service::events::EventBus;
use crate::store::{events, StoreError};

/// The notification channel of new events.
pub const CHANNEL: &str = "maskline_events";
/// Longest time between two reads of the table.
pub const POLL: Duration = Duration::from_secs(1);
/// Pause before listening again after the connection failed.
const RECONNECT_BACKOFF: Duration = Duration::from_secs(1);
/// Rows read at a time.
const PAGE: i64 = 500;

/// Switch `bus` to the feed (from the current end of the log) and start
/// it.
pub(crate) async fn start(cluster: &Cluster, bus: &EventBus) -> Result<JoinHandle<()>, StoreError> {
    let last = {
        let mut conn = cluster.store().pool().acquire().await?;
        events::max_id(&mut conn).await?
    };
    let wake = Arc::new(Notify::new());
    bus.attach_feed(wake.clone());
    Ok(tokio::spawn(run(cluster.clone(), bus.clone(), wake, last)))
}

async fn run(cluster: Cluster, bus: EventBus, wake: Arc<Notify>, mut last: i64) {
    let mut listener: Option<PgListener> = None;
    let mut connect_at = Instant::now();
    loop {
        if listener.is_none() && Instant::now() >= connect_at {
            match connect(&cluster).await {
                Ok(l) => listener = Some(l),
                Err(e) => {
                    tracing::warn!(error = %e, "event feed cannot listen; polling");
                    connect_at = Instant::now() + RECONNECT_BACKOFF;
                }
            }
        }
        if let Err(e) = publish_new(&cluster, &bus, &mut last).await {
            tracing::warn!(error = %e, "event feed cannot read the event log");
        }
        tokio::select! {
            got = next_notification(&mut listener) => {
                if !got {
                    listener = None;
                    connect_at = Instant::now();
                }
            }
            () = wake.notified() => {}
            () = tokio::time::sleep(POLL) => {}
        }
    }
}

async fn connect(cluster: &Cluster) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect(cluster.store_url()).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

/// Wait for a notification: `false` when the connection dropped. Never
/// resolves without a listener.
async fn next_notification(listener: &mut Option<PgListener>) -> bool {
    match listener {
        Some(l) => matches!(l.try_recv().await, Ok(Some(_))),
        None => std::future::pending().await,
    }
}

/// Publish every row after `last`, in id order; `last` follows.
async fn publish_new(cluster: &Cluster, bus: &EventBus, last: &mut i64) -> Result<(), StoreError> {
    let mut conn = cluster.store().pool().acquire().await?;
    loop {
        let rows = events::list_since(&mut conn, *last, PAGE).await?;
        let full = i64::try_from(rows.len()).unwrap_or(i64::MAX) >= PAGE;
        for row in rows {
            *last = row.id.max(*last);
            bus.publish(Arc::new(row));
        }
        if !full {
            return Ok(());
        }
    }
}
