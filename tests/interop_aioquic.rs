//! Interop with aioquic, an independent QUIC and HTTP/3 stack in Python:
//! our clients against an aioquic server and an aioquic client against our
//! servers, for hq-interop and for h3. The aioquic side is the small peer
//! in `tests/peers/aioquic_peer.py`, run with the venv `make peers` makes.

mod common;
use common::aioquic::*;
use common::*;

// ---- hq-interop ---------------------------------------------------------

#[test]
fn our_hq_client_against_aioquic_server() {
    let s = aioquic_server("hq-interop", &[]);
    let r = our_client("client", s.port, &[]);
    assert_eq!(r.stdout, b"byez\n", "stderr:\n{}\naioquic:\n{}", r.stderr, s.stderr.dump());
    assert_eq!(r.code(), Some(0), "stderr:\n{}", r.stderr);
    assert!(r.stderr.contains("connection established: hq-interop"), "{}", r.stderr);
    // The independent server saw our HTTP/0.9 request on stream 4.
    assert!(s.stderr.wait_for("request on stream 4: GET /index.html", DEADLINE),
            "aioquic never got our request:\n{}", s.stderr.dump());
}

#[test]
fn our_hq_client_against_aioquic_server_with_retry() {
    // aioquic's own stateless retry, handled by our client.
    let s = aioquic_server("hq-interop", &["--retry"]);
    let r = our_client("client", s.port, &[]);
    assert_eq!(r.stdout, b"byez\n", "stderr:\n{}\naioquic:\n{}", r.stderr, s.stderr.dump());
    assert_eq!(r.code(), Some(0), "stderr:\n{}", r.stderr);
}

#[test]
fn aioquic_hq_client_against_our_server() {
    let s = Server::ours("server", &[]);
    let r = aioquic_client("hq-interop", s.port, &[], None);
    assert_eq!(r.stdout, b"byez\n", "aioquic stderr:\n{}\nserver:\n{}", r.stderr, s.stderr.dump());
    assert_eq!(r.code(), Some(0), "aioquic stderr:\n{}", r.stderr);
    for ev in ["stateless retry", "new connection", "connection closed, recv="] {
        assert!(s.stderr.wait_for(ev, DEADLINE), "server never logged {ev:?}:\n{}", s.stderr.dump());
    }
}

// ---- HTTP/3 -------------------------------------------------------------

#[test]
fn our_h3_client_against_aioquic_server() {
    let s = aioquic_server("h3", &[]);
    let r = our_client("http3-client", s.port, &[]);
    assert_eq!(r.stdout, b"byez\n", "stderr:\n{}\naioquic:\n{}", r.stderr, s.stderr.dump());
    assert_eq!(r.code(), Some(0), "stderr:\n{}", r.stderr);
    for line in ["connection established: h3", "got HTTP header: :status=200",
                 "got HTTP header: server=aioquic-peer", "got HTTP header: content-length=5"] {
        assert!(r.stderr.contains(line), "client never logged {line:?}:\n{}", r.stderr);
    }
    assert!(s.stderr.wait_for("request on stream 0: GET /", DEADLINE),
            "aioquic never got our request:\n{}", s.stderr.dump());
}

#[test]
fn our_h3_client_against_aioquic_server_with_retry() {
    let s = aioquic_server("h3", &["--retry"]);
    let r = our_client("http3-client", s.port, &[]);
    assert_eq!(r.stdout, b"byez\n", "stderr:\n{}\naioquic:\n{}", r.stderr, s.stderr.dump());
    assert_eq!(r.code(), Some(0), "stderr:\n{}", r.stderr);
}

#[test]
fn aioquic_h3_client_against_our_server() {
    let s = Server::ours("http3-server", &[]);
    let r = aioquic_client("h3", s.port, &[], None);
    assert_eq!(r.stdout, b"byez\n", "aioquic stderr:\n{}\nserver:\n{}", r.stderr, s.stderr.dump());
    assert_eq!(r.code(), Some(0), "aioquic stderr:\n{}", r.stderr);
    for line in ["got header: :status=200", "got header: server=quiche", "got header: content-length=5"] {
        assert!(r.stderr.contains(line), "aioquic never got {line:?}:\n{}", r.stderr);
    }
    for ev in ["stateless retry", "new connection", "got HTTP header: :method=GET",
               "got HTTP header: :path=/", "got HTTP header: user-agent=aioquic-peer",
               "connection closed, recv="] {
        assert!(s.stderr.wait_for(ev, DEADLINE), "server never logged {ev:?}:\n{}", s.stderr.dump());
    }
}

// ---- larger bodies ------------------------------------------------------

/// aioquic (`alpn`) downloads a 2 MB file from our server `name` started
/// with `--root`, on the batched or the plain datagram path.
fn aioquic_downloads_large_file(name: &str, alpn: &str, plain_io: bool) {
    let dir = tempdir(&format!("aioquic-root-{alpn}-{plain_io}"));
    let data = pattern(2_000_000);
    std::fs::write(dir.join("big.bin"), &data).unwrap();
    let env: &[(&str, &str)] = if plain_io { &[("QUICHE_EV_PLAIN_IO", "1")] } else { &[] };
    let s = Server::ours_env(name, &["--root", dir.to_str().unwrap()], env);
    let r = aioquic_client(alpn, s.port, &[], Some("/big.bin"));
    assert_eq!(r.code(), Some(0), "got {} bytes; aioquic stderr:\n{}\nserver:\n{}",
               r.stdout.len(), r.stderr, s.stderr.dump());
    assert!(r.stdout == data, "body differs ({} bytes, want {})", r.stdout.len(), data.len());
}

#[test]
fn aioquic_hq_client_downloads_two_megabytes_from_our_server() {
    aioquic_downloads_large_file("server", "hq-interop", false);
}

#[test]
fn aioquic_h3_client_downloads_two_megabytes_from_our_server() {
    aioquic_downloads_large_file("http3-server", "h3", false);
}

#[test]
fn aioquic_h3_client_downloads_two_megabytes_from_our_plain_io_server() {
    aioquic_downloads_large_file("http3-server", "h3", true);
}
