//! The application API from C: `c-examples/app-server` (responses made by
//! C: JSON, statuses, timers, an echo, a generated 1 GiB body) and
//! `c-examples/fetch` (many requests on one connection, each body handled
//! in C), against each other and against aioquic and ngtcp2; and C
//! programs compiled here from `tests/c/` that run servers and clients in
//! one loop, call every request, connection and client function, and
//! free each handle from inside each kind of its callbacks.

mod common;
use common::aioquic::{aioquic_client, aioquic_server};
use common::ngtcp2::{gtlsclient, gtlsserver};
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

const GIB: u64 = 1 << 30;

/// A 1 GiB body over loopback on a shared 2-core machine: generous.
const BIG_DEADLINE: Duration = Duration::from_secs(180);

// ---- what the programs print and send ------------------------------------

/// Byte `i` of app-server's generated bodies (/big, /stream).
fn pattern_byte(i: u64) -> u8 {
    ((i as u32).wrapping_mul(2_654_435_761) >> 24) as u8
}

fn pattern(len: u64) -> Vec<u8> {
    (0..len).map(pattern_byte).collect()
}

/// The hash of app-server's pattern over `len` bytes, without holding it.
fn pattern_hash(len: u64) -> String {
    format!("{:016x}", fnv1a(FNV_BASIS, (0..len).map(pattern_byte)))
}

/// One line of fetch's output: `PATH STATUS BYTES FNV1A64 OUTCOME`.
#[derive(Debug, Clone, PartialEq)]
struct Response {
    path: String,
    status: u16,
    bytes: u64,
    hash: String,
    outcome: String,
}

fn responses(stdout: &[u8]) -> Vec<Response> {
    String::from_utf8_lossy(stdout).lines().map(|l| {
        let f: Vec<&str> = l.split(' ').collect();
        assert_eq!(f.len(), 5, "not a response line: {l:?}");
        Response { path: f[0].into(), status: f[1].parse().unwrap(), bytes: f[2].parse().unwrap(),
                   hash: f[3].into(), outcome: f[4].into() }
    }).collect()
}

/// The line for `path` (exactly one).
fn response<'a>(all: &'a [Response], path: &str) -> &'a Response {
    let found: Vec<&Response> = all.iter().filter(|r| r.path == path).collect();
    assert_eq!(found.len(), 1, "one line for {path} in {all:#?}");
    found[0]
}

fn complete(path: &str, status: u16, body: &[u8]) -> Response {
    Response { path: path.into(), status, bytes: body.len() as u64, hash: hash_of(body), outcome: "complete".into() }
}

// ---- running the programs --------------------------------------------------

fn app_server(args: &[&str]) -> Server {
    Server::ours("app-server", args)
}

fn fetch_cmd(port: u16, opts: &[&str], paths: &[&str]) -> Command {
    let mut cmd = Command::new(ours("fetch"));
    cmd.args(opts).args(["127.0.0.1", &port.to_string()]).args(paths);
    cmd
}

fn fetch(port: u16, opts: &[&str], paths: &[&str]) -> Run {
    run(fetch_cmd(port, opts, paths), DEADLINE)
}

/// fetch running in the background, its stdout collected as it comes.
struct Background {
    child: Child,
    stdout: Lines,
    stderr: Lines,
}

impl Background {
    fn start(mut cmd: Command) -> Background {
        let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let stdout = lines_of(child.stdout.take().unwrap());
        let stderr = lines_of(child.stderr.take().unwrap());
        Background { child, stdout, stderr }
    }

