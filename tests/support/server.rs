//! The real `maskline` binary as a child process.

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::time::{sleep, Instant};

use crate::api::Api;
use crate::config::{StartOptions, API_KEY};
use crate::error::{E2eError, Result};
use crate::pg::PgDatabase;
use crate::ports::PortBlock;
use crate::wait::POLL_INTERVAL;

/// How long a start may take until `/healthz` answers 200.
const READY_WITHIN: Duration = Duration::from_secs(30);
/// How long a SIGTERM'd process may take to exit before it is killed.
const STOP_WITHIN: Duration = Duration::from_secs(10);
/// Log lines shown with a failure.
const TAIL_LINES: usize = 80;

static INSTANCE: AtomicU32 = AtomicU32::new(0);

/// A running Maskline with its own ports, config, data dir and log.
///
/// Dropping it kills the process and prints the tail of its log (libtest
/// shows that output only for failed tests); the data dir is removed unless
/// the test is panicking or `MASKLINE_E2E_KEEP` is set.
#[derive(Debug)]
pub struct Maskline {
    child: Option<Child>,
    ports: PortBlock,
    dir: PathBuf,
    config: PathBuf,
    log: PathBuf,
    bin: PathBuf,
    api: Api,
    /// The instance's own PostgreSQL database (PostgreSQL pass, when the
    /// test named no store): dropped after the process is gone.
    db: Option<PgDatabase>,
}

