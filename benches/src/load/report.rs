//! The figures of a load run and the table they print as.

use std::fmt;

use super::media::DirStats;
use super::procstat::{CpuTicks, TICKS_PER_SEC};

/// One direction's packet counts and latency.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DirectionReport {
    /// Packets sent by the generator.
    pub sent: u64,
    /// Packets received at the right socket.
    pub received: u64,
    /// Packets received at a socket of another call/direction (must be 0).
    pub misrouted: u64,
    /// Sends that failed.
    pub send_errors: u64,
    /// Packets the generator skipped (fell behind its schedule).
    pub skipped: u64,
    /// Median one-way latency, µs.
    pub p50_us: Option<f64>,
    /// 99th percentile one-way latency, µs.
    pub p99_us: Option<f64>,
    /// Largest one-way latency, µs.
    pub max_us: Option<f64>,
}

impl DirectionReport {
    /// Summarise a direction.
    pub fn from_stats(stats: &DirStats) -> DirectionReport {
        DirectionReport {
            sent: stats.sent,
            received: stats.received,
            misrouted: stats.misrouted,
            send_errors: stats.send_errors,
            skipped: stats.skipped,
            p50_us: stats.latency.quantile_us(0.50),
            p99_us: stats.latency.quantile_us(0.99),
            max_us: stats.latency.max_us(),
        }
    }

    /// Lost packets in percent of those sent (0 when nothing was sent).
    pub fn loss_pct(&self) -> f64 {
        if self.sent == 0 {
            return 0.0;
        }
        100.0 * self.sent.saturating_sub(self.received) as f64 / self.sent as f64
    }
}

/// A media phase (through the relay, or the direct baseline).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PhaseReport {
    /// Caller → callee.
    pub a_to_b: DirectionReport,
    /// Callee → caller.
    pub b_to_a: DirectionReport,
    /// Sending time, s.
    pub secs: f64,
    /// CPU used during the phase.
    pub cpu: CpuTicks,
}

impl PhaseReport {
    /// Packets received, both directions.
    pub fn received(&self) -> u64 {
        self.a_to_b.received + self.b_to_a.received
    }
}

/// Packet counters reported by the engine's relays (from `CallHangup`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineCounters {
    /// Relayed A → B.
    pub a_to_b: u64,
    /// Relayed B → A.
    pub b_to_a: u64,
    /// Dropped by the relays.
    pub dropped: u64,
}

/// What the recordings of a `--record` run hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecordingCheck {
    /// Calls recorded (set up with recording on).
    pub expected: usize,
    /// `RecordingReady` events.
    pub ready: usize,
    /// Packets the recorders did not write (`dropped_packets` of the
    /// `RecordingReady` events: queue full, late, undecodable).
    pub dropped: u64,
    /// WAV files found, and those unreadable.
    pub files: usize,
    /// Files that could not be read.
    pub unreadable: usize,
    /// 20 ms frames of silence inside the files' active spans.
    pub gap_frames: u64,
    /// 20 ms frames of audio in the files.
    pub audio_frames: u64,
}

/// Everything a run measured.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadReport {
    /// What relayed the media (`maskline` or `rtpengine`).
    pub target: String,
    /// Calls asked for.
    pub calls: usize,
    /// Packets per second per stream per direction.
    pub pps: u32,
    /// Engine runtime worker threads.
    pub engine_threads: usize,
    /// Generator runtime worker threads.
    pub generator_threads: usize,
    /// Calls that got a 200 OK with SDP on A and were answered on B.
    pub calls_set_up: usize,
    /// Seconds to set all calls up.
    pub setup_secs: f64,
    /// `CallBridged` events from the engine.
    pub bridged_events: usize,
    /// The first few setup failures.
    pub setup_errors: Vec<String>,
    /// Calls whose BYE got a 200 OK.
    pub calls_torn_down: usize,
    /// BYEs the B side received (the engine hung up B).
    pub b_byes: usize,
    /// `CallHangup` events from the engine.
    pub hangup_events: usize,
    /// Media through the relay.
    pub relay: PhaseReport,
    /// The engine's own counters.
    pub engine: EngineCounters,
    /// RSS before the calls, KiB (engine started, generator sockets bound).
    pub rss_before_kib: u64,
    /// RSS once every call is set up, KiB.
    pub rss_after_setup_kib: u64,
    /// RSS at the end of the media phase, KiB.
    pub rss_after_media_kib: u64,
    /// Media sent directly between the generator's sockets, no relay.
    pub baseline: Option<PhaseReport>,
    /// Recording figures (`--record` only).
    pub recording: Option<RecordingCheck>,
}

impl LoadReport {
    /// Packets relayed per second (engine counters over the media phase).
    pub fn relayed_pps(&self) -> f64 {
        per_sec(self.engine.a_to_b + self.engine.b_to_a, self.relay.secs)
    }

    /// Relay CPU per relayed packet, µs.
    pub fn cpu_us_per_packet(&self) -> Option<f64> {
        us_per_packet(
            self.relay.cpu.engine,
            self.engine.a_to_b + self.engine.b_to_a,
        )
    }

