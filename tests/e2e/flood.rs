//! Issue 8, hostile traffic: 1,000,000 bad and scanner datagrams at the SIP
//! port of the real binary on loopback, from 64 addresses that are not
//! trunks (127.0.1.1–64): `friendly-scanner` OPTIONS and `sipvicious`
//! REGISTERs, malformed and truncated requests, a bad Content-Length,
//! random junk, oversized datagrams and plain OPTIONS. Meanwhile a real
//! call from the trunk goes through Maskline end to end (SIPp caller and
//! callee: INVITE, answer, ACK, BYE). Afterwards Maskline is healthy, its resident memory
//! (VmRSS) is about where it was before the flood, and `/metrics` shows the
//! drops.
//!
//! The flood goes as fast as Maskline reads it (at most 80,000/s): every
//! 20 datagrams an OPTIONS from the trunk's address marks the stream, and
//! the sender stays within 60 datagrams of the last mark Maskline answered,
//! well inside its socket buffer. The point is what Maskline does with what
//! it reads (a flood that outruns it is dropped by the kernel for free);
//! the pacing keeps the real call's datagrams from being among those.
//!
//! Run with `--nocapture` to see the figures (packets, time, RSS).

use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use maskline_e2e::{
    bounded, wait_for, E2eError, Maskline, Result, SipPeer, Sipp, SippOptions, StartOptions,
    PARTY_A, PARTY_B, WAIT,
};

use crate::LOOPBACK;

/// Datagrams in the flood.
const PACKETS: u64 = 1_000_000;
/// Highest sending rate: the flood lasts at least PACKETS / RATE seconds,
/// long enough for a call to go through in the middle of it, short enough
/// to leave the other tests of a parallel run some CPU.
const RATE_PER_SEC: u64 = 80_000;
/// The flood must be read within this (about 18 s on a quiet 2-core
/// machine; CI shares the cores with a fuzz build and the other tests).
const FLOOD_LIMIT: Duration = Duration::from_secs(150);
/// Source addresses of the flood (127.0.1.1 …): none is a trunk.
const SOURCES: u8 = 64;
/// Every this many datagrams one is 65,000 bytes (over Maskline's limit).
const OVERSIZED_EVERY: u64 = 4096;
/// The whole test, start to finish.
const LIMIT: Duration = Duration::from_secs(180);
/// Resident memory may grow this much over the flood (buffers, the
/// per-source table, the call's allocations) and no more.
const RSS_SLACK_KB: u64 = 48 * 1024;

/// The kinds of datagram, cycled through per source.
fn templates(target: SocketAddr) -> Vec<Vec<u8>> {
    let sip = target;
    let scanner_options = format!(
        "OPTIONS sip:100@{sip} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.1.1:5060;branch=z9hG4bK-scan1;rport\r\n\
         From: \"sipvicious\" <sip:100@1.1.1.1>;tag=6134653136\r\nTo: \"sipvicious\" <sip:100@1.1.1.1>\r\n\
         Call-ID: 653830656937303830@1.1.1.1\r\nCSeq: 1 OPTIONS\r\nContact: <sip:100@127.0.1.1:5060>\r\n\
         Max-Forwards: 70\r\nUser-Agent: friendly-scanner\r\nAccept: application/sdp\r\nContent-Length: 0\r\n\r\n"
    );
    let scanner_register = format!(
        "REGISTER sip:{sip} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.1.1:5060;branch=z9hG4bK-scan2\r\n\
         From: <sip:1001@{sip}>;tag=1001\r\nTo: <sip:1001@{sip}>\r\nCall-ID: 1001-reg@1.1.1.1\r\n\
         CSeq: 1 REGISTER\r\nContact: <sip:1001@127.0.1.1:5060>\r\nExpires: 3600\r\n\
         User-Agent: sipvicious\r\nContent-Length: 0\r\n\r\n"
    );
    let no_headers = format!("INVITE sip:+15550000001@{sip} SIP/2.0\r\nCSeq: 1 INVITE\r\n\r\n");
    let bad_length = format!(
        "INVITE sip:+15550000001@{sip} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.1.1;branch=z9hG4bK-ncl\r\n\
         From: <sip:+14155550999@127.0.1.1>;tag=n\r\nTo: <sip:+15550000001@{sip}>\r\nCall-ID: ncl\r\n\
         CSeq: 1 INVITE\r\nContent-Length: -999\r\n\r\nv=0\r\n"
    );
    let truncated = format!(
        "INVITE sip:+15550000001@{sip} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.1.1;branch=z9hG4bK-trunc\r\nFrom: <sip:"
    );
    let plain_options = format!(
        "OPTIONS sip:{sip} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.1.1:5060;branch=z9hG4bK-opt;rport\r\n\
         From: <sip:probe@127.0.1.1>;tag=o\r\nTo: <sip:{sip}>\r\nCall-ID: opt@127.0.1.1\r\n\
         CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    let junk: Vec<u8> = (0..900u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let big_headers = format!(
        "OPTIONS sip:{sip} SIP/2.0\r\nX-Filler: {}\r\n\r\n",
        "a".repeat(4000)
    );
    vec![
        scanner_options.into_bytes(),
        scanner_register.into_bytes(),
        no_headers.into_bytes(),
        bad_length.into_bytes(),
        truncated.into_bytes(),
        plain_options.into_bytes(),
        junk,
        big_headers.into_bytes(),
    ]
}

