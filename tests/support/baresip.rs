//! A real softphone: baresip (Debian `baresip-core`, 1.0), headless.
//!
//! Each instance gets its own config dir (`baresip -f <dir>`), listens for
//! SIP on loopback, has no sound device and is driven through the
//! `ctrl_tcp` module (JSON netstrings, see [`ctrl`]):
//! - audio out: the `aufile` source plays a WAV file the test wrote
//!   (8 kHz mono 16-bit, G.711 only, so no resampling);
//! - audio in: baresip 1.0's `aufile` has no player, so the `sndfile`
//!   filter records what the decoder produced, i.e. what the user would
//!   hear, as `received/dump-<time>-dec.wav` ([`Baresip::received_audio`]);
//!   no player module is loaded, so nothing is played;
//! - accounts are added at run time with `uanew <accounts-file line>`
//!   ([`Baresip::register`]) once the control connection is up, so that
//!   `REGISTER_OK`/`REGISTER_FAIL` cannot be sent before anyone listens;
//! - `-s` writes the SIP trace to the instance's log, which is printed when
//!   a test fails (and can be searched: [`Baresip::log_bytes`]);
//! - [`BaresipOptions::sip_instance`] loads `uuid.so` as baresip's default
//!   config does, so that its Contact carries
//!   `+sip.instance="<urn:uuid:…>"` (RFC 5626), as Linphone's usually does too.

mod ctrl;

use std::fmt;
use std::fs::{self, File};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::time::{sleep, Instant};

pub use ctrl::{netstring, parse_netstring, BaresipEvent, Ctrl, Framed};

use crate::audio::{read_wav, Pcm};
use crate::error::{E2eError, Result};
use crate::ports::PortBlock;
use crate::wait::POLL_INTERVAL;

/// How long baresip may take to start and open its control port.
const READY_WITHIN: Duration = Duration::from_secs(10);
/// How long a registration may take (challenge included).
pub const REGISTER_WITHIN: Duration = Duration::from_secs(5);
/// Log lines shown with a failure.
const TAIL_LINES: usize = 60;
/// Registration interval of the accounts (seconds).
const REGINT: u32 = 300;
/// Where Debian puts baresip's modules, in the order they are tried.
const MODULE_DIRS: [&str; 2] = [
    "/usr/lib/baresip/modules",
    "/usr/lib/x86_64-linux-gnu/baresip/modules",
];
/// The modules every instance loads (all in `baresip-core`).
const MODULES: [&str; 3] = ["g711.so", "aufile.so", "sndfile.so"];
const APP_MODULES: [&str; 2] = ["menu.so", "ctrl_tcp.so"];

static INSTANCE: AtomicU32 = AtomicU32::new(0);

/// The `baresip` executable: `$BARESIP_BIN`, else `baresip` on the PATH.
fn baresip_bin() -> PathBuf {
    std::env::var_os("BARESIP_BIN").map_or_else(|| PathBuf::from("baresip"), PathBuf::from)
}

/// baresip's module dir: `$BARESIP_MODULES`, else the first of
/// [`MODULE_DIRS`] that has `ctrl_tcp.so`.
fn module_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("BARESIP_MODULES") {
        return Ok(PathBuf::from(dir));
    }
    MODULE_DIRS
        .iter()
        .map(PathBuf::from)
        .find(|d| d.join("ctrl_tcp.so").is_file())
        .ok_or_else(|| {
            E2eError::Unexpected(format!(
                "baresip modules not found in {MODULE_DIRS:?}: install Debian's baresip-core \
                 (tests/install-deps.sh test) or set BARESIP_MODULES"
            ))
        })
}

/// Ports of one softphone, taken from the raw-peer and RTP slots of a
/// [`PortBlock`]: slot `k` (0 or 1) uses peer ports `3k` (SIP, UDP and
/// TCP), `3k+1` (baresip also binds TLS on SIP + 1) and `3k+2` (control),
/// and RTP ports `2k` and `2k+1` (RTP and RTCP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SoftphonePorts {
    /// `sip_listen` (UDP and TCP; TLS on the next port).
    pub sip: u16,
    /// `ctrl_tcp_listen`.
    pub ctrl: u16,
    /// The RTP port (even); RTCP is the next one.
    pub rtp: u16,
}

