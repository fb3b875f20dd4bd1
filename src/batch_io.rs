//! Batched UDP I/O: `recvmmsg` with UDP GRO on the way in, UDP GSO
//! (`UDP_SEGMENT`) on the way out, each with a plain fallback.
//!
//! One `recvmmsg` returns up to `RECV_BATCH` datagrams, and with GRO each
//! may hold many equal-sized segments that the kernel coalesced; one GSO
//! `sendmsg` sends up to `MAX_SEGMENTS` packets. On loopback this removes
//! most of the per-packet system calls that dominate a bulk transfer.

use std::io;
use std::mem;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::socket::{sockaddr_to_std, std_to_sockaddr};

const SOL_UDP: libc::c_int = 17;
const UDP_SEGMENT: libc::c_int = 103;
const UDP_GRO: libc::c_int = 104;

/// Datagrams per `recvmmsg`.
pub(crate) const RECV_BATCH: usize = 16;
/// Largest UDP payload (and largest GRO-coalesced read).
const MAX_UDP: usize = 65535;
/// Most segments in one GSO send (the kernel's UDP_MAX_SEGMENTS is 64).
pub(crate) const MAX_SEGMENTS: usize = 64;
/// Largest GSO send: one UDP datagram's worth of payload.
pub(crate) const MAX_GSO_BYTES: usize = 65000;

/// Set once the kernel refused a GSO send: use the plain path from then on.
static GSO_BROKEN: AtomicBool = AtomicBool::new(false);

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
/// for GSO bursts) and returns the read buffers it needs, if any.
pub fn prepare_socket(fd: RawFd, mode: IoMode) -> Option<RecvBatch> {
    if mode.gso {
        grow_buffers(fd);
    }
    // GRO must be off on the plain path: recvfrom would hand quiche several
    // coalesced packets as one datagram. Without GRO support the kernel
    // just does not coalesce: still correct.
    set_gro(fd, mode.batch_recv);
    mode.batch_recv.then(|| RecvBatch::new(RECV_BATCH))
}

/// Turns UDP GRO on or off for `fd`; false when the kernel does not have it.
pub fn set_gro(fd: RawFd, on: bool) -> bool {
    let v: libc::c_int = on.into();
    // SAFETY: a c_int option value of the right size.
    unsafe {
        libc::setsockopt(fd, SOL_UDP, UDP_GRO, &v as *const _ as *const libc::c_void,
                         mem::size_of::<libc::c_int>() as libc::socklen_t) == 0
    }
}

/// One received datagram: `len` bytes from `from`; with GRO, `segment` is
/// the size of each coalesced packet in it (the last may be shorter).
pub struct Received {
    pub len: usize,
    /// `None` for a sender that is not IPv4/IPv6 (the datagram is skipped).
    pub from: Option<SocketAddr>,
    pub segment: usize,
}

/// Buffers for `recvmmsg`.
pub struct RecvBatch {
    bufs: Vec<Vec<u8>>,
    names: Vec<libc::sockaddr_storage>,
    iovs: Vec<libc::iovec>,
    cmsgs: Vec<[u64; 8]>,
    hdrs: Vec<libc::mmsghdr>,
    pub got: Vec<Received>,
}

