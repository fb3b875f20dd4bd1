//! The transport with real peers: connection IDs for migration, NAT
//! rebinding mid-download (port and address, the old mapping gone),
//! Stateless Reset after a restart with the same key, and the refusals a
//! client hears (CONNECTION_REFUSED, INVALID_TOKEN).

mod common;
use common::inproc::InProc;
use common::relay::Relay;
use common::*;
use std::path::Path;
use std::process::{Command, Stdio};

/// A folder with `big`: `mib` MiB of a non-repeating pattern.
fn root_with_big(tag: &str, mib: usize) -> (std::path::PathBuf, Vec<u8>) {
    let dir = tempdir(tag);
    let data = pattern(mib << 20);
    std::fs::write(dir.join("big"), &data).unwrap();
    (dir, data)
}

fn fetch_big(client: &str, port: u16, out: &Path, extra: &[&str]) -> Run {
    let mut cmd = Command::new(ours(client));
    cmd.env("QUICHE_EV_QUIET", "1").args(extra).arg("--output").arg(out)
        .args(["127.0.0.1", &port.to_string(), "/big"]);
    run(cmd, DEADLINE)
}

#[test]
fn our_client_migrates_to_a_new_port_mid_download() {
    // The hq-interop server does not disable active migration (as
    // upstream's); it hands out spare connection IDs, so the client can
    // move to a new socket with a new DCID.
    let (dir, data) = root_with_big("migrate", 30);
    let s = Server::ours("server", &["--root", dir.to_str().unwrap()]);
    let out = dir.join("out");
    let r = fetch_big("client", s.port, &out, &["--migrate"]);
    assert_eq!(r.code(), Some(0), "{}", r.stderr);
    assert!(r.stderr.contains("migrating to"), "{}", r.stderr);
    assert!(std::fs::read(&out).unwrap() == data, "the file arrived intact");
    assert!(s.stderr.wait_for("connection migrated to 127.0.0.1:", DEADLINE), "{}", s.stderr.dump());
}

#[test]
fn our_client_does_not_migrate_from_a_server_that_disabled_it() {
    // http3-server disables active migration (as upstream's): the client
    // says why it stays and finishes on its first path; with
    // --allow-migration the same client moves.
    let (dir, data) = root_with_big("no-migrate", 4);
    let s = Server::ours("http3-server", &["--root", dir.to_str().unwrap()]);
    let out = dir.join("out");
    let r = fetch_big("http3-client", s.port, &out, &["--migrate"]);
    assert_eq!(r.code(), Some(0), "{}", r.stderr);
    assert!(std::fs::read(&out).unwrap() == data);
    assert!(r.stderr.contains("the server disabled active migration"), "{}", r.stderr);
    assert!(!r.stderr.contains("migrating to"), "{}", r.stderr);

    let s = Server::ours("http3-server", &["--root", dir.to_str().unwrap(), "--allow-migration"]);
    let r = fetch_big("http3-client", s.port, &out, &["--migrate"]);
    assert_eq!(r.code(), Some(0), "{}", r.stderr);
    assert!(r.stderr.contains("migrating to"), "{}", r.stderr);
    assert!(s.stderr.wait_for("connection migrated to 127.0.0.1:", DEADLINE), "{}", s.stderr.dump());
}

