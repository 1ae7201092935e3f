//! Per-leg RTP receive statistics (RFC 3550 §6.4.1, Appendix A.1, A.3,
//! A.8) and the peer's own view from its RTCP reception reports.
//!
//! One [`RtpStats`] per leg: [`RtpStats::on_packet`] for every RTP packet
//! received from the leg's peer, [`RtpStats::on_rtcp`] for every RTCP
//! packet received from it (its reports on what Maskline sends it), and
//! [`RtpStats::on_rtcp_sent`] for every RTCP packet forwarded to it (the
//! other leg's sender reports: remembering when each left lets the peer's
//! LSR/DLSR give the round-trip time Maskline ↔ peer). Time is passed in.

use std::time::{Duration, Instant};

use serde::Serialize;

/// RFC 3550 A.1: a jump this far ahead is still "in order with a gap".
const MAX_DROPOUT: u16 = 3000;
/// RFC 3550 A.1: a jump this far behind is a reordered/duplicate packet.
const MAX_MISORDER: u16 = 100;
const RTP_SEQ_MOD: u32 = 1 << 16;
/// Sender reports remembered for the RTT computation.
const SENT_SR_MEMORY: usize = 8;

/// Quality figures of one leg at a point in time.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct QualityStats {
    /// RTP packets received from the peer (duplicates included).
    pub packets: u64,
    /// Packets lost: expected − received, floored at 0.
    pub lost: u64,
    /// `lost` as a percentage of the expected packets.
    pub loss_pct: f64,
    /// Interarrival jitter (RFC 3550 A.8) of the peer's stream, ms.
    pub jitter_ms: f64,
    /// Loss the peer reported on what it receives from Maskline (its
    /// latest RTCP "fraction lost", i.e. the last report interval), %.
    pub rtcp_loss_pct: Option<f64>,
    /// The peer's cumulative number of packets lost (may be negative with
    /// duplicates, RFC 3550 §6.4.1).
    pub rtcp_lost: Option<i64>,
    /// Jitter the peer reported, ms.
    pub rtcp_jitter_ms: Option<f64>,
    /// Round-trip time Maskline ↔ peer from LSR/DLSR, ms.
    pub rtt_ms: Option<f64>,
}

/// The first (or matching) reception report block of the peer's last
/// SR/RR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportBlock {
    /// SSRC of the stream the block reports on.
    pub ssrc: u32,
    /// Fraction lost over the last interval, in 1/256.
    pub fraction_lost: u8,
    /// Cumulative packets lost (24-bit signed).
    pub cumulative_lost: i32,
    /// Extended highest sequence number received.
    pub highest_seq: u32,
    /// Interarrival jitter, in RTP timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the NTP timestamp of the last SR received.
    pub lsr: u32,
    /// Delay since that SR, in 1/65536 s.
    pub dlsr: u32,
}

/// Receive statistics of one RTP stream (see the module doc).
#[derive(Debug, Clone)]
pub struct RtpStats {
    started: bool,
    max_seq: u16,
    /// Sequence wrap count, shifted (RFC 3550 `cycles`).
    cycles: u32,
    base_seq: u32,
    bad_seq: u32,
    /// Packets received since the last (re)synchronisation.
    received: u64,
    /// Expected/received of earlier sequence epochs (before a resync).
    acc_expected: u64,
    acc_received: u64,
    expected_prior: u64,
    received_prior: u64,
    origin: Option<Instant>,
    transit: Option<u32>,
    /// Jitter in timestamp units of `jitter_clock`.
    jitter: f64,
    jitter_clock: u32,
    remote: Option<ReportBlock>,
    remote_clock: u32,
    /// (sender SSRC, NTP middle 32 bits, when it left) of forwarded SRs.
    sent: [Option<(u32, u32, Instant)>; SENT_SR_MEMORY],
    sent_next: usize,
    rtt: Option<Duration>,
}

impl Default for RtpStats {
    fn default() -> Self {
        Self::new()
    }
}

