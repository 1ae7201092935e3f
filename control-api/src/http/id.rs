//! The `{id}` path segment of a route, as an extractor whose rejection is
//! an [`ApiError`] in the API's JSON shape.
//!
//! axum's own `Path<String>` answers a percent-encoded segment that is not
//! UTF-8 (`/v1/calls/%FF`) with a plain-text 400 that no client expects
//! and the OpenAPI document does not list. No object has such an id, so
//! it is a 404 `not_found` like any other unknown id.

use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;

use crate::error::ApiError;

/// The route's `{id}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdPath(pub String);

impl<S: Send + Sync> FromRequestParts<S> for IdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<String>::from_request_parts(parts, state)
            .await
            .map(|Path(id)| IdPath(id))
            .map_err(rejection)
    }
}

/// What a failed `{id}` extraction answers.
fn rejection(r: PathRejection) -> ApiError {
    match r {
        // A `String` segment only fails to deserialize when it is not UTF-8.
        PathRejection::FailedToDeserializePathParams(_) => {
            ApiError::NotFound("no such object: the id is not valid UTF-8")
        }
        // The route has no `{id}`: a bug of the router, not of the request.
        other => ApiError::Internal(format!("path extraction: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use axum::Router;

    /// Serves `/things/{id}` echoing the id on a loopback port and GETs
    /// `path` (sent as written: `%FF` stays encoded).
    async fn status_and_body(path: &str) -> (u16, String) {
        let app: Router =
            Router::new().route("/things/{id}", get(|IdPath(id): IdPath| async move { id }));
        let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
            Ok(l) => l,
            Err(e) => panic!("bind: {e}"),
        };
        let addr = match listener.local_addr() {
            Ok(a) => a,
            Err(e) => panic!("{e}"),
        };
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let resp = match reqwest::get(format!("http://{addr}{path}")).await {
            Ok(r) => r,
            Err(e) => panic!("GET {path}: {e}"),
        };
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap_or_default();
        server.abort();
        (status, body)
    }

    #[tokio::test]
    async fn a_decoded_id_is_extracted() {
        assert_eq!(
            status_and_body("/things/cal_%C3%A9x").await,
            (200, "cal_\u{e9}x".to_string())
        );
    }

    #[tokio::test]
    async fn an_id_that_is_not_utf8_is_a_json_404() {
        let (status, body) = status_and_body("/things/%FF").await;
        assert_eq!(status, 404, "{body}");
        let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        assert_eq!(json["error"], "not_found", "{body}");
    }
}
