//! The engine event consumer: one task draining the engine's event stream in
//! order and persisting each event (calls row, session columns, an `events`
//! row and its webhook outbox rows in one transaction) before it is
//! published to SSE subscribers and the webhook worker.

use maskline_engine::{Direction, EngineEvent};
use tokio::sync::mpsc;

use crate::service::events::{EventBus, EventTx};
use crate::store::calls::{self, CallEnd, NewCall};
use crate::store::events::NewEvent;
use crate::store::{sessions, Store, StoreError};
use crate::util::time::system_time_to_ms;
use crate::view::CallView;

/// Q.850 cause of a call the caller abandoned before answer.
const ORIGINATOR_CANCEL: &str = "ORIGINATOR_CANCEL";

/// How often a failed write is retried before the event is dropped (logged).
const ATTEMPTS: u32 = 3;
/// Most events stored in one transaction. Under load events arrive faster
/// than one commit (an fsync) per event allows; a batch shares the commit.
const BATCH: usize = 256;

/// Drain `events` until the engine closes the stream.
/// Persist and publish every engine event in order; `handled` counts the
/// events done with (stored, or given up on), so a shutdown can wait for
/// the last ones.
pub async fn run(
    bus: EventBus,
    store: Store,
    mut events: mpsc::UnboundedReceiver<EngineEvent>,
    handled: tokio::sync::watch::Sender<u64>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    while events.recv_many(&mut batch, BATCH).await > 0 {
        // One transaction for the whole batch; if any event fails, the
        // batch is rolled back and each event is retried on its own.
        if apply_batch(&bus, &store, &batch).await.is_err() {
            for event in &batch {
                apply_with_retries(&bus, &store, event).await;
            }
        }
        let n = batch.len() as u64;
        batch.clear();
        handled.send_modify(|h| *h += n);
    }
    tracing::debug!("engine event stream closed");
}

async fn apply_batch(
    bus: &EventBus,
    store: &Store,
    batch: &[EngineEvent],
) -> Result<(), StoreError> {
    let mut tx = bus.begin(store).await?;
    for event in batch {
        apply_in(&mut tx, event).await?;
    }
    tx.commit().await
}

async fn apply_with_retries(bus: &EventBus, store: &Store, event: &EngineEvent) {
    let mut attempt = 1;
    loop {
        match apply(bus, store, event).await {
            Ok(()) => return,
            Err(e) if attempt < ATTEMPTS => {
                tracing::warn!(call_id = %event.call_id(), error = %e, attempt, "retrying engine event");
                tokio::time::sleep(std::time::Duration::from_millis(100 * u64::from(attempt)))
                    .await;
                attempt += 1;
            }
            Err(e) => {
                tracing::error!(call_id = %event.call_id(), session_id = %event.session_id(),
                    event = event_name(event), error = %e, "engine event lost");
                return;
            }
        }
    }
}

/// Persist one engine event, then publish it. Events about unknown
/// sessions, unknown calls or out-of-order transitions change nothing.
pub async fn apply(bus: &EventBus, store: &Store, event: &EngineEvent) -> Result<(), StoreError> {
    let mut tx = bus.begin(store).await?;
    apply_in(&mut tx, event).await?;
    tx.commit().await
}