/// The binary under test: `$MASKLINE_BIN`, else `maskline` in the cargo
/// target dir (`$CARGO_TARGET_DIR` or `<workspace>/target`), debug profile.
pub fn binary_path() -> PathBuf {
    if let Some(bin) = std::env::var_os("MASKLINE_BIN") {
        return PathBuf::from(bin);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("debug").join("maskline")
}

impl Maskline {
    /// Starts an instance with `opts` on a fresh block of ports and a fresh
    /// temp dir, and waits until `GET /healthz` answers 200.
    pub async fn start(mut opts: StartOptions) -> Result<Maskline> {
        let bin = binary_path();
        let db = match opts.store_url {
            Some(_) => None,
            None => PgDatabase::create()?,
        };
        if let Some(db) = &db {
            opts.store_url = Some(db.url().to_string());
        }
        if !bin.is_file() {
            return Err(E2eError::BinaryMissing(bin));
        }
        let ports = PortBlock::allocate()?;
        let n = INSTANCE.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("maskline-e2e-{}-{n}", std::process::id()));
        if dir.exists() {
            fs::remove_dir_all(&dir)
                .map_err(|e| E2eError::io(format!("removing {}", dir.display()), e))?;
        }
        fs::create_dir_all(dir.join("recordings"))
            .map_err(|e| E2eError::io(format!("creating {}", dir.display()), e))?;
        let config = dir.join("maskline.toml");
        fs::write(&config, opts.render(&ports, &dir))
            .map_err(|e| E2eError::io(format!("writing {}", config.display()), e))?;
        let api = Api::new(format!("http://127.0.0.1:{}", ports.http()), API_KEY)?;
        let mut ml = Maskline {
            child: None,
            ports,
            log: dir.join("maskline.log"),
            dir,
            config,
            bin,
            api,
            db,
        };
        ml.spawn()?;
        ml.wait_ready().await?;
        Ok(ml)
    }

    fn spawn(&mut self) -> Result<()> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| E2eError::io(format!("opening {}", self.log.display()), e))?;
        let err_log = log
            .try_clone()
            .map_err(|e| E2eError::io("duplicating the log handle", e))?;
        let mut cmd = Command::new(&self.bin);
        cmd.arg("serve")
            .arg("--config")
            .arg(&self.config)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err_log);
        // The config file must be the whole truth: drop env overrides.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("MASKLINE_") {
                cmd.env_remove(key);
            }
        }
        cmd.env("NO_COLOR", "1");
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info,maskline=debug,maskline_engine=debug");
        }
        let child = cmd
            .spawn()
            .map_err(|e| E2eError::io(format!("spawning {}", self.bin.display()), e))?;
        self.child = Some(child);
        Ok(())
    }

    /// Polls `/healthz` until 200, failing fast if the process exits.
    async fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if let Some(status) = self.exit_status()? {
                return Err(self.exited(status));
            }
            if let Ok(200) = self.api.healthz().await {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(E2eError::timeout(
                    format!(
                        "GET {}/healthz = 200; log tail:\n{}",
                        self.api.base(),
                        self.log_tail(TAIL_LINES)
                    ),
                    READY_WITHIN,
                ));
            }
            sleep(POLL_INTERVAL).await;
        }
    }

    fn exit_status(&mut self) -> Result<Option<ExitStatus>> {
        match self.child.as_mut() {
            None => Ok(None),
            Some(child) => child
                .try_wait()
                .map_err(|e| E2eError::io("checking the maskline process", e)),
        }
    }

    fn exited(&self, status: ExitStatus) -> E2eError {
        E2eError::Exited {
            status: status.to_string(),
            log: self.log.clone(),
            tail: self.log_tail(TAIL_LINES),
        }
    }

    /// Fails if the process is no longer running (e.g. it crashed).
    pub fn assert_running(&mut self) -> Result<()> {
        match self.exit_status()? {
            Some(status) => Err(self.exited(status)),
            None => Ok(()),
        }
    }

    /// Sends SIGTERM and waits (bounded) for the process to exit; kills it
    /// if it does not. Returns its exit status.
    pub async fn stop(&mut self) -> Result<ExitStatus> {
        let Some(mut child) = self.child.take() else {
            return Err(E2eError::Unexpected("maskline is not running".into()));
        };
        let pid = child.id().to_string();
        let term = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .map_err(|e| E2eError::io("running kill -TERM", e))?;
        if !term.success() {
            return Err(E2eError::Unexpected(format!("kill -TERM {pid} failed")));
        }
        let deadline = Instant::now() + STOP_WITHIN;
        loop {
            if let Some(status) = child
                .try_wait()
                .map_err(|e| E2eError::io("waiting for maskline", e))?
            {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(E2eError::timeout(
                    "maskline to exit after SIGTERM (killed it)",
                    STOP_WITHIN,
                ));
            }
            sleep(POLL_INTERVAL).await;
        }
    }

    /// Kills the process with SIGKILL (no drain, no cleanup: a crash) and
    /// waits for it to be gone. Returns its exit status.
    pub fn kill9(&mut self) -> Result<ExitStatus> {
        let Some(mut child) = self.child.take() else {
            return Err(E2eError::Unexpected("maskline is not running".into()));
        };
        child.kill().map_err(|e| E2eError::io("kill -9", e))?;
        child
            .wait()
            .map_err(|e| E2eError::io("waiting for maskline", e))
    }

    /// Starts the process again after [`Maskline::stop`], on the same
    /// config, data dir and ports, and waits until it is ready.
    pub async fn start_again(&mut self) -> Result<()> {
        if self.child.is_some() {
            return Err(E2eError::Unexpected("maskline is still running".into()));
        }
        self.spawn()?;
        self.wait_ready().await
    }

    /// Stops the process with SIGTERM (bounded wait) and starts it again on
    /// the same config, data dir and ports. Returns how the old one exited.
    pub async fn restart(&mut self) -> Result<ExitStatus> {
        let status = self.stop().await?;
        self.start_again().await?;
        Ok(status)
    }

    /// The process id of the running `maskline` (for `/proc/PID/status`).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The block of ports of this instance.
    pub fn ports(&self) -> &PortBlock {
        &self.ports
    }

    /// Maskline's SIP address.
    pub fn sip_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.ports.sip()))
    }

    /// The carrier trunk's address (where outbound legs go).
    pub fn trunk_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.ports.trunk()))
    }

    /// The REST client with the tenant's API key.
    pub fn api(&self) -> &Api {
        &self.api
    }

    /// The instance's temp dir (config, database, recordings, logs).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The last `lines` lines of the process's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let Ok(mut file) = File::open(&self.log) else {
            return format!("(no log at {})", self.log.display());
        };
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = file.seek(SeekFrom::Start(len.saturating_sub(256 * 1024)));
        let mut buf = Vec::new();
        if file.read_to_end(&mut buf).is_err() {
            return format!("(unreadable log at {})", self.log.display());
        }
        let text = String::from_utf8_lossy(&buf);
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Maskline {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(db) = self.db.take() {
            if std::env::var_os("MASKLINE_E2E_KEEP").is_some() {
                eprintln!("keeping database {}", db.url());
                std::mem::forget(db);
            }
        }
        // Captured by libtest: shown only when the test fails.
        eprintln!(
            "--- maskline log tail ({}) ---\n{}\n--- end of maskline log ---",
            self.log.display(),
            self.log_tail(TAIL_LINES)
        );
        if std::thread::panicking() || std::env::var_os("MASKLINE_E2E_KEEP").is_some() {
            eprintln!("keeping {} for inspection", self.dir.display());
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}
