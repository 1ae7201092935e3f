//! Start-up recovery after a stop or a crash: close calls left live (but
//! queued originated calls, which were never dialled), put
//! `active` sessions back to `open`, expire sessions whose TTL passed while
//! down, and make every other open session routable again with its timer.

use crate::service::engine_events::call_event;
use crate::service::sessions::{SessionService, REASON_TTL_EXPIRED};
use crate::store::calls::{self, CallEnd};
use crate::store::{sessions, StoreError};
use maskline_engine::HangupBy;

/// Cause recorded on calls that were live when the process stopped.
const SHUTDOWN_CAUSE: &str = "SYSTEM_SHUTDOWN";

/// What recovery did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Calls closed with `SYSTEM_SHUTDOWN`.
    pub calls_closed: usize,
    /// Sessions put back from `active` to `open`.
    pub sessions_reopened: u64,
    /// Sessions completed because their TTL passed.
    pub sessions_expired: usize,
    /// Open sessions routed again.
    pub sessions_restored: usize,
}

/// Run recovery. Call before the engine event consumer starts and before
/// HTTP accepts requests.
pub async fn recover(service: &SessionService) -> Result<RecoveryReport, StoreError> {
    let store = service.store();
    let now = service.clock().now_ms();
    let mut report = RecoveryReport::default();

    let live = {
        let mut conn = store.pool().acquire().await?;
        calls::list_live(&mut conn).await?
    };
    // Queued originated calls were never dialled: they stay queued and go
    // back in their tenant's queue (`OriginateService::resume`).
    for call in live.into_iter().filter(|c| c.state != "queued") {
        let mut tx = service.events().begin(store).await?;
        let end = CallEnd {
            ended_at: now.max(call.started_at),
            cause: SHUTDOWN_CAUSE,
            by: HangupBy::System.as_str(),
            sip_status: None,
            answered: false,
            state_if_answered: "completed",
            state_if_unanswered: "failed",
            quality: None,
        };
        if calls::end(&mut tx, &call.id, &end).await? {
            sessions::call_ended(&mut tx, &call.session_id, &call.id).await?;
            call_event(&mut tx, &call.id, "call.hangup", now).await?;
            report.calls_closed += 1;
        }
        tx.commit().await?;
    }

    {
        let mut conn = store.pool().acquire().await?;
        report.sessions_reopened = sessions::reset_active(&mut conn).await?;
    }

    let open = {
        let mut conn = store.pool().acquire().await?;
        sessions::list_not_completed(&mut conn).await?
    };
    for row in open {
        if row.expires_at <= now {
            match service
                .finish(&row.id, REASON_TTL_EXPIRED, HangupBy::Ttl)
                .await
            {
                Ok(Some(_)) => report.sessions_expired += 1,
                Ok(None) => {}
                Err(crate::service::sessions::SessionError::Store(e)) => return Err(e),
                Err(e) => return Err(StoreError::Corrupt(e.to_string())),
            }
        } else {
            service.activate(&row);
            report.sessions_restored += 1;
        }
    }
    tracing::info!(
        calls_closed = report.calls_closed,
        sessions_reopened = report.sessions_reopened,
        sessions_expired = report.sessions_expired,
        sessions_restored = report.sessions_restored,
        "recovery done"
    );
    Ok(report)
}
