//! Keeping every node's route table in step with the store.
//!
//! A trigger on `sessions` NOTIFYs `maskline_routes` with the session id
//! when a session is created, completed or its expiry changes (at commit,
//! in commit order). The listener applies each: an open session is routed
//! (and its TTL timer armed, so expiry fires on whichever node gets there
//! first: the store completes it once); a completed one loses its route
//! and its calls on this node are hung up. Whenever the listening
//! connection is (re)established, a full reload follows, so nothing missed
//! while it was down stays missed.

use std::collections::HashSet;
use std::time::Duration;

use maskline_engine::{Command, HangupBy};
use sqlx::postgres::PgListener;

use crate::cluster::Cluster;
use crate::service::sessions::{SessionService, REASON_TTL_EXPIRED};
use crate::store::sessions::{self, SessionRow};
use crate::store::{numbers, StoreError};

/// The notification channel of route changes.
pub const CHANNEL: &str = "maskline_routes";
/// Pause before listening again after the connection failed.
const RECONNECT_BACKOFF: Duration = Duration::from_secs(1);
/// Cause of the hangups of a session completed on another node.
const HANGUP_CAUSE: &str = "NORMAL_CLEARING";

/// Listen, reload, apply, until the task is aborted.
pub async fn run(cluster: Cluster, sessions: SessionService) {
    loop {
        match listen(&cluster, &sessions).await {
            Ok(()) => tracing::warn!("route listener connection lost; listening again"),
            Err(e) => tracing::warn!(error = %e, "route listener failed; listening again"),
        }
        tokio::time::sleep(RECONNECT_BACKOFF).await;
    }
}

/// One listening connection: LISTEN first, then a full reload, then every
/// notification until the connection drops.
async fn listen(cluster: &Cluster, sessions: &SessionService) -> Result<(), StoreError> {
    let mut listener = PgListener::connect(cluster.store_url()).await?;
    listener.listen(CHANNEL).await?;
    let report = reload(sessions).await?;
    tracing::info!(
        routed = report.routed,
        removed = report.removed,
        "routes reloaded from the store"
    );
    // `try_recv` gives `None` when the connection dropped: start over.
    while let Some(n) = listener.try_recv().await? {
        if let Err(e) = apply(sessions, n.payload()).await {
            tracing::warn!(session_id = %n.payload(), error = %e, "route change not applied");
        }
    }
    Ok(())
}

/// What a full reload did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reload {
    /// Open sessions routed.
    pub routed: usize,
    /// Routes dropped because no open session holds their number.
    pub removed: usize,
}

/// Route every open session and drop the route of every pool number that
/// no open session holds (hanging up this node's calls of its session).
/// Run after LISTEN: a change racing the reload is notified and applied
/// after it.
pub async fn reload(sessions: &SessionService) -> Result<Reload, StoreError> {
    let (open, all) = {
        let mut conn = sessions.store().pool().acquire().await?;
        (
            sessions::list_not_completed(&mut conn).await?,
            numbers::all(&mut conn).await?,
        )
    };
    let held: HashSet<&str> = open.iter().map(|s| s.masked_number.as_str()).collect();
    let mut report = Reload::default();
    for row in &open {
        sessions.activate(row);
        report.routed += 1;
    }
    // A route no open session of the snapshot holds: its session was
    // completed while we were not listening (or was created just after
    // the snapshot, which `apply` finds open and routes again).
    let stale: Vec<String> = all
        .iter()
        .filter(|n| !held.contains(n.as_str()))
        .filter_map(|n| sessions.engine().routes().get(n).map(|r| r.session_id))
        .collect();
    for session_id in stale {
        apply(sessions, &session_id).await?;
        report.removed += 1;
    }
    Ok(report)
}

/// Apply the change of session `session_id`.
pub async fn apply(sessions: &SessionService, session_id: &str) -> Result<(), StoreError> {
    let row = {
        let mut conn = sessions.store().pool().acquire().await?;
        sessions::get(&mut conn, session_id).await?
    };
    match row {
        None => {}
        Some(row) if row.is_completed() => drop_route(sessions, &row),
        Some(row) => sessions.activate(&row),
    }
    Ok(())
}

/// A session completed (here or on another node): its number stops
/// routing to it, and its calls on this node end.
fn drop_route(sessions: &SessionService, row: &SessionRow) {
    let engine = sessions.engine();
    if engine
        .routes()
        .get(&row.masked_number)
        .is_some_and(|r| r.session_id == row.id)
    {
        engine.remove_route(&row.masked_number);
    }
    let by = if row.completion_reason.as_deref() == Some(REASON_TTL_EXPIRED) {
        HangupBy::Ttl
    } else {
        HangupBy::Api
    };
    hang_up(sessions, &row.id, by);
}

/// Hang up this node's calls of a session (none is fine), in the
/// background.
fn hang_up(sessions: &SessionService, session_id: &str, by: HangupBy) {
    let engine = sessions.engine().clone();
    let command = Command::HangupSession {
        session_id: session_id.to_string(),
        cause: HANGUP_CAUSE.to_string(),
        by,
    };
    tokio::spawn(async move {
        if let Err(e) = engine.send(command).await {
            tracing::debug!(error = %e, "hanging up a completed session's calls");
        }
    });
}