impl SoftphonePorts {
    /// The ports of softphone slot `k` (0 or 1) of `block`.
    pub fn slot(block: &PortBlock, k: u16) -> SoftphonePorts {
        assert!(k < 2, "softphone slot {k} out of 0..2");
        SoftphonePorts {
            sip: block.peer(3 * k),
            ctrl: block.peer(3 * k + 2),
            rtp: block.rtp(2 * k),
        }
    }
}

/// The transport an account registers (and is then called) over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SipTransport {
    /// UDP.
    Udp,
    /// TCP: Maskline calls the user back through the connection its
    /// REGISTER came on.
    Tcp,
}

impl fmt::Display for SipTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SipTransport::Udp => "udp",
            SipTransport::Tcp => "tcp",
        })
    }
}

/// A SIP account of a softphone registering to Maskline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// The user's number (E.164), also the digest username.
    pub user: String,
    /// The digest password.
    pub password: String,
    /// Maskline's SIP address.
    pub registrar: SocketAddr,
    /// UDP or TCP.
    pub transport: SipTransport,
    /// Answer incoming calls at once (`answermode=auto`).
    pub auto_answer: bool,
}

impl Account {
    /// The account as a line of baresip's `accounts` file (also what
    /// `uanew` takes).
    pub fn line(&self) -> String {
        format!(
            "<sip:{user}@{registrar};transport={transport}>;auth_pass={password};answermode={mode};regint={REGINT}",
            user = self.user,
            registrar = self.registrar,
            transport = self.transport,
            password = self.password,
            mode = if self.auto_answer { "auto" } else { "manual" },
        )
    }
}

/// How an instance is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaresipOptions {
    /// Its ports.
    pub ports: SoftphonePorts,
    /// The WAV file (8 kHz mono 16-bit) it sends in its calls.
    pub audio: PathBuf,
    /// Load `uuid.so`: a `+sip.instance` Contact parameter in REGISTERs.
    pub sip_instance: bool,
}

impl BaresipOptions {
    /// `ports` and `audio`, without `+sip.instance`.
    pub fn new(ports: SoftphonePorts, audio: &Path) -> BaresipOptions {
        BaresipOptions {
            ports,
            audio: audio.to_path_buf(),
            sip_instance: false,
        }
    }
}

/// The `config` file of an instance.
fn render_config(opts: &BaresipOptions, modules: &Path, received: &Path) -> String {
    let ports = opts.ports;
    let mut text = format!(
        "# generated by the maskline-e2e harness\n\
         sip_listen\t\t127.0.0.1:{sip}\n\
         rtp_ports\t\t{rtp}-{rtcp}\n\
         audio_source\t\taufile,{audio}\n\
         module_path\t\t{modules}\n\
         snd_path\t\t{received}\n\
         ctrl_tcp_listen\t\t127.0.0.1:{ctrl}\n",
        sip = ports.sip,
        rtp = ports.rtp,
        rtcp = ports.rtp + 1,
        audio = opts.audio.display(),
        modules = modules.display(),
        received = received.display(),
        ctrl = ports.ctrl,
    );
    for m in MODULES {
        text.push_str(&format!("module\t\t\t{m}\n"));
    }
    if opts.sip_instance {
        // As in baresip's default config: creates `uuid` in the config dir.
        text.push_str("module_tmp\t\tuuid.so\n");
    }
    for m in APP_MODULES {
        text.push_str(&format!("module_app\t\t{m}\n"));
    }
    text
}

/// What a terminal would show of baresip's output: the last `\r` rewrite
/// of each line, without colour escapes.
fn readable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let shown = line.rsplit('\r').next().unwrap_or_default();
        let mut chars = shown.chars();
        while let Some(c) = chars.next() {
            if c == '\u{1b}' {
                // CSI: ESC [ parameters… final letter.
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            } else {
                out.push(c);
            }
        }
        out.push('\n');
    }
    out
}

/// A running baresip with its own config dir, log and control connection.
///
/// Dropping it kills the process and prints the tail of its log (shown by
/// libtest only for failed tests); the dir is removed unless the test is
/// panicking or `MASKLINE_E2E_KEEP` is set.
#[derive(Debug)]
pub struct Baresip {
    name: String,
    child: Option<Child>,
    dir: PathBuf,
    log: PathBuf,
    ctrl: Ctrl,
}

