//! `GET /v1/events` (tenant-wide SSE, optional `?type=a,b`) and
//! `GET /v1/calls/{id}/events` (one call's SSE). `Last-Event-ID` (header,
//! or `?last_event_id=`) replays what came after that id first.

use std::collections::BTreeMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{KeepAlive, Sse};
use axum::response::{IntoResponse, Response};

use crate::app::AppState;
use crate::error::ApiError;
use crate::http::auth::Authed;
use crate::http::id::IdPath;
use crate::http::sse::{event_stream, StreamSpec, HEARTBEAT, SSE_RETRY_AFTER_SECS};
use crate::service::events::EVENT_TYPES;
use crate::store::{calls, sessions};

/// Header a reconnecting EventSource sends.
pub const LAST_EVENT_ID: &str = "last-event-id";

type Params = Vec<(String, String)>;

/// What the query string and headers ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamQuery {
    /// `type` filter.
    pub types: Option<Vec<String>>,
    /// `Last-Event-ID`.
    pub after_id: Option<i64>,
}

/// `GET /v1/events`
pub async fn tenant_stream(
    State(state): State<AppState>,
    Authed(tenant): Authed,
    headers: HeaderMap,
    query: Result<Query<Params>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q = parse_query(&params(query)?, &headers, true)?;
    let spec = StreamSpec {
        tenant_id: tenant.id,
        call_id: None,
        types: q.types,
        after_id: q.after_id,
        recorded: false,
    };
    open(&state, spec)
}

/// `GET /v1/calls/{id}/events`
pub async fn call_stream(
    State(state): State<AppState>,
    Authed(tenant): Authed,
    IdPath(id): IdPath,
    headers: HeaderMap,
    query: Result<Query<Params>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q = parse_query(&params(query)?, &headers, false)?;
    let recorded = {
        let mut conn = state
            .store
            .pool()
            .acquire()
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        let call = calls::get_for_tenant(&mut conn, &tenant.id, &id)
            .await?
            .ok_or(ApiError::NotFound("no such call"))?;
        sessions::get(&mut conn, &call.session_id)
            .await?
            .is_some_and(|s| s.record != 0)
    };
    let spec = StreamSpec {
        tenant_id: tenant.id,
        call_id: Some(id),
        types: None,
        after_id: q.after_id,
        recorded,
    };
    open(&state, spec)
}

fn open(state: &AppState, spec: StreamSpec) -> Result<Response, ApiError> {
    let permit = state.sse.try_acquire().ok_or(ApiError::TooManySseStreams {
        max: state.sse.max(),
        retry_after_secs: SSE_RETRY_AFTER_SECS,
    })?;
    let stream = event_stream(state.store.clone(), &state.events, spec, permit);
    let sse = Sse::new(stream).keep_alive(KeepAlive::new().interval(HEARTBEAT).text("heartbeat"));
    let mut resp = sse.into_response();
    // Ask reverse proxies not to buffer the stream.
    resp.headers_mut().insert(
        "x-accel-buffering",
        axum::http::HeaderValue::from_static("no"),
    );
    Ok(resp)
}

fn params(query: Result<Query<Params>, QueryRejection>) -> Result<Params, ApiError> {
    query
        .map(|Query(p)| p)
        .map_err(|_| ApiError::field("query", "malformed query string"))
}

/// Read `type` (tenant streams only) and `last_event_id` from the query
/// and `Last-Event-ID` from the headers (the header wins: it is what a
/// reconnecting EventSource sends).
pub fn parse_query(
    params: &[(String, String)],
    headers: &HeaderMap,
    allow_types: bool,
) -> Result<StreamQuery, ApiError> {
    let mut errors = BTreeMap::new();
    let mut types: Option<Vec<String>> = None;
    let mut query_id: Option<&str> = None;
    for (key, value) in params {
        match key.as_str() {
            "type" if allow_types => {
                let list = types.get_or_insert_with(Vec::new);
                for t in value.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                    if EVENT_TYPES.contains(&t) {
                        list.push(t.to_string());
                    } else {
                        errors.insert(
                            "type".to_string(),
                            format!(
                                "unknown event type `{t}`; one of {}",
                                EVENT_TYPES.join(", ")
                            ),
                        );
                    }
                }
            }
            "last_event_id" => query_id = Some(value.as_str()),
            other => {
                errors.insert(other.to_string(), "unknown query parameter".to_string());
            }
        }
    }
    if types.as_ref().is_some_and(Vec::is_empty) {
        errors
            .entry("type".to_string())
            .or_insert_with(|| "must name at least one event type".to_string());
    }
    let header_id = headers
        .get(LAST_EVENT_ID)
        .map(|v| v.to_str().unwrap_or("\u{0}").trim())
        .filter(|v| !v.is_empty());
    let after_id = match header_id.or(query_id) {
        None => None,
        Some(raw) => match raw.parse::<i64>() {
            Ok(id) if id >= 0 => Some(id),
            _ => {
                errors.insert(
                    "last_event_id".to_string(),
                    "must be an event id (a non-negative integer)".to_string(),
                );
                None
            }
        },
    };
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    Ok(StreamQuery { types, after_id })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> Params {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn fields(r: Result<StreamQuery, ApiError>) -> BTreeMap<String, String> {
        match r {
            Err(ApiError::Validation(f)) => f,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn types_and_ids_parse() {
        let none = HeaderMap::new();
        let q = parse_query(&p(&[("type", "call.hangup, call.answered")]), &none, true);
        assert!(q.is_ok_and(|q| q.types
            == Some(vec!["call.hangup".into(), "call.answered".into()])
            && q.after_id.is_none()));
        let q = parse_query(&p(&[("last_event_id", "42")]), &none, false);
        assert!(q.is_ok_and(|q| q.after_id == Some(42) && q.types.is_none()));
        let mut h = HeaderMap::new();
        h.insert(LAST_EVENT_ID, axum::http::HeaderValue::from_static("7"));
        let q = parse_query(&p(&[("last_event_id", "42")]), &h, true);
        assert!(q.is_ok_and(|q| q.after_id == Some(7)), "the header wins");
        h.insert(LAST_EVENT_ID, axum::http::HeaderValue::from_static(""));
        let q = parse_query(&[], &h, true);
        assert!(q.is_ok_and(|q| q.after_id.is_none()), "empty header = none");
    }

    #[test]
    fn bad_queries_name_the_parameter() {
        let none = HeaderMap::new();
        assert!(
            fields(parse_query(&p(&[("type", "call.nope")]), &none, true))["type"]
                .starts_with("unknown event type `call.nope`")
        );
        assert_eq!(
            fields(parse_query(&p(&[("type", ",")]), &none, true))["type"],
            "must name at least one event type"
        );
        assert_eq!(
            fields(parse_query(&p(&[("type", "call.hangup")]), &none, false))["type"],
            "unknown query parameter"
        );
        for bad in ["x", "-1", "1.5", "99999999999999999999"] {
            assert!(
                fields(parse_query(&p(&[("last_event_id", bad)]), &none, true))
                    .contains_key("last_event_id"),
                "{bad}"
            );
        }
        assert_eq!(
            fields(parse_query(&p(&[("since", "1h")]), &none, true))["since"],
            "unknown query parameter"
        );
    }
}