    /// Worst direction's p99 added by the relay (relay − baseline), µs; the
    /// relay's own p99 when there is no baseline.
    pub fn p99_added_us(&self) -> Option<f64> {
        let dirs = [
            (
                self.relay.a_to_b.p99_us,
                self.baseline.and_then(|b| b.a_to_b.p99_us),
            ),
            (
                self.relay.b_to_a.p99_us,
                self.baseline.and_then(|b| b.b_to_a.p99_us),
            ),
        ];
        dirs.iter()
            .filter_map(|(r, b)| Some(r.as_ref()? - b.unwrap_or(0.0)))
            .reduce(f64::max)
    }

    /// Loss over both directions, %.
    pub fn loss_pct(&self) -> f64 {
        let sent = self.relay.a_to_b.sent + self.relay.b_to_a.sent;
        if sent == 0 {
            return 0.0;
        }
        100.0 * sent.saturating_sub(self.relay.received()) as f64 / sent as f64
    }

    /// One line of `key=value` pairs for scripts (`benches/compare.sh`).
    pub fn summary(&self) -> String {
        let f = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.2}"));
        let mut line =
            format!(
            "summary target={} calls={} set_up={} secs={:.1} pps_per_stream={} relayed_pps={:.0} \
loss_pct={:.3} cpu_us_per_pkt={} cpu_core_pct={:.1} p50_us={} p99_us={} p99_added_us={} \
rss_kib_per_call={:.1} rss_mib={:.1} gen_skipped={}",
            if self.target.is_empty() { "maskline" } else { &self.target },
            self.calls,
            self.calls_set_up,
            self.relay.secs,
            self.pps,
            self.relayed_pps(),
            self.loss_pct(),
            f(self.cpu_us_per_packet()),
            core_pct(self.relay.cpu.engine, self.relay.secs),
            f(self.relay.a_to_b.p50_us),
            f(self.relay.a_to_b.p99_us.zip(self.relay.b_to_a.p99_us).map(|(a, b)| a.max(b))),
            f(self.p99_added_us()),
            self.rss_per_call_kib().0,
            self.rss_after_setup_kib as f64 / 1024.0,
            self.relay.a_to_b.skipped + self.relay.b_to_a.skipped,
        );
        if let Some(r) = &self.recording {
            line.push_str(&format!(
                " rec_expected={} rec_ready={} rec_files={} rec_unreadable={} rec_gap_frames={} \
rec_audio_frames={} rec_dropped={}",
                r.expected, r.ready, r.files, r.unreadable, r.gap_frames, r.audio_frames, r.dropped
            ));
        }
        line
    }

    /// RSS growth per set-up call, KiB (at the end of setup and of media).
    pub fn rss_per_call_kib(&self) -> (f64, f64) {
        let n = self.calls_set_up.max(1) as f64;
        let delta = |after: u64| after.saturating_sub(self.rss_before_kib) as f64 / n;
        (
            delta(self.rss_after_setup_kib),
            delta(self.rss_after_media_kib),
        )
    }
}

fn per_sec(count: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        count as f64 / secs
    } else {
        0.0
    }
}

/// µs of CPU per packet.
fn us_per_packet(ticks: u64, packets: u64) -> Option<f64> {
    (packets > 0).then(|| ticks as f64 * 1e6 / TICKS_PER_SEC as f64 / packets as f64)
}

/// CPU share of one core, %.
fn core_pct(ticks: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        100.0 * ticks as f64 / TICKS_PER_SEC as f64 / secs
    } else {
        0.0
    }
}

struct Opt(Option<f64>, usize);

impl fmt::Display for Opt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(v) => write!(f, "{v:>w$.1}", w = self.1),
            None => write!(f, "{:>w$}", "-", w = self.1),
        }
    }
}

