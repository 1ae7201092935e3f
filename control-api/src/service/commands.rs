//! Call-control commands (`answer`, `hangup`, `disconnect`): accept and
//! store an operation, send the command to the engine, wait at most
//! [`COMMAND_TIMEOUT`] for its result, record it and append
//! `command.result`.
//!
//! A `command_uid` makes a command idempotent per call: the same uid again
//! (even concurrently) returns the first operation and dispatches nothing.
//! The `(call_id, command_uid)` unique key of `operations` decides races.

use std::future::Future;
use std::time::Duration;

use maskline_engine::sip::q850;
use maskline_engine::{Command, CommandError, CommandReply, EngineHandle, HangupBy};

use crate::service::events::EventBus;
use crate::store::events::NewEvent;
use crate::store::operations::{self, OperationEnd, OperationRow, STATUS_IN_PROGRESS};
use crate::store::{calls, Store, StoreError};
use crate::util::time::Clock;
use crate::view::OperationView;

/// The longest the control plane waits for the engine's result.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// [`COMMAND_TIMEOUT`] in ms, as returned in the 202 body (`timeout_ms`).
pub const COMMAND_TIMEOUT_MS: u64 = 2000;
/// Cause of a hangup command that names none.
pub const DEFAULT_CAUSE: &str = "NORMAL_CLEARING";
/// How often recording a result is tried before it is given up (logged).
const RECORD_ATTEMPTS: u32 = 3;

/// A call-control command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallCommand {
    /// Answer a call held in control mode.
    Answer,
    /// End the call with a Q.850 cause.
    Hangup,
    /// Release control: default routing (bridge to the other party).
    Disconnect,
}

impl CallCommand {
    /// From the path segment (`answer`, `hangup`, `disconnect`).
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "answer" => Some(CallCommand::Answer),
            "hangup" => Some(CallCommand::Hangup),
            "disconnect" => Some(CallCommand::Disconnect),
            _ => None,
        }
    }

    /// The name as used in the API and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            CallCommand::Answer => "answer",
            CallCommand::Hangup => "hangup",
            CallCommand::Disconnect => "disconnect",
        }
    }
}

/// A validated command request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandRequest {
    /// Which command.
    pub command: CallCommand,
    /// De-duplication key.
    pub command_uid: Option<String>,
    /// Q.850 cause name (hangup only; [`DEFAULT_CAUSE`] when absent).
    pub cause: Option<String>,
}

impl CommandRequest {
    /// The cause the engine will be given (hangup only).
    pub fn effective_cause(&self) -> Option<String> {
        match self.command {
            CallCommand::Hangup => Some(
                self.cause
                    .clone()
                    .unwrap_or_else(|| DEFAULT_CAUSE.to_string()),
            ),
            CallCommand::Answer | CallCommand::Disconnect => None,
        }
    }
}

/// Why a command was not accepted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SubmitError {
    /// No such call for this tenant.
    #[error("no such call")]
    NotFound,
    /// The call is over.
    #[error("the call has already ended")]
    CallEnded,
    /// The `command_uid` was used for a different command on this call.
    #[error("command_uid was already used on this call for `{0}`")]
    UidConflict(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An accepted command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submitted {
    /// The operation (as it is now, for a replay).
    pub operation: OperationRow,
    /// Whether an earlier request with the same `command_uid` created it.
    pub replayed: bool,
}

/// What carries commands to the engine: the [`EngineHandle`], or a fake in
/// unit tests.
pub trait Dispatch: Clone + Send + Sync + 'static {
    /// Send `command` and wait for the engine's reply.
    fn dispatch(
        &self,
        command: Command,
    ) -> impl Future<Output = Result<CommandReply, CommandError>> + Send;
}

impl Dispatch for EngineHandle {
    fn dispatch(
        &self,
        command: Command,
    ) -> impl Future<Output = Result<CommandReply, CommandError>> + Send {
        self.send(command)
    }
}

/// How an operation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The engine carried it out.
    Succeeded,
    /// The engine refused it.
    Failed {
        /// Stable error code.
        code: &'static str,
        /// Detail.
        message: String,
    },
    /// No result within the timeout.
    Timeout,
}

impl Outcome {
    /// The operation `status`.
    pub fn status(&self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Failed { .. } => "failed",
            Outcome::Timeout => "timeout",
        }
    }
}

