//! An in-tree fuzz harness for the server's datagram entry point
//! (`Server::inject`: header parse, table lookup, version
//! negotiation, retry, token validation, `create_conn`, quiche), run by
//! `make test` for a bounded time (QUICHE_EV_FUZZ_SECS, default 5).
//!
//! Seeds are real: a client Initial without a token, and the one with the
//! token from our own Retry. Mutations flip bits, truncate, splice and
//! randomise. Any panic fails the test; the table must respect its bound.

mod common;
use common::inproc::InProc;
use common::Rng;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

#[test]
fn fuzz_the_datagram_entry_point() {
    let secs: u64 = std::env::var("QUICHE_EV_FUZZ_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(5);
    let mut t = InProc::new();
    t.set_max_conns(4);
    // Seeds: a client's first Initial (no token), the Retry, and the
    // Initial carrying our token.
    let (_client, initial, retry, with_token) = t.retry_flow();
    t.feed(&with_token, t.peer);
    assert_eq!(t.conn_count(), 1, "the token from our Retry is accepted");
    let peer = t.peer;
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
            t.feed(&pkt, from);
            runs += 1;
        }
        t.drain();
        assert!(t.conn_count() <= 4, "the connection bound was exceeded");
    }
    eprintln!("{runs} fuzzed datagrams in {secs} s, {} connections", t.conn_count());
    assert!(runs > 10_000);
}
