//! The recording endpoints: `GET /v1/calls/{id}/recording` (auth by header
//! or `?api_key=`, tenant scope, 404 until ready, Range) and
//! `POST /v1/calls/{id}/recording/{pause|resume}` refusals.

use maskline_e2e::media::parse_stereo_wav;
use maskline_e2e::{
    bounded, bridge_call, CallEnds, Maskline, Result, StartOptions, API_KEY, PARTY_A, PARTY_B,
};
use reqwest::Method;
use serde_json::json;

use super::{
    ended_call, fetch, live_call_id, recording_ready, session_with_record, Fetched, MEDIA_LIMIT,
};

/// A second tenant's API key.
const OTHER_KEY: &str = "other-tenant-key-0123456789abcdef";

fn with_other_tenant() -> StartOptions {
    StartOptions {
        extra_toml: format!(
            "\n[[tenants]]\nname = \"other\"\napi_keys = [\"{OTHER_KEY}\"]\nnumbers = [\"+15550000099\"]\n"
        ),
        ..StartOptions::default()
    }
}

fn assert_error(got: &Fetched, status: u16, code: &str, what: &str) {
    assert_eq!(
        (got.status, got.json().get("error").cloned()),
        (status, Some(json!(code))),
        "{what}: {}",
        String::from_utf8_lossy(&got.body)
    );
}

/// Issue 4: 404 `not_found` while the call is live (not ready), then after
/// `recording.ready`: 401 without a key or with a wrong one, 404 for
/// another tenant's key, the file with `X-API-Key` or with `?api_key=`
/// (which no other route accepts), byte ranges as 206 with the right
/// bytes and `Content-Range`, 416 past the end; pause after the call is
/// over is 409 `call_ended`.
#[tokio::test]
async fn recording_download_auth_readiness_and_ranges() -> Result<()> {
    bounded(MEDIA_LIMIT, async {
        let ml = Maskline::start(with_other_tenant()).await?;
        let session = session_with_record(&ml, true).await?;
        let mut call = bridge_call(
            &ml,
            CallEnds::slot(&ml, 0),
            PARTY_A,
            PARTY_B,
            &session.masked_number,
        )
        .await?;
        let id = live_call_id(&ml, &session.id).await?;
        let path = format!("/v1/calls/{id}/recording");
        let key = [("X-API-Key", API_KEY)];

        let live = fetch(&ml, Method::GET, &path, &key).await?;
        assert_error(&live, 404, "not_found", "a live call's recording");
        let other = fetch(
            &ml,
            Method::POST,
            &format!("{path}/pause"),
            &[("X-API-Key", OTHER_KEY)],
        )
        .await?;
        assert_error(&other, 404, "not_found", "pausing another tenant's call");

        call.exchange_rtp().await?;
        call.caller_hangs_up().await?;
        recording_ready(&ml, &id).await?;

        let full = fetch(&ml, Method::GET, &path, &key).await?;
        assert_eq!(full.status, 200, "{}", String::from_utf8_lossy(&full.body));
        assert_eq!(full.header("content-type"), Some("audio/wav"));
        assert_eq!(full.header("accept-ranges"), Some("bytes"));
        let len = full.body.len();
        assert_eq!(
            full.header("content-length"),
            Some(len.to_string().as_str())
        );
        if let Err(e) = parse_stereo_wav(&full.body) {
            panic!("the download is not a finalised stereo WAV: {e}");
        }

        // Authentication.
        let none = fetch(&ml, Method::GET, &path, &[]).await?;
        assert_error(&none, 401, "unauthenticated", "no key");
        let wrong = fetch(&ml, Method::GET, &path, &[("X-API-Key", "nope-nope")]).await?;
        assert_error(&wrong, 401, "unauthenticated", "a wrong key");
        let wrong_query = fetch(&ml, Method::GET, &format!("{path}?api_key=nope"), &[]).await?;
        assert_error(&wrong_query, 401, "unauthenticated", "a wrong ?api_key=");
        let by_query = fetch(&ml, Method::GET, &format!("{path}?api_key={API_KEY}"), &[]).await?;
        assert_eq!(by_query.status, 200, "?api_key= on the recording route");
        assert!(by_query.body == full.body, "?api_key= serves the same file");
        for elsewhere in [
            (Method::GET, format!("/v1/calls/{id}?api_key={API_KEY}")),
            (Method::POST, format!("{path}/pause?api_key={API_KEY}")),
        ] {
            let got = fetch(&ml, elsewhere.0.clone(), &elsewhere.1, &[]).await?;
            assert_error(
                &got,
                401,
                "unauthenticated",
                &format!("?api_key= on {}", elsewhere.1),
            );
        }

        // Tenant scope: the other tenant's key is valid but the call is not
        // theirs.
        for (p, h) in [
            (path.clone(), vec![("X-API-Key", OTHER_KEY)]),
            (format!("{path}?api_key={OTHER_KEY}"), vec![]),
        ] {
            let got = fetch(&ml, Method::GET, &p, &h).await?;
            assert_error(&got, 404, "not_found", "another tenant's recording");
        }

        // Ranges.
        let ranged = |range: String| {
            let ml = &ml;
            let path = path.clone();
            async move {
                fetch(
                    ml,
                    Method::GET,
                    &path,
                    &[("X-API-Key", API_KEY), ("Range", &range)],
                )
                .await
            }
        };
        let cases = [
            ("bytes=0-43".to_string(), 0, 44),
            ("bytes=100-".to_string(), 100, len),
            (format!("bytes=-{}", 10), len - 10, len),
            (format!("bytes=1000-{}", len + 5000), 1000, len),
        ];
        for (range, from, to) in cases {
            let got = ranged(range.clone()).await?;
            assert_eq!(got.status, 206, "{range}");
            assert_eq!(
                got.header("content-range"),
                Some(format!("bytes {from}-{}/{len}", to - 1).as_str()),
                "{range}"
            );
            assert_eq!(got.header("accept-ranges"), Some("bytes"), "{range}");
            assert_eq!(got.header("content-type"), Some("audio/wav"), "{range}");
            assert!(
                full.body.get(from..to) == Some(got.body.as_slice()),
                "{range}: {} bytes that are not bytes {from}..{to} of the file",
                got.body.len()
            );
        }
        assert!(
            full.body.get(..4) == Some(&b"RIFF"[..]),
            "the first range is the RIFF header"
        );
        for range in [
            format!("bytes={len}-"),
            format!("bytes={}-{}", len + 1, len + 9),
        ] {
            let got = ranged(range.clone()).await?;
            assert_eq!(got.status, 416, "{range}");
            assert_eq!(
                got.header("content-range"),
                Some(format!("bytes */{len}").as_str()),
                "{range}"
            );
        }
        let head = fetch(&ml, Method::HEAD, &path, &key).await?;
        assert_eq!(head.status, 200);
        assert_eq!(
            head.header("content-length"),
            Some(len.to_string().as_str())
        );

        // Over: pause and resume are refused.
        for action in ["pause", "resume"] {
            let got = fetch(&ml, Method::POST, &format!("{path}/{action}"), &key).await?;
            assert_error(&got, 409, "call_ended", &format!("{action} after the call"));
        }
        Ok(())
    })
    .await
}

