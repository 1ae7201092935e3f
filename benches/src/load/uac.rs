//! The A side: a minimal raw-UDP UAC that calls masked numbers through the
//! engine (INVITE with SDP, ACK, BYE), retransmitting like RFC 3261 §17.1
//! (T1 = 500 ms doubling) so a dropped datagram does not fail a call.
//!
//! One socket serves every call; a receive loop hands responses to the
//! waiting call by Call-ID and re-ACKs retransmitted 200s.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::calls::CallSpec;
use super::sip_text::{ok_response, sdp_audio_addr, sdp_offer, SipText};

const T1: Duration = Duration::from_millis(500);
const T2: Duration = Duration::from_secs(4);
/// Give up on a transaction after this (Timer B/F is 32 s; loopback needs less).
const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(8);

/// Why a call could not be set up or torn down.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum CallError {
    /// No final response in time.
    #[error("{0}: no final response within {TRANSACTION_TIMEOUT:?}")]
    Timeout(&'static str),
    /// The engine answered with a failure status.
    #[error("{method} answered {status}")]
    Status {
        /// The request.
        method: &'static str,
        /// The final status.
        status: u16,
    },
    /// The 200 OK lacked something the UAC needs.
    #[error("200 OK to INVITE without {0}")]
    Incomplete(&'static str),
    /// The socket failed.
    #[error("send failed: {0}")]
    Io(String),
}

/// A response as the waiting call sees it.
#[derive(Debug, Clone)]
struct Reply {
    status: u16,
    cseq_method: String,
    to_tag: Option<String>,
    contact: Option<String>,
    media: Option<SocketAddr>,
}

/// An established A-leg dialog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ADialog {
    /// Index of the call.
    pub index: usize,
    /// Call-ID of the A leg.
    pub call_id: String,
    /// Remote tag from the 200 OK.
    pub to_tag: String,
    /// Request-URI for in-dialog requests (Contact of the 200 OK).
    pub remote_target: String,
    /// Where the engine wants A's media (its A-side relay port).
    pub relay: SocketAddr,
}

