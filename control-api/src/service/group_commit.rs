//! Group commit: small event-writing jobs that arrive together share one
//! transaction, so one `COMMIT` (one fsync on SQLite) makes all of them
//! durable.
//!
//! Every job is a closure that runs inside an [`EventTx`]. One worker task
//! takes every job waiting (up to [`MAX_GROUP`]), runs them one after the
//! other in one transaction and commits. Nothing waits to fill a group: an
//! idle system commits a lone job at once, a busy one groups the jobs that
//! queued up while the previous commit was on disk.
//!
//! If a job fails, the group is rolled back and each of its jobs runs
//! again alone, in its own transaction, so one bad job never fails the
//! others: a job must therefore be safe to run twice (it is only ever
//! committed once). After the commit, the worker runs the job's
//! `after_commit` step and only then answers the caller, so a caller that
//! goes away (an HTTP client hanging up) cannot leave a committed job's
//! in-memory side (a route, a timer) undone.

use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};

use crate::service::events::{EventBus, EventTx};
use crate::store::{Store, StoreError};

/// Most jobs committed together.
pub const MAX_GROUP: usize = 256;
/// Jobs waiting for the worker before submitters wait too.
const QUEUE: usize = 4 * MAX_GROUP;

type RunFn =
    Box<dyn for<'a> FnMut(&'a mut EventTx) -> BoxFuture<'a, Result<(), StoreError>> + Send>;
type FinishFn = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

struct Job {
    run: RunFn,
    finish: FinishFn,
}

/// Handle to the group-commit worker. Cheap to clone; the worker stops
/// when the last handle is dropped.
#[derive(Clone)]
pub struct GroupCommit {
    jobs: mpsc::Sender<Job>,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit").finish_non_exhaustive()
    }
}

impl GroupCommit {
    /// Start the worker (needs a tokio runtime).
    pub fn start(bus: EventBus, store: Store) -> Self {
        let (jobs, rx) = mpsc::channel(QUEUE);
        tokio::spawn(work(bus, store, rx));
        GroupCommit { jobs }
    }

    /// Run `job` in a shared event transaction; once it is committed, run
    /// `after_commit` on its result (on the worker) and return the result.
    /// `job` may run twice (see the module docs).
    pub async fn run<T, J, A>(&self, mut job: J, after_commit: A) -> Result<T, StoreError>
    where
        T: Send + 'static,
        J: for<'a> FnMut(&'a mut EventTx) -> BoxFuture<'a, Result<T, StoreError>> + Send + 'static,
        A: FnOnce(&T) + Send + 'static,
    {
        let slot: Arc<Mutex<Option<T>>> = Arc::new(Mutex::new(None));
        let out = slot.clone();
        let run: RunFn = Box::new(move |tx| {
            let fut = job(tx);
            let out = out.clone();
            Box::pin(async move {
                let value = fut.await?;
                *out.lock().unwrap_or_else(|p| p.into_inner()) = Some(value);
                Ok(())
            })
        });
        let (done, answer) = oneshot::channel();
        let finish: FinishFn = Box::new(move |outcome| {
            let result = outcome.and_then(|()| {
                slot.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .take()
                    .ok_or_else(|| StoreError::Corrupt("group commit: job left no result".into()))
            });
            if let Ok(value) = &result {
                after_commit(value);
            }
            let _ = done.send(result);
        });
        self.jobs
            .send(Job { run, finish })
            .await
            .map_err(|_| worker_gone())?;
        answer.await.map_err(|_| worker_gone())?
    }
}

fn worker_gone() -> StoreError {
    StoreError::Corrupt("group commit worker stopped".into())
}

