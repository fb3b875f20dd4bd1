//! The workers' C API, called as a C program would (the exported
//! functions, from Rust), with real threads, sockets and the kernel's
//! steering, against our example clients:
//!
//! - a Retry token minted by worker 0 is accepted by worker 1, and a
//!   session ticket issued by worker 0 resumes with 0-RTT on worker 1
//!   (a test program on the socket group decides which worker gets what);
//! - an aborted worker's exit reaches the program's loop, and its socket
//!   leaves the group while the other keeps serving;
//! - the contract: NULL and out-of-range arguments, callbacks set after
//!   the start, a start callback that fails or returns a server of
//!   another loop, a free from a worker's thread refused, a free inside
//!   the group's own callback, the program's loop ending by itself once
//!   every worker exited.

// Workers are Linux's (a reuseport group steered by classic BPF).
#![cfg(target_os = "linux")]

mod common;
use common::*;

use std::cell::Cell;
use std::ffi::CStr;
use std::os::fd::RawFd;
use std::ptr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

use libc::{c_int, c_uint, c_void};
use libev_sys::*;
use quiche_ev::ffi::conn::quiche_ev_conn_quiche;
use quiche_ev::ffi::errors::quiche_ev_last_error;
use quiche_ev::ffi::request::{quiche_ev_request_conn, quiche_ev_respond_bytes};
use quiche_ev::ffi::server::*;
use quiche_ev::ffi::tls::{quiche_ev_config_new, quiche_ev_set_ticket_keys};
use quiche_ev::ffi::types::*;
use quiche_ev::ffi::workers::*;
use quiche_ev::ffi::{QUICHE_EV_ERR_CLOSED, QUICHE_EV_ERR_INVALID, QUICHE_EV_ERR_NULL, QUICHE_EV_ERR_STATE};
use quiche_ev::socket::std_to_sockaddr;

fn last_error() -> String {
    let p = quiche_ev_last_error();
    if p.is_null() { String::new() } else { unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned() }
}

thread_local! {
    /// The worker whose thread this is (set by the start callback).
    static WORKER: Cell<Option<u32>> = const { Cell::new(None) };
}

/// What the test's host knows, shared by every worker's thread.
#[derive(Default)]
struct Host {
    /// Workers in the group (2 unless a test says otherwise).
    count: u32,
    retry: bool,
    early_data: bool,
    /// Fail the start of this worker (index + 1; 0: none).
    fail_worker: u32,
    /// Return a server made on a loop of its own instead.
    wrong_loop: bool,
    /// Try to free the group from a worker's thread.
    free_from_worker: bool,
    requests: [AtomicU32; 4],
    early_requests: [AtomicU32; 4],
    /// Requests on a resumed connection (a session ticket was accepted).
    resumed_requests: [AtomicU32; 4],
    configs: Mutex<Vec<(usize, usize)>>,
    exits: Mutex<Vec<(u32, c_int)>>,
    stopped: Mutex<Vec<c_int>>,
    free_in_stopped: bool,
    worker_free_error: Mutex<String>,
}

fn host(user: *mut c_void) -> &'static Host {
    unsafe { &*(user as *const Host) }
}

unsafe extern "C" fn on_request(req: *mut quiche_ev_request, user: *mut c_void) {
    let h = host(user);
    let w = WORKER.with(|w| w.get()).expect("requests arrive on a worker's thread") as usize;
    h.requests[w].fetch_add(1, Ordering::Relaxed);
    let conn = quiche_ev_conn_quiche(quiche_ev_request_conn(req)) as *mut quiche::Connection;
    if (*conn).is_in_early_data() {
        h.early_requests[w].fetch_add(1, Ordering::Relaxed);
    }
    if (*conn).is_resumed() {
        h.resumed_requests[w].fetch_add(1, Ordering::Relaxed);
    }
    quiche_ev_respond_bytes(req, 200, ptr::null(), 0, b"byez\n".as_ptr(), 5);
}

