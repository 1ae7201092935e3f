//! Issue 8, faults: webhook deliveries pending when Maskline is killed with
//! SIGKILL (no drain, no cleanup) are delivered after a restart, each with
//! the `webhook-id` of its first attempt, signed (checked by PyPI's
//! `standardwebhooks` in `tests/webhooks/receiver.py`), and none twice.

use std::collections::BTreeMap;
use std::time::Duration;

use maskline_e2e::{bounded, wait_for, Maskline, Result, StartOptions, WebhookReceiver};
use reqwest::Method;
use serde_json::{json, Value};

/// Sessions created before the crash, each with a `session.created` event.
const SESSIONS: usize = 3;

#[tokio::test]
async fn deliveries_pending_at_a_kill_9_are_delivered_after_restart() -> Result<()> {
    bounded(Duration::from_secs(60), async {
        // First attempt at once, the retry 3 s later: the kill lands
        // between the two.
        let mut ml = Maskline::start(StartOptions {
            extra_toml: "\n[webhooks]\nretry_schedule_secs = [0, 3]\ntimeout_secs = 5\n".into(),
            ..StartOptions::default()
        })
        .await?;
        let rx = WebhookReceiver::start(ml.dir(), 1).await?;
        let body = ml
            .api()
            .expect_status(
                Method::PUT,
                "/v1/webhook",
                Some(&json!({ "url": rx.url() })),
                200,
            )
            .await?;
        rx.set_secret(body["secret"].as_str().unwrap_or_default())?;

        let parties = [
            ("+14155550111", "+14155550112"),
            ("+14155550121", "+14155550122"),
            ("+14155550131", "+14155550132"),
        ];
        for (a, b) in parties.iter().take(SESSIONS) {
            ml.api().create_session(a, b, None).await?;
        }
        // Every event failed once at the receiver, and Maskline has stored
        // each failure with a retry due: the deliveries are pending.
        let first = wait_for(
            "a failed first attempt of every event, recorded by Maskline",
            Duration::from_secs(15),
            || async {
                let seen = rx.entries()?;
                let list = ml
                    .api()
                    .expect_status(Method::GET, "/v1/webhook/deliveries?limit=100", None, 200)
                    .await?;
                let rows = list["data"].as_array().cloned().unwrap_or_default();
                let retrying = rows.iter().filter(|r| r["outcome"] == "retry").count();
                Ok((seen.len() == SESSIONS && retrying == SESSIONS).then_some(seen))
            },
        )
        .await?;
        assert!(
            first
                .iter()
                .all(|e| e["status"] == 500 && e["attempt"] == 1),
            "{first:?}"
        );
        assert!(first.iter().all(|e| e["verified"] == true), "{first:?}");

        let status = ml.kill9()?;
        assert!(!status.success(), "SIGKILL is not a clean exit: {status}");
        // Nothing was delivered before the kill: what arrives from now on is
        // the restarted process working off the durable outbox.
        let before_restart = rx.entries()?;
        assert!(
            before_restart.iter().all(|e| e["status"] == 500),
            "a retry ran before the kill; the test proves nothing: {before_restart:?}"
        );
        ml.start_again().await?;

        // After the restart every pending delivery comes again, under its
        // first webhook-id, and is accepted.
        let ids: Vec<String> = first
            .iter()
            .map(|e| e["webhook_id"].as_str().unwrap_or_default().to_string())
            .collect();
        let entries = wait_for(
            "every pending delivery after the restart",
            Duration::from_secs(20),
            || async {
                let entries = rx.entries()?;
                let delivered = ids.iter().all(|id| {
                    entries
                        .iter()
                        .any(|e| e["webhook_id"] == id.as_str() && e["status"] == 200)
                });
                Ok(delivered.then_some(entries))
            },
        )
        .await?;
        let mut by_id: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
        for e in &entries {
            by_id
                .entry(e["webhook_id"].as_str().unwrap_or_default().to_string())
                .or_default()
                .push(e);
        }
        assert_eq!(
            by_id.len(),
            SESSIONS,
            "no delivery under a new webhook-id: {entries:?}"
        );
        for (id, hits) in &by_id {
            let statuses: Vec<i64> = hits.iter().filter_map(|h| h["status"].as_i64()).collect();
            assert_eq!(statuses, [500, 200], "{id}: delivered exactly once");
            assert!(hits.iter().all(|h| h["verified"] == true), "{id}: {hits:?}");
            assert!(
                hits.iter().all(|h| h["body"] == hits[0]["body"]),
                "{id}: same body"
            );
            assert_eq!(hits[0]["type"], "session.created", "{id}");
        }
        let list = crate::webhooks::deliveries_log(
            &ml,
            "/v1/webhook/deliveries?limit=100",
            "every attempt recorded",
            |list| list["data"].as_array().map_or(0, Vec::len) >= 2 * SESSIONS,
        )
        .await?;
        // Its attempts, as Maskline recorded them: one failure and one
        // success per event, and every delivery now delivered.
        let rows = list["data"].as_array().cloned().unwrap_or_default();
        let outcomes = |o: &str| rows.iter().filter(|r| r["outcome"] == o).count();
        assert_eq!(
            (outcomes("retry"), outcomes("delivered"), rows.len()),
            (SESSIONS, SESSIONS, 2 * SESSIONS),
            "{list}"
        );
        assert!(
            rows.iter().all(|r| r["delivery_status"] == "delivered"),
            "{list}"
        );
        Ok(())
    })
    .await
}
