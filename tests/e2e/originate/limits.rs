//! The tenant's limits on originated calls (issue #6 item 4): the
//! concurrency cap (409 `concurrent_call_not_allowed`) and the
//! calls-per-second queue (202 `queued` with `position`, dialled in order
//! at the rate; a cancelled queued call is never dialled). Each test runs a
//! second tenant with its own limits beside the harness's; every first leg
//! goes to the carrier trunk, a raw SIP peer that rings (180) and never
//! answers.

use std::collections::BTreeSet;
use std::time::Duration;

use maskline_e2e::{
    bounded, Api, E2eError, Maskline, Result, SipMessage, SipPeer, SseStream, StartOptions,
};
use serde_json::Value;

use super::{call_id, call_in_state, cancel, originate, rfc3339_ms, str_field};
use crate::{digits, TEST_LIMIT};

/// The limited tenant's API key.
const KEY: &str = "limits-key-0123456789abcdef";
/// Dial spacing at `calls_per_second = 2`.
const SPACING_MS: i64 = 500;
/// Timer and scheduling slack allowed below the spacing.
const TOLERANCE_MS: i64 = 100;
/// Bound of the wait for one INVITE at the trunk.
const INVITE_WITHIN: Duration = Duration::from_secs(5);

/// Maskline with a tenant `limits` (`limits_toml` appended to its table)
/// owning `sessions` pool numbers, a session per number (party A
/// `+1415555110k`, party B `+1415555120k`), the tenant's API client and
/// the carrier trunk as a raw peer.
async fn limited_tenant(
    limits_toml: &str,
    sessions: usize,
) -> Result<(Maskline, Api, Vec<(String, String)>, SipPeer)> {
    let numbers: Vec<String> = (1..=sessions)
        .map(|k| format!("\"+1555000100{k}\""))
        .collect();
    let ml = Maskline::start(StartOptions {
        extra_toml: format!(
            "\n[[tenants]]\nname = \"limits\"\napi_keys = [\"{KEY}\"]\nnumbers = [{}]\n{limits_toml}\n",
            numbers.join(", ")
        ),
        ..StartOptions::default()
    })
    .await?;
    let api = Api::new(ml.api().base().to_string(), KEY)?;
    let mut out = Vec::new();
    for k in 1..=sessions {
        let party_a = format!("+1415555110{k}");
        let s = api
            .create_session(&party_a, &format!("+1415555120{k}"), None)
            .await?;
        out.push((s.id, party_a));
    }
    let trunk = SipPeer::bind(ml.trunk_addr(), ml.sip_addr()).await?;
    Ok((ml, api, out, trunk))
}

/// The next new INVITE at the trunk, answered 180; returns it and the
/// To tag it was answered with.
async fn ring_next(trunk: &mut SipPeer) -> Result<(SipMessage, String)> {
    let inv = trunk.recv_request_within("INVITE", INVITE_WITHIN).await?;
    let tag = format!("ring{:08x}", rand::random::<u32>());
    trunk
        .respond(&inv, 180, "Ringing", Some(&tag), &[], None)
        .await?;
    Ok((inv, tag))
}

/// Rings the first `n` distinct INVITEs at the trunk as they come;
/// returns the numbers they dialled, in order.
async fn ring_distinct(mut trunk: SipPeer, n: usize) -> Result<Vec<String>> {
    let mut order = Vec::new();
    let mut call_ids = BTreeSet::new();
    while order.len() < n {
        let (inv, _) = ring_next(&mut trunk).await?;
        if call_ids.insert(inv.call_id().unwrap_or_default().to_string()) {
            order.push(dialled(&inv));
        }
    }
    Ok(order)
}

/// The user of an INVITE's Request-URI, without `+`.
fn dialled(inv: &SipMessage) -> String {
    inv.request_uri()
        .and_then(maskline_e2e::sip::uri_user)
        .map(digits)
        .unwrap_or_default()
        .to_string()
}

