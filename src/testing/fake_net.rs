//! An in-memory UDP network for tests: sockets are numbers bound to
//! addresses; a datagram sent to an address lands in the inbox of the
//! socket bound there (or is lost, as UDP to nowhere is). A handle's
//! [`FakeIo`] reads and sends through it. A test makes one [`Net`], binds
//! sockets on it, and makes it the thread's current network so the C
//! API's constructors find it (`DatagramIo::open` takes an fd only).

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::rc::Rc;

use libc::c_int;

use crate::batch_io::IoMode;
use crate::dgram::{DatagramIo, OnDatagram};

/// Datagrams read per batch.
const BATCH: usize = 32;

#[derive(Default)]
pub struct Sock {
    pub local: Option<SocketAddr>,
    pub inbox: VecDeque<(Vec<u8>, SocketAddr)>,
}

#[derive(Default)]
pub struct NetState {
    pub socks: HashMap<RawFd, Sock>,
    next_fd: RawFd,
    /// Every datagram sent: (payload, from, to).
    pub sent: Vec<(Vec<u8>, SocketAddr, SocketAddr)>,
    /// Send calls that sent something (a GSO batch is one).
    pub send_calls: usize,
    /// Sends are refused (EAGAIN) while this is set.
    pub full: bool,
}

#[derive(Clone, Default)]
pub struct Net(pub Rc<RefCell<NetState>>);

thread_local! {
    static CURRENT: RefCell<Option<Net>> = const { RefCell::new(None) };
}

impl Net {
    pub fn new() -> Net {
        let n = Net::default();
        n.0.borrow_mut().next_fd = 100;
        n
    }

    /// Makes this the network the thread's handles are opened on.
    pub fn make_current(&self) {
        CURRENT.with(|c| *c.borrow_mut() = Some(self.clone()));
    }

    fn current() -> Net {
        CURRENT.with(|c| c.borrow().clone()).expect("a test made a Net current")
    }

    /// A new socket bound to `local` (`None`: not bound to anything).
    pub fn socket(&self, local: Option<SocketAddr>) -> RawFd {
        let mut s = self.0.borrow_mut();
        let fd = s.next_fd;
        s.next_fd += 1;
        s.socks.insert(fd, Sock { local, inbox: VecDeque::new() });
        fd
    }

    /// Queues a datagram for the socket bound to `to`, as if `from` sent it.
    pub fn deliver(&self, pkt: Vec<u8>, from: SocketAddr, to: SocketAddr) {
        let mut s = self.0.borrow_mut();
        if let Some(sock) = s.socks.values_mut().find(|k| k.local == Some(to)) {
            sock.inbox.push_back((pkt, from));
        }
    }

    /// What the loop needs: which fds are ready for what.
    pub fn readiness(&self) -> impl Fn(c_int, c_int) -> c_int + 'static {
        let net = self.clone();
        move |fd, _events| {
            let s = net.0.borrow();
            let readable = s.socks.get(&fd).is_some_and(|k| !k.inbox.is_empty());
            super::fake_loop::readiness(readable, !s.full)
        }
    }

    /// Takes what was sent so far.
    pub fn take_sent(&self) -> Vec<(Vec<u8>, SocketAddr, SocketAddr)> {
        std::mem::take(&mut self.0.borrow_mut().sent)
    }
}

/// A handle's sockets on the in-memory network.
pub struct FakeIo {
    net: Net,
    socks: Vec<(RawFd, SocketAddr)>,
}

impl DatagramIo for FakeIo {
    fn open(fd: RawFd, local: SocketAddr) -> FakeIo {
        FakeIo { net: Net::current(), socks: vec![(fd, local)] }
    }

    fn socket_problem(fd: RawFd) -> Option<String> {
        (!Net::current().0.borrow().socks.contains_key(&fd)).then(|| format!("{fd} is not a socket"))
    }

    fn local_addr(fd: RawFd) -> io::Result<SocketAddr> {
        let net = Net::current();
        let mut s = net.0.borrow_mut();
        let sock = s.socks.get_mut(&fd).ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        // Like the kernel: an unbound socket gets an address on first use.
        Ok(*sock.local.get_or_insert_with(|| SocketAddr::from(([127, 0, 0, 1], 40000 + fd as u16))))
    }

    fn read_batch(&mut self, fd: RawFd, f: OnDatagram) -> io::Result<bool> {
        let Some(&(_, local)) = self.socks.iter().find(|(s, _)| *s == fd) else {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "not one of this handle's sockets"));
        };
        for _ in 0..BATCH {
            // Take one out first: the callback may send.
            let next = self.net.0.borrow_mut().socks.get_mut(&fd).and_then(|s| s.inbox.pop_front());
            match next {
                Some((mut d, from)) => f(&mut d, from, local),
                None => return Ok(false),
            }
        }
        Ok(self.net.0.borrow().socks.get(&fd).is_some_and(|s| !s.inbox.is_empty()))
    }

    fn send(&mut self, data: &[u8], segment: usize, from: SocketAddr, to: SocketAddr) -> io::Result<usize> {
        if self.net.0.borrow().full {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        self.net.0.borrow_mut().send_calls += 1;
        for p in data.chunks(segment.max(1)) {
            self.net.0.borrow_mut().sent.push((p.to_vec(), from, to));
            self.net.deliver(p.to_vec(), from, to);
        }
        Ok(data.len())
    }

    fn fd_of(&self, from: SocketAddr) -> RawFd {
        self.socks.iter().find(|(_, l)| *l == from).unwrap_or(&self.socks[0]).0
    }

    fn add_socket(&mut self, fd: RawFd, local: SocketAddr) {
        self.socks.retain(|(s, _)| *s != fd);
        self.socks.push((fd, local));
    }

    fn fds(&self) -> Vec<RawFd> {
        self.socks.iter().map(|(fd, _)| *fd).collect()
    }

    fn set_mode(&mut self, _mode: IoMode) {}

    fn mode(&self) -> IoMode {
        IoMode::PLAIN
    }
}
