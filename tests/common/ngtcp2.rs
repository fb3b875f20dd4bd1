//! ngtcp2/nghttp3 peers (Debian's ngtcp2-server and ngtcp2-client, the
//! GnuTLS builds `gtlsserver` / `gtlsclient`): an independent HTTP/3 stack
//! for the tests.

use super::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const INSTALL: &str = "sudo apt-get install ngtcp2-server ngtcp2-client";

/// `name` on PATH; missing is a failure that says how to install it.
pub fn tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} not found on PATH: install it with `{INSTALL}`"))
}

/// gtlsserver on a free port serving `dir`, with our cert; `extra` are
/// more options. gtlsserver takes a fixed port, so if another process
/// grabbed the port in between, it exits at once and we try another.
pub fn gtlsserver(dir: &Path, extra: &[&str]) -> Server {
    let bin = tool("gtlsserver");
    let c = root().join("c-examples");
    for _ in 0..5 {
        let port = free_udp_port();
        let mut cmd = Command::new(&bin);
        cmd.current_dir(&c)
            .arg("-q")
            .arg("-d").arg(dir)
            .args(extra)
            .args(["127.0.0.1", &port.to_string()])
            .arg(c.join("cert.key"))
            .arg(c.join("cert.crt"));
        let mut s = Server::fixed_port(cmd, port);
        // Bound by someone: make sure it is gtlsserver, still running.
        if s.wait_exit(Duration::from_millis(100)).is_none() {
            return s;
        }
        eprintln!("gtlsserver on port {port} exited early:\n{}", s.stderr.dump());
    }
    panic!("gtlsserver did not start");
}

/// Runs gtlsclient against 127.0.0.1:`port` for `paths`, saving the
/// bodies under a fresh directory, which it returns with the run.
pub fn gtlsclient(port: u16, extra: &[&str], paths: &[&str], tag: &str) -> (Run, PathBuf) {
    let dl = tempdir(tag);
    let mut cmd = Command::new(tool("gtlsclient"));
    cmd.arg("-q")
        .arg("--exit-on-all-streams-close")
        .arg("--timeout=10s")
        .arg("--download").arg(&dl)
        .args(extra)
        .args(["127.0.0.1", &port.to_string()])
        .args(paths.iter().map(|p| format!("https://127.0.0.1:{port}{p}")))
        .stdin(Stdio::null());
    (run(cmd, DEADLINE), dl)
}
