//! Session lifecycle: create (allocate a pool number, route it), read,
//! complete (API close or TTL expiry: release the number, drop the route,
//! hang up live calls).

use futures_util::future::BoxFuture;
use maskline_engine::{Command, EngineHandle, HangupBy, Route};

use crate::service::events::{EventBus, EventTx};
use crate::service::group_commit::{GroupCommit, GroupJob};
use crate::service::ttl::TtlTimers;
use crate::store::calls::{self, CallRow};
use crate::store::events::NewEvent;
use crate::store::sessions::{self, SessionRow, INBOUND_BRIDGE, INBOUND_CONTROL, STATE_OPEN};
use crate::store::tenants::TenantRow;
use crate::store::{numbers, Store, StoreError};
use crate::util::ids;
use crate::util::time::{ms_to_system_time, Clock};
use crate::view::SessionView;

/// `completion_reason` of a session closed through the API.
pub const REASON_CLOSED: &str = "closed";
/// `completion_reason` of a session that reached its TTL.
pub const REASON_TTL_EXPIRED: &str = "ttl_expired";
/// Q.850 cause used when a session's calls are hung up.
const HANGUP_CAUSE: &str = "NORMAL_CLEARING";

/// A validated request to create a session.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSession {
    /// Party A, E.164 with `+`.
    pub party_a: String,
    /// Party B, E.164 with `+`.
    pub party_b: String,
    /// TTL, within the tenant's cap.
    pub ttl_minutes: i64,
    /// Record calls.
    pub record: bool,
    /// Client metadata (a JSON object).
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// Inbound calls held for the control API instead of bridged at once.
    pub control: bool,
}

/// Why a session operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// No such session for this tenant.
    #[error("no such session")]
    NotFound,
    /// The tenant has no free number.
    #[error("number pool exhausted")]
    PoolExhausted,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The session service. Cheap to clone.
#[derive(Clone)]
pub struct SessionService {
    store: Store,
    engine: EngineHandle,
    ttl: TtlTimers,
    clock: Clock,
    events: EventBus,
    creates: GroupCommit<CreateJob>,
}

impl SessionService {
    /// Assemble the service (starts the group-commit worker that session
    /// creates share, so it needs a tokio runtime).
    pub fn new(
        store: Store,
        engine: EngineHandle,
        ttl: TtlTimers,
        clock: Clock,
        events: EventBus,
    ) -> Self {
        let creates = GroupCommit::start(
            CreateJob {
                engine: engine.clone(),
                ttl: ttl.clone(),
            },
            events.clone(),
            store.clone(),
        );
        SessionService {
            store,
            engine,
            ttl,
            clock,
            events,
            creates,
        }
    }

