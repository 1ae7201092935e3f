//! One live call per session across nodes.
//!
//! Each node's engine knows only its own calls, so on its own it would
//! admit a second call for a session whose call another node carries. This
//! worker keeps the engine's "busy elsewhere" set
//! ([`RouteTable::set_busy_elsewhere`]) in step with the store: the sessions
//! whose live call (`sessions.active_call_id`, still not ended) another
//! node owns. The engine answers INVITEs for them 486, as for its own.
//!
//! It follows the node's event bus, which on a cluster carries every
//! node's events in id order: on `call.initiated`, `call.hangup` and
//! `session.completed` it reads that session's state again (so the last
//! read wins, whatever the order of the reads); after a lag, and at start,
//! it reads every session's.
//!
//! The check is cheap, not atomic: between a call's admission on one node
//! and its `call.initiated` reaching another (the event store's batch, the
//! NOTIFY: typically a few ms, at most the feed's 1 s poll), the other node
//! may still admit a call for the same session.
//!
//! [`RouteTable::set_busy_elsewhere`]: maskline_engine::routing::RouteTable::set_busy_elsewhere

use std::collections::HashSet;

use maskline_engine::EngineHandle;
use tokio::sync::broadcast::error::RecvError;

use crate::cluster::Cluster;
use crate::service::events::EventBus;
use crate::store::{nodes, StoreError};

/// Event types after which a session's busy state is read again.
const EDGES: [&str; 3] = ["call.initiated", "call.hangup", "session.completed"];

/// Whether an event of type `kind` may change a session's busy state.
fn is_edge(kind: &str) -> bool {
    EDGES.contains(&kind)
}

/// Follow the event bus until it closes (or the task is aborted).
pub async fn run(cluster: Cluster, events: EventBus, engine: EngineHandle) {
    // Subscribe before the full read: a change racing it is read again.
    let mut rx = events.subscribe();
    loop {
        if let Err(e) = sync_all(&cluster, &engine).await {
            tracing::warn!(error = %e, "cannot read which sessions are busy on other nodes");
        }
        loop {
            match rx.recv().await {
                Ok(row) if is_edge(&row.kind) => {
                    let Some(session_id) = row.session_id.as_deref() else {
                        continue;
                    };
                    if let Err(e) = sync(&cluster, &engine, session_id).await {
                        tracing::warn!(session_id, error = %e,
                            "cannot read whether a session is busy on another node");
                    }
                }
                Ok(_) => {}
                Err(RecvError::Lagged(n)) => {
                    tracing::debug!(missed = n, "busy-session worker lagged; reading all again");
                    break;
                }
                Err(RecvError::Closed) => return,
            }
        }
    }
}

/// Read session `session_id`'s state and set the engine's flag.
pub async fn sync(
    cluster: &Cluster,
    engine: &EngineHandle,
    session_id: &str,
) -> Result<(), StoreError> {
    let busy = {
        let mut conn = cluster.store().pool().acquire().await?;
        nodes::session_busy_elsewhere(&mut conn, cluster.node_id(), session_id).await?
    };
    let routes = engine.routes();
    match (routes.is_busy_elsewhere(session_id), busy) {
        (false, true) => tracing::debug!(session_id, "session busy on another node"),
        (true, false) => tracing::debug!(session_id, "session no longer busy on another node"),
        _ => {}
    }
    routes.set_busy_elsewhere(session_id, busy);
    Ok(())
}

/// Read every session's state and make the engine's set exactly that.
pub async fn sync_all(cluster: &Cluster, engine: &EngineHandle) -> Result<usize, StoreError> {
    let busy: HashSet<String> = {
        let mut conn = cluster.store().pool().acquire().await?;
        nodes::sessions_busy_elsewhere(&mut conn, cluster.node_id())
            .await?
            .into_iter()
            .collect()
    };
    let routes = engine.routes();
    for stale in routes
        .busy_elsewhere()
        .into_iter()
        .filter(|s| !busy.contains(s))
    {
        routes.set_busy_elsewhere(&stale, false);
    }
    for session_id in &busy {
        routes.set_busy_elsewhere(session_id, true);
    }
    Ok(busy.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_call_starts_and_ends_are_read_again() {
        for kind in ["call.initiated", "call.hangup", "session.completed"] {
            assert!(is_edge(kind), "{kind}");
        }
        for kind in [
            "call.ringing",
            "call.answered",
            "call.bridged",
            "session.created",
            "command.result",
        ] {
            assert!(!is_edge(kind), "{kind}");
        }
    }
}