impl Baresip {
    /// Starts an instance called `name` (used in messages) set up as `opts`
    /// and connects to its control port.
    pub async fn start(name: &str, opts: &BaresipOptions) -> Result<Baresip> {
        let modules = module_dir()?;
        let n = INSTANCE.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "maskline-e2e-baresip-{}-{n}-{name}",
            std::process::id()
        ));
        if dir.exists() {
            fs::remove_dir_all(&dir)
                .map_err(|e| E2eError::io(format!("removing {}", dir.display()), e))?;
        }
        let received = dir.join("received");
        fs::create_dir_all(&received)
            .map_err(|e| E2eError::io(format!("creating {}", received.display()), e))?;
        let config = dir.join("config");
        fs::write(&config, render_config(opts, &modules, &received))
            .map_err(|e| E2eError::io(format!("writing {}", config.display()), e))?;
        let log = dir.join("baresip.log");
        let out = File::create(&log)
            .map_err(|e| E2eError::io(format!("creating {}", log.display()), e))?;
        let err = out
            .try_clone()
            .map_err(|e| E2eError::io("duplicating the log handle", e))?;
        let bin = baresip_bin();
        let child = Command::new(&bin)
            .arg("-f")
            .arg(&dir)
            .arg("-s")
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| {
                E2eError::io(
                    format!(
                        "spawning {} (install Debian's baresip-core: tests/install-deps.sh test)",
                        bin.display()
                    ),
                    e,
                )
            })?;
        let mut child = Some(child);
        let ctrl_addr = SocketAddr::from(([127, 0, 0, 1], opts.ports.ctrl));
        let deadline = Instant::now() + READY_WITHIN;
        let ctrl = loop {
            if let Some(status) = child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                return Err(E2eError::Unexpected(format!(
                    "baresip {name} exited at start ({status}):\n{}",
                    tail_of(&log, TAIL_LINES)
                )));
            }
            if let Ok(ctrl) = Ctrl::connect(ctrl_addr).await {
                break ctrl;
            }
            if Instant::now() >= deadline {
                if let Some(mut c) = child.take() {
                    let _ = c.kill();
                    let _ = c.wait();
                }
                return Err(E2eError::timeout(
                    format!(
                        "baresip {name} to open its control port {ctrl_addr}; log:\n{}",
                        tail_of(&log, TAIL_LINES)
                    ),
                    READY_WITHIN,
                ));
            }
            sleep(POLL_INTERVAL).await;
        };
        Ok(Baresip {
            name: name.to_string(),
            child,
            dir,
            log,
            ctrl,
        })
    }

    /// Adds `account` (`uanew`), which registers at once, and returns how
    /// that ended: the first `REGISTER_OK` or `REGISTER_FAIL` event.
    pub async fn register(&mut self, account: &Account) -> Result<BaresipEvent> {
        self.command("uanew", &account.line()).await?;
        let what = format!("{} to register {}", self.name, account.user);
        self.wait_event(&what, REGISTER_WITHIN, |e| {
            e.kind == "REGISTER_OK" || e.kind == "REGISTER_FAIL"
        })
        .await
    }

    /// Places a call to `uri` (`dial`).
    pub async fn dial(&mut self, uri: &str) -> Result<()> {
        self.command("dial", uri).await.map(drop)
    }

    /// Hangs up the current call (`hangup`).
    pub async fn hangup(&mut self) -> Result<()> {
        self.command("hangup", "").await.map(drop)
    }

    /// Runs any `menu` command and returns its output.
    pub async fn command(&mut self, command: &str, params: &str) -> Result<String> {
        self.ctrl.command(command, params).await
    }

    /// The first event ever received for which `matches` holds, waiting at
    /// most `within` for it.
    pub async fn wait_event(
        &mut self,
        what: &str,
        within: Duration,
        matches: impl Fn(&BaresipEvent) -> bool,
    ) -> Result<BaresipEvent> {
        self.ctrl.wait_event(what, within, matches).await
    }

    /// The first call event of type `kind` (`CALL_INCOMING`,
    /// `CALL_ESTABLISHED`, `CALL_CLOSED`, …), waiting at most `within`.
    pub async fn wait_call_event(&mut self, kind: &str, within: Duration) -> Result<BaresipEvent> {
        let what = format!("{kind} at {}", self.name);
        self.wait_event(&what, within, |e| e.kind == kind).await
    }

    /// Every event received so far, oldest first.
    pub fn events(&self) -> &[BaresipEvent] {
        self.ctrl.events()
    }

    /// The audio received in this instance's call (the `sndfile` decoder
    /// dump). Fails unless there is exactly one.
    pub fn received_audio(&self) -> Result<Pcm> {
        let received = self.dir.join("received");
        let entries = fs::read_dir(&received)
            .map_err(|e| E2eError::io(format!("listing {}", received.display()), e))?;
        let dumps: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.to_string_lossy().ends_with("-dec.wav"))
            .collect();
        match dumps.as_slice() {
            [one] => read_wav(one),
            other => Err(E2eError::Unexpected(format!(
                "{} should have recorded one call's received audio in {}, found {other:?}",
                self.name,
                received.display()
            ))),
        }
    }

    /// The whole log (baresip's output and SIP trace).
    pub fn log_bytes(&self) -> Vec<u8> {
        fs::read(&self.log).unwrap_or_default()
    }

    /// The instance's config dir.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// The last `lines` readable lines of the log at `path`.
