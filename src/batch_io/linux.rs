//! The Linux-only half of batched I/O: `recvmmsg` with UDP GRO on the way
//! in, one GSO `sendmsg` (`UDP_SEGMENT`) on the way out. Compiled only on
//! Linux without the `portable` feature (see the parent module).
//!
//! The control-message field types differ between C libraries
//! (`msg_controllen` and `cmsg_len` are `size_t` in glibc, `socklen_t` in
//! musl), so lengths are converted with `as _` to whatever the target has.

use std::io;
use std::mem;
use std::net::SocketAddr;
use std::os::fd::RawFd;

use super::{IoMode, RECV_BATCH};
use crate::socket::{sockaddr_to_std, std_to_sockaddr};

/// Largest UDP payload (and largest GRO-coalesced read).
const MAX_UDP: usize = 65535;

const SOL_UDP: libc::c_int = 17;
const UDP_SEGMENT: libc::c_int = 103;
const UDP_GRO: libc::c_int = 104;

/// Control-data room per received datagram, in u64 words (for alignment).
/// A UDP_GRO segment size takes CMSG_SPACE(4) = 24 bytes; 256 bytes also
/// hold the few others a socket may be asked for (packet info, TOS,
/// timestamps), so the kernel does not truncate (MSG_CTRUNC) in practice.
const CMSG_WORDS: usize = 32;

/// Largest UDP payload that one packet carries on a standard path: a
/// 1500-byte Ethernet MTU less the IPv4 and UDP headers (IPv6's larger
/// header makes its bound smaller). QUIC forbids IP fragmentation (RFC 9000
/// §14), so a bigger datagram is, in practice, several packets coalesced by
/// GRO. When the kernel truncated the control data the GRO segment size may
/// be lost, and such a datagram is dropped rather than handed to quiche as
/// one packet; quiche's loss recovery resends what was in it.
pub(crate) const MAX_SINGLE_DATAGRAM: usize = 1500 - 20 - 8;

/// GRO on for batched reads (off on the plain path: recvfrom would hand
/// quiche several coalesced packets as one datagram; without GRO support
/// the kernel just does not coalesce, still correct); the read buffers when
/// `mode` batches reads.
pub(super) fn prepare(fd: RawFd, mode: IoMode) -> Option<RecvBatch> {
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
    /// Which of the batch's buffers holds it.
    slot: usize,
}

/// Buffers for `recvmmsg`.
pub struct RecvBatch {
    bufs: Vec<Vec<u8>>,
    names: Vec<libc::sockaddr_storage>,
    iovs: Vec<libc::iovec>,
    cmsgs: Vec<[u64; CMSG_WORDS]>,
    /// Control bytes offered to the kernel per datagram.
    control_len: usize,
    hdrs: Vec<libc::mmsghdr>,
    /// Datagrams of the last `recv`, without those dropped.
    pub got: Vec<Received>,
    dropped: u64,
    /// The last `recv` filled every slot: more may be queued.
    full: bool,
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
            cmsgs: vec![[0; CMSG_WORDS]; n],
            control_len: mem::size_of::<[u64; CMSG_WORDS]>(),
            hdrs: vec![zero_hdr; n],
            got: Vec::with_capacity(n),
            dropped: 0,
            full: false,
        }
    }

    /// Datagram `i` of the last `recv`.
    pub fn buf(&mut self, i: usize) -> &mut [u8] {
        let Received { len, slot, .. } = self.got[i];
        &mut self.bufs[slot][..len]
    }

    /// Datagrams dropped so far because the kernel truncated their control
    /// data and they were too large to be one packet.
    pub fn dropped_truncated(&self) -> u64 {
        self.dropped
    }

    /// Reads up to the batch size in one `recvmmsg` and returns how many
    /// datagrams are in `got`: 0 only when every one read was dropped
    /// (nothing to read is WouldBlock).
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
            h.msg_controllen = self.control_len as _;
            h.msg_flags = 0;
            self.hdrs[i].msg_len = 0;
        }
        let got = loop {
            // SAFETY: every header points into buffers owned by self, valid
            // for the lengths given, for the duration of the call.
            let r = unsafe { libc::recvmmsg(fd, self.hdrs.as_mut_ptr(), n as _, 0, std::ptr::null_mut()) };
            if r >= 0 {
                break r as usize;
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        };
        self.full = got == n;
        self.got.clear();
        for i in 0..got {
            let h = &self.hdrs[i];
            let len = h.msg_len as usize;
            // SAFETY: the kernel wrote msg_namelen bytes of address.
            let from = unsafe { sockaddr_to_std((&self.names[i] as *const libc::sockaddr_storage).cast(), h.msg_hdr.msg_namelen) };
            match segment_size(&h.msg_hdr, len) {
                Some(segment) => self.got.push(Received { len, from, segment, slot: i }),
                None => self.dropped += 1,
            }
        }
        Ok(self.got.len())
    }

    /// One `recvmmsg`, every UDP payload handed to `f`, each GRO-coalesced
    /// packet on its own. `Ok(false)` once the socket is drained: a
    /// `recvmmsg` that did not fill the batch took all there was, so the
    /// caller need not ask again only to hear EAGAIN (one system call
    /// less per wake-up; what arrives after it wakes the level-triggered
    /// watcher again).
    pub(super) fn read(&mut self, fd: RawFd, f: &mut impl FnMut(&mut [u8], SocketAddr)) -> io::Result<bool> {
        let n = match self.recv(fd) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) => return Err(e),
        };
        for i in 0..n {
            let Received { from, segment, .. } = self.got[i];
            let Some(from) = from else { continue };
            let pkt = self.buf(i);
            if pkt.is_empty() {
                f(pkt, from);
                continue;
            }
            for one in pkt.chunks_mut(segment.max(1)) {
                f(one, from);
            }
        }
        Ok(self.full)
    }
}