/// Issue 4: pause/resume on a live call whose session does not record is
/// 409 `not_recording`; its recording never becomes ready (404 after the
/// call too); an unknown call is 404.
#[tokio::test]
async fn pause_on_an_unrecorded_call_is_not_recording() -> Result<()> {
    bounded(MEDIA_LIMIT, async {
        let ml = Maskline::start(StartOptions::default()).await?;
        let session = session_with_record(&ml, false).await?;
        let mut call = bridge_call(
            &ml,
            CallEnds::slot(&ml, 0),
            PARTY_A,
            PARTY_B,
            &session.masked_number,
        )
        .await?;
        let id = live_call_id(&ml, &session.id).await?;
        let key = [("X-API-Key", API_KEY)];
        for action in ["pause", "resume"] {
            let got = fetch(
                &ml,
                Method::POST,
                &format!("/v1/calls/{id}/recording/{action}"),
                &key,
            )
            .await?;
            assert_error(&got, 409, "not_recording", action);
            let unknown = fetch(
                &ml,
                Method::POST,
                &format!("/v1/calls/cal_nosuchcall/recording/{action}"),
                &key,
            )
            .await?;
            assert_error(&unknown, 404, "not_found", "an unknown call");
        }
        call.callee_hangs_up().await?;
        let ended = ended_call(&ml, &id).await?;
        assert!(
            ended.get("recording_url").is_some_and(|v| v.is_null()),
            "an unrecorded call has no recording_url: {ended}"
        );
        let got = fetch(&ml, Method::GET, &format!("/v1/calls/{id}/recording"), &key).await?;
        assert_error(&got, 404, "not_found", "an unrecorded call's recording");
        Ok(())
    })
    .await
}
