//! The RTP generator: paced 172-byte PCMU packets on every stream, a
//! receiver per socket that counts what arrives and measures one-way
//! latency from the send time carried in the payload.
//!
//! Packet layout (12-byte RTP header + 160-byte payload):
//!
//! | bytes | content |
//! |---|---|
//! | 0–11 | RTP v2, PT 0 (PCMU), seq, timestamp (seq·160), SSRC |
//! | 12–19 | send time, ns since the run's epoch (u64 BE) |
//! | 20–23 | call index (u32 BE) |
//! | 24 | direction (0 = A→B, 1 = B→A) |
//! | 25–171 | PCMU 0x55 (a steady non-zero level: a recording of these
//! streams has no silent 20 ms frame except where a packet is missing) |

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::histogram::Histogram;

/// RTP packet size: 12-byte header + 20 ms of PCMU.
pub const PACKET_LEN: usize = 172;
/// Time allowed for packets in flight after the last send.
const DRAIN: Duration = Duration::from_millis(300);

/// Direction of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// Caller to callee.
    AToB,
    /// Callee to caller.
    BToA,
}

impl Dir {
    fn byte(self) -> u8 {
        match self {
            Dir::AToB => 0,
            Dir::BToA => 1,
        }
    }
}

/// One paced stream: packets from `socket` to `dest`.
#[derive(Debug, Clone)]
pub struct Stream {
    /// Sending socket (also the stream's RTP source address).
    pub socket: Arc<UdpSocket>,
    /// Destination (the relay's port for that leg, or the peer directly).
    pub dest: SocketAddr,
    /// Call index.
    pub index: u32,
    /// Direction.
    pub dir: Dir,
}

/// A receiving socket: packets travelling `dir` of the calls `i` with
/// `i % slots == slot` arrive here (sockets are shared between calls).
#[derive(Debug, Clone)]
pub struct Sink {
    /// The socket.
    pub socket: Arc<UdpSocket>,
    /// Which calls it receives for: `i % slots == slot`.
    pub slot: u32,
    /// Number of distinct sockets per side.
    pub slots: u32,
    /// Direction of the packets it receives.
    pub dir: Dir,
    /// Its receive buffer and latency histogram.
    pub state: RecvState,
}

/// A sink's receive buffer and latency histogram, allocated (and made
/// resident) by the caller, so the pump's memory is known before it runs
/// and nothing is allocated per packet.
#[derive(Debug, Clone)]
pub struct RecvState {
    /// Latencies of the packets received.
    pub latency: Histogram,
    buf: Vec<u8>,
}

impl RecvState {
    /// A fresh state (histogram and 2 KiB buffer, both written once).
    pub fn new() -> RecvState {
        RecvState {
            latency: Histogram::new(),
            buf: vec![1u8; 2048],
        }
    }
}

impl Default for RecvState {
    fn default() -> Self {
        Self::new()
    }
}

/// What one direction saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirStats {
    /// Packets handed to the kernel.
    pub sent: u64,
    /// Sends that failed.
    pub send_errors: u64,
    /// Packets not sent because the generator fell behind by more than a
    /// packet interval (it never bursts to catch up).
    pub skipped: u64,
    /// Packets received at the right socket.
    pub received: u64,
    /// Packets received at a socket of another call or direction.
    pub misrouted: u64,
    /// One-way latency of the received packets.
    pub latency: Histogram,
}

/// Result of [`pump`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PumpStats {
    /// A→B.
    pub a_to_b: DirStats,
    /// B→A.
    pub b_to_a: DirStats,
    /// Sending time (without the drain).
    pub elapsed: Duration,
}

impl PumpStats {
    fn dir_mut(&mut self, dir: Dir) -> &mut DirStats {
        match dir {
            Dir::AToB => &mut self.a_to_b,
            Dir::BToA => &mut self.b_to_a,
        }
    }
}

/// Build the packet with sequence `seq` for `stream` sent at `sent_ns`.
pub fn fill_packet(buf: &mut [u8; PACKET_LEN], index: u32, dir: Dir, seq: u16, sent_ns: u64) {
    let ssrc = index.wrapping_mul(2).wrapping_add(u32::from(dir.byte()));
    buf[0] = 0x80;
    buf[1] = 0; // PCMU
    buf[2..4].copy_from_slice(&seq.to_be_bytes());
    buf[4..8].copy_from_slice(&u32::from(seq).wrapping_mul(160).to_be_bytes());
    buf[8..12].copy_from_slice(&ssrc.to_be_bytes());
    buf[12..20].copy_from_slice(&sent_ns.to_be_bytes());
    buf[20..24].copy_from_slice(&index.to_be_bytes());
    buf[24] = dir.byte();
    buf[25..].fill(0x55);
}

/// Read (send time ns, call index, direction byte) from a received packet.
pub fn read_packet(buf: &[u8]) -> Option<(u64, u32, u8)> {
    if buf.len() != PACKET_LEN || buf.first()? >> 6 != 2 {
        return None;
    }
    let sent = u64::from_be_bytes(buf.get(12..20)?.try_into().ok()?);
    let index = u32::from_be_bytes(buf.get(20..24)?.try_into().ok()?);
    Some((sent, index, *buf.get(24)?))
}

