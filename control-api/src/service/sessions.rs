//! Session lifecycle: create (allocate a pool number, route it), read,
//! complete (API close or TTL expiry: release the number, drop the route,
//! hang up live calls).

use maskline_engine::{Command, EngineHandle, HangupBy, Route};

use crate::service::events::{EventBus, EventTx};
use crate::service::group_commit::GroupCommit;
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
    group: GroupCommit,
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
        let group = GroupCommit::start(events.clone(), store.clone());
        SessionService {
            store,
            engine,
            ttl,
            clock,
            events,
            group,
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
        let tenant_id = tenant.id.clone();
        let clock = self.clock.clone();
        let this = self.clone();
        let row = self
            .group
            .run(
                move |tx| {
                    let (tenant_id, req, now) = (tenant_id.clone(), req.clone(), clock.now_ms());
                    Box::pin(async move { insert_new(tx, &tenant_id, req, now).await })
                },
                move |row: &Option<SessionRow>| {
                    if let Some(row) = row {
                        this.activate(row);
                    }
                },
            )
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
        self.engine.upsert_route(route_of(row));
        self.ttl.schedule(&row.id, row.expires_at);
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

/// Append a session event (`data` = the Session object).
/// Allocate a number of `tenant_id`'s pool and store a new session with
/// its `session.created` event in `tx`; `None` when the pool is empty
/// (nothing written).
async fn insert_new(
    tx: &mut EventTx,
    tenant_id: &str,
    req: NewSession,
    now: i64,
) -> Result<Option<SessionRow>, StoreError> {
    let id = ids::session_id();
    let Some(masked) = numbers::allocate(tx, tenant_id, &id).await? else {
        return Ok(None);
    };
    let row = SessionRow {
        id,
        tenant_id: tenant_id.to_string(),
        masked_number: masked,
        party_a: req.party_a,
        party_b: req.party_b,
        record: i64::from(req.record),
        ttl_minutes: req.ttl_minutes,
        state: STATE_OPEN.to_string(),
        metadata: serde_json::Value::Object(req.metadata).to_string(),
        created_at: now,
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
    };
    sessions::insert(tx, &row).await?;
    session_event(tx, &row, "session.created", now).await?;
    Ok(Some(row))
}

pub(crate) async fn session_event(
    tx: &mut EventTx,
    row: &SessionRow,
    kind: &str,
    now_ms: i64,
) -> Result<i64, StoreError> {
    let data = SessionView::from(row).to_value();
    tx.append(&NewEvent {
        tenant_id: &row.tenant_id,
        session_id: Some(&row.id),
        call_id: None,
        kind,
        data: &data,
        created_at: now_ms,
    })
    .await
    .map(|r| r.id)
}
