//! `relay-load`: bridge N calls through an in-process engine and pump RTP
//! through every one of them, both ways.
//!
//! [`run`] starts the engine on its own tokio runtime (threads named
//! [`procstat::ENGINE_THREAD`]) and the load generator on another
//! ([`procstat::GENERATOR_THREAD`]), so CPU time can be split per side from
//! `/proc/self/task`. Steps: bind the generator's sockets, start the engine
//! with a trunk pointing at the generator's UAS, upsert one route per call,
//! set the calls up (raw-UDP UAC → engine → UAS), pump RTP, BYE every call,
//! then (optionally) pump the same streams directly between the generator's
//! sockets as a baseline. Every wait is bounded.

mod args;
pub mod bencode;
mod calls;
mod histogram;
mod media;
pub mod ng;
mod orchestrate;
mod peer;
mod procstat;
mod report;
mod sip_text;
mod uac;
mod uas;
pub mod wav_gaps;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

pub use args::{parse_args, ArgsError, Parsed, USAGE};
pub use calls::CallSpec;
pub use histogram::Histogram;
pub use media::{Dir, PACKET_LEN};
pub use procstat::{stat_fields, CpuTicks, ENGINE_THREAD, GENERATOR_THREAD, TICKS_PER_SEC};
pub use report::{DirectionReport, EngineCounters, LoadReport, PhaseReport, RecordingCheck};
pub use uac::CallError;

/// Parameters of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadConfig {
    /// Calls to set up (one session each).
    pub calls: usize,
    /// Media duration through the relay.
    pub media: Duration,
    /// RTP packets per second per stream per direction.
    pub pps: u32,
    /// Engine SIP listen address (UDP).
    pub sip: SocketAddr,
    /// The generator's UAC (A side) SIP address.
    pub uac: SocketAddr,
    /// The generator's UAS (B side) SIP address = the engine's trunk.
    pub trunk: SocketAddr,
    /// The engine's RTP port range (inclusive).
    pub rtp_ports: (u16, u16),
    /// First port tried for the generator's media sockets (ports in use or
    /// inside `rtp_ports` are skipped).
    pub media_base: u16,
    /// Distinct media sockets per side: calls share them round-robin (call
    /// `i` uses socket `i % gen_sockets`), so the generator receives in
    /// batches and stays cheaper than the relay it measures.
    pub gen_sockets: usize,
    /// Worker threads of the engine's runtime.
    pub engine_threads: usize,
    /// Worker threads of the generator's runtime.
    pub generator_threads: usize,
    /// Calls set up (and torn down) at the same time.
    pub concurrency: usize,
    /// Duration of the direct (no relay) baseline; zero skips it.
    pub baseline: Duration,
    /// Record every call (WAV files under a temporary directory, removed
    /// afterwards) to measure the recorder's cost.
    pub record: bool,
    /// Relay through an already running rtpengine instead of an in-process
    /// Maskline engine (calls set up over its ng protocol).
    pub rtpengine: Option<RtpengineTarget>,
}

/// An rtpengine to drive instead of Maskline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpengineTarget {
    /// Its `listen-ng` address.
    pub ng: SocketAddr,
    /// Its process id (CPU and RSS are read from `/proc/<pid>`).
    pub pid: u32,
}

impl Default for LoadConfig {
    /// 100 calls, 10 s, 50 pps; SIP 127.0.0.1:25060, UAC :25070, trunk
    /// :25080, engine RTP 40000–49999, generator media from 50000; one
    /// engine thread and one generator thread; 3 s baseline.
    fn default() -> Self {
        let lo = |port| SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
        LoadConfig {
            calls: 100,
            media: Duration::from_secs(10),
            pps: 50,
            sip: lo(25060),
            uac: lo(25070),
            trunk: lo(25080),
            rtp_ports: (40000, 49999),
            media_base: 50000,
            gen_sockets: 16,
            engine_threads: 1,
            generator_threads: 1,
            concurrency: 50,
            baseline: Duration::from_secs(3),
            record: false,
            rtpengine: None,
        }
    }
}