    /// The event pipeline.
    pub fn events(&self) -> &EventBus {
        &self.events
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The engine handle.
    pub fn engine(&self) -> &EngineHandle {
        &self.engine
    }

    /// The clock.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Create a session for `tenant`: allocate a number, store the session
    /// and its `session.created` event, then route the number and arm the
    /// TTL timer. Concurrent creates share one transaction and one commit
    /// ([`GroupCommit`]); the route exists before the caller gets the row.
    pub async fn create(
        &self,
        tenant: &TenantRow,
        req: NewSession,
    ) -> Result<SessionRow, SessionError> {
        let row = self
            .creates
            .submit(NewRow {
                tenant_id: tenant.id.clone(),
                req,
                now: self.clock.now_ms(),
            })
            .await?
            .ok_or(SessionError::PoolExhausted)?;
        tracing::info!(session_id = %row.id, tenant_id = %row.tenant_id, ttl_minutes = row.ttl_minutes, "session created");
        Ok(row)
    }

    /// A tenant's session and its calls (newest first).
    pub async fn get(
        &self,
        tenant_id: &str,
        id: &str,
    ) -> Result<(SessionRow, Vec<CallRow>), SessionError> {
        let mut conn = self
            .store
            .pool()
            .acquire()
            .await
            .map_err(StoreError::from)?;
        let row = sessions::get_for_tenant(&mut conn, tenant_id, id)
            .await?
            .ok_or(SessionError::NotFound)?;
        let calls = calls::list_for_session(&mut conn, id).await?;
        Ok((row, calls))
    }

    /// Complete a tenant's session (`closed`). Completing a completed
    /// session returns it unchanged.
    pub async fn complete(&self, tenant_id: &str, id: &str) -> Result<SessionRow, SessionError> {
        let existing = {
            let mut conn = self
                .store
                .pool()
                .acquire()
                .await
                .map_err(StoreError::from)?;
            sessions::get_for_tenant(&mut conn, tenant_id, id)
                .await?
                .ok_or(SessionError::NotFound)?
        };
        if existing.is_completed() {
            return Ok(existing);
        }
        match self.finish(id, REASON_CLOSED, HangupBy::Api).await? {
            Some(row) => Ok(row),
            // Completed concurrently (TTL or another request): return that.
            None => {
                let mut conn = self
                    .store
                    .pool()
                    .acquire()
                    .await
                    .map_err(StoreError::from)?;
                sessions::get_for_tenant(&mut conn, tenant_id, id)
                    .await?
                    .ok_or(SessionError::NotFound)
            }
        }
    }

    /// The TTL timer of session `id` fired: complete it (`ttl_expired`) if
    /// its `expires_at` has passed, re-arm it otherwise. Returns the
    /// completed session, `None` if there was nothing to do.
    pub async fn expire(&self, id: &str) -> Result<Option<SessionRow>, SessionError> {
        let row = {
            let mut conn = self
                .store
                .pool()
                .acquire()
                .await
                .map_err(StoreError::from)?;
            sessions::get(&mut conn, id).await?
        };
        let Some(row) = row else { return Ok(None) };
        if row.is_completed() {
            return Ok(None);
        }
        if row.expires_at > self.clock.now_ms() {
            self.ttl.schedule(&row.id, row.expires_at);
            return Ok(None);
        }
        self.finish(id, REASON_TTL_EXPIRED, HangupBy::Ttl).await
    }

    /// Make an open session reachable: upsert its route and arm its timer.
    pub fn activate(&self, row: &SessionRow) {
        activate(&self.engine, &self.ttl, row);
    }

    /// Complete session `id` with `reason` unless already completed: release
    /// its number and write `session.completed` in one transaction, drop the
    /// route before the commit (so a new session given the number right
    /// after cannot lose its route), disarm the timer, hang up live calls.
    pub(crate) async fn finish(
        &self,
        id: &str,
        reason: &str,
        by: HangupBy,
    ) -> Result<Option<SessionRow>, SessionError> {
        let now = self.clock.now_ms();
        let mut tx = self.events.begin(&self.store).await?;
        let Some(row) = sessions::complete(&mut tx, id, reason, now).await? else {
            tx.rollback().await?;
            return Ok(None);
        };
        numbers::release(&mut tx, &row.masked_number, &row.id, now).await?;
        session_event(&mut tx, &row, "session.completed", now).await?;
        self.engine.remove_route(&row.masked_number);
        if let Err(e) = tx.commit().await {
            // Still open in the store: keep it routable.
            self.engine.upsert_route(route_of(&row));
            return Err(e.into());
        }
        self.ttl.cancel(&row.id);
        self.hangup_calls(&row.id, by);
        tracing::info!(session_id = %row.id, reason, "session completed");
        Ok(Some(row))
    }

    /// Ask the engine to hang up every live call of a session, without
    /// making the caller wait for the engine.
    fn hangup_calls(&self, session_id: &str, by: HangupBy) {
        let engine = self.engine.clone();
        let command = Command::HangupSession {
            session_id: session_id.to_string(),
            cause: HANGUP_CAUSE.to_string(),
            by,
        };
        let session_id = session_id.to_string();
        tokio::spawn(async move {
            match engine.send(command).await {
                Ok(reply) => {
                    tracing::debug!(session_id = %session_id, ?reply, "session calls hung up")
                }
                Err(e) => {
                    tracing::warn!(session_id = %session_id, error = %e, "cannot hang up session calls")
                }
            }
        });
    }
}

/// The engine route of a session.
pub fn route_of(row: &SessionRow) -> Route {
    Route {
        session_id: row.id.clone(),
        tenant_id: row.tenant_id.clone(),
        masked: row.masked_number.clone(),
        party_a: row.party_a.clone(),
        party_b: row.party_b.clone(),
        record: row.record != 0,
        control: row.inbound == INBOUND_CONTROL,
        expires_at: ms_to_system_time(row.expires_at),
    }
}

/// Route an open session's number and arm its TTL timer.
fn activate(engine: &EngineHandle, ttl: &TtlTimers, row: &SessionRow) {
    engine.upsert_route(route_of(row));
    ttl.schedule(&row.id, row.expires_at);
}

/// A session to create.
struct NewRow {
    tenant_id: String,
    req: NewSession,
    now: i64,
}

/// Session creates, written a group at a time: per tenant one allocation
/// of as many numbers as it has requests, then one multi-row insert each
/// for the sessions and their `session.created` events. A request whose
/// tenant ran out of numbers gets `None` (nothing written for it).
struct CreateJob {
    engine: EngineHandle,
    ttl: TtlTimers,
}

impl GroupJob for CreateJob {
    type Item = NewRow;
    type Output = Option<SessionRow>;

