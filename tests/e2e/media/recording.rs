//! What a recording holds: each party's tone in its own channel, lost
//! packets as silence exactly where they were, silence over a pause.

use std::time::Duration;

use maskline_e2e::media::{send_tone, zero_runs, Tone};
use maskline_e2e::{
    bounded, bridge_call, BridgedCall, CallEnds, E2eError, Maskline, Result, StartOptions, PARTY_A,
    PARTY_B,
};
use reqwest::Method;
use serde_json::{json, Value};
use tokio::time::Instant;

use super::{
    assert_duration_matches, assert_tone, download, live_call_id, recording_ready, samples_in,
    session_with_record, stream_origin, A_HZ, B_HZ, MEDIA_LIMIT, PACKET, WINDOW,
};

/// Most a tone packet may leave after its 20 ms slot.
const MAX_SENDER_LATENESS: Duration = Duration::from_millis(150);

/// A bridged call of a `record: true` session, and its call id.
async fn recorded_call(ml: &Maskline) -> Result<(BridgedCall, String)> {
    let session = session_with_record(ml, true).await?;
    let call = bridge_call(
        ml,
        CallEnds::slot(ml, 0),
        PARTY_A,
        PARTY_B,
        &session.masked_number,
    )
    .await?;
    let id = live_call_id(ml, &session.id).await?;
    Ok((call, id))
}

/// A sends `a_packets` of its tone (except those `a_lost`), B sends
/// `b_packets` of its own, both starting at `start`.
async fn tones(
    call: &BridgedCall,
    start: Instant,
    (a_packets, b_packets): (usize, usize),
    a_lost: impl Fn(usize) -> bool,
) -> Result<()> {
    let (to_a_side, to_b_side) = call.relay_addrs()?;
    let (a, b) = tokio::join!(
        send_tone(
            call.caller_rtp.socket(),
            to_a_side,
            Tone::new(A_HZ),
            a_packets,
            start,
            a_lost
        ),
        send_tone(
            call.callee_rtp.socket(),
            to_b_side,
            Tone::new(B_HZ),
            b_packets,
            start,
            |_| false
        ),
    );
    // The recorder holds 200 ms of jitter; a sender stalled longer than
    // that by the test host would test the host, not Maskline.
    let late = a?.max(b?);
    if late > MAX_SENDER_LATENESS {
        return Err(E2eError::Unexpected(format!(
            "the test host stalled the tone senders by {late:?}: the scenario did not run as designed"
        )));
    }
    Ok(())
}

/// Issue 4 recording: A's 440 Hz tone is in the left channel only, B's
/// 1000 Hz tone in the right only, for the ~2 s they were sent, and the
/// file lasts as long as the call was answered (± 40 ms).
#[tokio::test]
async fn caller_is_left_callee_is_right_and_the_length_is_the_answered_time() -> Result<()> {
    bounded(MEDIA_LIMIT, async {
        let ml = Maskline::start(StartOptions::default()).await?;
        let (mut call, id) = recorded_call(&ml).await?;
        let start = Instant::now() + Duration::from_millis(20);
        tones(&call, start, (100, 100), |_| false).await?;
        call.caller_hangs_up().await?;
        let ended = recording_ready(&ml, &id).await?;
        let rec = download(&ml, &id).await?;
        assert_duration_matches(&rec, &ended);

        let (l0, l1) = stream_origin(&rec.left, "the left channel");
        let (r0, r1) = stream_origin(&rec.right, "the right channel");
        for (what, from, to) in [("left", l0, l1), ("right", r0, r1)] {
            assert!(
                to - from >= samples_in(Duration::from_millis(1900)),
                "{what}: only {} samples of tone, 2 s were sent",
                to - from
            );
        }
        assert_tone(&rec.left, l0 + PACKET, l1, A_HZ, B_HZ, "left (caller)");
        assert_tone(&rec.right, r0 + PACKET, r1, B_HZ, A_HZ, "right (callee)");
        Ok(())
    })
    .await
}

