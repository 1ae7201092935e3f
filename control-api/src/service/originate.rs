//! Originated calls (`POST /v1/calls/originate`) and `cancel`: admission
//! against the tenant's limits, the calls-per-second queue, and the hand-off
//! to the engine (which dials the first party, then the other).
//!
//! - **Concurrency cap**: a tenant with `max_concurrent_calls` live calls
//!   (any direction, queued ones included) gets
//!   [`OriginateError::ConcurrencyCap`].
//! - **Calls per second**: calls are dialled at most every
//!   `1 / calls_per_second` seconds per tenant. A call that would exceed the
//!   rate is stored `queued` and dialled in order by the tenant's queue
//!   worker; its position is reported. Queued calls survive a restart
//!   ([`OriginateService::resume`]).
//! - **One call per session**: a session with a live call is busy.
//!
//! Per tenant, one gate (an async mutex) serialises admission, dialling and
//! cancelling, so the cap cannot be overshot by concurrent requests and a
//! cancel never races the dial of the same call. The queue row is claimed
//! exactly once in the store (`queued` → `ringing` by the dialler, or
//! `queued` → `cancelled` by a cancel).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dashmap::DashMap;
use maskline_engine::{Command, CommandError, HangupBy, OriginateRequest};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::service::commands::Dispatch;
use crate::service::engine_events::call_event;
use crate::service::sessions::SessionService;
use crate::store::call_queue;
use crate::store::calls::{self, CallEnd, CallRow, NewCall};
use crate::store::sessions::{self, SessionRow};
use crate::store::tenants::TenantRow;
use crate::store::{tenants, StoreError};
use crate::util::ids;

/// How long the engine may take to accept a dial (the command budget).
const DISPATCH_TIMEOUT: Duration = Duration::from_secs(2);
/// Cause of a call cancelled through the API (as the engine reports it).
const CANCEL_CAUSE: &str = "ORIGINATOR_CANCEL";

/// Which party of the session is rung first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Party {
    /// `party_a`.
    A,
    /// `party_b`.
    B,
}