impl RtpStats {
    /// Statistics of a stream that has not started.
    pub fn new() -> Self {
        RtpStats {
            started: false,
            max_seq: 0,
            cycles: 0,
            base_seq: 0,
            bad_seq: RTP_SEQ_MOD + 1,
            received: 0,
            acc_expected: 0,
            acc_received: 0,
            expected_prior: 0,
            received_prior: 0,
            origin: None,
            transit: None,
            jitter: 0.0,
            jitter_clock: 0,
            remote: None,
            remote_clock: 0,
            sent: [None; SENT_SR_MEMORY],
            sent_next: 0,
            rtt: None,
        }
    }

    fn init_seq(&mut self, seq: u16) {
        self.acc_expected += self.epoch_expected();
        self.acc_received += self.received;
        self.base_seq = u32::from(seq);
        self.max_seq = seq;
        self.bad_seq = RTP_SEQ_MOD + 1;
        self.cycles = 0;
        self.received = 0;
        self.expected_prior = self.acc_expected;
        self.received_prior = self.acc_received;
        // A restarted stream has a new timestamp base.
        self.transit = None;
    }

    fn epoch_expected(&self) -> u64 {
        if !self.started {
            return 0;
        }
        (u64::from(self.extended_highest_seq()) + 1).saturating_sub(u64::from(self.base_seq))
    }

    /// RFC 3550 A.1 `update_seq` (without probation: the relay has already
    /// latched the source). Returns whether the packet counts as received.
    fn update_seq(&mut self, seq: u16) -> bool {
        if !self.started {
            self.init_seq(seq);
            self.started = true;
            self.received = 1;
            return true;
        }
        let udelta = seq.wrapping_sub(self.max_seq);
        if udelta < MAX_DROPOUT {
            if seq < self.max_seq {
                self.cycles = self.cycles.wrapping_add(RTP_SEQ_MOD);
            }
            self.max_seq = seq;
        } else if u32::from(udelta) <= RTP_SEQ_MOD - u32::from(MAX_MISORDER) {
            if u32::from(seq) == self.bad_seq {
                // Two sequential packets after a big jump: the sender
                // restarted. Resynchronise, keeping the totals.
                self.init_seq(seq);
            } else {
                self.bad_seq = (u32::from(seq) + 1) & (RTP_SEQ_MOD - 1);
                return false;
            }
        }
        // else: duplicate or reordered packet, counted as received.
        self.received += 1;
        true
    }

    /// Account for one RTP packet received at `arrival` with sequence
    /// number `seq` and timestamp `rtp_ts` in a `clock_rate` Hz clock.
    /// `clock_rate = 0` counts the packet without feeding the jitter
    /// (use it for RFC 4733 event packets, whose timestamp stays at the
    /// event start). A packet after a big sequence jump is not counted
    /// until the next one confirms the new sequence (RFC 3550 A.1).
    pub fn on_packet(&mut self, seq: u16, rtp_ts: u32, arrival: Instant, clock_rate: u32) {
        if !self.update_seq(seq) || clock_rate == 0 {
            return;
        }
        let origin = *self.origin.get_or_insert(arrival);
        if clock_rate != self.jitter_clock {
            if self.jitter_clock != 0 {
                self.jitter *= f64::from(clock_rate) / f64::from(self.jitter_clock);
            }
            self.jitter_clock = clock_rate;
            self.transit = None;
        }
        let elapsed = arrival.saturating_duration_since(origin);
        let arrival_units = (elapsed.as_nanos() * u128::from(clock_rate) / 1_000_000_000) as u32;
        let transit = arrival_units.wrapping_sub(rtp_ts);
        if let Some(prev) = self.transit {
            let d = i64::from(transit.wrapping_sub(prev) as i32).abs();
            // A difference over a second is a timestamp jump, not jitter.
            if d <= i64::from(clock_rate) {
                self.jitter += (d as f64 - self.jitter) / 16.0;
            }
        }
        self.transit = Some(transit);
    }

    /// Extended highest sequence number received (cycles × 65536 + max).
    pub fn extended_highest_seq(&self) -> u32 {
        self.cycles.wrapping_add(u32::from(self.max_seq))
    }

    /// Packets expected from the first sequence number to the highest.
    pub fn expected(&self) -> u64 {
        self.acc_expected + self.epoch_expected()
    }

