//! Commands for a call that another node owns go to that node.
//!
//! [`Dispatcher`] is what the command service sends engine commands
//! through. On a clustered node, a command naming a call (answer, hangup,
//! disconnect, recording pause/resume) is looked up: a call this node owns
//! (or one without an owner) goes to the local engine; a call of another
//! live node is POSTed to that node's [`internal`](super::internal) route
//! with the cluster secret, and the owner's engine result comes back
//! (within the caller's 2 s budget); a call of a dead node is gone.

use std::future::Future;

use maskline_engine::{Command, CommandError, CommandReply, EngineHandle, HangupBy};
use serde::{Deserialize, Serialize};

use crate::cluster::Cluster;
use crate::service::commands::Dispatch;
use crate::store::{calls, nodes};

/// The internal route commands are forwarded to.
pub const INTERNAL_PATH: &str = "/internal/v1/commands";
/// The header carrying the cluster secret.
pub const SECRET_HEADER: &str = "x-maskline-cluster-secret";

/// A call command as it travels between nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Forwarded {
    /// [`Command::Answer`].
    Answer {
        /// Engine call id.
        call_id: String,
    },
    /// [`Command::Hangup`].
    Hangup {
        /// Engine call id.
        call_id: String,
        /// Q.850 cause name.
        cause: String,
        /// Recorded as `hangup_by`.
        by: HangupBy,
    },
    /// [`Command::Disconnect`].
    Disconnect {
        /// Engine call id.
        call_id: String,
    },
    /// [`Command::PauseRecording`].
    PauseRecording {
        /// Engine call id.
        call_id: String,
    },
    /// [`Command::ResumeRecording`].
    ResumeRecording {
        /// Engine call id.
        call_id: String,
    },
}

impl Forwarded {
    /// The forwardable form of `command`; `None` for commands that do not
    /// name one call (they stay on this node).
    pub fn from_command(command: &Command) -> Option<Forwarded> {
        Some(match command {
            Command::Answer { call_id } => Forwarded::Answer {
                call_id: call_id.clone(),
            },
            Command::Hangup { call_id, cause, by } => Forwarded::Hangup {
                call_id: call_id.clone(),
                cause: cause.clone(),
                by: *by,
            },
            Command::Disconnect { call_id } => Forwarded::Disconnect {
                call_id: call_id.clone(),
            },
            Command::PauseRecording { call_id } => Forwarded::PauseRecording {
                call_id: call_id.clone(),
            },
            Command::ResumeRecording { call_id } => Forwarded::ResumeRecording {
                call_id: call_id.clone(),
            },
            _ => return None,
        })
    }

    /// The engine command.
    pub fn into_command(self) -> Command {
        match self {
            Forwarded::Answer { call_id } => Command::Answer { call_id },
            Forwarded::Hangup { call_id, cause, by } => Command::Hangup { call_id, cause, by },
            Forwarded::Disconnect { call_id } => Command::Disconnect { call_id },
            Forwarded::PauseRecording { call_id } => Command::PauseRecording { call_id },
            Forwarded::ResumeRecording { call_id } => Command::ResumeRecording { call_id },
        }
    }

    /// The call it is for.
    pub fn call_id(&self) -> &str {
        match self {
            Forwarded::Answer { call_id }
            | Forwarded::Hangup { call_id, .. }
            | Forwarded::Disconnect { call_id }
            | Forwarded::PauseRecording { call_id }
            | Forwarded::ResumeRecording { call_id } => call_id,
        }
    }
}

/// The owner's engine result, as it travels back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum ForwardReply {
    /// `Ok(CommandReply::Done(touched))`.
    Done {
        /// Calls the command touched.
        touched: usize,
    },
    /// `Err(CommandError)`.
    Failed {
        /// `unknown_call`, `invalid_state`, `stopped`, `session_busy`,
        /// `no_route`, `congestion`.
        code: String,
        /// The call concerned, when the error names one.
        call_id: Option<String>,
        /// The call's state (`invalid_state`) or session (`session_busy`).
        detail: Option<String>,
    },
}

