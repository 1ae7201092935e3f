//! Session lifecycle seen from SIP: completing a session releases its
//! number and hangs up its live call (issue item 7); the TTL expiring
//! during a call does the same (item 6).

use std::time::Duration;

use maskline_e2e::{
    bounded, bridge_call, dial, wait_for, CallEnds, Maskline, Result, StartOptions, PARTY_A,
    PARTY_B, WAIT,
};
use serde_json::Value;

use crate::{TEST_LIMIT, TTL_TEST_LIMIT};

fn field<'a>(v: &'a Value, name: &str) -> Option<&'a str> {
    v.get(name).and_then(Value::as_str)
}

/// Polls the session until it is completed with no call left active (the
/// call's end is recorded just after the BYEs go out) and returns it.
async fn completed(ml: &Maskline, id: &str) -> Result<Value> {
    wait_for(
        "the session to be completed with no active call",
        Duration::from_secs(10),
        || async {
            let s = ml.api().get_session(id).await?;
            let done = field(&s, "state") == Some("completed")
                && s.get("active_call_id").is_some_and(Value::is_null);
            Ok(done.then_some(s))
        },
    )
    .await
}

#[tokio::test]
async fn complete_releases_the_number_and_later_invites_get_404() -> Result<()> {
    bounded(TEST_LIMIT, async {
        let ml = Maskline::start(StartOptions::default()).await?;
        let session = ml.api().create_session(PARTY_A, PARTY_B, None).await?;
        let done = ml.api().complete_session(&session.id).await?;
        assert_eq!(field(&done, "state"), Some("completed"), "{done}");
        assert_eq!(field(&done, "completion_reason"), Some("closed"), "{done}");
        let again = ml.api().complete_session(&session.id).await?;
        assert_eq!(
            field(&again, "state"),
            Some("completed"),
            "idempotent: {again}"
        );

        let p = ml.ports();
        let (mut caller, inv) =
            dial(&ml, p.peer(0), PARTY_A, &session.masked_number, p.rtp(0)).await?;
        let resp = caller.final_response(&inv, WAIT).await?;
        assert_eq!(resp.status(), Some(404), "{}", resp.raw_text());
        Ok(())
    })
    .await
}

#[tokio::test]
async fn complete_during_a_live_call_hangs_up_both_legs() -> Result<()> {
    bounded(TEST_LIMIT, async {
        let ml = Maskline::start(StartOptions::default()).await?;
        let session = ml.api().create_session(PARTY_A, PARTY_B, None).await?;
        let mut call = bridge_call(
            &ml,
            CallEnds::slot(&ml, 0),
            PARTY_A,
            PARTY_B,
            &session.masked_number,
        )
        .await?;
        let api = ml.api().clone();
        let id = session.id.clone();
        let (done, byes) = tokio::join!(api.complete_session(&id), call.both_get_bye(WAIT));
        done?;
        byes?;
        let s = completed(&ml, &session.id).await?;
        assert_eq!(field(&s, "completion_reason"), Some("closed"), "{s}");
        Ok(())
    })
    .await
}

/// TTL is in whole minutes in the API and the suite has no test hook to
/// shorten it, so this test really waits: `ttl_minutes: 1`, a call set up
/// right away, then up to 75 s for Maskline's BYE on both legs. It runs in
/// parallel with the others, costing about 60 s of wall time.
#[tokio::test]
async fn ttl_expiry_mid_call_hangs_up_and_completes_the_session() -> Result<()> {
    bounded(TTL_TEST_LIMIT, async {
        let ml = Maskline::start(StartOptions::default()).await?;
        let session = ml.api().create_session(PARTY_A, PARTY_B, Some(1)).await?;
        let mut call = bridge_call(
            &ml,
            CallEnds::slot(&ml, 0),
            PARTY_A,
            PARTY_B,
            &session.masked_number,
        )
        .await?;
        call.both_get_bye(Duration::from_secs(75)).await?;
        let s = completed(&ml, &session.id).await?;
        assert_eq!(field(&s, "completion_reason"), Some("ttl_expired"), "{s}");
        Ok(())
    })
    .await
}
