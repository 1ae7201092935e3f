//! Issue #9: two Maskline nodes sharing one PostgreSQL on loopback.
//!
//! These tests need `MASKLINE_TEST_PG_URL` (a PostgreSQL server, as
//! `tests/pg/start.sh` prints): `./test` runs them in its PostgreSQL pass
//! only (`./test --pg -p maskline-e2e --test e2e cluster::` alone). Each
//! test makes a fresh database, and both nodes use it, each with its own
//! SIP, RTP and HTTP ports and `[cluster]` section.

mod busy;
mod kamailio;
mod recording;
mod stop;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use maskline_e2e::pg::PgDatabase;
use maskline_e2e::{
    bounded, bridge_call, wait_for, BridgedCall, CallEnds, E2eError, InviteSpec, Maskline, Result,
    SipPeer, SseStream, StartOptions, API_KEY, PARTY_A, PARTY_B, POOL, STRANGER, WAIT,
};
use reqwest::Method;
use serde_json::{json, Value};

use crate::TEST_LIMIT;

/// The cluster secret of the test nodes.
pub const SECRET: &str = "cluster-secret-0123456789";
/// Their lease: short, so that a dead node is noticed within seconds.
pub const LEASE_SECS: u64 = 3;
/// How long a route change may take to reach the other node.
const PROPAGATION: Duration = Duration::from_secs(3);

/// A fresh database on the test server; an error that says how to run
/// these tests when there is none.
pub fn cluster_db() -> Result<PgDatabase> {
    PgDatabase::create()?.ok_or_else(|| {
        E2eError::Unexpected(
            "the cluster tests need PostgreSQL: run `./test --pg -p maskline-e2e --test e2e \
             cluster::` (or set MASKLINE_TEST_PG_URL)"
                .into(),
        )
    })
}

/// The `[cluster]` section of node `id`.
fn cluster_toml(id: &str) -> String {
    format!("\n[cluster]\nnode_id = \"{id}\"\nsecret = \"{SECRET}\"\nlease_secs = {LEASE_SECS}\n")
}

/// Start node `id` on `db` with `opts` (its store and `[cluster]` set here).
pub async fn node_with(db: &PgDatabase, id: &str, opts: StartOptions) -> Result<Maskline> {
    let extra_toml = format!("{}{}", opts.extra_toml, cluster_toml(id));
    Maskline::start(StartOptions {
        store_url: Some(db.url().to_string()),
        extra_toml,
        ..opts
    })
    .await
}

/// Two nodes `a` and `b` on `db`, started together, with the default pool.
pub async fn two_nodes(db: &PgDatabase) -> Result<(Maskline, Maskline)> {
    let (a, b) = tokio::join!(
        node_with(db, "a", StartOptions::default()),
        node_with(db, "b", StartOptions::default())
    );
    Ok((a?, b?))
}

/// Waits until `node` routes `masked`: a stranger's INVITE to it gets 403
/// (caller not a party) instead of 404 (no such number).
pub async fn wait_routed(node: &Maskline, masked: &str, port: u16) -> Result<()> {
    let status = |want: u16| async move {
        let mut probe = SipPeer::bind(([127, 0, 0, 1], port).into(), node.sip_addr()).await?;
        let inv = probe
            .invite(&InviteSpec {
                dialled: masked.to_string(),
                caller: STRANGER.to_string(),
                rtp: ([127, 0, 0, 1], 9).into(),
            })
            .await?;
        let resp = probe.final_response(&inv, WAIT).await?;
        Ok::<bool, E2eError>(resp.status() == Some(want))
    };
    wait_for(
        &format!("{masked} to be routed by the node at {}", node.sip_addr()),
        PROPAGATION,
        || async { Ok(status(403).await?.then_some(())) },
    )
    .await
}

