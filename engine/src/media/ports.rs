//! RTP/RTCP port pairs over the configured range, handed out with their
//! two sockets already bound.
//!
//! Pairs are (even RTP port, RTP+1 for RTCP). Released pairs go to the back
//! of the queue, so a port is reused as late as possible and stray packets of
//! an old call rarely reach a new one.
//!
//! A pair is bound on the RTP address when it is taken from the queue: a
//! port that another program holds (the range often overlaps the kernel's
//! ephemeral ports) fails that bind, goes to the back of the queue and the
//! next pair is tried, so a busy port never fails a call with 503. Binding
//! is the test: there is no separate probe socket, and the sockets are
//! created non-blocking and close-on-exec in one `socket()` call each
//! (4 `socket()` + 4 `bind()` per call, down from 8 + 8 plus 4 `close()` and
//! 4 `ioctl()` when a probe bind came first).

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};

use socket2::{Domain, Socket, Type};

/// Candidates tried per pair before giving up.
const TRIES: usize = 16;

/// A UDP socket bound on `addr`, non-blocking and close-on-exec from birth.
fn bind_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    let socket = Socket::new(
        Domain::for_address(addr),
        Type::DGRAM.nonblocking().cloexec(),
        None,
    )?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// Both sockets of the pair at `rtp` on `ip`, or an error when either port
/// is taken.
fn bind_pair(ip: IpAddr, rtp: u16) -> io::Result<[UdpSocket; 2]> {
    let rtcp = rtp
        .checked_add(1)
        .ok_or_else(|| io::Error::other("no RTCP port above 65535"))?;
    Ok([
        bind_udp(SocketAddr::new(ip, rtp))?,
        bind_udp(SocketAddr::new(ip, rtcp))?,
    ])
}

/// A reserved RTP/RTCP port pair and its sockets; the sockets close and the
/// pair returns to the pool when it is dropped.
#[derive(Debug)]
pub struct PortPair {
    rtp: u16,
    sockets: Option<[UdpSocket; 2]>,
    pool: Arc<Mutex<VecDeque<u16>>>,
}

impl PortPair {
    /// The RTP port (even); RTCP is `rtp() + 1`.
    pub fn rtp(&self) -> u16 {
        self.rtp
    }
    /// The RTCP port.
    pub fn rtcp(&self) -> u16 {
        self.rtp + 1
    }
    /// The RTP and RTCP sockets (bound, non-blocking), handed over once:
    /// whoever takes them closes them before dropping the pair, so the
    /// ports are free again when they go back to the pool.
    pub fn take_sockets(&mut self) -> Option<[UdpSocket; 2]> {
        self.sockets.take()
    }
}

impl Drop for PortPair {
    fn drop(&mut self) {
        // Close first: the next owner of the port must be able to bind it.
        drop(self.sockets.take());
        if let Ok(mut q) = self.pool.lock() {
            q.push_back(self.rtp);
        }
    }
}

/// The pool of free port pairs on one address.
#[derive(Debug, Clone)]
pub struct PortAllocator {
    ip: IpAddr,
    free: Arc<Mutex<VecDeque<u16>>>,
    total: usize,
}

impl PortAllocator {
    /// All even ports `p` with `min <= p` and `p + 1 <= max` on `ip`,
    /// handed out from a random point of the range on (so that several
    /// instances on one host, or one restarted, rarely pick the same ports
    /// first).
    pub fn new(ip: IpAddr, min: u16, max: u16) -> Self {
        let first = min + (min % 2);
        let mut free: VecDeque<u16> = (first..max).step_by(2).collect();
        if !free.is_empty() {
            let start = rand::random_range(0..free.len());
            free.rotate_left(start);
        }
        let total = free.len();
        PortAllocator {
            ip,
            free: Arc::new(Mutex::new(free)),
            total,
        }
    }

    /// The next pair of `q` that binds, with its sockets (pairs that do not
    /// bind go to the back).
    fn pop_bound(&self, q: &mut VecDeque<u16>) -> Option<(u16, [UdpSocket; 2])> {
        for _ in 0..TRIES.min(q.len()) {
            let rtp = q.pop_front()?;
            match bind_pair(self.ip, rtp) {
                Ok(sockets) => return Some((rtp, sockets)),
                Err(_) => q.push_back(rtp),
            }
        }
        None
    }

    fn pair(&self, (rtp, sockets): (u16, [UdpSocket; 2])) -> PortPair {
        PortPair {
            rtp,
            sockets: Some(sockets),
            pool: self.free.clone(),
        }
    }

