//! The UDP socket calls (`recvfrom`, `sendto`, `getsockname`) and the
//! conversions between C socket addresses and `std::net::SocketAddr`.

use std::io;
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;

/// Reads a C socket address; `None` for a family other than IPv4/IPv6 or a
/// length too short for the family.
///
/// # Safety
/// `addr` must be NULL or point to `len` readable bytes.
pub unsafe fn sockaddr_to_std(addr: *const libc::sockaddr, len: libc::socklen_t) -> Option<SocketAddr> {
    // The family is not the first byte everywhere (BSD: after sa_len).
    if addr.is_null() || (len as usize) < mem::offset_of!(libc::sockaddr, sa_family) + mem::size_of::<libc::sa_family_t>() {
        return None;
    }
    // SAFETY: the caller guarantees `len` bytes; each branch checks the
    // family's full size before reading it (unaligned reads: C buffers).
    match (*addr).sa_family as libc::c_int {
        libc::AF_INET if len as usize >= mem::size_of::<libc::sockaddr_in>() => {
            let sin = std::ptr::read_unaligned(addr as *const libc::sockaddr_in);
            let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(ip, u16::from_be(sin.sin_port))))
        }
        libc::AF_INET6 if len as usize >= mem::size_of::<libc::sockaddr_in6>() => {
            let sin6 = std::ptr::read_unaligned(addr as *const libc::sockaddr_in6);
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(sin6.sin6_port),
                u32::from_be(sin6.sin6_flowinfo),
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// A C socket address for `addr`. On the BSD-derived systems (macOS, the
/// BSDs) the address carries its own length (`sin_len`, `sin6_len`); Linux
/// has no such field.
pub fn std_to_sockaddr(addr: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain old data; all-zero is valid.
    let mut ss: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            // SAFETY: plain old data; all-zero is valid (sin_zero stays zero).
            let mut sin: libc::sockaddr_in = unsafe { mem::zeroed() };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr = libc::in_addr { s_addr: u32::from(*a.ip()).to_be() };
            #[cfg(any(target_os = "macos", target_os = "ios", target_os = "freebsd", target_os = "dragonfly",
                      target_os = "openbsd", target_os = "netbsd"))]
            {
                sin.sin_len = mem::size_of::<libc::sockaddr_in>() as u8;
            }
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            unsafe { std::ptr::write(&mut ss as *mut _ as *mut libc::sockaddr_in, sin) };
            mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            // SAFETY: plain old data; all-zero is valid.
            let mut sin6: libc::sockaddr_in6 = unsafe { mem::zeroed() };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_flowinfo = a.flowinfo().to_be();
            sin6.sin6_addr = libc::in6_addr { s6_addr: a.ip().octets() };
            sin6.sin6_scope_id = a.scope_id();
            #[cfg(any(target_os = "macos", target_os = "ios", target_os = "freebsd", target_os = "dragonfly",
                      target_os = "openbsd", target_os = "netbsd"))]
            {
                sin6.sin6_len = mem::size_of::<libc::sockaddr_in6>() as u8;
            }
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            unsafe { std::ptr::write(&mut ss as *mut _ as *mut libc::sockaddr_in6, sin6) };
            mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (ss, len as libc::socklen_t)
}

/// One `recvfrom`: the datagram's length and sender.
pub fn recv_from(fd: RawFd, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
    // SAFETY: sockaddr_storage is plain old data.
    let mut ss: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let mut len = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    loop {
        // SAFETY: buf and ss are valid for the lengths passed.
        let n = unsafe {
            libc::recvfrom(fd, buf.as_mut_ptr().cast(), buf.len(), 0,
                           &mut ss as *mut _ as *mut libc::sockaddr, &mut len)
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        // SAFETY: the kernel wrote `len` bytes of address into ss.
        let from = unsafe { sockaddr_to_std(&ss as *const _ as *const libc::sockaddr, len) }
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "datagram from a non-IP address"))?;
        return Ok((n as usize, from));
    }
}

/// One `sendto` of a whole datagram.
pub fn send_to(fd: RawFd, buf: &[u8], to: &SocketAddr) -> io::Result<usize> {
    let (ss, len) = std_to_sockaddr(to);
    loop {
        // SAFETY: buf and ss are valid for the lengths passed.
        let n = unsafe {
            libc::sendto(fd, buf.as_ptr().cast(), buf.len(), 0,
                         &ss as *const _ as *const libc::sockaddr, len)
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        return Ok(n as usize);
    }
}

/// The socket's bound address (`getsockname`).
pub fn local_addr(fd: RawFd) -> io::Result<SocketAddr> {
    // SAFETY: sockaddr_storage is plain old data.
    let mut ss: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let mut len = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: ss is valid for len bytes.
    if unsafe { libc::getsockname(fd, &mut ss as *mut _ as *mut libc::sockaddr, &mut len) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel wrote `len` bytes of address into ss.
    unsafe { sockaddr_to_std(&ss as *const _ as *const libc::sockaddr, len) }
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "socket is not an IP socket"))
}

/// Why `fd` cannot be a handle's socket: it must be a UDP (datagram)
/// socket in non-blocking mode (a blocking one would stop the host's loop
/// in the library's reads and writes). `None` when it can.
pub fn unusable_socket(fd: RawFd) -> Option<String> {
    let mut ty: libc::c_int = 0;
    let mut len = mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: ty is valid for len bytes.
    if unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, libc::SO_TYPE, &mut ty as *mut _ as *mut libc::c_void, &mut len) }
        != 0
    {
        return Some(format!("socket {fd} is not usable: {}", io::Error::last_os_error()));
    }
    if ty != libc::SOCK_DGRAM {
        return Some(format!("socket {fd} is not a UDP (SOCK_DGRAM) socket"));
    }
    // SAFETY: F_GETFL takes no argument.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 || flags & libc::O_NONBLOCK == 0 {
        return Some(format!("socket {fd} is blocking: set O_NONBLOCK (fcntl) before handing it over"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockaddr_round_trip() {
        for s in ["127.0.0.1:4433", "[::1]:443", "[fe80::1%2]:9"] {
            let a: SocketAddr = s.parse().unwrap();
            let (ss, len) = std_to_sockaddr(&a);
            let b = unsafe { sockaddr_to_std(&ss as *const _ as *const libc::sockaddr, len) };
            assert_eq!(Some(a), b);
        }
    }

    #[test]
    fn short_or_null_sockaddr_is_rejected() {
        let a: SocketAddr = "[::1]:443".parse().unwrap();
        let (ss, len) = std_to_sockaddr(&a);
        let p = &ss as *const _ as *const libc::sockaddr;
        assert_eq!(unsafe { sockaddr_to_std(p, len - 1) }, None);
        assert_eq!(unsafe { sockaddr_to_std(std::ptr::null(), 16) }, None);
        assert_eq!(unsafe { sockaddr_to_std(p, 1) }, None);
    }

    #[cfg(any(target_os = "macos", target_os = "ios", target_os = "freebsd", target_os = "dragonfly",
              target_os = "openbsd", target_os = "netbsd"))]
    #[test]
    fn bsd_addresses_carry_their_length() {
        for s in ["127.0.0.1:4433", "[::1]:443"] {
            let (ss, len) = std_to_sockaddr(&s.parse().unwrap());
            assert_eq!(ss.ss_len as libc::socklen_t, len);
        }
    }
}
