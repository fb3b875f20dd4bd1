//! Test harness: starts the real programs (ours from `c-examples/`,
//! upstream's from `target/upstream/`, and independent peers) on loopback,
//! on free ports, and waits for conditions with deadlines.
//!
//! `make test` builds everything first; these tests never build.

#![allow(dead_code)]

pub mod aioquic;
pub mod inproc;
pub mod relay;
pub mod ngtcp2;

use std::io::{BufRead, BufReader, Read};
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

pub const DEADLINE: Duration = Duration::from_secs(20);

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Our example binary `name` (server, client, http3-server, http3-client).
pub fn ours(name: &str) -> PathBuf {
    let p = root().join("c-examples").join(name);
    assert!(p.exists(), "{} is missing: run `make` first", p.display());
    p
}

/// Upstream's sample `name` built against plain libquiche (`flavour`
/// "quiche") or against libquiche_ev.a ("quiche-ev").
pub fn upstream(flavour: &str, name: &str) -> PathBuf {
    let p = root().join("target/upstream").join(flavour).join(name);
    assert!(p.exists(), "{} is missing: run `make upstream` first", p.display());
    p
}

/// A port no one listens on right now (the kernel's choice).
pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The lines so far, and whether the pipe closed.
type Collected = Mutex<(Vec<String>, bool)>;

/// Lines a child wrote to one of its pipes, collected as they come.
#[derive(Clone, Default)]
pub struct Lines(Arc<(Collected, Condvar)>);

impl Lines {
    fn collect(r: impl Read + Send + 'static) -> Lines {
        let lines = Lines::default();
        let l = lines.clone();
        thread::spawn(move || {
            let mut r = BufReader::new(r);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match r.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let s = String::from_utf8_lossy(&buf).trim_end_matches('\n').to_string();
                        let (m, cv) = &*l.0;
                        m.lock().unwrap().0.push(s);
                        cv.notify_all();
                    }
                }
            }
            let (m, cv) = &*l.0;
            m.lock().unwrap().1 = true;
            cv.notify_all();
        });
        lines
    }

    pub fn all(&self) -> Vec<String> {
        self.0 .0.lock().unwrap().0.clone()
    }

    pub fn count(&self, pat: &str) -> usize {
        self.all().iter().filter(|l| l.contains(pat)).count()
    }

    /// How many lines are exactly `line`.
    pub fn count_exact(&self, line: &str) -> usize {
        self.all().iter().filter(|l| *l == line).count()
    }

    pub fn has(&self, pat: &str) -> bool {
        self.count(pat) > 0
    }

    /// Waits until `n` lines contain `pat`; false at the deadline or when
    /// the pipe closed first.
    pub fn wait_for_n(&self, pat: &str, n: usize, deadline: Duration) -> bool {
        let end = Instant::now() + deadline;
        let (m, cv) = &*self.0;
        let mut g = m.lock().unwrap();
        loop {
            if g.0.iter().filter(|l| l.contains(pat)).count() >= n {
                return true;
            }
            let now = Instant::now();
            if g.1 || now >= end {
                return false;
            }
            g = cv.wait_timeout(g, end - now).unwrap().0;
        }
    }

    pub fn wait_for(&self, pat: &str, deadline: Duration) -> bool {
        self.wait_for_n(pat, 1, deadline)
    }

    /// Waits until the pipe closes (the process exited).
    pub fn wait_closed(&self, deadline: Duration) -> bool {
        let end = Instant::now() + deadline;
        let (m, cv) = &*self.0;
        let mut g = m.lock().unwrap();
        while !g.1 {
            let now = Instant::now();
            if now >= end {
                return false;
            }
            g = cv.wait_timeout(g, end - now).unwrap().0;
        }
        true
    }

    /// The last line containing `pat`, if any.
    pub fn last(&self, pat: &str) -> Option<String> {
        self.all().into_iter().rev().find(|l| l.contains(pat))
    }

    pub fn dump(&self) -> String {
        self.all().join("\n")
    }
}

/// Collects the lines of any pipe (e.g. a client's stderr).
pub fn lines_of(r: impl Read + Send + 'static) -> Lines {
    Lines::collect(r)
}

/// A running server process; killed when dropped.
pub struct Server {
    pub child: Child,
    pub port: u16,
    pub stderr: Lines,
    pub stdout: Lines,
}

impl Server {
    /// Starts one of our servers on a kernel-chosen port and waits for its
    /// "listening on" line. `args` go before HOST PORT.
    pub fn ours(name: &str, args: &[&str]) -> Server {
        Self::ours_env(name, args, &[])
    }

    pub fn ours_env(name: &str, args: &[&str], env: &[(&str, &str)]) -> Server {
        Self::ours_on(name, "127.0.0.1", args, env)
    }

    /// One of our servers on `host` (e.g. "::1").
    pub fn ours_on(name: &str, host: &str, args: &[&str], env: &[(&str, &str)]) -> Server {
        Self::ours_at(name, host, 0, args, env)
    }

