use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::*;
use crate::media::codec::opus::{OpusApplication, OpusEncoder, MAX_PACKET_BYTES};
use crate::media::goertzel::{amplitude, rms, tone};

const MS: Duration = Duration::from_millis(1);

fn temp_wav(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("maskline-rec-{}-{name}.wav", std::process::id()))
}

/// The file's rate and its left and right channels.
fn read_wav(path: &Path) -> (u32, Vec<i16>, Vec<i16>) {
    let mut r = hound::WavReader::open(path).unwrap();
    let spec = r.spec();
    assert_eq!((spec.channels, spec.bits_per_sample), (2, 16));
    let all: Vec<i16> = r.samples::<i16>().map(|s| s.unwrap()).collect();
    let left = all.iter().step_by(2).copied().collect();
    let right = all.iter().skip(1).step_by(2).copied().collect();
    (spec.sample_rate, left, right)
}

/// Deterministic network delay of packet `i`, 0..max ms (packet 0 on time).
fn jitter(i: u32, max_ms: u32) -> Duration {
    if i == 0 || max_ms == 0 {
        return Duration::ZERO;
    }
    MS * ((i.wrapping_mul(2_654_435_761) >> 16) % max_ms)
}

struct Pkt {
    side: Side,
    codec: Codec,
    seq: u16,
    ts: u32,
    payload: Vec<u8>,
    arrival: Instant,
}

/// 20 ms G.711 packets of a tone: packet `i` is sent at `start + 20 ms × i`.
#[allow(clippy::too_many_arguments)]
fn g711_stream(
    side: Side,
    codec: Codec,
    freq: f64,
    start: Instant,
    packets: u32,
    ts0: u32,
    max_jitter_ms: u32,
    keep: impl Fn(u32) -> bool,
) -> Vec<Pkt> {
    (0..packets)
        .filter(|&i| keep(i))
        .map(|i| {
            let pcm = tone(freq, 8000, u64::from(i) * 160, 160, 8000.0);
            let mut payload = Vec::new();
            if codec == Codec::Pcmu {
                g711::encode_ulaw(&pcm, &mut payload);
            } else {
                g711::encode_alaw(&pcm, &mut payload);
            }
            Pkt {
                side,
                codec,
                seq: (1000 + i) as u16,
                ts: ts0.wrapping_add(i * 160),
                payload,
                arrival: start + MS * (20 * i) + jitter(i, max_jitter_ms),
            }
        })
        .collect()
}

fn push_all(rec: &mut Recorder, mut pkts: Vec<Pkt>) {
    pkts.sort_by_key(|p| p.arrival);
    for p in pkts {
        rec.push(p.side, p.codec, p.seq, p.ts, &p.payload, p.arrival)
            .unwrap();
    }
}

/// The G.711 μ-law round trip of the tone sample at 8 kHz index `n`.
fn expected_ulaw(freq: f64, start: u64, len: usize) -> Vec<i16> {
    tone(freq, 8000, start, len, 8000.0)
        .into_iter()
        .map(|s| g711::ulaw_to_linear(g711::linear_to_ulaw(s)))
        .collect()
}

