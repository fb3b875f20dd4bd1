//! Tests of the steering rule, of the program against the rule (through a
//! small classic-BPF interpreter), and of the program in the kernel:
//! reuseport groups on loopback receiving crafted QUIC datagrams.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use super::*;
use crate::crypto::random_bytes;
use crate::quic_lb::{Config, Generator};

// ---------------------------------------------------------------------------
// Datagrams
// ---------------------------------------------------------------------------

/// A short-header packet (RFC 9000 §17.3.1) to `dcid`, with `tag` after it
/// so that each datagram of a test is unique.
fn short(dcid: &[u8], tag: u32) -> Vec<u8> {
    let mut d = vec![0x41];
    d.extend_from_slice(dcid);
    d.extend_from_slice(&tag.to_be_bytes());
    d.resize(d.len() + 24, 0xaa);
    d
}

/// A long-header packet (RFC 9000 §17.2) of `type_bits` (0 Initial, 1
/// 0-RTT, 2 Handshake) to `dcid`, QUIC v1.
fn long(type_bits: u8, dcid: &[u8], tag: u32) -> Vec<u8> {
    let mut d = vec![0xc0 | type_bits << 4, 0, 0, 0, 1, dcid.len() as u8];
    d.extend_from_slice(dcid);
    d.push(8);
    d.extend_from_slice(&[0x5c; 8]);
    d.extend_from_slice(&tag.to_be_bytes());
    d.resize(d.len() + 24, 0xaa);
    d
}

fn random_cid(len: usize) -> Vec<u8> {
    let mut c = vec![0u8; len];
    random_bytes(&mut c);
    c
}

/// A CID of `worker`, as a worker with a QUIC-LB configuration makes it.
fn cid_of(gen: &mut Generator) -> Vec<u8> {
    gen.next_cid().unwrap().to_vec()
}

fn generator(worker: u8, key: bool) -> Generator {
    let key = key.then_some([0x3c; 16]);
    Generator::new(Config::new(1, &[0xbe, 0xef], 13, key).unwrap(), Some(worker)).unwrap()
}

// ---------------------------------------------------------------------------
// The rule and the group model
// ---------------------------------------------------------------------------

#[test]
fn set_worker_keeps_the_config_bits_and_quic_lb_still_decodes() {
    let config = Config::new(5, &[1, 2, 3, 4], 12, Some([9; 16])).unwrap();
    let mut cid = config.generate(crate::quic_lb::FirstOctet::Random).unwrap().to_vec();
    for w in [0, 7, 31] {
        set_worker(&mut cid, w).unwrap();
        assert_eq!(worker_of(&cid), Some(w));
        assert_eq!(cid[0] >> 5, 5);
        assert!(config.is_own(&cid), "the first octet is outside the encryption");
    }
    assert_eq!(set_worker(&mut cid, 32), Err(SteerError::Worker(32)));
    assert_eq!(set_worker(&mut [], 1), Err(SteerError::EmptyCid));
    assert_eq!(worker_of(&[]), None);
}

#[test]
fn group_sizes_are_checked() {
    assert_eq!(Group::new(0), Err(SteerError::Workers(0)));
    assert_eq!(Group::new(33), Err(SteerError::Workers(33)));
    assert_eq!(Group::new(32).unwrap().sockets().len(), 32);
}

#[test]
fn the_rule_routes_short_and_long_headers() {
    let g = Group::new(3).unwrap();
    // Short header: the CID's worker bits; past N, the hash.
    assert_eq!(g.route(&short(&[0xe2, 1, 2, 3], 0)), Route::Socket(2));
    assert_eq!(g.route(&short(&[0x20, 1, 2, 3], 0)), Route::Socket(0));
    assert_eq!(g.route(&short(&[0x05, 1, 2, 3], 0)), Route::Hash);
    // Long header with one of our CIDs (Handshake, Initial after a Retry).
    assert_eq!(g.route(&long(2, &[0x41, 9, 9, 9, 9, 9, 9, 9], 0)), Route::Socket(1));
    assert_eq!(g.route(&long(0, &[0x02; 8], 0)), Route::Socket(2));
    // A client's random DCID: octets 1..5 as an integer, mod N.
    let dcid = [0x1f, 0, 0, 0, 7, 0xff, 0xff, 0xff];
    assert_eq!(g.route(&long(0, &dcid, 0)), Route::Socket(7 % 3));
    let dcid = [0x1f, 0, 0, 1, 0, 0xff, 0xff, 0xff];
    assert_eq!(g.route(&long(0, &dcid, 0)), Route::Socket(256 % 3));
    // Runts, an empty DCID, a random DCID too short to hash.
    assert_eq!(g.route(&[]), Route::Hash);
    assert_eq!(g.route(&[0x41]), Route::Hash);
    assert_eq!(g.route(&[0xc0, 0, 0, 0, 1, 8]), Route::Hash);
    assert_eq!(g.route(&long(0, &[], 0)), Route::Hash);
    assert_eq!(g.route(&long(0, &[0x1f, 1, 2, 3], 0)), Route::Hash);
    assert_eq!(g.route(&long(0, &[0x01, 1, 2, 3], 0)), Route::Socket(1), "short DCID naming a worker");
}

