//! The command loop: turns [`Command`]s into actor inputs.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::shared::{ActorInput, CallRef, Shared};
use crate::handle::{Command, CommandEnvelope, CommandError, CommandReply, HangupBy};

pub(crate) async fn command_loop(shared: Arc<Shared>, mut rx: mpsc::Receiver<CommandEnvelope>) {
    while let Some((command, reply)) = rx.recv().await {
        let shared = shared.clone();
        // Each command waits on its own actor; never block the loop.
        tokio::spawn(async move {
            let result = run(&shared, command).await;
            let _ = reply.send(result);
        });
    }
}

async fn run(shared: &Arc<Shared>, command: Command) -> Result<CommandReply, CommandError> {
    match command {
        Command::HangupSession {
            session_id,
            cause,
            by,
        } => {
            let Some(call) = shared.by_session.get(&session_id).map(|c| c.clone()) else {
                return Ok(CommandReply::Done(0));
            };
            match hangup(&call, cause, by).await {
                Ok(reply) => Ok(reply),
                Err(CommandError::UnknownCall(_)) => Ok(CommandReply::Done(0)),
                Err(e) => Err(e),
            }
        }
        Command::Hangup { call_id, cause, by } => {
            hangup(&lookup(shared, &call_id)?, cause, by).await
        }
        Command::Answer { call_id } => {
            let call = lookup(shared, &call_id)?;
            ask(&call, |reply| ActorInput::Answer { reply }).await
        }
        Command::Drain => {
            shared
                .draining
                .store(true, std::sync::atomic::Ordering::Relaxed);
            Ok(CommandReply::Done(shared.by_session.len()))
        }
        Command::HangupAll { cause, by } => {
            let calls: Vec<CallRef> = shared
                .by_engine_id
                .iter()
                .map(|c| c.value().clone())
                .collect();
            let mut n = 0;
            for call in calls {
                if let Ok(CommandReply::Done(k)) = hangup(&call, cause.clone(), by).await {
                    n += k;
                }
            }
            Ok(CommandReply::Done(n))
        }
        Command::PauseRecording { call_id } => {
            let call = lookup(shared, &call_id)?;
            ask(&call, |reply| ActorInput::Recording { pause: true, reply }).await
        }
        Command::ResumeRecording { call_id } => {
            let call = lookup(shared, &call_id)?;
            ask(&call, |reply| ActorInput::Recording {
                pause: false,
                reply,
            })
            .await
        }
        Command::Originate(req) => super::originate::start(shared, req),
        Command::Disconnect { call_id } => {
            let call = lookup(shared, &call_id)?;
            ask(&call, |reply| ActorInput::Disconnect { reply }).await
        }
    }
}

async fn hangup(call: &CallRef, cause: String, by: HangupBy) -> Result<CommandReply, CommandError> {
    ask(call, |reply| ActorInput::Hangup { cause, by, reply }).await
}

fn lookup(shared: &Shared, call_id: &str) -> Result<CallRef, CommandError> {
    shared
        .by_engine_id
        .get(call_id)
        .map(|c| c.clone())
        .ok_or_else(|| CommandError::UnknownCall(call_id.to_string()))
}

async fn ask(
    call: &CallRef,
    input: impl FnOnce(oneshot::Sender<Result<CommandReply, CommandError>>) -> ActorInput,
) -> Result<CommandReply, CommandError> {
    let (tx, rx) = oneshot::channel();
    call.mailbox
        .send(input(tx))
        .await
        .map_err(|_| CommandError::UnknownCall(call.engine_id.clone()))?;
    rx.await
        .map_err(|_| CommandError::UnknownCall(call.engine_id.clone()))?
}