/// How a received datagram of `len` bytes splits into packets: the GRO
/// segment size if the control data has one; else the whole datagram as one
/// packet, unless the control data was truncated (the segment size may be
/// what was cut) and the datagram is too large to be one packet: `None`,
/// drop it.
fn segment_size(h: &libc::msghdr, len: usize) -> Option<usize> {
    match gro_segment(h) {
        Some(segment) => Some(segment),
        None if h.msg_flags & libc::MSG_CTRUNC != 0 && len > MAX_SINGLE_DATAGRAM => None,
        None => Some(len),
    }
}

/// The UDP_GRO segment size in a received message's control data.
fn gro_segment(h: &libc::msghdr) -> Option<usize> {
    // SAFETY: walking control messages the kernel wrote, with libc's
    // CMSG macros bounded by msg_controllen; the value is read only from a
    // message whose length says it is all there (a truncated one is not).
    unsafe {
        let whole = libc::CMSG_LEN(mem::size_of::<libc::c_int>() as u32) as usize;
        let mut c = libc::CMSG_FIRSTHDR(h);
        while !c.is_null() {
            if (*c).cmsg_level == SOL_UDP && (*c).cmsg_type == UDP_GRO && (*c).cmsg_len as usize >= whole {
                let v = std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const libc::c_int);
                return (v > 0).then_some(v as usize);
            }
            c = libc::CMSG_NXTHDR(h, c);
        }
    }
    None
}