/// The reason for hashing random DCIDs over 32 bits: every worker gets
/// 1/N of new connections. `(DCID[0] & 0x1f) % N` would give worker 0 of
/// 31 twice the share of the others.
#[test]
fn new_connections_spread_evenly_over_any_number_of_workers() {
    const DRAWS: usize = 62_000;
    let dcids: Vec<Vec<u8>> = (0..DRAWS).map(|_| random_cid(8)).collect();
    for n in [2, 3, 5, 7, 24, 31, 32] {
        let g = Group::new(n).unwrap();
        let mut counts = vec![0usize; n];
        for d in &dcids {
            match g.route(&long(0, d, 0)) {
                Route::Socket(i) => counts[i as usize] += 1,
                Route::Hash => panic!("an 8-octet DCID always has a worker"),
            }
        }
        let fair = DRAWS / n;
        for (w, &c) in counts.iter().enumerate() {
            // 2000 per worker at n = 31: 5 sigma is about 11 %.
            assert!(c.abs_diff(fair) * 100 < fair * 15, "n={n} worker {w}: {c} of {DRAWS}, fair {fair}");
        }
    }
    // What the naive rule would do at n = 31.
    let naive0 = dcids.iter().filter(|d| (d[0] & 0x1f) % 31 == 0).count();
    assert!(naive0 > DRAWS * 3 / 62, "naive rule: worker 0 got {naive0}");
}

#[test]
fn the_group_mirrors_the_kernels_order() {
    let mut g = Group::new(4).unwrap();
    assert_eq!(g.sockets(), &[0, 1, 2, 3]);
    assert!(g.socket_closed(1));
    assert_eq!(g.sockets(), &[0, 3, 2], "the last socket fills the hole");
    assert!(!g.socket_closed(1));
    assert_eq!(g.index_of(3), Some(1));
    assert_eq!(g.index_of(1), None);
    // Worker 1's CIDs now go by the hash; worker 3's to index 1.
    assert_eq!(g.route(&short(&[0x01, 0, 0, 0], 0)), Route::Hash);
    assert_eq!(g.route(&short(&[0x03, 0, 0, 0], 0)), Route::Socket(1));
    assert_eq!(g.socket_added(1), Ok(()));
    assert_eq!(g.sockets(), &[0, 3, 2, 1]);
    assert_eq!(g.socket_added(1), Err(SteerError::AlreadyBound(1)));
    assert_eq!(g.socket_added(4), Err(SteerError::Worker(4)));
    assert_eq!(g.route(&short(&[0x01, 0, 0, 0], 0)), Route::Socket(3));
}

// ---------------------------------------------------------------------------
// The program against the rule
// ---------------------------------------------------------------------------

/// A classic BPF interpreter for the instructions the program uses, with
/// the kernel's semantics for them: loads past the packet end the program
/// with 0, ALU is 32-bit, jumps count from the next instruction.
fn run(prog: &[libc::sock_filter], pkt: &[u8]) -> u32 {
    let (mut a, mut pc) = (0u32, 0usize);
    loop {
        let i = prog[pc];
        pc += 1;
        let code = i.code as u32;
        match code {
            LD_LEN => a = pkt.len() as u32,
            LDB => match pkt.get(i.k as usize) {
                Some(&b) => a = b as u32,
                None => return 0,
            },
            LDW => match pkt.get(i.k as usize..i.k as usize + 4) {
                Some(w) => a = u32::from_be_bytes(w.try_into().unwrap()),
                None => return 0,
            },
            AND => a &= i.k,
            MOD => a %= i.k,
            JA => pc += i.k as usize,
            JEQ | JGE | JSET => {
                let taken = match code {
                    JEQ => a == i.k,
                    JGE => a >= i.k,
                    _ => a & i.k != 0,
                };
                let offset = if taken { i.jt } else { i.jf };
                pc += offset as usize;
            }
            RET_K => return i.k,
            other => panic!("instruction {other:#x} not expected"),
        }
        assert!(pc < prog.len(), "ran off the end");
    }
}

