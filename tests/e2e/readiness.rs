//! Issue 8, operations: `GET /readyz` is 200 while Maskline takes calls and
//! 503 with a JSON reason once a SIGTERM drain has started (new INVITEs get
//! 503 then), while `/healthz` still answers.

use std::time::Duration;

use maskline_e2e::{
    bounded, bridge_call, wait_for, CallEnds, Maskline, Result, StartOptions, PARTY_A, PARTY_B,
};
use reqwest::Method;
use serde_json::Value;

use crate::TEST_LIMIT;

#[tokio::test]
async fn readyz_turns_503_draining_on_sigterm() -> Result<()> {
    bounded(TEST_LIMIT, async {
        let mut ml = Maskline::start(StartOptions {
            extra_toml: "drain_timeout_secs = 3\n".into(),
            ..StartOptions::default()
        })
        .await?;
        let (code, body) = ml.api().request(Method::GET, "/readyz", None).await?;
        assert_eq!(
            (code, &body["status"]),
            (200, &Value::from("ready")),
            "{body}"
        );

        // A live call keeps the drain going long enough to look at it.
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
        let (status, seen) = tokio::join!(ml.stop(), async {
            let body = wait_for(
                "/readyz to say draining",
                Duration::from_secs(5),
                || async {
                    let (code, body) = api.request(Method::GET, "/readyz", None).await?;
                    Ok((code == 503).then_some(body))
                },
            )
            .await?;
            let health = api.healthz().await?;
            call.both_get_bye(Duration::from_secs(10)).await?;
            Ok::<_, maskline_e2e::E2eError>((body, health))
        });
        let (body, health) = seen?;
        assert_eq!(body["status"], "not_ready", "{body}");
        assert_eq!(body["reason"], "draining", "{body}");
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{body}"
        );
        assert_eq!(health, 200, "still alive while draining");
        assert!(status?.success());
        Ok(())
    })
    .await
}
