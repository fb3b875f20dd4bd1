//! On-host steering: N workers, each with its own UDP socket bound to the
//! same address with `SO_REUSEPORT`, and one classic BPF program attached to
//! the group (`SO_ATTACH_REUSEPORT_CBPF`, no privilege needed) that sends
//! each datagram to the worker whose connection IDs it carries.
//!
//! # Where the worker index sits
//!
//! In the five low bits of the first octet of every connection ID a worker
//! issues, so at most [`MAX_WORKERS`] = 32 workers:
//!
//! ```text
//! QUIC-LB CID:  [ config ID (3) | worker (5) ] [ server ID | nonce ]  (maybe encrypted)
//! random CID:   [ random (3)    | worker (5) ] [ 15 random octets  ]  (no QUIC-LB configuration)
//! ```
//!
//! QUIC-LB's first octet is three config-rotation bits and five bits that
//! are either the CID length (self-description) or random; our CIDs have
//! one fixed length per configuration, so those five bits are free, and
//! the first octet is never encrypted, so the kernel reads the worker
//! without the key. (Envoy instead appends a worker byte after the QUIC-LB
//! block, quicwg/load-balancers#247; that keeps length self-description
//! but makes the CID longer than the load balancer's configuration says.)
//!
//! # What the program does
//!
//! The kernel runs a reuseport program with the packet's data pointing at
//! the UDP payload, and uses its return value as an index into the group's
//! sockets; an index past the last socket (we return [`FALLBACK`]) means
//! "pick by the 4-tuple hash", as if there were no program. The program:
//!
//! - **Short header** (first bit 0; RFC 9000 §17.3): the DCID starts at
//!   offset 1; worker = `pkt[1] & 0x1f`. Every short-header packet of a
//!   connection carries one of our CIDs, so it reaches the worker that owns
//!   the connection, from any address (NAT rebinding, migration). A worker
//!   index past N (not one of our CIDs) goes by the hash.
//! - **Long header** (first bit 1; RFC 9000 §17.2: first octet, 4-octet
//!   version, DCID length at offset 5, DCID from offset 6): b = `DCID[0] &
//!   0x1f`. If b < N, worker b: that is every Handshake packet, every
//!   Initial and 0-RTT packet sent after the client learnt our CID from the
//!   server's Initial, and the Initial that answers a Retry (its DCID is
//!   the Retry's SCID, ours). Otherwise the DCID is the client's random
//!   one (≥ 8 octets in QUIC v1, §7.2): worker = (the DCID's octets 1..5 as
//!   a big-endian integer) mod N, so the client's Initial and 0-RTT packets,
//!   which repeat that DCID, all reach one worker, whatever the 4-tuple.
//!   The worker that answers then hands out CIDs that name itself.
//!
//!   The brief proposed `(DCID[0] & 0x1f) % N` for both cases. For our
//!   CIDs that is the same, but for random DCIDs it is uneven whenever N
//!   does not divide 32 (with N = 31 worker 0 would receive twice the new
//!   connections of any other; N = 3: 11/32, 11/32, 10/32). Taking random
//!   DCIDs whose low bits already name a worker as they are, and hashing
//!   the others over 32 bits, gives each worker exactly 1/N.
//! - Runts (under 2 octets, or a long header under 7), a zero-length DCID,
//!   or a random DCID too short to hash: the 4-tuple hash.
//!
//! # A Retry minted by one worker
//!
//! Worker w receives a client's first Initial (by the hash of the client's
//! DCID), and answers with a Retry whose SCID it generated: the SCID names
//! w. The client's next Initial carries that SCID as its DCID, so it
//! reaches w, which validates the token (with the key every worker shares,
//! so any worker could) and creates the connection with that CID as its
//! own. Nothing crosses workers.
//!
//! # Worker sockets leaving the group
//!
//! The kernel keeps the group's sockets in an array in the order they were
//! bound, and when one closes it moves the *last* socket into the hole.
//! A program that still maps worker i to index i then sends the last
//! worker's packets past the end of the array (to the hash: to random
//! workers, which answer with stateless resets and kill its connections).
//! [`Group`] mirrors the kernel's order ([`Group::socket_closed`],
//! [`Group::socket_added`]) and builds the program from it, so the program
//! must be rebuilt and re-attached whenever a worker's socket closes or
//! opens (better: keep a dead worker's socket open until it is replaced).
//! A closed worker's CIDs then go by the hash to live workers, which answer
//! them with stateless resets (shared key): its clients fail fast.
//!
//! # Limits
//!
//! - 32 workers: five bits. More would need more CID bits than QUIC-LB's
//!   first octet leaves, and an eBPF program (`SO_ATTACH_REUSEPORT_EBPF`
//!   with a `REUSEPORT_SOCKARRAY` map, which also gives stable slots).
//! - The group is per bound address and port (and per network namespace
//!   and user): `0.0.0.0:443` and `127.0.0.1:443` are two groups, each
//!   needing the program.
//! - The worker bits are visible on the wire; see [`crate::quic_lb`] on
//!   what that leaks.
//! - With UDP GRO the kernel merges consecutive datagrams of one 4-tuple
//!   before choosing a socket by the first one; two connections sharing a
//!   client 4-tuple but living on different workers could then have a
//!   segment delivered to the wrong worker. A worker should hand such a
//!   segment to the worker its CID names rather than reset it.

