//! The webhook receiver of `tests/webhooks/receiver.py`, as a child
//! process: it verifies every delivery with the `standardwebhooks` package
//! from PyPI (an implementation independent of Maskline's), fails the
//! first attempts of each `webhook-id`, and logs what it saw as JSON lines.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::error::{E2eError, Result};

/// How long the receiver may take to start listening.
const START_WITHIN: Duration = Duration::from_secs(10);

/// A running `receiver.py`.
#[derive(Debug)]
pub struct WebhookReceiver {
    child: Child,
    port: u16,
    log: PathBuf,
    secret_file: PathBuf,
}

/// The receiver script in the source tree.
pub fn script_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("webhooks/receiver.py")
}

impl WebhookReceiver {
    /// Starts the receiver with its files in `dir`; it answers 500 to the
    /// first `fail_first` attempts of each `webhook-id`, then 200.
    pub async fn start(dir: &Path, fail_first: u32) -> Result<WebhookReceiver> {
        let log = dir.join("webhooks.jsonl");
        let secret_file = dir.join("webhook-secret");
        let err_log = std::fs::File::create(dir.join("receiver.stderr"))
            .map_err(|e| E2eError::io("creating receiver.stderr", e))?;
        let mut child = Command::new("python3")
            .arg(script_path())
            .args(["--port", "0", "--fail-first", &fail_first.to_string()])
            .arg("--secret-file")
            .arg(&secret_file)
            .arg("--log")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(err_log)
            .spawn()
            .map_err(|e| E2eError::io("spawning python3 tests/webhooks/receiver.py", e))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| E2eError::Unexpected("receiver without stdout".into()))?;
        let first_line = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            BufReader::new(stdout).read_line(&mut line).map(|_| line)
        });
        let line = match tokio::time::timeout(START_WITHIN, first_line).await {
            Ok(Ok(Ok(line))) => line,
            other => {
                let _ = child.kill();
                let _ = child.wait();
                let stderr =
                    std::fs::read_to_string(dir.join("receiver.stderr")).unwrap_or_default();
                return Err(E2eError::Unexpected(format!(
                    "receiver.py did not start ({other:?}); is `standardwebhooks` installed \
                     (tests/install-deps.sh)? stderr:\n{stderr}"
                )));
            }
        };
        let port = line
            .trim()
            .strip_prefix("listening ")
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| E2eError::Unexpected(format!("receiver said {line:?}")))?;
        Ok(WebhookReceiver {
            child,
            port,
            log,
            secret_file,
        })
    }

    /// The URL to give Maskline.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hooks", self.port)
    }

    /// Give the receiver the endpoint's secret (read at each request).
    pub fn set_secret(&self, secret: &str) -> Result<()> {
        std::fs::write(&self.secret_file, secret)
            .map_err(|e| E2eError::io(format!("writing {}", self.secret_file.display()), e))
    }

    /// Every request seen so far, oldest first (one JSON object each).
    pub fn entries(&self) -> Result<Vec<Value>> {
        let text = match std::fs::read_to_string(&self.log) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(E2eError::io(format!("reading {}", self.log.display()), e)),
        };
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l)
                    .map_err(|e| E2eError::Unexpected(format!("bad receiver log line {l}: {e}")))
            })
            .collect()
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