unsafe extern "C" fn start(info: *const quiche_ev_worker_info, user: *mut c_void) -> *mut quiche_ev_server {
    let (info, h) = (&*info, host(user));
    WORKER.with(|w| w.set(Some(info.index)));
    assert_eq!(info.size, std::mem::size_of::<quiche_ev_worker_info>());
    assert_eq!(info.count, h.count.max(2));
    if h.free_from_worker {
        quiche_ev_workers_free(info.workers);
        *h.worker_free_error.lock().unwrap() = last_error();
    }
    if h.fail_worker == info.index + 1 {
        return ptr::null_mut();
    }
    let cfg = quiche_ev_config_new(quiche::PROTOCOL_VERSION);
    let c = &mut *(cfg as *mut quiche::Config);
    let dir = root().join("c-examples");
    c.load_cert_chain_from_pem_file(dir.join("cert.crt").to_str().unwrap()).unwrap();
    c.load_priv_key_from_pem_file(dir.join("cert.key").to_str().unwrap()).unwrap();
    c.set_application_protos(&[b"h3"]).unwrap();
    c.set_max_idle_timeout(5000);
    c.set_initial_max_data(10_000_000);
    c.set_initial_max_stream_data_bidi_local(1_000_000);
    c.set_initial_max_stream_data_bidi_remote(1_000_000);
    c.set_initial_max_stream_data_uni(1_000_000);
    c.set_initial_max_streams_bidi(100);
    c.set_initial_max_streams_uni(100);
    c.set_active_connection_id_limit(8);
    if h.early_data {
        c.enable_early_data();
    }
    let h3 = Box::into_raw(Box::new(quiche::h3::Config::new().unwrap()));
    h.configs.lock().unwrap().push((cfg as usize, h3 as usize));
    let lp = if h.wrong_loop { ev_loop_new(0) } else { info.loop_ };
    let s = quiche_ev_server_new(lp, info.sock, info.local, info.local_len, cfg, h3.cast());
    assert!(!s.is_null(), "{}", last_error());
    assert_eq!(quiche_ev_server_set_retry(s, h.retry as c_int), 0);
    assert_eq!(quiche_ev_server_set_user_data(s, user), 0);
    assert_eq!(quiche_ev_server_on_request(s, Some(on_request)), 0);
    s
}

unsafe extern "C" fn stop(_info: *const quiche_ev_worker_info, _user: *mut c_void) {
    // The configs are freed by the test once every worker is gone.
}

unsafe extern "C" fn exited(_g: *mut quiche_ev_workers, index: c_uint, status: c_int, user: *mut c_void) {
    host(user).exits.lock().unwrap().push((index, status));
}

unsafe extern "C" fn stopped(g: *mut quiche_ev_workers, status: c_int, user: *mut c_void) {
    let h = host(user);
    h.stopped.lock().unwrap().push(status);
    if h.free_in_stopped {
        quiche_ev_workers_free(g);
    }
}

/// A group of two workers on 127.0.0.1 (a free port) with the test's host,
/// started on `lp`.
struct Group {
    g: *mut quiche_ev_workers,
    lp: *mut ev_loop,
    host: Box<Host>,
    port: u16,
}

impl Group {
    fn new(host: Host) -> Result<Group, (c_int, String, Box<Host>)> {
        let (ss, len) = std_to_sockaddr(&"127.0.0.1:0".parse().unwrap());
        let g = quiche_ev_workers_new((&ss as *const libc::sockaddr_storage).cast(), len, host.count.max(2));
        assert!(!g.is_null(), "{}", last_error());
        let mut host = Box::new(host);
        let user = &mut *host as *mut Host as *mut c_void;
        assert_eq!(quiche_ev_workers_set_user_data(g, user), 0);
        assert_eq!(quiche_ev_workers_on_start(g, Some(start)), 0);
        assert_eq!(quiche_ev_workers_on_stop(g, Some(stop)), 0);
        assert_eq!(quiche_ev_workers_on_exit(g, Some(exited)), 0);
        assert_eq!(quiche_ev_workers_on_stopped(g, Some(stopped)), 0);
        let lp = unsafe { ev_loop_new(0) };
        let rc = quiche_ev_workers_start(g, lp);
        if rc != 0 {
            let why = last_error();
            quiche_ev_workers_free(g);
            unsafe { ev_loop_destroy(lp) };
            return Err((rc, why, host));
        }
        let fd = quiche_ev_workers_socket(g, 0);
        let port = std::net::UdpSocket::from(unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(libc::dup(fd)) })
            .local_addr().unwrap().port();
        Ok(Group { g, lp, host, port })
    }

    fn counters(&self, i: u32) -> quiche_ev_counters {
        let mut c: quiche_ev_counters = unsafe { std::mem::zeroed() };
        c.size = std::mem::size_of::<quiche_ev_counters>();
        assert_eq!(quiche_ev_workers_counters(self.g, i, &mut c), 0);
        c
    }

    /// Attaches `prog` to the socket group (replacing the steering).
    fn attach(&self, prog: &[libc::sock_filter]) {
        attach(quiche_ev_workers_socket(self.g, 0), prog);
    }

    /// Shuts every worker down; the program's loop then runs until the
    /// group's stopped callback, and ends by itself.
    fn finish(self) -> Box<Host> {
        assert_eq!(quiche_ev_workers_shutdown(self.g, 0), 0);
        let t = std::time::Instant::now();
        unsafe { ev_run(self.lp, 0) };
        assert!(t.elapsed() < DEADLINE);
        assert_eq!(self.host.stopped.lock().unwrap().len(), 1, "the stopped callback ran once, then the loop ended");
        if !self.host.free_in_stopped {
            quiche_ev_workers_free(self.g);
        }
        unsafe { ev_loop_destroy(self.lp) };
        free_configs(&self.host);
        self.host
    }
}