/// Send `command` and wait at most `timeout` for the result.
pub async fn execute<D: Dispatch>(engine: &D, command: Command, timeout: Duration) -> Outcome {
    match tokio::time::timeout(timeout, engine.dispatch(command)).await {
        Err(_) => Outcome::Timeout,
        Ok(Ok(_)) => Outcome::Succeeded,
        Ok(Err(e)) => Outcome::Failed {
            code: match &e {
                CommandError::UnknownCall(_) => "call_ended",
                CommandError::InvalidState { .. } => "invalid_state",
                CommandError::Stopped => "engine_stopped",
                _ => "engine_error",
            },
            message: e.to_string(),
        },
    }
}

/// The engine command for a request on `call_id`.
pub fn engine_command(call_id: &str, req: &CommandRequest) -> Command {
    let call_id = call_id.to_string();
    match req.command {
        CallCommand::Answer => Command::Answer { call_id },
        CallCommand::Disconnect => Command::Disconnect { call_id },
        CallCommand::Hangup => Command::Hangup {
            call_id,
            cause: req
                .effective_cause()
                .unwrap_or_else(|| DEFAULT_CAUSE.to_string()),
            by: HangupBy::Api,
        },
    }
}

/// Whether `name` is a cause the engine knows (`NORMAL_CLEARING`, …).
pub fn is_known_cause(name: &str) -> bool {
    q850::by_name(name).is_some()
}

/// The command service. Cheap to clone.
#[derive(Clone)]
pub struct CommandService<D = crate::cluster::Dispatcher> {
    store: Store,
    events: EventBus,
    engine: D,
    clock: Clock,
    timeout: Duration,
}

impl<D: Dispatch> CommandService<D> {
    /// Assemble the service (timeout [`COMMAND_TIMEOUT`]).
    pub fn new(store: Store, events: EventBus, engine: D, clock: Clock) -> Self {
        CommandService {
            store,
            events,
            engine,
            clock,
            timeout: COMMAND_TIMEOUT,
        }
    }

    /// Accept a command for a tenant's call: replay by `command_uid`, or
    /// store a new operation and dispatch it in the background.
    pub async fn submit(
        &self,
        tenant_id: &str,
        call_id: &str,
        req: CommandRequest,
    ) -> Result<Submitted, SubmitError> {
        let mut conn = self
            .store
            .pool()
            .acquire()
            .await
            .map_err(StoreError::from)?;
        let call = calls::get_for_tenant(&mut conn, tenant_id, call_id)
            .await?
            .ok_or(SubmitError::NotFound)?;
        if let Some(uid) = &req.command_uid {
            if let Some(existing) = operations::find_by_uid(&mut conn, call_id, uid).await? {
                return replay(existing, &req);
            }
        }
        if call.ended_at.is_some() {
            return Err(SubmitError::CallEnded);
        }
        let op = OperationRow {
            id: uuid::Uuid::new_v4().to_string(),
            tenant_id: call.tenant_id.clone(),
            call_id: call.id.clone(),
            command: req.command.as_str().to_string(),
            command_uid: req.command_uid.clone(),
            cause: req.effective_cause(),
            status: STATUS_IN_PROGRESS.to_string(),
            error: None,
            error_message: None,
            created_at: self.clock.now_ms(),
            completed_at: None,
        };
        if !operations::insert(&mut conn, &op).await? {
            // Lost a race on the same command_uid: the winner's operation.
            let uid = req.command_uid.as_deref().unwrap_or_default();
            let existing = operations::find_by_uid(&mut conn, call_id, uid)
                .await?
                .ok_or_else(|| {
                    StoreError::Corrupt(format!("operation for {call_id}/{uid} vanished"))
                })?;
            return replay(existing, &req);
        }
        drop(conn);
        tracing::info!(call_id = %op.call_id, operation_id = %op.id, command = %op.command,
            cause = ?op.cause, "command accepted");
        let command = engine_command(call_id, &req);
        let service = self.clone();
        let running = op.clone();
        tokio::spawn(async move { service.run(running, command).await });
        Ok(Submitted {
            operation: op,
            replayed: false,
        })
    }

    /// A tenant's operation.
    pub async fn get(&self, tenant_id: &str, id: &str) -> Result<Option<OperationRow>, StoreError> {
        let mut conn = self.store.pool().acquire().await?;
        operations::get_for_tenant(&mut conn, tenant_id, id).await
    }