fn decision(g: &Group, prog: &[libc::sock_filter], pkt: &[u8]) -> Route {
    match run(prog, pkt) {
        i if (i as usize) < g.sockets().len() => Route::Socket(i),
        FALLBACK => Route::Hash,
        other => panic!("out-of-range index {other} other than FALLBACK"),
    }
}

/// Datagrams that probe every branch: random ones of every short length,
/// short and long headers with every first-octet value, DCID lengths 0..=20.
fn probe_datagrams() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for len in 0..=24 {
        for _ in 0..40 {
            out.push(random_cid(len));
        }
    }
    for b in 0..=255u8 {
        let mut cid = random_cid(16);
        cid[0] = b;
        out.push(short(&cid, 0));
        for dlen in [0usize, 1, 4, 5, 8, 20] {
            let mut dcid = random_cid(dlen);
            if let Some(f) = dcid.first_mut() {
                *f = b;
            }
            let pkt = long(b & 3, &dcid, 0);
            for cut in [6, 7, 10, 11, pkt.len()] {
                out.push(pkt[..cut.min(pkt.len())].to_vec());
            }
        }
    }
    out
}

#[test]
fn the_program_computes_the_rule_for_every_group() {
    let probes = probe_datagrams();
    for n in 1..=MAX_WORKERS {
        let mut g = Group::new(n).unwrap();
        let mut groups = vec![g.clone()];
        // And the group after some workers' sockets closed and came back.
        if n > 2 {
            g.socket_closed(0);
            groups.push(g.clone());
            g.socket_closed((n - 1) as u8);
            groups.push(g.clone());
            g.socket_added(0).unwrap();
            groups.push(g.clone());
        }
        for g in &groups {
            let prog = g.program();
            assert!(prog.len() <= 20 + 2 * MAX_WORKERS + 1);
            for pkt in &probes {
                assert_eq!(decision(g, &prog, pkt), g.route(pkt), "n={n} order={:?} pkt={pkt:02x?}", g.sockets());
            }
        }
    }
}

// ---------------------------------------------------------------------------
// In the kernel
// ---------------------------------------------------------------------------

/// A random address in 127/8. Each test's group gets its own: a reuseport
/// socket bound to port 0 may be given a port that another reuseport
/// socket of the same user already holds on the same address, and join its
/// group; with distinct addresses two tests' groups can never merge.
fn loopback() -> IpAddr {
    let mut r = [0u8; 3];
    random_bytes(&mut r);
    IpAddr::from([127, r[0], r[1], r[2].clamp(1, 254)])
}

/// `n` reuseport sockets on one loopback address and port, bound in worker
/// order.
fn bind_group(n: usize) -> (Vec<UdpSocket>, SocketAddr) {
    let first = UdpSocket::from(bind_reuseport(&SocketAddr::new(loopback(), 0)).unwrap());
    let addr = first.local_addr().unwrap();
    let mut socks = vec![first];
    for _ in 1..n {
        socks.push(UdpSocket::from(bind_reuseport(&addr).unwrap()));
    }
    (socks, addr)
}

/// `k` client sockets: `k` different 4-tuples towards the group.
fn clients(k: usize) -> Vec<UdpSocket> {
    (0..k).map(|_| UdpSocket::bind("127.0.0.1:0").unwrap()).collect()
}