/// Why a run could not happen (failed calls are not errors: they are
/// reported in [`LoadReport`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// A parameter is out of range or not on loopback.
    #[error("invalid parameter: {0}")]
    Invalid(String),
    /// A tokio runtime could not be built.
    #[error("cannot build a tokio runtime: {0}")]
    Runtime(std::io::Error),
    /// A generator socket could not be bound.
    #[error("cannot bind {what} on {addr}: {source}")]
    Bind {
        /// Which socket.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// Not enough free ports for the generator's media sockets.
    #[error("no free port for media socket {needed} from {base} on")]
    NoMediaPort {
        /// Sockets needed.
        needed: usize,
        /// First port tried.
        base: u16,
    },
    /// The engine config built from the parameters is invalid.
    #[error("engine config: {0}")]
    Config(String),
    /// The engine did not start.
    #[error("engine: {0}")]
    Engine(#[from] maskline_engine::StartError),
    /// rtpengine did not answer a ping on its ng port.
    #[error("rtpengine at {0} does not answer ng pings")]
    NoRtpengine(SocketAddr),
    /// `/proc` could not be read.
    #[error("reading /proc: {0}")]
    Proc(std::io::Error),
    /// A generator task panicked or was cancelled.
    #[error("generator task failed: {0}")]
    Task(String),
}

impl LoadConfig {
    /// Check ranges and that every address is on loopback.
    pub fn validate(&self) -> Result<(), LoadError> {
        let bad = |m: String| Err(LoadError::Invalid(m));
        if self.calls == 0 {
            return bad("--calls must be at least 1".into());
        }
        if self.pps == 0 || self.pps > 1000 {
            return bad("--pps must be 1–1000".into());
        }
        if self.media.is_zero() || self.media > Duration::from_secs(3600) {
            return bad("--seconds must be in (0, 3600]".into());
        }
        if self.engine_threads == 0
            || self.generator_threads == 0
            || self.concurrency == 0
            || self.gen_sockets == 0
        {
            return bad("thread counts and --concurrency must be at least 1".into());
        }
        for (name, addr) in [
            ("--sip", self.sip),
            ("--uac", self.uac),
            ("--trunk", self.trunk),
        ] {
            if !addr.ip().is_loopback() {
                return bad(format!("{name} {addr} is not a loopback address"));
            }
        }
        if self.rtpengine.is_some() && self.record {
            return bad("--record applies to Maskline only".into());
        }
        let (lo, hi) = self.rtp_ports;
        let first = lo.saturating_add(lo % 2);
        let pairs = usize::from(hi.saturating_sub(first).saturating_add(1) / 2);
        if self.rtpengine.is_none() && pairs < 2 * self.calls {
            return bad(format!(
                "RTP range {lo}–{hi} has {pairs} port pairs; {} calls need {}",
                self.calls,
                2 * self.calls
            ));
        }
        Ok(())
    }
}

/// Run the load test described by `config` and return its figures. Blocks
/// the calling thread (it builds its own runtimes); returns within roughly
/// setup + media + baseline + 30 s whatever the engine does.
pub fn run(config: &LoadConfig) -> Result<LoadReport, LoadError> {
    config.validate()?;
    let engine_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.engine_threads)
        .thread_name(ENGINE_THREAD)
        .enable_all()
        .build()
        .map_err(LoadError::Runtime)?;
    let generator_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.generator_threads)
        .thread_name(GENERATOR_THREAD)
        .enable_all()
        .build()
        .map_err(LoadError::Runtime)?;
    let generator = generator_rt.handle().clone();
    let result = engine_rt.block_on(orchestrate::run(config.clone(), generator));
    // Stops the engine (its tasks and sockets) and the generator.
    generator_rt.shutdown_timeout(Duration::from_secs(1));
    engine_rt.shutdown_timeout(Duration::from_secs(1));
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_and_checks_catch_mistakes() {
        assert!(LoadConfig::default().validate().is_ok());
        let remote = LoadConfig {
            sip: "10.0.0.1:5060".parse().unwrap(),
            ..LoadConfig::default()
        };
        assert!(remote
            .validate()
            .unwrap_err()
            .to_string()
            .contains("loopback"));
        let small = LoadConfig {
            calls: 10,
            rtp_ports: (41000, 41030),
            ..LoadConfig::default()
        };
        assert!(small
            .validate()
            .unwrap_err()
            .to_string()
            .contains("port pairs"));
        assert!(LoadConfig {
            pps: 0,
            ..LoadConfig::default()
        }
        .validate()
        .is_err());
    }
}
