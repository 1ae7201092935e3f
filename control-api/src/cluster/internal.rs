//! The internal HTTP route other nodes forward commands to:
//! `POST /internal/v1/commands` with the cluster secret in
//! `X-Maskline-Cluster-Secret` and a [`Forwarded`] body; the answer is the
//! local engine's result as a [`ForwardReply`]. Mounted only on clustered
//! nodes; a wrong or missing secret is 401.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use maskline_engine::EngineHandle;

use crate::cluster::forward::{ForwardReply, Forwarded, INTERNAL_PATH, SECRET_HEADER};
use crate::cluster::Cluster;

#[derive(Clone)]
struct Internal {
    cluster: Cluster,
    engine: EngineHandle,
}

/// `app` plus the internal route when the node is clustered.
pub fn mount(app: Router, cluster: Option<&Cluster>, engine: &EngineHandle) -> Router {
    let Some(cluster) = cluster else {
        return app;
    };
    let internal = Router::new()
        .route(INTERNAL_PATH, post(command))
        .with_state(Internal {
            cluster: cluster.clone(),
            engine: engine.clone(),
        });
    app.merge(internal)
}

async fn command(
    State(state): State<Internal>,
    headers: HeaderMap,
    body: Result<Json<Forwarded>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let authorized = headers
        .get(SECRET_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|s| state.cluster.secret_matches(s));
    if !authorized {
        return error(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "wrong cluster secret",
        );
    }
    let Ok(Json(fwd)) = body else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "not a forwarded command",
        );
    };
    tracing::debug!(call_id = %fwd.call_id(), "forwarded command from another node");
    let result = state.engine.send(fwd.into_command()).await;
    Json(ForwardReply::from_result(result)).into_response()
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(serde_json::json!({"error": code, "message": message})),
    )
        .into_response()
}
