//! `POST /v1/sessions`, `GET /v1/sessions/{id}`,
//! `POST /v1/sessions/{id}/complete`.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Json;
use maskline_engine::sip::e164;
use serde_json::{Map, Value};

use crate::app::AppState;
use crate::error::ApiError;
use crate::http::auth::Authed;
use crate::http::body::JsonObject;
use crate::http::id::IdPath;
use crate::service::idempotency;
use crate::service::sessions::NewSession;
use crate::store::tenants::TenantRow;
use crate::view::SessionView;

/// Largest `metadata`, as serialized JSON.
pub const METADATA_MAX_BYTES: usize = 16 * 1024;
const E164_HINT: &str = "must be an E.164 number such as +14155550101";
const FIELDS: [&str; 6] = [
    "party_a",
    "party_b",
    "ttl_minutes",
    "record",
    "metadata",
    "inbound",
];

/// `POST /v1/sessions` → 201 Session. With an `Idempotency-Key` the
/// answer carries `replayed` and a retry returns the stored response.
pub async fn create(
    State(state): State<AppState>,
    Authed(tenant): Authed,
    headers: HeaderMap,
    JsonObject(body): JsonObject,
) -> Result<Response, ApiError> {
    let key = idempotency::key_from(&headers)?;
    let body = Value::Object(body);
    idempotency::run(
        &state.store,
        state.sessions.clock(),
        &tenant.id,
        key,
        "POST /v1/sessions",
        &body,
        || async {
            let Value::Object(fields) = &body else {
                return Err(ApiError::Internal("body is not an object".into()));
            };
            let req = validate_create(fields, &tenant)?;
            let row = state.sessions.create(&tenant, req).await?;
            let view = serde_json::to_value(SessionView::from(&row))
                .map_err(|e| ApiError::Internal(e.to_string()))?;
            Ok((StatusCode::CREATED, view))
        },
    )
    .await
}

/// `GET /v1/sessions/{id}` → Session with `calls`.
pub async fn get(
    State(state): State<AppState>,
    Authed(tenant): Authed,
    IdPath(id): IdPath,
) -> Result<Json<SessionView>, ApiError> {
    let (row, calls) = state.sessions.get(&tenant.id, &id).await?;
    Ok(Json(SessionView::from(&row).with_calls(&calls)))
}

/// `POST /v1/sessions/{id}/complete` → 200 Session (idempotent). Any body
/// is ignored.
pub async fn complete(
    State(state): State<AppState>,
    Authed(tenant): Authed,
    IdPath(id): IdPath,
) -> Result<Json<SessionView>, ApiError> {
    let row = state.sessions.complete(&tenant.id, &id).await?;
    Ok(Json(SessionView::from(&row)))
}