/// Every this many flood datagrams, one OPTIONS from the trunk's address
/// (answered by Maskline, in order): its answer says Maskline has read
/// everything sent before it.
const MARK_EVERY: u64 = 20;
/// Flood datagrams that may be unread by Maskline at once: fewer than its
/// socket buffer holds, so that the flood is as fast as Maskline reads and
/// the real call's datagrams are never dropped by the kernel behind it.
const WINDOW: u64 = 60;

/// Sends the flood (blocking), at most [`RATE_PER_SEC`] and never more
/// than [`WINDOW`] datagrams ahead of what Maskline has read (the answers to
/// the marks from `mark_from`); counts into `sent`. Returns how long it took
/// and how many marks it sent.
fn flood(
    target: SocketAddr,
    mark_from: SocketAddr,
    sent: &AtomicU64,
    stop: &AtomicBool,
) -> Result<(Duration, u64)> {
    let sockets: Vec<UdpSocket> = (1..=SOURCES)
        .map(|i| {
            UdpSocket::bind(SocketAddr::from(([127, 0, 1, i], 0)))
                .map_err(|e| E2eError::io(format!("binding flood source 127.0.1.{i}"), e))
        })
        .collect::<Result<_>>()?;
    let marker = UdpSocket::bind(mark_from)
        .map_err(|e| E2eError::io(format!("binding the mark socket {mark_from}"), e))?;
    marker
        .set_read_timeout(Some(Duration::from_millis(50)))
        .map_err(|e| E2eError::io("mark socket timeout", e))?;
    let read_up_to = Arc::new(AtomicU64::new(0));
    let reader = {
        let (marker, read_up_to) = (
            marker
                .try_clone()
                .map_err(|e| E2eError::io("cloning the mark socket", e))?,
            read_up_to.clone(),
        );
        let done = Arc::new(AtomicBool::new(false));
        let done_reader = done.clone();
        let handle = std::thread::spawn(move || {
            let mut buf = vec![0u8; 4096];
            while !done_reader.load(Ordering::Relaxed) {
                let Ok(n) = marker.recv(&mut buf) else {
                    continue;
                };
                let text = String::from_utf8_lossy(buf.get(..n).unwrap_or_default());
                let mark = text
                    .split("Call-ID: mark-")
                    .nth(1)
                    .and_then(|r| r.split('@').next())
                    .and_then(|v| v.parse::<u64>().ok());
                if let Some(m) = mark {
                    read_up_to.fetch_max(m, Ordering::Relaxed);
                }
            }
        });
        (done, handle)
    };
    let kinds = templates(target);
    let oversized = vec![b'X'; 65_000];
    let start = Instant::now();
    let deadline = start + FLOOD_LIMIT;
    let mut n: u64 = 0;
    let mut marks: u64 = 0;
    let mut outcome = Ok(());
    while n < PACKETS && !stop.load(Ordering::Relaxed) {
        let mut marked = Instant::now();
        while n.saturating_sub(read_up_to.load(Ordering::Relaxed)) > WINDOW {
            if Instant::now() > deadline {
                outcome = Err(E2eError::timeout(
                    format!("Maskline to read the flood ({n} of {PACKETS} sent)"),
                    FLOOD_LIMIT,
                ));
                break;
            }
            // A mark can be lost like any datagram: ask again.
            if marked.elapsed() > Duration::from_millis(20) {
                let _ = marker.send_to(mark(n, mark_from, target).as_bytes(), target);
                marks += 1;
                marked = Instant::now();
            }
            std::thread::yield_now();
        }
        if outcome.is_err() {
            break;
        }
        for _ in 0..MARK_EVERY {
            let source = (n % u64::from(SOURCES)) as usize;
            let kind = ((n / u64::from(SOURCES)) % kinds.len() as u64) as usize;
            let datagram = if n % OVERSIZED_EVERY == OVERSIZED_EVERY - 1 {
                &oversized
            } else {
                &kinds[kind]
            };
            // A full socket buffer (ENOBUFS/EAGAIN) is part of a flood.
            let _ = sockets[source].send_to(datagram, target);
            n += 1;
        }
        let _ = marker.send_to(mark(n, mark_from, target).as_bytes(), target);
        marks += 1;
        sent.store(n, Ordering::Relaxed);
        // Pacing, not synchronisation: no faster than RATE_PER_SEC.
        let due = Duration::from_micros(n * 1_000_000 / RATE_PER_SEC);
        if let Some(ahead) = due.checked_sub(start.elapsed()) {
            std::thread::sleep(ahead);
        }
    }
    let (done, handle) = reader;
    done.store(true, Ordering::Relaxed);
    let _ = handle.join();
    outcome.map(|()| (start.elapsed(), marks))
}