impl RecvBatch {
    pub fn new(n: usize) -> Self {
        // SAFETY: plain-old-data C structs, all-zero is valid.
        let zero_ss: libc::sockaddr_storage = unsafe { mem::zeroed() };
        let zero_hdr: libc::mmsghdr = unsafe { mem::zeroed() };
        RecvBatch {
            bufs: (0..n).map(|_| vec![0; MAX_UDP]).collect(),
            names: vec![zero_ss; n],
            iovs: vec![libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 }; n],
            cmsgs: vec![[0; 8]; n],
            hdrs: vec![zero_hdr; n],
            got: Vec::with_capacity(n),
        }
    }

    /// Datagram `i` of the last `recv`.
    pub fn buf(&mut self, i: usize) -> &mut [u8] {
        let len = self.got[i].len;
        &mut self.bufs[i][..len]
    }

    /// Reads up to the batch size in one `recvmmsg`; `Ok(0)` never
    /// happens (WouldBlock instead).
    pub fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        let n = self.bufs.len();
        for i in 0..n {
            self.iovs[i] = libc::iovec { iov_base: self.bufs[i].as_mut_ptr().cast(), iov_len: MAX_UDP };
            let h = &mut self.hdrs[i].msg_hdr;
            h.msg_name = (&mut self.names[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_iov = &mut self.iovs[i];
            h.msg_iovlen = 1;
            h.msg_control = self.cmsgs[i].as_mut_ptr().cast();
            h.msg_controllen = mem::size_of::<[u64; 8]>();
            h.msg_flags = 0;
            self.hdrs[i].msg_len = 0;
        }
        let got = loop {
            // SAFETY: every header points into buffers owned by self, valid
            // for the lengths given, for the duration of the call.
            let r = unsafe { libc::recvmmsg(fd, self.hdrs.as_mut_ptr(), n as libc::c_uint, 0, std::ptr::null_mut()) };
            if r >= 0 {
                break r as usize;
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        };
        self.got.clear();
        for i in 0..got {
            let h = &self.hdrs[i];
            let len = h.msg_len as usize;
            // SAFETY: the kernel wrote msg_namelen bytes of address.
            let from = unsafe { sockaddr_to_std((&self.names[i] as *const libc::sockaddr_storage).cast(), h.msg_hdr.msg_namelen) };
            let segment = gro_segment(&h.msg_hdr).unwrap_or(len);
            self.got.push(Received { len, from, segment });
        }
        Ok(got)
    }
}

/// Reads one batch from `fd` and hands every UDP payload to `f`, each
/// GRO-coalesced packet on its own: with `batch`, one `recvmmsg`; without,
/// up to `RECV_BATCH` `recvfrom` calls into `buf`. `Ok(false)` once the
/// socket is drained. Datagrams from non-IP senders are skipped.
pub fn read_batch(fd: RawFd, batch: Option<&mut RecvBatch>, buf: &mut [u8],
                  mut f: impl FnMut(&mut [u8], SocketAddr)) -> io::Result<bool> {
    let Some(batch) = batch else {
        for _ in 0..RECV_BATCH {
            match crate::socket::recv_from(fd, buf) {
                Ok((len, from)) => f(&mut buf[..len], from),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::InvalidData => continue,
                Err(e) => return Err(e),
            }
        }
        return Ok(true);
    };
    let n = match batch.recv(fd) {
        Ok(n) => n,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
        Err(e) => return Err(e),
    };
    for i in 0..n {
        let Received { from, segment, .. } = batch.got[i];
        let Some(from) = from else { continue };
        let pkt = batch.buf(i);
        if pkt.is_empty() {
            f(pkt, from);
            continue;
        }
        for one in pkt.chunks_mut(segment.max(1)) {
            f(one, from);
        }
    }
    Ok(true)
}

/// The UDP_GRO segment size in a received message's control data.
fn gro_segment(h: &libc::msghdr) -> Option<usize> {
    // SAFETY: walking control messages the kernel wrote, with libc's
    // CMSG macros bounded by msg_controllen.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(h);
        while !c.is_null() {
            if (*c).cmsg_level == SOL_UDP && (*c).cmsg_type == UDP_GRO {
                let v = std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const libc::c_int);
                return (v > 0).then_some(v as usize);
            }
            c = libc::CMSG_NXTHDR(h, c);
        }
    }
    None
}