/// CPS queue: with `calls_per_second = 2`, six back-to-back originates
/// give one 201 (`ringing`) then 202 `queued` at positions 1–5. The third
/// queued call is cancelled at once and is never dialled; the others are
/// dialled in order, their `call.ringing` events (recorded times) at
/// least 0.5 s apart (less a 100 ms tolerance).
#[tokio::test]
async fn calls_over_the_rate_queue_and_are_dialled_in_order_at_the_rate() -> Result<()> {
    bounded(TEST_LIMIT, async {
        let (ml, api, sessions, trunk) =
            limited_tenant("calls_per_second = 2\nmax_concurrent_calls = 10", 6).await?;
        // The trunk rings every INVITE at once, so that each call.ringing
        // is recorded right when its call is dialled.
        let dialled_order = tokio::spawn(ring_distinct(trunk, 5));
        let mut ringing = SseStream::open(
            ml.api().base(),
            KEY,
            "/v1/events?type=call.ringing",
            Some("0"),
        )
        .await?;
        let mut calls = Vec::new();
        for (i, (session_id, party_a)) in sessions.iter().enumerate() {
            let (status, call) = originate(&api, session_id, "a").await?;
            assert_eq!(str_field(&call, "caller"), Some(party_a.as_str()), "{call}");
            if i == 0 {
                assert_eq!(status, 201, "the first call is dialled now: {call}");
                assert_eq!(str_field(&call, "state"), Some("ringing"), "{call}");
            } else {
                assert_eq!(status, 202, "call {i} is over the rate: {call}");
                assert_eq!(str_field(&call, "state"), Some("queued"), "{call}");
                assert_eq!(
                    call.get("position").and_then(Value::as_u64),
                    u64::try_from(i).ok(),
                    "queue position of call {i}: {call}"
                );
            }
            calls.push(call_id(&call)?);
        }
        let Some(skipped) = calls.get(3).cloned() else {
            return Err(E2eError::Unexpected("six calls were made".into()));
        };
        assert!(cancel(&api, &skipped).await?, "cancel of a queued call");
        let gone = call_in_state(&api, &skipped, "cancelled").await?;
        assert_eq!(str_field(&gone, "hangup_by"), Some("api"), "{gone}");

        let expected: Vec<usize> = vec![0, 1, 2, 4, 5];
        let order = dialled_order
            .await
            .map_err(|e| E2eError::Unexpected(format!("the trunk task failed: {e}")))??;
        let want: Vec<String> = expected
            .iter()
            .filter_map(|&i| sessions.get(i).map(|(_, a)| digits(a).to_string()))
            .collect();
        assert_eq!(
            order, want,
            "queued calls are dialled in order; the cancelled one never"
        );

        let rung = std::cell::Cell::new(0);
        let events = ringing
            .until(Duration::from_secs(5), |m| {
                if m.kind() == "call.ringing" {
                    rung.set(rung.get() + 1);
                }
                rung.get() == expected.len()
            })
            .await?;
        let rang: Vec<(String, i64)> = events
            .iter()
            .filter(|m| m.kind() == "call.ringing")
            .map(|m| {
                let event = m.json();
                let id = event
                    .get("data")
                    .and_then(|call| str_field(call, "id"))
                    .unwrap_or_default()
                    .to_string();
                let at = str_field(&event, "created_at")
                    .and_then(rfc3339_ms)
                    .unwrap_or_default();
                (id, at)
            })
            .collect();
        let ids: Vec<&str> = rang.iter().map(|(id, _)| id.as_str()).collect();
        let want_ids: Vec<&str> = expected
            .iter()
            .filter_map(|&i| calls.get(i).map(String::as_str))
            .collect();
        assert_eq!(ids, want_ids, "call.ringing order: {rang:?}");
        for pair in rang.windows(2) {
            let [(_, before), (_, after)] = pair else {
                continue;
            };
            let gap = after - before;
            assert!(
                gap >= SPACING_MS - TOLERANCE_MS,
                "calls are dialled at most 2 per second, but two rang {gap} ms apart: {rang:?}"
            );
        }
        Ok(())
    })
    .await
}

/// Concurrency cap: with `max_concurrent_calls = 2` and two calls ringing,
/// a third originate gets 409 `concurrent_call_not_allowed` naming both
/// live calls and the cap; once one is cancelled, an originate works
/// again.
#[tokio::test]
async fn the_concurrency_cap_refuses_a_third_call_until_one_ends() -> Result<()> {
    bounded(TEST_LIMIT, async {
        let (_ml, api, sessions, mut trunk) =
            limited_tenant("calls_per_second = 50\nmax_concurrent_calls = 2", 3).await?;
        let [(s1, a1), (s2, _), (s3, a3)] = sessions.as_slice() else {
            return Err(E2eError::Unexpected("three sessions were made".into()));
        };
        let mut live = Vec::new();
        for s in [s1, s2] {
            let (status, call) = originate(&api, s, "a").await?;
            assert!(
                status == 201 || status == 202,
                "originate under the cap: {status} {call}"
            );
            live.push(call_id(&call)?);
        }
        let rung = [ring_next(&mut trunk).await?, ring_next(&mut trunk).await?];
        let Some((first_invite, first_tag)) =
            rung.into_iter().find(|(inv, _)| dialled(inv) == digits(a1))
        else {
            return Err(E2eError::Unexpected(format!("no INVITE dialled {a1}")));
        };
        for id in &live {
            call_in_state(&api, id, "ringing").await?;
        }

        let (status, refused) = originate(&api, s3, "a").await?;
        assert_eq!(status, 409, "{refused}");
        assert_eq!(
            str_field(&refused, "error"),
            Some("concurrent_call_not_allowed"),
            "{refused}"
        );
        assert_eq!(
            refused.get("max_concurrent").and_then(Value::as_u64),
            Some(2),
            "{refused}"
        );
        let active: BTreeSet<&str> = refused
            .get("active_call_ids")
            .and_then(Value::as_array)
            .map(|ids| ids.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let want: BTreeSet<&str> = live.iter().map(String::as_str).collect();
        assert_eq!(active, want, "{refused}");

        // End the first call: the trunk sees the CANCEL and completes it.
        let first = live.first().cloned().unwrap_or_default();
        assert!(cancel(&api, &first).await?);
        let first_call_id = first_invite.call_id().unwrap_or_default().to_string();
        let cancel_req = trunk
            .recv_where("the CANCEL of the first call", INVITE_WITHIN, |m| {
                m.method() == Some("CANCEL") && m.call_id() == Some(first_call_id.as_str())
            })
            .await?;
        trunk
            .respond(&cancel_req, 200, "OK", None, &[], None)
            .await?;
        trunk
            .respond(
                &first_invite,
                487,
                "Request Terminated",
                Some(&first_tag),
                &[],
                None,
            )
            .await?;
        call_in_state(&api, &first, "cancelled").await?;

        let (status, again) = originate(&api, s3, "a").await?;
        assert!(
            status == 201 || status == 202,
            "below the cap again: {status} {again}"
        );
        let (inv, _) = ring_next(&mut trunk).await?;
        assert_eq!(dialled(&inv), digits(a3), "{}", inv.raw_text());
        Ok(())
    })
    .await
}
