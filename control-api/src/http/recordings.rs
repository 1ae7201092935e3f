//! `GET /v1/calls/{id}/recording` (the WAV, with HTTP Range) and
//! `POST /v1/calls/{id}/recording/{pause|resume}`.
//!
//! The download is the one route that also takes the API key as
//! `?api_key=`, so that a plain `<audio src>` can play it; the header wins
//! when both are given. The file is streamed from disk in chunks, never
//! read whole into memory.

use std::io::SeekFrom;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::stream::{self, Stream};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::app::AppState;
use crate::error::ApiError;
use crate::http::auth::{Authed, API_KEY_HEADER};
use crate::http::id::IdPath;
use crate::http::range::{self, RangeRequest};
use crate::service::recordings::RecordingError;
use crate::store::tenants::TenantRow;

/// Bytes read from the file per body chunk.
const CHUNK: usize = 64 * 1024;
/// Media type of a recording.
pub const WAV_CONTENT_TYPE: &str = "audio/wav";

impl From<RecordingError> for ApiError {
    fn from(e: RecordingError) -> Self {
        match e {
            RecordingError::NotFound => ApiError::NotFound("no such call"),
            RecordingError::NotReady => ApiError::NotFound("the call's recording is not ready"),
            RecordingError::CallEnded => ApiError::CallEnded,
            RecordingError::NotRecording => ApiError::NotRecording,
            RecordingError::Engine(detail) => ApiError::Internal(detail),
            RecordingError::Store(e) => e.into(),
        }
    }
}

/// The tenant of a recording request: `X-API-Key` as everywhere, or the
/// `api_key` query parameter when the header is absent.
#[derive(Debug, Clone)]
pub struct RecordingAuth(pub TenantRow);

#[derive(Debug, Deserialize)]
struct KeyQuery {
    api_key: Option<String>,
}

impl FromRequestParts<AppState> for RecordingAuth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if !parts.headers.contains_key(API_KEY_HEADER) {
            let key = Query::<KeyQuery>::try_from_uri(&parts.uri)
                .ok()
                .and_then(|Query(q)| q.api_key);
            if let Some(key) = key {
                let value = HeaderValue::from_str(&key)
                    .map_err(|_| ApiError::Unauthenticated("unknown API key"))?;
                parts.headers.insert(API_KEY_HEADER, value);
            }
        }
        let Authed(tenant) = Authed::from_request_parts(parts, state).await?;
        Ok(RecordingAuth(tenant))
    }
}

/// `GET /v1/calls/{id}/recording` → 200 `audio/wav`, or 206 for a
/// satisfiable `Range`, 416 for one past the end; 404 for an unknown or
/// another tenant's call and until the recording is ready.
pub async fn download(
    State(state): State<AppState>,
    RecordingAuth(tenant): RecordingAuth,
    IdPath(id): IdPath,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let rec = state.recordings.file(&tenant.id, &id).await?;
    let mut file = match tokio::fs::File::open(&rec.path).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::warn!(call_id = %rec.call_id, path = %rec.path.display(),
                "recording ready but its file is gone");
            return Err(ApiError::NotFound("the call's recording file is missing"));
        }
        Err(e) => {
            return Err(ApiError::Internal(format!(
                "opening {}: {e}",
                rec.path.display()
            )))
        }
    };
    let len = file
        .metadata()
        .await
        .map_err(|e| ApiError::Internal(format!("reading {}: {e}", rec.path.display())))?
        .len();
    let asked = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let (status, start, count, content_range) = match range::parse(asked, len) {
        RangeRequest::Full => (StatusCode::OK, 0, len, None),
        RangeRequest::Partial(r) => (
            StatusCode::PARTIAL_CONTENT,
            r.start,
            r.len(),
            Some(r.content_range(len)),
        ),
        RangeRequest::Unsatisfiable => return Ok(unsatisfiable(len)),
    };
    if start > 0 {
        file.seek(SeekFrom::Start(start))
            .await
            .map_err(|e| ApiError::Internal(format!("seeking {}: {e}", rec.path.display())))?;
    }
    let mut builder = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, WAV_CONTENT_TYPE)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CONTENT_LENGTH, count)
        .header(
            header::CONTENT_DISPOSITION,
            format!("inline; filename=\"{}.wav\"", rec.call_id),
        )
        .header(header::CACHE_CONTROL, "private, no-cache");
    if let Some(content_range) = content_range {
        builder = builder.header(header::CONTENT_RANGE, content_range);
    }
    builder
        .body(Body::from_stream(chunks(file, count)))
        .map_err(|e| ApiError::Internal(format!("building the response: {e}")))
}

/// 416 with `Content-Range: bytes */len`.
fn unsatisfiable(len: u64) -> Response {
    let body = json!({
        "error": "range_not_satisfiable",
        "message": format!("the range starts past the end of the {len}-byte recording"),
    });
    let mut resp = (StatusCode::RANGE_NOT_SATISFIABLE, Json(body)).into_response();
    let h = resp.headers_mut();
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
        h.insert(header::CONTENT_RANGE, v);
    }
    resp
}

