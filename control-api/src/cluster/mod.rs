//! Several Maskline nodes on one PostgreSQL (`[cluster]`, issue #9).
//!
//! Each node keeps its own SIP, RTP and HTTP; what they share lives in the
//! store. A node with a `node_id`:
//!
//! - registers in `nodes` and renews its lease every `lease_secs / 3`; a
//!   survivor ends the calls (and fails the operations in flight) of a node
//!   whose lease ran out; a clean stop leaves at once ([`node`]);
//! - owns the calls it took: `calls.node_id` (see [`crate::store`]);
//! - keeps every open session routable: route changes arrive by
//!   `LISTEN maskline_routes`, with a full reload whenever the listening
//!   connection is (re)established ([`routes`]);
//! - streams every node's events over SSE: its event feed reads the
//!   `events` table in id order, woken by `LISTEN maskline_events` and by
//!   its own commits ([`feed`]);
//! - forwards a command for a call another node owns to that node's
//!   internal HTTP route, authenticated with the cluster secret
//!   ([`forward`], [`internal`]); recording pause/resume too;
//! - refuses (486) calls for a session whose live call another node
//!   carries ([`busy`]).
//!
//! Number allocation (`FOR UPDATE SKIP LOCKED`), the webhook outbox claims
//! (`SKIP LOCKED`), TTL expiry (a conditional update completes a session
//! once) and event order (an advisory lock) are in the store and services.

pub mod busy;
pub mod feed;
pub mod forward;
pub mod internal;
pub mod node;
pub mod routes;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::service::commands::CommandService;
use crate::service::events::EventBus;
use crate::service::sessions::SessionService;
use crate::store::{Store, StoreError};
use crate::util::time::Clock;

pub use forward::Dispatcher;