/// A download through a relay that rebinds (`port` or `addr`) after 3 MB
/// and again every 4 MB, dropping its old mapping each time: the server
/// must follow the client each time (quiche keeps every old path, so this
/// needs the examples' active connection ID limit above quiche's 2).
fn rebinding_mid_download(server: &str, client: &str, mode: &str) {
    let (dir, data) = root_with_big(&format!("rebind-{mode}-{server}"), 20);
    let s = Server::ours(server, &["--root", dir.to_str().unwrap()]);
    let relay = Relay::start(s.port, &["--rebind", &format!("{mode}:3MB:4MB")]);
    let out = dir.join("out");
    let r = fetch_big(client, relay.port, &out, &[]);
    let stats = relay.stop();
    assert_eq!(r.code(), Some(0), "{}\nrelay: {stats}\nserver:\n{}", r.stderr, s.stderr.dump());
    assert!(std::fs::read(&out).unwrap() == data, "the file arrived intact");
    assert!(Relay::stat(&stats, "rebinds") >= 3, "{stats}");
    assert!(Relay::stat(&stats, "old_mapping_drops") > 0, "the server sent to the old mapping first: {stats}");
    let expect = if mode == "addr" { "connection migrated to 127.0.0." } else { "connection migrated to 127.0.0.1:" };
    let rebinds = Relay::stat(&stats, "rebinds") as usize;
    assert!(s.stderr.wait_for_n(expect, rebinds, DEADLINE), "{rebinds} rebinds:\n{}", s.stderr.dump());
}

#[test]
fn port_rebinding_mid_download_http3() {
    rebinding_mid_download("http3-server", "http3-client", "port");
}

#[test]
fn port_rebinding_mid_download_hq() {
    rebinding_mid_download("server", "client", "port");
}

#[test]
fn address_rebinding_mid_download_http3() {
    rebinding_mid_download("http3-server", "http3-client", "addr");
}

const KEY_A: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const KEY_B: &str = "f0e0d0c0b0a090807060504030201000f0e0d0c0b0a090807060504030201000";

/// The restarted server's debug line for each Stateless Reset it sends.
const RESET_SENT: &str = "stateless reset for an unknown connection";

/// A client downloading from a server that is killed mid-transfer and
/// restarted on the same port with `second_key`: what the client says,
/// and whether the restarted server answered the client's packets with a
/// Stateless Reset.
fn restart_mid_download(tag: &str, second_key: &str) -> (Run, bool) {
    let (dir, _) = root_with_big(tag, 64);
    let root = dir.to_str().unwrap();
    let mut s = Server::ours("server", &["--root", root, "--reset-key", KEY_A]);
    let port = s.port;
    let out = dir.join("out");
    let mut c = Command::new(ours("client"))
        .env("QUICHE_EV_QUIET", "1")
        .arg("--output").arg(&out).args(["127.0.0.1", &port.to_string(), "/big"])
        .stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let err = lines_of(c.stderr.take().unwrap());
    // Mid-transfer: the handshake is long confirmed, only short-header
    // packets flow (a Stateless Reset answers only those).
    let end = std::time::Instant::now() + DEADLINE;
    while std::fs::metadata(&out).map_or(0, |m| m.len()) < 4 << 20 {
        assert!(std::time::Instant::now() < end, "the download did not start:\n{}", err.dump());
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    s.signal(libc::SIGKILL);
    s.wait_exit(DEADLINE).expect("killed");
    // The same port, a new process: the client's next packets reach it.
    let again = Server::ours_at("server", "127.0.0.1", port, &["--root", root, "--reset-key", second_key],
                                &[("QUICHE_EV_LOG", "debug"), ("QUICHE_EV_QUIET", "1")]);
    let st = wait_child(&mut c, DEADLINE).expect("the client did not finish");
    assert!(err.wait_closed(DEADLINE));
    let stderr = err.dump();
    // A client that heard a reset had it from this server; the line may
    // still be on its way through the pipe.
    let answered = if stderr.contains("stateless reset") {
        again.stderr.wait_for(RESET_SENT, DEADLINE)
    } else {
        again.stderr.has(RESET_SENT)
    };
    (Run { status: st, stdout: Vec::new(), stderr }, answered)
}

#[test]
fn a_server_restarted_with_the_same_key_resets_its_old_connections() {
    // The reset answers a packet: a client whose packets were all
    // acknowledged when the server died has nothing to send (a download
    // only acknowledges what arrives) and can only wait for its idle
    // timeout. Such a run proves nothing either way, so it is tried again.
    let mut reset_seen = false;
    for attempt in 0..5 {
        let (r, answered) = restart_mid_download(&format!("reset-same-{attempt}"), KEY_A);
        assert_eq!(r.code(), Some(1), "{}", r.stderr);
        if answered {
            assert!(r.stderr.contains("error: connection reset by the server (stateless reset)"), "{}", r.stderr);
            reset_seen = true;
            break;
        }
        assert!(r.stderr.contains("idle timeout"), "{}", r.stderr);
    }
    assert!(reset_seen, "in 5 runs the client never sent the restarted server a packet");
    // With another key the reset cannot be told from junk: the client
    // waits for its idle timeout instead.
    let (r, _) = restart_mid_download("reset-other", KEY_B);
    assert_eq!(r.code(), Some(1));
    assert!(r.stderr.contains("idle timeout") && !r.stderr.contains("stateless reset"), "{}", r.stderr);
}

/// The active_connection_id_limit the server announced to an aioquic
/// client, read from the client's qlog.
fn announced_cid_limit(tag: &str, server_args: &[&str]) -> u64 {
    let s = Server::ours("server", server_args);
    let dir = tempdir(tag);
    let r = common::aioquic::aioquic_client("hq-interop", s.port, &["--qlog-dir", dir.to_str().unwrap()],
                                            Some("/x"));
    assert_eq!(r.stdout, b"byez\n", "{}", r.stderr);
    let qlog = std::fs::read_dir(&dir).unwrap().next().expect("aioquic wrote no qlog").unwrap().path();
    let text = std::fs::read_to_string(&qlog).unwrap();
    // The remote owner's parameters_set event: {"owner": "remote", ...
    // "active_connection_id_limit": N, ...}.
    let remote = text.split("\"owner\": \"remote\"").nth(1).expect("no remote transport parameters");
    let field = "\"active_connection_id_limit\": ";
    let at = remote.find(field).expect("no active_connection_id_limit") + field.len();
    remote[at..].split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap()
}

#[test]
fn cid_limit_sets_the_connection_ids_a_client_may_give() {
    // Default 8: room for a client's NAT rebindings (quiche keeps a path
    // per connection ID); --cid-limit trades that for memory.
    assert_eq!(announced_cid_limit("cid-limit-default", &[]), 8);
    assert_eq!(announced_cid_limit("cid-limit-3", &["--cid-limit", "3"]), 3);
    for bad in ["1", "17", "x"] {
        let out = our_command("server").args(["--cid-limit", bad, "127.0.0.1", "0"]).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "--cid-limit {bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--cid-limit"), "--cid-limit {bad}: {err}");
    }
}

