//! Recording pause/resume on any node acts on the node that carries the
//! call (its recorder writes the file).

use std::time::Duration;

use maskline_e2e::media::{
    nonzero_span, parse_stereo_wav, send_tone, zero_runs, Stereo, Tone, PCMU_RATE,
};
use maskline_e2e::{
    bounded, wait_for, BridgedCall, E2eError, Maskline, Result, API_KEY, PARTY_A, PARTY_B,
};
use reqwest::Method;
use serde_json::{json, Value};
use tokio::time::Instant;

use super::{active_call_id, call_through, cluster_db, get, two_nodes};
use crate::TEST_LIMIT;

/// Samples in one 20 ms packet at 8 kHz.
const PACKET: usize = 160;

/// `POST /v1/calls/{id}/recording/{action}` on `node` → 200 with
/// `{"recording": state}`.
async fn pause_or_resume(node: &Maskline, id: &str, action: &str, state: &str) -> Result<()> {
    let body = node
        .api()
        .expect_status(
            Method::POST,
            &format!("/v1/calls/{id}/recording/{action}"),
            Some(&json!({})),
            200,
        )
        .await?;
    assert_eq!(body, json!({ "recording": state }), "{action}");
    Ok(())
}

/// Both parties send their tone for `packets` 20 ms packets from `start`.
async fn tones(call: &BridgedCall, start: Instant, packets: usize) -> Result<()> {
    let (to_a_side, to_b_side) = call.relay_addrs()?;
    let (a, b) = tokio::join!(
        send_tone(
            call.caller_rtp.socket(),
            to_a_side,
            Tone::new(440.0),
            packets,
            start,
            |_| false
        ),
        send_tone(
            call.callee_rtp.socket(),
            to_b_side,
            Tone::new(1000.0),
            packets,
            start,
            |_| false
        ),
    );
    a?;
    b?;
    Ok(())
}

/// The recording of `call_id`, downloaded from `node` (the one that wrote
/// it) once ready.
async fn recording(node: &Maskline, call_id: &str) -> Result<Stereo> {
    wait_for("the recording", Duration::from_secs(10), || async {
        let c = get(node, &format!("/v1/calls/{call_id}")).await?;
        Ok(c.get("recording_url")
            .is_some_and(Value::is_string)
            .then_some(()))
    })
    .await?;
    let url = format!("{}/v1/calls/{call_id}/recording", node.api().base());
    let http = |source| E2eError::Http {
        context: format!("GET {url}"),
        source,
    };
    let resp = reqwest::Client::new()
        .get(&url)
        .header("X-API-Key", API_KEY)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map_err(http)?;
    let status = resp.status().as_u16();
    let body = resp.bytes().await.map_err(http)?;
    if status != 200 {
        return Err(E2eError::Unexpected(format!("GET {url}: {status}")));
    }
    let rec = parse_stereo_wav(&body)
        .map_err(|e| E2eError::Unexpected(format!("not a stereo WAV: {e}")))?;
    assert_eq!(rec.rate, PCMU_RATE);
    Ok(rec)
}

/// Gap 3 of issue #9: pause and resume sent to node A for a recorded call
/// bridged on node B are forwarded to B: each answers 200 with the new
/// state, and B's recording is silent in both channels over the paused
/// span only (tone before the pause and after the resume).
#[tokio::test]
async fn pause_and_resume_on_a_act_on_a_recording_on_b() -> Result<()> {
    bounded(TEST_LIMIT, async {
        let db = cluster_db()?;
        let (a, b) = two_nodes(&db).await?;
        let created = a
            .api()
            .expect_status(
                Method::POST,
                "/v1/sessions",
                Some(&json!({"party_a": PARTY_A, "party_b": PARTY_B, "record": true})),
                201,
            )
            .await?;
        let session_id = created
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let masked = created
            .get("masked_number")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let mut call = call_through(&b, masked).await?;
        let call_id = active_call_id(&a, session_id).await?;

        // 2 s of tone each way; paused from ~0.6 s to ~1.4 s through A.
        let start = Instant::now() + Duration::from_millis(20);
        let control = async {
            tokio::time::sleep_until(start + Duration::from_millis(600)).await;
            pause_or_resume(&a, &call_id, "pause", "paused").await?;
            tokio::time::sleep_until(start + Duration::from_millis(1400)).await;
            pause_or_resume(&a, &call_id, "resume", "recording").await
        };
        let (sent, controlled) = tokio::join!(tones(&call, start, 100), control);
        sent?;
        controlled?;
        call.caller_hangs_up().await?;

        let rec = recording(&b, &call_id).await?;
        // Within each channel's tone (the call may be silent before the
        // first packet and after the last): one long silence, the pause.
        let long = 20 * PACKET; // 400 ms
        for (side, samples) in [("left", &rec.left), ("right", &rec.right)] {
            let Some((first, last)) = nonzero_span(samples) else {
                panic!("{side}: the recording is all silence");
            };
            let tone = samples.get(first..=last).unwrap_or_default();
            let runs = zero_runs(tone, long);
            let [(s, e)] = runs.as_slice() else {
                panic!("{side}: want one long silence (the pause), got {runs:?}");
            };
            assert!(
                *s >= 20 * PACKET,
                "{side}: ~0.6 s of tone before the pause, the silence starts at {s}"
            );
            assert!(
                tone.len() - e >= 20 * PACKET,
                "{side}: ~0.6 s of tone after the resume, the silence ends at {e} of {}",
                tone.len()
            );
            assert!(
                (30 * PACKET..=50 * PACKET).contains(&(e - s)),
                "{side}: the pause lasted ~0.8 s, the silence {} samples",
                e - s
            );
        }
        Ok(())
    })
    .await
}
