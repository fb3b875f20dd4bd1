//! Interop with ngtcp2/nghttp3 (Debian's ngtcp2-server and ngtcp2-client,
//! the GnuTLS builds `gtlsserver` / `gtlsclient`): our http3-client
//! downloads a file that gtlsserver serves, and gtlsclient fetches from our
//! http3-server.

mod common;
use common::ngtcp2::*;
use common::*;
use std::path::Path;
use std::process::Command;

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()))
}

// ---- our client, ngtcp2's server ----------------------------------------

#[test]
fn our_h3_client_downloads_a_file_from_gtlsserver() {
    let dir = tempdir("ngtcp2-htdocs");
    let data = pattern(20_000);
    std::fs::write(dir.join("data.bin"), &data).unwrap();
    let s = gtlsserver(&dir, &[]);
    let r = our_client("http3-client", s.port, &["/data.bin"]);
    assert_eq!(r.code(), Some(0), "stderr:\n{}", r.stderr);
    assert_eq!(r.stdout.len(), data.len(), "stderr:\n{}", r.stderr);
    assert!(r.stdout == data, "body differs from the file (first difference at byte {:?})",
            r.stdout.iter().zip(&data).position(|(a, b)| a != b));
    for line in ["connection established: h3", "got HTTP header: :status=200",
                 "got HTTP header: content-length=20000", "connection closed, recv="] {
        assert!(r.stderr.contains(line), "client never logged {line:?}:\n{}", r.stderr);
    }
}

#[test]
fn our_h3_client_follows_gtlsserver_retry() {
    // gtlsserver -V does stateless address validation (a Retry), so our
    // client handles an independent implementation's Retry and token.
    let dir = tempdir("ngtcp2-htdocs-v");
    let data = pattern(3000);
    std::fs::write(dir.join("small.bin"), &data).unwrap();
    let s = gtlsserver(&dir, &["-V"]);
    let r = our_client("http3-client", s.port, &["/small.bin"]);
    assert_eq!(r.code(), Some(0), "stderr:\n{}", r.stderr);
    assert!(r.stdout == data, "body differs ({} bytes, want {}); stderr:\n{}",
            r.stdout.len(), data.len(), r.stderr);
}

#[test]
fn our_h3_client_downloads_two_megabytes_from_gtlsserver() {
    // Large enough that gtlsserver sends GSO bursts, which arrive here
    // coalesced by UDP GRO and must be split back into packets.
    let dir = tempdir("ngtcp2-htdocs-2m");
    let data = pattern(2_000_000);
    std::fs::write(dir.join("two.bin"), &data).unwrap();
    let s = gtlsserver(&dir, &[]);
    let r = our_client("http3-client", s.port, &["/two.bin"]);
    assert_eq!(r.code(), Some(0), "stderr:\n{}", r.stderr);
    assert!(r.stdout == data, "body differs ({} bytes, want {}); stderr:\n{}",
            r.stdout.len(), data.len(), r.stderr);
}

#[test]
fn our_h3_client_on_the_plain_io_path_downloads_from_gtlsserver() {
    // QUICHE_EV_PLAIN_IO=1: recvfrom, one datagram per call. The socket
    // must then not have UDP GRO on, or gtlsserver's GSO bursts arrive as
    // one coalesced datagram that quiche cannot split, and the download
    // stalls after the first packet of the body.
    let dir = tempdir("ngtcp2-htdocs-plain");
    let data = pattern(200_000);
    std::fs::write(dir.join("plain.bin"), &data).unwrap();
    let s = gtlsserver(&dir, &[]);
    let mut cmd = Command::new(ours("http3-client"));
    cmd.env("QUICHE_EV_QUIET", "1").env("QUICHE_EV_PLAIN_IO", "1")
        .args(["127.0.0.1", &s.port.to_string(), "/plain.bin"]);
    let r = run(cmd, DEADLINE);
    assert_eq!(r.code(), Some(0), "got {} of {} bytes; stderr:\n{}", r.stdout.len(), data.len(), r.stderr);
    assert!(r.stdout == data, "body differs ({} bytes, want {}); stderr:\n{}",
            r.stdout.len(), data.len(), r.stderr);
}

// ---- ngtcp2's client, our server ----------------------------------------

#[test]
fn gtlsclient_gets_byez_from_our_h3_server() {
    let s = Server::ours("http3-server", &[]);
    let (r, dl) = gtlsclient(s.port, &[], &["/"], "ngtcp2-dl");
    assert_eq!(r.code(), Some(0), "gtlsclient stderr:\n{}\nserver:\n{}", r.stderr, s.stderr.dump());
    // A path without a file name is saved as index.html.
    assert_eq!(read(&dl.join("index.html")), b"byez\n");
    for ev in ["stateless retry", "new connection", "got HTTP header: :method=GET",
               "got HTTP header: :path=/", "got HTTP header: user-agent=nghttp3/ngtcp2 client",
               "connection closed, recv="] {
        assert!(s.stderr.wait_for(ev, DEADLINE), "server never logged {ev:?}:\n{}", s.stderr.dump());
    }
}

#[test]
fn gtlsclient_with_unknown_version_and_three_streams() {
    // gtlsclient starts with a version we do not speak, so our server
    // answers with version negotiation; then three requests share the
    // connection.
    let s = Server::ours("http3-server", &[]);
    let (r, dl) = gtlsclient(s.port, &["-v", "0x1a2a3a4a", "--preferred-versions", "v1"],
                             &["/a.txt", "/b.txt", "/c.txt"], "ngtcp2-dl3");
    assert_eq!(r.code(), Some(0), "gtlsclient stderr:\n{}\nserver:\n{}", r.stderr, s.stderr.dump());
    for f in ["a.txt", "b.txt", "c.txt"] {
        assert_eq!(read(&dl.join(f)), b"byez\n", "{f}");
    }
    for ev in ["version negotiation", "stateless retry", "new connection"] {
        assert!(s.stderr.wait_for(ev, DEADLINE), "server never logged {ev:?}:\n{}", s.stderr.dump());
    }
    assert!(s.stderr.wait_for_n("got HTTP header: :method=GET", 3, DEADLINE), "{}", s.stderr.dump());
}

#[test]
fn gtlsclient_downloads_from_our_server_through_a_nat_that_rebinds() {
    // ngtcp2's client behind a NAT (the relay) whose port mapping changes
    // mid-download, the old one dropped: our server must follow it.
    let dir = tempdir("ngtcp2-rebind");
    let data = pattern(30 << 20);
    std::fs::write(dir.join("big"), &data).unwrap();
    let s = Server::ours("http3-server", &["--root", dir.to_str().unwrap()]);
    let relay = common::relay::Relay::start(s.port, &["--rebind", "port:4MB"]);
    let (r, dl) = gtlsclient(relay.port, &[], &["/big"], "ngtcp2-rebind-dl");
    let stats = relay.stop();
    assert_eq!(r.code(), Some(0), "{}\nrelay: {stats}", r.stderr);
    assert!(read(&dl.join("big")) == data, "the file arrived intact");
    assert_eq!(common::relay::Relay::stat(&stats, "rebinds"), 1, "{stats}");
    assert!(s.stderr.wait_for("connection migrated to 127.0.0.1:", DEADLINE), "{}", s.stderr.dump());
}
