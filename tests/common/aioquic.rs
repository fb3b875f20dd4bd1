//! The aioquic peer (`tests/peers/aioquic_peer.py`, in the venv that
//! `make peers` makes): an independent QUIC/HTTP/3 stack for the tests.

use super::*;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The venv's interpreter; a missing venv is a failure, not a skip.
pub fn python() -> PathBuf {
    let venv = root().join("target/venv");
    let py = venv.join("bin/python");
    assert!(py.exists() && venv.join(".installed").exists(),
            "aioquic venv {} is missing or incomplete: run `make peers` first", venv.display());
    py
}

pub fn peer_script() -> PathBuf {
    let p = root().join("tests/peers/aioquic_peer.py");
    assert!(p.exists(), "{} is missing", p.display());
    p
}

/// Starts the aioquic peer server (`alpn` "hq-interop" or "h3") on a
/// kernel-chosen port, with the same cert as ours; `extra` goes before
/// HOST PORT. Waits for its "listening on" line.
pub fn aioquic_server(alpn: &str, extra: &[&str]) -> Server {
    let mut cmd = Command::new(python());
    cmd.current_dir(root().join("c-examples"))
        .arg(peer_script())
        .args(["server", "--alpn", alpn, "--cert", "cert.crt", "--key", "cert.key"])
        .args(extra)
        .args(["127.0.0.1", "0"]);
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped())
        .spawn().unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let stderr = lines_of(child.stderr.take().unwrap());
    let stdout = lines_of(child.stdout.take().unwrap());
    let mut s = Server { child, port: 0, stderr, stdout };
    assert!(s.stderr.wait_for("listening on", DEADLINE),
            "aioquic server did not start:\n{}", s.stderr.dump());
    let line = s.stderr.last("listening on").unwrap();
    s.port = line.rsplit(':').next().unwrap().trim().parse()
        .unwrap_or_else(|e| panic!("bad listening line {line:?}: {e}"));
    s
}

/// Runs the aioquic peer client against 127.0.0.1:`port`; `opts` go
/// before HOST PORT, `path` (if any) after.
pub fn aioquic_client(alpn: &str, port: u16, opts: &[&str], path: Option<&str>) -> Run {
    let mut cmd = Command::new(python());
    cmd.arg(peer_script())
        .args(["client", "--alpn", alpn, "--timeout", "10"])
        .args(opts)
        .args(["127.0.0.1", &port.to_string()])
        .args(path);
    run(cmd, DEADLINE)
}

