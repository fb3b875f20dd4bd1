//! HTTP/3 pairs: our http3-server and http3-client with each other and
//! with upstream's `http3-server.c` / `http3-client.c`, and error answers.

mod common;
use common::*;
use std::fs::OpenOptions;
use std::io::Read;
use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;

#[test]
fn ours_to_ours_byez_with_headers_logged() {
    let s = Server::ours("http3-server", &[]);
    let r = our_client("http3-client", s.port, &[]);
    assert_eq!(r.stdout, b"byez\n", "stderr:\n{}", r.stderr);
    assert_eq!(r.code(), Some(0));
    for line in ["connection established: h3", "sent HTTP request 0", "got HTTP/3 SETTING: ",
                 "got HTTP header: :status=200", "got HTTP header: server=quiche",
                 "got HTTP header: content-length=5", "connection closed, recv="] {
        assert!(r.stderr.contains(line), "client never logged {line:?}:\n{}", r.stderr);
    }
    for line in ["version negotiation", "stateless retry", "new connection",
                 "got HTTP header: :method=GET", "got HTTP header: :path=/",
                 "got HTTP header: :authority=127.0.0.1", "got HTTP header: user-agent=quiche"] {
        assert!(s.stderr.wait_for(line, DEADLINE), "server never logged {line:?}:\n{}", s.stderr.dump());
    }
}

#[test]
fn our_client_against_upstream_http3_server() {
    let s = Server::upstream("quiche", "http3-server");
    let r = our_client("http3-client", s.port, &[]);
    assert_eq!(r.stdout, b"byez\n", "stderr:\n{}", r.stderr);
    assert_eq!(r.code(), Some(0));
}

#[test]
fn upstream_http3_client_against_our_server() {
    let s = Server::ours("http3-server", &[]);
    let r = upstream_client("quiche", "http3-client", s.port);
    assert_eq!(r.stdout, b"byez\n");
    assert!(s.stderr.wait_for("got HTTP header: user-agent=quiche", DEADLINE));
}

#[test]
fn upstream_http3_samples_linked_against_libquiche_ev() {
    let s = Server::upstream("quiche-ev", "http3-server");
    let r = upstream_client("quiche-ev", "http3-client", s.port);
    assert_eq!(r.stdout, b"byez\n");
}

#[test]
fn status_404_makes_the_client_fail() {
    let dir = tempdir("h3-404");
    let s = Server::ours("http3-server", &["--root", dir.to_str().unwrap()]);
    let r = our_client("http3-client", s.port, &["/missing.txt"]);
    assert_eq!(r.code(), Some(1), "{}", r.stderr);
    assert!(r.stderr.contains("request for /missing.txt failed: server answered status 404"), "{}", r.stderr);
}

#[test]
fn a_reset_request_makes_the_client_fail() {
    // The hq-interop server resets the stream of a missing file.
    let dir = tempdir("hq-reset");
    let s = Server::ours("server", &["--root", dir.to_str().unwrap()]);
    let r = our_client("client", s.port, &["/missing.txt"]);
    assert_eq!(r.code(), Some(1), "{}", r.stderr);
    assert!(r.stderr.contains("request was reset"), "{}", r.stderr);
}

#[test]
fn garbage_does_not_stop_the_http3_server() {
    // Upstream's http3-server returns from recv_cb on the first datagram
    // it cannot parse, dropping whatever else was queued; ours skips it.
    let s = Server::ours_env("http3-server", &[], &[("QUICHE_EV_LOG", "debug")]);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    for _ in 0..50 {
        sock.send_to(b"\x00junk", ("127.0.0.1", s.port)).unwrap();
    }
    let r = our_client("http3-client", s.port, &[]);
    assert_eq!(r.stdout, b"byez\n", "{}", r.stderr);
    assert!(s.stderr.has("packet for unknown connection dropped"), "{}", s.stderr.dump());
}

#[test]
fn closed_connections_are_freed_with_their_http3_state() {
    let s = Server::ours("http3-server", &[]);
    for _ in 0..3 {
        assert_eq!(our_client("http3-client", s.port, &[]).stdout, b"byez\n");
    }
    assert!(s.stderr.wait_for_n("connection freed", 3, DEADLINE), "{}", s.stderr.dump());
    assert_eq!(s.stderr.last("connection freed").unwrap(), "connection freed, 0 left");
}

#[test]
fn a_fifo_under_the_root_gets_404_and_does_not_block_the_server() {
    // A FIFO nobody writes: a blocking open() would wait for a writer and
    // stop the whole loop (every connection). It is answered 404 at once,
    // while another client's download is under way: that client writes
    // to a pipe the test drains only after the 404, so its response is
    // still being sent when /fifo is asked for.
    let dir = tempdir("h3-fifo");
    let data = pattern(8 << 20);
    std::fs::write(dir.join("big"), &data).unwrap();
    let mkfifo = |p: &std::path::Path| {
        let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    };
    mkfifo(&dir.join("fifo"));
    let pipe = dir.join("pipe");
    mkfifo(&pipe);
    let mut drain = OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(&pipe).unwrap();
    let s = Server::ours("http3-server", &["--root", dir.to_str().unwrap()]);
    let mut cmd = our_command("http3-client");
    cmd.arg("--output").arg(&pipe).args(["127.0.0.1", &s.port.to_string(), "/big"]);
    let download = std::thread::spawn(move || run(cmd, DEADLINE));
    assert!(s.stderr.wait_for("got HTTP header: :path=/big", DEADLINE), "{}", s.stderr.dump());

    let r = our_client("http3-client", s.port, &["/fifo"]);
    assert_eq!(r.code(), Some(1), "{}\nserver:\n{}", r.stderr, s.stderr.dump());
    assert!(r.stderr.contains("request for /fifo failed: server answered status 404"), "{}", r.stderr);

    let fd = drain.as_raw_fd();
    assert_eq!(unsafe { libc::fcntl(fd, libc::F_SETFL, libc::fcntl(fd, libc::F_GETFL) & !libc::O_NONBLOCK) }, 0);
    let mut got = Vec::new();
    drain.read_to_end(&mut got).unwrap();
    let d = download.join().unwrap();
    assert_eq!(d.code(), Some(0), "{}\nserver:\n{}", d.stderr, s.stderr.dump());
    assert!(got == data, "the concurrent download arrived intact ({} of {} bytes)", got.len(), data.len());
}