    /// Operations left `in_progress` by a stop or crash: their result can
    /// no longer come, so they fail (`interrupted`) with their
    /// `command.result`. Returns how many.
    pub async fn recover(&self) -> Result<usize, StoreError> {
        let ids = {
            let mut conn = self.store.pool().acquire().await?;
            operations::list_in_progress(&mut conn).await?
        };
        let outcome = Outcome::Failed {
            code: "interrupted",
            message: "Maskline stopped before the engine's result came".into(),
        };
        for id in &ids {
            self.record(id, &outcome).await?;
        }
        Ok(ids.len())
    }

    /// Dispatch, wait, record (with a few retries when the store fails).
    async fn run(self, op: OperationRow, command: Command) {
        let outcome = execute(&self.engine, command, self.timeout).await;
        tracing::info!(call_id = %op.call_id, operation_id = %op.id, command = %op.command,
            status = outcome.status(), "command result");
        let mut attempt = 1;
        while let Err(e) = self.record(&op.id, &outcome).await {
            if attempt >= RECORD_ATTEMPTS {
                tracing::error!(operation_id = %op.id, error = %e, "command result lost");
                return;
            }
            tracing::warn!(operation_id = %op.id, error = %e, attempt, "retrying command result");
            tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
            attempt += 1;
        }
    }

    /// Store the result of operation `id` and append its `command.result`.
    /// Nothing happens when it is no longer in progress.
    pub async fn record(&self, id: &str, outcome: &Outcome) -> Result<(), StoreError> {
        let (code, message) = match outcome {
            Outcome::Failed { code, message } => (Some(*code), Some(message.clone())),
            Outcome::Timeout => (
                Some("timeout"),
                Some(format!(
                    "no result from the engine within {COMMAND_TIMEOUT_MS} ms"
                )),
            ),
            Outcome::Succeeded => (None, None),
        };
        let now = self.clock.now_ms();
        let mut tx = self.events.begin(&self.store).await?;
        let end = OperationEnd {
            status: outcome.status(),
            error: code,
            error_message: message.as_deref(),
            completed_at: now,
        };
        let Some(op) = operations::complete(&mut tx, id, &end).await? else {
            tx.rollback().await?;
            return Ok(());
        };
        let session_id = calls::get(&mut tx, &op.call_id)
            .await?
            .map(|c| c.session_id);
        let data = OperationView::from(&op).result_data();
        tx.append(&NewEvent {
            tenant_id: &op.tenant_id,
            session_id: session_id.as_deref(),
            call_id: Some(&op.call_id),
            kind: "command.result",
            data: &data,
            created_at: now,
        })
        .await?;
        tx.commit().await
    }
}