    /// Packets received (duplicates included).
    pub fn received(&self) -> u64 {
        self.acc_received + self.received
    }

    /// Cumulative packets lost (negative with duplicates).
    pub fn cumulative_lost(&self) -> i64 {
        self.expected() as i64 - self.received() as i64
    }

    /// RFC 3550 A.3 fraction lost (1/256) since the previous call, as an
    /// RTCP receiver report would carry it.
    pub fn take_fraction_lost(&mut self) -> u8 {
        let expected = self.expected();
        let received = self.received();
        let expected_interval = expected.saturating_sub(self.expected_prior);
        let received_interval = received.saturating_sub(self.received_prior);
        self.expected_prior = expected;
        self.received_prior = received;
        let lost = expected_interval.saturating_sub(received_interval);
        if expected_interval == 0 || lost == 0 {
            0
        } else {
            ((lost << 8) / expected_interval).min(255) as u8
        }
    }

    /// Interarrival jitter in timestamp units of the last clock rate.
    pub fn jitter(&self) -> f64 {
        self.jitter
    }

    /// Interarrival jitter in milliseconds.
    pub fn jitter_ms(&self) -> f64 {
        if self.jitter_clock == 0 {
            0.0
        } else {
            self.jitter * 1000.0 / f64::from(self.jitter_clock)
        }
    }

    /// The peer's latest reception report, if any.
    pub fn remote_report(&self) -> Option<ReportBlock> {
        self.remote
    }

    /// Round-trip time Maskline ↔ peer, when LSR/DLSR allowed it.
    pub fn rtt(&self) -> Option<Duration> {
        self.rtt
    }

    /// An RTCP (compound) packet received from the peer at `now`:
    /// remembers its report block on what Maskline sends it (the block
    /// about the SSRC of the last sender report forwarded to it if there is
    /// one, else the first) and derives the RTT from LSR/DLSR. `clock_rate` is the clock
    /// of the stream sent to the peer (for its jitter). Malformed input is
    /// ignored.
    pub fn on_rtcp(&mut self, packet: &[u8], clock_rate: u32, now: Instant) {
        let wanted = self.sent_ssrc();
        for p in RtcpIter(packet) {
            let blocks_at = match p.pt {
                200 => 28,
                201 => 8,
                _ => continue,
            };
            let blocks = (0..usize::from(p.count))
                .filter_map(|i| parse_block(p.body.get(blocks_at + 24 * i..)?));
            let mut first = None;
            let mut matching = None;
            for b in blocks {
                first.get_or_insert(b);
                if wanted == Some(b.ssrc) {
                    matching = Some(b);
                    break;
                }
            }
            let Some(block) = matching.or(first) else {
                continue;
            };
            self.remote = Some(block);
            self.remote_clock = clock_rate;
            if let Some(rtt) = self.rtt_from(block, now) {
                self.rtt = Some(rtt);
            }
        }
    }

    /// An RTCP (compound) packet forwarded to the peer at `now`: its sender
    /// reports are remembered so the peer's LSR/DLSR can give the RTT.
    pub fn on_rtcp_sent(&mut self, packet: &[u8], now: Instant) {
        for p in RtcpIter(packet) {
            if p.pt != 200 {
                continue;
            }
            let (Some(ssrc), Some(sec), Some(frac)) =
                (be32(p.body, 4), be32(p.body, 8), be32(p.body, 12))
            else {
                continue;
            };
            let mid = (sec << 16) | (frac >> 16);
            if let Some(slot) = self.sent.get_mut(self.sent_next) {
                *slot = Some((ssrc, mid, now));
            }
            self.sent_next = (self.sent_next + 1) % SENT_SR_MEMORY;
        }
    }

    fn sent_ssrc(&self) -> Option<u32> {
        let last = (self.sent_next + SENT_SR_MEMORY - 1) % SENT_SR_MEMORY;
        self.sent
            .get(last)
            .copied()
            .flatten()
            .map(|(ssrc, _, _)| ssrc)
    }

    fn rtt_from(&self, block: ReportBlock, now: Instant) -> Option<Duration> {
        if block.lsr == 0 {
            return None;
        }
        let (_, _, left) = self
            .sent
            .iter()
            .flatten()
            .find(|(_, mid, _)| *mid == block.lsr)?;
        let round = now.checked_duration_since(*left)?;
        let held = Duration::from_nanos(u64::from(block.dlsr) * 1_000_000_000 / 65_536);
        round.checked_sub(held)
    }