/// Why an originate or cancel was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OriginateError {
    /// No such session (or call) for this tenant.
    #[error("no such {0}")]
    NotFound(&'static str),
    /// The session is completed.
    #[error("the session is completed")]
    SessionCompleted,
    /// The session already has a live call.
    #[error("the session already has a live call {0}")]
    SessionBusy(String),
    /// The tenant is at its concurrent-call cap.
    #[error("the tenant has {} live calls, its cap", .active_call_ids.len())]
    ConcurrencyCap {
        /// The live calls.
        active_call_ids: Vec<String>,
        /// The cap.
        max_concurrent: i64,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The outcome of an accepted originate.
#[derive(Debug, Clone)]
pub struct Originated {
    /// The call as stored (state `queued`, `ringing`, or `failed` when the
    /// engine refused it at once).
    pub call: CallRow,
    /// Place in the tenant's queue (1 = next), for a queued call.
    pub position: Option<usize>,
}

/// A tenant's queue and dial rate.
struct TenantQueue {
    /// Serialises admission, dialling and cancelling for the tenant.
    gate: tokio::sync::Mutex<()>,
    state: Mutex<QueueState>,
    wake: Notify,
}

struct QueueState {
    /// Earliest time of the next dial.
    next_slot: Instant,
    /// Queued call ids, in order.
    pending: VecDeque<String>,
    /// Whether the worker task runs.
    worker: bool,
}

/// The originate service. Cheap to clone.
#[derive(Clone)]
pub struct OriginateService<D: Dispatch = maskline_engine::EngineHandle> {
    sessions: SessionService,
    engine: D,
    queues: Arc<DashMap<String, Arc<TenantQueue>>>,
    /// Set at shutdown: queue workers stop and queued calls stay queued
    /// (for the next start) instead of being dialled into a draining engine.
    stopped: Arc<tokio::sync::watch::Sender<bool>>,
}

fn spacing(calls_per_second: i64) -> Duration {
    Duration::from_secs_f64(1.0 / calls_per_second.max(1) as f64)
}

impl<D: Dispatch> OriginateService<D> {
    /// A service dialling through `engine`.
    pub fn new(sessions: SessionService, engine: D) -> Self {
        OriginateService {
            sessions,
            engine,
            queues: Arc::new(DashMap::new()),
            stopped: Arc::new(tokio::sync::watch::channel(false).0),
        }
    }

    /// Stop dialling queued calls (shutdown); they stay `queued` in the
    /// store and [`OriginateService::resume`] picks them up at the next
    /// start. Originate requests from now on are queued, not dialled.
    pub fn stop(&self) {
        self.stopped.send_replace(true);
    }

    fn is_stopped(&self) -> bool {
        *self.stopped.borrow()
    }

    fn queue(&self, tenant_id: &str) -> Arc<TenantQueue> {
        self.queues
            .entry(tenant_id.to_string())
            .or_insert_with(|| {
                Arc::new(TenantQueue {
                    gate: tokio::sync::Mutex::new(()),
                    state: Mutex::new(QueueState {
                        next_slot: Instant::now(),
                        pending: VecDeque::new(),
                        worker: false,
                    }),
                    wake: Notify::new(),
                })
            })
            .clone()
    }

    /// Originate a call for `session_id`, ringing `first` first.
    pub async fn originate(
        &self,
        tenant: &TenantRow,
        session_id: &str,
        first: Party,
    ) -> Result<Originated, OriginateError> {
        let queue = self.queue(&tenant.id);
        let _gate = queue.gate.lock().await;
        let store = self.sessions.store();
        let session = {
            let mut conn = store.pool().acquire().await.map_err(StoreError::from)?;
            let session = sessions::get_for_tenant(&mut conn, &tenant.id, session_id)
                .await?
                .ok_or(OriginateError::NotFound("session"))?;
            if session.is_completed() {
                return Err(OriginateError::SessionCompleted);
            }
            let live = call_queue::live_for_tenant(&mut conn, &tenant.id).await?;
            if live.len() as i64 >= tenant.max_concurrent_calls {
                return Err(OriginateError::ConcurrencyCap {
                    active_call_ids: live,
                    max_concurrent: tenant.max_concurrent_calls,
                });
            }
            if let Some(call) = call_queue::live_for_session(&mut conn, session_id).await? {
                return Err(OriginateError::SessionBusy(call));
            }
            session
        };
        // Dial now when nothing waits and the rate allows; else queue.
        let position = {
            let mut q = queue.state.lock().map_err(|_| poisoned())?;
            let now = Instant::now();
            if q.pending.is_empty() && q.next_slot <= now && !self.is_stopped() {
                q.next_slot = now + spacing(tenant.calls_per_second);
                None
            } else {
                Some(q.pending.len() + 1)
            }
        };
        let (caller, callee) = match first {
            Party::A => (&session.party_a, &session.party_b),
            Party::B => (&session.party_b, &session.party_a),
        };
        let id = ids::call_id();
        let now_ms = self.sessions.clock().now_ms();
        let mut tx = self.sessions.events().begin(store).await?;
        let inserted = calls::insert(
            &mut tx,
            &NewCall {
                id: &id,
                session_id,
                direction: "outbound",
                state: if position.is_some() {
                    "queued"
                } else {
                    "ringing"
                },
                caller,
                callee,
                started_at: now_ms,
            },
        )
        .await?;
        if !inserted {
            return Err(OriginateError::NotFound("session"));
        }
        if position.is_none() {
            sessions::call_started(&mut tx, session_id, &id).await?;
        }
        call_event(&mut tx, &id, "call.initiated", now_ms).await?;
        tx.commit().await?;
        tracing::info!(call_id = %id, session_id, queued = position.is_some(), "call originated");
        match position {
            Some(_) => {
                let mut q = queue.state.lock().map_err(|_| poisoned())?;
                q.pending.push_back(id.clone());
                if !q.worker {
                    q.worker = true;
                    tokio::spawn(self.clone().run_queue(tenant.id.clone(), queue.clone()));
                }
                queue.wake.notify_one();
            }
            None => self.dial(&session, &id, caller, callee).await?,
        }
        let call = self.get_row(&id).await?;
        Ok(Originated { call, position })
    }

    /// Hand a call to the engine; a refusal ends it at once with the cause.
    async fn dial(
        &self,
        session: &SessionRow,
        call_id: &str,
        caller: &str,
        callee: &str,
    ) -> Result<(), StoreError> {
        let command = Command::Originate(OriginateRequest {
            call_id: call_id.to_string(),
            session_id: session.id.clone(),
            masked: session.masked_number.clone(),
            first: caller.to_string(),
            second: callee.to_string(),
            record: session.record != 0,
        });
        let refused =
            match tokio::time::timeout(DISPATCH_TIMEOUT, self.engine.dispatch(command)).await {
                Ok(Ok(_)) => return Ok(()),
                Ok(Err(CommandError::NoRoute)) => ("NO_ROUTE_DESTINATION", 480),
                Ok(Err(CommandError::SessionBusy(_))) => ("USER_BUSY", 486),
                Ok(Err(_)) | Err(_) => ("SWITCH_CONGESTION", 503),
            };
        tracing::warn!(
            call_id,
            cause = refused.0,
            "engine refused the originated call"
        );
        let now = self.sessions.clock().now_ms();
        let mut tx = self.sessions.events().begin(self.sessions.store()).await?;
        let end = CallEnd {
            ended_at: now,
            cause: refused.0,
            by: HangupBy::System.as_str(),
            sip_status: Some(refused.1),
            answered: false,
            state_if_answered: "completed",
            state_if_unanswered: "failed",
            quality: None,
        };
        if calls::end(&mut tx, call_id, &end).await? {
            sessions::call_ended(&mut tx, &session.id, call_id).await?;
            call_event(&mut tx, call_id, "call.hangup", now).await?;
        }
        tx.commit().await
    }

    /// The tenant's queue worker: dial queued calls in order, one per slot.
    async fn run_queue(self, tenant_id: String, queue: Arc<TenantQueue>) {
        let mut stopped = self.stopped.subscribe();
        loop {
            if *stopped.borrow_and_update() {
                return;
            }
            let next = {
                let Ok(q) = queue.state.lock() else { return };
                q.pending.front().map(|_| q.next_slot)
            };
            tokio::select! {
                _ = stopped.changed() => continue,
                _ = queue.wake.notified(), if next.is_none() => continue,
                _ = tokio::time::sleep_until(next.unwrap_or_else(Instant::now)), if next.is_some() => {}
            }
            let _gate = queue.gate.lock().await;
            if self.is_stopped() {
                return;
            }
            let rate = match self.tenant_rate(&tenant_id).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(tenant_id, error = %e, "call queue: store failed");
                    // Try again at the next slot.
                    if let Ok(mut q) = queue.state.lock() {
                        q.next_slot = Instant::now() + Duration::from_secs(1);
                    }
                    continue;
                }
            };
            let popped = {
                let Ok(mut q) = queue.state.lock() else {
                    return;
                };
                let now = Instant::now();
                if q.next_slot > now {
                    continue; // a dial-now took the slot meanwhile
                }
                let id = q.pending.pop_front();
                if id.is_some() {
                    q.next_slot = now + spacing(rate);
                }
                id
            };
            if let Some(id) = popped {
                if let Err(e) = self.dial_queued(&id).await {
                    tracing::error!(call_id = %id, error = %e, "call queue: dial failed");
                }
            }
        }
    }

    async fn tenant_rate(&self, tenant_id: &str) -> Result<i64, StoreError> {
        let mut conn = self.sessions.store().pool().acquire().await?;
        Ok(tenants::find_by_id(&mut conn, tenant_id)
            .await?
            .map(|t| t.calls_per_second)
            .unwrap_or(1))
    }

    /// Claim a queued call and dial it; a call whose session ended while it
    /// waited fails without being dialled.
    async fn dial_queued(&self, id: &str) -> Result<(), StoreError> {
        let store = self.sessions.store();
        let now = self.sessions.clock().now_ms();
        let mut tx = self.sessions.events().begin(store).await?;
        let Some(call) = calls::get(&mut tx, id).await? else {
            return Ok(());
        };
        if !call_queue::claim(&mut tx, id).await? {
            // Cancelled meanwhile, or the session is over.
            if call_queue::end_queued(&mut tx, id, "failed", "NORMAL_CLEARING", "system", now)
                .await?
            {
                call_event(&mut tx, id, "call.hangup", now).await?;
            }
            return tx.commit().await;
        }
        sessions::call_started(&mut tx, &call.session_id, id).await?;
        let Some(session) = sessions::get(&mut tx, &call.session_id).await? else {
            return tx.commit().await;
        };
        tx.commit().await?;
        self.dial(&session, id, &call.caller, &call.callee).await
    }

    /// Cancel a queued or still-ringing call (idempotent): `true` when the
    /// call is (now or already) cancelled, `false` when it is past ringing
    /// or ended otherwise.
    pub async fn cancel(&self, tenant_id: &str, call_id: &str) -> Result<bool, OriginateError> {
        let queue = self.queue(tenant_id);
        let _gate = queue.gate.lock().await;
        let store = self.sessions.store();
        let call = {
            let mut conn = store.pool().acquire().await.map_err(StoreError::from)?;
            calls::get_for_tenant(&mut conn, tenant_id, call_id)
                .await?
                .ok_or(OriginateError::NotFound("call"))?
        };
        match call.state.as_str() {
            "cancelled" => Ok(true),
            "queued" => {
                if let Ok(mut q) = queue.state.lock() {
                    q.pending.retain(|id| id != call_id);
                }
                let now = self.sessions.clock().now_ms();
                let mut tx = self.sessions.events().begin(store).await?;
                let done =
                    call_queue::end_queued(&mut tx, call_id, "cancelled", CANCEL_CAUSE, "api", now)
                        .await?;
                if done {
                    call_event(&mut tx, call_id, "call.hangup", now).await?;
                }
                tx.commit().await?;
                Ok(done)
            }
            "ringing" | "answered" if call.ended_at.is_none() => {
                let hangup = Command::Hangup {
                    call_id: call_id.to_string(),
                    cause: CANCEL_CAUSE.to_string(),
                    by: HangupBy::Api,
                };
                match tokio::time::timeout(DISPATCH_TIMEOUT, self.engine.dispatch(hangup)).await {
                    Ok(Ok(maskline_engine::CommandReply::Done(n))) if n > 0 => Ok(true),
                    // The call ended meanwhile: cancelled only if that end
                    // was a cancel (a repeated request).
                    _ => Ok(self.ended_state(call_id).await?.as_deref() == Some("cancelled")),
                }
            }
            _ => Ok(false),
        }
    }

    /// The final state of a call the engine has ended, once its hangup is
    /// stored (waits for the event worker, at most the command budget).
    async fn ended_state(&self, call_id: &str) -> Result<Option<String>, StoreError> {
        let mut stored = self.sessions.events().subscribe();
        let read = || async {
            let mut conn = self.sessions.store().pool().acquire().await?;
            calls::get(&mut conn, call_id).await
        };
        let deadline = Instant::now() + DISPATCH_TIMEOUT;
        loop {
            match read().await? {
                Some(c) if c.ended_at.is_some() => return Ok(Some(c.state)),
                None => return Ok(None),
                Some(_) => {}
            }
            // Wait for the next stored event (ours or not), then look again.
            match tokio::time::timeout_at(deadline, stored.recv()).await {
                Err(_) => return Ok(None),
                Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) => return Ok(None),
                Ok(_) => {}
            }
        }
    }

    /// The current queue position of a queued call (1 = next).
    pub fn position(&self, tenant_id: &str, call_id: &str) -> Option<usize> {
        let queue = self.queues.get(tenant_id)?.clone();
        let q = queue.state.lock().ok()?;
        q.pending.iter().position(|id| id == call_id).map(|i| i + 1)
    }

    /// After a restart: put the stored `queued` calls back in their
    /// tenants' queues, in order. Returns how many.
    pub async fn resume(&self) -> Result<usize, StoreError> {
        let queued = {
            let mut conn = self.sessions.store().pool().acquire().await?;
            call_queue::list_queued(&mut conn).await?
        };
        let n = queued.len();
        for (tenant_id, id) in queued {
            let queue = self.queue(&tenant_id);
            let Ok(mut q) = queue.state.lock() else {
                continue;
            };
            q.pending.push_back(id);
            if !q.worker {
                q.worker = true;
                tokio::spawn(self.clone().run_queue(tenant_id.clone(), queue.clone()));
            }
            queue.wake.notify_one();
        }
        Ok(n)
    }

    async fn get_row(&self, id: &str) -> Result<CallRow, StoreError> {
        let mut conn = self.sessions.store().pool().acquire().await?;
        calls::get(&mut conn, id)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("call {id} vanished")))
    }
}

fn poisoned() -> StoreError {
    StoreError::Corrupt("call queue lock poisoned".into())
}
