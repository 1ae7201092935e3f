//! baresip's `ctrl_tcp` protocol: JSON messages framed as netstrings
//! (`<len>:<json>,`) both ways on one TCP connection. We send commands
//! (`{"command", "params", "token"}`); baresip answers each with
//! `{"response": true, "ok", "data", "token"}` and pushes events
//! (`{"event": true, "type", "class", "accountaor", "peeruri", "param", …}`)
//! whenever they happen.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};

use crate::error::{E2eError, Result};

/// Longest netstring accepted from baresip.
const MAX_MESSAGE: usize = 1024 * 1024;
/// How long a command may take to be answered.
const COMMAND_WITHIN: Duration = Duration::from_secs(5);

/// One event pushed by baresip.
#[derive(Debug, Clone, PartialEq)]
pub struct BaresipEvent {
    /// `type`: `REGISTER_OK`, `REGISTER_FAIL`, `CALL_INCOMING`,
    /// `CALL_ESTABLISHED`, `CALL_CLOSED`, …
    pub kind: String,
    /// `peeruri`: the other side of a call (for an incoming call, the URI
    /// of its From, i.e. the caller ID shown to the user).
    pub peer_uri: Option<String>,
    /// `direction`: `incoming` or `outgoing` for call events.
    pub direction: Option<String>,
    /// `param`: e.g. the status line of a registration or why a call closed.
    pub param: Option<String>,
    /// The whole message.
    pub json: Value,
}

impl BaresipEvent {
    fn from_json(json: Value) -> BaresipEvent {
        let text = |name: &str| json.get(name).and_then(Value::as_str).map(str::to_string);
        BaresipEvent {
            kind: text("type").unwrap_or_default(),
            peer_uri: text("peeruri"),
            direction: text("direction"),
            param: text("param"),
            json,
        }
    }
}

/// What [`parse_netstring`] found at the start of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Framed<'a> {
    /// A whole netstring: its payload and the bytes it took.
    Message(&'a [u8], usize),
    /// Not all of it has arrived yet.
    Incomplete,
}

/// Parses one netstring at the start of `buf`.
pub fn parse_netstring(buf: &[u8]) -> std::result::Result<Framed<'_>, String> {
    let Some(colon) = buf.iter().position(|b| *b == b':') else {
        if buf.len() > 8 || !buf.iter().all(u8::is_ascii_digit) {
            return Err(format!(
                "no length prefix in {:?}",
                String::from_utf8_lossy(buf)
            ));
        }
        return Ok(Framed::Incomplete);
    };
    let digits = buf.get(..colon).unwrap_or_default();
    let len: usize = std::str::from_utf8(digits)
        .ok()
        .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|d| d.parse().ok())
        .ok_or_else(|| format!("bad length {:?}", String::from_utf8_lossy(digits)))?;
    if len > MAX_MESSAGE {
        return Err(format!("message of {len} bytes is too long"));
    }
    let start = colon + 1;
    let end = start + len;
    match (buf.get(start..end), buf.get(end)) {
        (Some(payload), Some(b',')) => Ok(Framed::Message(payload, end + 1)),
        (Some(_), Some(other)) => Err(format!("netstring ends with {other:#x}, not ','")),
        _ => Ok(Framed::Incomplete),
    }
}

/// `payload` framed as a netstring.
pub fn netstring(payload: &[u8]) -> Vec<u8> {
    let mut out = format!("{}:", payload.len()).into_bytes();
    out.extend_from_slice(payload);
    out.push(b',');
    out
}

/// A `ctrl_tcp` connection that keeps every event it has received.
#[derive(Debug)]
pub struct Ctrl {
    stream: TcpStream,
    buf: Vec<u8>,
    events: Vec<BaresipEvent>,
    next_token: u32,
}

impl Ctrl {
    /// Connects to `addr` (one attempt).
    pub async fn connect(addr: SocketAddr) -> std::io::Result<Ctrl> {
        let stream = TcpStream::connect(addr).await?;
        Ok(Ctrl {
            stream,
            buf: Vec::new(),
            events: Vec::new(),
            next_token: 0,
        })
    }

    /// Every event received so far, oldest first.
    pub fn events(&self) -> &[BaresipEvent] {
        &self.events
    }

