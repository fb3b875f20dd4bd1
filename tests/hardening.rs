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