/// `count` bytes of `file` from its current position, in chunks of at most
/// [`CHUNK`]. A file shorter than promised ends the stream with an error
/// (the connection is closed rather than the length silently short).
fn chunks<R>(file: R, count: u64) -> impl Stream<Item = std::io::Result<Bytes>> + Send
where
    R: tokio::io::AsyncRead + Unpin + Send + 'static,
{
    stream::unfold((file, count), |(mut file, remaining)| async move {
        if remaining == 0 {
            return None;
        }
        let want = usize::try_from(remaining).map_or(CHUNK, |r| r.min(CHUNK));
        let mut buf = vec![0u8; want];
        match file.read(&mut buf).await {
            Ok(0) => Some((
                Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "recording shorter than its length",
                )),
                (file, 0),
            )),
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Bytes::from(buf)), (file, remaining - n as u64)))
            }
            Err(e) => Some((Err(e), (file, 0))),
        }
    })
}

/// `POST /v1/calls/{id}/recording/pause` → 200 `{"recording": "paused"}`:
/// silence on both channels from now until resumed. 409 `not_recording`
/// when the call is not being recorded, 409 `call_ended` when it is over.
pub async fn pause(
    State(state): State<AppState>,
    Authed(tenant): Authed,
    IdPath(id): IdPath,
) -> Result<Json<Value>, ApiError> {
    let now = state.recordings.set_paused(&tenant.id, &id, true).await?;
    tracing::info!(call_id = %id, "recording paused");
    Ok(Json(json!({ "recording": now.as_str() })))
}

/// `POST /v1/calls/{id}/recording/resume` → 200 `{"recording":
/// "recording"}`; errors as for pause.
pub async fn resume(
    State(state): State<AppState>,
    Authed(tenant): Authed,
    IdPath(id): IdPath,
) -> Result<Json<Value>, ApiError> {
    let now = state.recordings.set_paused(&tenant.id, &id, false).await?;
    tracing::info!(call_id = %id, "recording resumed");
    Ok(Json(json!({ "recording": now.as_str() })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt as _;

    async fn collect(data: &'static [u8], skip: usize, count: u64) -> (Vec<u8>, bool) {
        let mut reader = data;
        let mut skipped = vec![0u8; skip];
        let _ = reader.read_exact(&mut skipped).await;
        let parts: Vec<_> = chunks(reader, count).collect().await;
        let failed = parts.iter().any(Result::is_err);
        let bytes = parts
            .into_iter()
            .filter_map(Result::ok)
            .flat_map(|b| b.to_vec())
            .collect();
        (bytes, failed)
    }

    #[tokio::test]
    async fn streams_exactly_the_asked_bytes_in_chunks() {
        static DATA: [u8; 3 * CHUNK + 7] = [0x5a; 3 * CHUNK + 7];
        let (all, failed) = collect(&DATA, 0, DATA.len() as u64).await;
        assert!(!failed);
        assert_eq!(all.len(), DATA.len());
        let reader: &'static [u8] = &DATA;
        let sizes: Vec<usize> = chunks(reader, DATA.len() as u64)
            .map(|c| c.map_or(0, |b| b.len()))
            .collect()
            .await;
        assert!(sizes.iter().all(|&n| n <= CHUNK), "{sizes:?}");
        let (part, failed) = collect(b"0123456789", 3, 4).await;
        assert!(!failed);
        assert_eq!(part, b"3456");
        let (none, failed) = collect(b"0123456789", 0, 0).await;
        assert!(!failed);
        assert!(none.is_empty());
    }

    #[tokio::test]
    async fn a_short_file_ends_with_an_error() {
        let (got, failed) = collect(b"abc", 0, 10).await;
        assert_eq!(got, b"abc");
        assert!(failed);
    }

    #[test]
    fn unsatisfiable_names_the_length() {
        let resp = unsatisfiable(1234);
        assert_eq!(resp.status(), StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(
            resp.headers()
                .get(header::CONTENT_RANGE)
                .map(|v| v.as_bytes()),
            Some(&b"bytes */1234"[..])
        );
    }

    #[test]
    fn errors_map_to_api_codes() {
        let cases = [
            (RecordingError::NotFound, 404, "not_found"),
            (RecordingError::NotReady, 404, "not_found"),
            (RecordingError::CallEnded, 409, "call_ended"),
            (RecordingError::NotRecording, 409, "not_recording"),
            (RecordingError::Engine("x".into()), 500, "internal"),
        ];
        for (e, status, code) in cases {
            let api = ApiError::from(e);
            assert_eq!(api.status().as_u16(), status);
            assert_eq!(api.code(), code);
        }
    }
}