async fn work(bus: EventBus, store: Store, mut rx: mpsc::Receiver<Job>) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    while rx.recv_many(&mut group, MAX_GROUP).await > 0 {
        match commit(&bus, &store, &mut group).await {
            Ok(()) => {
                for job in group.drain(..) {
                    (job.finish)(Ok(()));
                }
            }
            Err(e) if group.len() == 1 => {
                if let Some(job) = group.pop() {
                    (job.finish)(Err(e));
                }
            }
            Err(e) => {
                tracing::warn!(jobs = group.len(), error = %e, "group commit failed; running its jobs one by one");
                for mut job in group.drain(..) {
                    let outcome = commit(&bus, &store, std::slice::from_mut(&mut job)).await;
                    (job.finish)(outcome);
                }
            }
        }
    }
}

/// Run `jobs` in one transaction and commit; roll back on the first error.
async fn commit(bus: &EventBus, store: &Store, jobs: &mut [Job]) -> Result<(), StoreError> {
    let mut tx = bus.begin(store).await?;
    for job in jobs.iter_mut() {
        if let Err(e) = (job.run)(&mut tx).await {
            let _ = tx.rollback().await;
            return Err(e);
        }
    }
    tx.commit().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::events::{self, NewEvent};
    use crate::store::tenants::{self, TenantLimits};
    use crate::store::testing::{store, TempDir};

    async fn setup(name: &str) -> (TempDir, Store, EventBus) {
        let dir = TempDir::new(name);
        let s = store(&dir).await;
        let mut c = s.pool().acquire().await.unwrap_or_else(|e| panic!("{e}"));
        let limits = TenantLimits::from(&sip_config::TenantConfig::default());
        tenants::insert(&mut c, "ten_1", "one", &limits, 0)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        (dir, s, EventBus::new(4096, 0))
    }

    /// Appends an event carrying `n`; fails instead when `n` is negative.
    fn append(
        n: i64,
    ) -> impl for<'a> FnMut(&'a mut EventTx) -> BoxFuture<'a, Result<i64, StoreError>> + Send + 'static
    {
        move |tx| {
            Box::pin(async move {
                if n < 0 {
                    return Err(StoreError::Corrupt(format!("job {n} fails")));
                }
                let data = serde_json::json!({ "n": n });
                let row = tx
                    .append(&NewEvent {
                        tenant_id: "ten_1",
                        session_id: None,
                        call_id: None,
                        kind: "session.created",
                        data: &data,
                        created_at: n,
                    })
                    .await?;
                Ok(row.id)
            })
        }
    }

    /// Many concurrent jobs, a few failing: every good job is committed
    /// exactly once and answered with its own row, every bad one gets its
    /// own error, and `after_commit` ran for exactly the good ones.
    #[tokio::test]
    async fn concurrent_jobs_commit_once_each_and_a_failing_job_fails_alone() {
        let (_dir, s, bus) = setup("group-commit").await;
        let group = GroupCommit::start(bus.clone(), s.clone());
        let after = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let tasks: Vec<_> = (0..300i64)
            .map(|i| {
                let n = if i % 50 == 7 { -i } else { i };
                let (group, after) = (group.clone(), after.clone());
                tokio::spawn(async move {
                    let r = group
                        .run(append(n), move |_| {
                            after.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        })
                        .await;
                    (n, r)
                })
            })
            .collect();
        let mut ok = Vec::new();
        for t in tasks {
            let (n, r) = t.await.unwrap_or_else(|e| panic!("{e}"));
            match r {
                Ok(id) => ok.push((n, id)),
                Err(e) => assert!(n < 0, "job {n} failed: {e}"),
            }
        }
        assert_eq!(ok.len(), 294, "every good job committed");
        assert_eq!(after.load(std::sync::atomic::Ordering::SeqCst), 294);
        let mut c = s.pool().acquire().await.unwrap_or_else(|e| panic!("{e}"));
        let rows = events::list_after(&mut c, "ten_1", 0, 1000)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(rows.len(), 294, "each good job exactly once");
        for (n, id) in ok {
            let row = rows.iter().find(|r| r.id == id);
            assert_eq!(
                row.map(|r| r.created_at),
                Some(n),
                "job {n} got its own row"
            );
        }
    }
}
