//! Starting and stopping the whole service: store, tenants, engine,
//! recovery, workers, then HTTP (last, so a healthy `/healthz` means SIP,
//! RTP and HTTP are all listening).

use std::future::Future;
use std::net::SocketAddr;

use maskline_engine::{Engine, EngineHandle, StartError};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::app::{router, AppState};
use crate::cluster;
use crate::http::sse::{SseLimiter, MAX_SSE_STREAMS};
use crate::service::bootstrap::{self, BootstrapError, DevKey};
use crate::service::commands::CommandService;
use crate::service::engine_events;
use crate::service::events::{EventBus, DEFAULT_CAPACITY};
use crate::service::originate::OriginateService;
use crate::service::recordings::RecordingService;
use crate::service::recovery::{self, RecoveryReport};
use crate::service::registrations;
use crate::service::sessions::SessionService;
use crate::service::ttl::{self, TtlTimers};
use crate::service::webhooks::{self, WebhookConfigError};
use crate::store::{Store, StoreError};
use crate::util::time::Clock;
use crate::webhook::retry::RetryPolicy;
use crate::webhook::worker::WebhookWorker;

/// Knobs that are not configuration (tests inject a clock).
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Source of "now" for sessions and TTLs.
    pub clock: Clock,
    /// Open SSE streams allowed at once.
    pub max_sse_streams: usize,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            clock: Clock::system(),
            max_sse_streams: MAX_SSE_STREAMS,
        }
    }
}

/// Why the service could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The store could not be opened or migrated.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Applying the configured tenants failed.
    #[error(transparent)]
    Bootstrap(#[from] BootstrapError),
    /// The engine could not start.
    #[error(transparent)]
    Engine(#[from] StartError),
    /// Applying the configured webhook URLs failed.
    #[error(transparent)]
    Webhooks(#[from] WebhookConfigError),
    /// The webhook HTTP client could not be built.
    #[error("webhooks: cannot build the HTTP client: {0}")]
    WebhookClient(String),
    /// The HTTP listener could not be bound.
    #[error("http.listen: cannot bind {addr}: {source}")]
    BindHttp {
        /// Address from `[http] listen`.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// Joining the cluster failed.
    #[error(transparent)]
    Cluster(#[from] crate::cluster::ClusterError),
    /// The HTTP server failed while running.
    #[error("http server failed: {0}")]
    Http(std::io::Error),
}

/// A started service.
pub struct Running {
    state: AppState,
    engine: EngineHandle,
    dev_key: Option<DevKey>,
    recovery: RecoveryReport,
    shutdown: Option<oneshot::Sender<()>>,
    server: JoinHandle<std::io::Result<()>>,
    workers: Vec<JoinHandle<()>>,
    drain_timeout: std::time::Duration,
    events_handled: tokio::sync::watch::Receiver<u64>,
    cluster: Option<cluster::Cluster>,
}

/// Start everything per `config`; returns once HTTP is listening.
pub async fn start(
    config: &sip_config::Config,
    options: ServeOptions,
) -> Result<Running, ServeError> {
    let clock = options.clock;
    let store = Store::open_node(&config.store.url, config.cluster.node_id.as_deref()).await?;
    // Nodes of a cluster starting together apply the config one at a time.
    let startup = cluster::StartupLock::take(&store).await?;
    let dev_key = bootstrap::apply(&store, config, &clock).await?;
    webhooks::apply_config(&store, config, &clock).await?;
    startup.release().await;
    let policy = RetryPolicy::from_secs(&config.webhooks.retry_schedule_secs);
    let first_delay_ms = i64::try_from(policy.first_delay().as_millis()).unwrap_or(i64::MAX);
    let events = EventBus::new(DEFAULT_CAPACITY, first_delay_ms);
    let cluster = cluster::join(config, &store, &events).await?;

    let started = Engine::start(config).await?;
    let engine = started.handle;
    let sip_addr = started.sip_addr;
    tracing::info!(sip = %sip_addr, "engine started");

    let restored = registrations::restore(&store, &engine).await?;
    if restored > 0 {
        tracing::info!(users = restored, "softphone registrations restored");
    }
    let registrations_task = tokio::spawn(registrations::run(
        store.clone(),
        clock.clone(),
        started.registrations,
    ));
    let (timers, expired, timer_task) = TtlTimers::spawn(clock.clone());
    let sessions = SessionService::new(
        store.clone(),
        engine.clone(),
        timers,
        clock.clone(),
        events.clone(),
    );
    let dispatcher = cluster::Dispatcher::new(engine.clone(), cluster.clone());
    let commands = CommandService::new(store.clone(), events.clone(), dispatcher.clone(), clock);
    let recovery = recovery::recover(&sessions).await?;
    let interrupted = commands.recover().await?;
    if interrupted > 0 {
        tracing::warn!(
            operations = interrupted,
            "operations interrupted by the last stop marked failed"
        );
    }
    let (handled_tx, events_handled) = tokio::sync::watch::channel(0u64);
    let events_task = tokio::spawn(engine_events::run(
        events.clone(),
        store.clone(),
        started.events,
        handled_tx,
    ));
    let expiry_task = tokio::spawn(ttl::run_expiry(sessions.clone(), expired));
    let cluster_tasks = cluster::spawn_workers(cluster.as_ref(), &sessions, &commands, &events);
    let originate = OriginateService::new(sessions.clone(), engine.clone());
    let requeued = originate.resume().await?;
    if requeued > 0 {
        tracing::info!(
            calls = requeued,
            "queued originated calls put back in their queues"
        );
    }
    let worker = WebhookWorker::new(store.clone(), events.clone(), &config.webhooks)
        .map_err(|e| ServeError::WebhookClient(e.to_string()))?;
    let webhook_task = tokio::spawn(worker.run());

    let listener = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .map_err(|source| ServeError::BindHttp {
            addr: config.http.listen,
            source,
        })?;
    let http_addr = listener
        .local_addr()
        .map_err(|source| ServeError::BindHttp {
            addr: config.http.listen,
            source,
        })?;
    let state = AppState {
        sessions,
        commands,
        events,
        sse: SseLimiter::new(options.max_sse_streams),
        keys: crate::http::key_cache::KeyCache::default(),
        rate_limit: crate::http::rate_limit::KeyLimiter::new(
            config.http.rate_limit_per_sec,
            config.http.rate_limit_burst,
        ),
        originate,
        recordings: RecordingService::new(store.clone(), dispatcher, config.recording.dir.clone()),
        store,
        sip_addr,
        http_addr,
    };
    let app = cluster::internal::mount(router(state.clone()), cluster.as_ref(), &engine);
    let (shutdown, stop) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop.await;
            })
            .await
    });
    tracing::info!(http = %http_addr, "control API listening");
    Ok(Running {
        drain_timeout: std::time::Duration::from_secs(config.calls.drain_timeout_secs),
        events_handled,
        cluster,
        state,
        engine,
        dev_key,
        recovery,
        shutdown: Some(shutdown),
        server,
        workers: [
            timer_task,
            events_task,
            expiry_task,
            registrations_task,
            webhook_task,
        ]
        .into_iter()
        .chain(cluster_tasks)
        .collect(),
    })
}

