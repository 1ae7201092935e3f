//! Issue #9, front door: the shipped `deploy/kamailio/kamailio.cfg` in
//! front of two nodes. Calls to Kamailio's one address are spread over
//! both nodes; when one node dies, calls go to the other.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use maskline_e2e::{
    bounded, BridgedCall, E2eError, InviteSpec, Maskline, PortBlock, Result, RtpEndpoint, SipPeer,
    PARTY_A, PARTY_B, WAIT,
};

use super::{cluster_db, two_nodes, wait_not_busy, wait_routed};

/// Kamailio's probing interval in the test (seconds).
const PING_INTERVAL: u64 = 1;

fn lo(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// The shipped configuration.
fn config_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/kamailio/kamailio.cfg")
}

/// `$MASKLINE_KAMAILIO`, else Debian's `/usr/sbin/kamailio`, else `kamailio`.
fn binary() -> PathBuf {
    if let Some(b) = std::env::var_os("MASKLINE_KAMAILIO") {
        return PathBuf::from(b);
    }
    let debian = PathBuf::from("/usr/sbin/kamailio");
    if debian.is_file() {
        debian
    } else {
        PathBuf::from("kamailio")
    }
}

/// A Kamailio process running the shipped config, dispatching to `nodes`.
struct Kamailio {
    child: Option<Child>,
    addr: SocketAddr,
    log: PathBuf,
}

impl Kamailio {
    /// Starts Kamailio on `addr` with a dispatcher list of `nodes` (in
    /// `dir`) and waits until it answers OPTIONS.
    async fn start(addr: SocketAddr, nodes: &[SocketAddr], dir: &Path) -> Result<Kamailio> {
        let list = dir.join("dispatcher.list");
        let lines: Vec<String> = nodes.iter().map(|n| format!("1 sip:{n}\n")).collect();
        std::fs::write(&list, lines.concat()).map_err(|e| E2eError::io("dispatcher.list", e))?;
        let log = dir.join("kamailio.log");
        let out = std::fs::File::create(&log).map_err(|e| E2eError::io("kamailio.log", e))?;
        let err = out
            .try_clone()
            .map_err(|e| E2eError::io("kamailio.log", e))?;
        let child = Command::new(binary())
            .args(["-DD", "-E", "-f"])
            .arg(config_path())
            .arg("-P")
            .arg(dir.join("kamailio.pid"))
            .args([
                "-A".to_string(),
                format!("LISTEN=udp:{addr}"),
                "-A".to_string(),
                format!("DISPATCHER_LIST=\"{}\"", list.display()),
                "-A".to_string(),
                format!("PING_INTERVAL={PING_INTERVAL}"),
                "-A".to_string(),
                "FR_TIMER=2000".to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| E2eError::io("spawning kamailio (apt-get install kamailio)", e))?;
        let mut kam = Kamailio {
            child: Some(child),
            addr,
            log,
        };
        let mut probe = SipPeer::bind(lo(0), addr).await?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let answer = probe.options(Duration::from_millis(300)).await;
            if answer.is_ok_and(|r| r.status() == Some(200)) {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(E2eError::Unexpected(format!(
                    "Kamailio did not answer OPTIONS within 10 s; log:\n{}",
                    kam.log_text()
                )));
            }
        }
        if let Some(status) = kam.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
            return Err(E2eError::Unexpected(format!(
                "kamailio exited ({status}):\n{}",
                kam.log_text()
            )));
        }
        Ok(kam)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGTERM: the main process stops its children too.
            let pid = child.id().to_string();
            let _ = Command::new("kill").args(["-TERM", &pid]).status();
            for _ in 0..50 {
                if child.try_wait().ok().flatten().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        eprintln!(
            "--- kamailio log ({}) ---\n{}",
            self.log.display(),
            self.log_text()
        );
    }
}