#[test]
fn tones_on_both_sides_land_on_their_channels() {
    let path = temp_wav("tones");
    let t0 = Instant::now();
    let mut rec = Recorder::create(&path, RecorderFormat { sample_rate: 8000 }).unwrap();
    let mut pkts = g711_stream(Side::A, Codec::Pcmu, 440.0, t0, 250, 12_345, 40, |_| true);
    // The callee starts 300 ms later, with its own timestamp base (wraps).
    pkts.extend(g711_stream(
        Side::B,
        Codec::Pcma,
        1000.0,
        t0 + MS * 300,
        235,
        u32::MAX - 5000,
        40,
        |_| true,
    ));
    push_all(&mut rec, pkts);
    let info = rec.finish(t0 + MS * 5020).unwrap();
    assert_eq!(info.dropped_packets, 0);
    assert!(
        info.duration_ms.abs_diff(5020) <= 40,
        "{} ms",
        info.duration_ms
    );

    let (rate, left, right) = read_wav(&path);
    assert_eq!(rate, 8000);
    assert_eq!(left.len(), right.len());
    assert!(left.len().abs_diff(5020 * 8) <= 40 * 8);
    let body = 4000..36_000;
    let l440 = amplitude(&left[body.clone()], 8000, 440.0);
    let l1k = amplitude(&left[body.clone()], 8000, 1000.0);
    let r440 = amplitude(&right[body.clone()], 8000, 440.0);
    let r1k = amplitude(&right[body], 8000, 1000.0);
    assert!(
        l440 > 7000.0 && l440 > 30.0 * l1k,
        "left: 440 {l440}, 1k {l1k}"
    );
    assert!(
        r1k > 7000.0 && r1k > 30.0 * r440,
        "right: 440 {r440}, 1k {r1k}"
    );
    // Right is silent before the callee's first packet, left is not.
    assert_eq!(rms(&right[..2400]), 0.0);
    assert!(rms(&left[..2400]) > 4000.0);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn packet_loss_leaves_silence_without_shifting_what_follows() {
    let path = temp_wav("loss");
    let t0 = Instant::now();
    let mut rec = Recorder::create(&path, RecorderFormat { sample_rate: 8000 }).unwrap();
    let lost = |i: u32| i % 10 == 3; // 10 % loss on the caller's leg
    let mut pkts = g711_stream(Side::A, Codec::Pcmu, 440.0, t0, 250, 7, 40, |i| !lost(i));
    pkts.extend(g711_stream(
        Side::B,
        Codec::Pcmu,
        1000.0,
        t0,
        250,
        99,
        40,
        |_| true,
    ));
    push_all(&mut rec, pkts);
    let info = rec.finish(t0 + MS * 5020).unwrap();
    assert_eq!(info.dropped_packets, 0);
    assert!(
        info.duration_ms.abs_diff(5020) <= 40,
        "{} ms",
        info.duration_ms
    );

    let (_, left, right) = read_wav(&path);
    for i in 0..250u32 {
        let at = i as usize * 160;
        let got = &left[at..at + 160];
        if lost(i) {
            assert!(got.iter().all(|&s| s == 0), "packet {i} should be silence");
        } else {
            // Exactly the packet's audio at exactly its place: no shift.
            assert_eq!(
                got,
                &expected_ulaw(440.0, u64::from(i) * 160, 160)[..],
                "packet {i}"
            );
        }
        assert_eq!(
            &right[at..at + 160],
            &expected_ulaw(1000.0, u64::from(i) * 160, 160)[..]
        );
    }
    let _ = std::fs::remove_file(&path);
}

#[test]
fn pause_and_resume_leave_silence_exactly_over_the_span() {
    let path = temp_wav("pause");
    let t0 = Instant::now();
    let mut rec = Recorder::create(&path, RecorderFormat { sample_rate: 8000 }).unwrap();
    let mut pkts = g711_stream(Side::A, Codec::Pcmu, 440.0, t0, 200, 0, 40, |_| true);
    pkts.extend(g711_stream(
        Side::B,
        Codec::Pcmu,
        1000.0,
        t0,
        200,
        0,
        40,
        |_| true,
    ));
    pkts.sort_by_key(|p| p.arrival);
    let (pause, resume) = (t0 + MS * 1500, t0 + MS * 2500);
    let mut paused = false;
    let mut resumed = false;
    for p in pkts {
        if !paused && p.arrival >= pause {
            rec.pause(pause).unwrap();
            assert!(rec.is_paused());
            paused = true;
        }
        if !resumed && p.arrival >= resume {
            rec.resume(resume).unwrap();
            resumed = true;
        }
        rec.push(p.side, p.codec, p.seq, p.ts, &p.payload, p.arrival)
            .unwrap();
    }
    let info = rec.finish(t0 + MS * 4000).unwrap();
    assert_eq!(info.duration_ms, 4000);

    let (_, left, right) = read_wav(&path);
    let (p0, p1) = (1500 * 8, 2500 * 8);
    for (ch, freq) in [(&left, 440.0), (&right, 1000.0)] {
        assert!(
            ch[p0..p1].iter().all(|&s| s == 0),
            "{freq} Hz leaks into the pause"
        );
        // Audio right up to the pause and right from the resume, in place.
        assert_eq!(
            &ch[p0 - 160..p0],
            &expected_ulaw(freq, (p0 - 160) as u64, 160)[..]
        );
        assert_eq!(&ch[p1..p1 + 160], &expected_ulaw(freq, p1 as u64, 160)[..]);
    }
    let _ = std::fs::remove_file(&path);
}

#[test]
fn wideband_recording_of_an_opus_leg_and_a_pcmu_leg() {
    let path = temp_wav("wideband");
    let t0 = Instant::now();
    let mut rec = Recorder::create(
        &path,
        RecorderFormat {
            sample_rate: 48_000,
        },
    )
    .unwrap();
    let mut enc = OpusEncoder::new(48_000, 1, OpusApplication::Voip).unwrap();
    let mut pkts = Vec::new();
    let mut buf = [0u8; MAX_PACKET_BYTES];
    for i in 0..100u32 {
        let frame = tone(440.0, 48_000, u64::from(i) * 960, 960, 12_000.0);
        let n = enc.encode(&frame, &mut buf).unwrap();
        pkts.push(Pkt {
            side: Side::A,
            codec: Codec::Opus,
            seq: i as u16,
            ts: 5_000_000 + i * 960,
            payload: buf[..n].to_vec(),
            arrival: t0 + MS * (20 * i) + jitter(i, 30),
        });
    }
    pkts.extend(g711_stream(
        Side::B,
        Codec::Pcmu,
        1000.0,
        t0,
        100,
        3,
        30,
        |_| true,
    ));
    push_all(&mut rec, pkts);
    let info = rec.finish(t0 + MS * 2000).unwrap();
    assert!(info.duration_ms.abs_diff(2000) <= 40);
    let (rate, left, right) = read_wav(&path);
    assert_eq!(rate, 48_000);
    let body = 24_000..90_000;
    let l440 = amplitude(&left[body.clone()], rate, 440.0);
    let r1k = amplitude(&right[body.clone()], rate, 1000.0);
    assert!(l440 > 5000.0 && l440 > 20.0 * amplitude(&left[body.clone()], rate, 1000.0));
    assert!(r1k > 7000.0 && r1k > 20.0 * amplitude(&right[body.clone()], rate, 440.0));
    // No images of the upsampled 8 kHz leg.
    assert!(amplitude(&right[body], rate, 7000.0) < r1k / 100.0);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn a_timestamp_jump_is_reanchored_by_arrival() {
    let path = temp_wav("jump");
    let t0 = Instant::now();
    let mut rec = Recorder::create(&path, RecorderFormat { sample_rate: 8000 }).unwrap();
    // New SSRC after 2 s: a random timestamp and sequence base.
    let mut pkts = g711_stream(Side::A, Codec::Pcmu, 440.0, t0, 100, 1000, 0, |_| true);
    let mut second = g711_stream(
        Side::A,
        Codec::Pcmu,
        440.0,
        t0 + MS * 2000,
        100,
        0x8765_4321,
        0,
        |_| true,
    );
    for p in &mut second {
        p.seq = p.seq.wrapping_add(30_000);
    }
    pkts.extend(second);
    push_all(&mut rec, pkts);
    let info = rec.finish(t0 + MS * 4000).unwrap();
    assert_eq!(info.duration_ms, 4000);
    assert_eq!(info.dropped_packets, 0);
    let (_, left, _) = read_wav(&path);
    // Continuous audio across the jump: no gap, no overlap.
    for w in left.chunks(160) {
        assert!(rms(w) > 4000.0);
    }
    let _ = std::fs::remove_file(&path);
}

#[test]
fn a_persistent_delay_step_is_reanchored_after_a_few_late_packets() {
    let path = temp_wav("step");
    let t0 = Instant::now();
    let mut rec = Recorder::create(&path, RecorderFormat { sample_rate: 8000 }).unwrap();
    let mut pkts = g711_stream(Side::A, Codec::Pcmu, 440.0, t0, 200, 0, 0, |_| true);
    for p in pkts.iter_mut().skip(100) {
        p.arrival += MS * 300;
    }
    pkts.extend(g711_stream(
        Side::B,
        Codec::Pcmu,
        1000.0,
        t0,
        200,
        0,
        0,
        |_| true,
    ));
    push_all(&mut rec, pkts);
    let info = rec.finish(t0 + MS * 4300).unwrap();
    assert_eq!(info.dropped_packets, LATE_RUN as u64 - 1);
    assert_eq!(info.duration_ms, 4300);
    let (_, left, _) = read_wav(&path);
    // Audio until 2 s, a gap, then audio again at its (new) arrival time.
    assert!(rms(&left[15_000..16_000]) > 4000.0);
    assert_eq!(rms(&left[16_100..18_900]), 0.0);
    assert!(rms(&left[19_200..34_000]) > 4000.0);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn garbage_never_panics_and_is_counted() {
    let path = temp_wav("garbage");
    let t0 = Instant::now() + Duration::from_secs(1);
    let mut rec = Recorder::create(
        &path,
        RecorderFormat {
            sample_rate: 48_000,
        },
    )
    .unwrap();
    let codecs = [
        Codec::Pcmu,
        Codec::Pcma,
        Codec::Opus,
        Codec::TelephoneEvent { rate: 8000 },
    ];
    let mut x = 0x1234_5678u32;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x
    };
    for i in 0..2000u32 {
        let len = (next() % 1400) as usize;
        let payload: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let codec = codecs[(next() % 4) as usize];
        let side = if next() % 2 == 0 { Side::A } else { Side::B };
        // Arrivals mostly forward, sometimes before the origin.
        let arrival = if next() % 50 == 0 {
            t0 - MS * 500
        } else {
            t0 + MS * (i * 5)
        };
        rec.push(side, codec, next() as u16, next(), &payload, arrival)
            .unwrap();
        if i % 300 == 0 {
            rec.pause(arrival).unwrap();
        }
        if i % 300 == 100 {
            rec.resume(arrival).unwrap();
        }
    }
    assert!(rec.dropped_packets() > 0);
    let info = rec.finish(t0 + MS * 10_000).unwrap();
    let (rate, left, right) = read_wav(&info.path);
    assert_eq!(rate, 48_000);
    assert_eq!(left.len(), right.len());
    assert_eq!(left.len() as u64 * 1000 / 48_000, info.duration_ms);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn header_is_kept_current_while_recording() {
    let path = temp_wav("header");
    let t0 = Instant::now();
    let mut rec = Recorder::create(&path, RecorderFormat { sample_rate: 8000 }).unwrap();
    push_all(
        &mut rec,
        g711_stream(Side::A, Codec::Pcmu, 440.0, t0, 400, 0, 0, |_| true),
    );
    // Not finished: the file is already playable up to the last refresh.
    let (_, left, _) = read_wav(&path);
    assert!(left.len() >= 5 * 8000, "{} samples", left.len());
    drop(rec);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn rejects_bad_formats_and_paths() {
    assert!(matches!(
        Recorder::create(
            temp_wav("bad"),
            RecorderFormat {
                sample_rate: 16_000
            }
        ),
        Err(RecorderError::BadSampleRate(16_000))
    ));
    let missing = std::env::temp_dir()
        .join("maskline-no-such-dir")
        .join("x.wav");
    assert!(matches!(
        Recorder::create(missing, RecorderFormat { sample_rate: 8000 }),
        Err(RecorderError::Wav(_))
    ));
}

#[test]
fn recorder_and_transcoder_can_move_to_another_thread() {
    fn assert_send<T: Send>() {}
    assert_send::<Recorder>();
    assert_send::<crate::media::codec::Transcoder>();
    assert_send::<crate::media::stats::RtpStats>();
}

#[test]
fn an_empty_recording_is_a_valid_file() {
    let path = temp_wav("empty");
    let t0 = Instant::now();
    let mut rec = Recorder::create(&path, RecorderFormat { sample_rate: 8000 }).unwrap();
    assert_eq!(rec.path(), path.as_path());
    rec.pause(t0).unwrap();
    rec.pause(t0 + MS * 10).unwrap();
    let info = rec.finish(t0 + MS * 500).unwrap();
    assert_eq!(info.duration_ms, 500);
    let (_, left, right) = read_wav(&path);
    assert!(left.iter().chain(&right).all(|&s| s == 0));
    let _ = std::fs::remove_file(&path);
}