impl ForwardReply {
    /// The wire form of an engine result.
    pub fn from_result(result: Result<CommandReply, CommandError>) -> ForwardReply {
        let failed =
            |code: &str, call_id: Option<String>, detail: Option<String>| ForwardReply::Failed {
                code: code.to_string(),
                call_id,
                detail,
            };
        match result {
            Ok(CommandReply::Done(touched)) => ForwardReply::Done { touched },
            // A reply kind from a newer engine: carried out, nothing counted.
            Ok(_) => ForwardReply::Done { touched: 0 },
            Err(CommandError::UnknownCall(id)) => failed("unknown_call", Some(id), None),
            Err(CommandError::InvalidState { call_id, state }) => {
                failed("invalid_state", Some(call_id), Some(state))
            }
            Err(CommandError::SessionBusy(session)) => failed("session_busy", None, Some(session)),
            Err(CommandError::NoRoute) => failed("no_route", None, None),
            Err(CommandError::Congestion) => failed("congestion", None, None),
            Err(_) => failed("stopped", None, None),
        }
    }

    /// Back to the engine result (`call_id` fills what the reply lacks).
    pub fn into_result(self, call_id: &str) -> Result<CommandReply, CommandError> {
        match self {
            ForwardReply::Done { touched } => Ok(CommandReply::Done(touched)),
            ForwardReply::Failed {
                code,
                call_id: id,
                detail,
            } => {
                let id = id.unwrap_or_else(|| call_id.to_string());
                Err(match code.as_str() {
                    "unknown_call" => CommandError::UnknownCall(id),
                    "invalid_state" => CommandError::InvalidState {
                        call_id: id,
                        state: detail.unwrap_or_default(),
                    },
                    "session_busy" => CommandError::SessionBusy(detail.unwrap_or_default()),
                    "no_route" => CommandError::NoRoute,
                    "congestion" => CommandError::Congestion,
                    _ => CommandError::Stopped,
                })
            }
        }
    }
}

/// Sends engine commands to the node that owns their call. Cheap to clone.
#[derive(Clone)]
pub struct Dispatcher {
    engine: EngineHandle,
    cluster: Option<Cluster>,
}

impl Dispatcher {
    /// Commands go to `engine`, or (on a cluster) to the owner node.
    pub fn new(engine: EngineHandle, cluster: Option<Cluster>) -> Self {
        Dispatcher { engine, cluster }
    }

    /// Send `command` where its call lives and wait for the result.
    pub async fn send(&self, command: Command) -> Result<CommandReply, CommandError> {
        let (Some(cluster), Some(fwd)) = (&self.cluster, Forwarded::from_command(&command)) else {
            return self.engine.send(command).await;
        };
        match owner(cluster, fwd.call_id()).await {
            Owner::Here => self.engine.send(command).await,
            Owner::Gone => Err(CommandError::UnknownCall(fwd.call_id().to_string())),
            Owner::Node { id, http_address } => {
                tracing::debug!(call_id = %fwd.call_id(), node_id = %id, "forwarding command");
                forward(cluster, &http_address, &fwd).await
            }
        }
    }
}

impl Dispatch for Dispatcher {
    fn dispatch(
        &self,
        command: Command,
    ) -> impl Future<Output = Result<CommandReply, CommandError>> + Send {
        let this = self.clone();
        async move { this.send(command).await }
    }
}

/// Where a call lives.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Owner {
    /// On this node (or unknown here: the local engine answers).
    Here,
    /// On another live node.
    Node { id: String, http_address: String },
    /// On a node that is dead or stopped: the call is over.
    Gone,
}

