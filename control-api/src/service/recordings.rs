//! Call recordings: where a tenant's finished recording is on disk, and
//! pausing / resuming a live call's recording through the engine (on a
//! cluster, the engine of the node that owns the call: the
//! [`Dispatcher`](crate::cluster::Dispatcher) forwards it there).
//!
//! The engine writes `<[recording] dir>/<call_id>.wav` and reports it with
//! `RecordingReady`, which sets the call's `recording_url`; until then the
//! recording is "not ready" even if a partial file exists.

use std::path::{Path, PathBuf};
use std::time::Duration;

use maskline_engine::{Command, CommandError};

use crate::service::commands::{Dispatch, COMMAND_TIMEOUT};
use crate::store::calls::{self, CallRow};
use crate::store::{Store, StoreError};

/// Longest call id accepted in a recording path.
const CALL_ID_MAX: usize = 64;

/// Why a recording request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordingError {
    /// No such call for this tenant.
    #[error("no such call")]
    NotFound,
    /// The call has no finished recording (yet).
    #[error("recording not ready")]
    NotReady,
    /// The call is over.
    #[error("the call has already ended")]
    CallEnded,
    /// The call is live but not being recorded (session without `record`,
    /// or not answered yet).
    #[error("the call is not being recorded")]
    NotRecording,
    /// The engine gave no answer within the command timeout, or failed.
    #[error("engine: {0}")]
    Engine(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Whether a recording is running or paused (the `recording` field of the
/// pause/resume responses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordingState {
    /// Audio is written.
    Recording,
    /// Silence is written until resumed.
    Paused,
}

impl RecordingState {
    /// `recording` or `paused`.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordingState::Recording => "recording",
            RecordingState::Paused => "paused",
        }
    }
}

/// A finished recording of a tenant's call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingFile {
    /// The call.
    pub call_id: String,
    /// The WAV file.
    pub path: PathBuf,
}

/// The recording service. Cheap to clone.
#[derive(Clone)]
pub struct RecordingService<D = crate::cluster::Dispatcher> {
    store: Store,
    engine: D,
    dir: PathBuf,
    timeout: Duration,
}

impl<D: Dispatch> RecordingService<D> {
    /// Assemble the service; `dir` is `[recording] dir`.
    pub fn new(store: Store, engine: D, dir: PathBuf) -> Self {
        RecordingService {
            store,
            engine,
            dir,
            timeout: COMMAND_TIMEOUT,
        }
    }

    /// The recordings directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    async fn call(&self, tenant_id: &str, call_id: &str) -> Result<CallRow, RecordingError> {
        if !valid_call_id(call_id) {
            return Err(RecordingError::NotFound);
        }
        let mut conn = self
            .store
            .pool()
            .acquire()
            .await
            .map_err(StoreError::from)?;
        calls::get_for_tenant(&mut conn, tenant_id, call_id)
            .await?
            .ok_or(RecordingError::NotFound)
    }

    /// The finished recording of a tenant's call: `NotFound` for an unknown
    /// (or another tenant's) call, `NotReady` until `recording_url` is set.
    pub async fn file(
        &self,
        tenant_id: &str,
        call_id: &str,
    ) -> Result<RecordingFile, RecordingError> {
        let call = self.call(tenant_id, call_id).await?;
        if call.recording_url.is_none() {
            return Err(RecordingError::NotReady);
        }
        let path = recording_path(&self.dir, &call.id).ok_or(RecordingError::NotFound)?;
        Ok(RecordingFile {
            call_id: call.id,
            path,
        })
    }

    /// Pause (`paused = true`) or resume a live call's recording; returns
    /// the state it is now in. Idempotent: pausing a paused recording is
    /// not an error.
    pub async fn set_paused(
        &self,
        tenant_id: &str,
        call_id: &str,
        paused: bool,
    ) -> Result<RecordingState, RecordingError> {
        let call = self.call(tenant_id, call_id).await?;
        if call.ended_at.is_some() {
            return Err(RecordingError::CallEnded);
        }
        let call_id = call.id.clone();
        let command = if paused {
            Command::PauseRecording { call_id }
        } else {
            Command::ResumeRecording { call_id }
        };
        let reply = tokio::time::timeout(self.timeout, self.engine.dispatch(command))
            .await
            .map_err(|_| {
                RecordingError::Engine(format!("no answer within {} ms", self.timeout.as_millis()))
            })?;
        let outcome = outcome(paused, reply.map(|_| ()));
        if matches!(outcome, Err(RecordingError::NotRecording)) {
            // The engine no longer records a call that has just ended
            // while its hangup was still being stored: say so.
            let now = self.call(tenant_id, &call.id).await?;
            if now.ended_at.is_some() {
                return Err(RecordingError::CallEnded);
            }
        }
        outcome
    }
}