    fn write<'a>(
        &'a self,
        tx: &'a mut EventTx,
        items: &'a [NewRow],
    ) -> BoxFuture<'a, Result<Vec<Option<SessionRow>>, StoreError>> {
        Box::pin(insert_new(tx, items))
    }

    fn after_commit(&self, row: &Option<SessionRow>) {
        if let Some(row) = row {
            activate(&self.engine, &self.ttl, row);
        }
    }
}

async fn insert_new(
    tx: &mut EventTx,
    items: &[NewRow],
) -> Result<Vec<Option<SessionRow>>, StoreError> {
    let ids: Vec<String> = items.iter().map(|_| ids::session_id()).collect();
    let mut masked: Vec<Option<String>> = vec![None; items.len()];
    let mut tenants: Vec<&str> = Vec::new();
    for item in items {
        if !tenants.contains(&item.tenant_id.as_str()) {
            tenants.push(&item.tenant_id);
        }
    }
    for tenant in tenants {
        let mine: Vec<usize> = (0..items.len())
            .filter(|&i| items[i].tenant_id == tenant)
            .collect();
        let sessions: Vec<&str> = mine.iter().map(|&i| ids[i].as_str()).collect();
        let numbers = numbers::allocate_many(tx, tenant, &sessions).await?;
        for (&i, number) in mine.iter().zip(numbers) {
            masked[i] = Some(number);
        }
    }
    let out: Vec<Option<SessionRow>> = items
        .iter()
        .zip(ids)
        .zip(masked)
        .map(|((item, id), masked)| masked.map(|masked| new_row(item, id, masked)))
        .collect();
    let rows: Vec<SessionRow> = out.iter().flatten().cloned().collect();
    sessions::insert_many(tx, &rows).await?;
    let data: Vec<serde_json::Value> = rows
        .iter()
        .map(|row| SessionView::from(row).to_value())
        .collect();
    let events: Vec<NewEvent<'_>> = rows
        .iter()
        .zip(&data)
        .map(|(row, data)| session_new_event(row, "session.created", data, row.created_at))
        .collect();
    tx.append_many(&events).await?;
    Ok(out)
}

fn new_row(item: &NewRow, id: String, masked_number: String) -> SessionRow {
    let NewRow {
        tenant_id,
        req,
        now,
    } = item;
    SessionRow {
        id,
        tenant_id: tenant_id.clone(),
        masked_number,
        party_a: req.party_a.clone(),
        party_b: req.party_b.clone(),
        record: i64::from(req.record),
        ttl_minutes: req.ttl_minutes,
        state: STATE_OPEN.to_string(),
        metadata: serde_json::Value::Object(req.metadata.clone()).to_string(),
        created_at: *now,
        expires_at: now.saturating_add(req.ttl_minutes.saturating_mul(60_000)),
        completed_at: None,
        completion_reason: None,
        call_count: 0,
        active_call_id: None,
        inbound: if req.control {
            INBOUND_CONTROL
        } else {
            INBOUND_BRIDGE
        }
        .to_string(),
    }
}

/// Append a session event (`data` = the Session object).
pub(crate) async fn session_event(
    tx: &mut EventTx,
    row: &SessionRow,
    kind: &str,
    now_ms: i64,
) -> Result<i64, StoreError> {
    let data = SessionView::from(row).to_value();
    tx.append(&session_new_event(row, kind, &data, now_ms))
        .await
        .map(|r| r.id)
}

/// The event row of a session event whose `data` is `data`.
fn session_new_event<'a>(
    row: &'a SessionRow,
    kind: &'a str,
    data: &'a serde_json::Value,
    now_ms: i64,
) -> NewEvent<'a> {
    NewEvent {
        tenant_id: &row.tenant_id,
        session_id: Some(&row.id),
        call_id: None,
        kind,
        data,
        created_at: now_ms,
    }
}