/// Why a node could not join its cluster.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// The store failed (registering the node, reading the event log).
    #[error("cluster: {0}")]
    Store(#[from] StoreError),
    /// `[cluster]` is set but incomplete (config validation prevents this).
    #[error("cluster.{0}: missing")]
    Missing(&'static str),
    /// The HTTP client for forwarding could not be built.
    #[error("cluster: cannot build the HTTP client: {0}")]
    Client(String),
}

/// This node's membership of a cluster. Cheap to clone.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

struct Inner {
    node_id: String,
    secret: String,
    lease: Duration,
    http_address: String,
    store_url: String,
    store: Store,
    clock: Clock,
    client: reqwest::Client,
    /// The event feed's task, started by [`join`], handed to the caller
    /// with the other tasks by [`spawn_workers`].
    feed_task: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("node_id", &self.inner.node_id)
            .field("http_address", &self.inner.http_address)
            .field("lease", &self.inner.lease)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// `[cluster] node_id`.
    pub fn node_id(&self) -> &str {
        &self.inner.node_id
    }

    /// How long a silent node stays alive.
    pub fn lease(&self) -> Duration {
        self.inner.lease
    }

    /// Where the other nodes reach this node's HTTP.
    pub fn http_address(&self) -> &str {
        &self.inner.http_address
    }

    /// Whether `secret` is the cluster's (constant time).
    pub fn secret_matches(&self, secret: &str) -> bool {
        constant_time_eq(secret.as_bytes(), self.inner.secret.as_bytes())
    }

    pub(crate) fn secret(&self) -> &str {
        &self.inner.secret
    }

    pub(crate) fn store(&self) -> &Store {
        &self.inner.store
    }

    pub(crate) fn store_url(&self) -> &str {
        &self.inner.store_url
    }

    pub(crate) fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    pub(crate) fn client(&self) -> &reqwest::Client {
        &self.inner.client
    }

    /// Unix ms at which a lease taken now runs out.
    pub(crate) fn lease_until(&self, now_ms: i64) -> i64 {
        let lease_ms = i64::try_from(self.inner.lease.as_millis()).unwrap_or(i64::MAX);
        now_ms.saturating_add(lease_ms)
    }
}

/// Join the cluster `config.cluster` names, if any: register this node
/// (its lease starts now) and start its event feed, which from now on
/// publishes every event of `events`. Call before anything writes events.
/// `None` when the node is not clustered.
pub async fn join(
    config: &sip_config::Config,
    store: &Store,
    events: &EventBus,
) -> Result<Option<Cluster>, ClusterError> {
    let c = &config.cluster;
    if !c.enabled() {
        return Ok(None);
    }
    let node_id = c.node_id.clone().ok_or(ClusterError::Missing("node_id"))?;
    let secret = c.secret.clone().ok_or(ClusterError::Missing("secret"))?;
    let http = c.advertise_http.unwrap_or(config.http.listen);
    let client = reqwest::Client::builder()
        .timeout(crate::service::commands::COMMAND_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| ClusterError::Client(e.to_string()))?;
    let cluster = Cluster {
        inner: Arc::new(Inner {
            node_id,
            secret,
            lease: Duration::from_secs(c.lease_secs.max(1)),
            http_address: http.to_string(),
            store_url: config.store.url.clone(),
            store: store.clone(),
            clock: Clock::system(),
            client,
            feed_task: Mutex::new(None),
        }),
    };
    node::register(&cluster).await?;
    let feed = feed::start(&cluster, events).await?;
    if let Ok(mut slot) = cluster.inner.feed_task.lock() {
        *slot = Some(feed);
    }
    tracing::info!(node_id = %cluster.node_id(), http = %cluster.http_address(),
        lease_secs = c.lease_secs, "joined the cluster");
    Ok(Some(cluster))
}

/// Start the node's background work (after start-up recovery): lease
/// renewal and the dead-node reaper, the route listener, the busy-session
/// worker; plus the event feed started by [`join`]. Nothing when not
/// clustered.
pub fn spawn_workers(
    cluster: Option<&Cluster>,
    sessions: &SessionService,
    commands: &CommandService,
    events: &EventBus,
) -> Vec<JoinHandle<()>> {
    let Some(cluster) = cluster else {
        return Vec::new();
    };
    let mut tasks = vec![
        tokio::spawn(node::run(cluster.clone(), events.clone(), commands.clone())),
        tokio::spawn(routes::run(cluster.clone(), sessions.clone())),
        tokio::spawn(busy::run(
            cluster.clone(),
            events.clone(),
            sessions.engine().clone(),
        )),
    ];
    if let Some(feed) = cluster
        .inner
        .feed_task
        .lock()
        .ok()
        .and_then(|mut t| t.take())
    {
        tasks.push(feed);
    }
    tasks
}

/// Hold the cluster-wide start-up lock (PostgreSQL) while applying the
/// configured tenants, so that nodes starting together do not race on the
/// same rows: a transaction that holds an advisory lock until
/// [`StartupLock::release`] (or drop). A no-op on SQLite.
pub struct StartupLock(Option<sqlx::Transaction<'static, sqlx::Any>>);

impl StartupLock {
    /// Wait for and take the lock.
    pub async fn take(store: &Store) -> Result<StartupLock, StoreError> {
        if store.backend() != crate::store::Backend::Postgres {
            return Ok(StartupLock(None));
        }
        let mut tx = store.pool().begin().await?;
        crate::store::cluster_locks::lock(
            &mut tx,
            crate::store::cluster_locks::ClusterLock::Startup,
        )
        .await?;
        Ok(StartupLock(Some(tx)))
    }

    /// Let the next node start.
    pub async fn release(self) {
        if let Some(tx) = self.0 {
            let _ = tx.rollback().await;
        }
    }
}

/// Whether `a` and `b` are equal, in time independent of where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_whole() {
        assert!(constant_time_eq(b"0123456789abcdef", b"0123456789abcdef"));
        assert!(!constant_time_eq(b"0123456789abcdef", b"0123456789abcdeF"));
        assert!(!constant_time_eq(b"0123456789abcdef", b"0123456789abcde"));
        assert!(!constant_time_eq(b"", b"x"));
    }
}