    fn wait(&mut self, deadline: Duration) -> (ExitStatus, Vec<Response>) {
        let status = wait_child(&mut self.child, deadline)
            .unwrap_or_else(|| panic!("fetch did not finish; stderr:\n{}", self.stderr.dump()));
        assert!(self.stdout.wait_closed(DEADLINE));
        let out = self.stdout.all().join("\n");
        (status, responses(out.as_bytes()))
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A process's peak resident size (VmHWM), in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM in /proc/PID/status");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// SIGTERM, then [`exited`].
fn stop(s: Server) -> (ExitStatus, Vec<(String, u64)>) {
    s.signal(libc::SIGTERM);
    exited(s)
}

/// The exit status of a server that is stopping, and app-server's
/// counters line (`app-server stats: requests=.. short_writes=.. ...`)
/// as pairs.
fn exited(mut s: Server) -> (ExitStatus, Vec<(String, u64)>) {
    let status = s.wait_exit(DEADLINE).unwrap_or_else(|| panic!("server did not exit:\n{}", s.stderr.dump()));
    assert!(s.stderr.wait_closed(DEADLINE));
    let line = s.stderr.last("app-server stats:").unwrap_or_else(|| panic!("no stats line:\n{}", s.stderr.dump()));
    let stats = line.split_whitespace().filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.parse().unwrap())).collect();
    (status, stats)
}

fn stat(stats: &[(String, u64)], name: &str) -> u64 {
    stats.iter().find(|(k, _)| k == name).unwrap_or_else(|| panic!("no {name} in {stats:?}")).1
}

/// A C program from tests/c/, compiled (once per test run) as the
/// Makefile compiles the examples: its warnings and libraries, with
/// tests/c/harness.c and c-examples/common.c, against
/// target/release/libquiche_ev.a.
fn c_program(name: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    let exe = root().join("target/app-api").join(name);
    let mut built = BUILT.get_or_init(Default::default).lock().unwrap();
    if built.iter().any(|n| n == name) {
        return exe;
    }
    std::fs::create_dir_all(exe.parent().unwrap()).unwrap();
    let src = format!("tests/c/{name}.c");
    compile_c(&[Path::new(&src), Path::new("tests/c/harness.c"), Path::new("c-examples/common.c")], &exe);
    built.push(name.to_string());
    exe
}

/// Runs a tests/c/ program with the test certificate.
fn run_c_program(name: &str) -> Run {
    run_c_program_for(name, Duration::from_secs(30))
}

fn run_c_program_for(name: &str, deadline: Duration) -> Run {
    let mut cmd = Command::new(c_program(name));
    cmd.current_dir(root().join("c-examples")).args(["cert.crt", "cert.key"]);
    run(cmd, deadline)
}

// ---- app-server and fetch, ours against ours --------------------------------

#[test]
fn gib_generated_in_c_streams_with_bounded_memory_and_backpressure() {
    let s = app_server(&[]);
    let path = format!("/big?n={GIB}");
    let r = run(fetch_cmd(s.port, &[], &[&path]), BIG_DEADLINE);
    assert_eq!(r.code(), Some(0), "stderr:\n{}", r.stderr);
    let got = responses(&r.stdout);
    let want = Response { path: path.clone(), status: 200, bytes: GIB, hash: pattern_hash(GIB),
                          outcome: "complete".into() };
    assert_eq!(got, vec![want], "the body differs from the pattern");

    // The server made 1 GiB, but never held much of it.
    let peak = peak_rss_kib(s.child.id());
    assert!(peak < 100 * 1024, "server peak RSS {peak} KiB for a 1 GiB body");

    // Flow control pushed back, and the writable callback resumed it.
    let (status, stats) = stop(s);
    assert!(status.success());
    assert!(stat(&stats, "short_writes") > 0 && stat(&stats, "writable_calls") > 0, "{stats:?}");
}

#[test]
fn thousand_requests_share_one_connection() {
    let s = app_server(&[]);
    let paths: Vec<String> = (0..1000).map(|i| format!("/json?i={i}")).collect();
    let refs: Vec<&str> = paths.iter().map(String::as_str).collect();
    let r = run(fetch_cmd(s.port, &[], &refs), Duration::from_secs(60));
    assert_eq!(r.code(), Some(0), "stderr:\n{}", r.stderr);
    let got = responses(&r.stdout);
    assert_eq!(got.len(), 1000);
    for p in &paths {
        let g = response(&got, p);
        assert!(g.status == 200 && g.bytes > 0 && g.outcome == "complete", "{g:?}");
    }
    // All on one connection (the server's limit is 100 streams at once:
    // the rest waited in the client library).
    assert!(s.stderr.wait_for("connection closed: requests=1000 ", DEADLINE), "{}", s.stderr.dump());
    assert_eq!(s.stderr.count("connection closed:"), 1, "{}", s.stderr.dump());
}

