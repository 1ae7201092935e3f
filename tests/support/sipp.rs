//! Running SIPp (Debian `sip-tester`) with the scenarios of `tests/sipp/`.
//!
//! Each run is a child process with `-m 1`, its own `-timeout` (so it ends
//! by itself), and message/error traces in the test's dir; the harness
//! bounds the wait on top of that and kills it past the bound.

use std::fs;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use tokio::time::{sleep, Instant};

use crate::error::{E2eError, Result};
use crate::ports::SippPorts;
use crate::wait::{wait_for, POLL_INTERVAL};

/// How one SIPp instance runs.
#[derive(Debug, Clone)]
pub struct SippOptions {
    /// Scenario file name in `tests/sipp/`.
    pub scenario: String,
    /// Local IP (`-i`, also `-mi`).
    pub ip: IpAddr,
    /// Local ports.
    pub ports: SippPorts,
    /// Where to send (UAC); `None` for a UAS.
    pub remote: Option<SocketAddr>,
    /// Request-URI user (`-s`).
    pub service: Option<String>,
    /// `-key name value` pairs, used as `[name]` in the scenario.
    pub keys: Vec<(String, String)>,
    /// SIPp's own global timeout (`-timeout`, with `-timeout_error`).
    pub timeout_secs: u32,
    /// SIP over TCP, one connection (`-t t1`) instead of UDP.
    pub tcp: bool,
}

impl SippOptions {
    /// A UAC on `ip`/`ports` running `scenario` toward `remote`, dialling
    /// `service`.
    pub fn uac(
        scenario: &str,
        ip: IpAddr,
        ports: SippPorts,
        remote: SocketAddr,
        service: &str,
    ) -> Self {
        SippOptions {
            scenario: scenario.to_string(),
            ip,
            ports,
            remote: Some(remote),
            service: Some(service.to_string()),
            keys: Vec::new(),
            timeout_secs: 20,
            tcp: false,
        }
    }

    /// A UAS listening on `ip:sip_port` (e.g. the trunk port) running
    /// `scenario`; `ports.sip` is replaced by `sip_port`.
    pub fn uas(scenario: &str, ip: IpAddr, ports: SippPorts, sip_port: u16) -> Self {
        SippOptions {
            scenario: scenario.to_string(),
            ip,
            ports: SippPorts {
                sip: sip_port,
                ..ports
            },
            remote: None,
            service: None,
            keys: Vec::new(),
            timeout_secs: 20,
            tcp: false,
        }
    }

    /// Runs over TCP (`-t t1`).
    pub fn over_tcp(mut self) -> Self {
        self.tcp = true;
        self
    }

    /// Adds `-key name value`.
    pub fn key(mut self, name: &str, value: &str) -> Self {
        self.keys.push((name.to_string(), value.to_string()));
        self
    }
}

/// The directory of the SIPp scenarios.
pub fn scenario_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("sipp")
}

/// The `sipp` executable: `$SIPP_BIN`, else `sipp` on the PATH.
fn sipp_bin() -> PathBuf {
    std::env::var_os("SIPP_BIN").map_or_else(|| PathBuf::from("sipp"), PathBuf::from)
}

/// A running SIPp.
#[derive(Debug)]
pub struct Sipp {
    child: Option<Child>,
    name: String,
    ip: IpAddr,
    port: u16,
    tcp: bool,
    messages: PathBuf,
    errors: PathBuf,
    screen: PathBuf,
}

/// How a SIPp run ended, with its traces.
#[derive(Debug, Clone)]
pub struct SippOutcome {
    /// Its name in the test.
    pub name: String,
    /// Exit status: 0 = every call succeeded, 1 = a call failed.
    pub status: ExitStatus,
    /// The `-trace_msg` log: every message sent and received.
    pub messages: String,
    /// The `-trace_err` log: unexpected messages and errors.
    pub errors: String,
    /// What SIPp printed (its final screens).
    pub screen: String,
}