/// What `node`'s busy-session worker last logged for `session_id`:
/// `Some(true)` busy on another node, `Some(false)` no longer, `None`
/// nothing (never marked).
pub fn busy_logged(node: &Maskline, session_id: &str) -> Option<bool> {
    const BUSY: &str = "session busy on another node";
    const FREE: &str = "session no longer busy on another node";
    let log = std::fs::read_to_string(node.dir().join("maskline.log")).unwrap_or_default();
    log.lines()
        .rev()
        .filter(|l| l.contains(session_id))
        .filter_map(|l| {
            if l.contains(FREE) {
                Some(false)
            } else {
                l.contains(BUSY).then_some(true)
            }
        })
        .next()
}

/// Waits until `node` no longer refuses calls for `session_id` because of
/// a call on another node. A call that just ended on one node leaves the
/// session busy on the others until its `call.hangup` reaches them (tens
/// of ms): a caller who redials at once may get a 486 meanwhile.
pub async fn wait_not_busy(node: &Maskline, session_id: &str) -> Result<()> {
    wait_for(
        &format!("{session_id} to be free on the node at {}", node.sip_addr()),
        PROPAGATION,
        || async { Ok((busy_logged(node, session_id) != Some(true)).then_some(())) },
    )
    .await
}

/// `GET path` on `node`, expecting 200.
pub async fn get(node: &Maskline, path: &str) -> Result<Value> {
    node.api().expect_status(Method::GET, path, None, 200).await
}

fn str_field<'a>(v: &'a Value, name: &str) -> &'a str {
    v.get(name).and_then(Value::as_str).unwrap_or_default()
}

/// The live call of session `id`, as `node` reports it.
async fn active_call_id(node: &Maskline, id: &str) -> Result<String> {
    wait_for("the session's active call", WAIT, || async {
        let s = node.api().get_session(id).await?;
        Ok(s.get("active_call_id")
            .and_then(Value::as_str)
            .map(str::to_string))
    })
    .await
}

/// A call through node `b` for a session created on node `a`.
async fn call_through(node: &Maskline, masked: &str) -> Result<BridgedCall> {
    wait_routed(node, masked, node.ports().peer(6)).await?;
    bridge_call(node, CallEnds::slot(node, 0), PARTY_A, PARTY_B, masked).await
}

/// Issue #9: 1000 concurrent creates spread over both nodes get 1000
/// distinct numbers from a pool of 1000; the next creates get a clean 409
/// `number_pool_exhausted`. Prints the figures.
#[tokio::test]
async fn concurrent_creates_on_two_nodes_get_distinct_numbers() -> Result<()> {
    const CREATES: usize = 1000;
    bounded(Duration::from_secs(120), async {
        let db = cluster_db()?;
        let pool: Vec<String> = (0..CREATES).map(|i| format!("+1555100{i:04}")).collect();
        let opts = || StartOptions {
            numbers: pool.clone(),
            ..StartOptions::default()
        };
        let (a, b) = tokio::join!(node_with(&db, "a", opts()), node_with(&db, "b", opts()));
        let (a, b) = (a?, b?);
        let apis = [a.api().clone(), b.api().clone()];
        // The harness client gives up after 5 s; 1000 creates at once may
        // queue longer than that (they commit one at a time).
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|source| E2eError::Http {
                context: "building the client".into(),
                source,
            })?;
        let started = Instant::now();
        let tasks: Vec<_> = (0..CREATES)
            .map(|i| {
                let url = format!("{}/v1/sessions", apis[i % 2].base());
                let client = client.clone();
                tokio::spawn(async move {
                    let body = json!({"party_a": PARTY_A, "party_b": PARTY_B});
                    let context = format!("POST {url}");
                    let http = |source| E2eError::Http {
                        context: context.clone(),
                        source,
                    };
                    let resp = client
                        .post(&url)
                        .header("X-API-Key", API_KEY)
                        .json(&body)
                        .send()
                        .await
                        .map_err(http)?;
                    let status = resp.status().as_u16();
                    let json: Value = resp.json().await.map_err(http)?;
                    Ok::<(u16, Value), E2eError>((status, json))
                })
            })
            .collect();
        let mut numbers = HashSet::new();
        let mut statuses = Vec::new();
        for t in tasks {
            let (status, body) = t
                .await
                .map_err(|e| E2eError::Unexpected(format!("create task: {e}")))??;
            statuses.push(status);
            if status == 201 {
                let n = str_field(&body, "masked_number").to_string();
                assert!(numbers.insert(n.clone()), "{n} was given twice");
            }
        }
        let elapsed = started.elapsed();
        let created = statuses.iter().filter(|s| **s == 201).count();
        let others: Vec<&u16> = statuses.iter().filter(|s| **s != 201).collect();
        eprintln!(
            "cluster allocation: {created} sessions with {} distinct numbers from 2 nodes in {elapsed:?} ({:.0}/s)",
            numbers.len(),
            created as f64 / elapsed.as_secs_f64()
        );
        assert!(others.is_empty(), "every create succeeds: {others:?}");
        assert_eq!(numbers.len(), CREATES);
        assert!(numbers.iter().all(|n| pool.contains(n)));

        for api in &apis {
            let body = json!({"party_a": PARTY_A, "party_b": PARTY_B});
            let (status, json) = api
                .request(Method::POST, "/v1/sessions", Some(&body))
                .await?;
            assert_eq!(status, 409, "{json}");
            assert_eq!(str_field(&json, "error"), "number_pool_exhausted", "{json}");
        }
        Ok(())
    })
    .await
}

