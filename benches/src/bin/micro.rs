//! `micro`: micro-benchmarks of the engine's per-message and per-packet
//! functions, timed with `std::time::Instant` (no criterion: the build
//! stays lean). Each benchmark is calibrated to ~100 ms per round, run for
//! five rounds, and reported as ns/op (best and median round).
//!
//! `cargo run --release -p maskline-benches --bin micro [FILTER]`

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

use maskline_engine::media::rtp::is_rtp;
use maskline_engine::sdp::{self, RewriteParams};
use maskline_engine::sip::message;
use maskline_engine::{Route, RouteTable};

const ROUND: Duration = Duration::from_millis(100);
const ROUNDS: usize = 5;
const ROUTES: usize = 10_000;

const SDP_OFFER: &str = "v=0\r\n\
o=- 1815849779 3044474483 IN IP4 192.168.1.20\r\n\
s=-\r\n\
c=IN IP4 192.168.1.20\r\n\
t=0 0\r\n\
a=tool:baresip 3.10.1\r\n\
m=audio 10018 RTP/AVP 96 0 8 101\r\n\
b=AS:96\r\n\
a=rtpmap:96 opus/48000/2\r\n\
a=fmtp:96 stereo=1;sprop-stereo=1;useinbandfec=1\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n\
a=rtcp:10019\r\n\
a=sendrecv\r\n\
a=ssrc:3344812591 cname:4b9f1a3c-alice@192.168.1.20\r\n\
a=rtcp-mux\r\n\
a=ptime:20\r\n";

fn invite() -> String {
    format!(
        "INVITE sip:+15550000001@203.0.113.10:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK776asdhds;rport\r\n\
Max-Forwards: 70\r\n\
To: <sip:+15550000001@203.0.113.10>\r\n\
From: \"Alice\" <sip:+14155550101@198.51.100.7>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@198.51.100.7\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:+14155550101@198.51.100.7:5060>\r\n\
P-Asserted-Identity: <sip:+14155550101@carrier.example>\r\n\
Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE\r\n\
Supported: timer, 100rel\r\n\
User-Agent: Carrier SBC 4.2\r\n\
Content-Type: application/sdp\r\n\
Content-Length: {}\r\n\r\n{SDP_OFFER}",
        SDP_OFFER.len()
    )
}

/// ns/op of `f` (which does `batch` operations per call): best and median
/// of [`ROUNDS`] rounds of about [`ROUND`] each.
fn time(batch: u64, mut f: impl FnMut()) -> (f64, f64) {
    // Calibrate: double the iteration count until a round takes ≥ 10 ms.
    let mut iters: u64 = 1;
    loop {
        let start = Instant::now();
        for _ in 0..iters {
            f();
        }
        let took = start.elapsed();
        if took >= Duration::from_millis(10) {
            let scale = ROUND.as_secs_f64() / took.as_secs_f64();
            iters = ((iters as f64 * scale) as u64).max(1);
            break;
        }
        iters = iters.saturating_mul(2);
    }
    let mut per_op: Vec<f64> = (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..iters {
                f();
            }
            start.elapsed().as_nanos() as f64 / (iters * batch) as f64
        })
        .collect();
    per_op.sort_by(f64::total_cmp);
    let best = per_op.first().copied().unwrap_or(f64::NAN);
    let median = per_op.get(ROUNDS / 2).copied().unwrap_or(f64::NAN);
    (best, median)
}

fn report(name: &str, what: &str, (best, median): (f64, f64)) {
    println!("{name:<22} {best:>10.1} {median:>10.1}   {what}");
}