/// One GSO `sendmsg`: `buf` leaves as packets of `segment` bytes.
pub(super) fn send_gso(fd: RawFd, buf: &[u8], segment: usize, to: &SocketAddr) -> io::Result<usize> {
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
        h.msg_controllen = libc::CMSG_SPACE(mem::size_of::<u16>() as u32) as _;
        let c = libc::CMSG_FIRSTHDR(&h);
        (*c).cmsg_level = SOL_UDP;
        (*c).cmsg_type = UDP_SEGMENT;
        (*c).cmsg_len = libc::CMSG_LEN(mem::size_of::<u16>() as u32) as _;
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
    use super::super::{prepare_socket, send_segments, GsoPolicy};
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;
    use std::time::{Duration, Instant};

    #[test]
    fn gso_send_arrives_as_packets_or_gro_segments() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_nonblocking(true).unwrap();
        let gro = set_gro(rx.as_raw_fd(), true);
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let data: Vec<u8> = (0..10 * 1000 + 300).map(|i| i as u8).collect();
        let n = send_segments(tx.as_raw_fd(), &data, 1000, &rx.local_addr().unwrap(), Some(&mut GsoPolicy::new())).unwrap();
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
    fn the_plain_path_turns_gro_back_off() {
        // Batched first (as every server and client starts), then plain:
        // a GSO burst must arrive as separate datagrams again.
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        assert!(prepare_socket(rx.as_raw_fd(), IoMode::BATCHED).is_some());
        assert!(prepare_socket(rx.as_raw_fd(), IoMode::PLAIN).is_none());
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let data = vec![7u8; 5 * 1000];
        send_segments(tx.as_raw_fd(), &data, 1000, &rx.local_addr().unwrap(), Some(&mut GsoPolicy::new())).unwrap();
        let mut buf = [0u8; 65535];
        for _ in 0..5 {
            assert_eq!(rx.recv(&mut buf).unwrap(), 1000, "one packet per recvfrom");
        }
    }

    #[test]
    fn a_real_gso_refusal_falls_back_to_packets_and_is_remembered() {
        // The kernel refuses GSO (EINVAL) on a socket without UDP
        // checksums (SO_NO_CHECK); plain sends still work there.
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let one: libc::c_int = 1;
        // SAFETY: a c_int option value of the right size.
        let r = unsafe {
            libc::setsockopt(tx.as_raw_fd(), libc::SOL_SOCKET, libc::SO_NO_CHECK, &one as *const _ as *const libc::c_void,
                             mem::size_of::<libc::c_int>() as libc::socklen_t)
        };
        assert_eq!(r, 0);
        let to = rx.local_addr().unwrap();
        let data = vec![5u8; 4 * 1000 + 10];
        let mut policy = GsoPolicy::new();
        assert_eq!(send_segments(tx.as_raw_fd(), &data, 1000, &to, Some(&mut policy)).unwrap(), data.len());
        assert!(!policy.allows(to.ip(), Instant::now), "the refusal is remembered for this destination");
        let mut buf = [0u8; 65535];
        for len in [1000, 1000, 1000, 1000, 10] {
            assert_eq!(rx.recv(&mut buf).unwrap(), len);
        }
    }
}

#[cfg(test)]
mod truncation_tests {
    use super::super::{send_segments, GsoPolicy};
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;
    use std::time::{Duration, Instant};

    /// The running kernel's release is below `major.minor`.
    fn kernel_older_than(major: u32, minor: u32) -> bool {
        // SAFETY: uname fills the zeroed struct; release is NUL-terminated.
        let release = unsafe {
            let mut u: libc::utsname = mem::zeroed();
            assert_eq!(libc::uname(&mut u), 0);
            std::ffi::CStr::from_ptr(u.release.as_ptr()).to_string_lossy().into_owned()
        };
        let mut parts = release.split(|c: char| !c.is_ascii_digit()).map(|p| p.parse::<u32>().unwrap_or(0));
        (parts.next().unwrap_or(0), parts.next().unwrap_or(0)) < (major, minor)
    }

    /// What a control message holds, as the kernel would leave it.
    enum Control {
        Nothing,
        Gro(libc::c_int),
        /// A UDP_GRO message cut off inside its value (the kernel copies
        /// what fits and sets MSG_CTRUNC).
        GroCutShort,
    }

    /// A received message's header over `buf`, holding `control`, with
    /// `flags` in msg_flags.
    fn header(buf: &mut [u64; CMSG_WORDS], control: Control, flags: libc::c_int) -> libc::msghdr {
        // SAFETY: msghdr is plain old data; the CMSG_* writes stay within
        // buf, which the header's control pointer and length describe.
        unsafe {
            let mut h: libc::msghdr = mem::zeroed();
            h.msg_control = buf.as_mut_ptr().cast();
            h.msg_controllen = mem::size_of_val(buf) as _;
            let c = libc::CMSG_FIRSTHDR(&h);
            let written = match control {
                Control::Nothing => 0,
                Control::Gro(segment) => {
                    (*c).cmsg_level = SOL_UDP;
                    (*c).cmsg_type = UDP_GRO;
                    (*c).cmsg_len = libc::CMSG_LEN(mem::size_of::<libc::c_int>() as u32) as _;
                    std::ptr::write_unaligned(libc::CMSG_DATA(c) as *mut libc::c_int, segment);
                    libc::CMSG_SPACE(mem::size_of::<libc::c_int>() as u32) as usize
                }
                Control::GroCutShort => {
                    (*c).cmsg_level = SOL_UDP;
                    (*c).cmsg_type = UDP_GRO;
                    (*c).cmsg_len = libc::CMSG_LEN(2) as _;
                    std::ptr::write_unaligned(libc::CMSG_DATA(c) as *mut u16, 1000);
                    libc::CMSG_LEN(2) as usize
                }
            };
            h.msg_controllen = written as _;
            h.msg_flags = flags;
            h
        }
    }

