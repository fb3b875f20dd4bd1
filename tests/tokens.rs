//! Address validation tokens: only our own, fresh, for this client's
//! address and the Retry's connection ID, make a connection.

mod common;
use common::aioquic::aioquic_client;
use common::inproc::InProc;
use common::*;
use std::net::SocketAddr;
use std::time::Duration;

#[test]
fn our_token_makes_a_connection_only_from_its_address() {
    let mut t = InProc::new();
    let (_c, _initial, _retry, with_token) = t.retry_flow();
    // Same token, other source port, then other source address.
    let other_port = SocketAddr::new(t.peer.ip(), t.peer.port().wrapping_add(1).max(1));
    t.feed(&with_token, other_port);
    t.feed(&with_token, "127.0.0.2:4444".parse().unwrap());
    assert_eq!(t.conn_count(), 0, "a token was accepted from another address");
    t.feed(&with_token, t.peer);
    assert_eq!(t.conn_count(), 1);
}

#[test]
fn tokens_expire() {
    let mut t = InProc::new();
    t.set_token_lifetime(Duration::from_millis(50));
    let (_c, _initial, _retry, with_token) = t.retry_flow();
    // Waiting past a fixed lifetime, not for an event: this is the event.
    std::thread::sleep(Duration::from_millis(120));
    t.feed(&with_token, t.peer);
    assert_eq!(t.conn_count(), 0, "an expired token was accepted");
    let (_c, _initial, _retry, fresh) = t.retry_flow();
    t.feed(&fresh, t.peer);
    assert_eq!(t.conn_count(), 1);
}

#[test]
fn an_altered_token_is_refused() {
    let mut t = InProc::new();
    let (_c, _initial, _retry, with_token) = t.retry_flow();
    // The token sits after the long header, the CIDs and its length
    // varint; flipping any byte of the datagram's first 100 either breaks
    // the header, the token, or the packet protection: never a connection.
    for i in 6..100 {
        let mut bad = with_token.clone();
        bad[i] ^= 0x01;
        t.feed(&bad, t.peer);
    }
    assert_eq!(t.conn_count(), 0);
}

#[test]
fn a_forged_upstream_style_token_from_aioquic_is_refused() {
    // Upstream's format: "quiche" || sockaddr || original DCID, with no
    // authentication; upstream's server accepts any such token. Ours
    // refuses it with INVALID_TOKEN (RFC 9000 §8.1.2) and makes no
    // connection.
    let s = Server::ours("server", &[]);
    let mut forged = b"quiche".to_vec();
    forged.extend_from_slice(&[2, 0, 0x30, 0x39, 127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
    forged.extend_from_slice(&[0xab; 8]);
    let hex: String = forged.iter().map(|b| format!("{b:02x}")).collect();
    let r = aioquic_client("hq-interop", s.port, &["--token", &hex, "--timeout", "3"], None);
    assert_ne!(r.code(), Some(0), "the forged token got an answer: {}", r.stderr);
    assert!(r.stdout.is_empty());
    assert!(s.stderr.has("invalid address validation token"), "{}", s.stderr.dump());
    assert_eq!(s.stderr.count_exact("new connection"), 0);
    assert!(!s.stderr.has("stateless retry"), "a token-bearing Initial is not retried");
}
