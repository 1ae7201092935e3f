//! Starting the engine: bind the SIP socket, spawn the receive loop and the
//! command loop.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;

use super::shared::{Settings, Shared};
use crate::b2bua::outbound::{uri_host, LocalIdentity};
use crate::handle::{EngineEvent, EngineHandle};
use crate::media::ports::PortAllocator;
use crate::routing::RouteTable;
use crate::sip::transaction::TimerConfig;

/// A started engine: its handle and its (single) event stream.
pub struct Started {
    /// Cloneable command handle.
    pub handle: EngineHandle,
    /// Every engine event, in order. Unbounded so that no event is ever lost;
    /// the control plane must keep draining it.
    pub events: mpsc::UnboundedReceiver<EngineEvent>,
    /// The bound SIP address (useful when the config asked for port 0).
    pub sip_addr: SocketAddr,
    /// Softphone registration changes, to be stored (see
    /// [`EngineHandle::restore_registrations`]).
    pub registrations: mpsc::UnboundedReceiver<crate::handle::RegistrationEvent>,
}

/// Why the engine could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The SIP socket (UDP or TCP) could not be bound.
    #[error("cannot bind SIP on {addr}: {source}")]
    BindSip {
        /// Address from `[sip] listen`.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Entry point of the engine.
pub struct Engine;

/// How many ephemeral ports to try when the config asks for port 0.
const EPHEMERAL_ATTEMPTS: usize = 8;

/// Bind SIP over UDP and TCP on one port. With port 0 the UDP socket picks
/// the port; that port can already be in use for TCP (say, as a client
/// connection's local port), so another one is tried.
async fn bind_sip(listen: SocketAddr) -> Result<(UdpSocket, TcpListener, SocketAddr), StartError> {
    let err = |addr, source| StartError::BindSip { addr, source };
    let mut attempt = 0;
    loop {
        attempt += 1;
        let socket = UdpSocket::bind(listen).await.map_err(|e| err(listen, e))?;
        let sip_addr = socket.local_addr().map_err(|e| err(listen, e))?;
        match TcpListener::bind(sip_addr).await {
            Ok(tcp) => return Ok((socket, tcp, sip_addr)),
            Err(e)
                if listen.port() == 0
                    && e.kind() == std::io::ErrorKind::AddrInUse
                    && attempt < EPHEMERAL_ATTEMPTS =>
            {
                continue
            }
            Err(e) => return Err(err(sip_addr, e)),
        }
    }
}

impl Engine {
    /// Bind SIP (UDP) and prepare the RTP range per `config`, then run in the
    /// background on the current tokio runtime. Returns once SIP is
    /// listening; RTP ports are bound per call from the configured range.
    pub async fn start(config: &sip_config::Config) -> Result<Started, StartError> {
        let listen = config.sip.listen;
        let (socket, tcp, sip_addr) = bind_sip(listen).await?;
        let local = LocalIdentity {
            sent_by: format!(
                "{}:{}",
                uri_host(config.sip.public_address),
                sip_addr.port()
            ),
            public_ip: config.sip.public_address,
        };
        let rtp_ip = config.rtp.bind_address.unwrap_or(listen.ip());
        let settings = Settings {
            local,
            timers: TimerConfig::default(),
            ring_timeout: Duration::from_secs(config.calls.ring_timeout_secs),
            control_timeout: Duration::from_secs(config.calls.control_timeout_secs),
            media_timeout: Duration::from_secs(config.rtp.media_timeout_secs),
            recording_dir: config.recording.dir.clone(),
            users: config
                .users
                .iter()
                .map(|u| {
                    (
                        crate::sip::e164::normalize(&u.username)
                            .unwrap_or_else(|| u.username.clone()),
                        u.password.clone(),
                    )
                })
                .collect(),
            digest_algorithms: config.sip.digest_algorithms.clone(),
        };
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let registrar = Arc::new(std::sync::Mutex::new(
            crate::sip::registrar::Registrar::new(),
        ));
        let (registrations_tx, registrations) = mpsc::unbounded_channel();
        let routes = RouteTable::new();
        let (events_tx, events) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            socket: Arc::new(socket),
            settings,
            routes: routes.clone(),
            trunks: crate::trunks::Trunks::new(config.trunks.clone()),
            ports: PortAllocator::new(rtp_ip, config.rtp.port_min, config.rtp.port_max),
            by_sip_call_id: DashMap::new(),
            by_session: DashMap::new(),
            by_engine_id: DashMap::new(),
            events: events_tx,
            tcp: super::tcp::Connections::new(),
            registrar: registrar.clone(),
            registrations: registrations_tx,
            nonce: crate::sip::auth::NonceSecret::random(),
            pending: DashMap::new(),
            draining: std::sync::atomic::AtomicBool::new(false),
            metrics: metrics.clone(),
            limiter: super::limiter::SourceLimiter::new(
                super::limiter::PER_SECOND,
                super::limiter::BURST,
            ),
        });
        shared.tcp.attach(&shared);
        let ports = shared.ports.clone();
        let live_calls = Arc::downgrade(&shared);
        let (commands, commands_rx) = mpsc::channel(1024);
        tokio::spawn(super::dispatch::receive_loop(shared.clone()));
        tokio::spawn(super::tcp::accept_loop(shared.clone(), tcp));
        tokio::spawn(super::register::sweep_loop(shared.clone()));
        super::keepalive::spawn_all(&shared);
        tokio::spawn(super::commands::command_loop(shared, commands_rx));
        tracing::info!(%sip_addr, "SIP listening (UDP and TCP)");
        Ok(Started {
            handle: EngineHandle {
                routes,
                commands,
                registrar,
                metrics,
                ports,
                live: live_calls,
            },
            events,
            sip_addr,
            registrations,
        })
    }
}