/// Sends `datagram` from `from` and returns the index (in `socks`) of the
/// socket that received it, waiting at most five seconds.
fn deliver(socks: &[&UdpSocket], from: &UdpSocket, to: SocketAddr, datagram: &[u8]) -> usize {
    from.send_to(datagram, to).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut fds: Vec<libc::pollfd> =
            socks.iter().map(|s| libc::pollfd { fd: s.as_raw_fd(), events: libc::POLLIN, revents: 0 }).collect();
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "no socket received the datagram within 5 s");
        // SAFETY: fds is a valid array of fds.len() pollfd structures.
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, left.as_millis().max(1) as i32) };
        assert!(rc >= 0, "poll: {}", std::io::Error::last_os_error());
        if let Some(i) = fds.iter().position(|p| p.revents & libc::POLLIN != 0) {
            let mut buf = [0u8; 2048];
            let (len, src) = socks[i].recv_from(&mut buf).unwrap();
            assert_eq!(src, from.local_addr().unwrap());
            assert_eq!(&buf[..len], datagram, "an unexpected datagram");
            return i;
        }
    }
}

/// Sends one datagram (made by `make` from a tag) from each client and
/// counts the receiving sockets.
fn spread(socks: &[&UdpSocket], clients: &[UdpSocket], to: SocketAddr, make: impl Fn(u32) -> Vec<u8>)
          -> HashMap<usize, usize> {
    let mut counts = HashMap::new();
    for (tag, c) in clients.iter().enumerate() {
        *counts.entry(deliver(socks, c, to, &make(tag as u32))).or_default() += 1;
    }
    counts
}

fn refs(socks: &[UdpSocket]) -> Vec<&UdpSocket> {
    socks.iter().collect()
}

/// Without a program the kernel picks by the 4-tuple hash: one CID from 32
/// client ports lands on both sockets. (Otherwise the tests below, which
/// expect one socket, could pass by luck.)
#[test]
fn without_the_program_one_cid_is_spread_by_four_tuple() {
    let (socks, addr) = bind_group(2);
    let cid = cid_of(&mut generator(0, true));
    let counts = spread(&refs(&socks), &clients(32), addr, |t| short(&cid, t));
    assert_eq!(counts.len(), 2, "all 32 on one socket: {counts:?} (a 2^-31 fluke, or no hashing)");
}

/// Short-header packets reach the worker their CID names, from every 4-tuple,
/// for 2 and 3 workers, QUIC-LB CIDs (encrypted and not) and plain random
/// CIDs with the worker bits set. The program is attached through the
/// last socket: it belongs to the group.
#[test]
fn short_headers_reach_the_worker_their_cid_names() {
    for n in [2, 3] {
        let (socks, addr) = bind_group(n);
        let group = Group::new(n).unwrap();
        group.attach(socks[n - 1].as_raw_fd()).unwrap();
        let clients = clients(8);
        for w in 0..n as u8 {
            let mut plain = generator(w, false);
            let mut keyed = generator(w, true);
            let mut random = random_cid(16);
            set_worker(&mut random, w).unwrap();
            for cid in [cid_of(&mut plain), cid_of(&mut keyed), random] {
                let counts = spread(&refs(&socks), &clients, addr, |t| short(&cid, t));
                assert_eq!(counts, HashMap::from([(w as usize, clients.len())]), "n={n} worker {w} cid {cid:02x?}");
            }
        }
    }
}

/// Long-header packets: those with our CID (Handshake, the Initial after a
/// Retry) reach the CID's worker; a client's Initial and 0-RTT with its own
/// random DCID reach one worker per DCID, whatever the 4-tuple, the one
/// the rule names.
#[test]
fn long_headers_meet_one_worker_per_dcid() {
    for n in [2, 3] {
        let (socks, addr) = bind_group(n);
        let group = Group::new(n).unwrap();
        group.attach(socks[0].as_raw_fd()).unwrap();
        let clients = clients(4);
        for w in 0..n as u8 {
            let ours = cid_of(&mut generator(w, true));
            for type_bits in [0, 1, 2] {
                let counts = spread(&refs(&socks), &clients, addr, |t| long(type_bits, &ours, t));
                assert_eq!(counts, HashMap::from([(w as usize, clients.len())]), "n={n} worker {w} type {type_bits}");
            }
        }
        let mut served = vec![0usize; n];
        for _ in 0..24 {
            let dcid = random_cid(8);
            let Route::Socket(expected) = group.route(&long(0, &dcid, 0)) else { panic!("8-octet DCID") };
            for type_bits in [0, 1] {
                let counts = spread(&refs(&socks), &clients, addr, |t| long(type_bits, &dcid, t));
                assert_eq!(counts, HashMap::from([(expected as usize, clients.len())]), "n={n} dcid {dcid:02x?}");
            }
            served[expected as usize] += 1;
        }
        assert!(served.iter().all(|&s| s > 0), "24 client DCIDs all on some workers: {served:?}");
    }
}