/// The result of a pause/resume from the engine's reply.
fn outcome(
    paused: bool,
    reply: Result<(), CommandError>,
) -> Result<RecordingState, RecordingError> {
    match reply {
        Ok(()) => Ok(if paused {
            RecordingState::Paused
        } else {
            RecordingState::Recording
        }),
        Err(CommandError::UnknownCall(_)) => Err(RecordingError::CallEnded),
        Err(CommandError::InvalidState { state, .. }) if state == "ended" => {
            Err(RecordingError::CallEnded)
        }
        Err(CommandError::InvalidState { .. }) => Err(RecordingError::NotRecording),
        Err(e) => Err(RecordingError::Engine(e.to_string())),
    }
}

/// Whether `id` can name a recording file: 1–64 ASCII letters, digits, `_`
/// or `-` (engine ids are `cal_…`), so it never leaves the directory.
fn valid_call_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= CALL_ID_MAX
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// `<dir>/<call_id>.wav`, or `None` for an id that is not a plain name.
pub fn recording_path(dir: &Path, call_id: &str) -> Option<PathBuf> {
    valid_call_id(call_id).then(|| dir.join(format!("{call_id}.wav")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_in_the_directory() {
        let dir = Path::new("/data/rec");
        assert_eq!(
            recording_path(dir, "cal_01HXYZ-9"),
            Some(PathBuf::from("/data/rec/cal_01HXYZ-9.wav"))
        );
        for bad in [
            "",
            "../etc/passwd",
            "cal/x",
            "cal.x",
            "cal x",
            "cal%2e",
            "é",
        ] {
            assert_eq!(recording_path(dir, bad), None, "{bad:?}");
        }
        assert_eq!(recording_path(dir, &"a".repeat(65)), None);
        assert!(recording_path(dir, &"a".repeat(64)).is_some());
    }

    #[test]
    fn engine_replies_map_to_states_and_errors() {
        assert!(matches!(outcome(true, Ok(())), Ok(RecordingState::Paused)));
        assert!(matches!(
            outcome(false, Ok(())),
            Ok(RecordingState::Recording)
        ));
        assert!(matches!(
            outcome(true, Err(CommandError::UnknownCall("cal_1".into()))),
            Err(RecordingError::CallEnded)
        ));
        let invalid = |state: &str| CommandError::InvalidState {
            call_id: "cal_1".into(),
            state: state.into(),
        };
        assert!(matches!(
            outcome(true, Err(invalid("not recording"))),
            Err(RecordingError::NotRecording)
        ));
        assert!(matches!(
            outcome(false, Err(invalid("ended"))),
            Err(RecordingError::CallEnded)
        ));
        assert!(matches!(
            outcome(false, Err(CommandError::Stopped)),
            Err(RecordingError::Engine(_))
        ));
    }

    #[test]
    fn state_names() {
        assert_eq!(RecordingState::Paused.as_str(), "paused");
        assert_eq!(RecordingState::Recording.as_str(), "recording");
    }
}
