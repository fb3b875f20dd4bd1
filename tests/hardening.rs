//! Hardening that shows from outside: descriptors stay flat, the
//! connection bound holds, floods of junk do not hurt, signals shut down
//! cleanly, and clients say why they failed.

mod common;
use common::*;
use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::time::Duration;

fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count()
}


#[test]
fn descriptors_stay_flat_across_retries() {
    let s = Server::ours("server", &[]);
    let pid = s.child.id();
    assert_eq!(our_client("client", s.port, &[]).stdout, b"byez\n");
    let before = fd_count(pid);
    for _ in 0..40 {
        assert_eq!(our_client("client", s.port, &[]).stdout, b"byez\n");
    }
    assert!(s.stderr.wait_for_n("stateless retry", 40, DEADLINE));
    assert_eq!(fd_count(pid), before, "the server leaked descriptors");
}

#[test]
fn upstream_leaks_a_descriptor_per_retry() {
    // The baseline the test above guards against: upstream's gen_cid.
    // (Our client: upstream's own sometimes hangs after closing, when
    // quiche's timeout is 0 and ev_timer_again with repeat 0 stops its
    // timer; see the README.)
    let s = Server::upstream("quiche", "server");
    let pid = s.child.id();
    assert_eq!(our_client("client", s.port, &[]).stdout, b"byez\n");
    let before = fd_count(pid);
    for _ in 0..5 {
        assert_eq!(our_client("client", s.port, &[]).stdout, b"byez\n");
    }
    assert!(fd_count(pid) >= before + 5, "upstream no longer leaks: update the README");
}

#[test]
fn connection_limit_refuses_new_connections_cleanly() {
    let s = Server::ours("server", &["--max-conns", "1"]);
    // A client that is stopped mid-connection keeps its slot until the
    // server's idle timeout.
    let mut held = Command::new(ours("client"))
        .env("QUICHE_EV_QUIET", "1").args(["127.0.0.1", &s.port.to_string(), "/x"])
        .stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    assert!(s.stderr.wait_for("new connection", DEADLINE));
    unsafe { libc::kill(held.id() as i32, libc::SIGSTOP) };

    let r = our_client("client", s.port, &[]);
    assert_eq!(r.code(), Some(1), "{}", r.stderr);
    assert!(s.stderr.has("connection limit (1) reached, new connection refused"), "{}", s.stderr.dump());
    assert_eq!(s.stderr.count_exact("new connection"), 1, "no state for the refused one");

    held.kill().unwrap();
    held.wait().unwrap();
    assert!(s.stderr.wait_for("connection freed, 0 left", DEADLINE), "{}", s.stderr.dump());
    assert_eq!(our_client("client", s.port, &[]).stdout, b"byez\n");
}


#[test]
fn sigint_interrupts_a_client_with_status_1() {
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let mut c = Command::new(ours("client"))
        .env("QUICHE_EV_QUIET", "1").args(["127.0.0.1", &port.to_string()])
        .stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let err = lines_of(c.stderr.take().unwrap());
    // The first Initial arriving means the loop (and its signal watchers)
    // is up.
    silent.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut buf = [0u8; 2048];
    silent.recv(&mut buf).unwrap();
    unsafe { libc::kill(c.id() as i32, libc::SIGINT) };
    let st = wait_child(&mut c, Duration::from_secs(3)).expect("client ignored SIGINT");
    assert_eq!(st.code(), Some(1));
    assert!(err.wait_for("error: interrupted", DEADLINE), "{}", err.dump());
}