use std::io;
use std::net::SocketAddr;
#[cfg(target_os = "linux")]
use std::os::fd::FromRawFd;
use std::os::fd::{OwnedFd, RawFd};

#[cfg(target_os = "linux")]
use crate::socket::std_to_sockaddr;

/// Most workers one group can steer: the five low bits of a CID's first
/// octet.
pub const MAX_WORKERS: usize = 32;
/// The bits of a CID's first octet that name the worker.
pub const WORKER_MASK: u8 = 0x1f;
/// What the program returns to leave the choice to the kernel's 4-tuple
/// hash: any index past the group's last socket does.
pub const FALLBACK: u32 = u32::MAX;

/// A request the steering code cannot honour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SteerError {
    /// A group has 1..=32 workers.
    Workers(usize),
    /// No such worker (index past the group's size, or past 31).
    Worker(u8),
    /// The worker's socket is already in the group.
    AlreadyBound(u8),
    /// A zero-length connection ID has no room for a worker.
    EmptyCid,
}

impl std::fmt::Display for SteerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SteerError::Workers(n) => write!(f, "{n} workers: a group has 1 to {MAX_WORKERS}"),
            SteerError::Worker(w) => write!(f, "no worker {w}"),
            SteerError::AlreadyBound(w) => write!(f, "worker {w}'s socket is already in the group"),
            SteerError::EmptyCid => write!(f, "a zero-length connection ID cannot name a worker"),
        }
    }
}

impl std::error::Error for SteerError {}

/// Writes `worker` into the five low bits of `cid`'s first octet, keeping
/// its top three bits (QUIC-LB's config ID). A QUIC-LB CID stays decodable:
/// its first octet is not encrypted.
pub fn set_worker(cid: &mut [u8], worker: u8) -> Result<(), SteerError> {
    if worker > WORKER_MASK {
        return Err(SteerError::Worker(worker));
    }
    let first = cid.first_mut().ok_or(SteerError::EmptyCid)?;
    *first = (*first & !WORKER_MASK) | worker;
    Ok(())
}

/// The worker bits of `cid` (whether or not such a worker exists).
pub fn worker_of(cid: &[u8]) -> Option<u8> {
    cid.first().map(|b| b & WORKER_MASK)
}

/// Where the program sends a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// The group's socket at this index.
    Socket(u32),
    /// The kernel's 4-tuple hash picks.
    Hash,
}

/// A reuseport group as the kernel holds it: which worker's socket is at
/// each index. Sockets are added in the order they are bound; a closed one
/// is replaced by the last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    workers: u8,
    order: Vec<u8>,
}

impl Group {
    /// `workers` workers whose sockets were bound in worker order (worker i
    /// at index i).
    pub fn new(workers: usize) -> Result<Group, SteerError> {
        if !(1..=MAX_WORKERS).contains(&workers) {
            return Err(SteerError::Workers(workers));
        }
        Ok(Group { workers: workers as u8, order: (0..workers as u8).collect() })
    }

    /// The number of workers the CIDs are spread over (live or not).
    pub fn workers(&self) -> usize {
        self.workers as usize
    }

    /// The worker whose socket is at each index, in the kernel's order.
    pub fn sockets(&self) -> &[u8] {
        &self.order
    }

    /// The index of `worker`'s socket, if it is in the group.
    pub fn index_of(&self, worker: u8) -> Option<u32> {
        self.order.iter().position(|&w| w == worker).map(|i| i as u32)
    }

