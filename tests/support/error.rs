//! The harness error type.

use std::path::PathBuf;
use std::time::Duration;

/// Result of harness operations.
pub type Result<T, E = E2eError> = std::result::Result<T, E>;

/// Anything that can go wrong while driving the real binary.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum E2eError {
    /// A socket, file or process operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// An awaited message or condition did not come in time.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// The bound that ran out.
        after: Duration,
    },
    /// An HTTP request could not be made or its body not read.
    #[error("HTTP {context}: {source}")]
    Http {
        /// Method and path.
        context: String,
        /// The client error.
        #[source]
        source: reqwest::Error,
    },
    /// An HTTP request got a status other than the expected one.
    #[error("HTTP {context} returned {status} (expected {expected}): {body}")]
    Status {
        /// Method and path.
        context: String,
        /// The status received.
        status: u16,
        /// The status expected.
        expected: u16,
        /// The response body.
        body: String,
    },
    /// A datagram that should be SIP could not be parsed.
    #[error("malformed SIP message ({reason}):\n{text}")]
    SipParse {
        /// What is wrong.
        reason: String,
        /// The message as text (lossy).
        text: String,
    },
    /// Something arrived that the test did not expect.
    #[error("unexpected: {0}")]
    Unexpected(String),
    /// The maskline binary is not where the harness looks.
    #[error("maskline binary not found at {0}: run `cargo build -p maskline` or set MASKLINE_BIN")]
    BinaryMissing(PathBuf),
    /// The maskline process exited while the test needed it.
    #[error("maskline exited early ({status}); log {log}:\n{tail}")]
    Exited {
        /// Its exit status.
        status: String,
        /// Its log file.
        log: PathBuf,
        /// The last lines of the log.
        tail: String,
    },
}

impl std::fmt::Debug for E2eError {
    /// Test functions returning `Err` print it with `{:?}`: show the readable
    /// message, not the struct.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl E2eError {
    /// An [`E2eError::Io`] with `context`.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        E2eError::Io {
            context: context.into(),
            source,
        }
    }

    /// An [`E2eError::Timeout`].
    pub fn timeout(what: impl Into<String>, after: Duration) -> Self {
        E2eError::Timeout {
            what: what.into(),
            after,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_the_readable_message() {
        let e = E2eError::timeout("BYE", Duration::from_secs(5));
        assert_eq!(format!("{e:?}"), "timed out after 5s waiting for BYE");
    }
}
