//! Group commit: small event-writing jobs that arrive together share one
//! transaction, so one `COMMIT` (one fsync on SQLite) makes all of them
//! durable, and a [`GroupJob`] can write a whole group with a few
//! multi-row statements instead of a few statements per item.
//!
//! One worker task takes every item waiting (up to [`MAX_GROUP`]), writes
//! them with [`GroupJob::write`] in one transaction and commits. Nothing
//! waits to fill a group: an idle system commits a lone item at once, a
//! busy one groups the items that queued up while the previous commit was
//! on disk.
//!
//! If a group fails, it is rolled back and each of its items is written
//! again alone, in its own transaction, so one bad item never fails the
//! others. After the commit, the worker runs [`GroupJob::after_commit`] on
//! each output and only then answers the submitter, so a submitter that
//! goes away (an HTTP client hanging up) cannot leave a committed item's
//! in-memory side (a route, a timer) undone.

use futures_util::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};

use crate::service::events::{EventBus, EventTx};
use crate::store::{Store, StoreError};

/// Most items committed together.
pub const MAX_GROUP: usize = 256;
/// Items waiting for the worker before submitters wait too.
const QUEUE: usize = 4 * MAX_GROUP;

/// What a group-commit worker writes.
pub trait GroupJob: Send + Sync + 'static {
    /// One submitted request.
    type Item: Send + Sync + 'static;
    /// Its result.
    type Output: Send + 'static;

    /// Write every item in `tx`; one output per item, in order.
    fn write<'a>(
        &'a self,
        tx: &'a mut EventTx,
        items: &'a [Self::Item],
    ) -> BoxFuture<'a, Result<Vec<Self::Output>, StoreError>>;

    /// Runs on the worker once `output` is committed, before its submitter
    /// is answered.
    fn after_commit(&self, output: &Self::Output);
}

type Answer<J> = oneshot::Sender<Result<<J as GroupJob>::Output, StoreError>>;

/// Handle to a group-commit worker. Cheap to clone; the worker stops when
/// the last handle is dropped.
pub struct GroupCommit<J: GroupJob> {
    items: mpsc::Sender<(J::Item, Answer<J>)>,
}

impl<J: GroupJob> Clone for GroupCommit<J> {
    fn clone(&self) -> Self {
        GroupCommit {
            items: self.items.clone(),
        }
    }
}

impl<J: GroupJob> std::fmt::Debug for GroupCommit<J> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit").finish_non_exhaustive()
    }
}

impl<J: GroupJob> GroupCommit<J> {
    /// Start the worker for `job` (needs a tokio runtime).
    pub fn start(job: J, bus: EventBus, store: Store) -> Self {
        let (items, rx) = mpsc::channel(QUEUE);
        tokio::spawn(work(job, bus, store, rx));
        GroupCommit { items }
    }

    /// Write `item` in the next group; its output once committed (and
    /// [`GroupJob::after_commit`] has run on it).
    pub async fn submit(&self, item: J::Item) -> Result<J::Output, StoreError> {
        let (answer, answered) = oneshot::channel();
        self.items
            .send((item, answer))
            .await
            .map_err(|_| worker_gone())?;
        answered.await.map_err(|_| worker_gone())?
    }
}

fn worker_gone() -> StoreError {
    StoreError::Corrupt("group commit worker stopped".into())
}

async fn work<J: GroupJob>(
    job: J,
    bus: EventBus,
    store: Store,
    mut rx: mpsc::Receiver<(J::Item, Answer<J>)>,
) {
    let mut queued = Vec::with_capacity(MAX_GROUP);
    while rx.recv_many(&mut queued, MAX_GROUP).await > 0 {
        let (items, answers): (Vec<J::Item>, Vec<Answer<J>>) = queued.drain(..).unzip();
        match commit(&job, &bus, &store, &items).await {
            Ok(outputs) => answer(&job, answers, outputs),
            Err(e) if items.len() == 1 => {
                if let Some(a) = answers.into_iter().next() {
                    let _ = a.send(Err(e));
                }
            }
            Err(e) => {
                tracing::warn!(items = items.len(), error = %e, "group commit failed; writing its items one by one");
                for (item, a) in items.iter().zip(answers) {
                    match commit(&job, &bus, &store, std::slice::from_ref(item)).await {
                        Ok(outputs) => answer(&job, vec![a], outputs),
                        Err(e) => {
                            let _ = a.send(Err(e));
                        }
                    }
                }
            }
        }
    }
}