    /// The figures for the call object and `call.hangup`.
    pub fn snapshot(&self) -> QualityStats {
        let expected = self.expected();
        let lost = self.cumulative_lost().max(0) as u64;
        let loss_pct = if expected == 0 {
            0.0
        } else {
            lost as f64 * 100.0 / expected as f64
        };
        let remote = self.remote;
        QualityStats {
            packets: self.received(),
            lost,
            loss_pct: round2(loss_pct),
            jitter_ms: round2(self.jitter_ms()),
            rtcp_loss_pct: remote.map(|b| round2(f64::from(b.fraction_lost) * 100.0 / 256.0)),
            rtcp_lost: remote.map(|b| i64::from(b.cumulative_lost)),
            rtcp_jitter_ms: remote
                .filter(|_| self.remote_clock > 0)
                .map(|b| round2(f64::from(b.jitter) * 1000.0 / f64::from(self.remote_clock))),
            rtt_ms: self.rtt.map(|d| round2(d.as_secs_f64() * 1000.0)),
        }
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 4)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

fn parse_block(b: &[u8]) -> Option<ReportBlock> {
    let lost = b.get(4..8)?;
    // 24-bit two's complement, sign-extended.
    let cumulative_lost = i32::from_be_bytes([lost[1], lost[2], lost[3], 0]) >> 8;
    Some(ReportBlock {
        ssrc: be32(b, 0)?,
        fraction_lost: lost[0],
        cumulative_lost,
        highest_seq: be32(b, 8)?,
        jitter: be32(b, 12)?,
        lsr: be32(b, 16)?,
        dlsr: be32(b, 20)?,
    })
}

/// One packet of an RTCP compound packet.
struct RtcpPacket<'a> {
    /// Report/source count (5 bits).
    count: u8,
    pt: u8,
    /// The whole packet, header included.
    body: &'a [u8],
}

/// Iterates the packets of a compound RTCP packet; stops at the first
/// malformed header or truncated packet.
struct RtcpIter<'a>(&'a [u8]);