fn free_configs(h: &Host) {
    for (cfg, h3) in h.configs.lock().unwrap().drain(..) {
        unsafe {
            drop(Box::from_raw(cfg as *mut quiche::Config));
            drop(Box::from_raw(h3 as *mut quiche::h3::Config));
        }
    }
}

fn attach(fd: RawFd, prog: &[libc::sock_filter]) {
    let p = libc::sock_fprog { len: prog.len() as u16, filter: prog.as_ptr() as *mut _ };
    let rc = unsafe {
        libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_ATTACH_REUSEPORT_CBPF, (&p as *const libc::sock_fprog).cast(),
                         std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t)
    };
    assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
}

fn op(code: u32, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter { code: code as u16, jt, jf, k }
}

/// Every datagram to the socket at `index`.
fn all_to(index: u32) -> Vec<libc::sock_filter> {
    vec![op(libc::BPF_RET | libc::BPF_K, 0, 0, index)]
}

/// Initials without a token (a client's first ones) to socket 0,
/// everything else (the Initial answering a Retry, with its token, and
/// all that follows) to socket 1.
fn tokenless_initials_to_0() -> Vec<libc::sock_filter> {
    use libc::*;
    vec![
        /* 0 */ op(BPF_LD | BPF_B | BPF_ABS, 0, 0, 0),
        /* 1 */ op(BPF_JMP | BPF_JSET | BPF_K, 0, 12, 0x80), // short header: to 1
        /* 2 */ op(BPF_ALU | BPF_AND | BPF_K, 0, 0, 0x30),
        /* 3 */ op(BPF_JMP | BPF_JEQ | BPF_K, 0, 10, 0), // not an Initial: to 1
        /* 4 */ op(BPF_LD | BPF_B | BPF_ABS, 0, 0, 5), // DCID length
        /* 5 */ op(BPF_ALU | BPF_ADD | BPF_K, 0, 0, 6),
        /* 6 */ op(BPF_MISC | BPF_TAX, 0, 0, 0), // X: the SCID length's offset
        /* 7 */ op(BPF_LD | BPF_B | BPF_IND, 0, 0, 0),
        /* 8 */ op(BPF_ALU | BPF_ADD | BPF_X, 0, 0, 0),
        /* 9 */ op(BPF_ALU | BPF_ADD | BPF_K, 0, 0, 1),
        /* 10 */ op(BPF_MISC | BPF_TAX, 0, 0, 0), // X: the token length's offset
        /* 11 */ op(BPF_LD | BPF_B | BPF_IND, 0, 0, 0),
        /* 12 */ op(BPF_JMP | BPF_JEQ | BPF_K, 0, 1, 0),
        /* 13 */ op(BPF_RET | BPF_K, 0, 0, 0),
        /* 14 */ op(BPF_RET | BPF_K, 0, 0, 1),
    ]
}

fn h3_client(port: u16, extra: &[&str]) -> Run {
    let mut c = our_command("http3-client");
    c.args(extra).args(["127.0.0.1", &port.to_string()]);
    run(c, DEADLINE)
}

