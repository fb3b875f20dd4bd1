//! The example clients' built-in output: several paths, one failing,
//! the rest still fetched; bodies into a pipe the host drains on the same
//! loop; each body to its own file.

mod common;
use common::*;
use std::path::Path;
use std::io::Read;
use std::process::{Command, Stdio};

#[test]
fn a_failed_path_does_not_abort_the_others() {
    let dir = tempdir("out-404");
    std::fs::write(dir.join("a"), b"first\n").unwrap();
    std::fs::write(dir.join("b"), b"second\n").unwrap();
    let s = Server::ours("http3-server", &["--root", dir.to_str().unwrap()]);
    let r = our_client("http3-client", s.port, &["/a", "/missing", "/b"]);
    assert_eq!(r.stdout, b"first\nsecond\n", "{}", r.stderr);
    assert_eq!(r.code(), Some(1), "one response failed");
    assert!(r.stderr.contains("request for /missing failed: server answered status 404"), "{}", r.stderr);
}

#[test]
fn a_pipe_drained_by_the_host_on_the_same_loop_gets_the_whole_body() {
    let dir = tempdir("out-pipe");
    let data = pattern(3 << 20);
    std::fs::write(dir.join("big"), &data).unwrap();
    let s = Server::ours("server", &["--root", dir.to_str().unwrap()]);
    let prog = dir.join("pipe_output");
    compile_c(&[Path::new("tests/c/pipe_output.c")], &prog);
    let mut cmd = Command::new(&prog);
    cmd.args(["127.0.0.1", &s.port.to_string(), "/big"]).arg(dir.join("fifo"));
    let r = run(cmd, DEADLINE);
    assert_eq!(String::from_utf8_lossy(&r.stdout).trim(), format!("drained {}", data.len()), "{}", r.stderr);
    assert_eq!(r.code(), Some(0), "{}", r.stderr);
}

#[test]
fn each_body_to_its_own_file_all_at_once() {
    let dir = tempdir("out-dir");
    let files: Vec<(String, Vec<u8>)> = (0..20).map(|i| (format!("f{i}"), pattern(1000 + i * 5000))).collect();
    for (name, data) in &files {
        std::fs::write(dir.join(name), data).unwrap();
    }
    let s = Server::ours("http3-server", &["--root", dir.to_str().unwrap()]);
    let out = dir.join("downloads");
    let paths: Vec<String> = files.iter().map(|(n, _)| format!("/{n}")).collect();
    let mut cmd = Command::new(ours("http3-client"));
    cmd.env("QUICHE_EV_QUIET", "1").arg("--output-dir").arg(&out).args(["127.0.0.1", &s.port.to_string()])
        .args(&paths);
    let r = run(cmd, DEADLINE);
    assert_eq!(r.code(), Some(0), "{}", r.stderr);
    for (name, data) in &files {
        assert!(std::fs::read(out.join(name)).unwrap() == *data, "{name}");
    }
}

#[test]
fn a_response_paused_by_its_host_outlives_a_server_that_closed_after_sending_it_all() {
    // The client's output is a pipe nobody reads yet (reopened through
    // /dev/stdout: --output writes without blocking): it pauses the
    // response after the pipe's 64 KiB. The rest (within the client's
    // 1 MB stream window) arrives and is acknowledged, so the shutting
    // down server sees the response delivered and closes the connection.
    // What the client had received is still its host's: once the pipe is
    // drained, the whole body comes out and the client exits 0.
    paused_response_after_the_server_closed("out-paused-close", false, None);
}

#[test]
fn a_salvaged_response_taken_a_little_at_a_time_keeps_its_end() {
    // As above, over hq-interop (where the FIN is read with the last
    // bytes, and kept only with them), and the pipe drained 4 KiB at a
    // time: the host takes part of each chunk of what was kept at the
    // close (many chunks, the FIN behind the last one). The end of the
    // body must survive every partial take, or it never completes.
    paused_response_after_the_server_closed("out-paused-close-small", true, Some(4096));
}

/// An 800 kB response paused by a full pipe while the server shuts down;
/// the pipe is then drained (`read_chunk` bytes per read, or at once).
/// `hq`: hq-interop's examples, else HTTP/3's.
fn paused_response_after_the_server_closed(tag: &str, hq: bool, read_chunk: Option<usize>) {
    let (server, client) = if hq { ("server", "client") } else { ("http3-server", "http3-client") };
    let dir = tempdir(tag);
    let data = pattern(800_000);
    std::fs::write(dir.join("f"), &data).unwrap();
    let mut s = Server::ours_env(server, &["--root", dir.to_str().unwrap()], &[("QUICHE_EV_LOG", "debug")]);
    let mut client = Command::new(ours(client))
        .env("QUICHE_EV_QUIET", "1")
        .args(["--output", "/dev/stdout", "127.0.0.1", &s.port.to_string(), "/f"])
        .stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped())
        .spawn().unwrap();
    assert!(s.stderr.wait_for("new connection", DEADLINE), "{}", s.stderr.dump());
    s.signal(libc::SIGTERM);
    assert_eq!(s.wait_exit(DEADLINE).and_then(|st| st.code()), Some(0), "{}", s.stderr.dump());
    let mut out = client.stdout.take().unwrap();
    let mut body = Vec::new();
    match read_chunk {
        None => {
            out.read_to_end(&mut body).unwrap();
        }
        Some(n) => {
            // A reader on its own thread: a client that never completes
            // keeps the pipe open, and the deadline below ends it.
            let reader = std::thread::spawn(move || {
                let (mut body, mut buf) = (Vec::new(), vec![0u8; n]);
                while let Ok(k) = out.read(&mut buf) {
                    if k == 0 {
                        break;
                    }
                    body.extend_from_slice(&buf[..k]);
                    std::thread::sleep(std::time::Duration::from_micros(200));
                }
                body
            });
            let done = wait_child(&mut client, DEADLINE).is_some();
            if !done {
                let _ = client.kill(); // (closes the pipe: the reader ends)
            }
            body = reader.join().unwrap();
            assert!(done, "the client never completed ({} of {} bytes out)", body.len(), data.len());
        }
    }
    let status = wait_child(&mut client, DEADLINE).expect("the client exits");
    let mut err = String::new();
    client.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert_eq!(body.len(), data.len(), "{err}\nserver:\n{}", s.stderr.dump());
    assert!(body == data);
    assert_eq!(status.code(), Some(0), "{err}");
}