    /// `worker`'s socket was closed: the kernel moved the last socket into
    /// its place. Returns whether it was in the group.
    pub fn socket_closed(&mut self, worker: u8) -> bool {
        match self.order.iter().position(|&w| w == worker) {
            Some(i) => {
                self.order.swap_remove(i);
                true
            }
            None => false,
        }
    }

    /// `worker`'s (new) socket was bound to the group's address: the kernel
    /// appended it.
    pub fn socket_added(&mut self, worker: u8) -> Result<(), SteerError> {
        if worker >= self.workers {
            return Err(SteerError::Worker(worker));
        }
        if self.order.contains(&worker) {
            return Err(SteerError::AlreadyBound(worker));
        }
        self.order.push(worker);
        Ok(())
    }

    /// The worker the steering rule names for `datagram` (the UDP payload),
    /// live or not; `None` when the rule leaves it to the 4-tuple hash.
    /// The program computes exactly this; a worker can use it to see
    /// whether a datagram it received belongs to another worker.
    pub fn worker_for(&self, d: &[u8]) -> Option<u8> {
        let n = self.workers;
        if d.len() < 2 {
            return None;
        }
        if d[0] & 0x80 == 0 {
            let w = d[1] & WORKER_MASK;
            return (w < n).then_some(w);
        }
        if d.len() < 7 || d[5] == 0 {
            return None;
        }
        let b = d[6] & WORKER_MASK;
        if b < n {
            return Some(b);
        }
        if d[5] < 5 || d.len() < 11 {
            return None;
        }
        let h = u32::from_be_bytes([d[7], d[8], d[9], d[10]]);
        Some((h % n as u32) as u8)
    }

    /// Where the program sends `datagram`.
    pub fn route(&self, datagram: &[u8]) -> Route {
        match self.worker_for(datagram).and_then(|w| self.index_of(w)) {
            Some(i) => Route::Socket(i),
            None => Route::Hash,
        }
    }

    /// The classic BPF program for the group as it stands (see the module
    /// documentation); at most 20 + 2 * 32 + 1 instructions.
    #[cfg(target_os = "linux")]
    pub fn program(&self) -> Vec<libc::sock_filter> {
        let n = self.workers as u32;
        // Fixed part: 20 instructions, then two per live worker, then the
        // fallback. Jump offsets count from the next instruction.
        const MAP: usize = 20;
        let hash = MAP + 2 * self.order.len();
        let to = |from: usize, target: usize| -> u8 { (target - from - 1) as u8 };
        let mut p = vec![
            /* 0 */ stmt(LD_LEN, 0),
            /* 1 */ jump(JGE, 2, 0, to(1, hash)),
            /* 2 */ stmt(LDB, 0),
            /* 3 */ jump(JSET, 0x80, to(3, 7), 0),
            // short header: A = DCID[0] & 0x1f
            /* 4 */ stmt(LDB, 1),
            /* 5 */ stmt(AND, WORKER_MASK as u32),
            /* 6 */ stmt(JA, (MAP - 7) as u32),
            // long header
            /* 7 */ stmt(LD_LEN, 0),
            /* 8 */ jump(JGE, 7, 0, to(8, hash)),
            /* 9 */ stmt(LDB, 5),
            /* 10 */ jump(JEQ, 0, to(10, hash), 0),
            /* 11 */ stmt(LDB, 6),
            /* 12 */ stmt(AND, WORKER_MASK as u32),
            /* 13 */ jump(JGE, n, 0, to(13, MAP)),
            // a client's random DCID: hash its octets 1..5
            /* 14 */ stmt(LDB, 5),
            /* 15 */ jump(JGE, 5, 0, to(15, hash)),
            /* 16 */ stmt(LD_LEN, 0),
            /* 17 */ jump(JGE, 11, 0, to(17, hash)),
            /* 18 */ stmt(LDW, 7),
            /* 19 */ stmt(MOD, n),
        ];
        debug_assert_eq!(p.len(), MAP);
        // MAP: A is a worker index; its socket's index, if it has one.
        for (index, &worker) in self.order.iter().enumerate() {
            p.push(jump(JEQ, worker as u32, 0, 1));
            p.push(stmt(RET_K, index as u32));
        }
        p.push(stmt(RET_K, FALLBACK));
        debug_assert_eq!(p.len(), hash + 1);
        p
    }

    /// Builds the program and attaches it to the group through `fd`, any
    /// socket of the group (see [`attach`]).
    #[cfg(target_os = "linux")]
    pub fn attach(&self, fd: RawFd) -> io::Result<()> {
        attach(fd, &self.program())
    }

