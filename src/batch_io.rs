//! Batched UDP I/O: `recvmmsg` with UDP GRO on the way in, UDP GSO
//! (`UDP_SEGMENT`) on the way out, each with a plain fallback.
//!
//! One `recvmmsg` returns up to `RECV_BATCH` datagrams, and with GRO each
//! may hold many equal-sized segments that the kernel coalesced; one GSO
//! `sendmsg` sends up to `MAX_SEGMENTS` packets. On loopback this removes
//! most of the per-packet system calls that dominate a bulk transfer.
//!
//! Those are Linux interfaces: they live in `linux.rs`, compiled on Linux
//! only. Elsewhere (macOS, the BSDs), and on Linux with the `portable`
//! feature (which takes the other platforms' path so that it runs and is
//! tested here), every socket uses the plain path, one `recvfrom` /
//! `sendto` per packet: [`IoMode::SUPPORTED`] is [`IoMode::PLAIN`] and a
//! batched mode asked for is not taken.

use std::collections::HashMap;
use std::io;
use std::mem;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

#[cfg(all(target_os = "linux", not(feature = "portable")))]
mod linux;
#[cfg(all(target_os = "linux", not(feature = "portable")))]
use linux as sys;
#[cfg(all(target_os = "linux", not(feature = "portable")))]
pub use linux::{set_gro, RecvBatch};

/// Datagrams per `recvmmsg`.
pub(crate) const RECV_BATCH: usize = 16;
/// Most segments in one GSO send (the kernel's UDP_MAX_SEGMENTS is 64).
pub(crate) const MAX_SEGMENTS: usize = 64;
/// Largest GSO send: one UDP datagram's worth of payload.
pub(crate) const MAX_GSO_BYTES: usize = 65000;

/// How a socket's datagrams move.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoMode {
    /// recvmmsg + GRO instead of one recvfrom per datagram.
    pub batch_recv: bool,
    /// GSO sends instead of one sendto per packet.
    pub gso: bool,
}

impl IoMode {
    pub const BATCHED: IoMode = IoMode { batch_recv: true, gso: true };
    pub const PLAIN: IoMode = IoMode { batch_recv: false, gso: false };

    /// What this build can do: everything on Linux, the plain path
    /// elsewhere (and with the `portable` feature).
    #[cfg(all(target_os = "linux", not(feature = "portable")))]
    pub const SUPPORTED: IoMode = IoMode::BATCHED;
    #[cfg(not(all(target_os = "linux", not(feature = "portable"))))]
    pub const SUPPORTED: IoMode = IoMode::PLAIN;

    /// `self` without what this build cannot do.
    pub fn supported(self) -> IoMode {
        IoMode { batch_recv: self.batch_recv && IoMode::SUPPORTED.batch_recv, gso: self.gso && IoMode::SUPPORTED.gso }
    }
}

/// Socket buffer size asked for on the batched path: a GSO burst is up to
/// 64 KiB per send, and the default ~208 KiB receive buffer overflows
/// (= loss = a smaller congestion window) long before the CPU is busy.
/// The kernel caps it at net.core.{r,w}mem_max.
pub(crate) const SOCKET_BUFFER: libc::c_int = 4 << 20;

/// Asks for larger send and receive buffers (best effort).
pub fn grow_buffers(fd: RawFd) {
    for opt in [libc::SO_RCVBUF, libc::SO_SNDBUF] {
        // SAFETY: a c_int option value of the right size.
        unsafe {
            libc::setsockopt(fd, libc::SOL_SOCKET, opt, &SOCKET_BUFFER as *const _ as *const libc::c_void,
                             mem::size_of::<libc::c_int>() as libc::socklen_t);
        }
    }
}

/// Prepares socket `fd` for `mode` (GRO for batched reads, larger buffers
/// for GSO bursts) and returns the read buffers it needs, if any. `mode`
/// is taken as far as this build supports it ([`IoMode::supported`]).
pub fn prepare_socket(fd: RawFd, mode: IoMode) -> Option<RecvBatch> {
    let mode = mode.supported();
    if mode.gso {
        grow_buffers(fd);
    }
    sys::prepare(fd, mode)
}