impl Running {
    /// The bound HTTP address.
    pub fn http_addr(&self) -> SocketAddr {
        self.state.http_addr
    }

    /// The bound SIP address.
    pub fn sip_addr(&self) -> SocketAddr {
        self.state.sip_addr
    }

    /// The engine handle.
    pub fn engine(&self) -> &EngineHandle {
        &self.engine
    }

    /// The session service.
    pub fn sessions(&self) -> &SessionService {
        &self.state.sessions
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.state.store
    }

    /// The event pipeline.
    pub fn events(&self) -> &EventBus {
        &self.state.events
    }

    /// The command service.
    pub fn commands(&self) -> &CommandService {
        &self.state.commands
    }

    /// The SSE stream limiter.
    pub fn sse(&self) -> &SseLimiter {
        &self.state.sse
    }

    /// The dev tenant's key information, when the dev tenant is in use.
    pub fn dev_key(&self) -> Option<&DevKey> {
        self.dev_key.as_ref()
    }

    /// What start-up recovery did.
    pub fn recovery(&self) -> &RecoveryReport {
        &self.recovery
    }

    /// Run until `signal` resolves (or the HTTP server fails), then stop.
    pub async fn run_until(mut self, signal: impl Future<Output = ()>) -> Result<(), ServeError> {
        tokio::select! {
            () = signal => self.shutdown().await,
            res = &mut self.server => {
                self.state.events.close_streams();
                self.stop_workers().await;
                server_result(res)
            }
        }
    }

    /// Stop: SSE streams end, HTTP drains in-flight requests, workers stop,
    /// a clustered node leaves its cluster, the store closes. Timers need no
    /// saving: recovery re-arms them from the store; pending webhook
    /// deliveries resume from the outbox.
    pub async fn shutdown(mut self) -> Result<(), ServeError> {
        self.state.originate.stop();
        self.drain_calls().await;
        self.state.events.close_streams();
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let res = (&mut self.server).await;
        self.stop_workers().await;
        server_result(res)
    }

    /// SIGTERM drain: new INVITEs get 503; live calls may finish within
    /// `[calls] drain_timeout_secs`, then they are hung up (BYE) and their
    /// hangups recorded before the workers stop.
    async fn drain_calls(&self) {
        use maskline_engine::{Command, CommandReply, HangupBy};
        let live = || async {
            matches!(self.engine.send(Command::Drain).await, Ok(CommandReply::Done(n)) if n > 0)
        };
        let deadline = tokio::time::Instant::now() + self.drain_timeout;
        if live().await {
            tracing::info!(
                timeout_secs = self.drain_timeout.as_secs(),
                "draining live calls"
            );
        }
        // Calls end on their own schedule: ask the engine how many are
        // still live a few times a second (shutdown only, bounded).
        while live().await && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        if live().await {
            let cause = "NORMAL_CLEARING".to_string();
            let _ = self
                .engine
                .send(Command::HangupAll {
                    cause,
                    by: HangupBy::System,
                })
                .await;
            let until = tokio::time::Instant::now() + std::time::Duration::from_secs(3);
            while live().await && tokio::time::Instant::now() < until {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
        // Wait (bounded) until the event worker has stored every event the
        // engine emitted, the last hangups included.
        let emitted = self.engine.metrics().events_emitted;
        let mut handled = self.events_handled.clone();
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            handled.wait_for(|n| *n >= emitted),
        )
        .await;
    }

    async fn stop_workers(&mut self) {
        for w in self.workers.drain(..) {
            w.abort();
            let _ = w.await;
        }
        // A clustered node leaves (unless calls of its are still live in the
        // store), so that survivors do not wait for its lease to run out.
        if let Some(cluster) = &self.cluster {
            if let Err(e) = cluster::node::leave(cluster, &self.state.commands).await {
                tracing::warn!(error = %e, "cannot leave the cluster; its lease will run out");
            }
        }
        self.state.store.close().await;
    }
}

fn server_result(
    res: Result<std::io::Result<()>, tokio::task::JoinError>,
) -> Result<(), ServeError> {
    match res {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(ServeError::Http(e)),
        Err(e) => Err(ServeError::Http(std::io::Error::other(e.to_string()))),
    }
}
