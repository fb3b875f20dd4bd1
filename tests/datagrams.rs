//! Datagrams with real peers over loopback: QUIC datagrams (RFC 9221)
//! both ways between our server and client (`tests/c/datagrams.c`), and
//! CONNECT-UDP (RFC 9298: an extended CONNECT, RFC 9220, carrying HTTP
//! Datagrams, RFC 9297) through `c-examples/udp-proxy` to a UDP echo,
//! with aioquic as the client, and with our client
//! (`tests/c/connect_udp.c`) against our proxy and against an aioquic
//! proxy. Where datagrams were not negotiated, the documented error: a
//! proxy that takes none gives our client QUICHE_EV_ERR_UNSUPPORTED, and
//! our proxy refuses a tunnel to a client that takes none.

mod common;
use common::aioquic::{aioquic_server, python, peer_script};
use common::*;

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

/// A UDP echo on loopback, in a thread of the test: every datagram goes
/// back to where it came from.
struct Echo {
    port: u16,
    echoed: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Echo {
    fn start() -> Echo {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let port = sock.local_addr().unwrap().port();
        let (echoed, stop) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicBool::new(false)));
        let (e, s) = (echoed.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 65536];
            while !s.load(Ordering::Relaxed) {
                if let Ok((n, from)) = sock.recv_from(&mut buf) {
                    if sock.send_to(&buf[..n], from).is_ok() {
                        e.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        });
        Echo { port, echoed, stop, thread: Some(thread) }
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A C program from tests/c/, compiled once per run against
/// target/release/libquiche_ev.a, as the Makefile builds the examples.
fn c_program(name: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    let exe = root().join("target/app-api").join(name);
    let mut built = BUILT.get_or_init(Default::default).lock().unwrap();
    if !built.iter().any(|n| n == name) {
        std::fs::create_dir_all(exe.parent().unwrap()).unwrap();
        let src = format!("tests/c/{name}.c");
        compile_c(&[Path::new(&src), Path::new("tests/c/harness.c"), Path::new("c-examples/common.c")], &exe);
        built.push(name.to_string());
    }
    exe
}

/// Our CONNECT-UDP client through the proxy on `port` to the echo at
/// `target`, with `count` datagrams (and `extra` arguments).
fn connect_udp(port: u16, target: u16, count: usize, extra: &[&str]) -> Run {
    let mut cmd = Command::new(c_program("connect_udp"));
    cmd.args(["127.0.0.1", &port.to_string(), "127.0.0.1", &target.to_string(), &count.to_string()]).args(extra);
    run(cmd, Duration::from_secs(30))
}

/// aioquic's CONNECT-UDP client through the proxy on `port`.
fn aioquic_connect_udp(port: u16, target_host: &str, target: u16, count: usize) -> Run {
    aioquic_connect_udp_with(port, target_host, target, count, &[])
}

fn aioquic_connect_udp_with(port: u16, target_host: &str, target: u16, count: usize, extra: &[&str]) -> Run {
    let mut cmd = Command::new(python());
    cmd.arg(peer_script())
        .args(["connect-udp", "--count", &count.to_string(), "--timeout", "20"]).args(extra)
        .args(["127.0.0.1", &port.to_string(), target_host, &target.to_string()]);
    run(cmd, Duration::from_secs(30))
}

/// The proxy's counters line at exit (after SIGTERM), as pairs.
fn proxy_stats(mut s: Server) -> Vec<(String, u64)> {
    s.signal(libc::SIGTERM);
    let status = s.wait_exit(DEADLINE).unwrap_or_else(|| panic!("proxy did not exit:\n{}", s.stderr.dump()));
    assert!(status.success(), "proxy exit {status:?}:\n{}", s.stderr.dump());
    assert!(s.stderr.wait_closed(DEADLINE));
    let line = s.stderr.last("udp-proxy stats:").unwrap_or_else(|| panic!("no stats line:\n{}", s.stderr.dump()));
    line.split_whitespace().filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.to_string(), v.parse().unwrap()))
        .collect()
}

fn stat(stats: &[(String, u64)], name: &str) -> u64 {
    stats.iter().find(|(k, _)| k == name).unwrap_or_else(|| panic!("no {name} in {stats:?}")).1
}

#[test]
fn quic_datagrams_go_both_ways_between_our_server_and_client() {
    let mut cmd = Command::new(c_program("datagrams"));
    cmd.current_dir(root().join("c-examples")).args(["cert.crt", "cert.key", "500"]);
    let r = run(cmd, Duration::from_secs(40));
    let out = String::from_utf8_lossy(&r.stdout);
    assert_eq!(r.code(), Some(0), "stdout:\n{out}\nstderr:\n{}", r.stderr);
    for line in ["echoed 500/500; client: sent=500 recv=500 dropped=0", "server: sent=500 recv=500 dropped=0",
                 "server without datagrams: datagrams are not enabled in this side's quiche_config",
                 "client to a server without datagrams: the peer does not accept QUIC datagrams", "ok"] {
        assert!(out.contains(line), "no {line:?} in:\n{out}");
    }
}