/// The existing operation for a replayed `command_uid`, unless it was for
/// another command or cause.
fn replay(existing: OperationRow, req: &CommandRequest) -> Result<Submitted, SubmitError> {
    if existing.command != req.command.as_str() || existing.cause != req.effective_cause() {
        let was = match &existing.cause {
            Some(cause) => format!("{} {cause}", existing.command),
            None => existing.command.clone(),
        };
        return Err(SubmitError::UidConflict(was));
    }
    Ok(Submitted {
        operation: existing,
        replayed: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake engine: replies with `reply` after `delay`.
    #[derive(Clone)]
    struct Fake {
        delay: Duration,
        reply: Result<CommandReply, CommandError>,
    }

    impl Dispatch for Fake {
        fn dispatch(
            &self,
            _command: Command,
        ) -> impl Future<Output = Result<CommandReply, CommandError>> + Send {
            let (delay, reply) = (self.delay, self.reply.clone());
            async move {
                tokio::time::sleep(delay).await;
                reply
            }
        }
    }

    fn fake(delay_ms: u64, reply: Result<CommandReply, CommandError>) -> Fake {
        Fake {
            delay: Duration::from_millis(delay_ms),
            reply,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_reply_within_the_timeout_is_the_outcome() {
        let ok = fake(1_999, Ok(CommandReply::Done(1)));
        let cmd = Command::Answer {
            call_id: "cal_1".into(),
        };
        assert_eq!(execute(&ok, cmd, COMMAND_TIMEOUT).await, Outcome::Succeeded);
        let refused = fake(
            10,
            Err(CommandError::InvalidState {
                call_id: "cal_1".into(),
                state: "bridging".into(),
            }),
        );
        let cmd = Command::Disconnect {
            call_id: "cal_1".into(),
        };
        match execute(&refused, cmd, COMMAND_TIMEOUT).await {
            Outcome::Failed { code, message } => {
                assert_eq!(code, "invalid_state");
                assert!(message.contains("bridging"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn no_reply_within_two_seconds_is_a_timeout() {
        let slow = fake(2_001, Ok(CommandReply::Done(1)));
        let started = tokio::time::Instant::now();
        let cmd = Command::Answer {
            call_id: "cal_1".into(),
        };
        assert_eq!(execute(&slow, cmd, COMMAND_TIMEOUT).await, Outcome::Timeout);
        assert_eq!(started.elapsed(), COMMAND_TIMEOUT);
    }

    #[tokio::test(start_paused = true)]
    async fn engine_errors_map_to_codes() {
        for (err, code) in [
            (CommandError::UnknownCall("cal_1".into()), "call_ended"),
            (CommandError::Stopped, "engine_stopped"),
        ] {
            let f = fake(0, Err(err));
            let cmd = Command::Answer {
                call_id: "cal_1".into(),
            };
            match execute(&f, cmd, COMMAND_TIMEOUT).await {
                Outcome::Failed { code: c, .. } => assert_eq!(c, code),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn commands_parse_and_build_engine_commands() {
        assert_eq!(CallCommand::parse("answer"), Some(CallCommand::Answer));
        assert_eq!(CallCommand::parse("hangup"), Some(CallCommand::Hangup));
        assert_eq!(
            CallCommand::parse("disconnect"),
            Some(CallCommand::Disconnect)
        );
        assert_eq!(CallCommand::parse("Answer"), None);
        assert_eq!(CallCommand::parse("transfer"), None);

        let hangup = CommandRequest {
            command: CallCommand::Hangup,
            command_uid: None,
            cause: None,
        };
        match engine_command("cal_1", &hangup) {
            Command::Hangup { call_id, cause, by } => {
                assert_eq!((call_id.as_str(), cause.as_str()), ("cal_1", DEFAULT_CAUSE));
                assert_eq!(by, HangupBy::Api);
            }
            other => panic!("{other:?}"),
        }
        let busy = CommandRequest {
            cause: Some("USER_BUSY".into()),
            ..hangup
        };
        assert!(matches!(
            engine_command("cal_1", &busy),
            Command::Hangup { cause, .. } if cause == "USER_BUSY"
        ));
        let answer = CommandRequest {
            command: CallCommand::Answer,
            command_uid: Some("u1".into()),
            cause: None,
        };
        assert_eq!(answer.effective_cause(), None);
        assert!(matches!(
            engine_command("cal_1", &answer),
            Command::Answer { call_id } if call_id == "cal_1"
        ));
    }

    #[test]
    fn replay_returns_the_first_operation_unless_the_command_differs() {
        let op = OperationRow {
            id: "op".into(),
            tenant_id: "ten".into(),
            call_id: "cal".into(),
            command: "hangup".into(),
            command_uid: Some("u".into()),
            cause: Some("USER_BUSY".into()),
            status: "succeeded".into(),
            error: None,
            error_message: None,
            created_at: 1,
            completed_at: Some(2),
        };
        let same = CommandRequest {
            command: CallCommand::Hangup,
            command_uid: Some("u".into()),
            cause: Some("USER_BUSY".into()),
        };
        assert!(replay(op.clone(), &same).is_ok_and(|s| s.replayed && s.operation == op));
        let other_cause = CommandRequest {
            cause: None,
            ..same.clone()
        };
        assert!(matches!(
            replay(op.clone(), &other_cause),
            Err(SubmitError::UidConflict(was)) if was == "hangup USER_BUSY"
        ));
        let other_command = CommandRequest {
            command: CallCommand::Answer,
            cause: None,
            ..same
        };
        assert!(matches!(
            replay(op, &other_command),
            Err(SubmitError::UidConflict(_))
        ));
    }

    #[test]
    fn known_causes() {
        assert!(is_known_cause("USER_BUSY"));
        assert!(is_known_cause("NORMAL_CLEARING"));
        assert!(!is_known_cause("NOT_A_CAUSE"));
    }
}
