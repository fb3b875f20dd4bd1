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
    // Batched I/O (default) and the plain path, hq and HTTP/3.
    for (srv, cli, plain) in [("server", "client", false), ("http3-server", "http3-client", false),
                              ("server", "client", true), ("http3-server", "http3-client", true)] {
        let env: &[(&str, &str)] = if plain { &[("QUICHE_EV_PLAIN_IO", "1")] } else { &[] };
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

#[test]
fn sigterm_closes_live_connections_and_exits_0() {
    let dir = tempdir("sigterm");
    std::fs::write(dir.join("big"), vec![7u8; 200 << 20]).unwrap();
    let mut s = Server::ours("server", &["--root", dir.to_str().unwrap()]);
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
    let cst = wait_child(&mut c, DEADLINE).expect("client did not finish");
    assert_eq!(cst.code(), Some(1));
    assert!(client_err.wait_for("server shutting down", DEADLINE),
            "the client never saw the CONNECTION_CLOSE:\n{}", client_err.dump());
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
