//! Relay workers: one thread per core (`ml-engine-rly<N>`), each owning the
//! sockets and [`RelayState`]s of many relays and waiting on all of them
//! with one level-triggered epoll set.
//!
//! Per ready socket a worker does one non-blocking `recv_from`, hands the
//! datagram to the relay's state and sends it on with one `send` (a
//! socket is connected to its peer once that peer is latched; `send_to`
//! before); under load one `epoll_wait` returns hundreds of ready sockets, so the wait is
//! shared by hundreds of packets. There is no per-packet task wake-up, no
//! extra `recv` that ends in `EAGAIN` (level-triggered: a socket with more
//! queued is simply reported again) and one receive buffer per worker.
//!
//! Relays are added, changed and removed through a channel that the worker
//! drains every time it wakes, before it handles any packet (so a new
//! target always applies to the packets that follow it), and at least every
//! [`CONTROL_POLL_MS`] when idle. Only a request that someone awaits
//! (quality figures) rings the eventfd doorbell: call setup and teardown
//! cost the worker no extra wake-up. A relay's ports go back to the pool
//! only after its sockets are closed.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, OnceLock};
use std::time::Instant;

use super::epoll::{disconnect, Epoll, EventFd, Token};
use super::ports::PortPair;
use super::relay::{sockets_of, Control, RelayState};

/// A relay's id (unique for the process).
pub(super) type RelayId = u64;

/// Epoll token of a worker's doorbell.
const BELL: Token = u64::MAX;
/// Largest datagram relayed whole.
const BUF: usize = 2048;
/// Ready sockets taken per `epoll_wait`.
const BATCH: usize = 512;
/// Longest an idle worker leaves its control queue unread, ms.
const CONTROL_POLL_MS: i32 = 20;

enum Msg {
    Add(RelayId, Box<Entry>),
    Remove(RelayId),
    Control(RelayId, Control),
}

/// A relay as its worker holds it. Field order is drop order: the sockets
/// close before the ports return to the pool.
struct Entry {
    sockets: [UdpSocket; 4],
    /// Whether each socket is `connect`ed to its latched source.
    links: [Link; 4],
    state: RelayState,
    _ports: (PortPair, PortPair),
}

struct Slot {
    generation: u32,
    entry: Box<Entry>,
}

/// One worker thread's mailbox.
pub(super) struct Worker {
    tx: mpsc::Sender<Msg>,
    bell: Arc<EventFd>,
}

/// A shared reference to a worker.
pub(super) type WorkerRef = Arc<Worker>;

impl Worker {
    /// Queue `msg`; ring the doorbell only when someone waits for it.
    fn post(&self, msg: Msg, urgent: bool) {
        if self.tx.send(msg).is_ok() && urgent {
            self.bell.notify();
        }
    }

    /// Deliver `control` to relay `id`.
    pub(super) fn control(&self, id: RelayId, control: Control) {
        let urgent = matches!(control, Control::Quality(_));
        self.post(Msg::Control(id, control), urgent);
    }

    /// Stop relay `id`, close its sockets and free its ports.
    pub(super) fn remove(&self, id: RelayId) {
        self.post(Msg::Remove(id), false);
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);
static NEXT_WORKER: AtomicUsize = AtomicUsize::new(0);

/// Worker threads: one per core (at most eight). A worker only runs while
/// packets are queued, so idle workers cost nothing, and on a busy machine
/// media gets a fair share of the CPU.
fn worker_count() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8)
}

fn pool() -> Option<&'static [WorkerRef]> {
    static POOL: OnceLock<Option<Vec<WorkerRef>>> = OnceLock::new();
    POOL.get_or_init(|| {
        let mut workers = Vec::new();
        for n in 0..worker_count() {
            match start_worker(n) {
                Ok(w) => workers.push(w),
                Err(e) => tracing::error!(error = %e, "cannot start a relay worker"),
            }
        }
        (!workers.is_empty()).then_some(workers)
    })
    .as_deref()
}

fn start_worker(n: usize) -> io::Result<WorkerRef> {
    let epoll = Epoll::new()?;
    let bell = Arc::new(EventFd::new()?);
    epoll.add(bell.as_raw_fd(), BELL)?;
    let (tx, rx) = mpsc::channel();
    let worker_bell = bell.clone();
    std::thread::Builder::new()
        .name(format!("ml-engine-rly{n}"))
        .spawn(move || run(epoll, worker_bell, rx))?;
    Ok(Arc::new(Worker { tx, bell }))
}

/// Hand a relay's sockets and state to a worker.
pub(super) fn add(
    sockets: [UdpSocket; 4],
    state: RelayState,
    ports: (PortPair, PortPair),
) -> io::Result<(WorkerRef, RelayId)> {
    let workers = pool().ok_or_else(|| io::Error::other("no relay worker is running"))?;
    let pick = NEXT_WORKER.fetch_add(1, Ordering::Relaxed) % workers.len().max(1);
    let worker = workers
        .get(pick)
        .cloned()
        .ok_or_else(|| io::Error::other("no relay worker is running"))?;
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    worker.post(
        Msg::Add(
            id,
            Box::new(Entry {
                sockets,
                links: [Link::Open; 4],
                state,
                _ports: ports,
            }),
        ),
        false,
    );
    Ok((worker, id))
}

fn token(generation: u32, slot: usize, socket: usize) -> Token {
    (u64::from(generation) << 32) | ((slot as u64 & 0x3fff_ffff) << 2) | (socket as u64 & 3)
}

fn untoken(t: Token) -> (u32, usize, usize) {
    (
        (t >> 32) as u32,
        ((t >> 2) & 0x3fff_ffff) as usize,
        (t & 3) as usize,
    )
}

