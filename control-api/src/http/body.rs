//! The JSON body extractor: reads bytes itself so that every body problem
//! (too large, unreadable, malformed, not an object) is an [`ApiError`] in
//! the API's JSON shape, never axum's plain-text 400/415.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};

use crate::app::BODY_LIMIT_BYTES;
use crate::error::ApiError;

/// A request body that is a JSON object. Content-Type is not checked.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonObject(pub serde_json::Map<String, serde_json::Value>);

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read(req, state).await?;
        parse_object(&bytes).map(JsonObject)
    }
}

/// A request body that is a JSON object, or empty (read as `{}`): for
/// requests whose fields are all optional.
#[derive(Debug, Clone, PartialEq)]
pub struct OptionalJsonObject(pub serde_json::Map<String, serde_json::Value>);

impl<S: Send + Sync> FromRequest<S> for OptionalJsonObject {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJsonObject(serde_json::Map::new()));
        }
        parse_object(&bytes).map(OptionalJsonObject)
    }
}

async fn read<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge {
                limit: BODY_LIMIT_BYTES,
            }
        } else {
            ApiError::field("body", "could not read the request body")
        }
    })
}

/// Parse bytes as a JSON object, naming `body` in the 422 when it is not.
pub fn parse_object(bytes: &[u8]) -> Result<serde_json::Map<String, serde_json::Value>, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::field(
            "body",
            "must be a JSON object; the body is empty",
        ));
    }
    match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::field("body", "must be a JSON object")),
        Err(e) => Err(ApiError::field("body", format!("malformed JSON: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_message(r: Result<serde_json::Map<String, serde_json::Value>, ApiError>) -> String {
        match r {
            Err(ApiError::Validation(f)) => f.get("body").cloned().unwrap_or_default(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn object_parses() {
        let map = parse_object(br#"{"a": 1}"#).unwrap_or_default();
        assert_eq!(map.get("a"), Some(&serde_json::json!(1)));
    }

    #[test]
    fn bad_bodies_name_body() {
        assert!(field_message(parse_object(b"")).contains("empty"));
        assert!(field_message(parse_object(b"{\"a\":")).starts_with("malformed JSON"));
        assert_eq!(field_message(parse_object(b"[1]")), "must be a JSON object");
        assert_eq!(
            field_message(parse_object(b"\"x\"")),
            "must be a JSON object"
        );
    }
}