/// Worker 0 answers the client's first Initial with a Retry (its token
/// made under the group's token key); the Initial that carries the token
/// goes to worker 1, which accepts it and serves the request.
#[test]
fn a_retry_token_minted_by_one_worker_is_accepted_by_the_other() {
    let g = Group::new(Host { retry: true, ..Default::default() }).unwrap_or_else(|e| panic!("{e:?}", e = (e.0, e.1)));
    let key = [0x42u8; 32];
    assert_eq!(quiche_ev_workers_set_token_keys(g.g, key.as_ptr(), ptr::null(), 32), 0);
    g.attach(&tokenless_initials_to_0());
    let r = h3_client(g.port, &[]);
    assert_eq!(r.code(), Some(0), "{}", r.stderr);
    assert_eq!(r.stdout, b"byez\n");
    let (c0, c1) = (g.counters(0), g.counters(1));
    assert!(c0.retries >= 1 && c0.accepted == 0, "worker 0 only sent the Retry: {c0:?}");
    assert!(c1.accepted == 1 && c1.retries == 0 && c1.invalid_tokens == 0, "worker 1 took its token: {c1:?}");
    assert_eq!(g.host.requests[1].load(Ordering::Relaxed), 1);
    g.finish();
}

/// A session ticket issued by worker 0 resumes on worker 1 (the client
/// offers its request in 0-RTT), under a ticket key both workers share,
/// also across a rotation of that key in between
/// (quiche_ev_set_ticket_keys).
#[test]
fn a_session_ticket_from_one_worker_resumes_with_0rtt_on_the_other() {
    let g = Group::new(Host { early_data: true, ..Default::default() }).unwrap_or_else(|e| panic!("{:?}", (e.0, e.1)));
    let session = tempdir("workers-ticket").join("session");
    let args = ["--early-data", "--session-file", session.to_str().unwrap()];
    let (k1, k2) = ([0x11u8; 48], [0x22u8; 48]);
    assert_eq!(quiche_ev_set_ticket_keys(k1.as_ptr(), ptr::null(), 48), 0);
    g.attach(&all_to(0));
    let r = h3_client(g.port, &args);
    assert_eq!(r.code(), Some(0), "{}", r.stderr);
    assert!(session.exists(), "the client stored worker 0's ticket");
    // A rotation in between: the ticket (under k1) is now the previous
    // key's, and still resumes.
    assert_eq!(quiche_ev_set_ticket_keys(k2.as_ptr(), k1.as_ptr(), 48), 0);
    g.attach(&all_to(1));
    let r = h3_client(g.port, &args);
    assert_eq!(r.code(), Some(0), "{}", r.stderr);
    assert_eq!(r.stdout, b"byez\n");
    assert_eq!(g.host.requests[0].load(Ordering::Relaxed), 1);
    assert_eq!(g.host.requests[1].load(Ordering::Relaxed), 1);
    assert_eq!(g.host.resumed_requests[0].load(Ordering::Relaxed), 0, "the first connection had no ticket");
    assert_eq!(g.host.resumed_requests[1].load(Ordering::Relaxed), 1, "worker 1 resumed worker 0's ticket");
    // Whether the request callback still sees the connection in early data
    // depends on scheduling (on a loaded machine the handshake often
    // completes first: seen 3 times in a row with two busy loops beside
    // it), so it is reported, not asserted; tickets::tests resumes with
    // 0-RTT across two configs and a rotation deterministically.
    eprintln!("worker 1 saw the request in early data: {}", g.host.early_requests[1].load(Ordering::Relaxed) == 1);
    assert_eq!((g.counters(0).accepted, g.counters(1).accepted), (1, 1));
    g.finish();
}

/// Three workers; worker 0 dies. The kernel fills the hole its socket
/// left with the last socket (worker 2's): the steering program is
/// rebuilt for that order, so worker 2's connections still reach worker 2.
/// With the old program they would go by the 4-tuple hash, half of them to
/// worker 1, which drops them (another live worker's) and the clients
/// fail.
#[test]
fn after_a_worker_dies_the_steering_follows_the_kernels_new_socket_order() {
    let g = Group::new(Host { count: 3, ..Default::default() }).unwrap_or_else(|e| panic!("{:?}", (e.0, e.1)));
    assert_eq!(quiche_ev_workers_abort(g.g, 0), 0);
    let end = std::time::Instant::now() + DEADLINE;
    while g.host.exits.lock().unwrap().is_empty() {
        assert!(std::time::Instant::now() < end, "the exit never came");
        unsafe { ev_run(g.lp, EVRUN_ONCE) };
    }
    for i in 0..16 {
        let r = h3_client(g.port, &[]);
        assert_eq!(r.code(), Some(0), "client {i}: {}", r.stderr);
    }
    let (c1, c2) = (g.counters(1), g.counters(2));
    assert_eq!(c1.accepted + c2.accepted, 16);
    assert!(c2.accepted > 0, "worker 2, whose socket moved, had connections: {c1:?} {c2:?}");
    assert_eq!(c1.dropped_misrouted + c2.dropped_misrouted, 0, "{c1:?} {c2:?}");
    g.finish();
}

