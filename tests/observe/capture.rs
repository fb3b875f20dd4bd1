//! Loopback captures with dumpcap, read back with tshark: the harness of
//! the key log tests.

use crate::common::*;
use std::io::Read;
use std::net::UdpSocket;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// The bytes dumpcap has written so far (pcapng), and whether it is done.
type Stream = Arc<(Mutex<(Vec<u8>, bool)>, Condvar)>;

/// A running dumpcap on `lo`. It writes to a pipe, which it flushes after
/// every packet (a file it only flushes now and then), so the test sees
/// what has been captured so far.
pub struct Capture {
    child: Child,
    stream: Stream,
    reader: Option<JoinHandle<()>>,
    stderr: Lines,
    /// Where the probes go: a socket of ours, so they raise no ICMP error.
    probe: UdpSocket,
}

impl Capture {
    /// Starts capturing the datagrams `filter` (a pcap capture filter)
    /// selects; returns once packets really are being captured.
    pub fn start(filter: &str) -> Capture {
        let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
        let filter = format!("({filter}) or (udp dst port {})", probe.local_addr().unwrap().port());
        let mut child = Command::new("dumpcap")
            .args(["-q", "-i", "lo", "-f", &filter, "-w", "-"])
            .stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start dumpcap: {e} (install tshark: apt-get install tshark)"));
        let stderr = lines_of(child.stderr.take().unwrap());
        let stream: Stream = Default::default();
        let mut out = child.stdout.take().unwrap();
        let s = stream.clone();
        let reader = thread::spawn(move || {
            let mut buf = [0u8; 65536];
            loop {
                let n = out.read(&mut buf).unwrap_or(0);
                let (m, cv) = &*s;
                let mut g = m.lock().unwrap();
                if n == 0 {
                    g.1 = true;
                } else {
                    g.0.extend_from_slice(&buf[..n]);
                }
                cv.notify_all();
                if n == 0 {
                    break;
                }
            }
        });
        let cap = Capture { child, stream, reader: Some(reader), stderr, probe };
        cap.sync();
        cap
    }

    /// Sends a marked datagram to the probe port until it shows up in the
    /// capture. When it does, the capture is live, and everything sent on
    /// `lo` before it is in the capture too (the kernel hands packets to
    /// the capture in the order they are sent).
    fn sync(&self) {
        let marker: String = random16().iter().map(|b| format!("{b:02x}")).collect();
        let marker = format!("quiche-ev capture probe {marker}");
        let to = self.probe.local_addr().unwrap();
        let end = Instant::now() + DEADLINE;
        loop {
            self.probe.send_to(marker.as_bytes(), to).unwrap();
            if self.wait_contains(marker.as_bytes(), Duration::from_millis(50)) {
                return;
            }
            let stopped = self.stream.0.lock().unwrap().1;
            assert!(!stopped && Instant::now() < end, "dumpcap captured nothing:\n{}", self.stderr.dump());
        }
    }

    /// Waits up to `patience` until the capture holds `needle`; false at
    /// the deadline or when dumpcap stopped.
    fn wait_contains(&self, needle: &[u8], patience: Duration) -> bool {
        let end = Instant::now() + patience;
        let (m, cv) = &*self.stream;
        let mut g = m.lock().unwrap();
        loop {
            if g.0.windows(needle.len()).any(|w| w == needle) {
                return true;
            }
            let now = Instant::now();
            if g.1 || now >= end {
                return false;
            }
            g = cv.wait_timeout(g, end - now).unwrap().0;
        }
    }

    /// Waits until everything sent so far is captured, stops dumpcap
    /// (SIGINT: it completes the file and exits 0) and writes the capture
    /// to `path`.
    pub fn finish(mut self, path: &Path) {
        self.sync();
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let st = wait_child(&mut self.child, DEADLINE).expect("dumpcap did not stop on SIGINT");
        assert!(st.success(), "dumpcap: {st}\n{}", self.stderr.dump());
        self.reader.take().unwrap().join().unwrap();
        std::fs::write(path, &self.stream.0.lock().unwrap().0).unwrap();
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What tshark prints for `pcap`, decrypted with the secrets in `keylog`.
fn tshark(pcap: &Path, keylog: &Path, args: &[&str]) -> String {
    // No personal preferences (a key log file set there, say) apply.
    let prefs = tempdir("tshark-prefs");
    let out = Command::new("tshark")
        .env("WIRESHARK_CONFIG_DIR", &prefs)
        .arg("-n").arg("-r").arg(pcap)
        .arg("-o").arg(format!("tls.keylog_file:{}", keylog.display()))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot start tshark: {e} (apt-get install tshark)"));
    assert!(out.status.success(), "tshark {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// How many QUIC packets tshark sees in `pcap` (decrypted or not).
pub fn quic_packets(pcap: &Path, keylog: &Path) -> usize {
    tshark(pcap, keylog, &["-Y", "quic", "-T", "fields", "-e", "frame.number"]).lines().count()
}

/// The data of every STREAM frame tshark could decrypt, one entry per
/// frame.
pub fn stream_data(pcap: &Path, keylog: &Path) -> Vec<Vec<u8>> {
    let out = tshark(pcap, keylog, &["-Y", "quic.stream_data", "-T", "fields", "-e", "quic.stream_data"]);
    out.split(['\n', ','])
        .filter(|h| !h.is_empty())
        .map(|h| (0..h.len()).step_by(2).map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap()).collect())
        .collect()
}
