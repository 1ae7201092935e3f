//! The kernel's floor for a UDP relay on this machine: one thread doing
//! nothing but `recv_from` + `send_to` on loopback while another floods it
//! and a third drains the output. The forwarder never waits (its socket is
//! always full), so its CPU per packet is the two syscalls alone: no
//! epoll, no wake-up, no user-space work. A relay cannot cost less per
//! packet with one receive and one send syscall each.

use std::io;
use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::load::TICKS_PER_SEC;

/// What [`udp_forward_floor`] measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Floor {
    /// Packets the forwarder received and sent on.
    pub forwarded: u64,
    /// Its CPU time over them, µs per packet.
    pub us_per_packet: f64,
    /// Packets per second it forwarded (one core at most).
    pub pps: f64,
}

fn thread_ticks() -> io::Result<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/stat")?;
    crate::load::stat_fields(&text)
        .map(|(_, t)| t)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unreadable stat"))
}

/// Forward 172-byte datagrams for `duration` and measure the forwarder.
pub fn udp_forward_floor(duration: Duration) -> io::Result<Floor> {
    forward_floor(duration, false)
}

/// As [`udp_forward_floor`], with both relay sockets `connect`ed to their
/// peer (`recv` + `send`): the kernel then keeps the route and finds the
/// socket of an arriving packet early. The gap between the two is what a
/// relay could save by connecting its sockets once a peer is latched.
pub fn udp_forward_floor_connected(duration: Duration) -> io::Result<Floor> {
    forward_floor(duration, true)
}

fn forward_floor(duration: Duration, connected: bool) -> io::Result<Floor> {
    let src = UdpSocket::bind("127.0.0.1:0")?;
    let relay_in = UdpSocket::bind("127.0.0.1:0")?;
    let relay_out = UdpSocket::bind("127.0.0.1:0")?;
    let sink = UdpSocket::bind("127.0.0.1:0")?;
    let (to_relay, to_sink) = (relay_in.local_addr()?, sink.local_addr()?);
    relay_in.set_read_timeout(Some(Duration::from_millis(100)))?;
    if connected {
        relay_in.connect(src.local_addr()?)?;
        relay_out.connect(to_sink)?;
    }
    sink.set_read_timeout(Some(Duration::from_millis(100)))?;
    let stop = Arc::new(AtomicBool::new(false));
    let flood = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let packet = [0x80u8; 172];
            while !stop.load(Ordering::Relaxed) {
                let _ = src.send_to(&packet, to_relay);
            }
        })
    };
    let drain = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !stop.load(Ordering::Relaxed) {
                let _ = sink.recv_from(&mut buf);
            }
        })
    };
    let mut buf = [0u8; 2048];
    // Warm up, then measure.
    let warm = Instant::now() + Duration::from_millis(100);
    while Instant::now() < warm {
        if let Ok((n, _)) = relay_in.recv_from(&mut buf) {
            let _ = relay_out.send_to(buf.get(..n).unwrap_or_default(), to_sink);
        }
    }
    let t0 = thread_ticks()?;
    let start = Instant::now();
    let mut forwarded = 0u64;
    while start.elapsed() < duration {
        let sent = if connected {
            relay_in
                .recv(&mut buf)
                .and_then(|n| relay_out.send(buf.get(..n).unwrap_or_default()))
        } else {
            relay_in
                .recv_from(&mut buf)
                .and_then(|(n, _)| relay_out.send_to(buf.get(..n).unwrap_or_default(), to_sink))
        };
        if sent.is_ok() {
            forwarded += 1;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let ticks = thread_ticks()?.saturating_sub(t0);
    stop.store(true, Ordering::Relaxed);
    let _ = flood.join();
    let _ = drain.join();
    Ok(Floor {
        forwarded,
        us_per_packet: ticks as f64 * 1e6 / TICKS_PER_SEC as f64 / forwarded.max(1) as f64,
        pps: forwarded as f64 / secs.max(1e-9),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwards_and_measures() {
        let f = udp_forward_floor(Duration::from_millis(200)).unwrap();
        assert!(f.forwarded > 0, "{f:?}");
        assert!(f.us_per_packet > 0.0 || f.forwarded < 100, "{f:?}");
        let c = udp_forward_floor_connected(Duration::from_millis(200)).unwrap();
        assert!(c.forwarded > 0, "{c:?}");
    }
}