impl Sipp {
    /// Starts SIPp per `opts`, its traces in `log_dir` under `name`.
    pub fn spawn(opts: &SippOptions, log_dir: &Path, name: &str) -> Result<Sipp> {
        let scenario = scenario_dir().join(&opts.scenario);
        let messages = log_dir.join(format!("{name}_messages.log"));
        let errors = log_dir.join(format!("{name}_errors.log"));
        let screen = log_dir.join(format!("{name}_screen.log"));
        let out = fs::File::create(&screen)
            .map_err(|e| E2eError::io(format!("creating {}", screen.display()), e))?;
        let err = out
            .try_clone()
            .map_err(|e| E2eError::io("duplicating the SIPp log handle", e))?;
        let mut cmd = Command::new(sipp_bin());
        if let Some(remote) = opts.remote {
            cmd.arg(remote.to_string());
        }
        cmd.arg("-sf")
            .arg(&scenario)
            .args(["-i", &opts.ip.to_string()])
            .args(["-p", &opts.ports.sip.to_string()])
            .args(["-mi", &opts.ip.to_string()])
            .args(["-mp", &opts.ports.media.to_string()])
            .args(["-cp", &opts.ports.control.to_string()])
            .args(["-m", "1"])
            .args(["-timeout", &format!("{}s", opts.timeout_secs)])
            .arg("-timeout_error")
            .arg("-nostdin")
            .arg("-trace_msg")
            .arg("-message_file")
            .arg(&messages)
            .arg("-trace_err")
            .arg("-error_file")
            .arg(&errors);
        if let Some(service) = &opts.service {
            cmd.args(["-s", service]);
        }
        if opts.tcp {
            cmd.args(["-t", "t1"]);
        }
        for (k, v) in &opts.keys {
            cmd.args(["-key", k, v]);
        }
        cmd.current_dir(log_dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        let child = cmd.spawn().map_err(|e| {
            E2eError::io(
                format!(
                    "spawning {} (install Debian's sip-tester or set SIPP_BIN)",
                    sipp_bin().display()
                ),
                e,
            )
        })?;
        Ok(Sipp {
            child: Some(child),
            name: name.to_string(),
            ip: opts.ip,
            port: opts.ports.sip,
            tcp: opts.tcp,
            messages,
            errors,
            screen,
        })
    }

    /// Waits (bounded) until SIPp has bound its SIP port, so that a UAS is
    /// there before Maskline sends it anything.
    pub async fn wait_listening(&mut self, within: Duration) -> Result<()> {
        let (ip, port, tcp) = (self.ip, self.port, self.tcp);
        let what = format!("SIPp `{}` to bind {ip}:{port}", self.name);
        wait_for(&what, within, || {
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            let screen = self.screen.clone();
            async move {
                if let Some(status) = exited {
                    let text = fs::read_to_string(&screen).unwrap_or_default();
                    return Err(E2eError::Unexpected(format!(
                        "SIPp exited ({status}) before listening:\n{text}"
                    )));
                }
                if tcp {
                    tcp_listening(ip, port)
                } else {
                    udp_bound(ip, port)
                }
            }
        })
        .await
    }

    /// Waits up to `within` for SIPp to exit (killing it past the bound)
    /// and returns its outcome.
    pub async fn finish(mut self, within: Duration) -> Result<SippOutcome> {
        let Some(mut child) = self.child.take() else {
            return Err(E2eError::Unexpected("SIPp already finished".into()));
        };
        let deadline = Instant::now() + within;
        let status = loop {
            if let Some(status) = child
                .try_wait()
                .map_err(|e| E2eError::io("waiting for SIPp", e))?
            {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(E2eError::timeout(
                    format!(
                        "SIPp `{}` to exit (killed it)\n{}",
                        self.name,
                        self.traces()
                    ),
                    within,
                ));
            }
            sleep(POLL_INTERVAL).await;
        };
        Ok(SippOutcome {
            name: self.name.clone(),
            status,
            messages: fs::read_to_string(&self.messages).unwrap_or_default(),
            errors: fs::read_to_string(&self.errors).unwrap_or_default(),
            screen: fs::read_to_string(&self.screen).unwrap_or_default(),
        })
    }

    fn traces(&self) -> String {
        format!(
            "--- messages ---\n{}\n--- errors ---\n{}",
            fs::read_to_string(&self.messages).unwrap_or_default(),
            fs::read_to_string(&self.errors).unwrap_or_default()
        )
    }
}

impl Drop for Sipp {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Whether some UDP socket is bound to `ip:port` (or the wildcard), from
/// `/proc/net/udp`.
fn udp_bound(ip: IpAddr, port: u16) -> Result<Option<()>> {
    let table = fs::read_to_string("/proc/net/udp")
        .map_err(|e| E2eError::io("reading /proc/net/udp", e))?;
    let IpAddr::V4(v4) = ip else {
        return Err(E2eError::Unexpected(
            "SIPp on IPv6 is not supported here".into(),
        ));
    };
    let want_ip = format!("{:08X}", u32::from_le_bytes(v4.octets()));
    let found = table.lines().skip(1).any(|line| {
        let Some(local) = line.split_whitespace().nth(1) else {
            return false;
        };
        let Some((hex_ip, hex_port)) = local.split_once(':') else {
            return false;
        };
        u16::from_str_radix(hex_port, 16).ok() == Some(port)
            && (hex_ip == want_ip || hex_ip == "00000000")
    });
    Ok(found.then_some(()))
}

/// Whether some TCP socket listens on `ip:port` (or the wildcard), from
/// `/proc/net/tcp`.
fn tcp_listening(ip: IpAddr, port: u16) -> Result<Option<()>> {
    let table = fs::read_to_string("/proc/net/tcp")
        .map_err(|e| E2eError::io("reading /proc/net/tcp", e))?;
    let IpAddr::V4(v4) = ip else {
        return Err(E2eError::Unexpected(
            "SIPp on IPv6 is not supported here".into(),
        ));
    };
    let want_ip = format!("{:08X}", u32::from_le_bytes(v4.octets()));
    let found = table.lines().skip(1).any(|line| {
        let mut fields = line.split_whitespace();
        let (Some(local), Some(state)) = (fields.nth(1), fields.nth(1)) else {
            return false;
        };
        let Some((hex_ip, hex_port)) = local.split_once(':') else {
            return false;
        };
        state == "0A"
            && u16::from_str_radix(hex_port, 16).ok() == Some(port)
            && (hex_ip == want_ip || hex_ip == "00000000")
    });
    Ok(found.then_some(()))
}

impl SippOutcome {
    /// Whether SIPp reported every call successful (exit status 0).
    pub fn succeeded(&self) -> bool {
        self.status.success()
    }