/// Issue #9: a session made on node A routes a call arriving at node B.
#[tokio::test]
async fn a_session_made_on_a_routes_a_call_through_b() -> Result<()> {
    bounded(TEST_LIMIT, async {
        let db = cluster_db()?;
        let (a, b) = two_nodes(&db).await?;
        let session = a.api().create_session(PARTY_A, PARTY_B, None).await?;
        let mut call = call_through(&b, &session.masked_number).await?;
        crate::assert_masked_outbound_leg(&call, &session.masked_number, PARTY_A, PARTY_B);
        call.exchange_rtp().await?;
        let call_id = active_call_id(&a, &session.id).await?;
        call.caller_hangs_up().await?;
        wait_for("A to show the call on B ended", WAIT, || async {
            let c = get(&a, &format!("/v1/calls/{call_id}")).await?;
            Ok((str_field(&c, "state") == "completed").then_some(c))
        })
        .await?;
        Ok(())
    })
    .await
}

/// Issue #9: `complete` on node A hangs up a call bridged on node B (both
/// parties get B's BYE), and B stops routing the number.
#[tokio::test]
async fn complete_on_a_hangs_up_a_call_bridged_on_b() -> Result<()> {
    bounded(TEST_LIMIT, async {
        let db = cluster_db()?;
        let (a, b) = two_nodes(&db).await?;
        let session = a.api().create_session(PARTY_A, PARTY_B, None).await?;
        let mut call = call_through(&b, &session.masked_number).await?;
        let call_id = active_call_id(&a, &session.id).await?;
        a.api().complete_session(&session.id).await?;
        call.both_get_bye(WAIT).await?;
        let c = wait_for("the call to end", WAIT, || async {
            let c = get(&a, &format!("/v1/calls/{call_id}")).await?;
            Ok(c.get("ended_at").is_some_and(|e| !e.is_null()).then_some(c))
        })
        .await?;
        assert_eq!(str_field(&c, "hangup_by"), "api", "{c}");
        // B no longer routes the number: 404.
        let mut probe =
            SipPeer::bind(([127, 0, 0, 1], b.ports().peer(5)).into(), b.sip_addr()).await?;
        let inv = probe
            .invite(&InviteSpec {
                dialled: session.masked_number.clone(),
                caller: PARTY_A.to_string(),
                rtp: ([127, 0, 0, 1], 9).into(),
            })
            .await?;
        assert_eq!(probe.final_response(&inv, WAIT).await?.status(), Some(404));
        Ok(())
    })
    .await
}