/// Persist one engine event inside `tx` (published when `tx` commits).
async fn apply_in(tx: &mut EventTx, event: &EngineEvent) -> Result<(), StoreError> {
    let kind = match event {
        EngineEvent::CallInitiated {
            call_id,
            session_id,
            direction,
            caller,
            callee,
            at,
        } => {
            let call = NewCall {
                id: call_id,
                session_id,
                direction: match direction {
                    Direction::Inbound => "inbound",
                    Direction::Outbound => "outbound",
                },
                state: "ringing",
                caller,
                callee,
                started_at: system_time_to_ms(*at),
            };
            if !calls::insert(&mut *tx, &call).await? {
                if *direction == Direction::Outbound {
                    // Originated: the API stored the call (and its
                    // `call.initiated`) before the engine dialled it.
                    return Ok(());
                }
                tracing::warn!(call_id = %call_id, session_id = %session_id,
                    "call for an unknown session or already recorded; ignored");
                return Ok(());
            }
            sessions::call_started(&mut *tx, session_id, call_id).await?;
            tracing::info!(call_id = %call_id, session_id = %session_id, "call initiated");
            "call.initiated"
        }
        EngineEvent::CallRinging { call_id, .. } => {
            if !calls::advance(&mut *tx, call_id, "ringing", &["queued", "ringing"], None).await? {
                return Ok(());
            }
            "call.ringing"
        }
        EngineEvent::CallAnswered { call_id, at, .. } => {
            let at = Some(system_time_to_ms(*at));
            if !calls::advance(&mut *tx, call_id, "answered", &["queued", "ringing"], at).await? {
                return Ok(());
            }
            tracing::info!(call_id = %call_id, "call answered");
            "call.answered"
        }
        EngineEvent::CallBridged { call_id, at, .. } => {
            let at = Some(system_time_to_ms(*at));
            if !calls::advance(
                &mut *tx,
                call_id,
                "bridged",
                &["queued", "ringing", "answered"],
                at,
            )
            .await?
            {
                return Ok(());
            }
            "call.bridged"
        }
        EngineEvent::CallHangup {
            call_id,
            session_id,
            cause,
            sip_status,
            hangup_by,
            answered,
            at,
            media,
        } => {
            let end = CallEnd {
                ended_at: system_time_to_ms(*at),
                cause,
                by: hangup_by.as_str(),
                sip_status: sip_status.map(i64::from),
                answered: *answered,
                state_if_answered: "completed",
                state_if_unanswered: if cause == ORIGINATOR_CANCEL {
                    "cancelled"
                } else {
                    "failed"
                },
                quality: serde_json::to_string(&serde_json::json!({ "a": media.a, "b": media.b }))
                    .ok(),
            };
            if !calls::end(&mut *tx, call_id, &end).await? {
                return Ok(());
            }
            sessions::call_ended(&mut *tx, session_id, call_id).await?;
            tracing::info!(call_id = %call_id, session_id = %session_id, cause = %cause,
                hangup_by = hangup_by.as_str(), a_to_b = media.a_to_b_packets,
                b_to_a = media.b_to_a_packets, dropped = media.dropped_packets, "call ended");
            "call.hangup"
        }
        EngineEvent::RecordingReady {
            call_id,
            duration_ms,
            dropped_packets,
            at,
            ..
        } => {
            let url = format!("/v1/calls/{call_id}/recording");
            calls::set_recording_url(&mut *tx, call_id, &url).await?;
            let Some(call) = calls::get(&mut *tx, call_id).await? else {
                return Ok(());
            };
            let mut data = CallView::from(&call).to_value();
            data["recording"] = serde_json::json!({
                "url": url,
                "duration_ms": duration_ms,
                "dropped_packets": dropped_packets,
            });
            tx.append(&NewEvent {
                tenant_id: &call.tenant_id,
                session_id: Some(&call.session_id),
                call_id: Some(&call.id),
                kind: "recording.ready",
                data: &data,
                created_at: system_time_to_ms(*at),
            })
            .await?;
            return Ok(());
        }
    };
    call_event(tx, event.call_id(), kind, event_time_ms(event)).await
}

/// A short name for logs (the event itself carries party numbers).
fn event_name(event: &EngineEvent) -> &'static str {
    match event {
        EngineEvent::CallInitiated { .. } => "call_initiated",
        EngineEvent::CallRinging { .. } => "call_ringing",
        EngineEvent::CallAnswered { .. } => "call_answered",
        EngineEvent::CallBridged { .. } => "call_bridged",
        EngineEvent::CallHangup { .. } => "call_hangup",
        EngineEvent::RecordingReady { .. } => "recording_ready",
    }
}

/// When an engine event happened, in unix ms.
fn event_time_ms(event: &EngineEvent) -> i64 {
    match event {
        EngineEvent::CallInitiated { at, .. }
        | EngineEvent::CallRinging { at, .. }
        | EngineEvent::CallAnswered { at, .. }
        | EngineEvent::CallBridged { at, .. }
        | EngineEvent::CallHangup { at, .. }
        | EngineEvent::RecordingReady { at, .. } => system_time_to_ms(*at),
    }
}

/// Append a call event (`data` = the Call object as it now is).
pub(crate) async fn call_event(
    tx: &mut EventTx,
    call_id: &str,
    kind: &str,
    at_ms: i64,
) -> Result<(), StoreError> {
    let Some(call) = calls::get(tx, call_id).await? else {
        return Err(StoreError::Corrupt(format!(
            "call {call_id} vanished inside its transaction"
        )));
    };
    let data = CallView::from(&call).to_value();
    tx.append(&NewEvent {
        tenant_id: &call.tenant_id,
        session_id: Some(&call.session_id),
        call_id: Some(&call.id),
        kind,
        data: &data,
        created_at: at_ms,
    })
    .await?;
    Ok(())
}
