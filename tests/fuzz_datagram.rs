//! An in-tree fuzz harness for the server's datagram entry point
//! (`Server::handle_datagram`: header parse, table lookup, version
//! negotiation, retry, token validation, `create_conn`, quiche), run by
//! `make test` for a bounded time (QUICHE_EV_FUZZ_SECS, default 5).
//!
//! Seeds are real: a client Initial without a token, and the one with the
//! token from our own Retry. Mutations flip bits, truncate, splice and
//! randomise. Any panic fails the test; the table must respect its bound.

mod common;
use common::Rng;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use libev_sys::*;
use quiche_ev::app::{serve::Responder, ServerAppConfig};
use quiche_ev::server::Server;


fn config(server: bool) -> quiche::Config {
    let mut c = quiche::Config::new(quiche::PROTOCOL_VERSION).unwrap();
    c.set_application_protos(&[b"hq-interop"]).unwrap();
    c.set_max_idle_timeout(5000);
    c.set_initial_max_data(1_000_000);
    c.set_initial_max_stream_data_bidi_local(100_000);
    c.set_initial_max_stream_data_bidi_remote(100_000);
    c.set_initial_max_streams_bidi(10);
    if server {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/c-examples");
        c.load_cert_chain_from_pem_file(&format!("{dir}/cert.crt")).expect("run `make` first");
        c.load_priv_key_from_pem_file(&format!("{dir}/cert.key")).unwrap();
    }
    c
}

fn drain(sock: &UdpSocket) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = [0u8; 65535];
    while let Ok(n) = sock.recv(&mut buf) {
        got.push(buf[..n].to_vec());
    }
    got
}

#[test]
fn fuzz_the_datagram_entry_point() {
    let secs: u64 = std::env::var("QUICHE_EV_FUZZ_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(5);
    let srv_sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    srv_sock.set_nonblocking(true).unwrap();
    let local = srv_sock.local_addr().unwrap();
    let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
    sink.set_nonblocking(true).unwrap();
    let peer: SocketAddr = sink.local_addr().unwrap();

    let lp = unsafe { ev_loop_new(EVFLAG_AUTO) };
    let mut scfg = Box::new(config(true));
    let mut server = unsafe {
        Server::new(lp, srv_sock.as_raw_fd(), local, &mut *scfg,
                    ServerAppConfig::Hq { serve: Responder::byez() })
    };
    server.set_max_conns(4);

    // Seed 1: a client's first Initial (no token).
    let mut ccfg = config(false);
    let mut client = quiche::connect(None, &quiche::ConnectionId::from_ref(&[9; 16]), peer, local, &mut ccfg).unwrap();
    let mut out = [0u8; 1350];
    let (n, _) = client.send(&mut out).unwrap();
    let initial = out[..n].to_vec();
    server.handle_datagram(&mut initial.clone(), peer);
    server.flush_touched();
    let retry = drain(&sink).pop().expect("the server answers an Initial with a Retry");
    // Seed 2: the Initial carrying our token.
    client.recv(&mut retry.clone(), quiche::RecvInfo { from: local, to: peer }).unwrap();
    let (n, _) = client.send(&mut out).unwrap();
    let with_token = out[..n].to_vec();
    server.handle_datagram(&mut with_token.clone(), peer);
    server.flush_touched();
    assert_eq!(server.conn_count(), 1, "the token from our Retry is accepted");
    let seeds = [initial, with_token, retry];

    let mut rng = Rng(0x2545F4914F6CDD1D);
    let end = Instant::now() + Duration::from_secs(secs);
    let mut runs = 0u64;
    while Instant::now() < end {
        for _ in 0..256 {
            let mut pkt = seeds[rng.below(seeds.len())].clone();
            match rng.below(5) {
                0 => {
                    for _ in 0..1 + rng.below(8) {
                        let at = rng.below(pkt.len());
                        pkt[at] ^= 1 << rng.below(8);
                    }
                }
                1 => pkt.truncate(rng.below(pkt.len())),
                2 => {
                    let at = rng.below(pkt.len());
                    let len = rng.below(64);
                    let junk: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                    pkt.splice(at..at, junk);
                }
                3 => pkt = (0..rng.below(1500)).map(|_| rng.next() as u8).collect(),
                _ => {
                    // Header fields only: first bytes randomised.
                    for b in pkt.iter_mut().take(1 + rng.below(24)) {
                        *b = rng.next() as u8;
                    }
                }
            }
            let from = if rng.below(4) == 0 {
                SocketAddr::from(([127, 0, 0, 1 + rng.below(200) as u8], 1 + rng.below(65000) as u16))
            } else {
                peer
            };
            server.handle_datagram(&mut pkt, from);
            runs += 1;
        }
        server.flush_touched();
        drain(&sink);
        assert!(server.conn_count() <= 4, "the connection bound was exceeded");
    }
    eprintln!("{runs} fuzzed datagrams in {secs} s, {} connections", server.conn_count());
    assert!(runs > 10_000);
    drop(server);
    unsafe { ev_loop_destroy(lp) };
}