/// Issue 4 recording: 10% loss on A's leg (every 10th packet never sent)
/// leaves 20 ms of silence at exactly each lost packet's place in the left
/// channel; what follows a gap is not shifted (the last sample is where
/// 100 packets end), the right channel has no gap, and the file still
/// lasts the answered time.
#[tokio::test]
async fn lost_packets_are_silence_in_place_not_a_shift() -> Result<()> {
    bounded(MEDIA_LIMIT, async {
        let ml = Maskline::start(StartOptions::default()).await?;
        let (mut call, id) = recorded_call(&ml).await?;
        let lost = |k: usize| k % 10 == 5;
        let start = Instant::now() + Duration::from_millis(20);
        tones(&call, start, (100, 100), lost).await?;
        call.caller_hangs_up().await?;
        let ended = recording_ready(&ml, &id).await?;
        let rec = download(&ml, &id).await?;
        assert_duration_matches(&rec, &ended);

        // Packet k of A's stream is at origin + 160k. Its tone starts (and
        // each lost packet's slot begins) on a zero sample.
        let (origin, last) = stream_origin(&rec.left, "the left channel");
        assert_eq!(
            last,
            origin + 100 * PACKET - 1,
            "the left channel's tone must end where 100 packets from its start end"
        );
        let region = rec.left.get(origin..=last).unwrap_or_default();
        let gaps: Vec<(usize, usize)> = zero_runs(region, PACKET / 2)
            .into_iter()
            .map(|(s, e)| (s + origin, e + origin))
            .collect();
        let expected: Vec<usize> = (0..100)
            .filter(|&k| lost(k))
            .map(|k| origin + k * PACKET)
            .collect();
        assert_eq!(
            gaps.len(),
            expected.len(),
            "one silence per lost packet; gaps {gaps:?}, expected at {expected:?}"
        );
        for (&(s, e), &want) in gaps.iter().zip(&expected) {
            assert!(
                s.abs_diff(want) <= 1 && (e - s).abs_diff(PACKET) <= 1,
                "a lost packet's silence is at {s}..{e}, expected {want}..{}",
                want + PACKET
            );
        }
        // Between the gaps the tone is intact.
        for pair in expected.windows(2) {
            if let [a, b] = pair {
                assert_tone(
                    &rec.left,
                    a + 2 * PACKET,
                    *b,
                    A_HZ,
                    B_HZ,
                    "left between gaps",
                );
            }
        }

        let (r0, r1) = stream_origin(&rec.right, "the right channel");
        let right = rec.right.get(r0..=r1).unwrap_or_default();
        assert_eq!(
            zero_runs(right, PACKET / 2),
            vec![],
            "B lost nothing: its channel has no gap"
        );
        assert_eq!(r1, r0 + 100 * PACKET - 1, "B's 100 packets, end to end");
        Ok(())
    })
    .await
}

/// `POST /v1/calls/{id}/recording/{action}` → 200 with `recording` =
/// `state`; returns when the request was sent and when it was answered.
async fn pause_or_resume(
    ml: &Maskline,
    id: &str,
    action: &str,
    state: &str,
) -> Result<(Instant, Instant)> {
    let sent = Instant::now();
    let body = ml
        .api()
        .expect_status(
            Method::POST,
            &format!("/v1/calls/{id}/recording/{action}"),
            Some(&json!({})),
            200,
        )
        .await?;
    let answered = Instant::now();
    assert_eq!(body, json!({ "recording": state }), "{action}");
    Ok((sent, answered))
}

