//! SIP over TCP (RFC 3261 §18): the listener on the SIP port, outbound
//! connections, and the registry that maps a remote address to its
//! connection so that responses and in-dialog requests reuse it.
//!
//! Each connection has a reader (stream framing by Content-Length, with an
//! explicit incomplete state, see [`crate::sip::framing`]) and a writer task
//! fed by a bounded queue. Idle connections are closed; the number of
//! accepted connections is capped.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use dashmap::DashMap;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use super::dispatch::handle_datagram;
use super::shared::Shared;
use crate::sip::framing::{parse_frame, Frame, Limits};
use crate::sip::transport::Endpoint;

/// A connection with no traffic for this long is closed. Softphones keep
/// theirs alive with CRLF pings (RFC 5626) or re-REGISTER well within it.
const IDLE: Duration = Duration::from_secs(900);
/// Timeout of an outbound connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Accepted connections at most.
const MAX_CONNECTIONS: usize = 4096;
/// Messages queued per connection before new ones are dropped.
const QUEUE: usize = 256;

/// Live TCP connections by remote address.
pub(crate) struct Connections {
    writers: DashMap<SocketAddr, mpsc::Sender<Bytes>>,
    shared: OnceLock<Weak<Shared>>,
    accepted: Arc<Semaphore>,
}

impl Connections {
    pub fn new() -> Self {
        Connections {
            writers: DashMap::new(),
            shared: OnceLock::new(),
            accepted: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
        }
    }

    /// Wire the registry to the engine state (once, right after start).
    pub fn attach(&self, shared: &Arc<Shared>) {
        let _ = self.shared.set(Arc::downgrade(shared));
    }

    /// Queue `bytes` on the connection to `addr`, connecting if there is
    /// none.
    pub fn send(&self, addr: SocketAddr, bytes: Bytes) {
        let writer = self.writers.get(&addr).map(|w| w.clone());
        if let Some(w) = writer {
            match w.try_send(bytes) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    tracing::warn!(%addr, "TCP send queue full; message dropped");
                }
                Err(mpsc::error::TrySendError::Closed(b)) => {
                    self.writers.remove_if(&addr, |_, x| x.same_channel(&w));
                    self.connect(addr, b);
                }
            }
            return;
        }
        self.connect(addr, bytes);
    }

    fn connect(&self, addr: SocketAddr, first: Bytes) {
        let Some(shared) = self.shared.get().and_then(Weak::upgrade) else {
            return;
        };
        let (tx, rx) = mpsc::channel(QUEUE);
        let _ = tx.try_send(first);
        self.writers.insert(addr, tx.clone());
        tokio::spawn(async move {
            match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => run(shared, stream, addr, tx, rx, None).await,
                _ => {
                    tracing::info!(%addr, "TCP connect failed");
                    shared
                        .tcp
                        .writers
                        .remove_if(&addr, |_, w| w.same_channel(&tx));
                }
            }
        });
    }
}

/// Accept loop of the TCP listener on the SIP port.
pub(crate) async fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        let (stream, addr) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %e, "TCP accept failed");
                continue;
            }
        };
        let Ok(permit) = shared.tcp.accepted.clone().try_acquire_owned() else {
            tracing::warn!(%addr, "too many TCP connections; refused");
            continue;
        };
        let (tx, rx) = mpsc::channel(QUEUE);
        shared.tcp.writers.insert(addr, tx.clone());
        tokio::spawn(run(shared.clone(), stream, addr, tx, rx, Some(permit)));
    }
}

async fn run(
    shared: Arc<Shared>,
    stream: TcpStream,
    addr: SocketAddr,
    tx: mpsc::Sender<Bytes>,
    mut rx: mpsc::Receiver<Bytes>,
    _permit: Option<OwnedSemaphorePermit>,
) {
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer) = stream.into_split();
    let write_task = tokio::spawn(async move {
        while let Some(b) = rx.recv().await {
            if writer.write_all(&b).await.is_err() {
                break;
            }
        }
    });
    let limits = Limits::default();
    let mut buf = BytesMut::with_capacity(8192);
    'read: loop {
        match tokio::time::timeout(IDLE, reader.read_buf(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => break, // EOF, error or idle
        }
        loop {
            match parse_frame(&mut buf, &limits) {
                Ok(Some(Frame::Message(msg))) => {
                    handle_datagram(&shared, &msg, Endpoint::tcp(addr)).await
                }
                Ok(Some(Frame::KeepAlive)) => {
                    // RFC 5626 §4.4.1: answer a CRLFCRLF ping with a CRLF pong.
                    let _ = tx.try_send(Bytes::from_static(b"\r\n"));
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::info!(%addr, error = %e, "TCP framing error; closing");
                    break 'read;
                }
            }
        }
    }
    shared
        .tcp
        .writers
        .remove_if(&addr, |_, w| w.same_channel(&tx));
    drop(tx);
    write_task.abort();
}
