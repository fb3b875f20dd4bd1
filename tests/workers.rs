//! Scaling out with the example servers (`--workers`, `--server-id`, the
//! shared secrets): real clients (ours, aioquic, ngtcp2) against two
//! workers on one port; rebinding and migration landing on the worker that
//! owns the connection; a worker that dies; two server processes whose
//! every CID decodes, by an independent QUIC-LB decoder, to its own server
//! ID; token keys shared and rotated between two processes.

// Workers are Linux's (a reuseport group steered by classic BPF).
#![cfg(target_os = "linux")]

mod common;
use common::aioquic::python;
use common::ngtcp2::gtlsclient;
use common::relay::Relay;
use common::*;
use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// `name=value` pairs of the counters line with `label` (e.g. "server
/// counters (worker 1)" or "server counters" for the sum).
fn counters(s: &Server, label: &str) -> HashMap<String, u64> {
    let prefix = format!("{label}: ");
    let line = s.stderr.all().into_iter().rev().find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no {label:?} line:\n{}", s.stderr.dump()));
    line[prefix.len()..].split(' ')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.parse().unwrap()))
        .collect()
}

/// Stops a server with SIGTERM (a graceful shutdown of every worker) and
/// waits for its exit (status 0) and its last lines.
fn stop(s: &mut Server) {
    stop_with(s, 0);
}

/// As `stop`, expecting exit status `code` (1 when a worker had died).
fn stop_with(s: &mut Server, code: i32) {
    s.signal(libc::SIGTERM);
    let st = s.wait_exit(DEADLINE).expect("the server did not exit after SIGTERM");
    assert!(s.stderr.wait_closed(DEADLINE));
    assert_eq!(st.code(), Some(code), "{}", s.stderr.dump());
}