    /// One of our servers on `host`:`port` (0: a free one).
    pub fn ours_at(name: &str, host: &str, port: u16, args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut cmd = our_command(name);
        cmd.current_dir(root().join("c-examples")).args(args).args([host, &port.to_string()]);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut s = Server::spawn(cmd, 0);
        assert!(s.stderr.wait_for("listening on", DEADLINE), "server did not start:\n{}", s.stderr.dump());
        let line = s.stderr.all().into_iter().find(|l| l.contains("listening on")).unwrap();
        s.port = line.rsplit(':').next().unwrap().trim().parse().unwrap();
        s
    }

    /// Starts any server `cmd` that takes a fixed port; waits until the
    /// port is bound.
    pub fn fixed_port(cmd: Command, port: u16) -> Server {
        let s = Server::spawn(cmd, port);
        let end = Instant::now() + DEADLINE;
        while UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            assert!(Instant::now() < end, "server never bound port {port}:\n{}", s.stderr.dump());
            thread::sleep(Duration::from_millis(10));
        }
        s
    }

    /// Upstream's sample server on a free port (run where cert.crt is).
    pub fn upstream(flavour: &str, name: &str) -> Server {
        let port = free_udp_port();
        let mut cmd = Command::new(upstream(flavour, name));
        cmd.current_dir(root().join("c-examples")).args(["127.0.0.1", &port.to_string()]);
        Server::fixed_port(cmd, port)
    }

    fn spawn(mut cmd: Command, port: u16) -> Server {
        let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped())
            .spawn().unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        let stderr = Lines::collect(child.stderr.take().unwrap());
        let stdout = Lines::collect(child.stdout.take().unwrap());
        Server { child, port, stderr, stdout }
    }

    pub fn signal(&self, sig: i32) {
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// Waits for exit with a deadline; None if it is still running.
    pub fn wait_exit(&mut self, deadline: Duration) -> Option<ExitStatus> {
        wait_child(&mut self.child, deadline)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn wait_child(child: &mut Child, deadline: Duration) -> Option<ExitStatus> {
    let end = Instant::now() + deadline;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return Some(st);
        }
        if Instant::now() >= end {
            return None;
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// What a finished client produced.
pub struct Run {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Run {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

/// Runs a client to completion (killed at the deadline, which fails).
pub fn run(cmd: Command, deadline: Duration) -> Run {
    run_with(cmd, deadline, true)
}

/// Runs a client; at the deadline it is killed and whatever it printed is
/// returned (status: killed). For upstream's clients, which sometimes never
/// exit after a complete exchange: when quiche's timeout is 0 they re-arm
/// their timer with `repeat = 0`, which stops it.
pub fn run_lenient(cmd: Command, deadline: Duration) -> Run {
    run_with(cmd, deadline, false)
}

fn run_with(mut cmd: Command, deadline: Duration, strict: bool) -> Run {
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped())
        .spawn().unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = thread::spawn(move || { let mut v = Vec::new(); let _ = out.read_to_end(&mut v); v });
    let t_err = thread::spawn(move || { let mut v = Vec::new(); let _ = err.read_to_end(&mut v); v });
    let status = match wait_child(&mut child, deadline) {
        Some(s) => s,
        None if !strict => {
            let _ = child.kill();
            child.wait().unwrap()
        }
        None => {
            let _ = child.kill();
            let _ = child.wait();
            let e = t_err.join().unwrap();
            let e = String::from_utf8_lossy(&e);
            let tail: Vec<&str> = e.lines().rev().take(40).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            panic!("{cmd:?} did not finish within {deadline:?}; last lines of stderr:\n{}", tail.join("\n"));
        }
    };
    Run {
        status,
        stdout: t_out.join().unwrap(),
        stderr: String::from_utf8_lossy(&t_err.join().unwrap()).into_owned(),
    }
}

/// Our example `name`, quiet (no quiche debug log), without the
/// developer's `SSLKEYLOGFILE` and `QLOGDIR`: a test that wants a key log
/// or qlog files sets them on the command.
pub fn our_command(name: &str) -> Command {
    let mut cmd = Command::new(ours(name));
    cmd.env("QUICHE_EV_QUIET", "1").env_remove("SSLKEYLOGFILE").env_remove("QLOGDIR");
    cmd
}

/// One of our clients against 127.0.0.1:`port`, quiet (no quiche debug log).
pub fn our_client(name: &str, port: u16, extra: &[&str]) -> Run {
    let mut cmd = our_command(name);
    cmd.arg("127.0.0.1").arg(port.to_string()).args(extra);
    run(cmd, DEADLINE)
}

/// Upstream's sample client against 127.0.0.1:`port`.
pub fn upstream_client(flavour: &str, name: &str, port: u16) -> Run {
    // Unbuffered stdout: when one hangs after its exchange and is killed at
    // the deadline, what it printed is not lost in its stdio buffer.
    let mut cmd = Command::new("stdbuf");
    cmd.arg("-o0").arg(upstream(flavour, name)).arg("127.0.0.1").arg(port.to_string());
    run_lenient(cmd, Duration::from_secs(10))
}

/// The pinned quiche package's folder (`include/quiche.h`, `examples/`).
pub fn quiche_package() -> PathBuf {
    let out = Command::new(env!("CARGO")).args(["metadata", "--format-version", "1"])
        .current_dir(root()).output().unwrap();
    let meta = String::from_utf8(out.stdout).unwrap();
    // The quiche package's manifest path, without a JSON parser.
    let at = meta.find("/quiche-0.30.0/Cargo.toml").expect("quiche 0.30.0 in cargo metadata");
    let start = meta[..at].rfind('"').unwrap() + 1;
    PathBuf::from(&meta[start..at]).join("quiche-0.30.0")
}

/// A fresh folder for `tag` in this thread, inside the test process's own
/// folder under the system's temporary one. That folder is removed when the
/// process exits, so repeated runs leave nothing behind.
pub fn tempdir(tag: &str) -> PathBuf {
    let d = process_tempdir().join(format!("{tag}-{:?}", thread::current().id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn process_tempdir() -> PathBuf {
    static REGISTER: std::sync::Once = std::sync::Once::new();
    static OWNER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    extern "C" fn remove() {
        // Only the process that made it (not a forked child exiting).
        if OWNER.load(std::sync::atomic::Ordering::Relaxed) == std::process::id() {
            let _ = std::fs::remove_dir_all(process_tempdir());
        }
    }
    REGISTER.call_once(|| {
        OWNER.store(std::process::id(), std::sync::atomic::Ordering::Relaxed);
        // SAFETY: `remove` is a plain function that never unwinds out
        // (remove_dir_all reports errors as values).
        unsafe { libc::atexit(remove) };
    });
    std::env::temp_dir().join(format!("quiche-ev-tests-{}", std::process::id()))
}

pub fn exists(p: &Path) -> bool {
    p.exists()
}

/// A small deterministic PRNG (xorshift64) for junk and mutations.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number below `n` (0 for n = 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// 16 bytes that differ from run to run and call to call.
pub fn random16() -> [u8; 16] {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(1);
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    let mut r = Rng(t ^ COUNTER.fetch_add(0x9e37_79b9, Ordering::Relaxed) | 1);
    let mut id = [0u8; 16];
    for b in &mut id {
        *b = r.next() as u8;
    }
    id
}

/// `len` bytes of a non-repeating pattern (an LCG), so a dropped,
/// duplicated or reordered chunk shows.
pub fn pattern(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9;
    (0..len)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            (x >> 16) as u8
        })
        .collect()
}

pub const FNV_BASIS: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a, 64 bits, continued from `h`: the checksum fetch prints per
/// response and app-server sends (/trailers, /upload).
pub fn fnv1a(h: u64, bytes: impl IntoIterator<Item = u8>) -> u64 {
    bytes.into_iter().fold(h, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
}

/// The hash fetch prints for a body, in its hex.
pub fn hash_of(body: &[u8]) -> String {
    format!("{:016x}", fnv1a(FNV_BASIS, body.iter().copied()))
}

/// What app-server's /upload answers once it read `body`.
pub fn upload_answer(body: &[u8]) -> Vec<u8> {
    format!("{{\"bytes\": {}, \"fnv1a64\": \"{}\"}}\n", body.len(), hash_of(body)).into_bytes()
}

/// A Makefile variable (its WARNINGS, NATIVE_LIBS, ...) as make sees it
/// on this system (`make -s print-NAME`): NATIVE_LIBS, for one, has a
/// line per operating system.
pub fn makefile_var(name: &str) -> Vec<String> {
    let out = Command::new("make").current_dir(root()).args(["-s", "--no-print-directory"])
        .arg(format!("print-{name}")).output().expect("make runs");
    assert!(out.status.success(), "make print-{name}: {}", String::from_utf8_lossy(&out.stderr));
    let value = String::from_utf8(out.stdout).unwrap();
    assert!(!value.trim().is_empty(), "{name} is empty or not in the Makefile");
    value.split_whitespace().map(String::from).collect()
}

/// Builds a C program from `sources` (paths from the repository root)
/// against target/release/libquiche_ev.a as the Makefile builds the
/// examples: its WARNINGS and NATIVE_LIBS, with include/, quiche's header
/// and c-examples/ on the include path.
pub fn compile_c(sources: &[&Path], out: &Path) {
    let lib = root().join("target/release/libquiche_ev.a");
    assert!(lib.exists(), "{} is missing: run `make` first", lib.display());
    let r = Command::new("cc").current_dir(root())
        .args(["-O2", "-g"]).args(makefile_var("WARNINGS"))
        .arg("-Iinclude").arg(format!("-I{}", quiche_package().join("include").display())).arg("-Ic-examples")
        .arg("-o").arg(out).args(sources).arg(&lib)
        .args(makefile_var("NATIVE_LIBS"))
        .output().expect("cc runs");
    assert!(r.status.success(), "cannot build {}:\n{}", out.display(), String::from_utf8_lossy(&r.stderr));
}

/// The last `n` lines of `text` (a long log in a failure message).
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
