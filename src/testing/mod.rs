//! Test support inside the crate: in-memory quiche pairs, and fake
//! platforms (loop, network, connection) on which the handles run under
//! Miri: a scripted connection for the transport's lifecycle
//! (`scripted`), and an in-memory QUIC with streams and an HTTP/3-like
//! framing (`wire`, `fake_h3`) on which the application layer and the C
//! API run end to end (`model_tests`).

pub mod fake_h3;
pub mod fake_loop;
pub mod fake_net;
pub mod script;
pub mod scripted;
pub mod wire;
pub mod world;

use std::net::SocketAddr;

use quiche::{ConnectionId, RecvInfo};

pub use fake_loop::{FakeLoop, Ran};
pub use fake_net::{FakeIo, Net};
pub use scripted::*;
pub use wire::FakePlatform;

impl crate::observe::LogKeys for () {
    fn log_keys(&mut self) {}
}

/// A quiche config for in-memory pairs (hq-interop, generous limits).
pub fn config(server: bool) -> quiche::Config {
    let mut c = quiche::Config::new(quiche::PROTOCOL_VERSION).unwrap();
    c.set_application_protos(&[b"hq-interop"]).unwrap();
    c.set_initial_max_data(10_000_000);
    c.set_initial_max_stream_data_bidi_local(10_000_000);
    c.set_initial_max_stream_data_bidi_remote(10_000_000);
    c.set_initial_max_streams_bidi(10);
    c.set_max_idle_timeout(5000);
    if server {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/c-examples");
        c.load_cert_chain_from_pem_file(&format!("{dir}/cert.crt")).expect("run `make` first");
        c.load_priv_key_from_pem_file(&format!("{dir}/cert.key")).unwrap();
    }
    c
}

/// A connected-to-be client and server, with their addresses.
pub fn pair() -> (quiche::Connection, quiche::Connection, SocketAddr, SocketAddr) {
    // Pacing would hold packets for real time; most tests are not about it.
    pair_with(|c, _| c.enable_pacing(false))
}

/// The `now` to flush a connection of [`pair`] (no pacing) with: a second
/// ahead. quiche dates each packet it builds with the clock it reads then,
/// so a test thread descheduled for over a millisecond between reading the
/// clock and the flush would see that packet as due later and held.
pub fn unpaced_now() -> std::time::Instant {
    std::time::Instant::now() + std::time::Duration::from_secs(1)
}

/// As [`pair`], with `tune(config, is_server)` applied to both configs.
pub fn pair_with(tune: impl Fn(&mut quiche::Config, bool)) -> (quiche::Connection, quiche::Connection, SocketAddr,
                                                               SocketAddr) {
    let (a, b): (SocketAddr, SocketAddr) = ("127.0.0.1:1".parse().unwrap(), "127.0.0.1:2".parse().unwrap());
    let mut cc = config(false);
    let mut sc = config(true);
    tune(&mut cc, false);
    tune(&mut sc, true);
    let client = quiche::connect(None, &ConnectionId::from_ref(&[1; 16]), a, b, &mut cc).unwrap();
    let server = quiche::accept(&ConnectionId::from_ref(&[2; 16]), None, b, a, &mut sc).unwrap();
    (client, server, a, b)
}

/// Moves packets both ways until the handshake is done.
pub fn handshake(c: &mut quiche::Connection, s: &mut quiche::Connection, a: SocketAddr, b: SocketAddr) {
    let mut buf = [0u8; 1500];
    for _ in 0..10 {
        while let Ok((n, _)) = c.send(&mut buf) {
            s.recv(&mut buf[..n], RecvInfo { from: a, to: b }).unwrap();
        }
        while let Ok((n, _)) = s.send(&mut buf) {
            c.recv(&mut buf[..n], RecvInfo { from: b, to: a }).unwrap();
        }
    }
    assert!(c.is_established() && s.is_established());
}

