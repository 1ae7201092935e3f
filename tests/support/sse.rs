//! A Server-Sent Events client for Maskline's `/v1/events` and
//! `/v1/calls/{id}/events`: reads `id:`/`event:`/`data:` blocks off a
//! streaming response, skipping comments (heartbeats).

use std::time::Duration;

use reqwest::{Client, StatusCode};
use serde_json::Value;
use tokio::time::Instant;

use crate::error::{E2eError, Result};

/// One SSE message.
#[derive(Debug, Clone, PartialEq)]
pub struct SseMessage {
    /// `id:` (the event id), if any.
    pub id: Option<String>,
    /// `event:` (the event type, or `error`), if any.
    pub event: Option<String>,
    /// `data:` lines joined with `\n`.
    pub data: String,
}

impl SseMessage {
    /// `data` parsed as JSON (`Null` when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or(Value::Null)
    }

    /// The event type (`event:`), or "".
    pub fn kind(&self) -> &str {
        self.event.as_deref().unwrap_or_default()
    }

    /// The id as a number, if it is one.
    pub fn id_num(&self) -> Option<i64> {
        self.id.as_deref().and_then(|i| i.parse().ok())
    }
}

/// An open event stream.
#[derive(Debug)]
pub struct SseStream {
    resp: reqwest::Response,
    buf: String,
    path: String,
}

impl SseStream {
    /// `GET base+path` with the API key (and `Last-Event-ID` when given);
    /// fails unless it is a 200 `text/event-stream`.
    pub async fn open(
        base: &str,
        key: &str,
        path: &str,
        last_event_id: Option<&str>,
    ) -> Result<SseStream> {
        let context = format!("GET {path} (SSE)");
        let client = Client::builder().build().map_err(|source| E2eError::Http {
            context: context.clone(),
            source,
        })?;
        let mut req = client
            .get(format!("{base}{path}"))
            .header("X-API-Key", key)
            .header("Accept", "text/event-stream");
        if let Some(id) = last_event_id {
            req = req.header("Last-Event-ID", id);
        }
        let resp = tokio::time::timeout(Duration::from_secs(5), req.send())
            .await
            .map_err(|_| E2eError::timeout(context.clone(), Duration::from_secs(5)))?
            .map_err(|source| E2eError::Http {
                context: context.clone(),
                source,
            })?;
        if resp.status() != StatusCode::OK {
            let status = resp.status().as_u16();
            let body = resp.text().await.unwrap_or_default();
            return Err(E2eError::Status {
                context,
                status,
                expected: 200,
                body,
            });
        }
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if !ct.starts_with("text/event-stream") {
            return Err(E2eError::Unexpected(format!(
                "{context}: content-type {ct}"
            )));
        }
        Ok(SseStream {
            resp,
            buf: String::new(),
            path: path.to_string(),
        })
    }

    /// The next message, `None` when the server ended the stream; fails
    /// when nothing comes within `within`.
    pub async fn next_within(&mut self, within: Duration) -> Result<Option<SseMessage>> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(msg) = parse_block(&mut self.buf) {
                return Ok(Some(msg));
            }
            let chunk = tokio::time::timeout_at(deadline, self.resp.chunk())
                .await
                .map_err(|_| {
                    E2eError::timeout(format!("an SSE message on {}", self.path), within)
                })?;
            match chunk {
                Ok(Some(bytes)) => self.buf.push_str(&String::from_utf8_lossy(&bytes)),
                Ok(None) | Err(_) => return Ok(None),
            }
        }
    }

    /// Messages until (and including) the first for which `last` holds.
    pub async fn until(
        &mut self,
        within: Duration,
        last: impl Fn(&SseMessage) -> bool,
    ) -> Result<Vec<SseMessage>> {
        let deadline = Instant::now() + within;
        let mut got = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_within(left).await? {
                Some(m) => {
                    let done = last(&m);
                    got.push(m);
                    if done {
                        return Ok(got);
                    }
                }
                None => {
                    return Err(E2eError::Unexpected(format!(
                        "{} ended before the awaited event; got {:?}",
                        self.path,
                        got.iter().map(SseMessage::kind).collect::<Vec<_>>()
                    )))
                }
            }
        }
    }
}

/// Takes the first complete message (up to a blank line) off `buf`,
/// skipping comment-only blocks such as heartbeats.
fn parse_block(buf: &mut String) -> Option<SseMessage> {
    loop {
        let end = buf.find("\n\n")?;
        let block: String = buf.drain(..end + 2).collect();
        let mut msg = SseMessage {
            id: None,
            event: None,
            data: String::new(),
        };
        let mut any = false;
        for line in block.lines() {
            let (field, value) = match line.split_once(':') {
                Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                None => (line, ""),
            };
            match field {
                "id" => msg.id = Some(value.to_string()),
                "event" => msg.event = Some(value.to_string()),
                "data" => {
                    if !msg.data.is_empty() {
                        msg.data.push('\n');
                    }
                    msg.data.push_str(value);
                }
                // "" is a comment line (`: heartbeat`).
                _ => continue,
            }
            any = true;
        }
        if any {
            return Some(msg);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_parse_and_comments_are_skipped() {
        let mut buf =
            ":heartbeat\n\nid: 7\nevent: call.hangup\ndata: {\"a\":1}\n\nid: 8\n".to_string();
        let m = parse_block(&mut buf);
        assert_eq!(m.as_ref().and_then(|m| m.id_num()), Some(7));
        assert_eq!(m.as_ref().map(SseMessage::kind), Some("call.hangup"));
        assert_eq!(m.map(|m| m.json()["a"].clone()), Some(serde_json::json!(1)));
        assert!(parse_block(&mut buf).is_none(), "an unfinished block waits");
        buf.push('\n');
        assert_eq!(parse_block(&mut buf).and_then(|m| m.id_num()), Some(8));
    }
}
