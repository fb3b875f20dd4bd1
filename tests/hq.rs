//! hq-interop pairs: our server and client with each other and with
//! upstream's `server.c` / `client.c` built from the quiche package.

mod common;
use common::*;

#[test]
fn ours_to_ours_byez_with_vneg_and_retry() {
    let s = Server::ours("server", &[]);
    let r = our_client("client", s.port, &[]);
    assert_eq!(r.stdout, b"byez\n", "stderr:\n{}", r.stderr);
    assert_eq!(r.code(), Some(0));
    assert!(r.stderr.contains("connection established: hq-interop"), "{}", r.stderr);
    assert!(r.stderr.contains("connection closed, recv="), "{}", r.stderr);
    for ev in ["version negotiation", "stateless retry", "new connection"] {
        assert!(s.stderr.wait_for(ev, DEADLINE), "server never logged {ev:?}:\n{}", s.stderr.dump());
    }
}

#[test]
fn our_client_against_upstream_server() {
    let s = Server::upstream("quiche", "server");
    let r = our_client("client", s.port, &[]);
    assert_eq!(r.stdout, b"byez\n", "stderr:\n{}", r.stderr);
    assert_eq!(r.code(), Some(0));
}

#[test]
fn upstream_client_against_our_server() {
    let s = Server::ours("server", &[]);
    let r = upstream_client("quiche", "client", s.port);
    assert_eq!(r.stdout, b"byez\n", "client:\n{}\nserver:\n{}", tail(&r.stderr, 30), s.stderr.dump());
    assert!(s.stderr.wait_for("new connection", DEADLINE));
}

#[test]
fn upstream_samples_linked_against_libquiche_ev() {
    // libquiche_ev.a exports quiche's whole C API: upstream's own programs
    // link against it and still work.
    let s = Server::upstream("quiche-ev", "server");
    let r = upstream_client("quiche-ev", "client", s.port);
    assert_eq!(r.stdout, b"byez\n");
}

#[test]
fn root_serves_index_html_to_our_client() {
    // With --root the server maps the request path to a file; our client
    // asks for /index.html like upstream.
    let dir = tempdir("nul");
    std::fs::write(dir.join("index.html"), b"root index\n").unwrap();
    let s = Server::ours("server", &["--root", dir.to_str().unwrap()]);
    let r = our_client("client", s.port, &[]);
    assert_eq!(r.stdout, b"root index\n", "{}", r.stderr);
    assert_eq!(r.code(), Some(0));
}

#[test]
fn a_connection_is_freed_after_the_client_vanishes() {
    let s = Server::ours("server", &[]);
    // Start our client and kill it as soon as it is established, so it
    // never closes: the server must free the connection on idle timeout.
    let mut cmd = std::process::Command::new(ours("client"));
    cmd.env("QUICHE_EV_QUIET", "1").args(["127.0.0.1", &s.port.to_string()]);
    let mut child = cmd.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null())
        .spawn().unwrap();
    assert!(s.stderr.wait_for("new connection", DEADLINE));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(s.stderr.wait_for("connection freed, 0 left", DEADLINE),
            "the table never emptied:\n{}", s.stderr.dump());
}

#[test]
fn many_clients_in_turn_leave_an_empty_table() {
    let s = Server::ours("server", &[]);
    for _ in 0..5 {
        let r = our_client("client", s.port, &[]);
        assert_eq!(r.stdout, b"byez\n");
    }
    assert!(s.stderr.wait_for_n("connection freed", 5, DEADLINE), "{}", s.stderr.dump());
    assert_eq!(s.stderr.last("connection freed").unwrap(), "connection freed, 0 left");
}

#[test]
fn ipv6_loopback_pair() {
    for (srv, cli) in [("server", "client"), ("http3-server", "http3-client")] {
        let s = Server::ours_on(srv, "::1", &[], &[]);
        let mut cmd = std::process::Command::new(ours(cli));
        cmd.env("QUICHE_EV_QUIET", "1").args(["::1", &s.port.to_string()]);
        let r = run(cmd, DEADLINE);
        assert_eq!(r.stdout, b"byez\n", "{cli}: {}", r.stderr);
        assert_eq!(r.code(), Some(0));
    }
}
