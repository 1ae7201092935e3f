//! The per-call RTP/RTCP relay: one tokio task owning four sockets
//! (RTP + RTCP for each leg), forwarding A → B and B → A.
//!
//! Symmetric latching: each leg's first packet fixes where that leg's media
//! is sent from then on (the source address wins over the SDP, which makes
//! NATed peers work); after latching, packets from any other source are
//! dropped and counted (strict source). A new target from the signalling
//! (re-INVITE) resets the latch.
//!
//! Hot path: one `recv_from`, a header check, one `send_to`; no allocation,
//! no lock, no logging; counters are relaxed atomics.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::codec::Codec;
use super::ports::PortPair;
use super::rtp::is_rtcp;
use super::stats::{QualityStats, RtpStats};
use super::transcoding::{TranscodeDirection, TranscodePlan};
use crate::handle::MediaStats;
use crate::sdp::MediaTarget;
use rtp_rs::RtpReader;

/// Which leg of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The inbound (caller's) leg.
    A,
    /// The outbound (callee's) leg.
    B,
}

impl Side {
    /// 0 for A, 1 for B (index into per-leg arrays).
    pub fn index(self) -> usize {
        match self {
            Side::A => 0,
            Side::B => 1,
        }
    }
}

/// Live counters of a relay.
#[derive(Debug)]
pub struct RelayStats {
    a_to_b: AtomicU64,
    b_to_a: AtomicU64,
    dropped: AtomicU64,
    /// Milliseconds after `start` of the last RTP packet from each leg.
    last_rx_ms: [AtomicU64; 2],
    start: Instant,
}

impl Default for RelayStats {
    fn default() -> Self {
        RelayStats {
            a_to_b: AtomicU64::new(0),
            b_to_a: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            last_rx_ms: [AtomicU64::new(0), AtomicU64::new(0)],
            start: Instant::now(),
        }
    }
}

impl RelayStats {
    /// How long `side` has sent no RTP (since the relay started when it
    /// never sent any).
    pub fn idle_for(&self, side: Side) -> Duration {
        let i = if side == Side::A { 0 } else { 1 };
        let last = Duration::from_millis(self.last_rx_ms[i].load(Ordering::Relaxed));
        self.start.elapsed().saturating_sub(last)
    }

    /// A snapshot.
    pub fn snapshot(&self) -> MediaStats {
        MediaStats {
            a_to_b_packets: self.a_to_b.load(Ordering::Relaxed),
            b_to_a_packets: self.b_to_a.load(Ordering::Relaxed),
            dropped_packets: self.dropped.load(Ordering::Relaxed),
            ..MediaStats::default()
        }
    }
}

enum Control {
    Target(Side, MediaTarget),
    Tap(Option<super::recording::Tap>),
    Codecs(Side, Vec<(u8, Codec)>),
    Quality(tokio::sync::oneshot::Sender<[QualityStats; 2]>),
    Transcode(Option<TranscodePlan>),
}

/// Handle to a running relay; dropping it stops the relay and frees its
/// ports.
pub struct RelayHandle {
    control: mpsc::UnboundedSender<Control>,
    stats: Arc<RelayStats>,
    task: tokio::task::JoinHandle<()>,
}

impl RelayHandle {
    /// Tell the relay where a leg wants its media (from that leg's SDP).
    pub fn set_target(&self, side: Side, target: MediaTarget) {
        let _ = self.control.send(Control::Target(side, target));
    }

    /// Hand copies of every relayed RTP packet to a recording (or stop).
    pub fn set_tap(&self, tap: Option<super::recording::Tap>) {
        let _ = self.control.send(Control::Tap(tap));
    }

    /// A leg's payload types (for clock rates in the quality figures).
    pub fn set_codecs(&self, side: Side, map: Vec<(u8, Codec)>) {
        let _ = self.control.send(Control::Codecs(side, map));
    }

