//! Quick functional run of `relay-load` so the tool does not rot: 2 calls,
//! about 1 s of media. Asserts that the calls were set up, media flowed both
//! ways through the relay and every call was torn down; no timing is
//! asserted.
//!
//! Ports: SIP 25160/25170/25180, engine RTP 41000–41099, generator media
//! from 41100 (distinct from the e2e tests' blocks and from the load tool's
//! defaults).

use std::time::Duration;

use maskline_benches::load::{self, LoadConfig};

#[test]
fn two_calls_relay_media_both_ways() {
    let lo = |port| std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let config = LoadConfig {
        calls: 2,
        media: Duration::from_secs(1),
        pps: 50,
        sip: lo(25160),
        uac: lo(25170),
        trunk: lo(25180),
        rtp_ports: (41000, 41099),
        media_base: 41100,
        gen_sockets: 2,
        engine_threads: 1,
        generator_threads: 1,
        concurrency: 2,
        baseline: Duration::from_millis(200),
        // Exercise the recording path too (its cost is measured with
        // `relay-load --record`, not asserted here).
        record: true,
        rtpengine: None,
    };
    let report = match load::run(&config) {
        Ok(r) => r,
        Err(e) => panic!("relay-load failed to run: {e}"),
    };
    let text = report.to_string();
    println!("{text}");
    assert_eq!(report.calls_set_up, 2, "{text}");
    assert_eq!(report.bridged_events, 2, "{text}");
    for d in [&report.relay.a_to_b, &report.relay.b_to_a] {
        assert!(d.sent > 0 && d.received > 0, "{text}");
        assert_eq!(d.misrouted, 0, "{text}");
    }
    assert!(
        report.engine.a_to_b > 0 && report.engine.b_to_a > 0,
        "{text}"
    );
    assert_eq!(report.calls_torn_down, 2, "{text}");
    assert_eq!(report.b_byes, 2, "{text}");
    assert_eq!(report.hangup_events, 2, "{text}");
    let baseline = report.baseline.as_ref().map(|b| b.received());
    assert!(baseline.is_some_and(|n| n > 0), "{text}");
}
