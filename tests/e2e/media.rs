//! Issue 4, media: what the relay does to packets (strict source after
//! latching, RFC 4733 DTMF passed through, media timeout) and call
//! recordings (stereo content by Goertzel, loss as silence in place,
//! pause/resume, the download endpoint with its auth and Range).
//!
//! The parties are the raw SIP peer and RTP endpoints of the harness; the
//! tones are PCMU encoded by the suite's own G.711 (`maskline_e2e::media`).
//! Recordings are fetched over HTTP like a platform would, then checked
//! sample by sample: the recorder places each packet by its RTP timestamp
//! relative to the stream's first packet, so positions are exact to the
//! sample and a test can say where each packet (or its absence) must be.

use std::time::Duration;

use maskline_e2e::audio::tone_share;
use maskline_e2e::media::{parse_stereo_wav, Stereo, FRAME, PCMU_RATE};
use maskline_e2e::{wait_for, E2eError, Maskline, Result, Session, API_KEY, PARTY_A, PARTY_B};
use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::{json, Value};

mod endpoint;
mod recording;
mod relay;

/// Overall bound of one media test.
const MEDIA_LIMIT: Duration = Duration::from_secs(40);
/// Party A's tone.
const A_HZ: f64 = 440.0;
/// Party B's tone.
const B_HZ: f64 = 1000.0;
/// Goertzel window: 100 ms, a whole number of periods of both tones.
const WINDOW: usize = 800;
/// How long a recording may take to be ready after the hangup.
const READY_WITHIN: Duration = Duration::from_secs(10);

/// A session with `record` set as given (`POST /v1/sessions`).
async fn session_with_record(ml: &Maskline, record: bool) -> Result<Session> {
    let body = json!({ "party_a": PARTY_A, "party_b": PARTY_B, "record": record });
    let json = ml
        .api()
        .expect_status(Method::POST, "/v1/sessions", Some(&body), 201)
        .await?;
    if json.get("record") != Some(&Value::Bool(record)) {
        return Err(E2eError::Unexpected(format!(
            "session created with record={record} says otherwise: {json}"
        )));
    }
    let field = |name: &str| {
        json.get(name)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| E2eError::Unexpected(format!("session without `{name}`: {json}")))
    };
    Ok(Session {
        id: field("id")?,
        masked_number: field("masked_number")?,
        json: json.clone(),
    })
}

/// The id of the session's live call.
async fn live_call_id(ml: &Maskline, session_id: &str) -> Result<String> {
    wait_for(
        "the session's active_call_id",
        Duration::from_secs(5),
        || async {
            let s = ml.api().get_session(session_id).await?;
            Ok(s.get("active_call_id")
                .and_then(Value::as_str)
                .map(str::to_string))
        },
    )
    .await
}

/// `GET /v1/calls/{id}` → 200.
async fn get_call(ml: &Maskline, id: &str) -> Result<Value> {
    ml.api()
        .expect_status(Method::GET, &format!("/v1/calls/{id}"), None, 200)
        .await
}

/// Polls the call until it has ended (`ended_at` set).
async fn ended_call(ml: &Maskline, id: &str) -> Result<Value> {
    wait_for("the call to end", Duration::from_secs(10), || async {
        let c = get_call(ml, id).await?;
        Ok(c.get("ended_at").is_some_and(|v| !v.is_null()).then_some(c))
    })
    .await
}

/// Polls the call until its `recording_url` is set; returns the call.
async fn recording_ready(ml: &Maskline, id: &str) -> Result<Value> {
    let call = wait_for("the call's recording_url", READY_WITHIN, || async {
        let c = get_call(ml, id).await?;
        Ok(c.get("recording_url")
            .is_some_and(Value::is_string)
            .then_some(c))
    })
    .await?;
    let url = call.get("recording_url").and_then(Value::as_str);
    if url != Some(format!("/v1/calls/{id}/recording").as_str()) {
        return Err(E2eError::Unexpected(format!(
            "recording_url should be /v1/calls/{id}/recording: {call}"
        )));
    }
    Ok(call)
}

