//! A client of rtpengine's ng control protocol: `<cookie> <bencoded dict>`
//! over UDP, one socket for every call, requests retransmitted with the
//! same cookie (rtpengine answers a repeated cookie from its cache).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::oneshot;

use super::bencode::Value;
use super::sip_text::sdp_audio_addr;

/// First retransmission; doubles each time.
const RETRY: Duration = Duration::from_millis(250);
/// Attempts before giving up.
const TRIES: u32 = 6;

/// Why an ng request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NgError {
    /// No answer after every retransmission.
    #[error("ng {0}: no answer")]
    Timeout(&'static str),
    /// `result` was not `ok`.
    #[error("ng {command}: {reason}")]
    Refused {
        /// The command.
        command: &'static str,
        /// `error-reason`, or the result.
        reason: String,
    },
    /// The answer lacked an SDP with an audio address.
    #[error("ng {0}: answer without a usable SDP")]
    NoSdp(&'static str),
    /// The socket failed.
    #[error("ng: {0}")]
    Io(String),
}

/// The ng client.
pub struct NgClient {
    socket: Arc<UdpSocket>,
    server: SocketAddr,
    next: AtomicU64,
    waiters: Mutex<HashMap<String, oneshot::Sender<Value>>>,
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl NgClient {
    /// A client sending from `socket` to rtpengine's `server` (listen-ng).
    pub fn new(socket: Arc<UdpSocket>, server: SocketAddr) -> Arc<NgClient> {
        Arc::new(NgClient {
            socket,
            server,
            next: AtomicU64::new(1),
            waiters: Mutex::new(HashMap::new()),
        })
    }

    /// Receive loop; runs until its task is aborted.
    pub async fn run(self: Arc<Self>) {
        let mut buf = vec![0u8; 65536];
        loop {
            let Ok((len, _)) = self.socket.recv_from(&mut buf).await else {
                continue;
            };
            let Some(data) = buf.get(..len) else { continue };
            let Some(space) = data.iter().position(|&b| b == b' ') else {
                continue;
            };
            let cookie = String::from_utf8_lossy(data.get(..space).unwrap_or_default());
            let Ok(value) = Value::decode(data.get(space + 1..).unwrap_or_default()) else {
                continue;
            };
            if let Some(tx) = locked(&self.waiters).remove(cookie.as_ref()) {
                let _ = tx.send(value);
            }
        }
    }

    /// Send `dict` and wait for its answer (checked for `result: ok`).
    pub async fn request(&self, command: &'static str, dict: Value) -> Result<Value, NgError> {
        let cookie = format!("b{}", self.next.fetch_add(1, Ordering::Relaxed));
        let mut bytes = format!("{cookie} ").into_bytes();
        dict.encode_into(&mut bytes);
        let (tx, mut rx) = oneshot::channel();
        locked(&self.waiters).insert(cookie.clone(), tx);
        let mut wait = RETRY;
        let mut answer = None;
        for _ in 0..TRIES {
            if let Err(e) = self.socket.send_to(&bytes, self.server).await {
                locked(&self.waiters).remove(&cookie);
                return Err(NgError::Io(e.to_string()));
            }
            if let Ok(r) = tokio::time::timeout(wait, &mut rx).await {
                answer = r.ok();
                break;
            }
            wait *= 2;
        }
        locked(&self.waiters).remove(&cookie);
        let answer = answer.ok_or(NgError::Timeout(command))?;
        match answer.get("result").and_then(Value::as_text).as_deref() {
            Some("ok") => Ok(answer),
            other => Err(NgError::Refused {
                command,
                reason: answer
                    .get("error-reason")
                    .and_then(Value::as_text)
                    .or(other.map(str::to_string))
                    .unwrap_or_else(|| "no result".into()),
            }),
        }
    }

    /// `offer` the caller's SDP; returns where the callee must send (the
    /// address in the rewritten SDP).
    pub async fn offer(
        &self,
        call_id: &str,
        from_tag: &str,
        sdp: &str,
    ) -> Result<SocketAddr, NgError> {
        let dict = Value::dict([
            ("command", Value::str("offer")),
            ("call-id", Value::str(call_id)),
            ("from-tag", Value::str(from_tag)),
            ("sdp", Value::str(sdp)),
        ]);
        media_of("offer", &self.request("offer", dict).await?)
    }

    /// `answer` with the callee's SDP; returns where the caller must send.
    pub async fn answer(
        &self,
        call_id: &str,
        from_tag: &str,
        to_tag: &str,
        sdp: &str,
    ) -> Result<SocketAddr, NgError> {
        let dict = Value::dict([
            ("command", Value::str("answer")),
            ("call-id", Value::str(call_id)),
            ("from-tag", Value::str(from_tag)),
            ("to-tag", Value::str(to_tag)),
            ("sdp", Value::str(sdp)),
        ]);
        media_of("answer", &self.request("answer", dict).await?)
    }

    /// `delete` the call.
    pub async fn delete(&self, call_id: &str, from_tag: &str) -> Result<(), NgError> {
        let dict = Value::dict([
            ("command", Value::str("delete")),
            ("call-id", Value::str(call_id)),
            ("from-tag", Value::str(from_tag)),
        ]);
        self.request("delete", dict).await.map(|_| ())
    }

    /// `ping` → `pong` (rtpengine is up).
    pub async fn ping(&self) -> bool {
        let dict = Value::dict([("command", Value::str("ping"))]);
        match self.request("ping", dict).await {
            Err(NgError::Refused { reason, .. }) => reason == "pong",
            _ => false,
        }
    }
}

fn media_of(command: &'static str, answer: &Value) -> Result<SocketAddr, NgError> {
    answer
        .get("sdp")
        .and_then(Value::as_text)
        .and_then(|sdp| sdp_audio_addr(sdp.as_bytes()))
        .ok_or(NgError::NoSdp(command))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake ng server answering one offer, so the framing is checked
    /// without rtpengine.
    #[tokio::test]
    async fn offer_round_trip_against_a_fake_server() {
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let server_addr = server.local_addr().unwrap();
        let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let client = NgClient::new(socket, server_addr);
        let rx = tokio::spawn(client.clone().run());
        let fake = tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            let (n, from) = server.recv_from(&mut buf).await.unwrap();
            let space = buf.iter().position(|&b| b == b' ').unwrap();
            let req = Value::decode(&buf[space + 1..n]).unwrap();
            assert_eq!(req.get("call-id").and_then(Value::as_text).unwrap(), "c1");
            let sdp = "v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 30002 RTP/AVP 0\r\n";
            let mut reply = buf[..=space].to_vec();
            Value::dict([("result", Value::str("ok")), ("sdp", Value::str(sdp))])
                .encode_into(&mut reply);
            server.send_to(&reply, from).await.unwrap();
        });
        let dest = client.offer("c1", "a1", "v=0\r\n").await.unwrap();
        assert_eq!(dest, "127.0.0.1:30002".parse().unwrap());
        fake.await.unwrap();
        rx.abort();
    }
}