impl<'a> Iterator for RtcpIter<'a> {
    type Item = RtcpPacket<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        let h = self.0.get(..4)?;
        if h[0] >> 6 != 2 {
            self.0 = &[];
            return None;
        }
        let len = (usize::from(u16::from_be_bytes([h[2], h[3]])) + 1) * 4;
        let Some(body) = self.0.get(..len) else {
            self.0 = &[];
            return None;
        };
        let item = RtcpPacket {
            count: h[0] & 0x1F,
            pt: h[1],
            body,
        };
        self.0 = self.0.get(len..).unwrap_or_default();
        Some(item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS20: Duration = Duration::from_millis(20);

    /// Packets `seqs` of a 20 ms, 8 kHz stream arriving exactly on time.
    fn feed(s: &mut RtpStats, t0: Instant, seqs: impl IntoIterator<Item = u16>, first: u16) {
        for seq in seqs {
            let n = u32::from(seq.wrapping_sub(first));
            s.on_packet(seq, 1000 + n * 160, t0 + MS20 * n, 8000);
        }
    }

    #[test]
    fn in_order_stream_has_no_loss_and_no_jitter() {
        let mut s = RtpStats::new();
        let t0 = Instant::now();
        feed(&mut s, t0, 100..200, 100);
        assert_eq!(s.expected(), 100);
        assert_eq!(s.received(), 100);
        assert_eq!(s.cumulative_lost(), 0);
        assert_eq!(s.extended_highest_seq(), 199);
        let q = s.snapshot();
        assert_eq!(
            (q.packets, q.lost, q.loss_pct, q.jitter_ms),
            (100, 0, 0.0, 0.0)
        );
        assert_eq!(q.rtcp_loss_pct, None);
    }

    #[test]
    fn loss_is_counted_and_fraction_lost_per_interval() {
        let mut s = RtpStats::new();
        let t0 = Instant::now();
        feed(&mut s, t0, (0..100).filter(|i| i % 10 != 5), 0);
        assert_eq!(s.expected(), 100);
        assert_eq!(s.received(), 90);
        let q = s.snapshot();
        assert_eq!((q.lost, q.loss_pct), (10, 10.0));
        assert_eq!(s.take_fraction_lost(), 25); // 10/100 × 256
        assert_eq!(s.take_fraction_lost(), 0);
        feed(&mut s, t0, 100..110, 0);
        assert_eq!(s.take_fraction_lost(), 0);
    }

    #[test]
    fn sequence_wrap_extends_the_highest_number() {
        let mut s = RtpStats::new();
        let t0 = Instant::now();
        let first = 65_500u16;
        feed(
            &mut s,
            t0,
            (0..100u16).map(|i| first.wrapping_add(i)),
            first,
        );
        assert_eq!(s.extended_highest_seq(), 65_536 + 63);
        assert_eq!(s.expected(), 100);
        assert_eq!(s.cumulative_lost(), 0);
    }

    #[test]
    fn duplicates_and_reorder_never_show_negative_loss() {
        let mut s = RtpStats::new();
        let t0 = Instant::now();
        feed(&mut s, t0, [0, 1, 3, 2, 2, 4], 0);
        assert_eq!(s.expected(), 5);
        assert_eq!(s.received(), 6);
        assert_eq!(s.cumulative_lost(), -1);
        assert_eq!(s.snapshot().lost, 0);
    }

    #[test]
    fn restarted_sender_is_resynchronised_keeping_totals() {
        let mut s = RtpStats::new();
        let t0 = Instant::now();
        feed(&mut s, t0, 0..50, 0);
        // Jump far ahead: the first packet is held back, the second
        // confirms the new sequence.
        s.on_packet(40_000, 5, t0 + MS20 * 50, 8000);
        assert_eq!(s.received(), 50);
        s.on_packet(40_001, 165, t0 + MS20 * 51, 8000);
        s.on_packet(40_002, 325, t0 + MS20 * 52, 8000);
        assert_eq!(s.received(), 52);
        assert_eq!(s.expected(), 52);
        assert_eq!(s.jitter_ms(), 0.0);
    }

    #[test]
    fn jitter_follows_rfc3550_a8() {
        let mut s = RtpStats::new();
        let t0 = Instant::now();
        // Every other packet 5 ms late: |D| = 40 units each time.
        for n in 0..400u32 {
            let late = if n % 2 == 1 {
                Duration::from_millis(5)
            } else {
                Duration::ZERO
            };
            s.on_packet(n as u16, n * 160, t0 + MS20 * n + late, 8000);
        }
        assert!((s.jitter() - 40.0).abs() < 0.5, "{}", s.jitter());
        assert!((s.snapshot().jitter_ms - 5.0).abs() < 0.1);
        // A timestamp jump does not blow the jitter up.
        s.on_packet(400, 9_000_000, t0 + MS20 * 400, 8000);
        assert!(s.jitter() < 45.0);
        // Event packets count but do not feed the jitter.
        s.on_packet(401, 0, t0 + MS20 * 401, 0);
        assert_eq!(s.received(), 402);
    }

    fn report_block(
        ssrc: u32,
        fraction: u8,
        lost: i32,
        jitter: u32,
        lsr: u32,
        dlsr: u32,
    ) -> Vec<u8> {
        let mut b = ssrc.to_be_bytes().to_vec();
        b.push(fraction);
        b.extend_from_slice(&lost.to_be_bytes()[1..]);
        b.extend_from_slice(&1234u32.to_be_bytes());
        b.extend_from_slice(&jitter.to_be_bytes());
        b.extend_from_slice(&lsr.to_be_bytes());
        b.extend_from_slice(&dlsr.to_be_bytes());
        b
    }

    fn rr(blocks: &[Vec<u8>]) -> Vec<u8> {
        let words = (8 + 24 * blocks.len()) / 4 - 1;
        let mut p = vec![0x80 | blocks.len() as u8, 201];
        p.extend_from_slice(&(words as u16).to_be_bytes());
        p.extend_from_slice(&0xAAAA_AAAAu32.to_be_bytes());
        for b in blocks {
            p.extend_from_slice(b);
        }
        p
    }

    fn sr(ssrc: u32, ntp_sec: u32, ntp_frac: u32) -> Vec<u8> {
        let mut p = vec![0x80, 200, 0, 6];
        p.extend_from_slice(&ssrc.to_be_bytes());
        p.extend_from_slice(&ntp_sec.to_be_bytes());
        p.extend_from_slice(&ntp_frac.to_be_bytes());
        p.extend_from_slice(&[0; 12]);
        p
    }

    #[test]
    fn rtcp_receiver_report_fields() {
        let mut s = RtpStats::new();
        let now = Instant::now();
        // Compound: RR + SDES (ignored).
        let mut pkt = rr(&[report_block(7, 64, 12, 160, 0, 0)]);
        pkt.extend_from_slice(&[0x81, 202, 0, 1, 0, 0, 0, 7]);
        s.on_rtcp(&pkt, 8000, now);
        let b = s.remote_report().unwrap();
        assert_eq!(
            (b.ssrc, b.fraction_lost, b.cumulative_lost, b.highest_seq),
            (7, 64, 12, 1234)
        );
        let q = s.snapshot();
        assert_eq!(q.rtcp_loss_pct, Some(25.0));
        assert_eq!(q.rtcp_lost, Some(12));
        assert_eq!(q.rtcp_jitter_ms, Some(20.0));
        assert_eq!(q.rtt_ms, None);
        // Negative cumulative loss (duplicates) is sign-extended.
        s.on_rtcp(&rr(&[report_block(7, 0, -3, 0, 0, 0)]), 8000, now);
        assert_eq!(s.remote_report().unwrap().cumulative_lost, -3);
    }

    #[test]
    fn rtt_from_lsr_and_dlsr_of_a_forwarded_sender_report() {
        let mut s = RtpStats::new();
        let t0 = Instant::now();
        s.on_rtcp_sent(&sr(0xB0B, 0x0001_2345, 0x6789_0000), t0);
        let lsr = 0x2345_6789;
        let dlsr = 65_536 / 2; // peer held it 500 ms
                               // The peer reports on two sources; the forwarded SR's SSRC wins.
        let pkt = rr(&[
            report_block(0x999, 255, 1, 1, 0, 0),
            report_block(0xB0B, 0, 0, 480, lsr, dlsr),
        ]);
        s.on_rtcp(&pkt, 48_000, t0 + Duration::from_millis(600));
        let q = s.snapshot();
        assert_eq!(q.rtt_ms, Some(100.0));
        assert_eq!(q.rtcp_jitter_ms, Some(10.0));
        assert_eq!(q.rtcp_loss_pct, Some(0.0));
        // An SR carrying a report block is read too.
        let mut sr_pkt = sr(0x55, 1, 2);
        sr_pkt[0] |= 1;
        sr_pkt[3] = 12;
        sr_pkt.extend(report_block(0xB0B, 128, 5, 0, 0, 0));
        s.on_rtcp(&sr_pkt, 48_000, t0);
        assert_eq!(s.snapshot().rtcp_loss_pct, Some(50.0));
    }

    #[test]
    fn malformed_rtcp_is_ignored() {
        let mut s = RtpStats::new();
        let now = Instant::now();
        let good = rr(&[report_block(1, 10, 1, 1, 0, 0)]);
        for cut in 0..good.len() {
            s.on_rtcp(&good[..cut], 8000, now);
            s.on_rtcp_sent(&good[..cut], now);
        }
        assert_eq!(s.remote_report(), None);
        // Claims two blocks, carries one.
        let mut lying = good.clone();
        lying[0] = 0x82;
        s.on_rtcp(&lying, 8000, now);
        assert_eq!(s.remote_report().map(|b| b.ssrc), Some(1));
        for seed in 0..500u32 {
            let junk: Vec<u8> = (0..(seed % 80))
                .map(|i| (i.wrapping_mul(2654435761).wrapping_add(seed * 40503) >> 9) as u8)
                .collect();
            s.on_rtcp(&junk, 8000, now);
            s.on_rtcp_sent(&junk, now);
        }
        let _ = s.snapshot();
    }
}