/// The UAC: one socket, many calls.
pub struct Uac {
    socket: Arc<UdpSocket>,
    local: SocketAddr,
    engine: SocketAddr,
    waiters: Mutex<HashMap<String, mpsc::UnboundedSender<Reply>>>,
    acks: Mutex<HashMap<String, Vec<u8>>>,
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Uac {
    /// A UAC sending from `socket` to the engine at `engine`.
    pub fn new(socket: Arc<UdpSocket>, local: SocketAddr, engine: SocketAddr) -> Arc<Uac> {
        Arc::new(Uac {
            socket,
            local,
            engine,
            waiters: Mutex::new(HashMap::new()),
            acks: Mutex::new(HashMap::new()),
        })
    }

    /// Receive loop; runs until its task is aborted or the runtime stops.
    pub async fn run(self: Arc<Self>) {
        let mut buf = vec![0u8; 65536];
        loop {
            let Ok((len, src)) = self.socket.recv_from(&mut buf).await else {
                continue;
            };
            let Some(msg) = buf.get(..len).and_then(SipText::parse) else {
                continue;
            };
            self.on_message(&msg, src).await;
        }
    }

    async fn on_message(&self, msg: &SipText<'_>, src: SocketAddr) {
        let Some(call_id) = msg.call_id() else { return };
        let Some(status) = msg.status() else {
            // A request from the engine (e.g. BYE after a failure): accept it.
            if msg.method() != Some("ACK") {
                let _ = self
                    .socket
                    .send_to(&ok_response(msg, None, "", None), src)
                    .await;
            }
            return;
        };
        let cseq_method = msg.cseq_method().unwrap_or_default().to_string();
        let reply = Reply {
            status,
            to_tag: msg.tag("To").map(str::to_string),
            contact: msg.contact_uri().map(str::to_string),
            media: sdp_audio_addr(msg.body),
            cseq_method,
        };
        let waiter = locked(&self.waiters).get(call_id).cloned();
        if let Some(w) = waiter {
            let _ = w.send(reply);
            return;
        }
        // A retransmitted 200 after the INVITE transaction ended: re-ACK.
        if status == 200 && reply.cseq_method == "INVITE" {
            let ack = locked(&self.acks).get(call_id).cloned();
            if let Some(ack) = ack {
                let _ = self.socket.send_to(&ack, self.engine).await;
            }
        }
    }

    /// Place `call` (offering media at `media`), ACK the 200 and return the
    /// dialog.
    pub async fn invite(&self, call: &CallSpec, media: SocketAddr) -> Result<ADialog, CallError> {
        let sdp = sdp_offer(call.index as u64 + 1, media);
        let invite = format!(
            "INVITE sip:{masked}@{engine} SIP/2.0\r\n\
Via: SIP/2.0/UDP {local};branch=z9hG4bK-load-{i}-inv;rport\r\n\
Max-Forwards: 70\r\n\
From: <sip:{party_a}@{ip}>;tag={tag}\r\n\
To: <sip:{masked}@{engine}>\r\n\
Call-ID: {cid}\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:{party_a}@{local}>\r\n\
User-Agent: maskline-relay-load\r\n\
Content-Type: application/sdp\r\n\
Content-Length: {len}\r\n\r\n{sdp}",
            masked = call.masked,
            engine = self.engine,
            local = self.local,
            ip = self.local.ip(),
            i = call.index,
            party_a = call.party_a,
            tag = call.from_tag(),
            cid = call.call_id,
            len = sdp.len(),
        );
        let ok = self
            .transact(&call.call_id, invite.into_bytes(), "INVITE")
            .await?;
        let to_tag = ok.to_tag.ok_or(CallError::Incomplete("a To tag"))?;
        let remote_target = ok.contact.ok_or(CallError::Incomplete("a Contact"))?;
        let relay = ok
            .media
            .ok_or(CallError::Incomplete("an SDP audio address"))?;
        let dialog = ADialog {
            index: call.index,
            call_id: call.call_id.clone(),
            to_tag,
            remote_target,
            relay,
        };
        let ack = self.in_dialog(call, &dialog, "ACK", 1, "ack");
        locked(&self.acks).insert(call.call_id.clone(), ack.clone());
        self.send(&ack).await?;
        Ok(dialog)
    }

    /// Hang up an established call (BYE, wait for its 200).
    pub async fn bye(&self, call: &CallSpec, dialog: &ADialog) -> Result<(), CallError> {
        let bye = self.in_dialog(call, dialog, "BYE", 2, "bye");
        self.transact(&call.call_id, bye, "BYE").await.map(|_| ())
    }

    fn in_dialog(
        &self,
        call: &CallSpec,
        d: &ADialog,
        method: &str,
        cseq: u32,
        branch: &str,
    ) -> Vec<u8> {
        format!(
            "{method} {target} SIP/2.0\r\n\
Via: SIP/2.0/UDP {local};branch=z9hG4bK-load-{i}-{branch};rport\r\n\
Max-Forwards: 70\r\n\
From: <sip:{party_a}@{ip}>;tag={tag}\r\n\
To: <sip:{masked}@{engine}>;tag={to_tag}\r\n\
Call-ID: {cid}\r\n\
CSeq: {cseq} {method}\r\n\
Content-Length: 0\r\n\r\n",
            target = d.remote_target,
            local = self.local,
            ip = self.local.ip(),
            i = call.index,
            party_a = call.party_a,
            tag = call.from_tag(),
            masked = call.masked,
            engine = self.engine,
            to_tag = d.to_tag,
            cid = call.call_id,
        )
        .into_bytes()
    }

    async fn send(&self, bytes: &[u8]) -> Result<(), CallError> {
        self.socket
            .send_to(bytes, self.engine)
            .await
            .map(|_| ())
            .map_err(|e| CallError::Io(e.to_string()))
    }

    /// Send `request` and retransmit it until a final response arrives
    /// (an INVITE stops retransmitting on a provisional one).
    async fn transact(
        &self,
        call_id: &str,
        request: Vec<u8>,
        method: &'static str,
    ) -> Result<Reply, CallError> {
        let (tx, mut rx) = mpsc::unbounded_channel();
        locked(&self.waiters).insert(call_id.to_string(), tx);
        let result = self.transact_inner(&request, method, &mut rx).await;
        locked(&self.waiters).remove(call_id);
        result
    }

    async fn transact_inner(
        &self,
        request: &[u8],
        method: &'static str,
        rx: &mut mpsc::UnboundedReceiver<Reply>,
    ) -> Result<Reply, CallError> {
        let deadline = Instant::now() + TRANSACTION_TIMEOUT;
        let mut interval = T1;
        let mut retransmit = Some(Instant::now() + interval);
        self.send(request).await?;
        loop {
            let wake = retransmit.map_or(deadline, |r| r.min(deadline));
            tokio::select! {
                reply = rx.recv() => {
                    let Some(reply) = reply else { return Err(CallError::Timeout(method)) };
                    if reply.cseq_method != method {
                        continue;
                    }
                    match reply.status {
                        100..=199 => {
                            if method == "INVITE" {
                                retransmit = None;
                            }
                        }
                        200..=299 => return Ok(reply),
                        status => return Err(CallError::Status { method, status }),
                    }
                }
                _ = tokio::time::sleep_until(wake) => {
                    if Instant::now() >= deadline {
                        return Err(CallError::Timeout(method));
                    }
                    self.send(request).await?;
                    interval = (interval * 2).min(T2);
                    retransmit = Some(Instant::now() + interval);
                }
            }
        }
    }
}
