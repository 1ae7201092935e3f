//! The steps of a run, in order, each with a bounded wait. Runs on the
//! engine's runtime (the calling thread); generator work is spawned on the
//! generator's runtime so its CPU time is accounted to its threads.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use maskline_engine::{Engine, EngineEvent};
use sip_config::{Cidr, TrunkConfig};
use tokio::net::UdpSocket;
use tokio::runtime::Handle;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::calls::CallSpec;
use super::media::{self, Dir, PumpStats, RecvState, Sink, Stream};
use super::procstat::{self, CpuTicks};
use super::report::{DirectionReport, EngineCounters, LoadReport, PhaseReport, RecordingCheck};
use super::uac::{ADialog, CallError, Uac};
use super::uas::Uas;
use super::{LoadConfig, LoadError};

/// How long the engine may take to report bridges/hangups after the
/// generator saw them.
const EVENT_WAIT: Duration = Duration::from_secs(5);
/// Setup errors kept for the report.
const MAX_ERRORS: usize = 5;

/// The generator's sockets.
pub(super) struct Sockets {
    pub(super) uac: Arc<UdpSocket>,
    uac_addr: SocketAddr,
    uas: Arc<UdpSocket>,
    uas_addr: SocketAddr,
    /// Per call: (A media socket, B media socket), shared: call `i` uses
    /// `shared[i % shared.len()]`.
    pub(super) media: Vec<(Arc<UdpSocket>, Arc<UdpSocket>)>,
    /// The distinct media sockets: (A, B) per slot.
    pub(super) shared: Vec<(Arc<UdpSocket>, Arc<UdpSocket>)>,
}

/// What the engine reported.
#[derive(Debug, Clone, Copy, Default)]
struct Tally {
    initiated: usize,
    bridged: usize,
    hangups: usize,
    media: EngineCounters,
    recordings: usize,
    recording_dropped: u64,
}

/// An established call: its A dialog and both relay addresses.
pub(super) struct Established {
    pub(super) dialog: ADialog,
    pub(super) b_relay: SocketAddr,
}

/// Spawn `fut` on the generator runtime and wait for it.
pub(super) async fn on<T: Send + 'static>(
    gen: &Handle,
    fut: impl Future<Output = T> + Send + 'static,
) -> Result<T, LoadError> {
    gen.spawn(fut)
        .await
        .map_err(|e| LoadError::Task(e.to_string()))
}

pub(super) fn proc<T>(r: std::io::Result<T>) -> Result<T, LoadError> {
    r.map_err(LoadError::Proc)
}

