//! Bad input gets a clear error and the right exit status; the server
//! survives garbage.

mod common;
use common::*;
use std::net::UdpSocket;
use std::process::Command;
use std::time::Duration;

#[test]
fn no_arguments_prints_usage_and_exits_2() {
    for name in ["server", "client", "http3-server", "http3-client"] {
        let r = run(Command::new(ours(name)), DEADLINE);
        assert_eq!(r.code(), Some(2), "{name}: {}", r.stderr);
        assert!(r.stderr.starts_with("usage: "), "{name}: {}", r.stderr);
        let r = run({ let mut c = Command::new(ours(name)); c.args(["127.0.0.1"]); c }, DEADLINE);
        assert_eq!(r.code(), Some(2), "{name} with one argument: {}", r.stderr);
        let r = run({ let mut c = Command::new(ours(name)); c.args(["--bogus", "a", "b"]); c }, DEADLINE);
        assert_eq!(r.code(), Some(2), "{name} with an unknown option: {}", r.stderr);
    }
}

#[test]
fn unresolvable_host_is_a_clear_error() {
    for name in ["server", "client"] {
        let mut c = Command::new(ours(name));
        c.current_dir(root().join("c-examples")).env("QUICHE_EV_QUIET", "1")
            .args(["no-such-host.invalid", "4433"]);
        let r = run(c, DEADLINE);
        assert_eq!(r.code(), Some(1), "{name}: {}", r.stderr);
        assert!(r.stderr.contains("failed to resolve host no-such-host.invalid"), "{name}: {}", r.stderr);
    }
}

#[test]
fn missing_or_bad_cert_names_the_file() {
    let dir = tempdir("cert");
    let mut c = Command::new(ours("server"));
    c.current_dir(&dir).env("QUICHE_EV_QUIET", "1").args(["127.0.0.1", "0"]);
    let r = run(c, DEADLINE);
    assert_eq!(r.code(), Some(1), "{}", r.stderr);
    assert!(r.stderr.contains("./cert.crt"), "{}", r.stderr);

    std::fs::copy(root().join("c-examples/cert.crt"), dir.join("cert.crt")).unwrap();
    let mut c = Command::new(ours("http3-server"));
    c.current_dir(&dir).env("QUICHE_EV_QUIET", "1").args(["127.0.0.1", "0"]);
    let r = run(c, DEADLINE);
    assert_eq!(r.code(), Some(1), "{}", r.stderr);
    assert!(r.stderr.contains("./cert.key"), "{}", r.stderr);

    std::fs::write(dir.join("cert.key"), b"not a key").unwrap();
    let mut c = Command::new(ours("server"));
    c.current_dir(&dir).env("QUICHE_EV_QUIET", "1").args(["127.0.0.1", "0"]);
    let r = run(c, DEADLINE);
    assert_eq!(r.code(), Some(1), "{}", r.stderr);
    assert!(r.stderr.contains("failed to load ./cert.key"), "{}", r.stderr);
}

#[test]
fn client_with_no_answer_fails_after_the_idle_timeout() {
    // A bound socket that never answers.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let r = our_client("client", port, &[]);
    assert_eq!(r.code(), Some(1), "{}", r.stderr);
    assert!(r.stdout.is_empty());
    assert!(r.stderr.contains("error: no answer from the server: idle timeout"), "{}", r.stderr);
}

#[test]
fn client_with_no_answer_fails_at_its_connect_timeout_long_before_the_idle_timeout() {
    // A bound socket that never answers; the idle timeout (60 s) is far
    // beyond the run's deadline, so only the connect timeout can end it.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port().to_string();
    for name in ["client", "http3-client"] {
        let mut cmd = our_command(name);
        cmd.args(["--idle-timeout", "60000", "--connect-timeout", "300", "127.0.0.1", &port]);
        let r = run(cmd, Duration::from_secs(15));
        assert_eq!(r.code(), Some(1), "{name}: {}", r.stderr);
        assert!(r.stdout.is_empty(), "{name}");
        let want = "error: no answer from the server: handshake not complete after 0.3 s (connect timeout)";
        assert!(r.stderr.contains(want), "{name}: no {want:?} in:\n{}", r.stderr);
    }
    // Without the option: the library's default, 10 s.
    let mut cmd = our_command("http3-client");
    cmd.args(["--idle-timeout", "60000", "127.0.0.1", &port]);
    let r = run(cmd, Duration::from_secs(40));
    assert_eq!(r.code(), Some(1), "{}", r.stderr);
    assert!(r.stderr.contains("handshake not complete after 10.0 s (connect timeout)"), "{}", r.stderr);
    // 0: no connect timeout of its own, only the idle timeout.
    let mut cmd = our_command("client");
    cmd.args(["--idle-timeout", "500", "--connect-timeout", "0", "127.0.0.1", &port]);
    let r = run(cmd, Duration::from_secs(15));
    assert_eq!(r.code(), Some(1), "{}", r.stderr);
    assert!(r.stderr.contains("error: no answer from the server: idle timeout"), "{}", r.stderr);
}

