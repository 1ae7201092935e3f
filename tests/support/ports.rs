//! A block of free loopback ports per test, so tests run in parallel (and
//! beside other suites) without clashing.
//!
//! Blocks of [`BLOCK`] ports are taken below Linux's ephemeral range
//! (32768–60999) so that no OS-assigned client port lands in one. The first
//! block tried depends on the process id, and each candidate is probed by
//! binding every port it will use before it is handed out.

use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::error::{E2eError, Result};

/// Ports per block.
pub const BLOCK: u16 = 128;
const FIRST: u16 = 10_240;
const END: u16 = 32_768;
const PEERS: u16 = 7;
const RTPS: u16 = 6;
const SIPP_SLOTS: u16 = 3;
const SIPP_BASE: u16 = 16;
const SIPP_STRIDE: u16 = 8;
const MASKLINE_RTP: u16 = 64;

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Ports of one SIPp instance: its SIP port, its remote-control port and the
/// first of the four media ports it binds (audio and video RTP/RTCP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SippPorts {
    /// SIP (`-p`).
    pub sip: u16,
    /// Remote control (`-cp`).
    pub control: u16,
    /// Media (`-mp`); SIPp binds this one and the next three.
    pub media: u16,
}

/// A block of [`BLOCK`] consecutive loopback ports, 128-aligned:
///
/// | offset | use |
/// |---|---|
/// | 0 | Maskline SIP (UDP + TCP) |
/// | 1 | Maskline HTTP |
/// | 2 | the carrier trunk (where outbound legs go) |
/// | 3–9 | raw SIP peers |
/// | 10–15 | raw RTP endpoints |
/// | 16–39 | three SIPp instances (8 each) |
/// | 64–127 | Maskline's RTP range |
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortBlock {
    base: u16,
}

impl PortBlock {
    /// Finds a free block.
    pub fn allocate() -> Result<PortBlock> {
        let blocks = u32::from((END - FIRST) / BLOCK);
        let start = std::process::id() % blocks;
        for _ in 0..blocks {
            let index = (start + NEXT.fetch_add(1, Ordering::Relaxed)) % blocks;
            let Ok(offset) = u16::try_from(index) else {
                continue;
            };
            let block = PortBlock {
                base: FIRST + offset * BLOCK,
            };
            if block.is_free() {
                return Ok(block);
            }
        }
        Err(E2eError::Unexpected(format!(
            "no free block of {BLOCK} loopback ports in {FIRST}..{END}"
        )))
    }

    /// Whether every port of the block can be bound right now.
    fn is_free(&self) -> bool {
        let ip = Ipv4Addr::LOCALHOST;
        let tcp_ok = [self.sip(), self.http()]
            .iter()
            .all(|p| TcpListener::bind(SocketAddrV4::new(ip, *p)).is_ok());
        tcp_ok && (0..BLOCK).all(|o| UdpSocket::bind(SocketAddrV4::new(ip, self.base + o)).is_ok())
    }

    /// First port of the block.
    pub fn base(&self) -> u16 {
        self.base
    }

    /// Maskline's SIP port (UDP and TCP).
    pub fn sip(&self) -> u16 {
        self.base
    }

    /// Maskline's HTTP port.
    pub fn http(&self) -> u16 {
        self.base + 1
    }

    /// The carrier trunk's port: every outbound leg is sent here.
    pub fn trunk(&self) -> u16 {
        self.base + 2
    }

    /// The SIP port of raw peer `i` (0–6).
    pub fn peer(&self, i: u16) -> u16 {
        assert!(i < PEERS, "peer index {i} out of 0..{PEERS}");
        self.base + 3 + i
    }

    /// The port of raw RTP endpoint `i` (0–5).
    pub fn rtp(&self, i: u16) -> u16 {
        assert!(i < RTPS, "rtp index {i} out of 0..{RTPS}");
        self.base + 10 + i
    }

    /// The ports of SIPp instance `k` (0–2).
    pub fn sipp(&self, k: u16) -> SippPorts {
        assert!(k < SIPP_SLOTS, "SIPp slot {k} out of 0..{SIPP_SLOTS}");
        let slot = self.base + SIPP_BASE + k * SIPP_STRIDE;
        SippPorts {
            media: slot,
            control: slot + 4,
            sip: slot + 5,
        }
    }

    /// Maskline's RTP range `[port_min, port_max]` (even start).
    pub fn maskline_rtp(&self) -> (u16, u16) {
        (self.base + MASKLINE_RTP, self.base + BLOCK - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_has_no_overlap() {
        let b = PortBlock { base: FIRST };
        let mut used = vec![b.sip(), b.http(), b.trunk()];
        used.extend((0..PEERS).map(|i| b.peer(i)));
        used.extend((0..RTPS).map(|i| b.rtp(i)));
        for k in 0..SIPP_SLOTS {
            let s = b.sipp(k);
            used.extend([s.sip, s.control]);
            used.extend(s.media..s.media + 4);
        }
        let (lo, hi) = b.maskline_rtp();
        used.extend(lo..=hi);
        let mut sorted = used.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), used.len(), "a port is used twice");
        assert!(sorted.iter().all(|p| (b.base..b.base + BLOCK).contains(p)));
        assert_eq!(lo % 2, 0, "RTP range starts even");
        assert!(hi - lo + 1 >= 40);
    }

    #[test]
    fn allocated_blocks_are_distinct_and_below_ephemeral_range() {
        let a = PortBlock::allocate().map(|b| b.base());
        let b = PortBlock::allocate().map(|b| b.base());
        match (a, b) {
            (Ok(a), Ok(b)) => {
                assert_ne!(a, b);
                assert!(a >= FIRST && a + BLOCK <= END);
                assert_eq!(a % BLOCK, 0);
            }
            (a, b) => panic!("allocation failed: {a:?} {b:?}"),
        }
    }
}