#[test]
fn a_full_server_refuses_with_connection_refused() {
    // The held connection downloads 4 MiB into a pipe nobody reads, so it
    // cannot end before it is stopped: a short response could complete
    // (and free the slot) between "new connection" and the SIGSTOP.
    let (dir, data) = root_with_big("max-conns", 4);
    let s = Server::ours("server", &["--max-conns", "1", "--root", dir.to_str().unwrap()]);
    let mut held = Command::new(ours("client"))
        .env("QUICHE_EV_QUIET", "1").args(["127.0.0.1", &s.port.to_string(), "/big"])
        .stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    assert!(s.stderr.wait_for("new connection", DEADLINE));
    unsafe { libc::kill(held.id() as i32, libc::SIGSTOP) };
    // The second client hears why at once, instead of waiting for its
    // idle timeout; the server keeps no state for it.
    let r = our_client("client", s.port, &[]);
    assert_eq!(r.code(), Some(1), "{}", r.stderr);
    assert!(r.stderr.contains("error code 0x2 CONNECTION_REFUSED"), "{}", r.stderr);
    assert!(!r.stderr.contains("idle timeout"), "{}", r.stderr);
    assert_eq!(s.stderr.count_exact("new connection"), 1, "no state for the refused one");
    assert!(s.stderr.has("connection limit (1) reached, new connection refused"), "{}", s.stderr.dump());
    // Once the held connection is gone, the slot serves again.
    held.kill().unwrap();
    held.wait().unwrap();
    assert!(s.stderr.wait_for("connection freed, 0 left", DEADLINE), "{}", s.stderr.dump());
    let dest = dir.join("fetched");
    let r = fetch_big("client", s.port, &dest, &[]);
    assert_eq!(r.code(), Some(0), "{}", r.stderr);
    assert!(std::fs::read(&dest).unwrap() == data, "the whole file, intact");
}