pub(super) async fn run(cfg: LoadConfig, gen: Handle) -> Result<LoadReport, LoadError> {
    if let Some(target) = cfg.rtpengine {
        return super::peer::run(cfg, gen, target).await;
    }
    let epoch = Instant::now();
    let specs: Vec<CallSpec> = (0..cfg.calls).map(CallSpec::new).collect();
    let sockets = on(&gen, bind_sockets(cfg.clone())).await??;
    let started = Engine::start(&engine_config(&cfg, sockets.uas_addr)?).await?;
    let (tally_tx, tally) = watch::channel(Tally::default());
    gen.spawn(drain_events(started.events, tally_tx));
    let uac = Uac::new(sockets.uac.clone(), sockets.uac_addr, started.sip_addr);
    let party_bs: Vec<String> = specs.iter().map(|s| s.party_b.clone()).collect();
    let b_media: Vec<SocketAddr> = sockets.media.iter().map(|(_, b)| local(b)).collect();
    let uas = Uas::new(sockets.uas.clone(), sockets.uas_addr, &party_bs, b_media);
    let uac_task = gen.spawn(uac.clone().run());
    let uas_task = gen.spawn(uas.clone().run());
    // The generator's per-stream state exists before the memory baseline.
    let a_media: Vec<SocketAddr> = sockets.media.iter().map(|(a, _)| local(a)).collect();
    let recv_states: Vec<RecvState> = (0..2 * sockets.shared.len())
        .map(|_| RecvState::new())
        .collect();

    let mut report = LoadReport {
        target: "maskline".into(),
        calls: cfg.calls,
        pps: cfg.pps,
        engine_threads: cfg.engine_threads,
        generator_threads: cfg.generator_threads,
        rss_before_kib: proc(procstat::rss_kib())?,
        ..LoadReport::default()
    };
    for spec in &specs {
        started.handle.upsert_route(spec.route(cfg.record));
    }

    // Setup.
    let setup_start = Instant::now();
    let results = on(
        &gen,
        setup_all(uac.clone(), specs.clone(), a_media, cfg.concurrency),
    )
    .await?;
    report.setup_secs = setup_start.elapsed().as_secs_f64();
    let mut established = Vec::new();
    for result in results {
        let outcome = result.and_then(|dialog| match uas.relay_target(dialog.index) {
            Some(b_relay) => Ok(Established { dialog, b_relay }),
            None => Err("B leg: no INVITE reached the trunk".to_string()),
        });
        match outcome {
            Ok(e) => established.push(e),
            Err(e) if report.setup_errors.len() < MAX_ERRORS => report.setup_errors.push(e),
            Err(_) => {}
        }
    }
    report.calls_set_up = established.len();
    let n = established.len();
    report.bridged_events = wait_for(&tally, |t| t.bridged >= n).await.bridged;
    report.rss_after_setup_kib = proc(procstat::rss_kib())?;

    // Media through the relay.
    let (streams, sinks) = relay_streams(&established, &sockets, recv_states);
    report.relay = measure(&gen, streams, sinks, &cfg, cfg.media, epoch, None).await?;
    report.rss_after_media_kib = proc(procstat::rss_kib())?;

    // Teardown.
    let dialogs: Vec<(CallSpec, ADialog)> = established
        .iter()
        .filter_map(|e| Some((specs.get(e.dialog.index)?.clone(), e.dialog.clone())))
        .collect();
    report.calls_torn_down = on(&gen, bye_all(uac.clone(), dialogs, cfg.concurrency)).await?;
    let final_tally = wait_for(&tally, |t| t.hangups >= t.initiated).await;
    report.hangup_events = final_tally.hangups;
    report.engine = final_tally.media;
    let mut uas_counts = uas.watch_counts();
    let torn_down = report.calls_torn_down;
    let _ = tokio::time::timeout(EVENT_WAIT, uas_counts.wait_for(|c| c.byes >= torn_down)).await;
    report.b_byes = uas.counts().byes;

    // Baseline: the same streams straight between the generator's sockets.
    if !cfg.baseline.is_zero() && !established.is_empty() {
        let (streams, sinks) = direct_streams(&established, &sockets);
        report.baseline =
            Some(measure(&gen, streams, sinks, &cfg, cfg.baseline, epoch, None).await?);
    }
    uac_task.abort();
    uas_task.abort();
    if cfg.record {
        let n = report.calls_set_up;
        // Finalising many WAV files at once takes a while on a busy disk.
        let done = wait_up_to(&tally, 6 * EVENT_WAIT, |t| t.recordings >= n).await;
        let dir = recording_dir();
        let gaps = super::wav_gaps::count_dir(&dir);
        report.recording = Some(RecordingCheck {
            expected: n,
            ready: done.recordings,
            dropped: done.recording_dropped,
            files: gaps.files,
            unreadable: gaps.unreadable,
            gap_frames: gaps.gap_frames,
            audio_frames: gaps.audio_frames,
        });
        let _ = std::fs::remove_dir_all(dir);
    }
    Ok(report)
}

fn recording_dir() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("maskline-relay-load-{}", std::process::id()))
}

pub(super) fn local(socket: &UdpSocket) -> SocketAddr {
    socket
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
}

fn engine_config(cfg: &LoadConfig, trunk: SocketAddr) -> Result<sip_config::Config, LoadError> {
    let mut c = sip_config::Config::default();
    c.sip.listen = cfg.sip;
    c.sip.public_address = cfg.sip.ip();
    c.rtp.port_min = cfg.rtp_ports.0;
    c.rtp.port_max = cfg.rtp_ports.1;
    c.recording.dir = recording_dir();
    c.trunks = vec![TrunkConfig {
        name: "relay-load".into(),
        address: trunk,
        inbound_cidrs: vec![Cidr {
            addr: cfg.uac.ip(),
            prefix: if cfg.uac.is_ipv4() { 32 } else { 128 },
        }],
        ..TrunkConfig::default()
    }];
    c.validate().map_err(|problems| {
        LoadError::Config(
            problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        )
    })?;
    Ok(c)
}