/// Worker 1 of 3 answers a client's Initial with a Retry whose SCID it
/// generated; the client's next Initial (DCID = that SCID), from the same or
/// a new address, reaches worker 1.
#[test]
fn the_initial_after_a_retry_reaches_the_worker_that_sent_it() {
    let (socks, addr) = bind_group(3);
    let group = Group::new(3).unwrap();
    group.attach(socks[0].as_raw_fd()).unwrap();
    let client = clients(1);
    // Find a client DCID that the rule gives to worker 1.
    let odcid = loop {
        let d = random_cid(8);
        if group.worker_for(&long(0, &d, 0)) == Some(1) {
            break d;
        }
    };
    assert_eq!(deliver(&refs(&socks), &client[0], addr, &long(0, &odcid, 1)), 1);
    let retry_scid = cid_of(&mut generator(1, true));
    for (tag, from) in clients(4).iter().chain(&client).enumerate() {
        assert_eq!(deliver(&refs(&socks), from, addr, &long(0, &retry_scid, 10 + tag as u32)), 1);
    }
}

/// What the program hands back to the kernel (an index past the last
/// socket) really falls back to the 4-tuple hash: a CID naming no worker,
/// a runt and an empty long-header DCID each spread over both sockets
/// from 32 client ports (a constant index would put them all on one).
#[test]
fn fallback_is_the_four_tuple_hash() {
    let (socks, addr) = bind_group(2);
    Group::new(2).unwrap().attach(socks[0].as_raw_fd()).unwrap();
    let clients = clients(32);
    let mut no_worker = random_cid(16);
    set_worker(&mut no_worker, 5).unwrap();
    let cases: [(&str, Box<dyn Fn(u32) -> Vec<u8>>); 3] = [
        ("worker bits past N", Box::new(|t| short(&no_worker, t))),
        ("one-octet runt", Box::new(|t| vec![t as u8 & 0x3f])),
        ("empty long-header DCID", Box::new(|t| long(0, &[], t))),
    ];
    for (what, make) in cases {
        let counts = spread(&refs(&socks), &clients, addr, make);
        assert_eq!(counts.len(), 2, "{what}: {counts:?}");
    }
}

/// The kernel's group order after a close: closing worker 0's socket moves
/// worker 2's socket to index 0. The program built for the old order then
/// sends worker 0's CIDs to worker 2 and worker 2's past the end (the
/// hash); rebuilt from the mirrored order, each live worker gets its own
/// again and the dead worker's CIDs go by the hash.
#[test]
fn a_closed_socket_reorders_the_group_and_the_program_follows() {
    let (mut socks, addr) = bind_group(3);
    let mut group = Group::new(3).unwrap();
    group.attach(socks[0].as_raw_fd()).unwrap();
    drop(socks.remove(0)); // worker 0's socket; socks = [worker 1, worker 2]
    let live = refs(&socks);
    let clients = clients(32);
    let cid = |w| cid_of(&mut generator(w, true));
    let (w0, w1, w2) = (cid(0), cid(1), cid(2));
    let (at_w1, at_w2) = (0usize, 1usize); // indexes in `live`

    // The stale program: index 0 is now worker 2's socket.
    let counts = spread(&live, &clients, addr, |t| short(&w0, t));
    assert_eq!(counts, HashMap::from([(at_w2, 32)]), "worker 0's CIDs should land on worker 2 (index 0)");
    let counts = spread(&live, &clients, addr, |t| short(&w2, t));
    assert_eq!(counts.len(), 2, "worker 2's CIDs should go past the end, by hash: {counts:?}");

    assert!(group.socket_closed(0));
    assert_eq!(group.sockets(), &[2, 1]);
    group.attach(socks[1].as_raw_fd()).unwrap();
    assert_eq!(spread(&live, &clients, addr, |t| short(&w2, t)), HashMap::from([(at_w2, 32)]));
    assert_eq!(spread(&live, &clients, addr, |t| short(&w1, t)), HashMap::from([(at_w1, 32)]));
    assert_eq!(spread(&live, &clients, addr, |t| short(&w0, t)).len(), 2, "the dead worker's CIDs: hash");

    // A new socket for worker 0 is appended (index 2) and gets its CIDs back.
    socks.push(UdpSocket::from(bind_reuseport(&addr).unwrap()));
    group.socket_added(0).unwrap();
    group.attach(socks[0].as_raw_fd()).unwrap();
    let all = refs(&socks);
    assert_eq!(spread(&all, &clients, addr, |t| short(&w0, t)), HashMap::from([(2, 32)]));
    assert_eq!(spread(&all, &clients, addr, |t| short(&w2, t)), HashMap::from([(1, 32)]));
}