fn answer<J: GroupJob>(job: &J, answers: Vec<Answer<J>>, outputs: Vec<J::Output>) {
    for (a, out) in answers.into_iter().zip(outputs) {
        job.after_commit(&out);
        let _ = a.send(Ok(out));
    }
}

/// Write `items` in one transaction and commit.
async fn commit<J: GroupJob>(
    job: &J,
    bus: &EventBus,
    store: &Store,
    items: &[J::Item],
) -> Result<Vec<J::Output>, StoreError> {
    let mut tx = bus.begin(store).await?;
    match job.write(&mut tx, items).await {
        Ok(outputs) if outputs.len() == items.len() => {
            tx.commit().await?;
            Ok(outputs)
        }
        Ok(outputs) => {
            let _ = tx.rollback().await;
            Err(StoreError::Corrupt(format!(
                "group commit: {} outputs for {} items",
                outputs.len(),
                items.len()
            )))
        }
        Err(e) => {
            let _ = tx.rollback().await;
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

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

    /// Appends one event per item (the item is its `created_at`); a group
    /// holding a negative item fails.
    struct Append {
        after: Arc<AtomicUsize>,
    }

    impl GroupJob for Append {
        type Item = i64;
        type Output = i64;

        fn write<'a>(
            &'a self,
            tx: &'a mut EventTx,
            items: &'a [i64],
        ) -> BoxFuture<'a, Result<Vec<i64>, StoreError>> {
            Box::pin(async move {
                if let Some(bad) = items.iter().find(|n| **n < 0) {
                    return Err(StoreError::Corrupt(format!("item {bad} fails")));
                }
                let data = serde_json::json!({});
                let events: Vec<NewEvent<'_>> = items
                    .iter()
                    .map(|n| NewEvent {
                        tenant_id: "ten_1",
                        session_id: None,
                        call_id: None,
                        kind: "session.created",
                        data: &data,
                        created_at: *n,
                    })
                    .collect();
                let rows = tx.append_many(&events).await?;
                Ok(rows.iter().map(|r| r.id).collect())
            })
        }

        fn after_commit(&self, _: &i64) {
            self.after.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Many concurrent items, a few failing: every good item is committed
    /// exactly once and answered with its own row, every bad one gets its
    /// own error, and `after_commit` ran for exactly the good ones.
    #[tokio::test]
    async fn concurrent_items_commit_once_each_and_a_failing_item_fails_alone() {
        let (_dir, s, bus) = setup("group-commit").await;
        let after = Arc::new(AtomicUsize::new(0));
        let group = GroupCommit::start(
            Append {
                after: after.clone(),
            },
            bus.clone(),
            s.clone(),
        );
        let tasks: Vec<_> = (0..300i64)
            .map(|i| {
                let n = if i % 50 == 7 { -i } else { i };
                let group = group.clone();
                tokio::spawn(async move { (n, group.submit(n).await) })
            })
            .collect();
        let mut ok = Vec::new();
        for t in tasks {
            let (n, r) = t.await.unwrap_or_else(|e| panic!("{e}"));
            match r {
                Ok(id) => ok.push((n, id)),
                Err(e) => assert!(n < 0, "item {n} failed: {e}"),
            }
        }
        assert_eq!(ok.len(), 294, "every good item committed");
        assert_eq!(after.load(Ordering::SeqCst), 294);
        let mut c = s.pool().acquire().await.unwrap_or_else(|e| panic!("{e}"));
        let rows = events::list_after(&mut c, "ten_1", 0, 1000)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(rows.len(), 294, "each good item exactly once");
        for (n, id) in ok {
            let row = rows.iter().find(|r| r.id == id);
            assert_eq!(
                row.map(|r| r.created_at),
                Some(n),
                "item {n} got its own row"
            );
        }
    }
}