/// A worker's relays: slots addressed by epoll tokens, ids for control.
struct Relays {
    slots: Vec<Option<Slot>>,
    free: Vec<usize>,
    by_id: HashMap<RelayId, usize>,
    generation: u32,
}

impl Relays {
    fn on_msg(&mut self, epoll: &Epoll, msg: Msg) {
        match msg {
            Msg::Add(id, entry) => {
                // Never u32::MAX, so no token equals BELL.
                self.generation = self.generation.wrapping_add(1) % u32::MAX;
                let slot = self.free.pop().unwrap_or(self.slots.len());
                let registered = entry.sockets.iter().enumerate().try_for_each(|(i, s)| {
                    epoll.add(s.as_raw_fd(), token(self.generation, slot, i))
                });
                if let Err(e) = registered {
                    tracing::warn!(error = %e, "cannot watch relay sockets");
                    for s in &entry.sockets {
                        let _ = epoll.delete(s.as_raw_fd());
                    }
                    if slot < self.slots.len() {
                        self.free.push(slot);
                    }
                    return;
                }
                let filled = Some(Slot {
                    generation: self.generation,
                    entry,
                });
                match self.slots.get_mut(slot) {
                    Some(s) => *s = filled,
                    None => self.slots.push(filled),
                }
                self.by_id.insert(id, slot);
            }
            Msg::Remove(id) => {
                let Some(slot) = self.by_id.remove(&id) else {
                    return;
                };
                if let Some(Some(s)) = self.slots.get_mut(slot).map(Option::take) {
                    for sock in &s.entry.sockets {
                        let _ = epoll.delete(sock.as_raw_fd());
                    }
                    self.free.push(slot);
                }
            }
            Msg::Control(id, control) => {
                let slot = self.by_id.get(&id).and_then(|&i| self.slots.get_mut(i));
                if let Some(Some(s)) = slot {
                    if let Control::Target(side, _) = &control {
                        // A new target resets the latch: hear anyone again.
                        for i in sockets_of(*side) {
                            s.entry.unlatch(i);
                        }
                    }
                    s.entry.state.on_control(control);
                }
            }
        }
    }
}

/// A relay socket's association with its latched peer. A connected socket
/// sends with `send` (the kernel keeps the route) and is found early for
/// an arriving packet; the kernel drops packets from anyone else, as strict
/// latching would.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Link {
    /// Not connected (no peer latched yet).
    Open,
    /// Connected to this peer.
    Connected(SocketAddr),
    /// The connect failed: stay unconnected (`send_to`) until the next
    /// latch rather than try again on every packet.
    Unconnected,
}

impl Entry {
    /// Dissolve socket `i`'s association, if it has one.
    fn unlatch(&mut self, i: usize) {
        let (Some(sock), Some(link)) = (self.sockets.get(i), self.links.get_mut(i)) else {
            return;
        };
        if let Link::Connected(_) = std::mem::replace(link, Link::Open) {
            if let Err(e) = disconnect(sock.as_raw_fd()) {
                tracing::warn!(error = %e, "cannot disconnect a relay socket");
            }
        }
    }

    /// Connect socket `i` to its peer once the peer is latched (tried once
    /// per latch).
    #[inline]
    fn latch(&mut self, i: usize) {
        let (Some(link), Some(sock)) = (self.links.get_mut(i), self.sockets.get(i)) else {
            return;
        };
        if *link != Link::Open {
            return;
        }
        if let Some(peer) = self.state.latched(i) {
            *link = match sock.connect(peer) {
                Ok(()) => Link::Connected(peer),
                Err(_) => Link::Unconnected,
            };
        }
    }
}

fn run(epoll: Epoll, bell: Arc<EventFd>, rx: mpsc::Receiver<Msg>) {
    let mut relays = Relays {
        slots: Vec::new(),
        free: Vec::new(),
        by_id: HashMap::new(),
        generation: 0,
    };
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; BATCH];
    let mut ready: Vec<Token> = Vec::with_capacity(BATCH);
    let mut buf = vec![0u8; BUF];
    loop {
        if let Err(e) = epoll.wait(&mut events, &mut ready, CONTROL_POLL_MS) {
            tracing::error!(error = %e, "relay worker: epoll_wait failed");
            return;
        }
        // Controls first: a target set before a packet arrived applies to it.
        loop {
            match rx.try_recv() {
                Ok(msg) => relays.on_msg(&epoll, msg),
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => return,
            }
        }
        for &t in &ready {
            if t == BELL {
                bell.drain();
                continue;
            }
            let (generation, slot, socket) = untoken(t);
            let Some(Some(s)) = relays.slots.get_mut(slot) else {
                continue;
            };
            if s.generation != generation {
                continue; // removed (and maybe reused) earlier in this batch
            }
            let entry = &mut *s.entry;
            let Entry {
                sockets,
                links,
                state,
                ..
            } = entry;
            let Some(sock) = sockets.get(socket) else {
                continue;
            };
            let Ok((len, src)) = sock.recv_from(&mut buf) else {
                continue;
            };
            let Some(packet) = buf.get(..len) else {
                continue;
            };
            state.on_packet(
                socket,
                packet,
                src,
                Instant::now(),
                &mut |to, bytes, dest| {
                    sockets.get(to).is_some_and(|out| {
                        if links.get(to) == Some(&Link::Connected(dest)) {
                            out.send(bytes).is_ok()
                        } else {
                            out.send_to(bytes, dest).is_ok()
                        }
                    })
                },
            );
            entry.latch(socket);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip() {
        for (g, s, i) in [(0, 0, 0), (7, 12345, 3), (u32::MAX, 0x3fff_ffff, 2)] {
            let t = token(g, s, i);
            assert_ne!(t, BELL);
            assert_eq!(untoken(t), (g, s, i));
        }
    }
}
