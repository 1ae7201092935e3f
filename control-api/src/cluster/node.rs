//! The node's lease, and the reaper of dead nodes.
//!
//! Every `lease / 3` the node renews its lease, then looks for nodes whose
//! lease ran out. The first survivor to claim a dead node (a conditional
//! update, so exactly one) ends its live calls: `failed`/`completed` with
//! `NETWORK_OUT_OF_ORDER`, `hangup_by: system`, a `call.hangup` event each,
//! and their sessions become `open` again (still routable through every
//! other node); the operations it was dispatching fail (`interrupted`, a
//! `command.result` each), as start-up recovery fails a node's own.
//!
//! A clean stop ([`leave`], after the drain) ends the lease at once and
//! marks the node as left: survivors never reap it.

use std::time::Duration;

use maskline_engine::HangupBy;

use crate::cluster::Cluster;
use crate::service::commands::{CommandService, Outcome};
use crate::service::engine_events::call_event;
use crate::service::events::EventBus;
use crate::store::calls::{self, CallEnd};
use crate::store::{nodes, operations, sessions, StoreError};

/// Cause recorded on the calls of a node that died.
pub const NODE_LOST_CAUSE: &str = "NETWORK_OUT_OF_ORDER";
/// Error code of the operations a node could not finish.
pub const INTERRUPTED: &str = "interrupted";
/// Shortest renewal period.
const MIN_PERIOD: Duration = Duration::from_millis(500);

/// Register this node with a fresh lease (at start; again if it was
/// declared dead while it could not renew).
pub(crate) async fn register(cluster: &Cluster) -> Result<(), StoreError> {
    let now = cluster.clock().now_ms();
    let mut conn = cluster.store().pool().acquire().await?;
    nodes::register(
        &mut conn,
        cluster.node_id(),
        cluster.http_address(),
        now,
        cluster.lease_until(now),
    )
    .await
}

/// How often the lease is renewed (and dead nodes looked for).
pub fn renew_period(lease: Duration) -> Duration {
    (lease / 3).max(MIN_PERIOD)
}

/// Renew the lease and reap dead nodes, every [`renew_period`], until the
/// task is aborted.
pub async fn run(cluster: Cluster, events: EventBus, commands: CommandService) {
    let mut tick = tokio::time::interval(renew_period(cluster.lease()));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = beat(&cluster, &events, &commands).await {
            tracing::warn!(error = %e, "cluster lease renewal failed");
        }
    }
}

/// One renewal plus one look for dead nodes. Returns the calls ended.
pub async fn beat(
    cluster: &Cluster,
    events: &EventBus,
    commands: &CommandService,
) -> Result<usize, StoreError> {
    let now = cluster.clock().now_ms();
    let dead = {
        let mut conn = cluster.store().pool().acquire().await?;
        if !nodes::renew(&mut conn, cluster.node_id(), now, cluster.lease_until(now)).await? {
            tracing::error!(node_id = %cluster.node_id(),
                "this node's lease had run out and another node ended its calls; registering again");
            drop(conn);
            register(cluster).await?;
            return Ok(0);
        }
        let mut dead = Vec::new();
        for id in nodes::expired(&mut conn, cluster.node_id(), now).await? {
            if nodes::claim_dead(&mut conn, &id, now).await? {
                dead.push(id);
            }
        }
        dead
    };
    let mut ended = 0;
    for id in dead {
        let n = reap(cluster, events, &id).await?;
        let failed = fail_operations(cluster, commands, &id).await?;
        tracing::warn!(dead_node = %id, calls_ended = n, operations_failed = failed,
            "node lease expired: its calls are ended");
        ended += n;
    }
    Ok(ended)
}

/// Fail (`interrupted`) every operation dead node `dead_id` was still
/// dispatching: its result can no longer come. Returns how many.
pub async fn fail_operations(
    cluster: &Cluster,
    commands: &CommandService,
    dead_id: &str,
) -> Result<usize, StoreError> {
    let ids = {
        let mut conn = cluster.store().pool().acquire().await?;
        operations::list_in_progress_on_node(&mut conn, dead_id).await?
    };
    let outcome = Outcome::Failed {
        code: INTERRUPTED,
        message: format!("node {dead_id} died before the engine's result came"),
    };
    for id in &ids {
        commands.record(id, &outcome).await?;
    }
    Ok(ids.len())
}

/// A clean stop, once the calls are drained and their hangups stored: the
/// node's own operations still in progress fail (`interrupted`) and it
/// leaves (its lease ends now; survivors never reap it). When calls of
/// this node are still live in the store (the drain could not record
/// them), it stays a member instead, so that a survivor ends them once its
/// lease runs out. Returns whether it left.
pub async fn leave(cluster: &Cluster, commands: &CommandService) -> Result<bool, StoreError> {
    let live = {
        let mut conn = cluster.store().pool().acquire().await?;
        calls::list_live_on_node(&mut conn, cluster.node_id()).await?
    };
    if !live.is_empty() {
        tracing::warn!(node_id = %cluster.node_id(), calls = live.len(),
            "stopping with live calls in the store: not leaving the cluster, a survivor ends them when the lease runs out");
        return Ok(false);
    }
    let interrupted = commands.recover().await?;
    if interrupted > 0 {
        tracing::warn!(
            operations = interrupted,
            "operations still in progress at the stop marked failed"
        );
    }
    let mut conn = cluster.store().pool().acquire().await?;
    nodes::leave(&mut conn, cluster.node_id(), cluster.clock().now_ms()).await?;
    tracing::info!(node_id = %cluster.node_id(), "left the cluster");
    Ok(true)
}

/// End every live call of dead node `dead_id`. Returns how many.
pub async fn reap(
    cluster: &Cluster,
    events: &EventBus,
    dead_id: &str,
) -> Result<usize, StoreError> {
    let store = cluster.store();
    let live = {
        let mut conn = store.pool().acquire().await?;
        calls::list_live_on_node(&mut conn, dead_id).await?
    };
    let now = cluster.clock().now_ms();
    let mut ended = 0;
    for call in live {
        let mut tx = events.begin(store).await?;
        let end = CallEnd {
            ended_at: now.max(call.started_at),
            cause: NODE_LOST_CAUSE,
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
            ended += 1;
        }
        tx.commit().await?;
    }
    Ok(ended)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_is_a_third_of_the_lease_but_not_too_often() {
        assert_eq!(renew_period(Duration::from_secs(9)), Duration::from_secs(3));
        assert_eq!(renew_period(Duration::from_secs(1)), MIN_PERIOD);
    }
}
