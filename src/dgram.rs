//! Datagrams in and out of a handle's UDP socket(s), behind a trait so the
//! transport's lifecycle tests can run on an in-memory network (and under
//! Miri, where there are no sockets).
//!
//! The real implementation, [`UdpSockets`], owns no descriptor: the C
//! program opened the socket(s) and closes them. A client that migrates
//! has a second socket; every send picks the socket bound to
//! `send_info.from`.

use std::io;
use std::net::SocketAddr;
use std::os::fd::RawFd;

use crate::batch_io::{prepare_socket, read_batch, send_segments, GsoPolicy, IoMode, RecvBatch};

/// Per-datagram callback of a read: `(payload, from, to)`.
pub type OnDatagram<'a> = &'a mut dyn FnMut(&mut [u8], SocketAddr, SocketAddr);

pub trait DatagramIo: Sized {
    /// The I/O of a new handle on the host's socket `fd`, bound to `local`.
    fn open(fd: RawFd, local: SocketAddr) -> Self;

    /// Why `fd` cannot carry a handle's datagrams (not a non-blocking UDP
    /// socket), or `None` when it can.
    fn socket_problem(fd: RawFd) -> Option<String>;

    /// The address `fd` is bound to.
    fn local_addr(fd: RawFd) -> io::Result<SocketAddr>;

    /// Reads one batch from socket `fd`; `Ok(false)` once it is drained.
    fn read_batch(&mut self, fd: RawFd, f: OnDatagram) -> io::Result<bool>;

    /// Sends `data` as packets of `segment` bytes (the last may be shorter)
    /// from the local address `from` to `to`. Returns the bytes that went
    /// out (whole packets), WouldBlock when none did.
    fn send(&mut self, data: &[u8], segment: usize, from: SocketAddr, to: SocketAddr) -> io::Result<usize>;

    /// The descriptor `from` is bound to (for a write watcher).
    fn fd_of(&self, from: SocketAddr) -> RawFd;

    /// Adds a socket (a client's new path).
    fn add_socket(&mut self, fd: RawFd, local: SocketAddr);

    /// The handle's sockets.
    fn fds(&self) -> Vec<RawFd>;

    /// Batched or plain I/O, GSO or not (a real socket's choice; an
    /// in-memory one ignores it).
    fn set_mode(&mut self, mode: IoMode);
    fn mode(&self) -> IoMode;
}

/// One bound socket.
struct Sock {
    fd: RawFd,
    local: SocketAddr,
}

/// The handle's sockets and the buffers to read them.
pub struct UdpSockets {
    socks: Vec<Sock>,
    mode: IoMode,
    /// recvmmsg buffers (batched mode).
    batch: Option<RecvBatch>,
    /// recvfrom buffer (plain mode).
    buf: Vec<u8>,
    /// Where the kernel refused GSO lately (per destination).
    gso: GsoPolicy,
}

impl UdpSockets {

    /// Forgets a socket (its path was abandoned); the first one stays.
    pub fn remove(&mut self, fd: RawFd) {
        if self.socks.len() > 1 {
            self.socks.retain(|s| s.fd != fd);
        }
    }

    pub fn local_of(&self, fd: RawFd) -> Option<SocketAddr> {
        self.socks.iter().find(|s| s.fd == fd).map(|s| s.local)
    }
}

impl DatagramIo for UdpSockets {
    fn open(fd: RawFd, local: SocketAddr) -> UdpSockets {
        let mut s = UdpSockets { socks: vec![Sock { fd, local }], mode: IoMode::PLAIN, batch: None,
                                 buf: vec![0; 65535], gso: GsoPolicy::new() };
        s.set_mode(IoMode::BATCHED);
        s
    }

    fn socket_problem(fd: RawFd) -> Option<String> {
        crate::socket::unusable_socket(fd)
    }

    fn local_addr(fd: RawFd) -> io::Result<SocketAddr> {
        crate::socket::local_addr(fd)
    }

    fn read_batch(&mut self, fd: RawFd, f: OnDatagram) -> io::Result<bool> {
        let Some(to) = self.local_of(fd) else {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "not one of this handle's sockets"));
        };
        read_batch(fd, self.batch.as_mut(), &mut self.buf, |pkt, from| f(pkt, from, to))
    }

    fn send(&mut self, data: &[u8], segment: usize, from: SocketAddr, to: SocketAddr) -> io::Result<usize> {
        let fd = self.fd_of(from);
        let gso = self.mode.gso.then_some(&mut self.gso);
        send_segments(fd, data, segment, &to, gso)
    }

    fn fd_of(&self, from: SocketAddr) -> RawFd {
        self.socks.iter().find(|s| s.local == from).unwrap_or(&self.socks[0]).fd
    }

    fn add_socket(&mut self, fd: RawFd, local: SocketAddr) {
        prepare_socket(fd, self.mode);
        self.socks.retain(|s| s.fd != fd);
        self.socks.push(Sock { fd, local });
    }

    fn fds(&self) -> Vec<RawFd> {
        self.socks.iter().map(|s| s.fd).collect()
    }

    /// Batched (recvmmsg/GRO, GSO) or plain (recvfrom/sendto) I/O, as far
    /// as this build has it ([`IoMode::supported`]: plain only, but on
    /// Linux); [`DatagramIo::mode`] tells what was taken.
    fn set_mode(&mut self, mode: IoMode) {
        let mode = mode.supported();
        self.mode = mode;
        for s in &self.socks {
            self.batch = prepare_socket(s.fd, mode);
        }
    }

    fn mode(&self) -> IoMode {
        self.mode
    }
}
