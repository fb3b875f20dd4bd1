//! What quiche-ev's own code spends on a datagram for no connection it
//! has, with no socket and no loop wake-up around it (`make bench`,
//! "unknown CID in process"): a real server made through the C API, each
//! datagram handed to it through `inject_datagram` (the path `recv_cb`
//! takes for every datagram of a batch, plus the step after it that
//! `recv_cb` takes once per batch: so this is an upper bound).
//!
//!     cargo bench --bench unknown_cid_inproc [-- DATAGRAMS]
//!
//! Prints one JSON line: nanoseconds of CPU (this thread) per datagram
//! for short-header junk (a 1-RTT packet of a connection we never had:
//! table lookup, rate limiter, a Stateless Reset while the limiter allows
//! one) and for long-header junk (an Initial shorter than a client's
//! first datagram may be, or unparsable: dropped), and what the server's
//! counters say it did with them.

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;

use libev_sys::{ev_loop_destroy, ev_loop_new, EVFLAG_AUTO};
use quiche_ev::ffi::server::{inject_datagram, quiche_ev_server_free, quiche_ev_server_new};
use quiche_ev::ffi::types::quiche_config;
use quiche_ev::socket::std_to_sockaddr;

fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid timespec to write.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// A small xorshift: junk needs no cryptographic randomness.
struct Junk(u64);

impl Junk {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn datagram(&mut self, long: bool) -> Vec<u8> {
        let len = 60 + (self.next() % 41) as usize;
        let mut d: Vec<u8> = (0..len).map(|_| self.next() as u8).collect();
        if long {
            // An Initial of version 1 with 8-byte CIDs, far shorter than
            // the 1200 bytes a client's first datagram must have.
            d[0] = 0xc0 | (d[0] & 0x0f);
            d[1..5].copy_from_slice(&1u32.to_be_bytes());
            d[5] = 8;
            d[14] = 8;
        } else {
            d[0] = 0x40 | (d[0] & 0x3f);
        }
        d
    }
}

fn config() -> quiche::Config {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/c-examples");
    let mut c = quiche::Config::new(quiche::PROTOCOL_VERSION).unwrap();
    c.set_application_protos(&[b"h3"]).unwrap();
    c.load_cert_chain_from_pem_file(&format!("{dir}/cert.crt")).expect("run `make` first");
    c.load_priv_key_from_pem_file(&format!("{dir}/cert.key")).unwrap();
    c
}

fn main() {
    let n: usize = std::env::args().skip(1).find(|a| !a.starts_with('-')).and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_nonblocking(true).unwrap();
    let local = sock.local_addr().unwrap();
    // Where the server's Stateless Resets go: a socket nobody reads.
    let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
    let from: SocketAddr = sink.local_addr().unwrap();
    let mut config = Box::new(config());
    // SAFETY: a fresh loop, destroyed below after the server.
    let lp = unsafe { ev_loop_new(EVFLAG_AUTO) };
    let (addr, len) = std_to_sockaddr(&local);
    let server = quiche_ev_server_new(lp, sock.as_raw_fd(), &addr as *const _ as *const libc::sockaddr, len,
                                      &mut *config as *mut quiche::Config as *mut quiche_config,
                                      std::ptr::null_mut());
    assert!(!server.is_null(), "quiche_ev_server_new failed");

    let mut rng = Junk(0x9e37_79b9_7f4a_7c15);
    let mut figures = Vec::new();
    for (kind, long) in [("short_header", false), ("long_header", true)] {
        let pool: Vec<Vec<u8>> = (0..4096).map(|_| rng.datagram(long)).collect();
        let mut buf = [0u8; 128];
        let mut run = |count: usize| {
            let t0 = thread_cpu_ns();
            for i in 0..count {
                let d = &pool[i % pool.len()];
                buf[..d.len()].copy_from_slice(d);
                // SAFETY: the live server, outside its callbacks.
                assert!(unsafe { inject_datagram(server, &mut buf[..d.len()], from) });
            }
            thread_cpu_ns() - t0
        };
        run(n / 10); // warm-up: tables, allocator, the limiter's burst spent
        let ns = run(n);
        figures.push(format!("\"{kind}_ns\": {:.1}", ns as f64 / n as f64));
    }
    // SAFETY: a valid loop; the server is freed before it.
    let counters = unsafe {
        let mut c: quiche_ev::ffi::types::quiche_ev_counters = std::mem::zeroed();
        c.size = std::mem::size_of_val(&c);
        assert_eq!(quiche_ev::ffi::server::quiche_ev_server_counters(server, &mut c), 0);
        c
    };
    quiche_ev_server_free(server);
    unsafe { ev_loop_destroy(lp) };
    println!("{{\"datagrams\": {n}, {}, \"stateless_resets\": {}, \"dropped_rate_limited\": {}, \
              \"dropped_short\": {}, \"dropped_malformed\": {}}}",
             figures.join(", "), counters.stateless_resets, counters.dropped_rate_limited, counters.dropped_short, counters.dropped_malformed);
}