/// An HTTP response with its headers and raw body.
#[derive(Debug)]
struct Fetched {
    status: u16,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Fetched {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// `method path_and_query` with exactly the given headers (no API key
/// unless listed).
async fn fetch(
    ml: &Maskline,
    method: Method,
    path_and_query: &str,
    headers: &[(&str, &str)],
) -> Result<Fetched> {
    let context = format!("{method} {path_and_query}");
    let http_err = |source| E2eError::Http {
        context: context.clone(),
        source,
    };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(http_err)?;
    let mut req = client.request(method, format!("{}{path_and_query}", ml.api().base()));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.map_err(http_err)?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.bytes().await.map_err(http_err)?.to_vec();
    Ok(Fetched {
        status,
        headers,
        body,
    })
}

/// The call's recording downloaded with the tenant's key, parsed.
async fn download(ml: &Maskline, call_id: &str) -> Result<Stereo> {
    let path = format!("/v1/calls/{call_id}/recording");
    let got = fetch(ml, Method::GET, &path, &[("X-API-Key", API_KEY)]).await?;
    if got.status != 200 {
        return Err(E2eError::Unexpected(format!(
            "GET {path} returned {}: {}",
            got.status,
            String::from_utf8_lossy(&got.body)
        )));
    }
    let rec = parse_stereo_wav(&got.body)
        .map_err(|e| E2eError::Unexpected(format!("the recording is not a stereo WAV: {e}")))?;
    if rec.rate != PCMU_RATE {
        return Err(E2eError::Unexpected(format!(
            "a PCMU-only call should be recorded at 8 kHz, got {} Hz",
            rec.rate
        )));
    }
    Ok(rec)
}

/// The file lasts as long as the call was answered (`duration_ms`,
/// answered_at → ended_at), within 40 ms.
fn assert_duration_matches(rec: &Stereo, call: &Value) {
    let answered = call.get("duration_ms").and_then(Value::as_i64);
    let Some(answered) = answered else {
        panic!("the ended call has no duration_ms: {call}");
    };
    let file = rec.duration_ms() as i64;
    assert!(
        (file - answered).abs() <= 40,
        "recording lasts {file} ms, the call was answered for {answered} ms: {call}"
    );
}

/// Every 100 ms window of `samples[from..to]` is dominated by `want` and
/// holds next to nothing of `other`.
fn assert_tone(samples: &[i16], from: usize, to: usize, want: f64, other: f64, what: &str) {
    let mut checked = 0;
    let mut at = from;
    while at + WINDOW <= to {
        let w = samples.get(at..at + WINDOW).unwrap_or_default();
        let (share, leak) = (
            tone_share(w, PCMU_RATE, want),
            tone_share(w, PCMU_RATE, other),
        );
        assert!(
            share > 0.8 && leak < 0.05,
            "{what}: window at sample {at} has {:.3} of its energy at {want} Hz and {:.3} at {other} Hz",
            share,
            leak
        );
        checked += 1;
        at += WINDOW;
    }
    assert!(checked > 0, "{what}: no whole window in {from}..{to}");
}

/// The recording position of the first sample of a stream whose first
/// packet starts with a zero sample (the tones start at phase 0): one
/// before the first sample that is not zero.
fn stream_origin(samples: &[i16], what: &str) -> (usize, usize) {
    let Some((first, last)) = maskline_e2e::media::nonzero_span(samples) else {
        panic!("{what} is silent");
    };
    (first.saturating_sub(1), last)
}

/// Samples at the recording rate in `d`.
fn samples_in(d: Duration) -> usize {
    (d.as_secs_f64() * f64::from(PCMU_RATE)).round() as usize
}

/// One 20 ms packet.
const PACKET: usize = FRAME;