pub(super) async fn bind_sockets(cfg: LoadConfig) -> Result<Sockets, LoadError> {
    let bind = |what: &'static str, addr: SocketAddr| async move {
        UdpSocket::bind(addr)
            .await
            .map(Arc::new)
            .map_err(|source| LoadError::Bind { what, addr, source })
    };
    let uac = bind("the UAC (A side)", cfg.uac).await?;
    let uas = bind("the UAS (B side, trunk)", cfg.trunk).await?;
    let (uac_addr, uas_addr) = (local(&uac), local(&uas));
    let reserved = [cfg.sip.port(), uac_addr.port(), uas_addr.port()];
    let (lo, hi) = cfg.rtp_ports;
    let ip = cfg.uac.ip();
    let slots = cfg.gen_sockets.clamp(1, cfg.calls.max(1));
    let needed = 2 * slots;
    let mut sockets = Vec::with_capacity(needed);
    let mut port = cfg.media_base;
    while sockets.len() < needed {
        if cfg.media_base == 0 || !((lo..=hi).contains(&port) || reserved.contains(&port)) {
            if let Ok(s) = UdpSocket::bind(SocketAddr::new(ip, port)).await {
                sockets.push(Arc::new(s));
            }
        }
        if cfg.media_base != 0 {
            port = port.checked_add(1).ok_or(LoadError::NoMediaPort {
                needed,
                base: cfg.media_base,
            })?;
        }
    }
    let mut it = sockets.into_iter();
    let mut shared = Vec::with_capacity(slots);
    while let (Some(a), Some(b)) = (it.next(), it.next()) {
        shared.push((a, b));
    }
    let media = (0..cfg.calls)
        .filter_map(|i| shared.get(i % slots).cloned())
        .collect();
    Ok(Sockets {
        uac,
        uac_addr,
        uas,
        uas_addr,
        media,
        shared,
    })
}

async fn drain_events(
    mut events: mpsc::UnboundedReceiver<EngineEvent>,
    tally: watch::Sender<Tally>,
) {
    while let Some(event) = events.recv().await {
        tally.send_modify(|t| match event {
            EngineEvent::CallInitiated { .. } => t.initiated += 1,
            EngineEvent::CallBridged { .. } => t.bridged += 1,
            EngineEvent::CallHangup { media, .. } => {
                t.hangups += 1;
                t.media.a_to_b += media.a_to_b_packets;
                t.media.b_to_a += media.b_to_a_packets;
                t.media.dropped += media.dropped_packets;
            }
            EngineEvent::RecordingReady {
                dropped_packets, ..
            } => {
                t.recordings += 1;
                t.recording_dropped += dropped_packets;
            }
            _ => {}
        });
    }
}

/// Wait (at most [`EVENT_WAIT`]) until the tally satisfies `done`; return it.
async fn wait_for(tally: &watch::Receiver<Tally>, done: impl FnMut(&Tally) -> bool) -> Tally {
    wait_up_to(tally, EVENT_WAIT, done).await
}

/// Wait (at most `limit`) until the tally satisfies `done`; return it.
async fn wait_up_to(
    tally: &watch::Receiver<Tally>,
    limit: Duration,
    done: impl FnMut(&Tally) -> bool,
) -> Tally {
    let mut rx = tally.clone();
    let _ = tokio::time::timeout(limit, rx.wait_for(done)).await;
    let t = *rx.borrow();
    t
}

async fn setup_all(
    uac: Arc<Uac>,
    specs: Vec<CallSpec>,
    media: Vec<SocketAddr>,
    concurrency: usize,
) -> Vec<Result<ADialog, String>> {
    let limit = Arc::new(Semaphore::new(concurrency));
    let mut set = JoinSet::new();
    for (spec, m) in specs.into_iter().zip(media) {
        let permit = limit.clone().acquire_owned().await.ok();
        let uac = uac.clone();
        set.spawn(async move {
            let _permit = permit;
            uac.invite(&spec, m)
                .await
                .map_err(|e: CallError| format!("call {}: {e}", spec.index))
        });
    }
    let mut out = Vec::new();
    while let Some(r) = set.join_next().await {
        out.push(r.unwrap_or_else(|e| Err(format!("setup task failed: {e}"))));
    }
    out.sort_by_key(|r| r.as_ref().map_or(usize::MAX, |d| d.index));
    out
}

