//! The control API's JSON bodies: the body reader (`http::body::parse_object`)
//! and every validator a body goes through (create session, call-control
//! commands, `PUT /v1/webhook`) never panic on any bytes, and whatever they
//! reject renders as the API's JSON error.
//!
//! Input: the request body. Its length picks nothing; every validator sees
//! every body that is a JSON object.

#![no_main]

use axum::response::IntoResponse;
use libfuzzer_sys::fuzz_target;
use maskline::error::ApiError;
use maskline::http::{body, commands, sessions, webhooks};
use maskline::service::commands::CallCommand;
use maskline::store::tenants::TenantRow;

fn tenant() -> TenantRow {
    TenantRow {
        id: "ten_fuzz".into(),
        name: "fuzz".into(),
        default_ttl_minutes: 60,
        max_ttl_minutes: 240,
        max_concurrent_calls: 10,
        calls_per_second: 10,
        webhook_url: None,
        created_at: 0,
    }
}

/// A rejection must be a client error with a body (never a 5xx).
fn rejected(e: ApiError) {
    let status = e.into_response().status();
    assert!(status.is_client_error(), "a body was answered {status}");
}

fuzz_target!(|data: &[u8]| {
    let map = match body::parse_object(data) {
        Ok(map) => map,
        Err(e) => return rejected(e),
    };
    match sessions::validate_create(&map, &tenant()) {
        Ok(s) => {
            assert_ne!(s.party_a, s.party_b, "a session between one number");
            assert!((1..=240).contains(&s.ttl_minutes), "ttl {}", s.ttl_minutes);
        }
        Err(e) => rejected(e),
    }
    for command in [
        CallCommand::Answer,
        CallCommand::Hangup,
        CallCommand::Disconnect,
    ] {
        if let Err(e) = commands::validate(command, &map) {
            rejected(e);
        }
    }
    match webhooks::validate_put(&map) {
        Ok(url) => {
            let scheme = reqwest::Url::parse(&url).map(|u| u.scheme().to_string());
            assert!(
                matches!(scheme.as_deref(), Ok("http" | "https")),
                "an accepted webhook URL that is not http(s): {url:?}"
            );
        }
        Err(e) => rejected(e),
    }
});