async fn owner(cluster: &Cluster, call_id: &str) -> Owner {
    let Ok(mut conn) = cluster.store().pool().acquire().await else {
        return Owner::Here;
    };
    let node_id = match calls::owner(&mut conn, call_id).await {
        Ok(Some(Some(node))) if node != cluster.node_id() => node,
        _ => return Owner::Here,
    };
    match nodes::get(&mut conn, &node_id).await {
        Ok(Some(n)) if n.reaped_at.is_none() && n.left_at.is_none() => Owner::Node {
            id: n.id,
            http_address: n.http_address,
        },
        Ok(Some(_)) => Owner::Gone,
        _ => Owner::Here,
    }
}

/// POST the command to the owner's internal route.
async fn forward(
    cluster: &Cluster,
    http_address: &str,
    fwd: &Forwarded,
) -> Result<CommandReply, CommandError> {
    let url = format!("http://{http_address}{INTERNAL_PATH}");
    let response = cluster
        .client()
        .post(&url)
        .header(SECRET_HEADER, cluster.secret())
        .json(fwd)
        .send()
        .await;
    let reply = match response {
        Ok(r) if r.status().is_success() => r.json::<ForwardReply>().await,
        Ok(r) => {
            tracing::warn!(url = %url, status = %r.status(), "forwarded command refused");
            return Err(CommandError::Stopped);
        }
        Err(e) => {
            tracing::warn!(url = %url, error = %e, "cannot forward command");
            return Err(CommandError::Stopped);
        }
    };
    match reply {
        Ok(reply) => reply.into_result(fwd.call_id()),
        Err(e) => {
            tracing::warn!(url = %url, error = %e, "bad reply to a forwarded command");
            Err(CommandError::Stopped)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_commands_travel_and_come_back_unchanged() {
        let commands = [
            Command::Answer {
                call_id: "cal_1".into(),
            },
            Command::Hangup {
                call_id: "cal_1".into(),
                cause: "USER_BUSY".into(),
                by: HangupBy::Api,
            },
            Command::Disconnect {
                call_id: "cal_1".into(),
            },
            Command::PauseRecording {
                call_id: "cal_1".into(),
            },
            Command::ResumeRecording {
                call_id: "cal_1".into(),
            },
        ];
        for c in commands {
            let fwd = Forwarded::from_command(&c).unwrap_or_else(|| panic!("{c:?}"));
            assert_eq!(fwd.call_id(), "cal_1");
            let json = serde_json::to_string(&fwd).unwrap_or_default();
            let back: Forwarded =
                serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
            assert_eq!(format!("{:?}", back.into_command()), format!("{c:?}"));
        }
        assert!(Forwarded::from_command(&Command::Drain).is_none());
        let hangup = serde_json::to_value(Forwarded::Hangup {
            call_id: "cal_1".into(),
            cause: "NORMAL_CLEARING".into(),
            by: HangupBy::Api,
        })
        .unwrap_or_default();
        assert_eq!(
            hangup,
            serde_json::json!({"command": "hangup", "call_id": "cal_1",
                "cause": "NORMAL_CLEARING", "by": "api"})
        );
    }

    #[test]
    fn engine_results_travel_and_come_back_unchanged() {
        let results = [
            Ok(CommandReply::Done(1)),
            Err(CommandError::UnknownCall("cal_1".into())),
            Err(CommandError::InvalidState {
                call_id: "cal_1".into(),
                state: "bridging".into(),
            }),
            Err(CommandError::SessionBusy("ses_1".into())),
            Err(CommandError::NoRoute),
            Err(CommandError::Congestion),
            Err(CommandError::Stopped),
        ];
        for r in results {
            let wire =
                serde_json::to_string(&ForwardReply::from_result(r.clone())).unwrap_or_default();
            let back: ForwardReply =
                serde_json::from_str(&wire).unwrap_or_else(|e| panic!("{e}: {wire}"));
            assert_eq!(back.into_result("cal_1"), r, "{wire}");
        }
        let unknown = ForwardReply::Failed {
            code: "from_the_future".into(),
            call_id: None,
            detail: None,
        };
        assert_eq!(unknown.into_result("cal_1"), Err(CommandError::Stopped));
    }
}