    /// Elsewhere no kernel steers a reuseport group by a program.
    #[cfg(not(target_os = "linux"))]
    pub fn attach(&self, _fd: RawFd) -> io::Result<()> {
        Err(unsupported())
    }
}

/// Why workers cannot be had off Linux.
#[cfg(not(target_os = "linux"))]
fn unsupported() -> io::Error {
    io::Error::new(io::ErrorKind::Unsupported,
                   "workers need Linux: a reuseport group steered by a classic BPF program (SO_ATTACH_REUSEPORT_CBPF)")
}

/// Elsewhere: see [`unsupported`].
#[cfg(not(target_os = "linux"))]
pub fn detach(_fd: RawFd) -> io::Result<()> {
    Err(unsupported())
}

/// Elsewhere: see [`unsupported`] (a group that nothing steers would
/// split connections by the 4-tuple).
#[cfg(not(target_os = "linux"))]
pub fn bind_reuseport(_addr: &SocketAddr) -> io::Result<OwnedFd> {
    Err(unsupported())
}


#[cfg(target_os = "linux")]
const LD_LEN: u32 = libc::BPF_LD | libc::BPF_W | libc::BPF_LEN;
#[cfg(target_os = "linux")]
const LDB: u32 = libc::BPF_LD | libc::BPF_B | libc::BPF_ABS;
#[cfg(target_os = "linux")]
const LDW: u32 = libc::BPF_LD | libc::BPF_W | libc::BPF_ABS;
#[cfg(target_os = "linux")]
const AND: u32 = libc::BPF_ALU | libc::BPF_AND | libc::BPF_K;
#[cfg(target_os = "linux")]
const MOD: u32 = libc::BPF_ALU | libc::BPF_MOD | libc::BPF_K;
#[cfg(target_os = "linux")]
const JA: u32 = libc::BPF_JMP | libc::BPF_JA;
#[cfg(target_os = "linux")]
const JEQ: u32 = libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K;
#[cfg(target_os = "linux")]
const JGE: u32 = libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K;
#[cfg(target_os = "linux")]
const JSET: u32 = libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K;
#[cfg(target_os = "linux")]
const RET_K: u32 = libc::BPF_RET | libc::BPF_K;

#[cfg(target_os = "linux")]
fn stmt(code: u32, k: u32) -> libc::sock_filter {
    libc::sock_filter { code: code as u16, jt: 0, jf: 0, k }
}

#[cfg(target_os = "linux")]
fn jump(code: u32, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code: code as u16, jt, jf, k }
}

/// Attaches `program` to the reuseport group of `fd` (a UDP socket with
/// `SO_REUSEPORT`, bound: the program belongs to the group, not to the
/// socket, and replaces any program attached before). Attach after the
/// group's sockets are bound.
#[cfg(target_os = "linux")]
pub fn attach(fd: RawFd, program: &[libc::sock_filter]) -> io::Result<()> {
    let len = u16::try_from(program.len()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let prog = libc::sock_fprog { len, filter: program.as_ptr().cast_mut() };
    // SAFETY: prog points at `program`, alive for the call; the kernel
    // copies the instructions and never writes through the pointer.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ATTACH_REUSEPORT_CBPF,
            (&prog as *const libc::sock_fprog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// Removes the group's program (Linux 5.8+): the 4-tuple hash again.
#[cfg(target_os = "linux")]
pub fn detach(fd: RawFd) -> io::Result<()> {
    let zero: libc::c_int = 0;
    // SAFETY: a valid int option value for the duration of the call.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_DETACH_REUSEPORT_BPF,
            (&zero as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// A non-blocking, close-on-exec UDP socket with `SO_REUSEPORT`, bound to
/// `addr`: one worker's member of the group at `addr`.
#[cfg(target_os = "linux")]
pub fn bind_reuseport(addr: &SocketAddr) -> io::Result<OwnedFd> {
    let family = if addr.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
    // SAFETY: plain socket(2); the descriptor is owned right away.
    let fd = unsafe { libc::socket(family, libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor nobody else owns.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let one: libc::c_int = 1;
    // SAFETY: a valid int option value for the duration of the call.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_REUSEPORT,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let (ss, len) = std_to_sockaddr(addr);
    // SAFETY: ss holds a sockaddr of `len` bytes for the socket's family.
    let rc = unsafe { libc::bind(fd, (&ss as *const libc::sockaddr_storage).cast(), len) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(owned)
}

#[cfg(all(test, target_os = "linux"))]
mod tests;