#[test]
fn detach_returns_the_group_to_the_hash() {
    let (socks, addr) = bind_group(2);
    Group::new(2).unwrap().attach(socks[1].as_raw_fd()).unwrap();
    let clients = clients(32);
    let cid = cid_of(&mut generator(1, false));
    assert_eq!(spread(&refs(&socks), &clients, addr, |t| short(&cid, t)), HashMap::from([(1, 32)]));
    detach(socks[0].as_raw_fd()).unwrap();
    assert_eq!(spread(&refs(&socks), &clients, addr, |t| short(&cid, t)).len(), 2);
}

#[test]
fn attach_needs_a_reuseport_socket() {
    let plain = UdpSocket::bind("127.0.0.1:0").unwrap();
    let err = Group::new(2).unwrap().attach(plain.as_raw_fd()).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EINVAL), "{err}");
}

/// The same steering for UDP over IPv6 (the kernel's reuseport selection is
/// shared by both families).
#[test]
fn ipv6_groups_are_steered_too() {
    let first = match bind_reuseport(&"[::1]:0".parse().unwrap()) {
        Ok(fd) => UdpSocket::from(fd),
        // A host without IPv6 loopback cannot run this; say so rather than pass.
        Err(e) => panic!("cannot bind [::1]: {e} (no IPv6 loopback on this host?)"),
    };
    let addr = first.local_addr().unwrap();
    let socks = vec![first, UdpSocket::from(bind_reuseport(&addr).unwrap())];
    let clients: Vec<UdpSocket> = (0..16).map(|_| UdpSocket::bind("[::1]:0").unwrap()).collect();
    let cid = cid_of(&mut generator(1, true));
    assert_eq!(spread(&refs(&socks), &clients, addr, |t| short(&cid, t)).len(), 2, "no program: hash");
    Group::new(2).unwrap().attach(socks[0].as_raw_fd()).unwrap();
    assert_eq!(spread(&refs(&socks), &clients, addr, |t| short(&cid, t)), HashMap::from([(1, 16)]));
    let ours = cid_of(&mut generator(0, false));
    assert_eq!(spread(&refs(&socks), &clients, addr, |t| long(2, &ours, t)), HashMap::from([(0, 16)]));
}

/// A group is per bound address: sockets on 0.0.0.0:P and on 127.x.y.z:P
/// are two groups. A datagram to 127.x.y.z:P goes to the more specific
/// group, where the program attached to the wildcard group does nothing;
/// each bound address needs its own program.
#[test]
fn each_bound_address_is_its_own_group() {
    let wild0 = UdpSocket::from(bind_reuseport(&"0.0.0.0:0".parse().unwrap()).unwrap());
    let port = wild0.local_addr().unwrap().port();
    let wild1 = UdpSocket::from(bind_reuseport(&SocketAddr::from(([0, 0, 0, 0], port))).unwrap());
    let lo_addr = SocketAddr::new(loopback(), port);
    let lo0 = UdpSocket::from(bind_reuseport(&lo_addr).unwrap());
    let lo1 = UdpSocket::from(bind_reuseport(&lo_addr).unwrap());
    Group::new(2).unwrap().attach(wild0.as_raw_fd()).unwrap();
    let all = [&wild0, &wild1, &lo0, &lo1];
    let clients = clients(32);
    let cid = cid_of(&mut generator(1, true));
    let counts = spread(&all, &clients, lo_addr, |t| short(&cid, t));
    assert!(!counts.contains_key(&0) && !counts.contains_key(&1), "the wildcard group got some: {counts:?}");
    assert_eq!(counts.len(), 2, "the loopback group has no program, so the hash: {counts:?}");
    Group::new(2).unwrap().attach(lo0.as_raw_fd()).unwrap();
    assert_eq!(spread(&all, &clients, lo_addr, |t| short(&cid, t)), HashMap::from([(3, 32)]));
}