fn tail_of(path: &Path, lines: usize) -> String {
    let bytes = fs::read(path).unwrap_or_default();
    let text = readable(&String::from_utf8_lossy(&bytes));
    let all: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

impl Drop for Baresip {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        eprintln!(
            "--- baresip {} log tail ({}) ---\n{}\n--- end of baresip {} log ---",
            self.name,
            self.log.display(),
            tail_of(&self.log, TAIL_LINES),
            self.name
        );
        if std::thread::panicking() || std::env::var_os("MASKLINE_E2E_KEEP").is_some() {
            eprintln!("keeping {} for inspection", self.dir.display());
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_line_is_what_baresip_reads() {
        let acc = Account {
            user: "+14155550202".into(),
            password: "pw".into(),
            registrar: SocketAddr::from(([127, 0, 0, 1], 5060)),
            transport: SipTransport::Tcp,
            auto_answer: true,
        };
        assert_eq!(
            acc.line(),
            "<sip:+14155550202@127.0.0.1:5060;transport=tcp>;auth_pass=pw;answermode=auto;regint=300"
        );
    }

    #[test]
    fn config_names_ports_files_and_modules() {
        let ports = SoftphonePorts {
            sip: 10_243,
            ctrl: 10_245,
            rtp: 10_250,
        };
        let mut opts = BaresipOptions::new(ports, Path::new("/t/a.wav"));
        let text = render_config(&opts, Path::new("/m"), Path::new("/t/received"));
        for needle in [
            "sip_listen\t\t127.0.0.1:10243\n",
            "rtp_ports\t\t10250-10251\n",
            "audio_source\t\taufile,/t/a.wav\n",
            "module_path\t\t/m\n",
            "snd_path\t\t/t/received\n",
            "ctrl_tcp_listen\t\t127.0.0.1:10245\n",
            "module\t\t\taufile.so\n",
            "module_app\t\tctrl_tcp.so\n",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
        assert!(!text.contains("uuid.so"), "{text}");
        opts.sip_instance = true;
        let text = render_config(&opts, Path::new("/m"), Path::new("/t/received"));
        assert!(text.contains("module_tmp\t\tuuid.so\n"), "{text}");
    }

    #[test]
    fn slots_do_not_overlap() {
        let block = match PortBlock::allocate() {
            Ok(b) => b,
            Err(e) => panic!("{e}"),
        };
        let (a, b) = (
            SoftphonePorts::slot(&block, 0),
            SoftphonePorts::slot(&block, 1),
        );
        let mut used = vec![a.sip, a.sip + 1, a.ctrl, a.rtp, a.rtp + 1];
        used.extend([b.sip, b.sip + 1, b.ctrl, b.rtp, b.rtp + 1]);
        let mut sorted = used.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), used.len(), "{used:?}");
        assert_eq!(a.rtp % 2, 0);
        assert_eq!(b.rtp % 2, 0);
        assert!(used
            .iter()
            .all(|p| (block.peer(0)..=block.rtp(5)).contains(p)));
    }

    #[test]
    fn readable_drops_rewrites_and_colours() {
        let raw = "a\r[0:00:01] audio=0\r[0:00:02] audio=64000\n\u{1b}[36;1m#\u{1b}[;m\nok\n";
        assert_eq!(readable(raw), "[0:00:02] audio=64000\n#\nok\n");
    }
}