/// Issue #9: a call-control command sent to node A for a call on node B
/// is forwarded to B: the operation succeeds within the 2 s budget and the
/// call is torn down by B.
#[tokio::test]
async fn a_hangup_command_on_a_acts_on_a_call_on_b() -> Result<()> {
    bounded(TEST_LIMIT, async {
        let db = cluster_db()?;
        let (a, b) = two_nodes(&db).await?;
        let session = a.api().create_session(PARTY_A, PARTY_B, None).await?;
        let mut call = call_through(&b, &session.masked_number).await?;
        let call_id = active_call_id(&a, &session.id).await?;
        let accepted = a
            .api()
            .expect_status(
                Method::POST,
                &format!("/v1/calls/{call_id}/commands/hangup"),
                Some(&json!({"cause": "USER_BUSY"})),
                202,
            )
            .await?;
        let op = str_field(&accepted, "operation_id").to_string();
        call.both_get_bye(WAIT).await?;
        let done = wait_for("the operation's result", Duration::from_secs(3), || async {
            let o = get(&a, &format!("/v1/operations/{op}")).await?;
            Ok((str_field(&o, "status") != "in_progress").then_some(o))
        })
        .await?;
        assert_eq!(str_field(&done, "status"), "succeeded", "{done}");
        let c = wait_for("the call to end", WAIT, || async {
            let c = get(&b, &format!("/v1/calls/{call_id}")).await?;
            Ok(c.get("ended_at").is_some_and(|e| !e.is_null()).then_some(c))
        })
        .await?;
        assert_eq!(str_field(&c, "hangup_cause"), "USER_BUSY", "{c}");
        assert_eq!(str_field(&c, "hangup_by"), "api", "{c}");
        Ok(())
    })
    .await
}