#[test]
fn aioquic_tunnels_udp_through_our_proxy_to_an_echo_and_back_intact() {
    let echo = Echo::start();
    let proxy = Server::ours("udp-proxy", &["--verbose"]);
    let r = aioquic_connect_udp(proxy.port, "127.0.0.1", echo.port, 300);
    assert_eq!(r.code(), Some(0), "aioquic:\n{}\nproxy:\n{}", r.stderr, proxy.stderr.dump());
    let out = String::from_utf8_lossy(&r.stdout);
    assert!(out.starts_with("echoed 300/300 bytes="), "{out}");
    assert!(proxy.stderr.wait_for("tunnel closed: outcome 0", DEADLINE), "the tunnel ended cleanly:\n{}",
            proxy.stderr.dump());
    assert_eq!(echo.echoed.load(Ordering::Relaxed), 300);
    let stats = proxy_stats(proxy);
    assert_eq!((stat(&stats, "tunnels"), stat(&stats, "to_target"), stat(&stats, "from_target")), (1, 300, 300),
               "{stats:?}");
    assert_eq!(stat(&stats, "dropped_to_target") + stat(&stats, "dropped_from_target"), 0, "{stats:?}");
}

#[test]
fn our_client_tunnels_udp_through_our_proxy_with_backpressure() {
    let echo = Echo::start();
    let proxy = Server::ours("udp-proxy", &[]);
    let r = connect_udp(proxy.port, echo.port, 1000, &[]);
    let out = String::from_utf8_lossy(&r.stdout);
    assert_eq!(r.code(), Some(0), "client:\n{out}{}\nproxy:\n{}", r.stderr, proxy.stderr.dump());
    assert!(out.contains("echoed 1000/1000 bytes="), "{out}");
    assert!(out.contains("tunnel done: outcome 0"), "the proxy ended its side: {out}");
    let stats = proxy_stats(proxy);
    assert_eq!((stat(&stats, "to_target"), stat(&stats, "from_target")), (1000, 1000), "{stats:?}");
}

#[test]
fn our_client_tunnels_udp_through_an_aioquic_proxy() {
    let echo = Echo::start();
    let s = aioquic_server("h3", &["--connect-udp"]);
    let r = connect_udp(s.port, echo.port, 300, &[]);
    let out = String::from_utf8_lossy(&r.stdout);
    assert_eq!(r.code(), Some(0), "client:\n{out}{}\naioquic:\n{}", r.stderr, s.stderr.dump());
    assert!(out.contains("echoed 300/300 bytes="), "{out}");
    assert!(s.stderr.wait_for("tunnel on stream 0 ended", DEADLINE), "{}", s.stderr.dump());
}

#[test]
fn http_datagrams_to_a_proxy_that_takes_none_give_the_documented_error() {
    let echo = Echo::start();
    let s = aioquic_server("h3", &["--connect-udp", "--no-datagrams"]);
    let r = connect_udp(s.port, echo.port, 10, &["unsupported"]);
    let out = String::from_utf8_lossy(&r.stdout);
    assert_eq!(r.code(), Some(0), "client:\n{out}{}\naioquic:\n{}", r.stderr, s.stderr.dump());
    assert!(out.contains("unsupported: the peer does not accept QUIC datagrams"), "{out}");
    assert_eq!(echo.echoed.load(Ordering::Relaxed), 0, "nothing went through");
}

#[test]
fn our_proxy_refuses_a_tunnel_from_a_client_that_takes_no_datagrams() {
    // aioquic without max_datagram_frame_size or SETTINGS_H3_DATAGRAM:
    // the proxy's request datagram length says UNSUPPORTED, and it answers
    // 400 with that reason (it carries no DATAGRAM capsules instead).
    let echo = Echo::start();
    let proxy = Server::ours("udp-proxy", &["--verbose"]);
    let r = aioquic_connect_udp_with(proxy.port, "127.0.0.1", echo.port, 1, &["--no-datagrams"]);
    assert_eq!(r.code(), Some(1), "aioquic:\n{}\nproxy:\n{}", r.stderr, proxy.stderr.dump());
    assert!(r.stderr.contains("got response: 400"), "{}", r.stderr);
    assert!(proxy.stderr.wait_for("400 the peer does not accept QUIC datagrams", DEADLINE), "{}", proxy.stderr.dump());
    let stats = proxy_stats(proxy);
    assert_eq!((stat(&stats, "tunnels"), stat(&stats, "refused")), (0, 1), "{stats:?}");
}

#[test]
fn our_proxy_refuses_a_target_off_loopback_and_a_plain_request() {
    let proxy = Server::ours("udp-proxy", &["--verbose"]);
    // TEST-NET-1: never contacted; refused before any socket is made.
    let r = aioquic_connect_udp(proxy.port, "192.0.2.1", 9, 1);
    assert_eq!(r.code(), Some(1), "aioquic:\n{}", r.stderr);
    assert!(r.stderr.contains("got response: 403"), "{}", r.stderr);
    let get = common::aioquic::aioquic_client("h3", proxy.port, &[], Some("/"));
    assert_eq!(get.code(), Some(1), "a GET is no tunnel: {}", get.stderr);
    assert!(get.stderr.contains("got header: :status=405"), "{}", get.stderr);
    let stats = proxy_stats(proxy);
    assert_eq!((stat(&stats, "tunnels"), stat(&stats, "refused")), (0, 2), "{stats:?}");
}
