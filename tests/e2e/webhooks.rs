//! Issue 5, webhooks: a real HTTP receiver (`tests/webhooks/receiver.py`)
//! checks every delivery with PyPI's `standardwebhooks`, an implementation
//! that shares no code with Maskline; it fails the first attempts of each
//! event, which must come again with the same `webhook-id`, also across a
//! restart of Maskline.

use std::collections::BTreeMap;
use std::time::Duration;

use maskline_e2e::{
    bounded, bridge_call, wait_for, CallEnds, Maskline, Result, SseMessage, SseStream,
    StartOptions, WebhookReceiver, API_KEY, PARTY_A, PARTY_B,
};
use reqwest::Method;
use serde_json::{json, Value};

/// `[webhooks]` for a fast test: the extra TOML goes after `[calls]`.
fn webhooks_toml(schedule: &str) -> String {
    format!("\n[webhooks]\nretry_schedule_secs = {schedule}\ntimeout_secs = 5\n")
}

/// `GET path` (the deliveries log) once `done` holds for it, within 10 s:
/// Maskline records an attempt only after the receiver has answered it.
pub(crate) async fn deliveries_log(
    ml: &Maskline,
    path: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Result<Value> {
    wait_for(what, Duration::from_secs(10), || async {
        let list = ml.api().expect_status(Method::GET, path, None, 200).await?;
        Ok(done(&list).then_some(list))
    })
    .await
}

/// `PUT /v1/webhook` with the receiver's URL; hands it the secret.
async fn subscribe(ml: &Maskline, rx: &WebhookReceiver) -> Result<String> {
    let body = ml
        .api()
        .expect_status(
            Method::PUT,
            "/v1/webhook",
            Some(&json!({ "url": rx.url() })),
            200,
        )
        .await?;
    let secret = body["secret"].as_str().unwrap_or_default().to_string();
    assert!(secret.starts_with("whsec_"), "{body}");
    rx.set_secret(&secret)?;
    Ok(secret)
}

/// The receiver's log entries, by `webhook-id`.
fn by_webhook_id(entries: &[Value]) -> BTreeMap<String, Vec<Value>> {
    let mut map: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for e in entries {
        let id = e["webhook_id"].as_str().unwrap_or_default().to_string();
        map.entry(id).or_default().push(e.clone());
    }
    map
}

#[tokio::test]
async fn every_event_is_signed_and_retried_until_2xx_with_the_same_webhook_id() -> Result<()> {
    bounded(Duration::from_secs(60), async {
        let ml = Maskline::start(StartOptions {
            extra_toml: webhooks_toml("[0, 1, 1]"),
            ..StartOptions::default()
        })
        .await?;
        let rx = WebhookReceiver::start(ml.dir(), 2).await?;
        subscribe(&ml, &rx).await?;

        let session = ml.api().create_session(PARTY_A, PARTY_B, None).await?;
        let mut call = bridge_call(
            &ml,
            CallEnds::slot(&ml, 0),
            PARTY_A,
            PARTY_B,
            &session.masked_number,
        )
        .await?;
        call.exchange_rtp().await?;
        call.caller_hangs_up().await?;
        ml.api().complete_session(&session.id).await?;

        // Every event of the log, as SSE replays it.
        let mut sse = SseStream::open(ml.api().base(), API_KEY, "/v1/events", Some("0")).await?;
        let events = sse
            .until(Duration::from_secs(5), |m| m.kind() == "session.completed")
            .await?;
        let kinds: Vec<&str> = events.iter().map(SseMessage::kind).collect();
        for expected in [
            "session.created",
            "call.initiated",
            "call.answered",
            "call.bridged",
            "call.hangup",
            "session.completed",
        ] {
            assert!(kinds.contains(&expected), "{expected} in {kinds:?}");
        }

        let entries = wait_for(
            "a 200 from the receiver for every event",
            Duration::from_secs(30),
            || async {
                let entries = rx.entries()?;
                let map = by_webhook_id(&entries);
                let all = events.iter().all(|m| {
                    let id = format!("msg_{}", m.id.as_deref().unwrap_or_default());
                    map.get(&id)
                        .is_some_and(|hits| hits.iter().any(|h| h["status"] == 200))
                });
                Ok(all.then_some(entries))
            },
        )
        .await?;
        let unverified: Vec<&Value> = entries.iter().filter(|e| e["verified"] != true).collect();
        assert!(
            unverified.is_empty(),
            "standardwebhooks rejected deliveries: {unverified:?}"
        );
        let map = by_webhook_id(&entries);
        for m in &events {
            let id = m.id.as_deref().unwrap_or_default();
            let hits = map.get(&format!("msg_{id}")).cloned().unwrap_or_default();
            let statuses: Vec<i64> = hits.iter().filter_map(|h| h["status"].as_i64()).collect();
            assert_eq!(statuses, [500, 500, 200], "event {id} ({})", m.kind());
            for h in &hits {
                assert_eq!(h["event_id"], id);
                assert_eq!(h["type"].as_str(), m.event.as_deref());
                // The webhook body is the SSE envelope, byte for byte.
                assert_eq!(h["body"].as_str(), Some(m.data.as_str()));
            }
        }
        assert_eq!(
            entries.len(),
            3 * events.len(),
            "nothing but these events was delivered"
        );

        // Wait for the log to show every attempt, then check each.
        let want = 3 * events.len();
        let list = deliveries_log(
            &ml,
            "/v1/webhook/deliveries?limit=500",
            "every attempt in the deliveries log",
            |list| list["data"].as_array().map_or(0, Vec::len) >= want,
        )
        .await?;
        let rows = list["data"].as_array().cloned().unwrap_or_default();
        assert_eq!(rows.len(), want, "{list}");
        assert!(
            rows.iter().all(|r| r["delivery_status"] == "delivered"),
            "{list}"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_restart_of_maskline_between_attempts_still_delivers() -> Result<()> {
    bounded(Duration::from_secs(60), async {
        let mut ml = Maskline::start(StartOptions {
            extra_toml: webhooks_toml("[0, 3]"),
            ..StartOptions::default()
        })
        .await?;
        let rx = WebhookReceiver::start(ml.dir(), 1).await?;
        subscribe(&ml, &rx).await?;
        let session = ml.api().create_session(PARTY_A, PARTY_B, None).await?;

        let first = wait_for("the first attempt", Duration::from_secs(10), || async {
            Ok(rx.entries()?.into_iter().next())
        })
        .await?;
        assert_eq!(first["status"], 500);
        assert_eq!(first["type"], "session.created");
        assert_eq!(first["verified"], true, "{first}");
        let webhook_id = first["webhook_id"].as_str().unwrap_or_default().to_string();
        // Once Maskline has recorded the failed attempt, restart it.
        deliveries_log(
            &ml,
            "/v1/webhook/deliveries",
            "the failed attempt to be recorded",
            |list| list["data"][0]["outcome"] == "retry",
        )
        .await?;
        let status = ml.restart().await?;
        assert!(
            status.success(),
            "SIGTERM should stop maskline cleanly: {status}"
        );

        let second = wait_for(
            "the retry after the restart",
            Duration::from_secs(15),
            || async {
                let entries = rx.entries()?;
                Ok(entries
                    .into_iter()
                    .find(|e| e["webhook_id"] == webhook_id.as_str() && e["attempt"] == 2))
            },
        )
        .await?;
        assert_eq!(second["status"], 200, "{second}");
        assert_eq!(second["verified"], true, "{second}");
        assert_eq!(second["body"], first["body"]);
        assert_eq!(
            second["event_id"], first["event_id"],
            "the same event, id {webhook_id}"
        );
        let list = deliveries_log(
            &ml,
            "/v1/webhook/deliveries",
            "the delivery recorded as delivered",
            |list| list["data"][0]["delivery_status"] == "delivered",
        )
        .await?;
        assert_eq!(list["data"][0]["attempt"], 2, "{list}");
        drop(session);
        Ok(())
    })
    .await
}