/// An aborted worker: its exit (status QUICHE_EV_ERR_CLOSED) reaches the
/// program's loop, it is no longer running, its socket left the group,
/// and the other worker serves every new client (with the steering
/// rebuilt: the kernel moved worker 1's socket into worker 0's place).
#[test]
fn an_aborted_worker_leaves_the_group_and_the_other_serves_everyone() {
    let g = Group::new(Host::default()).unwrap_or_else(|e| panic!("{:?}", (e.0, e.1)));
    assert_eq!(quiche_ev_workers_running(g.g, 0), 1);
    assert_eq!(quiche_ev_workers_abort(g.g, 0), 0);
    let end = std::time::Instant::now() + DEADLINE;
    while g.host.exits.lock().unwrap().is_empty() {
        assert!(std::time::Instant::now() < end, "the exit never came");
        unsafe { ev_run(g.lp, EVRUN_ONCE) };
    }
    assert_eq!(*g.host.exits.lock().unwrap(), [(0, QUICHE_EV_ERR_CLOSED)]);
    assert_eq!(quiche_ev_workers_running(g.g, 0), 0);
    assert_eq!(quiche_ev_workers_socket(g.g, 0), QUICHE_EV_ERR_STATE, "its socket is closed");
    assert_eq!(quiche_ev_workers_abort(g.g, 0), QUICHE_EV_ERR_STATE);
    for _ in 0..6 {
        let r = h3_client(g.port, &[]);
        assert_eq!(r.code(), Some(0), "{}", r.stderr);
    }
    assert_eq!(g.counters(1).accepted, 6);
    let host = g.finish();
    assert_eq!(host.exits.lock().unwrap().len(), 2);
    assert_eq!(*host.stopped.lock().unwrap(), [QUICHE_EV_ERR_CLOSED], "the first exit that was not a stop");
}

