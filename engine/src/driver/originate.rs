//! Admission of an originated call ([`Command::Originate`]): both parties
//! must be reachable, the session free and RTP ports available; then a call
//! actor dials the first party.

use tokio::sync::mpsc;

use super::call_actor::{self, NewCall, Start};
use super::dispatch::destination;
use super::shared::{CallRef, Shared, MAILBOX};
use crate::b2bua::FirstLeg;
use crate::handle::{CommandError, CommandReply, OriginateRequest};
use crate::metrics::Metrics;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Admit `req` and start its actor; the reply says whether it started.
pub(crate) fn start(
    shared: &Arc<Shared>,
    req: OriginateRequest,
) -> Result<CommandReply, CommandError> {
    if shared.draining.load(Ordering::Relaxed) {
        return Err(CommandError::Congestion);
    }
    let first = destination(shared, &req.first).ok_or(CommandError::NoRoute)?;
    let second = destination(shared, &req.second).ok_or(CommandError::NoRoute)?;
    let (mailbox, inbox) = mpsc::channel(MAILBOX);
    let call = CallRef {
        engine_id: req.call_id.clone(),
        mailbox,
    };
    match shared.by_session.entry(req.session_id.clone()) {
        dashmap::Entry::Occupied(_) => return Err(CommandError::SessionBusy(req.session_id)),
        dashmap::Entry::Vacant(v) => {
            v.insert(call.clone());
        }
    }
    let Some([a_ports, b_ports]) = shared.ports.allocate_n::<2>() else {
        shared.by_session.remove(&req.session_id);
        tracing::warn!(session_id = %req.session_id, "RTP port range exhausted");
        return Err(CommandError::Congestion);
    };
    shared.by_engine_id.insert(req.call_id.clone(), call);
    Metrics::inc(&shared.metrics.call_attempts);
    tracing::info!(call_id = %req.call_id, session_id = %req.session_id, "originating");
    tokio::spawn(call_actor::run(
        shared.clone(),
        inbox,
        NewCall {
            engine_id: req.call_id,
            session_id: req.session_id,
            control: false,
            record: req.record,
            masked: req.masked,
            caller: req.first.clone(),
            callee: req.second,
            start: Start::Originate(FirstLeg {
                number: req.first,
                dest: first.dest,
                request_uri: first.request_uri,
                credentials: first.credentials,
            }),
            b_dest: second.dest,
            b_request_uri: second.request_uri,
            b_credentials: second.credentials,
            b_alternatives: second.alternatives,
            a_ports,
            b_ports,
        },
    ));
    Ok(CommandReply::Done(1))
}