#[test]
fn a_token_from_before_a_restart_gets_invalid_token() {
    // Server A sends the Retry; the client's next Initial (with A's token)
    // reaches server B, restarted with a new token key. B refuses it with
    // an Initial CONNECTION_CLOSE (INVALID_TOKEN), making no connection,
    // and quiche's client takes it.
    let mut a = InProc::new();
    let (mut client, _initial, _retry, with_token) = a.retry_flow();
    let mut b = InProc::new();
    b.feed(&with_token, a.peer);
    assert_eq!(b.conn_count(), 0);
    let answer = b.drain();
    assert_eq!(answer.len(), 0, "B answers the peer it saw, not A's sink");
    // B's answer went to `a.peer`, A's sink.
    let answer = a.drain();
    assert_eq!(answer.len(), 1, "one small datagram");
    assert!(answer[0].len() < 3 * with_token.len(), "no amplification");
    let mut pkt = answer[0].clone();
    // (B stands for A restarted on the same address.)
    client.recv(&mut pkt, quiche::RecvInfo { from: a.local, to: a.peer }).unwrap();
    let e = client.peer_error().expect("the client got a CONNECTION_CLOSE");
    assert!(!e.is_app);
    assert_eq!(e.error_code, 0x0b, "INVALID_TOKEN");
}

#[test]
fn an_initial_corrupted_on_the_way_does_not_bar_the_intact_one() {
    // The client's Initial (after the Retry) arrives twice: first with a
    // byte flipped on the way (it cannot be opened: quiche closes the new
    // connection at once), then intact. The intact one makes the
    // connection: the failed one left no tombstone on the DCID.
    let mut s = InProc::new();
    let (mut client, _initial, _retry, with_token) = s.retry_flow();
    let mut corrupted = with_token.clone();
    *corrupted.last_mut().unwrap() ^= 0x40;
    s.feed(&corrupted, s.peer);
    assert_eq!(s.conn_count(), 0, "nothing kept for a packet that could not be opened");
    assert!(s.drain().is_empty(), "nothing said to it either");
    s.feed(&with_token, s.peer);
    assert_eq!(s.conn_count(), 1);
    let answers = s.drain();
    assert!(!answers.is_empty(), "the server answers the intact Initial");
    for mut a in answers {
        client.recv(&mut a, quiche::RecvInfo { from: s.local, to: s.peer }).unwrap();
    }
    assert!(client.peer_error().is_none());
    let mut out = [0u8; 1500];
    while let Ok((n, _)) = client.send(&mut out) {
        s.feed(&out[..n], s.peer);
    }
    assert!(client.is_established() || !s.drain().is_empty(), "the handshake goes on");
}

#[test]
fn a_forged_token_from_aioquic_gets_invalid_token_at_once() {
    let s = Server::ours("server", &[]);
    let mut forged = b"quiche".to_vec();
    forged.extend_from_slice(&[2, 0, 0x30, 0x39, 127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
    forged.extend_from_slice(&[0xab; 8]);
    let hex: String = forged.iter().map(|b| format!("{b:02x}")).collect();
    let r = common::aioquic::aioquic_client("hq-interop", s.port, &["--token", &hex, "--timeout", "8"], None);
    // Exit 3 is the peer's own timeout: the close arrived before it.
    assert!(r.code() != Some(0) && r.code() != Some(3), "{:?}: {}", r.code(), r.stderr);
    assert!(!r.stderr.contains("no complete response within"), "{}", r.stderr);
    assert!(s.stderr.has("invalid address validation token"), "{}", s.stderr.dump());
    assert_eq!(s.stderr.count_exact("new connection"), 0);
}