    /// Transcode between the legs per `plan` (or relay unchanged: `None`).
    pub fn set_transcode(&self, plan: Option<TranscodePlan>) {
        let _ = self.control.send(Control::Transcode(plan));
    }

    /// Quality figures (loss, jitter, RTCP reports) of both legs (A, B).
    pub async fn quality(&self) -> [QualityStats; 2] {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let _ = self.control.send(Control::Quality(tx));
        rx.await.unwrap_or_default()
    }

    /// Current counters.
    pub fn stats(&self) -> MediaStats {
        self.stats.snapshot()
    }

    /// How long `side` has sent no RTP.
    pub fn idle_for(&self, side: Side) -> Duration {
        self.stats.idle_for(side)
    }
}

impl Drop for RelayHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Bind the four sockets on `ip` and start relaying.
pub async fn spawn(ip: IpAddr, a: PortPair, b: PortPair) -> io::Result<RelayHandle> {
    let sockets = Sockets {
        a_rtp: UdpSocket::bind(SocketAddr::new(ip, a.rtp())).await?,
        a_rtcp: UdpSocket::bind(SocketAddr::new(ip, a.rtcp())).await?,
        b_rtp: UdpSocket::bind(SocketAddr::new(ip, b.rtp())).await?,
        b_rtcp: UdpSocket::bind(SocketAddr::new(ip, b.rtcp())).await?,
    };
    let (control, rx) = mpsc::unbounded_channel();
    let stats = Arc::new(RelayStats::default());
    let task = tokio::spawn(run(sockets, rx, stats.clone(), (a, b)));
    Ok(RelayHandle {
        control,
        stats,
        task,
    })
}

struct Sockets {
    a_rtp: UdpSocket,
    a_rtcp: UdpSocket,
    b_rtp: UdpSocket,
    b_rtcp: UdpSocket,
}

/// Where one stream (RTP or RTCP of one leg) is sent, and whether its
/// source is latched.
#[derive(Default)]
struct Peer {
    /// Destination from SDP, replaced by the latched source.
    dest: Option<SocketAddr>,
    latched: bool,
}

impl Peer {
    /// Accept (and maybe latch) a packet from `src`; false → drop it.
    #[inline]
    fn accept(&mut self, src: SocketAddr) -> bool {
        if self.latched {
            return self.dest == Some(src);
        }
        self.dest = Some(src);
        self.latched = true;
        true
    }

    fn retarget(&mut self, dest: Option<SocketAddr>) {
        self.dest = dest;
        self.latched = false;
    }
}

fn usable(addr: SocketAddr) -> Option<SocketAddr> {
    (!addr.ip().is_unspecified() && addr.port() != 0).then_some(addr)
}

