//! A local webhook receiver (axum on 127.0.0.1:0): answers each request
//! with the next scripted status (then 200), and reports every request.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// A request the receiver got.
#[derive(Debug, Clone)]
pub struct Hit {
    pub headers: HeaderMap,
    pub body: String,
    pub at: Instant,
    /// The status it was answered with.
    pub status: u16,
}

impl Hit {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }
}

/// One scripted answer: status and optional `Retry-After`.
pub type Answer = (u16, Option<&'static str>);

#[derive(Clone)]
struct Shared {
    script: Arc<Mutex<VecDeque<Answer>>>,
    hits: mpsc::UnboundedSender<Hit>,
}

pub struct Receiver {
    pub url: String,
    pub hits: mpsc::UnboundedReceiver<Hit>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    pub async fn start(script: &[Answer]) -> Receiver {
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Shared {
            script: Arc::new(Mutex::new(script.iter().copied().collect())),
            hits: tx,
        };
        let app = Router::new().fallback(handle).with_state(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("bind: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("addr: {e}"));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            url: format!("http://{addr}/hooks"),
            hits: rx,
            task,
        }
    }

    /// The next request within `within`.
    pub async fn next(&mut self, within: Duration) -> Hit {
        match tokio::time::timeout(within, self.hits.recv()).await {
            Ok(Some(hit)) => hit,
            Ok(None) => panic!("receiver gone"),
            Err(_) => panic!("no webhook request within {within:?}"),
        }
    }

    /// The next request for event `id` (others are skipped).
    pub async fn next_for(&mut self, event_id: &str, within: Duration) -> Hit {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let hit = self.next(left).await;
            let v: serde_json::Value = serde_json::from_str(&hit.body).unwrap_or_default();
            if v["id"] == event_id {
                return hit;
            }
        }
    }
}

async fn handle(State(shared): State<Shared>, headers: HeaderMap, body: String) -> Response {
    let (status, retry_after) = shared
        .script
        .lock()
        .ok()
        .and_then(|mut s| s.pop_front())
        .unwrap_or((200, None));
    let _ = shared.hits.send(Hit {
        headers,
        body,
        at: Instant::now(),
        status,
    });
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match retry_after {
        Some(ra) => (code, [("retry-after", ra)]).into_response(),
        None => code.into_response(),
    }
}
