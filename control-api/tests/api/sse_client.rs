//! A minimal SSE client over reqwest: reads `id:`/`event:`/`data:` blocks.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::support::Server;

/// One SSE message (comments such as heartbeats are skipped).
#[derive(Debug, Clone, PartialEq)]
pub struct Msg {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
}

impl Msg {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or(Value::Null)
    }
}

pub struct SseClient {
    resp: reqwest::Response,
    buf: String,
}

/// Open `path`; `Err` carries the status, headers and body of a refusal.
pub async fn open(
    srv: &Server,
    path: &str,
    key: &str,
    last_event_id: Option<&str>,
) -> Result<SseClient, (StatusCode, reqwest::header::HeaderMap, Value)> {
    let mut req = srv
        .client
        .get(format!("{}{path}", srv.base))
        .header("X-API-Key", key);
    if let Some(id) = last_event_id {
        req = req.header("Last-Event-ID", id);
    }
    let resp = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    if resp.status() != StatusCode::OK {
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.json().await.unwrap_or(Value::Null);
        return Err((status, headers, body));
    }
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(ct.starts_with("text/event-stream"), "content-type {ct}");
    Ok(SseClient {
        resp,
        buf: String::new(),
    })
}

impl SseClient {
    /// The next message; `None` when the server ended the stream.
    pub async fn next(&mut self) -> Option<Msg> {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut msg = Msg {
                    id: None,
                    event: None,
                    data: String::new(),
                };
                let mut any = false;
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        msg.id = Some(v.trim_start().to_string());
                        any = true;
                    } else if let Some(v) = line.strip_prefix("event:") {
                        msg.event = Some(v.trim_start().to_string());
                        any = true;
                    } else if let Some(v) = line.strip_prefix("data:") {
                        msg.data.push_str(v.trim_start());
                        any = true;
                    }
                }
                if any {
                    return Some(msg);
                }
                continue;
            }
            match self.resp.chunk().await {
                Ok(Some(bytes)) => self.buf.push_str(&String::from_utf8_lossy(&bytes)),
                Ok(None) | Err(_) => return None,
            }
        }
    }

    /// The next message within `within`, panicking otherwise.
    pub async fn expect(&mut self, within: Duration) -> Msg {
        match tokio::time::timeout(within, self.next()).await {
            Ok(Some(m)) => m,
            Ok(None) => panic!("the stream ended"),
            Err(_) => panic!("no SSE message within {within:?}"),
        }
    }
}