    const CTRUNC: libc::c_int = libc::MSG_CTRUNC;

    #[test]
    fn truncated_control_and_a_datagram_too_large_for_one_packet_is_dropped() {
        let mut buf = [0u64; CMSG_WORDS];
        let h = header(&mut buf, Control::Nothing, CTRUNC);
        assert_eq!(segment_size(&h, 20_000), None);
        assert_eq!(segment_size(&h, MAX_SINGLE_DATAGRAM + 1), None);
        // A GRO value cut short is not read: the same as none.
        let h = header(&mut buf, Control::GroCutShort, CTRUNC);
        assert_eq!(segment_size(&h, 5000), None);
    }

    #[test]
    fn truncated_control_and_a_datagram_that_fits_one_packet_is_kept_whole() {
        let mut buf = [0u64; CMSG_WORDS];
        let h = header(&mut buf, Control::Nothing, CTRUNC);
        assert_eq!(segment_size(&h, 1200), Some(1200));
        assert_eq!(segment_size(&h, MAX_SINGLE_DATAGRAM), Some(MAX_SINGLE_DATAGRAM));
        let h = header(&mut buf, Control::GroCutShort, CTRUNC);
        assert_eq!(segment_size(&h, 1000), Some(1000));
    }

    #[test]
    fn the_gro_segment_is_honoured_truncated_or_not() {
        let mut buf = [0u64; CMSG_WORDS];
        for flags in [0, CTRUNC] {
            let h = header(&mut buf, Control::Gro(1000), flags);
            assert_eq!(segment_size(&h, 5000), Some(1000));
        }
    }

    #[test]
    fn without_truncation_a_large_datagram_is_one_packet() {
        // No GRO message and nothing cut: the kernel did not coalesce.
        let mut buf = [0u64; CMSG_WORDS];
        let h = header(&mut buf, Control::Nothing, 0);
        assert_eq!(segment_size(&h, 20_000), Some(20_000));
    }

    #[test]
    fn a_coalesced_read_whose_control_the_kernel_truncated_is_dropped_and_counted() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_nonblocking(true).unwrap();
        if !set_gro(rx.as_raw_fd(), true) {
            // Only a kernel older than UDP GRO (Linux 5.0) may lack it:
            // there nothing is coalesced and there is nothing to test.
            assert!(kernel_older_than(5, 0), "UDP GRO refused on a kernel that has it");
            return;
        }
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = rx.local_addr().unwrap();
        let mut batch = RecvBatch::new(RECV_BATCH);
        // Room for less than one cmsghdr: the kernel must truncate.
        batch.control_len = 8;
        let burst = vec![3u8; 10 * 1000];
        send_segments(tx.as_raw_fd(), &burst, 1000, &to, Some(&mut GsoPolicy::new())).unwrap();
        send_segments(tx.as_raw_fd(), &[4u8; 1000], 1000, &to, None).unwrap();
        // Read until the lone packet (sent last, bytes of 4) is seen.
        let mut kept: Vec<Vec<u8>> = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while kept.last().is_none_or(|d| d[0] != 4) {
            assert!(Instant::now() < deadline, "the lone packet never arrived");
            match batch.recv(rx.as_raw_fd()) {
                Ok(n) => kept.extend((0..n).map(|i| batch.buf(i).to_vec())),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
        }
        let lens: Vec<usize> = kept.iter().map(|d| d.len()).collect();
        if batch.dropped_truncated() == 0 {
            // This kernel delivered the burst as separate datagrams.
            assert_eq!(lens, [1000; 11]);
        } else {
            assert_eq!((batch.dropped_truncated(), lens), (1, vec![1000]), "only the lone packet is kept");
        }
    }
}
