//! The few Linux calls the relay workers need that std does not offer:
//! a level-triggered `epoll` set and an `eventfd` to wake a worker. Every
//! `unsafe` block is a plain syscall on a file descriptor this module owns,
//! with buffers whose length is passed alongside.
//!
//! Level-triggered on purpose: a worker reads one datagram per readiness
//! event and the kernel reports the socket again while more are queued, so
//! no read ever ends in `EAGAIN` just to re-arm an edge.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// A readiness event: the token given to [`Epoll::add`].
pub type Token = u64;

/// An epoll instance (closed on drop).
#[derive(Debug)]
pub struct Epoll {
    fd: OwnedFd,
}

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

impl Epoll {
    /// A new, empty set (close-on-exec).
    pub fn new() -> io::Result<Epoll> {
        // SAFETY: no pointers; the returned fd is checked and then owned.
        let fd = check(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: `fd` is a fresh descriptor nobody else owns.
        Ok(Epoll {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Watch `fd` for input, level-triggered, reporting `token`.
    pub fn add(&self, fd: RawFd, token: Token) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: token,
        };
        // SAFETY: `ev` is a valid epoll_event for the duration of the call.
        check(unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) })
            .map(|_| ())
    }

    /// Stop watching `fd` (before it is closed).
    pub fn delete(&self, fd: RawFd) -> io::Result<()> {
        let mut ev = libc::epoll_event { events: 0, u64: 0 };
        // SAFETY: as in `add` (the event is ignored by EPOLL_CTL_DEL).
        check(unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), libc::EPOLL_CTL_DEL, fd, &mut ev) })
            .map(|_| ())
    }

    /// Wait up to `timeout_ms` (-1: forever) and append the ready tokens to
    /// `out` (cleared first). `EINTR` is an empty result.
    pub fn wait(
        &self,
        events: &mut [libc::epoll_event],
        out: &mut Vec<Token>,
        timeout_ms: i32,
    ) -> io::Result<()> {
        out.clear();
        let max = libc::c_int::try_from(events.len()).unwrap_or(libc::c_int::MAX);
        // SAFETY: `events` is writable for `max` entries.
        let n =
            unsafe { libc::epoll_wait(self.fd.as_raw_fd(), events.as_mut_ptr(), max, timeout_ms) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(())
            } else {
                Err(e)
            };
        }
        let n = usize::try_from(n).unwrap_or(0).min(events.len());
        out.extend(events.iter().take(n).map(|e| e.u64));
        Ok(())
    }
}

/// Dissolve a UDP socket's association (`connect` to `AF_UNSPEC`): it
/// receives from anyone again and needs an address for each send.
pub fn disconnect(fd: RawFd) -> io::Result<()> {
    let addr = libc::sockaddr {
        sa_family: libc::AF_UNSPEC as libc::sa_family_t,
        sa_data: [0; 14],
    };
    let len = std::mem::size_of::<libc::sockaddr>() as libc::socklen_t;
    // SAFETY: `addr` is a valid sockaddr of `len` bytes for the call.
    check(unsafe { libc::connect(fd, &addr, len) }).map(|_| ())
}

/// A non-blocking eventfd used as a doorbell.
#[derive(Debug)]
pub struct EventFd {
    fd: OwnedFd,
}

impl EventFd {
    /// A new doorbell (non-blocking, close-on-exec).
    pub fn new() -> io::Result<EventFd> {
        // SAFETY: no pointers; the returned fd is checked and then owned.
        let fd = check(unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) })?;
        // SAFETY: `fd` is a fresh descriptor nobody else owns.
        Ok(EventFd {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Ring (a full counter is still a ring: the error is ignored).
    pub fn notify(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64.
        unsafe {
            libc::write(
                self.fd.as_raw_fd(),
                (&one as *const u64).cast::<libc::c_void>(),
                8,
            )
        };
    }

    /// Reset the counter.
    pub fn drain(&self) {
        let mut v: u64 = 0;
        // SAFETY: reads at most 8 bytes into a live u64.
        unsafe {
            libc::read(
                self.fd.as_raw_fd(),
                (&mut v as *mut u64).cast::<libc::c_void>(),
                8,
            )
        };
    }
}

impl AsRawFd for EventFd {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    #[test]
    fn a_disconnected_socket_hears_everyone_again() {
        // An explicit port, as relay sockets have: a socket bound to port 0
        // gives its port up when it is disconnected.
        let s = (0..200u16)
            .find_map(|i| UdpSocket::bind(("127.0.0.1", 38_000 + i)).ok())
            .expect("a free port near 38000");
        let (peer, other) = (
            UdpSocket::bind("127.0.0.1:0").unwrap(),
            UdpSocket::bind("127.0.0.1:0").unwrap(),
        );
        s.set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .unwrap();
        s.connect(peer.local_addr().unwrap()).unwrap();
        other.send_to(b"filtered", s.local_addr().unwrap()).unwrap();
        peer.send_to(b"peer", s.local_addr().unwrap()).unwrap();
        let mut buf = [0u8; 16];
        let n = s.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"peer", "connected: only the peer is heard");
        disconnect(s.as_raw_fd()).unwrap();
        other.send_to(b"other", s.local_addr().unwrap()).unwrap();
        let (n, from) = s.recv_from(&mut buf).unwrap();
        assert_eq!(
            (&buf[..n], from),
            (&b"other"[..], other.local_addr().unwrap())
        );
    }

    #[test]
    fn reports_readable_sockets_level_triggered_and_the_doorbell() {
        let ep = Epoll::new().unwrap();
        let bell = EventFd::new().unwrap();
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        ep.add(a.as_raw_fd(), 7).unwrap();
        ep.add(bell.as_raw_fd(), 99).unwrap();
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 8];
        let mut ready = Vec::new();
        ep.wait(&mut events, &mut ready, 0).unwrap();
        assert!(ready.is_empty());
        b.send_to(b"x", a.local_addr().unwrap()).unwrap();
        b.send_to(b"y", a.local_addr().unwrap()).unwrap();
        ep.wait(&mut events, &mut ready, 1000).unwrap();
        assert_eq!(ready, vec![7]);
        let mut buf = [0u8; 8];
        a.recv_from(&mut buf).unwrap();
        // One datagram still queued: reported again (level-triggered).
        ep.wait(&mut events, &mut ready, 1000).unwrap();
        assert_eq!(ready, vec![7]);
        a.recv_from(&mut buf).unwrap();
        ep.wait(&mut events, &mut ready, 0).unwrap();
        assert!(ready.is_empty());
        bell.notify();
        ep.wait(&mut events, &mut ready, 1000).unwrap();
        assert_eq!(ready, vec![99]);
        bell.drain();
        ep.delete(a.as_raw_fd()).unwrap();
        ep.wait(&mut events, &mut ready, 0).unwrap();
        assert!(ready.is_empty());
    }
}