fn direction_rows(f: &mut fmt::Formatter<'_>, p: &PhaseReport) -> fmt::Result {
    writeln!(
        f,
        "  direction        sent    received   loss %  misrouted   p50 µs   p99 µs   max µs"
    )?;
    for (name, d) in [("A→B", &p.a_to_b), ("B→A", &p.b_to_a)] {
        writeln!(
            f,
            "  {name:<9} {:>11} {:>11} {:>8.3} {:>10} {} {} {}",
            d.sent,
            d.received,
            d.loss_pct(),
            d.misrouted,
            Opt(d.p50_us, 8),
            Opt(d.p99_us, 8),
            Opt(d.max_us, 8)
        )?;
    }
    Ok(())
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let relayed = self.engine.a_to_b + self.engine.b_to_a;
        if self.target == "rtpengine" {
            writeln!(
                f,
                "relay-load: {} calls through rtpengine (ng), {:.1} s of media at {} pps per stream \
per direction; generator {} thread(s); CPU and RSS below are rtpengine's process",
                self.calls, self.relay.secs, self.pps, self.generator_threads
            )?;
        } else {
            writeln!(
                f,
                "relay-load: {} calls, {:.1} s of media at {} pps per stream per direction; \
engine {} thread(s), generator {} thread(s), same process",
                self.calls, self.relay.secs, self.pps, self.engine_threads, self.generator_threads
            )?;
        }
        writeln!(
            f,
            "calls set up       {}/{} in {:.2} s ({} bridged events)",
            self.calls_set_up, self.calls, self.setup_secs, self.bridged_events
        )?;
        for e in &self.setup_errors {
            writeln!(f, "  setup error: {e}")?;
        }
        writeln!(
            f,
            "calls torn down    {}/{} BYE → 200 ({} BYEs reached B, {} hangup events)",
            self.calls_torn_down, self.calls_set_up, self.b_byes, self.hangup_events
        )?;
        writeln!(f, "media through the relay:")?;
        direction_rows(f, &self.relay)?;
        writeln!(
            f,
            "relayed            {relayed} packets ({} A→B, {} B→A, {} dropped) = {:.0} packets/s",
            self.engine.a_to_b,
            self.engine.b_to_a,
            self.engine.dropped,
            self.relayed_pps()
        )?;
        let cpu = &self.relay.cpu;
        writeln!(
            f,
            "CPU per relayed packet: engine threads {} µs, whole process {} µs (generator threads {} µs)",
            Opt(us_per_packet(cpu.engine, relayed), 0),
            Opt(us_per_packet(cpu.process, relayed), 0),
            Opt(us_per_packet(cpu.generator, relayed), 0)
        )?;
        writeln!(
            f,
            "CPU load          engine {:.1} % of a core, generator {:.1} %, process {:.1} %",
            core_pct(cpu.engine, self.relay.secs),
            core_pct(cpu.generator, self.relay.secs),
            core_pct(cpu.process, self.relay.secs)
        )?;
        let (setup, media) = self.rss_per_call_kib();
        writeln!(
            f,
            "RSS per call       {setup:.1} KiB after setup, {media:.1} KiB after media \
(before {} KiB, after setup {} KiB, after media {} KiB)",
            self.rss_before_kib, self.rss_after_setup_kib, self.rss_after_media_kib
        )?;
        if let Some(b) = &self.baseline {
            writeln!(
                f,
                "baseline: same generator, packets sent directly A↔B (no relay), {:.1} s:",
                b.secs
            )?;
            direction_rows(f, b)?;
            writeln!(
                f,
                "  generator CPU per packet sent+received {} µs (process {} µs)",
                Opt(us_per_packet(b.cpu.generator, b.received()), 0),
                Opt(us_per_packet(b.cpu.process, b.received()), 0)
            )?;
            let added = |relay: Option<f64>, base: Option<f64>| relay.zip(base).map(|(r, b)| r - b);
            writeln!(
                f,
                "added one-way latency (relay − baseline): p50 A→B {} µs, B→A {} µs; p99 A→B {} µs, B→A {} µs",
                Opt(added(self.relay.a_to_b.p50_us, b.a_to_b.p50_us), 0),
                Opt(added(self.relay.b_to_a.p50_us, b.b_to_a.p50_us), 0),
                Opt(added(self.relay.a_to_b.p99_us, b.a_to_b.p99_us), 0),
                Opt(added(self.relay.b_to_a.p99_us, b.b_to_a.p99_us), 0)
            )?;
        }
        if let Some(r) = &self.recording {
            writeln!(
                f,
                "recording          {} calls recorded, {} ready events, {} files ({} unreadable), \
{} gap frames of 20 ms in {} audio frames, {} packets dropped by the recorders",
                r.expected, r.ready, r.files, r.unreadable, r.gap_frames, r.audio_frames, r.dropped
            )?;
        }
        writeln!(f, "{}", self.summary())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_rates_and_per_call_memory() {
        let d = DirectionReport {
            sent: 200,
            received: 199,
            ..Default::default()
        };
        assert!((d.loss_pct() - 0.5).abs() < 1e-9);
        assert_eq!(DirectionReport::default().loss_pct(), 0.0);
        let r = LoadReport {
            calls_set_up: 10,
            rss_before_kib: 1000,
            rss_after_setup_kib: 1500,
            rss_after_media_kib: 1600,
            engine: EngineCounters {
                a_to_b: 500,
                b_to_a: 500,
                dropped: 0,
            },
            relay: PhaseReport {
                secs: 2.0,
                ..Default::default()
            },
            ..Default::default()
        };
        assert_eq!(r.rss_per_call_kib(), (50.0, 60.0));
        assert_eq!(r.relayed_pps(), 500.0);
        assert_eq!(us_per_packet(100, 1_000_000), Some(1.0));
        assert!(r.to_string().contains("relayed            1000 packets"));
    }

    #[test]
    fn direction_summary_takes_quantiles_in_microseconds() {
        let mut s = DirStats {
            sent: 3,
            received: 3,
            ..Default::default()
        };
        for ns in [3000, 1000, 2000] {
            s.latency.record_ns(ns);
        }
        let d = DirectionReport::from_stats(&s);
        assert_eq!((d.p50_us, d.max_us), (Some(2.0), Some(3.0)));
    }
}