/// Issue #9: SSE on node A streams the events of a call on node B; a
/// client that reconnects to node B with `Last-Event-ID` gets the rest,
/// with the same ids, no gap and no duplicate.
#[tokio::test]
async fn sse_streams_every_nodes_events_and_resumes_on_the_other_node() -> Result<()> {
    bounded(TEST_LIMIT, async {
        let db = cluster_db()?;
        let (a, b) = two_nodes(&db).await?;
        let mut on_a = SseStream::open(a.api().base(), API_KEY, "/v1/events", None).await?;
        let session = b.api().create_session(PARTY_A, PARTY_B, None).await?;
        let mut call = call_through(&b, &session.masked_number).await?;
        call.caller_hangs_up().await?;
        let seen = on_a
            .until(Duration::from_secs(10), |m| m.kind() == "call.hangup")
            .await?;
        let kinds: Vec<&str> = seen.iter().map(|m| m.kind()).collect();
        for want in [
            "session.created",
            "call.initiated",
            "call.answered",
            "call.hangup",
        ] {
            assert!(kinds.contains(&want), "A's stream lacks {want}: {kinds:?}");
        }
        let ids: Vec<i64> = seen.iter().filter_map(|m| m.id_num()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids in order: {ids:?}");

        // Reconnect to B after the second event: B replays the rest.
        let (first, rest) = ids.split_at(2);
        let last = first.last().map(i64::to_string);
        let mut on_b =
            SseStream::open(b.api().base(), API_KEY, "/v1/events", last.as_deref()).await?;
        let replayed = on_b
            .until(Duration::from_secs(10), |m| m.kind() == "call.hangup")
            .await?;
        let replayed_ids: Vec<i64> = replayed.iter().filter_map(|m| m.id_num()).collect();
        assert_eq!(replayed_ids, rest, "B resumes exactly after Last-Event-ID");

        // And live events from A reach B's stream.
        a.api().complete_session(&session.id).await?;
        let live = on_b
            .until(Duration::from_secs(10), |m| m.kind() == "session.completed")
            .await?;
        assert_eq!(live.last().map(|m| m.kind()), Some("session.completed"));
        Ok(())
    })
    .await
}

/// Issue #9: node B is killed (-9) with a call up; once its lease has run
/// out, node A ends the call (`hangup_by: system`), the session is open
/// again and calls to it go through A. Prints the figures.
#[tokio::test]
async fn kill_9_of_a_node_and_the_survivor_ends_its_calls() -> Result<()> {
    bounded(TEST_LIMIT, async {
        let db = cluster_db()?;
        let (a, mut b) = two_nodes(&db).await?;
        let session = a.api().create_session(PARTY_A, PARTY_B, None).await?;
        let call = call_through(&b, &session.masked_number).await?;
        let call_id = active_call_id(&a, &session.id).await?;
        // B has stored the answer before it dies.
        wait_for("the call to be stored as bridged", WAIT, || async {
            let c = get(&a, &format!("/v1/calls/{call_id}")).await?;
            Ok((str_field(&c, "state") == "bridged").then_some(()))
        })
        .await?;
        b.kill9()?;
        let killed = Instant::now();
        let ended = wait_for(
            "A to end the dead node's call",
            Duration::from_secs(LEASE_SECS * 3),
            || async {
                let c = get(&a, &format!("/v1/calls/{call_id}")).await?;
                Ok(c.get("ended_at").is_some_and(|e| !e.is_null()).then_some(c))
            },
        )
        .await?;
        let after = killed.elapsed();
        eprintln!("cluster failover: the dead node's call was ended by the survivor {after:?} after kill -9 (lease {LEASE_SECS} s)");
        assert!(
            after >= Duration::from_secs(LEASE_SECS) - Duration::from_millis(1500),
            "not before the lease can have run out: {after:?}"
        );
        assert_eq!(str_field(&ended, "hangup_by"), "system", "{ended}");
        assert_eq!(str_field(&ended, "hangup_cause"), "NETWORK_OUT_OF_ORDER", "{ended}");
        assert_eq!(str_field(&ended, "state"), "completed", "answered: {ended}");
        let s = a.api().get_session(&session.id).await?;
        assert_eq!(str_field(&s, "state"), "open", "{s}");
        assert!(s.get("active_call_id").is_some_and(Value::is_null), "{s}");
        drop(call);

        // The session is still routable through the survivor (once the
        // hangup it wrote has freed the session there too).
        wait_not_busy(&a, &session.id).await?;
        let mut again = call_through(&a, &session.masked_number).await?;
        again.exchange_rtp().await?;
        again.caller_hangs_up().await
    })
    .await
}

/// Issue #9: the webhook outbox is shared: with both nodes delivering,
/// each event reaches the receiver once.
#[tokio::test]
async fn each_webhook_is_delivered_once_by_one_node() -> Result<()> {
    bounded(TEST_LIMIT, async {
        let db = cluster_db()?;
        let (a, b) = two_nodes(&db).await?;
        let dir = a.dir().join("hooks");
        std::fs::create_dir_all(&dir).map_err(|e| E2eError::io("hooks dir", e))?;
        let receiver = maskline_e2e::WebhookReceiver::start(&dir, 0).await?;
        let put = a
            .api()
            .expect_status(
                Method::PUT,
                "/v1/webhook",
                Some(&json!({"url": receiver.url()})),
                200,
            )
            .await?;
        receiver.set_secret(str_field(&put, "secret"))?;
        let mut ids = Vec::new();
        for i in 0..POOL.len() {
            let node = if i % 2 == 0 { &a } else { &b };
            let s = node.api().create_session(PARTY_A, PARTY_B, None).await?;
            node.api().complete_session(&s.id).await?;
            ids.push(s.id);
        }
        let want = 2 * ids.len();
        let entries = wait_for("every webhook", Duration::from_secs(10), || async {
            let e = receiver.entries()?;
            Ok((e.len() >= want).then_some(e))
        })
        .await?;
        let webhook_ids: Vec<&str> = entries
            .iter()
            .filter_map(|e| e.get("webhook_id").and_then(Value::as_str))
            .collect();
        let distinct: HashSet<&&str> = webhook_ids.iter().collect();
        assert_eq!(
            (webhook_ids.len(), distinct.len()),
            (want, want),
            "each event once: {entries:?}"
        );
        Ok(())
    })
    .await
}
