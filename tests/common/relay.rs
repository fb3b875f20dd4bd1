//! The network simulator (tests/interop/relay.py) between a client and a
//! server: NAT rebinding, loss, delay. Runs until dropped; its statistics
//! come back as JSON on stdout when it is stopped.

use super::*;
use std::process::{Command, Stdio};

pub struct Relay {
    pub child: Child,
    pub port: u16,
    pub stderr: Lines,
    stdout: Lines,
}

impl Relay {
    /// A relay on a free loopback port forwarding to 127.0.0.1:`server`,
    /// with relay.py's options `opts` (e.g. `["--rebind", "port:3MB"]`).
    pub fn start(server: u16, opts: &[&str]) -> Relay {
        let mut child = Command::new("python3")
            .arg(root().join("tests/interop/relay.py"))
            .args(["--server", &format!("127.0.0.1:{server}"), "--listen", "127.0.0.1:0"])
            .args(opts)
            .stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped())
            .spawn().expect("python3 runs tests/interop/relay.py");
        let stderr = lines_of(child.stderr.take().unwrap());
        let stdout = lines_of(child.stdout.take().unwrap());
        assert!(stderr.wait_for("relay listening on", DEADLINE), "relay did not start:\n{}", stderr.dump());
        let line = stderr.last("relay listening on").unwrap();
        let port = line.rsplit(':').next().unwrap().trim().parse().unwrap();
        Relay { child, port, stderr, stdout }
    }

    /// Stops it and returns its statistics (one JSON line).
    pub fn stop(mut self) -> String {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        assert!(wait_child(&mut self.child, DEADLINE).is_some(), "relay did not stop");
        assert!(self.stdout.wait_closed(DEADLINE));
        self.stdout.all().join("\n")
    }

    /// A number from the statistics, e.g. `"rebinds"`.
    pub fn stat(stats: &str, key: &str) -> u64 {
        let at = stats.find(&format!("\"{key}\": ")).unwrap_or_else(|| panic!("no {key} in {stats}"));
        stats[at + key.len() + 4..].chars().take_while(|c| c.is_ascii_digit()).collect::<String>().parse().unwrap()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