fn ns_since(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Send `pps` packets per second on every stream for `duration`, receive on
/// every sink, and return the counts. Streams are spread over `shards`
/// sender tasks whose ticks are staggered over one packet interval.
pub async fn pump(
    streams: Vec<Stream>,
    sinks: Vec<Sink>,
    pps: u32,
    duration: Duration,
    shards: usize,
    epoch: Instant,
) -> PumpStats {
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut receivers = JoinSet::new();
    for sink in sinks {
        receivers.spawn(receive(sink, stop_rx.clone(), epoch));
    }
    let period = Duration::from_secs_f64(1.0 / f64::from(pps.max(1)));
    let shards = shards.clamp(1, streams.len().max(1));
    let mut groups: Vec<Vec<Stream>> = vec![Vec::new(); shards];
    for (i, s) in streams.into_iter().enumerate() {
        if let Some(g) = groups.get_mut(i % shards) {
            g.push(s);
        }
    }
    let start = Instant::now() + Duration::from_millis(20);
    let end = start + duration;
    let mut senders = JoinSet::new();
    for (k, group) in groups.into_iter().enumerate() {
        let offset = period.mul_f64(k as f64 / shards as f64);
        senders.spawn(send(group, start + offset, end, period, epoch));
    }
    let mut stats = PumpStats::default();
    while let Some(result) = senders.join_next().await {
        if let Ok(counts) = result {
            for (dir, sent, errors, skipped) in counts {
                let d = stats.dir_mut(dir);
                d.sent += sent;
                d.send_errors += errors;
                d.skipped += skipped;
            }
        }
    }
    stats.elapsed = Instant::now().saturating_duration_since(start);
    tokio::time::sleep(DRAIN).await;
    let _ = stop_tx.send(true);
    while let Some(result) = receivers.join_next().await {
        if let Ok((dir, received, misrouted, latency)) = result {
            let d = stats.dir_mut(dir);
            d.received += received;
            d.misrouted += misrouted;
            d.latency.merge(&latency);
        }
    }
    stats
}

/// One sender shard; returns (direction, sent, errors, skipped) per stream.
async fn send(
    group: Vec<Stream>,
    first: Instant,
    end: Instant,
    period: Duration,
    epoch: Instant,
) -> Vec<(Dir, u64, u64, u64)> {
    let mut counts: Vec<(Dir, u64, u64, u64)> = group.iter().map(|s| (s.dir, 0, 0, 0)).collect();
    let mut buf = [0u8; PACKET_LEN];
    let mut seq: u16 = 0;
    let mut next = first;
    while next < end {
        tokio::time::sleep_until(next).await;
        for (stream, count) in group.iter().zip(counts.iter_mut()) {
            fill_packet(&mut buf, stream.index, stream.dir, seq, ns_since(epoch));
            match stream.socket.send_to(&buf, stream.dest).await {
                Ok(_) => count.1 += 1,
                Err(_) => count.2 += 1,
            }
        }
        seq = seq.wrapping_add(1);
        next += period;
        // Fallen behind by more than a tick: skip, never burst to catch up.
        let now = Instant::now();
        while next + period < now {
            next += period;
            // The skipped packets' sequence numbers and timestamps go by,
            // as a real phone's would: the far end sees them as lost.
            seq = seq.wrapping_add(1);
            for count in counts.iter_mut() {
                count.3 += 1;
            }
        }
    }
    counts
}

/// One receiver; returns (direction, received, misrouted, latency).
async fn receive(
    sink: Sink,
    mut stop: watch::Receiver<bool>,
    epoch: Instant,
) -> (Dir, u64, u64, Histogram) {
    let Sink {
        socket,
        slot,
        slots,
        dir,
        state,
    } = sink;
    let slots = slots.max(1);
    let RecvState {
        mut latency,
        mut buf,
    } = state;
    let (mut received, mut misrouted) = (0u64, 0u64);
    loop {
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            r = socket.recv_from(&mut buf) => {
                let Ok((len, _)) = r else { continue };
                let now = ns_since(epoch);
                match buf.get(..len).and_then(read_packet) {
                    Some((sent, i, d)) if i % slots == slot && d == dir.byte() => {
                        received += 1;
                        latency.record_ns(now.saturating_sub(sent));
                    }
                    _ => misrouted += 1,
                }
            }
        }
    }
    (dir, received, misrouted, latency)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packet_round_trips_and_is_rtp() {
        let mut buf = [0u8; PACKET_LEN];
        fill_packet(&mut buf, 42, Dir::BToA, 7, 123_456_789);
        assert_eq!(read_packet(&buf), Some((123_456_789, 42, 1)));
        assert!(maskline_engine::media::rtp::is_rtp(&buf));
        assert_eq!(read_packet(&buf[..100]), None);
    }

    #[tokio::test]
    async fn pump_counts_both_directions_between_two_sockets() {
        let a = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let b = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let (a_addr, b_addr) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        let streams = vec![
            Stream {
                socket: a.clone(),
                dest: b_addr,
                index: 0,
                dir: Dir::AToB,
            },
            Stream {
                socket: b.clone(),
                dest: a_addr,
                index: 0,
                dir: Dir::BToA,
            },
        ];
        let sinks = vec![
            Sink {
                socket: b,
                slot: 0,
                slots: 1,
                dir: Dir::AToB,
                state: RecvState::new(),
            },
            Sink {
                socket: a,
                slot: 0,
                slots: 1,
                dir: Dir::BToA,
                state: RecvState::new(),
            },
        ];
        let stats = pump(
            streams,
            sinks,
            100,
            Duration::from_millis(200),
            2,
            Instant::now(),
        )
        .await;
        for d in [&stats.a_to_b, &stats.b_to_a] {
            assert!(d.sent >= 10, "{d:?}");
            assert_eq!(d.received, d.sent, "loopback must not lose: {d:?}");
            assert_eq!(d.misrouted, 0);
            assert_eq!(d.latency.count(), d.received);
        }
    }
}