/// The mark sent after flood datagram `n`.
fn mark(n: u64, from: SocketAddr, target: SocketAddr) -> String {
    format!(
        "OPTIONS sip:{target} SIP/2.0\r\nVia: SIP/2.0/UDP {from};branch=z9hG4bK-mark{n};rport\r\n\
         From: <sip:mark@{from}>;tag=m{n}\r\nTo: <sip:{target}>\r\nCall-ID: mark-{n}@{from}\r\n\
         CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

/// `VmRSS` and `VmHWM` (peak) of a process, in kB.
fn memory_kb(pid: u32) -> Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| E2eError::io(format!("reading /proc/{pid}/status"), e))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| E2eError::Unexpected(format!("no {name} in /proc/{pid}/status")))
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

/// The `maskline_sip_*` counters of `/metrics`.
async fn sip_counters(ml: &Maskline) -> Result<BTreeMap<String, u64>> {
    let text = reqwest::get(format!("{}/metrics", ml.api().base()))
        .await
        .map_err(|e| E2eError::Unexpected(format!("GET /metrics: {e}")))?
        .text()
        .await
        .map_err(|e| E2eError::Unexpected(format!("GET /metrics: {e}")))?;
    Ok(text
        .lines()
        .filter(|l| l.starts_with("maskline_sip_"))
        .filter_map(|l| l.split_once(' '))
        .filter_map(|(k, v)| Some((k.to_string(), v.trim().parse().ok()?)))
        .collect())
}

fn delta(after: &BTreeMap<String, u64>, before: &BTreeMap<String, u64>, name: &str) -> u64 {
    let get = |m: &BTreeMap<String, u64>| m.get(name).copied().unwrap_or(0);
    get(after).saturating_sub(get(before))
}