/// A call to `masked` sent to Kamailio; whichever node gets it dials the
/// callee on its own trunk, where a peer per node waits. Returns the index
/// (in `nodes`) of the node that took it and the bridged call.
async fn call_via(
    kam: &Kamailio,
    nodes: &[&Maskline],
    ports: &PortBlock,
    slot: u16,
    masked: &str,
) -> Result<(usize, BridgedCall)> {
    let mut callees = Vec::new();
    for n in nodes {
        callees.push(SipPeer::bind(n.trunk_addr(), n.sip_addr()).await?);
    }
    let caller_rtp = RtpEndpoint::bind(lo(ports.rtp(2 * slot))).await?;
    let callee_rtp = RtpEndpoint::bind(lo(ports.rtp(2 * slot + 1))).await?;
    let mut caller = SipPeer::bind(lo(ports.peer(slot)), kam.addr).await?;
    let invite = caller
        .invite(&InviteSpec {
            dialled: masked.to_string(),
            caller: PARTY_A.to_string(),
            rtp: caller_rtp.local_addr(),
        })
        .await?;
    // The first node to be dialled out of gets it (a dead node never is).
    let within = Duration::from_secs(8);
    let (index, callee_invite) = {
        let waits = callees.iter_mut().enumerate().map(|(i, p)| {
            Box::pin(async move { (i, p.recv_request_within("INVITE", within).await) })
        });
        let mut pending: Vec<_> = waits.collect();
        loop {
            if pending.is_empty() {
                return Err(E2eError::Unexpected(format!(
                    "no node dialled the callee; kamailio log:\n{}",
                    kam.log_text()
                )));
            }
            let ((i, got), _, rest) = futures_select(pending).await;
            match got {
                Ok(inv) => break (i, inv),
                Err(_) => pending = rest,
            }
        }
    };
    let mut callee = callees.swap_remove(index);
    let (callee_dialog, answered) = tokio::join!(
        callee.answer(&callee_invite, PARTY_B, callee_rtp.local_addr()),
        caller.answered(&invite, WAIT)
    );
    let (caller_answer, caller_dialog) = answered?;
    Ok((
        index,
        BridgedCall {
            caller,
            callee,
            caller_rtp,
            callee_rtp,
            caller_dialog,
            callee_dialog: callee_dialog?,
            invite,
            callee_invite,
            caller_answer,
        },
    ))
}

/// The first of `futures` to finish, its index and the others.
async fn futures_select<F: std::future::Future + Unpin>(
    futures: Vec<F>,
) -> (F::Output, usize, Vec<F>) {
    let mut futures = futures;
    std::future::poll_fn(move |cx| {
        for i in 0..futures.len() {
            if let Some(f) = futures.get_mut(i) {
                if let std::task::Poll::Ready(out) = std::pin::Pin::new(f).poll(cx) {
                    let _done = futures.swap_remove(i);
                    return std::task::Poll::Ready((out, i, std::mem::take(&mut futures)));
                }
            }
        }
        std::task::Poll::Pending
    })
    .await
}

/// Issue #9: calls through Kamailio's one address reach both nodes
/// (round-robin) with the media anchored on the node that took the call,
/// and in-dialog requests follow through Kamailio; after node kill -9,
/// calls through Kamailio still go through, on the survivor.
#[tokio::test]
async fn kamailio_spreads_calls_over_two_nodes_and_skips_a_dead_one() -> Result<()> {
    bounded(Duration::from_secs(90), async {
        let db = cluster_db()?;
        let (a, mut b) = two_nodes(&db).await?;
        let ports = PortBlock::allocate()?;
        let dir = a.dir().join("kamailio");
        std::fs::create_dir_all(&dir).map_err(|e| E2eError::io("kamailio dir", e))?;
        let kam = Kamailio::start(lo(ports.sip()), &[a.sip_addr(), b.sip_addr()], &dir).await?;

        let session = a.api().create_session(PARTY_A, PARTY_B, None).await?;
        wait_routed(&b, &session.masked_number, b.ports().peer(6)).await?;
        let mut took = Vec::new();
        for slot in 0..2 {
            let (i, mut call) =
                call_via(&kam, &[&a, &b], &ports, slot, &session.masked_number).await?;
            call.exchange_rtp().await?;
            call.caller_hangs_up().await?;
            took.push(i);
            // The other node learns of the hangup before the next call.
            for node in [&a, &b] {
                wait_not_busy(node, &session.id).await?;
            }
        }
        took.sort_unstable();
        assert_eq!(took, [0, 1], "one call on each node");

        // b dies: the next calls all go to a (b is skipped on timeout or
        // already out of the rotation after failed probes).
        b.kill9()?;
        for slot in 0..2 {
            let (i, mut call) = call_via(&kam, &[&a], &ports, slot, &session.masked_number).await?;
            assert_eq!(i, 0);
            call.exchange_rtp().await?;
            call.caller_hangs_up().await?;
            wait_not_busy(&a, &session.id).await?;
        }
        drop(kam);
        Ok(())
    })
    .await
}