#[test]
fn the_contract_null_and_out_of_range_arguments_and_the_order_of_calls() {
    let (ss, len) = std_to_sockaddr(&"127.0.0.1:0".parse().unwrap());
    let addr = (&ss as *const libc::sockaddr_storage).cast();
    assert!(quiche_ev_workers_new(ptr::null(), len, 2).is_null());
    assert!(quiche_ev_workers_new(addr, len, 0).is_null());
    assert!(last_error().contains("0 workers"), "{}", last_error());
    assert!(quiche_ev_workers_new(addr, len, 33).is_null());
    let null = ptr::null_mut();
    assert_eq!(quiche_ev_workers_on_start(null, Some(start)), QUICHE_EV_ERR_NULL);
    assert_eq!(quiche_ev_workers_start(null, null.cast()), QUICHE_EV_ERR_NULL);
    assert_eq!(quiche_ev_workers_shutdown(null, 0), QUICHE_EV_ERR_NULL);
    assert_eq!(quiche_ev_workers_abort(null, 0), QUICHE_EV_ERR_NULL);
    assert_eq!(quiche_ev_workers_count(null), QUICHE_EV_ERR_NULL);
    assert_eq!(quiche_ev_workers_counters(null, 0, ptr::null_mut()), QUICHE_EV_ERR_NULL);
    assert_eq!(quiche_ev_workers_cid_layout(null, ptr::null_mut(), 0), QUICHE_EV_ERR_NULL as isize);
    quiche_ev_workers_free(null);

    let g = quiche_ev_workers_new(addr, len, 2);
    assert_eq!(quiche_ev_workers_count(g), 2);
    assert_eq!(quiche_ev_workers_abort(g, 2), QUICHE_EV_ERR_INVALID);
    assert_eq!(quiche_ev_workers_socket(g, 2), QUICHE_EV_ERR_INVALID);
    assert_eq!(quiche_ev_workers_running(g, 0), 0, "not started");
    let mut c: quiche_ev_counters = unsafe { std::mem::zeroed() };
    c.size = std::mem::size_of::<quiche_ev_counters>();
    assert_eq!(quiche_ev_workers_counters(g, 2, &mut c), QUICHE_EV_ERR_INVALID);
    assert_eq!(quiche_ev_workers_set_token_keys(g, [0u8; 31].as_ptr(), ptr::null(), 31), QUICHE_EV_ERR_INVALID);
    assert_eq!(quiche_ev_workers_set_reset_keys(g, ptr::null(), [0u8; 32].as_ptr(), 32), QUICHE_EV_ERR_NULL);
    assert_eq!(quiche_ev_workers_set_reset_keys(g, [1u8; 32].as_ptr(), [2u8; 32].as_ptr(), 32), 0);
    assert_eq!(quiche_ev_workers_set_reset_keys(null, [1u8; 32].as_ptr(), ptr::null(), 32), QUICHE_EV_ERR_NULL);
    // (Valid ticket keys are set by the ticket test: they are the process's.)
    assert_eq!(quiche_ev_set_ticket_keys(ptr::null(), ptr::null(), 48), QUICHE_EV_ERR_NULL);
    assert_eq!(quiche_ev_set_ticket_keys([0u8; 32].as_ptr(), ptr::null(), 32), QUICHE_EV_ERR_INVALID);
    assert!(last_error().contains("48 bytes, not 32"), "{}", last_error());
    assert_eq!(quiche_ev_workers_set_cid_layout(g, 0, [1u8].as_ptr(), 1, 3, ptr::null(), 0), QUICHE_EV_ERR_INVALID);
    assert!(last_error().contains("nonce of 3 octets"), "{}", last_error());
    assert_eq!(quiche_ev_workers_set_cid_layout(g, 2, [7u8, 8].as_ptr(), 2, 6, ptr::null(), 0), 0);
    let mut line = [0 as libc::c_char; 200];
    quiche_ev_workers_cid_layout(g, line.as_mut_ptr(), line.len());
    let text = unsafe { CStr::from_ptr(line.as_ptr()) }.to_string_lossy().into_owned();
    assert!(text.contains("config ID 2, server ID 0708") && text.contains("the worker's index"), "{text}");
    let lp = unsafe { ev_loop_new(0) };
    assert_eq!(quiche_ev_workers_start(g, lp), QUICHE_EV_ERR_STATE, "no start callback");
    quiche_ev_workers_free(g);

    // A start callback that fails: the start fails with the worker's
    // reason and stops the other; no exit is heard; the group frees.
    match Group::new(Host { fail_worker: 2, ..Default::default() }) {
        Err((rc, why, host)) => {
            assert_eq!(rc, QUICHE_EV_ERR_INVALID);
            assert!(why.contains("worker 1") && why.contains("returned no server"), "{why}");
            assert!(host.exits.lock().unwrap().is_empty() && host.stopped.lock().unwrap().is_empty());
            free_configs(&host);
        }
        Ok(_) => panic!("the start succeeded"),
    }
    // A server made on another loop is refused.
    match Group::new(Host { wrong_loop: true, ..Default::default() }) {
        Err((rc, why, host)) => {
            assert_eq!(rc, QUICHE_EV_ERR_INVALID);
            assert!(why.contains("on the worker's loop and socket"), "{why}");
            free_configs(&host);
        }
        Ok(_) => panic!("a server of another loop was taken"),
    }
    // Freeing the group from a worker's thread is refused (it would wait
    // for itself); callbacks cannot change once started; a free inside the
    // stopped callback waits for it to return.
    let g = Group::new(Host { free_from_worker: true, free_in_stopped: true, ..Default::default() })
        .unwrap_or_else(|e| panic!("{:?}", (e.0, e.1)));
    assert!(g.host.worker_free_error.lock().unwrap().contains("worker's thread"));
    assert_eq!(quiche_ev_workers_on_start(g.g, Some(start)), QUICHE_EV_ERR_STATE);
    assert_eq!(quiche_ev_workers_set_cid_layout(g.g, 0, [1u8].as_ptr(), 1, 8, ptr::null(), 0), QUICHE_EV_ERR_STATE);
    assert_eq!(quiche_ev_workers_start(g.g, g.lp), QUICHE_EV_ERR_STATE, "started once");
    let host = g.finish();
    assert_eq!(*host.stopped.lock().unwrap(), [0]);
    assert_eq!(*host.exits.lock().unwrap().iter().map(|e| e.1).collect::<Vec<_>>(), [0, 0]);
    unsafe { ev_loop_destroy(lp) };
}