async fn run(
    s: Sockets,
    mut control: mpsc::UnboundedReceiver<Control>,
    stats: Arc<RelayStats>,
    _ports: (PortPair, PortPair),
) {
    let mut peers = [
        Peer::default(),
        Peer::default(),
        Peer::default(),
        Peer::default(),
    ];
    const A_RTP: usize = 0;
    const A_RTCP: usize = 1;
    const B_RTP: usize = 2;
    const B_RTCP: usize = 3;
    let mut bufs = [[0u8; 2048]; 4];
    let mut tap: Option<super::recording::Tap> = None;
    let mut clocks: [Vec<(u8, Codec)>; 2] = [Vec::new(), Vec::new()];
    let mut quality = [RtpStats::new(), RtpStats::new()];
    let mut transcode: [Option<TranscodeDirection>; 2] = [None, None];
    loop {
        let [b0, b1, b2, b3] = &mut bufs;
        let (from, to, len, src, rtcp) = tokio::select! {
            biased;
            ctl = control.recv() => {
                match ctl {
                    Some(Control::Target(side, t)) => {
                        let (rtp, rtcp) = match side { Side::A => (A_RTP, A_RTCP), Side::B => (B_RTP, B_RTCP) };
                        peers[rtp].retarget(usable(t.rtp));
                        peers[rtcp].retarget(usable(if t.rtcp_mux { t.rtp } else { t.rtcp }));
                    }
                    Some(Control::Tap(t)) => tap = t,
                    Some(Control::Codecs(side, map)) => clocks[side.index()] = map,
                    Some(Control::Transcode(plan)) => {
                        transcode = [None, None];
                        if let Some(p) = plan {
                            transcode = [
                                TranscodeDirection::new(p.a, p.b, p.events).ok(),
                                TranscodeDirection::new(p.b, p.a, p.events.map(|(a, b)| (b, a))).ok(),
                            ];
                        }
                    }
                    Some(Control::Quality(reply)) => {
                        let _ = reply.send([quality[0].snapshot(), quality[1].snapshot()]);
                    }
                    None => return,
                }
                continue;
            }
            r = s.a_rtp.recv_from(b0) => { let Ok((n, src)) = r else { continue }; (A_RTP, B_RTP, n, src, false) }
            r = s.b_rtp.recv_from(b2) => { let Ok((n, src)) = r else { continue }; (B_RTP, A_RTP, n, src, false) }
            r = s.a_rtcp.recv_from(b1) => { let Ok((n, src)) = r else { continue }; (A_RTCP, B_RTCP, n, src, true) }
            r = s.b_rtcp.recv_from(b3) => { let Ok((n, src)) = r else { continue }; (B_RTCP, A_RTCP, n, src, true) }
        };
        let packet = &bufs[from][..len];
        // One look at the header: RTCP (on its own port, or muxed on the RTP
        // port per RFC 5761), else RTP on the RTP port; anything else drops.
        let on_rtcp_port = rtcp;
        let rtcp = is_rtcp(packet);
        let rtp = if rtcp {
            None
        } else {
            RtpReader::new(packet).ok()
        };
        let valid = rtcp || (!on_rtcp_port && rtp.is_some());
        if !valid || !peers[from].accept(src) {
            stats.dropped.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let now = Instant::now();
        let i = usize::from(from == B_RTP || from == B_RTCP);
        if let Some(rtp) = &rtp {
            let clock = clock_rate(&clocks[i], rtp.payload_type());
            quality[i].on_packet(rtp.sequence_number().into(), rtp.timestamp(), now, clock);
        } else {
            quality[i].on_rtcp(packet, 8000, now);
            quality[1 - i].on_rtcp_sent(packet, now);
        }
        if !rtcp {
            stats.last_rx_ms[i].store(
                now.duration_since(stats.start).as_millis() as u64,
                Ordering::Relaxed,
            );
            if let Some(t) = &tap {
                t.packet(if i == 0 { Side::A } else { Side::B }, packet, now);
            }
        }
        let Some(dest) = peers[to].dest else {
            stats.dropped.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let out = match to {
            A_RTP => &s.a_rtp,
            A_RTCP => &s.a_rtcp,
            B_RTP => &s.b_rtp,
            _ => &s.b_rtcp,
        };
        if let (false, Some(t)) = (rtcp, transcode[i].as_mut()) {
            // Legs without a common codec: re-encode for the other leg.
            let mut sent = false;
            for p in t.process(packet) {
                sent |= out.send_to(p, dest).await.is_ok();
            }
            if !sent {
                stats.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
        } else if out.send_to(packet, dest).await.is_err() {
            stats.dropped.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        if !rtcp {
            let counter = if from == A_RTP {
                &stats.a_to_b
            } else {
                &stats.b_to_a
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// RTP clock of payload type `pt` on a leg (0 for RFC 4733 events, which
/// must not feed the jitter; 8000 when unknown).
fn clock_rate(map: &[(u8, Codec)], pt: u8) -> u32 {
    match map
        .iter()
        .find(|(p, _)| *p == pt)
        .map(|(_, c)| *c)
        .or_else(|| Codec::from_static_payload_type(pt))
    {
        Some(Codec::TelephoneEvent { .. }) => 0,
        Some(c) => c.clock_rate(),
        None => 8000,
    }
}
