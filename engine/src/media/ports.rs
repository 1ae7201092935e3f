//! RTP/RTCP port-pair allocation over the configured range.
//!
//! Pairs are (even RTP port, RTP+1 for RTCP). Released pairs go to the back
//! of the queue, so a port is reused as late as possible and stray packets of
//! an old call rarely reach a new one.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

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

    /// Reserve one pair, or `None` when the range is exhausted.
    pub fn allocate(&self) -> Option<PortPair> {
        let rtp = self.free.lock().ok()?.pop_front()?;
        Some(PortPair {
            rtp,
            pool: self.free.clone(),
        })
    }

    /// Reserve `N` pairs at once, or none.
    pub fn allocate_n<const N: usize>(&self) -> Option<[PortPair; N]> {
        let mut q = self.free.lock().ok()?;
        if q.len() < N {
            return None;
        }
        let ports: [u16; N] = std::array::from_fn(|_| q.pop_front().unwrap_or_default());
        drop(q);
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
}