/// Issue 4 recording: pause at ~1 s and resume at ~2 s of a 3 s call
/// through the API. Both channels are silent over the same span, which
/// starts when the pause was asked and ends when the resume was (within a
/// packet); the tones are there right before and right after.
#[tokio::test]
async fn pause_and_resume_leave_silence_exactly_where_paused() -> Result<()> {
    bounded(MEDIA_LIMIT, async {
        let ml = Maskline::start(StartOptions::default()).await?;
        let (mut call, id) = recorded_call(&ml).await?;
        let start = Instant::now() + Duration::from_millis(20);
        let control = async {
            tokio::time::sleep_until(start + Duration::from_millis(1000)).await;
            let pause = pause_or_resume(&ml, &id, "pause", "paused").await?;
            // Pausing twice is harmless.
            pause_or_resume(&ml, &id, "pause", "paused").await?;
            tokio::time::sleep_until(start + Duration::from_millis(2000)).await;
            let resume = pause_or_resume(&ml, &id, "resume", "recording").await?;
            Ok::<_, E2eError>((pause, resume))
        };
        let (sent, times) = tokio::join!(tones(&call, start, (150, 150), |_| false), control);
        sent?;
        let ((p_sent, p_done), (r_sent, r_done)) = times?;
        call.caller_hangs_up().await?;
        let ended = recording_ready(&ml, &id).await?;
        let rec = download(&ml, &id).await?;
        assert_duration_matches(&rec, &ended);

        // A's packet 0 was sent at `start` and sits at `origin`; the pause
        // began between the request and its answer.
        let (origin, last) = stream_origin(&rec.left, "the left channel");
        let at = |t: Instant| origin + samples_in(t.saturating_duration_since(start));
        let pause_window = (at(p_sent).saturating_sub(PACKET), at(p_done) + PACKET);
        let resume_window = (at(r_sent).saturating_sub(PACKET), at(r_done) + PACKET);

        let long = samples_in(Duration::from_millis(400));
        let left = rec.left.get(origin..=last).unwrap_or_default();
        let runs = zero_runs(left, long);
        let [(s, e)] = runs.as_slice() else {
            panic!("want one long silence in the left channel, got {runs:?} (origin {origin})");
        };
        let (s, e) = (s + origin, e + origin);
        assert!(
            (pause_window.0..=pause_window.1).contains(&s),
            "the silence starts at {s}, the pause was asked in {pause_window:?}"
        );
        // The right channel falls silent at the same sample (± a tone
        // sample that is zero by itself). Each channel comes back within
        // a packet of the resume: the packet that straddles it arrives
        // while still paused and is dropped, so up to 20 ms after the
        // resume may be silent too, differently on each side.
        let (r0, r1) = stream_origin(&rec.right, "the right channel");
        let right = rec.right.get(r0..=r1).unwrap_or_default();
        let right_runs = zero_runs(right, long);
        let [(s2, e2)] = right_runs.as_slice() else {
            panic!("want one long silence in the right channel, got {right_runs:?} (origin {r0})");
        };
        let (s2, e2) = (s2 + r0, e2 + r0);
        assert!(
            s2.abs_diff(s) <= 2,
            "the pause silences both channels at once: left from {s}, right from {s2}"
        );
        for (side, end) in [("left", e), ("right", e2)] {
            assert!(
                (resume_window.0..=resume_window.1).contains(&end),
                "the {side} silence ends at {end}, the resume was asked in {resume_window:?}"
            );
        }
        assert!(
            e.abs_diff(e2) <= PACKET + 2,
            "both channels resume within a packet: left at {e}, right at {e2}"
        );
        let e = e.max(e2);
        // Tone right before the pause and right after the resume.
        let before = s.saturating_sub(PACKET + WINDOW);
        assert_tone(
            &rec.left,
            before,
            s - PACKET,
            A_HZ,
            B_HZ,
            "left before the pause",
        );
        assert_tone(
            &rec.right,
            before,
            s - PACKET,
            B_HZ,
            A_HZ,
            "right before the pause",
        );
        let after = e + PACKET;
        assert_tone(
            &rec.left,
            after,
            after + WINDOW,
            A_HZ,
            B_HZ,
            "left after the resume",
        );
        assert_tone(
            &rec.right,
            after,
            after + WINDOW,
            B_HZ,
            A_HZ,
            "right after the resume",
        );
        // Nothing else is missing.
        assert_eq!(
            zero_runs(left, PACKET / 2).len(),
            1,
            "only the pause is silent on the left"
        );
        let ended_state = ended.get("state").and_then(Value::as_str);
        assert_eq!(ended_state, Some("completed"), "{ended}");
        Ok(())
    })
    .await
}