/// Sends `buf` to `to` as packets of `segment` bytes (the last may be
/// shorter): one GSO `sendmsg` when `gso` is on, else one `sendto` each.
/// Returns how many bytes went out (a whole number of packets); WouldBlock
/// only when none did.
pub fn send_segments(fd: RawFd, buf: &[u8], segment: usize, to: &SocketAddr, gso: bool) -> io::Result<usize> {
    if gso && buf.len() > segment && !GSO_BROKEN.load(Ordering::Relaxed) {
        match send_gso(fd, buf, segment, to) {
            Ok(n) => return Ok(n),
            // EIO/EINVAL: no GSO for this socket or device; fall back.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EIO) | Some(libc::EINVAL)) => {
                GSO_BROKEN.store(true, Ordering::Relaxed);
            }
            Err(e) => return Err(e),
        }
    }
    let mut sent = 0;
    for pkt in buf.chunks(segment) {
        match crate::socket::send_to(fd, pkt, to) {
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

fn send_gso(fd: RawFd, buf: &[u8], segment: usize, to: &SocketAddr) -> io::Result<usize> {
    let (mut name, namelen) = std_to_sockaddr(to);
    let mut iov = libc::iovec { iov_base: buf.as_ptr() as *mut libc::c_void, iov_len: buf.len() };
    let mut control = [0u64; 4];
    // SAFETY: msghdr is plain old data; the pointers below refer to locals
    // that outlive the sendmsg call, and CMSG_* stay within `control`.
    unsafe {
        let mut h: libc::msghdr = mem::zeroed();
        h.msg_name = (&mut name as *mut libc::sockaddr_storage).cast();
        h.msg_namelen = namelen;
        h.msg_iov = &mut iov;
        h.msg_iovlen = 1;
        h.msg_control = control.as_mut_ptr().cast();
        h.msg_controllen = libc::CMSG_SPACE(mem::size_of::<u16>() as u32) as usize;
        let c = libc::CMSG_FIRSTHDR(&h);
        (*c).cmsg_level = SOL_UDP;
        (*c).cmsg_type = UDP_SEGMENT;
        (*c).cmsg_len = libc::CMSG_LEN(mem::size_of::<u16>() as u32) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(c) as *mut u16, segment as u16);
        loop {
            let r = libc::sendmsg(fd, &h, 0);
            if r >= 0 {
                return Ok(r as usize);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;

    #[test]
    fn gso_send_arrives_as_packets_or_gro_segments() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_nonblocking(true).unwrap();
        let gro = set_gro(rx.as_raw_fd(), true);
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let data: Vec<u8> = (0..10 * 1000 + 300).map(|i| i as u8).collect();
        let n = send_segments(tx.as_raw_fd(), &data, 1000, &rx.local_addr().unwrap(), true).unwrap();
        assert_eq!(n, data.len());
        let mut batch = RecvBatch::new(RECV_BATCH);
        let mut joined = Vec::new();
        let mut packets = 0;
        while joined.len() < data.len() {
            let got = batch.recv(rx.as_raw_fd()).unwrap();
            for i in 0..got {
                let seg = batch.got[i].segment;
                let b = batch.buf(i).to_vec();
                packets += b.chunks(seg).count();
                joined.extend_from_slice(&b);
            }
        }
        assert_eq!(joined, data);
        assert_eq!(packets, 11, "segment boundaries survive (gro: {gro})");
    }

    #[test]
    fn plain_send_is_one_packet_each() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let data = vec![1u8; 2500];
        let n = send_segments(tx.as_raw_fd(), &data, 1000, &rx.local_addr().unwrap(), false).unwrap();
        assert_eq!(n, 2500);
        let mut buf = [0u8; 4000];
        assert_eq!(rx.recv(&mut buf).unwrap(), 1000);
        assert_eq!(rx.recv(&mut buf).unwrap(), 1000);
        assert_eq!(rx.recv(&mut buf).unwrap(), 500);
    }
}

#[cfg(test)]
mod plain_path_tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;

    #[test]
    fn the_plain_path_turns_gro_back_off() {
        // Batched first (as every server and client starts), then plain:
        // a GSO burst must arrive as separate datagrams again.
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        assert!(prepare_socket(rx.as_raw_fd(), IoMode::BATCHED).is_some());
        assert!(prepare_socket(rx.as_raw_fd(), IoMode::PLAIN).is_none());
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let data = vec![7u8; 5 * 1000];
        send_segments(tx.as_raw_fd(), &data, 1000, &rx.local_addr().unwrap(), true).unwrap();
        let mut buf = [0u8; 65535];
        for _ in 0..5 {
            assert_eq!(rx.recv(&mut buf).unwrap(), 1000, "one packet per recvfrom");
        }
    }
}