async fn bye_all(uac: Arc<Uac>, dialogs: Vec<(CallSpec, ADialog)>, concurrency: usize) -> usize {
    let limit = Arc::new(Semaphore::new(concurrency));
    let mut set = JoinSet::new();
    for (spec, dialog) in dialogs {
        let permit = limit.clone().acquire_owned().await.ok();
        let uac = uac.clone();
        set.spawn(async move {
            let _permit = permit;
            uac.bye(&spec, &dialog).await.is_ok()
        });
    }
    let mut ok = 0;
    while let Some(r) = set.join_next().await {
        ok += usize::from(r.unwrap_or(false));
    }
    ok
}

fn sockets_of<'a>(e: &Established, s: &'a Sockets) -> Option<&'a (Arc<UdpSocket>, Arc<UdpSocket>)> {
    s.media.get(e.dialog.index)
}

fn index_u32(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

/// A sends to the engine's A port, B to its B port; receivers use the
/// states allocated before the memory baseline.
pub(super) fn relay_streams(
    established: &[Established],
    s: &Sockets,
    recv_states: Vec<RecvState>,
) -> (Vec<Stream>, Vec<Sink>) {
    let mut pool = recv_states.into_iter();
    streams(
        established,
        s,
        |e, _| (e.dialog.relay, e.b_relay),
        || pool.next().unwrap_or_default(),
    )
}

/// A sends straight to B's socket and B to A's.
pub(super) fn direct_streams(established: &[Established], s: &Sockets) -> (Vec<Stream>, Vec<Sink>) {
    streams(
        established,
        s,
        |_, (a, b)| (local(b), local(a)),
        RecvState::new,
    )
}

fn streams(
    established: &[Established],
    s: &Sockets,
    dests: impl Fn(&Established, &(Arc<UdpSocket>, Arc<UdpSocket>)) -> (SocketAddr, SocketAddr),
    mut recv_state: impl FnMut() -> RecvState,
) -> (Vec<Stream>, Vec<Sink>) {
    let mut streams = Vec::new();
    for e in established {
        let Some(pair) = sockets_of(e, s) else {
            continue;
        };
        let (a, b) = pair;
        let (a_dest, b_dest) = dests(e, pair);
        let index = index_u32(e.dialog.index);
        streams.push(Stream {
            socket: a.clone(),
            dest: a_dest,
            index,
            dir: Dir::AToB,
        });
        streams.push(Stream {
            socket: b.clone(),
            dest: b_dest,
            index,
            dir: Dir::BToA,
        });
    }
    // One receiver per distinct socket: slot `k` gets the calls `i` with
    // `i % slots == k`.
    let slots = index_u32(s.shared.len());
    let mut sinks = Vec::new();
    for (k, (a, b)) in s.shared.iter().enumerate() {
        let slot = index_u32(k);
        sinks.push(Sink {
            socket: b.clone(),
            slot,
            slots,
            dir: Dir::AToB,
            state: recv_state(),
        });
        sinks.push(Sink {
            socket: a.clone(),
            slot,
            slots,
            dir: Dir::BToA,
            state: recv_state(),
        });
    }
    (streams, sinks)
}

/// Pump for `duration` and summarise, with the CPU used meanwhile (the
/// relay's CPU is `target`'s whole process when given, else the engine
/// threads of this one).
pub(super) async fn measure(
    gen: &Handle,
    streams: Vec<Stream>,
    sinks: Vec<Sink>,
    cfg: &LoadConfig,
    duration: Duration,
    epoch: Instant,
    target: Option<u32>,
) -> Result<PhaseReport, LoadError> {
    let target_ticks = || {
        target
            .map(procstat::ticks_of)
            .transpose()
            .map_err(LoadError::Proc)
    };
    let target_before = target_ticks()?;
    // One sender task per millisecond of the packet interval (tokio's timer
    // resolution): packets are spread as evenly as timers allow.
    let period_ms = (1000 / cfg.pps.max(1)).max(1) as usize;
    let shards = period_ms.clamp(1, streams.len().max(1));
    let before: CpuTicks = proc(procstat::cpu_ticks())?;
    let stats: PumpStats = on(
        gen,
        media::pump(streams, sinks, cfg.pps, duration, shards, epoch),
    )
    .await?;
    let mut cpu = proc(procstat::cpu_ticks())?.since(&before);
    if let (Some(after), Some(before)) = (target_ticks()?, target_before) {
        cpu.engine = after.saturating_sub(before);
    }
    Ok(PhaseReport {
        a_to_b: DirectionReport::from_stats(&stats.a_to_b),
        b_to_a: DirectionReport::from_stats(&stats.b_to_a),
        secs: stats.elapsed.as_secs_f64(),
        cpu,
    })
}