/// Check a create-session body against the contract and the tenant's
/// limits. Every bad field is reported at once.
pub fn validate_create(
    body: &Map<String, Value>,
    tenant: &TenantRow,
) -> Result<NewSession, ApiError> {
    let mut errors = BTreeMap::new();
    for key in body.keys() {
        if !FIELDS.contains(&key.as_str()) {
            errors.insert(key.clone(), "unknown field".to_string());
        }
    }
    let mut party = |name: &str| match body.get(name) {
        None | Some(Value::Null) => {
            errors.insert(name.to_string(), "is required".to_string());
            None
        }
        Some(Value::String(s)) => {
            let n = e164::normalize(s);
            if n.is_none() {
                errors.insert(name.to_string(), E164_HINT.to_string());
            }
            n
        }
        Some(_) => {
            errors.insert(name.to_string(), format!("{E164_HINT} (a string)"));
            None
        }
    };
    let party_a = party("party_a");
    let party_b = party("party_b");
    if let (Some(a), Some(b)) = (&party_a, &party_b) {
        if a == b {
            errors.insert("party_b".into(), "must differ from party_a".into());
        }
    }

    let max = tenant.max_ttl_minutes;
    let ttl_minutes = match body.get("ttl_minutes") {
        None | Some(Value::Null) => Some(tenant.default_ttl_minutes.clamp(1, max.max(1))),
        Some(v) => match v.as_i64() {
            Some(t) if t < 1 => {
                errors.insert("ttl_minutes".into(), "must be at least 1".into());
                None
            }
            Some(t) if t > max => {
                errors.insert(
                    "ttl_minutes".into(),
                    format!("must be at most {max} (the tenant's max_ttl_minutes)"),
                );
                None
            }
            Some(t) => Some(t),
            None if v.as_u64().is_some() => {
                errors.insert(
                    "ttl_minutes".into(),
                    format!("must be at most {max} (the tenant's max_ttl_minutes)"),
                );
                None
            }
            None => {
                errors.insert(
                    "ttl_minutes".into(),
                    "must be a whole number of minutes".into(),
                );
                None
            }
        },
    };

    let record = match body.get("record") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            errors.insert("record".into(), "must be true or false".into());
            false
        }
    };

    let metadata = match body.get("metadata") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => {
            let size = Value::Object(m.clone()).to_string().len();
            if size > METADATA_MAX_BYTES {
                errors.insert(
                    "metadata".into(),
                    format!("must be at most {METADATA_MAX_BYTES} bytes of JSON (got {size})"),
                );
            }
            m.clone()
        }
        Some(_) => {
            errors.insert("metadata".into(), "must be a JSON object".into());
            Map::new()
        }
    };

    let control = match body.get("inbound") {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) if s == "bridge" => false,
        Some(Value::String(s)) if s == "control" => true,
        Some(_) => {
            errors.insert("inbound".into(), "must be \"bridge\" or \"control\"".into());
            false
        }
    };

    match (party_a, party_b, ttl_minutes) {
        (Some(party_a), Some(party_b), Some(ttl_minutes)) if errors.is_empty() => Ok(NewSession {
            party_a,
            party_b,
            ttl_minutes,
            record,
            metadata,
            control,
        }),
        _ => Err(ApiError::Validation(errors)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tenant() -> TenantRow {
        TenantRow {
            id: "ten_1".into(),
            name: "acme".into(),
            default_ttl_minutes: 60,
            max_ttl_minutes: 240,
            max_concurrent_calls: 10,
            calls_per_second: 1,
            webhook_url: None,
            created_at: 0,
        }
    }

    fn check(body: Value) -> Result<NewSession, BTreeMap<String, String>> {
        let Value::Object(map) = body else {
            panic!("test body must be an object")
        };
        validate_create(&map, &tenant()).map_err(|e| match e {
            ApiError::Validation(f) => f,
            other => panic!("{other:?}"),
        })
    }

    fn errors(body: Value) -> BTreeMap<String, String> {
        match check(body) {
            Ok(ok) => panic!("accepted: {ok:?}"),
            Err(f) => f,
        }
    }

    #[test]
    fn minimal_body_gets_defaults_and_normalised_numbers() {
        let s = check(json!({"party_a": "14155550101", "party_b": "+1 415 555 0102"}))
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(s.party_a, "+14155550101");
        assert_eq!(s.party_b, "+14155550102");
        assert_eq!(s.ttl_minutes, 60);
        assert!(!s.record);
        assert!(s.metadata.is_empty());
        assert!(!s.control, "inbound defaults to bridge");
    }

    #[test]
    fn inbound_mode_is_bridge_or_control() {
        let with =
            |v: Value| json!({"party_a": "+14155550101", "party_b": "+14155550102", "inbound": v});
        assert!(check(with(json!("control"))).is_ok_and(|s| s.control));
        assert!(check(with(json!("bridge"))).is_ok_and(|s| !s.control));
        assert!(check(with(Value::Null)).is_ok_and(|s| !s.control));
        for bad in [json!("Control"), json!(true), json!("hold")] {
            assert_eq!(
                errors(with(bad))["inbound"],
                "must be \"bridge\" or \"control\""
            );
        }
    }

    #[test]
    fn full_body_accepted() {
        let s = check(
            json!({"party_a": "+14155550101", "party_b": "+14155550102", "ttl_minutes": 240,
            "record": true, "metadata": {"order": 42}}),
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!((s.ttl_minutes, s.record), (240, true));
        assert_eq!(s.metadata.get("order"), Some(&json!(42)));
    }

    #[test]
    fn each_bad_field_is_named() {
        let ok = json!({"party_a": "+14155550101", "party_b": "+14155550102"});
        let with = |k: &str, v: Value| {
            let mut b = ok.clone();
            b[k] = v;
            b
        };
        assert_eq!(
            errors(json!({"party_b": "+14155550102"}))["party_a"],
            "is required"
        );
        assert_eq!(errors(with("party_a", json!("abc")))["party_a"], E164_HINT);
        assert!(errors(with("party_b", json!(14155550102u64)))["party_b"].starts_with(E164_HINT));
        assert_eq!(
            errors(with("party_b", json!("14155550101")))["party_b"],
            "must differ from party_a"
        );
        assert_eq!(
            errors(with("ttl_minutes", json!(0)))["ttl_minutes"],
            "must be at least 1"
        );
        assert_eq!(
            errors(with("ttl_minutes", json!(1.5)))["ttl_minutes"],
            "must be a whole number of minutes"
        );
        assert_eq!(
            errors(with("ttl_minutes", json!("5")))["ttl_minutes"],
            "must be a whole number of minutes"
        );
        assert_eq!(
            errors(with("ttl_minutes", json!(241)))["ttl_minutes"],
            "must be at most 240 (the tenant's max_ttl_minutes)"
        );
        assert!(errors(with("ttl_minutes", json!(u64::MAX)))["ttl_minutes"]
            .starts_with("must be at most 240"));
        assert_eq!(
            errors(with("record", json!("yes")))["record"],
            "must be true or false"
        );
        assert_eq!(
            errors(with("metadata", json!([1])))["metadata"],
            "must be a JSON object"
        );
        let big = "x".repeat(METADATA_MAX_BYTES);
        assert!(errors(with("metadata", json!({"k": big})))["metadata"]
            .starts_with("must be at most 16384 bytes"));
        assert_eq!(
            errors(with("colour", json!("red")))["colour"],
            "unknown field"
        );
    }

    #[test]
    fn all_problems_reported_together() {
        let f = errors(json!({"party_a": 1, "ttl_minutes": -1, "extra": true}));
        let keys: Vec<&str> = f.keys().map(String::as_str).collect();
        assert_eq!(keys, ["extra", "party_a", "party_b", "ttl_minutes"]);
    }

    #[test]
    fn null_optionals_mean_defaults() {
        let s = check(json!({"party_a": "+14155550101", "party_b": "+14155550102",
            "ttl_minutes": null, "record": null, "metadata": null}))
        .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!((s.ttl_minutes, s.record, s.metadata.len()), (60, false, 0));
    }
}
