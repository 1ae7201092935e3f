//! Issue item 8: open sessions survive a restart and stay routable.

use std::time::Duration;

use maskline_e2e::{
    bounded, bridge_call, wait_for, CallEnds, InviteSpec, Maskline, Result, SipPeer, StartOptions,
    PARTY_A, PARTY_B, WAIT,
};
use serde_json::Value;

use crate::{assert_masked_outbound_leg, TEST_LIMIT};

#[tokio::test]
async fn restart_keeps_open_sessions_routable() -> Result<()> {
    bounded(TEST_LIMIT, async {
        let mut ml = Maskline::start(StartOptions::default()).await?;
        let session = ml.api().create_session(PARTY_A, PARTY_B, None).await?;
        let status = ml.stop().await?;
        assert!(
            status.success(),
            "SIGTERM should end maskline cleanly, got {status}"
        );
        ml.start_again().await?;

        let s = ml.api().get_session(&session.id).await?;
        assert_eq!(s.get("state").and_then(Value::as_str), Some("open"), "{s}");
        assert_eq!(
            s.get("masked_number").and_then(Value::as_str),
            Some(session.masked_number.as_str()),
            "{s}"
        );
        let mut call = bridge_call(
            &ml,
            CallEnds::slot(&ml, 0),
            PARTY_A,
            PARTY_B,
            &session.masked_number,
        )
        .await?;
        assert_masked_outbound_leg(&call, &session.masked_number, PARTY_A, PARTY_B);
        call.exchange_rtp().await?;
        call.caller_hangs_up().await
    })
    .await
}

/// SIGTERM with a call up drains: new INVITEs get 503, the live call may go
/// on for `[calls] drain_timeout_secs`, then both of its legs get a BYE and
/// Maskline exits cleanly.
#[tokio::test]
async fn sigterm_drains_then_hangs_up_live_calls() -> Result<()> {
    bounded(TEST_LIMIT, async {
        let mut ml = Maskline::start(StartOptions {
            extra_toml: "drain_timeout_secs = 2\n".into(),
            ..StartOptions::default()
        })
        .await?;
        let live = ml.api().create_session(PARTY_A, PARTY_B, None).await?;
        let other = ml
            .api()
            .create_session("+14155550177", "+14155550178", None)
            .await?;
        let mut call = bridge_call(
            &ml,
            CallEnds::slot(&ml, 0),
            PARTY_A,
            PARTY_B,
            &live.masked_number,
        )
        .await?;
        let late = CallEnds::slot(&ml, 1);
        let (sip, log) = (ml.sip_addr(), ml.dir().join("maskline.log"));
        let lo = |port| std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let started = std::time::Instant::now();
        let (status, checks) = tokio::join!(ml.stop(), async {
            // Wait (bounded) until Maskline says it is draining.
            wait_for("the drain to start", Duration::from_secs(5), || async {
                let draining =
                    std::fs::read_to_string(&log).is_ok_and(|l| l.contains("draining live calls"));
                Ok(draining.then_some(()))
            })
            .await?;
            let mut peer = SipPeer::bind(lo(late.caller_sip), sip).await?;
            let inv = peer
                .invite(&InviteSpec {
                    dialled: other.masked_number.clone(),
                    caller: "+14155550177".into(),
                    rtp: lo(late.caller_rtp),
                })
                .await?;
            let resp = peer.final_response(&inv, WAIT).await?;
            assert_eq!(
                resp.status(),
                Some(503),
                "a new call while draining: {resp:?}"
            );
            call.both_get_bye(Duration::from_secs(10)).await
        });
        checks?;
        assert!(
            started.elapsed() >= Duration::from_millis(1900),
            "the live call got its drain time"
        );
        let status = status?;
        assert!(
            status.success(),
            "drained SIGTERM should exit cleanly, got {status}"
        );
        Ok(())
    })
    .await
}

/// kill -9 during a call, then restart on the same data: the call from
/// before is marked ended by the system, the session is open again (not
/// active, not completed), keeps its masked number (no number allocated
/// twice: a new session gets another one) and is routable.
#[tokio::test]
async fn kill_9_mid_call_then_restart_recovers() -> Result<()> {
    bounded(TEST_LIMIT, async {
        let mut ml = Maskline::start(StartOptions::default()).await?;
        let session = ml.api().create_session(PARTY_A, PARTY_B, None).await?;
        let call = bridge_call(
            &ml,
            CallEnds::slot(&ml, 0),
            PARTY_A,
            PARTY_B,
            &session.masked_number,
        )
        .await?;
        // Wait until the store has the call as bridged (what a crash finds).
        let path = format!("/v1/sessions/{}", session.id);
        let call_id = wait_for(
            "the call to be stored as bridged",
            Duration::from_secs(5),
            || async {
                let s = ml.api().get_session(&session.id).await?;
                Ok(s.get("calls")
                    .and_then(Value::as_array)
                    .and_then(|c| c.first())
                    .filter(|c| c.get("state").and_then(Value::as_str) == Some("bridged"))
                    .and_then(|c| c.get("id").and_then(Value::as_str).map(str::to_string)))
            },
        )
        .await?;
        let status = ml.kill9()?;
        assert!(!status.success(), "SIGKILL is not a clean exit: {status}");
        drop(call);
        ml.start_again().await?;

        let (code, s) = ml.api().request(reqwest::Method::GET, &path, None).await?;
        assert_eq!(code, 200, "{s}");
        assert_eq!(s.get("state").and_then(Value::as_str), Some("open"), "{s}");
        assert_eq!(s.get("active_call_id"), Some(&Value::Null), "{s}");
        assert_eq!(
            s.get("masked_number").and_then(Value::as_str),
            Some(session.masked_number.as_str())
        );
        let c = ml
            .api()
            .request(reqwest::Method::GET, &format!("/v1/calls/{call_id}"), None)
            .await?
            .1;
        assert_eq!(
            c.get("hangup_by").and_then(Value::as_str),
            Some("system"),
            "{c}"
        );
        assert!(c.get("ended_at").is_some_and(|e| !e.is_null()), "{c}");
        let other = ml
            .api()
            .create_session("+14155550188", "+14155550189", None)
            .await?;
        assert_ne!(
            other.masked_number, session.masked_number,
            "a held number is not allocated twice"
        );
        // Still routable after the crash.
        let mut again = bridge_call(
            &ml,
            CallEnds::slot(&ml, 1),
            PARTY_A,
            PARTY_B,
            &session.masked_number,
        )
        .await?;
        again.exchange_rtp().await?;
        again.caller_hangs_up().await
    })
    .await
}