    /// Reads the next message, waiting until `deadline`; events are also
    /// kept in [`Ctrl::events`].
    async fn next_message(
        &mut self,
        deadline: Instant,
        within: Duration,
        what: &str,
    ) -> Result<Value> {
        loop {
            if let Framed::Message(payload, used) = parse_netstring(&self.buf)
                .map_err(|e| E2eError::Unexpected(format!("ctrl_tcp: {e}")))?
            {
                let json: Value = serde_json::from_slice(payload).map_err(|e| {
                    E2eError::Unexpected(format!(
                        "ctrl_tcp: not JSON ({e}): {}",
                        String::from_utf8_lossy(payload)
                    ))
                })?;
                self.buf.drain(..used);
                if json.get("event").and_then(Value::as_bool) == Some(true) {
                    self.events.push(BaresipEvent::from_json(json.clone()));
                }
                return Ok(json);
            }
            let mut chunk = [0u8; 4096];
            let read = timeout_at(deadline, self.stream.read(&mut chunk)).await;
            match read {
                Err(_) => return Err(E2eError::timeout(what, within)),
                Ok(Err(e)) => return Err(E2eError::io("reading baresip's ctrl_tcp", e)),
                Ok(Ok(0)) => {
                    return Err(E2eError::Unexpected(format!(
                        "baresip closed its control connection while waiting for {what}"
                    )))
                }
                Ok(Ok(n)) => self
                    .buf
                    .extend_from_slice(chunk.get(..n).unwrap_or_default()),
            }
        }
    }

    /// Runs a command (a `menu` command: `dial`, `hangup`, `uanew`, …) and
    /// returns its output; fails when baresip says it did not succeed.
    pub async fn command(&mut self, command: &str, params: &str) -> Result<String> {
        self.next_token += 1;
        let token = format!("t{}", self.next_token);
        let msg = json!({ "command": command, "params": params, "token": token });
        self.stream
            .write_all(&netstring(msg.to_string().as_bytes()))
            .await
            .map_err(|e| E2eError::io(format!("sending `{command}` to baresip"), e))?;
        let what = format!("baresip's answer to `{command} {params}`");
        let deadline = Instant::now() + COMMAND_WITHIN;
        loop {
            let json = self.next_message(deadline, COMMAND_WITHIN, &what).await?;
            if json.get("token").and_then(Value::as_str) != Some(token.as_str()) {
                continue;
            }
            let data = json
                .get("data")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            return match json.get("ok").and_then(Value::as_bool) {
                Some(true) => Ok(data),
                _ => Err(E2eError::Unexpected(format!(
                    "baresip refused `{command} {params}`: {json}"
                ))),
            };
        }
    }

    /// The first event ever received (before this call or while waiting,
    /// at most `within`) for which `matches` holds.
    pub async fn wait_event(
        &mut self,
        what: &str,
        within: Duration,
        matches: impl Fn(&BaresipEvent) -> bool,
    ) -> Result<BaresipEvent> {
        let deadline = Instant::now() + within;
        let mut seen = 0;
        loop {
            if let Some(ev) = self.events.iter().skip(seen).find(|e| matches(e)) {
                return Ok(ev.clone());
            }
            seen = self.events.len();
            if let Err(e) = self.next_message(deadline, within, what).await {
                return Err(match e {
                    E2eError::Timeout { .. } => E2eError::timeout(
                        format!("{what}; events so far: {:?}", self.kinds()),
                        within,
                    ),
                    other => other,
                });
            }
        }
    }

    fn kinds(&self) -> Vec<&str> {
        self.events.iter().map(|e| e.kind.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netstrings_frame_and_parse() {
        let framed = netstring(br#"{"a":1}"#);
        assert_eq!(framed, br#"7:{"a":1},"#);
        let mut two = framed.clone();
        two.extend_from_slice(b"2:{}");
        assert_eq!(
            parse_netstring(&two),
            Ok(Framed::Message(br#"{"a":1}"#.as_slice(), 10))
        );
        assert_eq!(parse_netstring(&two[10..]), Ok(Framed::Incomplete));
        assert_eq!(parse_netstring(b"12"), Ok(Framed::Incomplete));
        assert_eq!(parse_netstring(b""), Ok(Framed::Incomplete));
    }

    #[test]
    fn malformed_netstrings_are_errors() {
        assert!(parse_netstring(b"x:{}").is_err());
        assert!(parse_netstring(b":{}").is_err());
        assert!(parse_netstring(b"2:{};").is_err());
        assert!(parse_netstring(b"{\"no\":\"length\"}").is_err());
        assert!(parse_netstring(b"99999999:").is_err());
    }

    #[test]
    fn events_keep_their_fields() {
        let ev = BaresipEvent::from_json(json!({
            "event": true, "type": "CALL_INCOMING", "direction": "incoming",
            "peeruri": "sip:+15550000001@127.0.0.1", "param": "x"
        }));
        assert_eq!(ev.kind, "CALL_INCOMING");
        assert_eq!(ev.peer_uri.as_deref(), Some("sip:+15550000001@127.0.0.1"));
        assert_eq!(ev.direction.as_deref(), Some("incoming"));
        assert_eq!(ev.param.as_deref(), Some("x"));
    }
}