    /// The SIP messages SIPp received, as text, in order.
    pub fn received(&self) -> Vec<String> {
        self.messages_where("message received")
    }

    /// The SIP messages SIPp sent, as text, in order.
    pub fn sent(&self) -> Vec<String> {
        self.messages_where("message sent")
    }

    fn messages_where(&self, marker: &str) -> Vec<String> {
        let mut out = Vec::new();
        for section in self
            .messages
            .split("\n----------------------------------------------- ")
        {
            let mut lines = section.splitn(3, '\n');
            let _timestamp = lines.next();
            let Some(kind) = lines.next() else { continue };
            if kind.contains(marker) {
                if let Some(body) = lines.next() {
                    out.push(body.trim_start_matches(['\r', '\n']).to_string());
                }
            }
        }
        out
    }

    /// Everything about the run, for failure messages.
    pub fn describe(&self) -> String {
        format!(
            "SIPp `{}` exited {}\n--- messages ---\n{}\n--- errors ---\n{}\n--- screen (tail) ---\n{}",
            self.name,
            self.status,
            self.messages,
            self.errors,
            tail(&self.screen, 40)
        )
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all.get(all.len().saturating_sub(lines)..)
        .unwrap_or_default()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_the_message_log() {
        let log = "----------------------------------------------- 2026-11-23 15:26:48.049703\n\
                   UDP message received [10] bytes :\n\n\
                   INVITE sip:x SIP/2.0\nCall-ID: 1\n\n\n\
                   ----------------------------------------------- 2026-11-23 15:26:48.049853\n\
                   UDP message sent (5 bytes):\n\n\
                   SIP/2.0 180 Ringing\nCall-ID: 1\n\n";
        let outcome = SippOutcome {
            name: "t".into(),
            status: ExitStatus::default(),
            messages: log.to_string(),
            errors: String::new(),
            screen: String::new(),
        };
        let received = outcome.received();
        assert_eq!(received.len(), 1);
        assert!(received
            .first()
            .is_some_and(|m| m.starts_with("INVITE sip:x")));
        let sent = outcome.sent();
        assert_eq!(sent.len(), 1);
        assert!(sent.first().is_some_and(|m| m.starts_with("SIP/2.0 180")));
    }

    #[test]
    fn finds_a_bound_udp_socket() -> Result<()> {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").map_err(|e| E2eError::io("bind", e))?;
        let port = sock
            .local_addr()
            .map_err(|e| E2eError::io("local_addr", e))?
            .port();
        let lo = IpAddr::from([127, 0, 0, 1]);
        assert_eq!(udp_bound(lo, port)?, Some(()));
        drop(sock);
        assert_eq!(udp_bound(lo, port)?, None);
        Ok(())
    }

    #[test]
    fn finds_a_listening_tcp_socket() -> Result<()> {
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| E2eError::io("bind", e))?;
        let port = listener
            .local_addr()
            .map_err(|e| E2eError::io("local_addr", e))?
            .port();
        let lo = IpAddr::from([127, 0, 0, 1]);
        assert_eq!(tcp_listening(lo, port)?, Some(()));
        drop(listener);
        assert_eq!(tcp_listening(lo, port)?, None);
        Ok(())
    }
}
