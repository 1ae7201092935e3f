//! `PUT|GET|DELETE /v1/webhook` and `GET /v1/webhook/deliveries`.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use serde_json::{json, Map, Value};

use crate::app::AppState;
use crate::error::ApiError;
use crate::http::auth::Authed;
use crate::http::body::JsonObject;
use crate::service::webhooks;
use crate::store::webhook_deliveries::AttemptRow;
use crate::store::webhook_endpoints::EndpointRow;
use crate::util::time::format_rfc3339;

/// Attempts listed by default.
pub const DEFAULT_LIMIT: i64 = 50;
/// Most attempts listed.
pub const MAX_LIMIT: i64 = 500;

/// `PUT /v1/webhook {url}` → `{url, secret}`: the secret is shown only
/// here. Each call makes a new secret and enables the endpoint.
pub async fn put(
    State(state): State<AppState>,
    Authed(tenant): Authed,
    JsonObject(body): JsonObject,
) -> Result<Json<Value>, ApiError> {
    let url = validate_put(&body)?;
    let row = webhooks::put(&state.store, state.sessions.clock(), &tenant.id, &url).await?;
    Ok(Json(json!({ "url": row.url, "secret": row.secret })))
}

/// `GET /v1/webhook` → the endpoint without its secret; 404 when none.
pub async fn get(
    State(state): State<AppState>,
    Authed(tenant): Authed,
) -> Result<Json<Value>, ApiError> {
    let row = webhooks::get(&state.store, &tenant.id)
        .await?
        .ok_or(ApiError::NotFound(
            "no webhook endpoint; set one with PUT /v1/webhook",
        ))?;
    Ok(Json(endpoint_view(&row)))
}

/// `DELETE /v1/webhook` → `{deleted}` (idempotent). Pending deliveries are
/// dropped.
pub async fn delete(
    State(state): State<AppState>,
    Authed(tenant): Authed,
) -> Result<Json<Value>, ApiError> {
    let deleted = webhooks::delete(&state.store, state.sessions.clock(), &tenant.id).await?;
    Ok(Json(json!({ "deleted": deleted })))
}

/// `GET /v1/webhook/deliveries?limit=` → `{data: [attempt…]}`, newest first.
pub async fn deliveries(
    State(state): State<AppState>,
    Authed(tenant): Authed,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(params) = query.map_err(|_| ApiError::field("query", "malformed query string"))?;
    let limit = parse_limit(&params)?;
    let rows = webhooks::recent_attempts(&state.store, &tenant.id, limit).await?;
    let data: Vec<Value> = rows.iter().map(attempt_view).collect();
    Ok(Json(json!({ "data": data })))
}

/// Check a `PUT /v1/webhook` body: only `url`, an http(s) URL. Returns
/// the URL.
pub fn validate_put(body: &Map<String, Value>) -> Result<String, ApiError> {
    if let Some(key) = body.keys().find(|k| k.as_str() != "url") {
        return Err(ApiError::field(key, "unknown field"));
    }
    match body.get("url") {
        None | Some(Value::Null) => Err(ApiError::field("url", "is required")),
        Some(Value::String(url)) => webhooks::check_url(url)
            .map(|()| url.clone())
            .map_err(|m| ApiError::field("url", m)),
        Some(_) => Err(ApiError::field("url", "must be a string")),
    }
}

fn parse_limit(params: &[(String, String)]) -> Result<i64, ApiError> {
    let mut limit = DEFAULT_LIMIT;
    for (k, v) in params {
        match k.as_str() {
            "limit" => match v.parse::<i64>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => limit = n,
                _ => {
                    return Err(ApiError::field(
                        "limit",
                        format!("must be a whole number from 1 to {MAX_LIMIT}"),
                    ))
                }
            },
            other => return Err(ApiError::field(other, "unknown query parameter")),
        }
    }
    Ok(limit)
}

fn endpoint_view(e: &EndpointRow) -> Value {
    json!({
        "url": e.url,
        "secret_set": !e.secret.is_empty(),
        "source": e.source,
        "enabled": e.disabled_at.is_none(),
        "disabled_at": e.disabled_at.map(format_rfc3339),
        "disabled_reason": e.disabled_reason,
        "created_at": format_rfc3339(e.created_at),
        "updated_at": format_rfc3339(e.updated_at),
    })
}

fn attempt_view(a: &AttemptRow) -> Value {
    json!({
        "event_id": a.event_id.to_string(),
        "event_type": a.event_type,
        "webhook_id": crate::webhook::signature::message_id(a.event_id),
        "attempt": a.attempt,
        "url": a.url,
        "status_code": a.status_code,
        "error": a.error,
        "outcome": a.outcome,
        "duration_ms": a.duration_ms,
        "at": format_rfc3339(a.at),
        "delivery_status": a.delivery_status,
        "next_attempt_at": a.next_attempt_at.map(format_rfc3339),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("object"),
        }
    }

    fn field(r: Result<String, ApiError>, name: &str) -> String {
        match r {
            Err(ApiError::Validation(f)) => f.get(name).cloned().unwrap_or_default(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn put_body() {
        assert_eq!(
            validate_put(&body(json!({"url": "http://127.0.0.1:9/h"}))).ok(),
            Some("http://127.0.0.1:9/h".to_string())
        );
        assert_eq!(field(validate_put(&body(json!({}))), "url"), "is required");
        assert_eq!(
            field(validate_put(&body(json!({"url": 1}))), "url"),
            "must be a string"
        );
        assert!(field(validate_put(&body(json!({"url": "ftp://x/"}))), "url").contains("http"));
        assert_eq!(
            field(
                validate_put(&body(json!({"url": "http://x/", "secret": "s"}))),
                "secret"
            ),
            "unknown field"
        );
    }

    #[test]
    fn limits() {
        let p = |v: &str| vec![("limit".to_string(), v.to_string())];
        assert_eq!(parse_limit(&[]).ok(), Some(DEFAULT_LIMIT));
        assert_eq!(parse_limit(&p("10")).ok(), Some(10));
        for bad in ["0", "501", "x"] {
            assert!(parse_limit(&p(bad)).is_err(), "{bad}");
        }
        assert!(parse_limit(&[("cursor".into(), "x".into())]).is_err());
    }
}