#[test]
fn garbage_datagrams_are_dropped_and_the_server_keeps_serving() {
    let s = Server::ours_env("server", &[], &[("QUICHE_EV_LOG", "debug")]);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let target = ("127.0.0.1", s.port);
    sock.send_to(b"", target).unwrap();
    sock.send_to(b"hello, not QUIC", target).unwrap();
    sock.send_to(&[0xc0; 5], target).unwrap();
    sock.send_to(&[0x40; 3], target).unwrap();
    assert!(s.stderr.wait_for("failed to parse header", DEADLINE), "{}", s.stderr.dump());
    let r = our_client("client", s.port, &[]);
    assert_eq!(r.stdout, b"byez\n", "{}", r.stderr);
}

#[test]
fn short_header_packets_for_unknown_connections_get_a_stateless_reset() {
    // Upstream answers a stray short-header packet with a Version
    // Negotiation packet (its version field reads as 0). We answer with a
    // Stateless Reset (RFC 9000 §10.3): shorter than the packet, so two
    // endpoints can never loop; too short a packet gets nothing.
    let s = Server::ours_env("server", &[], &[("QUICHE_EV_LOG", "debug")]);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut pkt = vec![0x40u8];
    pkt.extend_from_slice(&[7u8; 40]);
    sock.send_to(&pkt, ("127.0.0.1", s.port)).unwrap();
    let mut buf = [0u8; 1500];
    let (n, _) = sock.recv_from(&mut buf).unwrap();
    assert!(n < pkt.len() && n >= 21, "a reset of {n} bytes answers {} bytes", pkt.len());
    assert_eq!(buf[0] & 0xc0, 0x40, "short header form, fixed bit set");
    assert!(s.stderr.wait_for("stateless reset for an unknown connection", DEADLINE), "{}", s.stderr.dump());
    assert!(!s.stderr.has("version negotiation"));
    // 21 bytes cannot be answered with anything shorter that is still a
    // valid reset.
    sock.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    sock.send_to(&pkt[..21], ("127.0.0.1", s.port)).unwrap();
    assert!(sock.recv_from(&mut buf).is_err(), "a 21-byte packet was answered");
}

#[test]
fn initial_with_a_short_dcid_is_rejected() {
    // RFC 9000 §7.2: a client's first DCID is at least 8 bytes. Upstream's
    // create_conn would copy 16 bytes out of it regardless.
    let s = Server::ours_env("server", &[], &[("QUICHE_EV_LOG", "debug")]);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut pkt = vec![0xc0u8, 0, 0, 0, 1]; // long header, Initial, QUIC v1
    pkt.push(4);
    pkt.extend_from_slice(&[1, 2, 3, 4]); // DCID of 4 bytes
    pkt.push(0); // empty SCID
    pkt.push(0); // empty token
    pkt.extend_from_slice(&[0x44, 0xd0]); // length 1232
    pkt.resize(1250, 0);
    sock.send_to(&pkt, ("127.0.0.1", s.port)).unwrap();
    assert!(s.stderr.wait_for("destination connection ID of 4 bytes dropped", DEADLINE), "{}", s.stderr.dump());
    assert!(!s.stderr.has("stateless retry"));
}

#[test]
fn short_datagrams_get_no_version_negotiation_or_retry() {
    // Upstream answers any long-header packet with an unknown version, so a
    // 30-byte spoofed datagram earns a larger reply. We answer only
    // datagrams of at least 1200 bytes, as RFC 9000 §14.1 requires of a
    // client's first.
    let s = Server::ours_env("server", &[], &[("QUICHE_EV_LOG", "debug")]);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let mut pkt = vec![0xc0u8, 0x1a, 0x2a, 0x3a, 0x4a, 8, 1, 2, 3, 4, 5, 6, 7, 8, 0];
    pkt.resize(30, 0);
    sock.send_to(&pkt, ("127.0.0.1", s.port)).unwrap();
    assert!(s.stderr.wait_for("datagram of 30 bytes for unknown connection dropped", DEADLINE),
            "{}", s.stderr.dump());
    let mut buf = [0u8; 1500];
    assert!(sock.recv_from(&mut buf).is_err(), "a short datagram was answered");
    // The same packet padded to 1200 bytes gets Version Negotiation.
    pkt.resize(1200, 0);
    sock.send_to(&pkt, ("127.0.0.1", s.port)).unwrap();
    sock.set_read_timeout(Some(DEADLINE)).unwrap();
    let (n, _) = sock.recv_from(&mut buf).unwrap();
    assert!(n > 0 && buf[1..5] == [0, 0, 0, 0], "a Version Negotiation packet");
}