#[test]
fn response_completed_from_a_timer_two_seconds_later() {
    let s = app_server(&[]);
    let start = Instant::now();
    let r = fetch(s.port, &[], &["/slow"]);
    let took = start.elapsed();
    assert_eq!(r.code(), Some(0), "stderr:\n{}", r.stderr);
    assert_eq!(responses(&r.stdout), vec![complete("/slow", 200, b"slow\n")]);
    assert!(took >= Duration::from_millis(1990), "answered after {took:?}, before the timer");
}

/// Runs `cmd` to completion like [`run`], and also returns its peak
/// resident size in KiB: VmHWM, read while it runs (the last reading
/// before it exits). Not the rusage of wait4: a child spawned with vfork
/// semantics is charged the parent's RSS from before its exec, here the
/// test's own copy of the body.
fn run_with_peak_rss(mut cmd: Command, deadline: Duration) -> (Run, u64) {
    use std::io::Read;
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let t_out = std::thread::spawn(move || { let mut v = Vec::new(); let _ = out.read_to_end(&mut v); v });
    let t_err = std::thread::spawn(move || { let mut v = Vec::new(); let _ = err.read_to_end(&mut v); v });
    let status_file = format!("/proc/{}/status", child.id());
    let hwm = || -> Option<u64> {
        let text = std::fs::read_to_string(&status_file).ok()?;
        text.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()
    };
    let end = Instant::now() + deadline;
    let mut peak = 0;
    let status = loop {
        if let Some(kib) = hwm() {
            peak = peak.max(kib);
        }
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() >= end {
            let _ = child.kill();
            panic!("{cmd:?} did not finish within {deadline:?}");
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let run = Run { status, stdout: t_out.join().unwrap(),
                    stderr: String::from_utf8_lossy(&t_err.join().unwrap()).into_owned() };
    (run, peak)
}

#[test]
fn post_of_50_mib_is_echoed_byte_for_byte_without_buffering() {
    let dir = tempdir("app-echo");
    let body = common::pattern(50 << 20);
    let file = dir.join("upload.bin");
    std::fs::write(&file, &body).unwrap();
    let s = app_server(&[]);
    let (r, peak_kib) = run_with_peak_rss(fetch_cmd(s.port, &["--post", file.to_str().unwrap()], &["/echo"]),
                                          Duration::from_secs(90));
    assert_eq!(r.code(), Some(0), "stderr:\n{}", r.stderr);
    assert_eq!(responses(&r.stdout), vec![complete("/echo", 200, &body)]);
    // fetch streams the file as flow control allows: it never holds the
    // body (reading it whole, and the library's copy, took 111 MiB). What
    // it holds is bounded by quiche's windows (up to 24 MiB a connection):
    // about 15 MiB in all here, loaded or not.
    assert!(peak_kib < 64 << 10, "fetch's peak RSS {peak_kib} KiB for a 50 MiB upload");
    // The echo took less than it was offered, and resumed from the
    // writable callback.
    let (status, stats) = stop(s);
    assert!(status.success());
    assert!(stat(&stats, "paused_bodies") > 0 && stat(&stats, "writable_calls") > 0, "{stats:?}");
}

#[test]
fn post_streams_the_file_to_each_request_at_its_own_offset() {
    let dir = tempdir("app-post");
    let body = common::pattern(3 << 20);
    let file = dir.join("body.bin");
    std::fs::write(&file, &body).unwrap();
    let empty = dir.join("empty.bin");
    std::fs::write(&empty, b"").unwrap();
    let s = app_server(&[]);
    let r = fetch(s.port, &["--post", file.to_str().unwrap()], &["/echo?a", "/echo?b", "/status/201", "/upload"]);
    assert_eq!(r.code(), Some(0), "stderr:\n{}", r.stderr);
    let got = responses(&r.stdout);
    assert_eq!(response(&got, "/echo?a"), &complete("/echo?a", 200, &body));
    assert_eq!(response(&got, "/echo?b"), &complete("/echo?b", 200, &body));
    assert_eq!(response(&got, "/status/201"), &complete("/status/201", 201, b""));
    assert_eq!(response(&got, "/upload"), &complete("/upload", 200, &upload_answer(&body)));
    let r = fetch(s.port, &["--post", empty.to_str().unwrap()], &["/echo"]);
    assert_eq!(r.code(), Some(0), "stderr:\n{}", r.stderr);
    assert_eq!(responses(&r.stdout), vec![complete("/echo", 200, b"")]);
    // Not a regular file: refused with a reason.
    let r = fetch(s.port, &["--post", dir.to_str().unwrap()], &["/echo"]);
    assert_eq!(r.code(), Some(1));
    assert!(r.stderr.contains("--post takes a regular file"), "{}", r.stderr);
}

#[test]
fn routes_answer_as_documented_and_fetch_fails_on_non_2xx() {
    let s = app_server(&[]);
    // GET /echo and /upload have no body: the body callback still hears
    // its end.
    let ok = ["/json", "/status/204", "/echo", "/upload", "/stream?n=5000&ms=5", "/trailers", "/stats"];
    let r = fetch(s.port, &[], &ok);
    assert_eq!(r.code(), Some(0), "stderr:\n{}", r.stderr);
    let got = responses(&r.stdout);
    assert_eq!(got.len(), ok.len(), "{got:#?}");
    assert_eq!(response(&got, "/status/204"), &complete("/status/204", 204, b""));
    assert_eq!(response(&got, "/echo"), &complete("/echo", 200, b""));
    assert_eq!(response(&got, "/upload"), &complete("/upload", 200, &upload_answer(b"")));
    assert_eq!(response(&got, "/stream?n=5000&ms=5"), &complete("/stream?n=5000&ms=5", 200, &pattern(5000)));
    assert_eq!(response(&got, "/trailers"), &complete("/trailers", 200, b"a body, then trailer fields\n"));
    for p in ["/json", "/stats"] {
        let g = response(&got, p);
        assert!(g.status == 200 && g.bytes > 10 && g.outcome == "complete", "{g:?}");
    }

    let bad = ["/json", "/status/503", "/nope"];
    let r = fetch(s.port, &[], &bad);
    assert_eq!(r.code(), Some(1), "a non-2xx answer fails fetch; stderr:\n{}", r.stderr);
    let got = responses(&r.stdout);
    assert_eq!(response(&got, "/status/503"), &complete("/status/503", 503, b""));
    assert_eq!(response(&got, "/nope"), &complete("/nope", 404, b""));
    assert_eq!(response(&got, "/json").status, 200);
}

// ---- graceful shutdown with responses in flight ------------------------------

/// Starts fetch for `paths` and waits until the server has every request.
fn in_flight(s: &Server, paths: &[&str]) -> Background {
    let b = Background::start(fetch_cmd(s.port, &[], paths));
    for p in paths {
        assert!(s.stderr.wait_for(&format!("request: GET {p}"), DEADLINE), "{}", s.stderr.dump());
    }
    b
}

#[test]
fn shutdown_lets_responses_in_flight_finish_within_the_drain_time() {
    let s = app_server(&["--verbose", "--drain-ms", "10000"]);
    let stream = "/stream?n=20000&ms=50";
    let mut b = in_flight(&s, &[stream, "/slow?ms=1500"]);
    s.signal(libc::SIGTERM);
    let (status, got) = b.wait(DEADLINE);
    assert!(status.success(), "stdout {got:?}, stderr:\n{}", b.stderr.dump());
    assert_eq!(response(&got, stream), &complete(stream, 200, &pattern(20000)));
    assert_eq!(response(&got, "/slow?ms=1500"), &complete("/slow?ms=1500", 200, b"slow\n"));
    let (status, _) = exited(s);
    assert!(status.success());
}

#[test]
fn shutdown_cuts_responses_that_outlast_the_drain_time() {
    let s = app_server(&["--verbose", "--drain-ms", "300"]);
    let stream = "/stream?n=100000&ms=50";
    let mut b = in_flight(&s, &[stream, "/slow?ms=10000"]);
    s.signal(libc::SIGTERM);
    let (status, got) = b.wait(DEADLINE);
    assert_eq!(status.code(), Some(1), "stdout {got:?}");
    let cut = response(&got, stream);
    assert!(cut.outcome == "closed" && cut.bytes < 100000, "{cut:?}");
    assert_eq!(response(&got, "/slow?ms=10000").outcome, "closed");
    let (status, _) = exited(s);
    assert!(status.success());
}

// ---- one loop, many handles; every function from C ---------------------------

#[test]
fn servers_clients_and_host_timer_share_one_loop_silently() {
    let r = run_c_program("shared_loop");
    let out = String::from_utf8_lossy(&r.stdout);
    assert_eq!(r.code(), Some(0), "stdout:\n{out}\nstderr:\n{}", r.stderr);
    for line in ["client 1: status 200 body A", "server A stopped", "client 2: status 200 body B",
                 "host timer: 5 ticks after the clients, server B running", "server B stopped", "ok"] {
        assert!(out.lines().any(|l| l == line), "missing {line:?} in:\n{out}");
    }
    // No log callback was set: the library printed nothing.
    assert_eq!(r.stderr, "", "the library wrote to stderr");
}

#[test]
fn every_request_conn_and_client_function_from_c() {
    let r = run_c_program("api_calls");
    let out = String::from_utf8_lossy(&r.stdout);
    assert_eq!(r.code(), Some(0), "stdout:\n{out}\nstderr:\n{}", r.stderr);
    assert!(out.ends_with("ok\n"), "{out}");
    // Warnings and errors happened (a refused trailer, a failed
    // connection), but no log callback was set.
    assert_eq!(r.stderr, "", "the library wrote to stderr");
}

#[test]
fn last_error_logger_origins_header_levels_and_the_hq_constant_from_c() {
    let r = run_c_program("logs_and_errors");
    let out = String::from_utf8_lossy(&r.stdout);
    assert_eq!(r.code(), Some(0), "stdout:\n{out}\nstderr:\n{}", r.stderr);
    for line in ["last error: ok", "hq-interop from QUICHE_EV_HQ_APPLICATION_PROTOCOL: byez", "request headers: ok",
                 "ok"] {
        assert!(out.lines().any(|l| l == line), "missing {line:?} in:\n{out}");
    }
    assert!(out.lines().any(|l| l.starts_with("logger: ") && l.ends_with(": ok")), "{out}");
    // Failed calls said why through quiche_ev_last_error alone; the
    // logger got the rest: nothing was printed.
    assert_eq!(r.stderr, "", "the library wrote to stderr");
}

#[test]
fn a_handle_freed_in_each_kind_of_callback_ends_the_loop_and_is_never_called_again() {
    // tests/c/free_in_callbacks.c: 14 callback kinds (7 of the server's, 7
    // of the client's) times 3 ways of watching the socket; each scenario
    // has its own watchdog (60 s) and they take about 20 s in all, most of
    // it closing periods of connections whose peer went away.
    let r = run_c_program_for("free_in_callbacks", Duration::from_secs(300));
    let out = String::from_utf8_lossy(&r.stdout);
    assert_eq!(r.code(), Some(0), "stdout:\n{out}\nstderr:\n{}", r.stderr);
    let kinds = ["server/request", "server/request-body", "server/request-writable", "server/request-closed",
                 "server/conn-established", "server/conn-closed", "server/stopped", "client/established",
                 "client/headers", "client/body", "client/trailers", "client/done", "client/closed",
                 "client/request-writable"];
    for kind in kinds {
        for mode in ["stop-first", "keep", "own"] {
            let want = format!("{kind} {mode}: ok (");
            assert!(out.lines().any(|l| l.starts_with(&want)), "no {want:?} in:\n{out}");
        }
    }
    assert!(out.ends_with("ok\n"), "{out}");
    // No log callback was set: the library printed nothing.
    assert_eq!(r.stderr, "", "the library wrote to stderr");
}

// ---- a streamed upload from C ------------------------------------------------

/// What tests/c/upload.c printed: each line's first word and the rest.
struct Upload {
    out: String,
}

impl Upload {
    fn line(&self, key: &str) -> Vec<String> {
        let l = self.out.lines().find(|l| l.split(' ').next() == Some(key))
            .unwrap_or_else(|| panic!("no {key} line in:\n{}", self.out));
        l.split(' ').skip(1).map(String::from).collect()
    }

    fn number(&self, key: &str, i: usize) -> u64 {
        self.line(key)[i].parse().unwrap()
    }
}

/// Runs tests/c/upload.c: a POST of `bytes` from a generator, streamed
/// with quiche_ev_client_request_start / _write / _trailers as the
/// request writable callback asks.
fn upload(port: u16, path: &str, bytes: u64) -> Upload {
    let mut cmd = Command::new(c_program("upload"));
    cmd.args(["127.0.0.1", &port.to_string(), path, &bytes.to_string()]);
    let r = run(cmd, Duration::from_secs(120));
    let out = String::from_utf8_lossy(&r.stdout).into_owned();
    assert_eq!(r.code(), Some(0), "stdout:\n{out}\nstderr:\n{}", r.stderr);
    assert_eq!(r.stderr, "", "the library wrote to stderr");
    Upload { out }
}

/// The client's memory while it uploads: its peak RSS over its RSS before
/// the connection must stay under half the body. What it holds is
/// BoringSSL's handshake state and quiche's buffers, bounded by the
/// peer's flow-control windows and the congestion window, not by the
/// body: app-server (quiche) grows its windows up to 24 MiB per
/// connection, so its body is 64 MiB (growth seen: 2-12 MiB on a loaded
/// machine); aioquic keeps 1 MiB windows (growth seen: 2-3 MiB for 16 MiB).
fn bounded_growth(u: &Upload, body: u64) {
    let growth = u.number("rss_growth_kib", 0);
    assert!(growth * 1024 < body / 2, "the client grew by {growth} KiB for a {body}-byte upload:\n{}", u.out);
}

/// The library called back only when something fitted: at most one
/// writable call in ten took nothing (against aioquic, a writable call
/// came on every loop iteration while 2 bytes of congestion window were
/// left, too few for a DATA frame: 200 000 calls, all empty, for 16 MiB).
fn no_idle_writable_calls(u: &Upload) {
    let (calls, empty) = (u.number("writable_calls", 0), u.number("writable_calls", 2));
    assert!(calls > 10, "flow control held the upload back: {}", u.out);
    assert!(empty * 10 <= calls, "{empty} of {calls} writable calls had no room at all:\n{}", u.out);
}

#[test]
fn a_streamed_upload_from_a_generator_is_echoed_by_app_server_in_bounded_memory() {
    const BODY: u64 = 64 << 20;
    let s = app_server(&[]);
    let u = upload(s.port, "/echo", BODY);
    let sent = u.line("sent");
    assert_eq!(sent[0], BODY.to_string(), "{}", u.out);
    let resp = u.line("response");
    assert_eq!(resp, ["200".to_string(), BODY.to_string(), "crc32".into(), sent[2].clone(), "complete".into()],
               "the echo is the body, byte for byte:\n{}", u.out);
    bounded_growth(&u, BODY);
    no_idle_writable_calls(&u);
}

#[test]
fn a_streamed_upload_with_trailers_reaches_aioquic_whole_in_bounded_memory() {
    const BODY: u64 = 16 << 20;
    let s = aioquic_server("h3", &[]);
    let u = upload(s.port, "/upload", BODY);
    let crc = u.line("sent")[2].clone();
    // aioquic counted the body and read the trailer fields.
    assert_eq!(u.line("body"), ["received".to_string(), BODY.to_string(), "crc32".into(), crc.clone(),
                                "trailers".into(), format!("x-upload-crc32={crc}")], "{}", u.out);
    bounded_growth(&u, BODY);
    no_idle_writable_calls(&u);
}

// ---- the peers ---------------------------------------------------------------

#[test]
fn aioquic_client_gets_app_server_responses() {
    let s = app_server(&[]);
    let r = aioquic_client("h3", s.port, &[], Some("/json"));
    assert_eq!(r.code(), Some(0), "stderr:\n{}", r.stderr);
    let json = String::from_utf8_lossy(&r.stdout);
    for part in ["\"method\": \"GET\"", "\"path\": \"/json\"", "\"user_agent\": \"aioquic-peer\"", "\"trace_id\": \""] {
        assert!(json.contains(part), "{part} not in {json}");
    }
    assert!(r.stderr.contains("got header: content-type=application/json"), "{}", r.stderr);

    let r = aioquic_client("h3", s.port, &[], Some("/big?n=3000000"));
    assert_eq!(r.code(), Some(0), "stderr:\n{}", r.stderr);
    assert!(r.stdout == pattern(3_000_000), "body differs ({} bytes)", r.stdout.len());

    // The trailer carries the body's hash, computed by app-server.
    let r = aioquic_client("h3", s.port, &[], Some("/trailers"));
    assert_eq!(r.code(), Some(0), "stderr:\n{}", r.stderr);
    let trailer = format!("got header: x-fnv1a64={}", hash_of(&r.stdout));
    assert!(r.stderr.contains(&trailer), "no {trailer:?} in:\n{}", r.stderr);
}

#[test]
fn gtlsclient_gets_app_server_responses() {
    let s = app_server(&[]);
    let (r, dl) = gtlsclient(s.port, &[], &["/json", "/big?n=2000000", "/stream?n=3000&ms=5"], "app-gtls");
    assert_eq!(r.code(), Some(0), "gtlsclient stderr:\n{}\nserver:\n{}", r.stderr, s.stderr.dump());
    let read = |f: &str| std::fs::read(dl.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
    assert!(read("big?n=2000000") == pattern(2_000_000), "/big differs");
    assert_eq!(read("stream?n=3000&ms=5"), pattern(3000));
    let json = String::from_utf8(read("json")).unwrap();
    assert!(json.contains("\"user_agent\": \"nghttp3/ngtcp2 client\""), "{json}");
}

#[test]
fn fetch_gets_many_responses_from_aioquic() {
    let s = aioquic_server("h3", &[]);
    let paths: Vec<String> = (0..20).map(|i| format!("/p{i}")).collect();
    let refs: Vec<&str> = paths.iter().map(String::as_str).collect();
    let r = fetch(s.port, &[], &refs);
    assert_eq!(r.code(), Some(0), "stderr:\n{}\nserver:\n{}", r.stderr, s.stderr.dump());
    let got = responses(&r.stdout);
    assert_eq!(got.len(), 20);
    for p in &paths {
        assert_eq!(response(&got, p), &complete(p, 200, b"byez\n"));
    }
}

#[test]
fn fetch_gets_files_from_gtlsserver_and_fails_on_a_missing_one() {
    let dir = tempdir("app-gtls-htdocs");
    let a = common::pattern(300_000);
    std::fs::write(dir.join("a.bin"), &a).unwrap();
    std::fs::write(dir.join("b.txt"), b"bee\n").unwrap();
    let s = gtlsserver(&dir, &[]);
    let r = fetch(s.port, &[], &["/a.bin", "/b.txt"]);
    assert_eq!(r.code(), Some(0), "stderr:\n{}", r.stderr);
    let got = responses(&r.stdout);
    assert_eq!(response(&got, "/a.bin"), &complete("/a.bin", 200, &a));
    assert_eq!(response(&got, "/b.txt"), &complete("/b.txt", 200, b"bee\n"));

    let r = fetch(s.port, &[], &["/b.txt", "/missing.bin"]);
    assert_eq!(r.code(), Some(1), "stderr:\n{}", r.stderr);
    let got = responses(&r.stdout);
    assert_eq!(response(&got, "/missing.bin").status, 404);
    assert_eq!(response(&got, "/b.txt"), &complete("/b.txt", 200, b"bee\n"));
}