#[tokio::test]
async fn a_million_bad_packets_leave_memory_flat_and_a_call_goes_through() -> Result<()> {
    bounded(LIMIT, async {
        let mut ml = Maskline::start(StartOptions::default()).await?;
        let pid = ml
            .pid()
            .ok_or_else(|| E2eError::Unexpected("maskline has no pid".into()))?;
        let session = ml.api().create_session(PARTY_A, PARTY_B, None).await?;
        let counters_before = sip_counters(&ml).await?;
        let (rss_before, _) = memory_kb(pid)?;

        let sent = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let target = ml.sip_addr();
        let mark_from = SocketAddr::from(([127, 0, 0, 1], ml.ports().peer(2)));
        let flooder = {
            let (sent, stop) = (sent.clone(), stop.clone());
            std::thread::spawn(move || flood(target, mark_from, &sent, &stop))
        };
        // Once a tenth of the flood is out, a real call goes through.
        wait_for("the flood to be under way", Duration::from_secs(60), || {
            let n = sent.load(Ordering::Relaxed);
            let ended = flooder.is_finished();
            async move { Ok((n >= PACKETS / 10 || ended).then_some(())) }
        })
        .await?;
        if flooder.is_finished() {
            let early = flooder
                .join()
                .map_err(|_| E2eError::Unexpected("the flood thread panicked".into()))?;
            return Err(E2eError::Unexpected(format!(
                "the flood ended early: {:?}",
                early.map(|d| (d, sent.load(Ordering::Relaxed)))
            )));
        }
        // SIPp on both ends: like any real UA it retransmits what a
        // saturated socket loses (INVITE, 200, BYE).
        let call = async {
            let ports = *ml.ports();
            let mut callee = Sipp::spawn(
                &SippOptions::uas("uas_answer.xml", LOOPBACK, ports.sipp(1), ports.trunk()),
                ml.dir(),
                "flood_callee",
            )?;
            callee.wait_listening(Duration::from_secs(5)).await?;
            let caller = Sipp::spawn(
                &SippOptions::uac(
                    "uac_masked_call.xml",
                    LOOPBACK,
                    ports.sipp(0),
                    ml.sip_addr(),
                    &session.masked_number,
                )
                .key("caller", PARTY_A),
                ml.dir(),
                "flood_caller",
            )?;
            let a = caller.finish(Duration::from_secs(25)).await?;
            let b = callee.finish(Duration::from_secs(10)).await?;
            if a.succeeded() && b.succeeded() {
                Ok(())
            } else {
                Err(E2eError::Unexpected(format!(
                    "the call during the flood failed:\n{}\n\n{}",
                    a.describe(),
                    b.describe()
                )))
            }
        }
        .await;
        let sent_when_call_ended = sent.load(Ordering::Relaxed);
        if call.is_err() {
            stop.store(true, Ordering::Relaxed);
        }
        let (took, marks) = tokio::task::spawn_blocking(move || flooder.join())
            .await
            .map_err(|e| E2eError::Unexpected(format!("flood thread: {e}")))?
            .map_err(|_| E2eError::Unexpected("the flood thread panicked".into()))??;
        call?;
        let total = sent.load(Ordering::Relaxed);

        ml.assert_running()?;
        let mut peer = SipPeer::bind(
            SocketAddr::from(([127, 0, 0, 1], ml.ports().peer(1))),
            ml.sip_addr(),
        )
        .await?;
        let pong = peer.options(WAIT).await?;
        assert_eq!(pong.status(), Some(200), "{}", pong.raw_text());
        assert_eq!(ml.api().healthz().await?, 200);
        let (rss_after, rss_peak) = memory_kb(pid)?;
        let counters = sip_counters(&ml).await?;
        let received = delta(&counters, &counters_before, "maskline_sip_messages_total");
        let malformed = delta(&counters, &counters_before, "maskline_sip_malformed_total");
        let scanners = delta(
            &counters,
            &counters_before,
            "maskline_sip_scanner_dropped_total",
        );
        let limited = delta(
            &counters,
            &counters_before,
            "maskline_sip_rate_limited_total",
        );

        println!(
            "flood: {total} datagrams from {SOURCES} sources in {:.1} s ({:.0}/s), paced by \
             {marks} OPTIONS marks from the trunk; Maskline read {received} datagrams in all \
             (the kernel dropped {}): {limited} over their source's \
             budget, {malformed} malformed, {scanners} scanners; a call went through with \
             {sent_when_call_ended} sent; VmRSS {rss_before} kB before, {rss_after} kB after \
             (peak {rss_peak} kB)",
            took.as_secs_f64(),
            total as f64 / took.as_secs_f64().max(0.001),
            (total + marks).saturating_sub(received),
        );
        assert_eq!(total, PACKETS, "the whole flood was sent");
        assert!(
            sent_when_call_ended < PACKETS,
            "the call must complete while the flood is still going ({sent_when_call_ended} sent)"
        );
        assert!(
            rss_after <= rss_before + RSS_SLACK_KB,
            "memory grew from {rss_before} kB to {rss_after} kB over the flood"
        );
        assert!(
            limited > received / 2,
            "most of the flood is dropped by the per-source budget: {limited} of {received}"
        );
        assert!(malformed > 0, "malformed datagrams are counted");
        assert!(scanners > 0, "scanner requests are counted");
        Ok(())
    })
    .await
}