/// Runs `n` commands made by `make`, at most `par` at a time; returns the
/// runs in order.
fn run_all(n: usize, par: usize, make: impl Fn(usize) -> Command + Sync) -> Vec<Run> {
    let mut out: Vec<Option<Run>> = (0..n).map(|_| None).collect();
    let make = &make;
    for chunk in (0..n).collect::<Vec<_>>().chunks(par) {
        let runs: Vec<(usize, Run)> = thread::scope(|sc| {
            let hs: Vec<_> = chunk.iter().map(|&i| sc.spawn(move || (i, run(make(i), DEADLINE)))).collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (i, r) in runs {
            out[i] = Some(r);
        }
    }
    out.into_iter().map(Option::unwrap).collect()
}

/// Two workers: 200 handshakes (140 from our client, 30 from aioquic, 30
/// from ngtcp2's gtlsclient, each on a fresh connection, with version
/// negotiation where the client greases and stateless retry) all succeed,
/// both workers serve a fair share (the steering hashes each client's
/// first DCID), and no datagram reached a worker that did not own it.
#[test]
fn two_workers_complete_200_handshakes_from_three_stacks_and_both_serve_a_share() {
    let mut s = Server::ours("http3-server", &["--workers", "2"]);
    assert!(s.stderr.has("2 workers"), "{}", s.stderr.dump());
    let port = s.port;
    let (ours, aio, ngtcp2) = (140, 30, 30);
    let per = 35;
    let (our_runs, aio_run, ng_runs) = thread::scope(|sc| {
        let o = sc.spawn(|| run_all(ours / per, 4, |_| {
            let mut c = our_command("http3-client");
            c.arg("--multiconnect").arg("127.0.0.1").arg(port.to_string()).args(vec!["/"; per]);
            c
        }));
        let a = sc.spawn(|| {
            let mut c = Command::new(python());
            c.arg(common::aioquic::peer_script()).args(["client", "--alpn", "h3", "--timeout", "10", "--multiconnect"])
                .args(["127.0.0.1", &port.to_string()]).args(vec!["/"; aio]);
            run(c, Duration::from_secs(60))
        });
        let n = sc.spawn(|| (0..ngtcp2).collect::<Vec<_>>().chunks(6).flat_map(|chunk| {
            thread::scope(|s2| {
                let hs: Vec<_> = chunk.iter().map(|&i| s2.spawn(move || gtlsclient(port, &[], &["/"], &format!("w200-{i}"))))
                    .collect();
                hs.into_iter().map(|h| h.join().unwrap()).collect::<Vec<_>>()
            })
        }).collect::<Vec<_>>());
        (o.join().unwrap(), a.join().unwrap(), n.join().unwrap())
    });
    for r in &our_runs {
        assert_eq!(r.code(), Some(0), "{}", tail(&r.stderr, 20));
        assert_eq!(r.stdout, b"byez\n".repeat(per));
    }
    assert_eq!(aio_run.code(), Some(0), "{}", tail(&aio_run.stderr, 20));
    assert_eq!(aio_run.stdout, b"byez\n".repeat(aio));
    for (r, dir) in &ng_runs {
        assert_eq!(r.code(), Some(0), "{}", tail(&r.stderr, 20));
        assert_eq!(std::fs::read(dir.join("index.html")).unwrap_or_default(), b"byez\n", "{}", dir.display());
    }
    stop(&mut s);
    let total = counters(&s, "server counters");
    let (w0, w1) = (counters(&s, "server counters (worker 0)"), counters(&s, "server counters (worker 1)"));
    let all = (ours + aio + ngtcp2) as u64;
    assert_eq!(total["accepted"], all, "{total:?}");
    assert_eq!(total["closed"], all);
    assert_eq!(w0["accepted"] + w1["accepted"], all);
    // A fair coin gives each worker fewer than 60 of 200 once in 10^8.
    assert!(w0["accepted"] >= 60 && w1["accepted"] >= 60, "shares {} / {}", w0["accepted"], w1["accepted"]);
    for w in [&w0, &w1] {
        assert_eq!(w["dropped_misrouted"], 0, "{w:?}");
        assert_eq!(w["stateless_resets"], 0, "{w:?}");
        assert_eq!(w["invalid_tokens"], 0, "{w:?}");
    }
}

/// A folder with `big`: `mib` MiB of a non-repeating pattern.
fn root_with_big(tag: &str, mib: usize) -> (std::path::PathBuf, Vec<u8>) {
    let dir = tempdir(tag);
    let data = pattern(mib << 20);
    std::fs::write(dir.join("big"), &data).unwrap();
    (dir, data)
}

fn fetch_big(port: u16, out: &Path, extra: &[&str]) -> Run {
    let mut cmd = our_command("http3-client");
    cmd.args(extra).arg("--output").arg(out).args(["127.0.0.1", &port.to_string(), "/big"]);
    run(cmd, DEADLINE)
}

/// Downloads through a relay that rebinds the client's port or address
/// (after 1 MB, then every 1 MB, dropping the old mapping), and downloads
/// whose client migrates to a new port on its own, many runs each, all
/// against two workers: every one completes, and no datagram ever reached
/// a worker that did not own its connection (no misrouted drop, no
/// stateless reset). By the 4-tuple hash alone each move would land on
/// the other worker half the time.
#[test]
fn rebinding_and_migration_land_on_the_owning_worker_run_after_run() {
    let (dir, data) = root_with_big("workers-rebind", 4);
    let mut s = Server::ours("http3-server", &["--workers", "2", "--allow-migration", "--root", dir.to_str().unwrap()]);
    let mut moves = 0;
    let mut runs = 0;
    for (mode, n) in [("port", 6), ("addr", 4), ("migrate", 4)] {
        for i in 0..n {
            let out = dir.join(format!("out-{mode}-{i}"));
            if mode == "migrate" {
                let r = fetch_big(s.port, &out, &["--migrate"]);
                assert_eq!(r.code(), Some(0), "{mode} run {i}:\n{}", tail(&r.stderr, 30));
                assert!(r.stderr.contains("migrating to"), "{}", r.stderr);
                moves += 1;
            } else {
                let relay = Relay::start(s.port, &["--rebind", &format!("{mode}:1MB:1MB")]);
                let r = fetch_big(relay.port, &out, &[]);
                let stats = relay.stop();
                assert_eq!(r.code(), Some(0), "{mode} run {i}: {stats}\n{}\nserver:\n{}", tail(&r.stderr, 30),
                           tail(&s.stderr.dump(), 30));
                assert!(Relay::stat(&stats, "rebinds") >= 2, "{stats}");
                moves += Relay::stat(&stats, "rebinds");
            }
            assert!(std::fs::read(&out).unwrap() == data, "{mode} run {i}: the file arrived intact");
            runs += 1;
        }
    }
    // Every move was followed by the worker that had the connection.
    assert!(s.stderr.wait_for_n("connection migrated to", moves as usize, DEADLINE),
            "{moves} moves:\n{}", s.stderr.dump());
    stop(&mut s);
    let total = counters(&s, "server counters");
    assert_eq!(total["accepted"], runs, "{total:?}");
    assert_eq!(total["dropped_misrouted"], 0, "{total:?}");
    assert_eq!(total["stateless_resets"], 0, "{total:?}");
    let (w0, w1) = (counters(&s, "server counters (worker 0)"), counters(&s, "server counters (worker 1)"));
    assert!(w0["accepted"] > 0 && w1["accepted"] > 0, "both workers had connections: {w0:?} {w1:?}");
}

/// A worker dies mid-transfer (SIGUSR1: aborted, as a crash would, no
/// CONNECTION_CLOSE sent): its clients, uploading, keep sending; their
/// packets reach the other worker, which answers them with a stateless
/// reset under the shared key, so they fail within moments, not at their
/// idle timeout (10 s); the other worker's clients finish, and it keeps
/// accepting new ones. (A client that sends nothing, only waiting for a
/// silent server, can only find out at its idle timeout or its next
/// packet: a stateless reset answers a packet. So the uploads go to
/// /upload, which reads the body as it arrives: a client is held back by
/// nothing but congestion control, so it always has a packet in flight
/// whose loss sends a probe. An /echo upload, held back by flow control
/// while its echo waits for room, can have every packet acknowledged and
/// nothing to send when the worker dies: such a client hears nothing until
/// its idle timeout, which failed this test in 1 run of 8.)
#[test]
fn a_dead_workers_clients_are_reset_at_once_and_the_other_worker_keeps_serving() {
    let mut s = Server::ours("app-server", &["--workers", "2", "--verbose"]);
    let port = s.port;
    // Large uploads: transfers in progress for a second or more (several
    // share the cores), the client sending all along.
    let dir = tempdir("workers-dead");
    let body = dir.join("body");
    let size = 96 << 20;
    let data = pattern(size);
    std::fs::write(&body, &data).unwrap();
    let path = "/upload";
    let answer = upload_answer(&data);
    let start_fetch = || {
        let mut c = Command::new(ours("fetch"));
        c.arg("--post").arg(&body).args(["127.0.0.1", &port.to_string(), path])
            .stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        let out = lines_of(child.stdout.take().unwrap());
        let err = lines_of(child.stderr.take().unwrap());
        // Its exit time, watched from a thread of its own.
        let t = thread::spawn(move || (wait_child(&mut child, Duration::from_secs(60)), Instant::now()));
        (t, out, err)
    };
    // Clients until each worker has at least two. New connections go by
    // a hash of the client's random DCID: one worker short of two after 12
    // clients happens in 0.6 % of runs (seen once: 11 to 1); after 24, in
    // 3 of a million.
    let mut clients = Vec::new();
    let per_worker = |w: usize| s.stderr.count(&format!("worker {w}: new connection"));
    while per_worker(0) < 2 || per_worker(1) < 2 {
        assert!(clients.len() < 24, "{}", s.stderr.dump());
        let n = clients.len();
        clients.push(start_fetch());
        // Its request arrived: the handshake is over (a client still in
        // its handshake sends long-header packets, which no stateless
        // reset answers: it would wait for its timeout).
        assert!(s.stderr.wait_for_n("request: POST", n + 1, DEADLINE), "{}", s.stderr.dump());
    }
    let on_1 = per_worker(1);
    // Worker 1 dies; its clients must hear it from worker 0 at once.
    let died = Instant::now();
    s.signal(libc::SIGUSR1);
    assert!(s.stderr.wait_for("worker 1 exited", DEADLINE), "{}", s.stderr.dump());
    let (mut reset, mut complete) = (0, 0);
    for (t, out, err) in clients {
        let (st, at) = t.join().unwrap();
        let st = st.expect("a client hung");
        assert!(out.wait_closed(DEADLINE) && err.wait_closed(DEADLINE));
        if st.code() == Some(0) {
            assert!(out.has(&format!("{path} 200 {} {} complete", answer.len(), hash_of(&answer))),
                    "{}: {}", String::from_utf8_lossy(&answer), out.dump());
            complete += 1;
        } else {
            assert!(err.has("stateless reset"), "a failed client saw the reset:\n{}\n{}", err.dump(), out.dump());
            assert!(at > died && at - died < Duration::from_secs(2), "reset {:?} after the abort, not at the idle \
                    timeout", at.saturating_duration_since(died));
            reset += 1;
        }
    }
    // Worker 1's clients still uploading were reset (one may have finished
    // before the abort); worker 0's all finished.
    assert!(reset >= 1 && reset <= on_1, "{reset} reset, worker 1 had {on_1}");
    assert!(complete >= per_worker(0), "{complete} complete, worker 0 had {}", per_worker(0));
    assert_eq!(complete + reset, per_worker(0) + on_1);
    // Worker 0 still serves.
    let r = run({
        let mut c = Command::new(ours("fetch"));
        c.args(["127.0.0.1", &port.to_string(), "/json"]);
        c
    }, DEADLINE);
    assert_eq!(r.code(), Some(0), "{}", r.stderr);
    // A worker did not stop cleanly: the server says so in its status.
    stop_with(&mut s, 1);
    let w0 = counters(&s, "server counters (worker 0)");
    assert!(w0["stateless_resets"] >= on_1 as u64, "worker 0 sent the resets: {w0:?}");
}

/// The CIDs a server logged issuing (`QUICHE_EV_LOG=debug`: "issued
/// connection ID HEX"), as hex.
fn issued_cids(s: &Server) -> Vec<String> {
    s.stderr.all().iter().filter_map(|l| l.split("issued connection ID ").nth(1)).map(|h| h.trim().to_string())
        .collect()
}

/// Two server processes with different server IDs (one with two workers
/// and an encrypted single-pass layout, one plaintext, one four-pass):
/// every CID each issued (first ones, spares, Retry SCIDs) decodes, by
/// tests/quic_lb_decode.py (an independent reading of the draft, which
/// first passes the draft's vectors), to its own server ID; and each
/// printed its layout at start.
#[test]
fn every_cid_of_two_servers_decodes_to_its_own_server_id() {
    let py = python();
    let decoder = root().join("tests/quic_lb_decode.py");
    let st = Command::new(&py).arg(&decoder).arg("selftest").output().unwrap();
    assert!(st.status.success(), "the decoder passes the draft's vectors:\n{}", String::from_utf8_lossy(&st.stdout));
    let key = "000102030405060708090a0b0c0d0e0f";
    // (options, server ID, nonce length, key)
    let layouts: [(&[&str], &str, usize, Option<&str>); 3] = [
        (&["--workers", "2", "--server-id", "0102", "--cid-key", key], "0102", 14, Some(key)),
        (&["--server-id", "0a0b0c"], "0a0b0c", 13, None),
        (&["--workers", "2", "--server-id", "31", "--nonce-len", "6", "--cid-key", key, "--config-id", "5"], "31", 6,
         Some(key)),
    ];
    for (opts, sid, nonce, key) in layouts {
        let mut s = Server::ours_env("http3-server", opts, &[("QUICHE_EV_LOG", "debug")]);
        assert!(s.stderr.has(&format!("server ID {sid} ({} octets), nonce {nonce} octets", sid.len() / 2)),
                "{}", s.stderr.dump());
        for _ in 0..4 {
            let mut c = our_command("http3-client");
            c.args(["--multiconnect", "127.0.0.1", &s.port.to_string(), "/", "/"]);
            let r = run(c, DEADLINE);
            assert_eq!(r.code(), Some(0), "{}", r.stderr);
        }
        stop(&mut s);
        let cids = issued_cids(&s);
        assert!(cids.len() >= 16, "8 connections: a Retry SCID, a first CID and spares each; got {cids:?}");
        let config_id = opts.iter().position(|o| *o == "--config-id").map_or("0", |i| opts[i + 1]);
        let mut cmd = Command::new(&py);
        cmd.arg(&decoder).args(["decode", "--config-id", config_id, "--server-id-len", &(sid.len() / 2).to_string(),
                                "--nonce-len", &nonce.to_string()]);
        if let Some(k) = key {
            cmd.args(["--key", k]);
        }
        let out = cmd.args(&cids).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}");
        assert_eq!(text.lines().count(), cids.len());
        for line in text.lines() {
            assert!(line.ends_with(&format!("server_id={sid}")), "{line}");
        }
    }
}

const K1: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const K2: &str = "2222222222222222222222222222222222222222222222222222222222222222";

/// Writes a secrets file (`token`/`reset`/`ticket` lines).
fn write_secrets(path: &Path, lines: &[&str]) {
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

/// A quiche client at a UDP socket of the test: its first Initial goes to
/// `mint` (which answers with a Retry), its Initial with the token to
/// `check`, from the same address. Returns what `check` answered first:
/// true for a handshake going on, false for a CONNECTION_CLOSE
/// (INVALID_TOKEN).
fn token_from_one_server_to_another(mint: u16, check: u16) -> bool {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let local = sock.local_addr().unwrap();
    let (a, b): (std::net::SocketAddr, std::net::SocketAddr) =
        (format!("127.0.0.1:{mint}").parse().unwrap(), format!("127.0.0.1:{check}").parse().unwrap());
    let mut cfg = quiche::Config::new(quiche::PROTOCOL_VERSION).unwrap();
    cfg.set_application_protos(&[b"hq-interop"]).unwrap();
    cfg.verify_peer(false);
    cfg.set_max_idle_timeout(5000);
    let mut client = quiche::connect(None, &quiche::ConnectionId::from_ref(&random16()), local, a, &mut cfg).unwrap();
    let mut buf = [0u8; 1500];
    let (n, _) = client.send(&mut buf).unwrap();
    sock.send_to(&buf[..n], a).unwrap();
    let (n, from) = sock.recv_from(&mut buf).expect("a Retry");
    assert_eq!(from, a);
    client.recv(&mut buf[..n], quiche::RecvInfo { from: a, to: local }).unwrap();
    let (n, _) = client.send(&mut buf).unwrap();
    let hdr = quiche::Header::from_slice(&mut buf[..n], 16).unwrap();
    assert!(hdr.token.as_ref().is_some_and(|t| !t.is_empty()), "the Initial carries the token");
    sock.send_to(&buf[..n], b).unwrap();
    let (n, from) = sock.recv_from(&mut buf).expect("the other server answers");
    assert_eq!(from, b);
    // The packets are addressed as if from `a`: the client knows one server.
    client.recv(&mut buf[..n], quiche::RecvInfo { from: a, to: local }).unwrap();
    match client.peer_error() {
        Some(e) => {
            assert_eq!(e.error_code, 0x0b, "INVALID_TOKEN");
            false
        }
        None => true,
    }
}

/// Two server processes (two hosts) share the Retry token key through a
/// --secrets file: a token one minted is accepted by the other; a fleet's
/// two-step rotation, each step a rewritten file and SIGHUP, keeps every
/// token valid everywhere; once the old key is dropped, its tokens are
/// refused (INVALID_TOKEN, no connection made).
#[test]
fn token_keys_shared_between_hosts_rotate_in_two_steps_without_refusals() {
    let dir = tempdir("workers-secrets");
    let (fa, fb) = (dir.join("a"), dir.join("b"));
    write_secrets(&fa, &["# host A", &format!("token {K1}")]);
    write_secrets(&fb, &[&format!("token {K1}")]);
    let a = Server::ours("server", &["--secrets", fa.to_str().unwrap()]);
    let b = Server::ours("server", &["--workers", "2", "--secrets", fb.to_str().unwrap()]);
    assert!(token_from_one_server_to_another(a.port, b.port), "A's token accepted by B");
    let reload = |s: &Server, f: &Path, lines: &[&str], n: usize| {
        write_secrets(f, lines);
        s.signal(libc::SIGHUP);
        assert!(s.stderr.wait_for_n("SIGHUP: secrets reloaded", n, DEADLINE), "{}", s.stderr.dump());
    };
    // Step 1 everywhere: K2 accepted, nobody mints with it yet.
    reload(&a, &fa, &[&format!("token {K1} {K2}")], 1);
    reload(&b, &fb, &[&format!("token {K1} {K2}")], 1);
    // Step 2 on A only: A mints with K2, B (still on step 1) accepts.
    reload(&a, &fa, &[&format!("token {K2} {K1}")], 2);
    assert!(token_from_one_server_to_another(a.port, b.port), "a K2 token accepted by a server on step 1");
    assert!(token_from_one_server_to_another(b.port, a.port), "a K1 token accepted by a server on step 2");
    // K1 dropped on A: B's K1 tokens are refused there.
    reload(&a, &fa, &[&format!("token {K2}")], 3);
    assert!(!token_from_one_server_to_another(b.port, a.port), "a token of the dropped key is refused");
    assert!(a.stderr.wait_for("invalid address validation token", DEADLINE), "{}", a.stderr.dump());
    // A bad file changes nothing and says so.
    write_secrets(&fa, &["token nothex"]);
    a.signal(libc::SIGHUP);
    assert!(a.stderr.wait_for("SIGHUP: secrets NOT reloaded", DEADLINE), "{}", a.stderr.dump());
    assert!(token_from_one_server_to_another(a.port, b.port), "A still mints with K2, which B accepts");
}

/// A server killed mid-transfer and replaced on its port by one whose
/// reset keys rotated (a new current key, the old one previous): the
/// client, still uploading, is reset at once (under the previous key), not
/// left to its idle timeout. (To /upload, so that the client always has a
/// packet in flight: see the dead worker's test above.)
#[test]
fn a_replacement_with_rotated_reset_keys_still_resets_the_old_connections() {
    let dir = tempdir("workers-reset-rotation");
    let body = dir.join("body");
    std::fs::write(&body, pattern(64 << 20)).unwrap();
    let (fa, fb) = (dir.join("a"), dir.join("b"));
    write_secrets(&fa, &[&format!("reset {K1}")]);
    write_secrets(&fb, &[&format!("reset {K2} {K1}")]);
    let mut s = Server::ours("app-server", &["--verbose", "--secrets", fa.to_str().unwrap()]);
    let port = s.port;
    let mut c = Command::new(ours("fetch")).arg("--post").arg(&body).args(["127.0.0.1", &port.to_string(), "/upload"])
        .stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let err = lines_of(c.stderr.take().unwrap());
    // The upload is under way: the client keeps sending.
    assert!(s.stderr.wait_for("request: POST /upload", DEADLINE), "{}", s.stderr.dump());
    s.signal(libc::SIGKILL);
    s.wait_exit(DEADLINE).expect("killed");
    let killed = Instant::now();
    let _b = Server::ours_at("app-server", "127.0.0.1", port, &["--secrets", fb.to_str().unwrap()], &[]);
    let st = wait_child(&mut c, DEADLINE).expect("the client did not finish");
    assert!(err.wait_closed(DEADLINE));
    assert_eq!(st.code(), Some(1));
    assert!(err.has("stateless reset"), "{}", err.dump());
    assert!(killed.elapsed() < Duration::from_secs(5), "reset at once, not at the 10 s idle timeout");
}