fn main() -> ExitCode {
    let filter = std::env::args().nth(1).unwrap_or_default();
    if filter == "-h" || filter == "--help" {
        println!("usage: micro [FILTER]   (runs the benchmarks whose name contains FILTER)");
        return ExitCode::SUCCESS;
    }
    let wanted = |name: &str| filter.is_empty() || name.contains(filter.as_str());
    let invite = invite();
    if message::parse(invite.as_bytes()).is_err()
        || sdp::rewrite(SDP_OFFER.as_bytes(), &params()).is_err()
    {
        eprintln!("micro: the sample INVITE or SDP does not parse; fix the sample");
        return ExitCode::FAILURE;
    }
    println!(
        "{:<22} {:>10} {:>10}   what",
        "benchmark", "best ns/op", "median"
    );

    if wanted("sip_parse_invite") {
        let bytes = invite.as_bytes();
        let r = time(1, || {
            let _ = black_box(message::parse(black_box(bytes)));
        });
        report(
            "sip_parse_invite",
            &format!("message::parse of a {}-byte INVITE with SDP", bytes.len()),
            r,
        );
    }

    if wanted("route_decide") {
        let table = RouteTable::new();
        let expires_at = SystemTime::now() + Duration::from_secs(3600);
        for i in 0..ROUTES {
            table.upsert(Route {
                session_id: format!("ses_{i}"),
                tenant_id: "ten_1".into(),
                masked: format!("+1555{i:07}"),
                party_a: format!("+1415{i:07}"),
                party_b: format!("+1416{i:07}"),
                record: false,
                control: false,
                expires_at,
            });
        }
        // Precomputed keys, so the loop times only the decision.
        let keys: Vec<(String, String)> = (0..ROUTES)
            .map(|i| {
                (
                    format!("1555{:07}", (i * 7919) % ROUTES),
                    format!("+1415{:07}", (i * 7919) % ROUTES),
                )
            })
            .collect();
        let mut k = 0usize;
        let r = time(1, || {
            let (dialled, caller) = &keys[k % ROUTES];
            let _ = black_box(table.decide(black_box(dialled), black_box(caller)));
            k = k.wrapping_add(1);
        });
        report(
            "route_decide",
            &format!("RouteTable::decide over {ROUTES} routes (hit, caller = A)"),
            r,
        );
    }

    if wanted("sdp_rewrite") {
        let p = params();
        let r = time(1, || {
            let _ = black_box(sdp::rewrite(black_box(SDP_OFFER.as_bytes()), &p));
        });
        report(
            "sdp_rewrite",
            &format!("sdp::rewrite of a {}-byte baresip offer", SDP_OFFER.len()),
            r,
        );
    }

    if wanted("sdp_remote_media") {
        let r = time(1, || {
            let _ = black_box(sdp::remote_media(black_box(SDP_OFFER.as_bytes())));
        });
        report("sdp_remote_media", "sdp::remote_media of the same offer", r);
    }

    if wanted("rtp_is_rtp") {
        let mut packet = [0xFFu8; 172];
        packet[..12].copy_from_slice(&[0x80, 0, 0, 1, 0, 0, 0, 160, 0xde, 0xad, 0xbe, 0xef]);
        const BATCH: u64 = 1000;
        let r = time(BATCH, || {
            for _ in 0..BATCH {
                black_box(is_rtp(black_box(&packet)));
            }
        });
        report(
            "rtp_is_rtp",
            "media::rtp::is_rtp on a 172-byte PCMU packet",
            r,
        );
    }

    type FloorFn = fn(Duration) -> std::io::Result<maskline_benches::floor::Floor>;
    let floors: [(&str, FloorFn, &str); 2] = [
        (
            "udp_forward_floor",
            maskline_benches::floor::udp_forward_floor,
            "a bare recv_from + send_to forwarder",
        ),
        (
            "udp_forward_connected",
            maskline_benches::floor::udp_forward_floor_connected,
            "the same forwarder on connected sockets (recv + send)",
        ),
    ];
    for (name, floor, what) in floors {
        if !wanted(name) {
            continue;
        }
        match floor(Duration::from_secs(2)) {
            Ok(f) => println!(
                "{:<22} {:>10.0} {:>10}   CPU ns per packet of {what} on loopback \
({} packets, {:.0} packets/s): the floor of a 2-syscall relay",
                name,
                f.us_per_packet * 1000.0,
                "-",
                f.forwarded,
                f.pps
            ),
            Err(e) => eprintln!("{name}: {e}"),
        }
    }
    ExitCode::SUCCESS
}

fn params() -> RewriteParams {
    RewriteParams {
        local_ip: IpAddr::V4(Ipv4Addr::new(203, 0, 113, 10)),
        rtp_port: 20000,
        session_id: 42,
        session_version: 1,
    }
}
