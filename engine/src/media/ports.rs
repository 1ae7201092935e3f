//! RTP/RTCP port-pair allocation over the configured range.
//!
//! Pairs are (even RTP port, RTP+1 for RTCP). Released pairs go to the back
//! of the queue, so a port is reused as late as possible and stray packets of
//! an old call rarely reach a new one.
//!
//! A pair that another program holds (the range often overlaps the kernel's
//! ephemeral ports, which any socket bound to port 0 may take) is skipped at
//! allocation: each candidate is test-bound on the wildcard address first,
//! and a busy one goes to the back of the queue instead of failing a call
//! with 503.

use std::collections::VecDeque;
use std::net::{Ipv4Addr, UdpSocket};
use std::sync::{Arc, Mutex};

/// Candidates tried per pair before giving up.
const TRIES: usize = 16;

/// Whether nobody holds UDP `port` or `port + 1` (on any address).
fn free_pair(port: u16) -> bool {
    let bind = |p: u16| UdpSocket::bind((Ipv4Addr::UNSPECIFIED, p)).is_ok();
    bind(port) && port.checked_add(1).is_some_and(bind)
}

/// A reserved RTP/RTCP port pair; returned to the pool when dropped.
#[derive(Debug)]
pub struct PortPair {
    rtp: u16,
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
}

impl Drop for PortPair {
    fn drop(&mut self) {
        if let Ok(mut q) = self.pool.lock() {
            q.push_back(self.rtp);
        }
    }
}

/// The pool of free port pairs.
#[derive(Debug, Clone)]
pub struct PortAllocator {
    free: Arc<Mutex<VecDeque<u16>>>,
    total: usize,
}

impl PortAllocator {
    /// All even ports `p` with `min <= p` and `p + 1 <= max`, handed out
    /// from a random point of the range on (so that several instances on
    /// one host, or one restarted, rarely pick the same ports first).
    pub fn new(min: u16, max: u16) -> Self {
        let first = min + (min % 2);
        let mut free: VecDeque<u16> = (first..max).step_by(2).collect();
        if !free.is_empty() {
            let start = rand::random_range(0..free.len());
            free.rotate_left(start);
        }
        let total = free.len();
        PortAllocator {
            free: Arc::new(Mutex::new(free)),
            total,
        }
    }

    /// The next free pair of `q` that nobody else holds (busy ones go to
    /// the back).
    fn pop_usable(q: &mut VecDeque<u16>) -> Option<u16> {
        for _ in 0..TRIES.min(q.len()) {
            let rtp = q.pop_front()?;
            if free_pair(rtp) {
                return Some(rtp);
            }
            q.push_back(rtp);
        }
        None
    }

    /// Reserve one pair, or `None` when the range is exhausted.
    pub fn allocate(&self) -> Option<PortPair> {
        let rtp = Self::pop_usable(&mut *self.free.lock().ok()?)?;
        Some(PortPair {
            rtp,
            pool: self.free.clone(),
        })
    }

    /// Reserve `N` pairs at once, or none.
    pub fn allocate_n<const N: usize>(&self) -> Option<[PortPair; N]> {
        let mut q = self.free.lock().ok()?;
        let mut got = Vec::with_capacity(N);
        while got.len() < N {
            match Self::pop_usable(&mut q) {
                Some(p) => got.push(p),
                None => {
                    // All or nothing: put back what was taken.
                    for p in got.into_iter().rev() {
                        q.push_front(p);
                    }
                    return None;
                }
            }
        }
        drop(q);
        let ports: [u16; N] = got.try_into().ok()?;
        Some(ports.map(|rtp| PortPair {
            rtp,
            pool: self.free.clone(),
        }))
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

    #[test]
    fn pairs_are_even_and_returned_on_drop() {
        let pool = PortAllocator::new(20001, 20006);
        assert_eq!(pool.capacity(), 2); // 20002/3, 20004/5
        let a = pool.allocate().unwrap();
        let b = pool.allocate().unwrap();
        let mut got = [a.rtp(), b.rtp()];
        got.sort();
        assert_eq!(got, [20002, 20004], "from a random start, every pair once");
        assert_eq!(a.rtcp(), a.rtp() + 1);
        assert!(pool.allocate().is_none());
        let a_port = a.rtp();
        drop(a);
        assert_eq!(pool.available(), 1);
        // Released ports go to the back: next one is `a` again only
        // because it is the only one free.
        assert_eq!(pool.allocate().unwrap().rtp(), a_port);
        drop(b);
    }

    #[test]
    fn allocate_n_is_all_or_nothing() {
        let pool = PortAllocator::new(30000, 30004); // 30000/1, 30002/3
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
                free_pair(p).then(|| UdpSocket::bind((Ipv4Addr::LOCALHOST, p + 1)).ok())?
            })
            .expect("a free port pair near 39000");
        let busy = held.local_addr().unwrap().port() - 1;
        let pool = PortAllocator::new(busy, busy + 5); // busy, busy+2, busy+4
        let a = pool.allocate().unwrap();
        assert_ne!(a.rtp(), busy);
        assert_eq!(pool.available(), 2, "the busy pair stays in the pool");
    }
}
