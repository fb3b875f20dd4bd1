//! A flood of junk datagrams at a live server (its own test binary, so the
//! load does not disturb other tests).

mod common;
use common::*;
use std::net::UdpSocket;
use std::process::{Command, Stdio};

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}


#[test]
fn a_flood_of_junk_leaves_the_server_up_and_bounded() {
    let s = Server::ours("server", &[]);
    let pid = s.child.id();
    assert_eq!(our_client("client", s.port, &[]).stdout, b"byez\n");
    let rss_before = rss_kib(pid);

    // A well-formed client Initial to mutate: capture our own client's.
    let trap = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut cl = Command::new(ours("client")).env("QUICHE_EV_QUIET", "1")
        .args(["127.0.0.1", &trap.local_addr().unwrap().port().to_string()])
        .stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    trap.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut initial = vec![0u8; 2048];
    let n = trap.recv(&mut initial).unwrap();
    initial.truncate(n);
    cl.kill().unwrap();
    cl.wait().unwrap();

    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut rng = Rng(0x9e3779b97f4a7c15);
    let mut sent = 0;
    for i in 0..300_000u32 {
        let mut pkt = match i % 3 {
            0 => (0..(rng.next() % 1400) as usize).map(|_| rng.next() as u8).collect(),
            1 => initial[..(rng.next() as usize % initial.len())].to_vec(),
            _ => {
                let mut p = initial.clone();
                for _ in 0..4 {
                    let at = rng.next() as usize % p.len();
                    p[at] ^= rng.next() as u8;
                }
                p
            }
        };
        if i % 1000 == 0 {
            // Now and then the real thing with a forged upstream-style token.
            pkt = initial.clone();
        }
        if sock.send_to(&pkt, ("127.0.0.1", s.port)).is_ok() {
            sent += 1;
        }
    }
    assert!(sent > 250_000);
    // The server is still serving, right after.
    let r = our_client("client", s.port, &[]);
    assert_eq!(r.stdout, b"byez\n", "{}", r.stderr);
    let rss_after = rss_kib(pid);
    assert!(rss_after < rss_before + 32 * 1024,
            "RSS grew from {rss_before} KiB to {rss_after} KiB under junk");
    // Mutated Initials carry no valid token: no connection was created.
    assert_eq!(s.stderr.count_exact("new connection"), 2, "{}", s.stderr.dump());
}

