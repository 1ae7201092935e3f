//! The same load through rtpengine: calls are set up over its ng protocol
//! (`offer` with A's SDP, `answer` with B's, `delete` at the end) instead of
//! SIP through Maskline, then the same streams are pumped through it and
//! measured the same way; CPU and RSS are rtpengine's process
//! (`/proc/<pid>`), relayed packets are those the generator received.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::runtime::Handle;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::media::RecvState;
use super::ng::{NgClient, NgError};
use super::orchestrate::{
    bind_sockets, direct_streams, local, measure, on, proc, relay_streams, Established,
};
use super::procstat;
use super::report::{EngineCounters, LoadReport};
use super::sip_text::sdp_offer;
use super::uac::ADialog;
use super::{LoadConfig, LoadError, RtpengineTarget};

/// Setup errors kept for the report.
const MAX_ERRORS: usize = 5;

fn call_id(i: usize) -> String {
    format!("ngload-{}-{i}", std::process::id())
}

pub(super) async fn run(
    cfg: LoadConfig,
    gen: Handle,
    target: RtpengineTarget,
) -> Result<LoadReport, LoadError> {
    let epoch = Instant::now();
    let sockets = on(&gen, bind_sockets(cfg.clone())).await??;
    let ng = NgClient::new(sockets.uac.clone(), target.ng);
    let ng_task = gen.spawn(ng.clone().run());
    let alive = {
        let ng = ng.clone();
        on(&gen, async move { ng.ping().await }).await?
    };
    if !alive {
        ng_task.abort();
        return Err(LoadError::NoRtpengine(target.ng));
    }
    let recv_states: Vec<RecvState> = (0..2 * sockets.shared.len())
        .map(|_| RecvState::new())
        .collect();
    let rss = || proc(procstat::rss_kib_of(target.pid));
    let mut report = LoadReport {
        target: "rtpengine".into(),
        calls: cfg.calls,
        pps: cfg.pps,
        engine_threads: 0,
        generator_threads: cfg.generator_threads,
        rss_before_kib: rss()?,
        ..LoadReport::default()
    };

    let pairs: Vec<(SocketAddr, SocketAddr)> = sockets
        .media
        .iter()
        .map(|(a, b)| (local(a), local(b)))
        .collect();
    let setup_start = Instant::now();
    let results = on(&gen, setup_all(ng.clone(), pairs, cfg.concurrency)).await?;
    report.setup_secs = setup_start.elapsed().as_secs_f64();
    let mut established = Vec::new();
    for r in results {
        match r {
            Ok(e) => established.push(e),
            Err(e) if report.setup_errors.len() < MAX_ERRORS => report.setup_errors.push(e),
            Err(_) => {}
        }
    }
    report.calls_set_up = established.len();
    report.bridged_events = established.len();
    report.rss_after_setup_kib = rss()?;

    let (streams, sinks) = relay_streams(&established, &sockets, recv_states);
    report.relay = measure(
        &gen,
        streams,
        sinks,
        &cfg,
        cfg.media,
        epoch,
        Some(target.pid),
    )
    .await?;
    report.rss_after_media_kib = rss()?;
    report.engine = EngineCounters {
        a_to_b: report.relay.a_to_b.received,
        b_to_a: report.relay.b_to_a.received,
        dropped: 0,
    };

    let ids: Vec<usize> = established.iter().map(|e| e.dialog.index).collect();
    report.calls_torn_down = on(&gen, delete_all(ng.clone(), ids, cfg.concurrency)).await?;
    report.b_byes = report.calls_torn_down;
    report.hangup_events = report.calls_torn_down;

    if !cfg.baseline.is_zero() && !established.is_empty() {
        let (streams, sinks) = direct_streams(&established, &sockets);
        report.baseline =
            Some(measure(&gen, streams, sinks, &cfg, cfg.baseline, epoch, None).await?);
    }
    ng_task.abort();
    Ok(report)
}

async fn setup_one(
    ng: &NgClient,
    index: usize,
    a: SocketAddr,
    b: SocketAddr,
) -> Result<Established, NgError> {
    let cid = call_id(index);
    let (from_tag, to_tag) = (format!("a{index}"), format!("b{index}"));
    let session = index as u64 + 1;
    // Where B must send (rtpengine's B-facing port), then where A must send.
    let b_relay = ng.offer(&cid, &from_tag, &sdp_offer(session, a)).await?;
    let a_relay = ng
        .answer(&cid, &from_tag, &to_tag, &sdp_offer(session, b))
        .await?;
    Ok(Established {
        dialog: ADialog {
            index,
            call_id: cid,
            to_tag,
            remote_target: String::new(),
            relay: a_relay,
        },
        b_relay,
    })
}

async fn setup_all(
    ng: Arc<NgClient>,
    pairs: Vec<(SocketAddr, SocketAddr)>,
    concurrency: usize,
) -> Vec<Result<Established, String>> {
    let limit = Arc::new(Semaphore::new(concurrency));
    let mut set = JoinSet::new();
    for (index, (a, b)) in pairs.into_iter().enumerate() {
        let permit = limit.clone().acquire_owned().await.ok();
        let ng = ng.clone();
        set.spawn(async move {
            let _permit = permit;
            setup_one(&ng, index, a, b)
                .await
                .map_err(|e| format!("call {index}: {e}"))
        });
    }
    let mut out = Vec::new();
    while let Some(r) = set.join_next().await {
        out.push(r.unwrap_or_else(|e| Err(format!("setup task failed: {e}"))));
    }
    out.sort_by_key(|r| r.as_ref().map_or(usize::MAX, |e| e.dialog.index));
    out
}

async fn delete_all(ng: Arc<NgClient>, ids: Vec<usize>, concurrency: usize) -> usize {
    let limit = Arc::new(Semaphore::new(concurrency));
    let mut set = JoinSet::new();
    for index in ids {
        let permit = limit.clone().acquire_owned().await.ok();
        let ng = ng.clone();
        set.spawn(async move {
            let _permit = permit;
            ng.delete(&call_id(index), &format!("a{index}"))
                .await
                .is_ok()
        });
    }
    let mut ok = 0;
    while let Some(r) = set.join_next().await {
        ok += usize::from(r.unwrap_or(false));
    }
    ok
}