    /// Reserve and bind one pair, or `None` when the range is exhausted.
    pub fn allocate(&self) -> Option<PortPair> {
        let bound = self.pop_bound(&mut *self.free.lock().ok()?)?;
        Some(self.pair(bound))
    }

    /// Reserve and bind `N` pairs at once, or none.
    pub fn allocate_n<const N: usize>(&self) -> Option<[PortPair; N]> {
        let mut q = self.free.lock().ok()?;
        let mut got = Vec::with_capacity(N);
        while got.len() < N {
            match self.pop_bound(&mut q) {
                Some(p) => got.push(p),
                None => {
                    // All or nothing: close what was bound, put it back.
                    for (rtp, sockets) in got.into_iter().rev() {
                        drop(sockets);
                        q.push_front(rtp);
                    }
                    return None;
                }
            }
        }
        drop(q);
        let bound: [(u16, [UdpSocket; 2]); N] = got.try_into().ok()?;
        Some(bound.map(|b| self.pair(b)))
    }

    /// Pairs currently free.
    pub fn available(&self) -> usize {
        self.free.lock().map(|q| q.len()).unwrap_or(0)
    }

    /// Pairs in the range.
    pub fn capacity(&self) -> usize {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    #[test]
    fn pairs_are_even_bound_and_returned_on_drop() {
        let pool = PortAllocator::new(LOCAL, 20001, 20006);
        assert_eq!(pool.capacity(), 2); // 20002/3, 20004/5
        let mut a = pool.allocate().unwrap();
        let b = pool.allocate().unwrap();
        let mut got = [a.rtp(), b.rtp()];
        got.sort();
        assert_eq!(got, [20002, 20004], "from a random start, every pair once");
        assert_eq!(a.rtcp(), a.rtp() + 1);
        assert!(pool.allocate().is_none());

        let [rtp, rtcp] = a.take_sockets().unwrap();
        assert_eq!(rtp.local_addr().unwrap(), SocketAddr::new(LOCAL, a.rtp()));
        assert_eq!(rtcp.local_addr().unwrap(), SocketAddr::new(LOCAL, a.rtcp()));
        let mut buf = [0u8; 4];
        let empty = rtp.recv_from(&mut buf).unwrap_err();
        assert_eq!(empty.kind(), io::ErrorKind::WouldBlock, "non-blocking");
        assert!(a.take_sockets().is_none(), "handed over once");
        drop((rtp, rtcp));

        let a_port = a.rtp();
        drop(a);
        assert_eq!(pool.available(), 1);
        // Released ports go to the back: next one is `a` again only
        // because it is the only one free, and it binds again.
        assert_eq!(pool.allocate().unwrap().rtp(), a_port);
        drop(b);
    }

    #[test]
    fn a_dropped_pair_closes_its_sockets_before_it_returns() {
        let pool = PortAllocator::new(LOCAL, 20101, 20104); // 20102/3 only
        let first = pool.allocate().unwrap();
        drop(first);
        assert!(pool.allocate().is_some(), "the same pair binds again");
    }

    #[test]
    fn allocate_n_is_all_or_nothing() {
        let pool = PortAllocator::new(LOCAL, 30000, 30004); // 30000/1, 30002/3
        let three: Option<[PortPair; 3]> = pool.allocate_n();
        assert!(three.is_none());
        assert_eq!(pool.available(), 2);
        let two: [PortPair; 2] = pool.allocate_n().unwrap();
        assert_eq!(pool.available(), 0);
        drop(two);
        assert_eq!(pool.available(), 2);
    }

    #[test]
    fn pairs_held_by_another_socket_are_skipped() {
        // Find a free even port, hold its RTCP neighbour, and see the
        // allocator pass over that pair.
        let held = (0..200u16)
            .map(|i| 39_000 + 2 * i)
            .find_map(|p| {
                bind_pair(LOCAL, p).ok()?;
                UdpSocket::bind((Ipv4Addr::LOCALHOST, p + 1)).ok()
            })
            .expect("a free port pair near 39000");
        let busy = held.local_addr().unwrap().port() - 1;
        let pool = PortAllocator::new(LOCAL, busy, busy + 5); // busy, busy+2, busy+4
        let a = pool.allocate().unwrap();
        assert_ne!(a.rtp(), busy);
        assert_eq!(pool.available(), 2, "the busy pair stays in the pool");
    }
}