/// Reads one batch from `fd` and hands every UDP payload to `f`, each
/// GRO-coalesced packet on its own: with `batch`, one `recvmmsg`; without,
/// up to `RECV_BATCH` `recvfrom` calls into `buf`. `Ok(false)` once the
/// socket is drained. Datagrams from non-IP senders are skipped.
pub fn read_batch(fd: RawFd, batch: Option<&mut RecvBatch>, buf: &mut [u8],
                  mut f: impl FnMut(&mut [u8], SocketAddr)) -> io::Result<bool> {
    if let Some(batch) = batch {
        return batch.read(fd, &mut f);
    }
    for _ in 0..RECV_BATCH {
        match crate::socket::recv_from(fd, buf) {
            Ok((len, from)) => f(&mut buf[..len], from),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// The other platforms (and Linux with the `portable` feature): no batched
/// reads, no GRO, no GSO. [`IoMode::SUPPORTED`] keeps the callers off this
/// module's refusals.
#[cfg(not(all(target_os = "linux", not(feature = "portable"))))]
mod sys {
    use super::IoMode;
    use std::io;
    use std::net::SocketAddr;
    use std::os::fd::RawFd;

    /// There are no batch buffers here: the type has no values, so
    /// `Option<RecvBatch>` is always `None` and reads take the plain path.
    pub enum RecvBatch {}

    impl RecvBatch {
        pub(super) fn read(&mut self, _fd: RawFd, _f: &mut impl FnMut(&mut [u8], SocketAddr)) -> io::Result<bool> {
            match *self {}
        }
    }

    pub(super) fn prepare(_fd: RawFd, mode: IoMode) -> Option<RecvBatch> {
        debug_assert!(!mode.batch_recv, "batched reads asked for where they do not exist");
        None
    }

    /// Turning UDP GRO on or off: never available here.
    pub fn set_gro(_fd: RawFd, _on: bool) -> bool {
        false
    }

    /// A GSO send: not available here (never asked for, since
    /// `IoMode::SUPPORTED` has no GSO).
    pub(super) fn send_gso(_fd: RawFd, _buf: &[u8], _segment: usize, _to: &SocketAddr) -> io::Result<usize> {
        Err(io::ErrorKind::Unsupported.into())
    }
}
#[cfg(not(all(target_os = "linux", not(feature = "portable"))))]
pub use sys::{set_gro, RecvBatch};

/// How long plain sends go to a destination whose route refused GSO
/// before GSO is tried again there (the route or device may change).
pub const GSO_RETRY_AFTER: Duration = Duration::from_secs(10);

/// Most destinations a [`GsoPolicy`] remembers.
const GSO_POLICY_CAPACITY: usize = 64;

/// Where GSO was refused, for one socket. The kernel refuses a GSO send
/// (EIO, EINVAL) per route and device, i.e. per destination address (the
/// port does not matter), so a refusal only sends that destination's
/// batches as plain packets, and only for [`GSO_RETRY_AFTER`].
#[derive(Debug, Default)]
pub struct GsoPolicy {
    /// Destination -> when to try GSO there again.
    refused: HashMap<IpAddr, Instant>,
}

impl GsoPolicy {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether to try GSO to `to` at `now` (read only when some
    /// destination has refused it: a clock read per send otherwise).
    fn allows(&mut self, to: IpAddr, now: impl Fn() -> Instant) -> bool {
        if self.refused.is_empty() {
            return true;
        }
        match self.refused.get(&to) {
            Some(&retry_at) if now() < retry_at => false,
            Some(_) => {
                self.refused.remove(&to);
                true
            }
            None => true,
        }
    }

    /// The kernel refused GSO to `to` at `now`. When the map is full, the
    /// destination due soonest is forgotten: that costs it one more refused
    /// send, never a wrong one.
    fn refuse(&mut self, to: IpAddr, now: Instant) {
        if self.refused.len() >= GSO_POLICY_CAPACITY && !self.refused.contains_key(&to) {
            self.refused.retain(|_, retry_at| now < *retry_at);
            if self.refused.len() >= GSO_POLICY_CAPACITY {
                if let Some(ip) = self.refused.iter().min_by_key(|(_, at)| **at).map(|(ip, _)| *ip) {
                    self.refused.remove(&ip);
                }
            }
        }
        self.refused.insert(to, now + GSO_RETRY_AFTER);
    }
}

/// The two ways a batch leaves: the socket, or a stand-in in tests.
trait Wire {
    /// One GSO `sendmsg` of packets of `segment` bytes.
    fn send_gso(&mut self, buf: &[u8], segment: usize, to: &SocketAddr) -> io::Result<usize>;
    /// One packet.
    fn send_one(&mut self, pkt: &[u8], to: &SocketAddr) -> io::Result<usize>;
}

struct Socket(RawFd);

impl Wire for Socket {
    fn send_gso(&mut self, buf: &[u8], segment: usize, to: &SocketAddr) -> io::Result<usize> {
        sys::send_gso(self.0, buf, segment, to)
    }

    fn send_one(&mut self, pkt: &[u8], to: &SocketAddr) -> io::Result<usize> {
        crate::socket::send_to(self.0, pkt, to)
    }
}

/// Sends `buf` to `to` as packets of `segment` bytes (the last may be
/// shorter): one GSO `sendmsg` when `gso` is given and has not seen GSO
/// refused for `to` lately, else one `sendto` each. Returns how many bytes
/// went out (a whole number of packets); WouldBlock only when none did.
pub fn send_segments(fd: RawFd, buf: &[u8], segment: usize, to: &SocketAddr,
                     gso: Option<&mut GsoPolicy>) -> io::Result<usize> {
    send_via(&mut Socket(fd), buf, segment, to, gso, Instant::now)
}

fn send_via(wire: &mut impl Wire, buf: &[u8], segment: usize, to: &SocketAddr,
            gso: Option<&mut GsoPolicy>, now: impl Fn() -> Instant) -> io::Result<usize> {
    if let Some(policy) = gso {
        if buf.len() > segment && policy.allows(to.ip(), &now) {
            match wire.send_gso(buf, segment, to) {
                Ok(n) => return Ok(n),
                // EIO/EINVAL: no GSO on this route or device; this batch
                // goes out plain.
                Err(e) if matches!(e.raw_os_error(), Some(libc::EIO) | Some(libc::EINVAL)) => {
                    policy.refuse(to.ip(), now());
                }
                Err(e) => return Err(e),
            }
        }
    }
    let mut sent = 0;
    for pkt in buf.chunks(segment) {
        match wire.send_one(pkt, to) {
            Ok(_) => sent += pkt.len(),
            Err(e) if sent > 0 && is_full(&e) => break,
            Err(e) => return Err(e),
        }
    }
    Ok(sent)
}

/// The socket buffer is full for now (EAGAIN or ENOBUFS).
pub fn is_full(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock || e.raw_os_error() == Some(libc::ENOBUFS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;

    #[test]
    fn plain_send_is_one_packet_each() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let data = vec![1u8; 2500];
        let n = send_segments(tx.as_raw_fd(), &data, 1000, &rx.local_addr().unwrap(), None).unwrap();
        assert_eq!(n, 2500);
        let mut buf = [0u8; 4000];
        assert_eq!(rx.recv(&mut buf).unwrap(), 1000);
        assert_eq!(rx.recv(&mut buf).unwrap(), 1000);
        assert_eq!(rx.recv(&mut buf).unwrap(), 500);
    }

    #[test]
    fn a_batched_mode_is_taken_only_where_it_exists() {
        let linux = cfg!(all(target_os = "linux", not(feature = "portable")));
        assert_eq!(IoMode::SUPPORTED, if linux { IoMode::BATCHED } else { IoMode::PLAIN });
        assert_eq!(IoMode::BATCHED.supported(), IoMode::SUPPORTED);
        assert_eq!(IoMode { batch_recv: true, gso: false }.supported().gso, false);
        assert_eq!(IoMode::PLAIN.supported(), IoMode::PLAIN);
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        assert_eq!(prepare_socket(rx.as_raw_fd(), IoMode::BATCHED).is_some(), linux);
    }

    #[test]
    fn read_batch_delivers_each_datagram_on_either_path() {
        // Batched where the build has it, and the plain path everywhere.
        for mode in [IoMode::BATCHED, IoMode::PLAIN] {
            let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
            rx.set_nonblocking(true).unwrap();
            let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
            let mut batch = prepare_socket(rx.as_raw_fd(), mode);
            assert_eq!(batch.is_some(), mode.supported().batch_recv);
            let to = rx.local_addr().unwrap();
            for d in [&b"one"[..], b"two", b"three"] {
                send_segments(tx.as_raw_fd(), d, 1200, &to, None).unwrap();
            }
            let mut got = Vec::new();
            let mut buf = vec![0u8; 65535];
            let deadline = Instant::now() + Duration::from_secs(5);
            while got.len() < 3 {
                assert!(Instant::now() < deadline, "{mode:?}: only {got:?} arrived");
                read_batch(rx.as_raw_fd(), batch.as_mut(), &mut buf, |pkt, from| {
                    assert_eq!(from, tx.local_addr().unwrap());
                    got.push(pkt.to_vec());
                }).unwrap();
            }
            assert_eq!(got, [&b"one"[..], b"two", b"three"], "{mode:?}");
        }
    }

    #[cfg(all(target_os = "linux", not(feature = "portable")))]
    #[test]
    fn a_batched_read_that_did_not_fill_the_batch_says_the_socket_is_drained() {
        // Otherwise every wake-up costs one more recvmmsg, only to hear
        // EAGAIN. Sizes grow so that GRO cannot join two into one slot.
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_nonblocking(true).unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut batch = prepare_socket(rx.as_raw_fd(), IoMode::BATCHED);
        let to = rx.local_addr().unwrap();
        let total = RECV_BATCH + 3;
        for i in 0..total {
            send_segments(tx.as_raw_fd(), &vec![7u8; 100 + i], 1200, &to, None).unwrap();
        }
        let (mut got, mut reads) = (0, Vec::new());
        let mut buf = vec![0u8; 65535];
        let deadline = Instant::now() + Duration::from_secs(5);
        while got < total {
            assert!(Instant::now() < deadline, "only {got} of {total} arrived: {reads:?}");
            let mut n = 0;
            match read_batch(rx.as_raw_fd(), batch.as_mut(), &mut buf, |_, _| n += 1) {
                Ok(more) => reads.push((n, more)),
                Err(e) => assert_eq!(e.kind(), io::ErrorKind::WouldBlock),
            }
            got += n;
        }
        for &(n, more) in &reads {
            assert_eq!(more, n == RECV_BATCH, "a read of {n} datagrams said more={more}: {reads:?}");
        }
        assert!(reads.iter().any(|&(_, more)| more), "no full batch: {reads:?}");
        assert!(!reads.last().unwrap().1, "{reads:?}");
    }
}

#[cfg(test)]
mod gso_policy_tests {
    use super::*;

    /// A wire on which GSO to `refuse` fails with EINVAL; logs each call
    /// as (GSO?, destination).
    struct FakeWire {
        refuse: Option<IpAddr>,
        log: Vec<(bool, SocketAddr)>,
    }

    impl Wire for FakeWire {
        fn send_gso(&mut self, buf: &[u8], _: usize, to: &SocketAddr) -> io::Result<usize> {
            self.log.push((true, *to));
            if self.refuse == Some(to.ip()) {
                return Err(io::Error::from_raw_os_error(libc::EINVAL));
            }
            Ok(buf.len())
        }

        fn send_one(&mut self, pkt: &[u8], to: &SocketAddr) -> io::Result<usize> {
            self.log.push((false, *to));
            Ok(pkt.len())
        }
    }

    const GSO: bool = true;
    const ONE: bool = false;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_refused_destination_gets_plain_sends_and_others_keep_gso() {
        let (a, a_other_port, b) = (addr("10.0.0.1:443"), addr("10.0.0.1:9999"), addr("10.0.0.2:443"));
        let mut wire = FakeWire { refuse: Some(a.ip()), log: Vec::new() };
        let mut policy = GsoPolicy::new();
        let t0 = Instant::now();
        let data = [0u8; 2500];

        // Refused: this batch still goes out, as packets.
        assert_eq!(send_via(&mut wire, &data, 1000, &a, Some(&mut policy), || t0).unwrap(), 2500);
        assert_eq!(wire.log.drain(..).collect::<Vec<_>>(), [(GSO, a), (ONE, a), (ONE, a), (ONE, a)]);
        // Later batches to that address (any port): no GSO attempt.
        let t1 = t0 + Duration::from_secs(1);
        send_via(&mut wire, &data, 1000, &a, Some(&mut policy), || t1).unwrap();
        send_via(&mut wire, &data, 1000, &a_other_port, Some(&mut policy), || t1).unwrap();
        assert!(wire.log.drain(..).all(|(gso, _)| !gso));
        // Another destination still gets GSO.
        send_via(&mut wire, &data, 1000, &b, Some(&mut policy), || t1).unwrap();
        assert_eq!(wire.log.drain(..).collect::<Vec<_>>(), [(GSO, b)]);
    }

    #[test]
    fn gso_is_tried_again_after_the_back_off() {
        let a = addr("[2001:db8::1]:443");
        let mut wire = FakeWire { refuse: Some(a.ip()), log: Vec::new() };
        let mut policy = GsoPolicy::new();
        let t0 = Instant::now();
        let data = [0u8; 2000];
        send_via(&mut wire, &data, 1000, &a, Some(&mut policy), || t0).unwrap();
        wire.log.clear();
        let almost = t0 + GSO_RETRY_AFTER - Duration::from_millis(1);
        send_via(&mut wire, &data, 1000, &a, Some(&mut policy), || almost).unwrap();
        assert_eq!(wire.log.drain(..).filter(|(gso, _)| *gso).count(), 0, "still backing off");
        // The route works again: one GSO send, and it stays on GSO.
        wire.refuse = None;
        let t1 = t0 + GSO_RETRY_AFTER;
        send_via(&mut wire, &data, 1000, &a, Some(&mut policy), || t1).unwrap();
        send_via(&mut wire, &data, 1000, &a, Some(&mut policy), || t1).unwrap();
        assert_eq!(wire.log, [(GSO, a), (GSO, a)]);
    }

    #[test]
    fn no_policy_single_packets_and_other_errors_never_mark_a_refusal() {
        let a = addr("10.0.0.1:443");
        let mut wire = FakeWire { refuse: None, log: Vec::new() };
        let mut policy = GsoPolicy::new();
        let t0 = Instant::now();
        send_via(&mut wire, &[0u8; 2000], 1000, &a, None, || t0).unwrap();
        assert_eq!(wire.log.drain(..).collect::<Vec<_>>(), [(ONE, a), (ONE, a)], "GSO off: plain");
        send_via(&mut wire, &[0u8; 900], 1000, &a, Some(&mut policy), || t0).unwrap();
        assert_eq!(wire.log.drain(..).collect::<Vec<_>>(), [(ONE, a)], "one packet: plain");

        struct Full;
        impl Wire for Full {
            fn send_gso(&mut self, _: &[u8], _: usize, _: &SocketAddr) -> io::Result<usize> {
                Err(io::Error::from(io::ErrorKind::WouldBlock))
            }
            fn send_one(&mut self, _: &[u8], _: &SocketAddr) -> io::Result<usize> {
                unreachable!("a full socket is reported, not retried packet by packet")
            }
        }
        let e = send_via(&mut Full, &[0u8; 2000], 1000, &a, Some(&mut policy), || t0).unwrap_err();
        assert!(is_full(&e));
        assert!(policy.allows(a.ip(), || t0), "a full buffer is not a GSO refusal");
    }

    #[test]
    fn the_policy_remembers_a_bounded_number_of_destinations() {
        let mut policy = GsoPolicy::new();
        let t0 = Instant::now();
        let ip = |i: u32| IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
        for i in 0..(3 * GSO_POLICY_CAPACITY as u32) {
            policy.refuse(ip(i), t0 + Duration::from_millis(i.into()));
        }
        assert_eq!(policy.refused.len(), GSO_POLICY_CAPACITY);
        let now = t0 + Duration::from_secs(1);
        assert!(policy.allows(ip(0), || now), "the oldest was forgotten");
        assert!(!policy.allows(ip(3 * GSO_POLICY_CAPACITY as u32 - 1), || now), "the newest is remembered");
    }

    /// A GSO send reads the clock only when some destination refused GSO.
    #[test]
    fn the_clock_is_read_only_once_a_destination_refused() {
        let a = addr("192.0.2.1:443");
        let mut wire = FakeWire { refuse: None, log: Vec::new() };
        let mut policy = GsoPolicy::new();
        let no_clock = || -> Instant { panic!("the clock was read with nothing refused") };
        send_via(&mut wire, &[0u8; 2000], 1000, &a, Some(&mut policy), no_clock).unwrap();
        assert_eq!(wire.log, [(GSO, a)]);
        let t0 = Instant::now();
        policy.refuse(addr("192.0.2.2:443").ip(), t0);
        let read = std::cell::Cell::new(0);
        assert!(policy.allows(a.ip(), || {
            read.set(read.get() + 1);
            t0
        }));
        assert!(policy.allows(addr("192.0.2.2:443").ip(), || t0 + GSO_RETRY_AFTER));
        assert_eq!(read.get(), 0, "a destination never refused needs no clock");
    }
}
