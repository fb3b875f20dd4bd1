//! Large transfers: byte-exact downloads, and shutdown in the middle of one.

mod common;
use common::*;
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn large_download_arrives_intact() {
    let dir = tempdir("large");
    let data: Vec<u8> = (0..(24u32 << 20)).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    std::fs::write(dir.join("blob.bin"), &data).unwrap();
    // Batched I/O (default), batched reads without GSO, and the plain path.
    let modes: [&[(&str, &str)]; 3] = [&[], &[("QUICHE_EV_GSO", "0")], &[("QUICHE_EV_PLAIN_IO", "1")]];
    for (srv, cli, env) in modes.iter().flat_map(|m| {
        [("server", "client", *m), ("http3-server", "http3-client", *m)]
    }) {
        let plain = format!("{env:?}");
        let s = Server::ours_env(srv, &["--root", dir.to_str().unwrap()], env);
        let out = dir.join(format!("{cli}.out"));
        let mut cmd = Command::new(ours(cli));
        cmd.env("QUICHE_EV_QUIET", "1").envs(env.iter().copied())
            .args(["--output", out.to_str().unwrap(), "127.0.0.1", &s.port.to_string(), "/blob.bin"]);
        let r = run(cmd, Duration::from_secs(60));
        assert_eq!(r.code(), Some(0), "{cli} (plain: {plain}): {}", r.stderr);
        let got = std::fs::read(&out).unwrap();
        assert!(got == data, "{cli} (plain: {plain}): {} bytes arrived, content differs", got.len());
    }
}

/// A server with a 200 MiB download in flight gets SIGTERM with
/// `drain_ms` to finish; returns the client's exit status and stderr.
fn download_during_sigterm(tag: &str, drain_ms: &str) -> (Option<i32>, Lines) {
    let dir = tempdir(tag);
    std::fs::write(dir.join("big"), vec![7u8; 200 << 20]).unwrap();
    let mut s = Server::ours("server", &["--root", dir.to_str().unwrap(), "--drain-ms", drain_ms]);
    let mut c = Command::new(ours("client"))
        .env("QUICHE_EV_QUIET", "1")
        .args(["--output", "/dev/null", "127.0.0.1", &s.port.to_string(), "/big"])
        .stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let client_err = lines_of(c.stderr.take().unwrap());
    assert!(client_err.wait_for("sent HTTP request", DEADLINE), "{}", client_err.dump());
    s.signal(libc::SIGTERM);
    let st = s.wait_exit(DEADLINE).expect("server did not exit on SIGTERM");
    assert_eq!(st.code(), Some(0), "{}", s.stderr.dump());
    assert!(s.stderr.has("shutting down"));
    assert!(s.stderr.has("server counters: accepted=1 closed=1"), "{}", s.stderr.dump());
    let cst = wait_child(&mut c, DEADLINE).expect("client did not finish");
    (cst.code(), client_err)
}

#[test]
fn sigterm_lets_an_in_flight_response_finish_within_the_drain_time() {
    let (code, err) = download_during_sigterm("sigterm-drain", "15000");
    assert_eq!(code, Some(0), "the response was cut short:\n{}", err.dump());
}

#[test]
fn sigterm_cuts_what_outlasts_the_drain_time_and_exits_0() {
    let (code, err) = download_during_sigterm("sigterm-cut", "20");
    // The response was cut short: the client says so and fails.
    assert_eq!(code, Some(1), "{}", err.dump());
    assert!(err.wait_for("not complete", DEADLINE), "{}", err.dump());
}

#[test]
fn sigterm_sends_connection_close_to_every_idle_peer() {
    use std::io::{BufRead, BufReader, Write};
    let mut s = Server::ours("server", &[]);
    let holder_script = root().join("bench/idle_holder.py");
    let mut holder = Command::new(common::aioquic::python())
        .arg(&holder_script).args(["127.0.0.1", &s.port.to_string(), "5", "--interval", "0.5"])
        .stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let mut to_holder = holder.stdin.take().unwrap();
    let mut from_holder = BufReader::new(holder.stdout.take().unwrap());
    let mut line = String::new();
    from_holder.read_line(&mut line).unwrap();
    assert!(line.starts_with("ready 5"), "holder: {line:?}");
    assert!(s.stderr.wait_for_n("new connection", 5, DEADLINE));
    s.signal(libc::SIGTERM);
    assert_eq!(s.wait_exit(DEADLINE).and_then(|st| st.code()), Some(0), "{}", s.stderr.dump());
    // Every peer hears the close well before any idle timeout (5 s on the
    // server's side, 30 s on the holder's) could end its connection.
    let started = std::time::Instant::now();
    loop {
        writeln!(to_holder, "count").unwrap();
        line.clear();
        from_holder.read_line(&mut line).unwrap();
        if line.trim() == "alive 0" {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(3), "peers still open: {line:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(to_holder);
    let _ = holder.wait();
}


#[test]
fn requests_cannot_escape_the_document_root() {
    let base = tempdir("escape");
    let root = base.join("root");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("ok.txt"), b"inside\n").unwrap();
    std::fs::write(base.join("secret.txt"), b"outside\n").unwrap();
    std::os::unix::fs::symlink(base.join("secret.txt"), root.join("link.txt")).unwrap();
    for (srv, cli) in [("server", "client"), ("http3-server", "http3-client")] {
        let s = Server::ours(srv, &["--root", root.to_str().unwrap()]);
        assert_eq!(our_client(cli, s.port, &["/ok.txt"]).stdout, b"inside\n");
        for path in ["/../secret.txt", "/ok.txt/../../secret.txt", "/link.txt", "//etc/passwd"] {
            let r = our_client(cli, s.port, &[path]);
            assert_eq!(r.code(), Some(1), "{cli} {path}: {}", r.stderr);
            assert!(!String::from_utf8_lossy(&r.stdout).contains("outside"), "{cli} {path} escaped");
            assert!(!String::from_utf8_lossy(&r.stdout).contains("root:"), "{cli} {path} escaped");
        }
    }
}
