//! The C API's contract: NULL and invalid arguments give the documented
//! error value (never a crash), `_free(NULL)` is a no-op, every exported
//! body runs inside a panic boundary, every error code has a description,
//! and the version functions say what was built.

use std::ffi::CString;
use std::ptr;

use libev_sys::*;
use quiche_ev::ffi::client::*;
use quiche_ev::ffi::errors::quiche_ev_strerror;
use quiche_ev::ffi::meta::{quiche_ev_quiche_version, quiche_ev_version};
use quiche_ev::ffi::server::*;
use quiche_ev::ffi::types::quiche_config;
use quiche_ev::ffi::{QUICHE_EV_ERR_INVALID, QUICHE_EV_ERR_NULL};
use quiche_ev::socket::std_to_sockaddr;

extern "C" {
    fn quiche_config_new(version: u32) -> *mut quiche_config;
    fn quiche_config_free(c: *mut quiche_config);
    fn quiche_version() -> *const libc::c_char;
}

/// A C string the library returned, which must never be NULL.
fn text(p: *const libc::c_char) -> String {
    assert!(!p.is_null());
    unsafe { std::ffi::CStr::from_ptr(p) }.to_str().unwrap().to_string()
}

struct Fixture {
    lp: *mut ev_loop,
    sock: libc::c_int,
    config: *mut quiche_config,
    addr: (libc::sockaddr_storage, libc::socklen_t),
}

impl Fixture {
    fn new() -> Fixture {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_nonblocking(true).unwrap();
        let addr = std_to_sockaddr(&s.local_addr().unwrap());
        let sock = std::os::fd::IntoRawFd::into_raw_fd(s);
        unsafe {
            Fixture { lp: ev_loop_new(EVFLAG_AUTO), sock, config: quiche_config_new(1), addr }
        }
    }
    fn addr(&self) -> *const libc::sockaddr {
        &self.addr.0 as *const _ as *const libc::sockaddr
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        unsafe {
            quiche_config_free(self.config);
            ev_loop_destroy(self.lp);
            libc::close(self.sock);
        }
    }
}

#[test]
fn server_functions_reject_null_and_invalid_arguments() {
    let f = Fixture::new();
    let n = ptr::null_mut();
    assert!(quiche_ev_server_new(n, f.sock, f.addr(), f.addr.1, f.config, n.cast()).is_null());
    assert!(quiche_ev_server_new(f.lp, -1, f.addr(), f.addr.1, f.config, n.cast()).is_null());
    assert!(quiche_ev_server_new(f.lp, f.sock, ptr::null(), f.addr.1, f.config, n.cast()).is_null());
    assert!(quiche_ev_server_new(f.lp, f.sock, f.addr(), 3, f.config, n.cast()).is_null());
    assert!(quiche_ev_server_new(f.lp, f.sock, f.addr(), f.addr.1, n.cast(), n.cast()).is_null());

    assert_eq!(quiche_ev_server_set_root(n.cast(), c"/tmp".as_ptr()), QUICHE_EV_ERR_NULL);
    assert_eq!(quiche_ev_server_set_max_conns(n.cast(), 5), QUICHE_EV_ERR_NULL);
    assert_eq!(quiche_ev_server_set_token_lifetime(n.cast(), 5), QUICHE_EV_ERR_NULL);
    assert_eq!(quiche_ev_server_conn_count(n.cast()), QUICHE_EV_ERR_NULL as isize);
    assert_eq!(quiche_ev_server_set_batched_io(n.cast(), 0), QUICHE_EV_ERR_NULL);
    assert_eq!(quiche_ev_server_set_gso(n.cast(), 0), QUICHE_EV_ERR_NULL);
    quiche_ev_server_recv_cb(f.lp, n.cast(), EV_READ);
    quiche_ev_server_signal_cb(f.lp, n.cast(), EV_SIGNAL);
    quiche_ev_server_free(n.cast());

    let s = quiche_ev_server_new(f.lp, f.sock, f.addr(), f.addr.1, f.config, n.cast());
    assert!(!s.is_null());
    assert_eq!(quiche_ev_server_conn_count(s), 0);
    assert_eq!(quiche_ev_server_set_root(s, ptr::null()), QUICHE_EV_ERR_NULL);
    let missing = CString::new("/no/such/folder").unwrap();
    assert_eq!(quiche_ev_server_set_root(s, missing.as_ptr()), QUICHE_EV_ERR_INVALID);
    assert_eq!(quiche_ev_server_set_root(s, c"/tmp".as_ptr()), 0);
    assert_eq!(quiche_ev_server_set_max_conns(s, 0), QUICHE_EV_ERR_INVALID);
    assert_eq!(quiche_ev_server_set_max_conns(s, 3), 0);
    assert_eq!(quiche_ev_server_set_token_lifetime(s, 0), QUICHE_EV_ERR_INVALID);
    assert_eq!(quiche_ev_server_set_token_lifetime(s, 2000), 0);
    assert_eq!(quiche_ev_server_set_batched_io(s, 0), 0);
    assert_eq!(quiche_ev_server_set_batched_io(s, 1), 0);
    assert_eq!(quiche_ev_server_set_gso(s, 0), 0);

    // A watcher whose data is NULL: reported, no crash.
    let mut w = ev_io::zeroed();
    quiche_ev_server_recv_cb(f.lp, &mut w, EV_READ);
    // A real watcher: nothing queued, returns at EAGAIN.
    w.data = s.cast();
    quiche_ev_server_recv_cb(f.lp, &mut w, EV_READ);
    quiche_ev_server_free(s);
}

#[test]
fn client_functions_reject_null_and_invalid_arguments() {
    let f = Fixture::new();
    let n = ptr::null_mut();
    let host = c"localhost".as_ptr();
    assert!(quiche_ev_client_new(n, f.sock, host, f.addr(), f.addr.1, f.config, n.cast(), ptr::null(), 0).is_null());
    assert!(quiche_ev_client_new(f.lp, -1, host, f.addr(), f.addr.1, f.config, n.cast(), ptr::null(), 0).is_null());
    assert!(quiche_ev_client_new(f.lp, f.sock, host, ptr::null(), 0, f.config, n.cast(), ptr::null(), 0).is_null());
    assert!(quiche_ev_client_new(f.lp, f.sock, host, f.addr(), f.addr.1, n.cast(), n.cast(), ptr::null(), 0).is_null());
    assert!(quiche_ev_client_new(f.lp, f.sock, host, f.addr(), f.addr.1, f.config, n.cast(), ptr::null(), 2).is_null());
    let bad = [c"no-slash".as_ptr()];
    assert!(quiche_ev_client_new(f.lp, f.sock, host, f.addr(), f.addr.1, f.config, n.cast(), bad.as_ptr(), 1).is_null());
    let null_path = [ptr::null()];
    assert!(quiche_ev_client_new(f.lp, f.sock, host, f.addr(), f.addr.1, f.config, n.cast(), null_path.as_ptr(), 1).is_null());

    assert_eq!(quiche_ev_client_set_output(n.cast(), c"/dev/null".as_ptr()), QUICHE_EV_ERR_NULL);
    assert_eq!(quiche_ev_client_status(n.cast()), QUICHE_EV_ERR_NULL);
    assert_eq!(quiche_ev_client_set_batched_io(n.cast(), 1), QUICHE_EV_ERR_NULL);
    assert_eq!(quiche_ev_client_set_gso(n.cast(), 0), QUICHE_EV_ERR_NULL);
    quiche_ev_client_recv_cb(f.lp, n.cast(), EV_READ);
    quiche_ev_client_signal_cb(f.lp, n.cast(), EV_SIGNAL);
    quiche_ev_client_free(n.cast());

    // A valid client (no server behind the address): its status says
    // "not complete" until a response arrives.
    let c = quiche_ev_client_new(f.lp, f.sock, host, f.addr(), f.addr.1, f.config, n.cast(), ptr::null(), 0);
    assert!(!c.is_null());
    assert_eq!(quiche_ev_client_status(c), 1);
    assert_eq!(quiche_ev_client_set_output(c, ptr::null()), QUICHE_EV_ERR_NULL);
    assert_eq!(quiche_ev_client_set_output(c, c"/no/such/dir/out".as_ptr()), QUICHE_EV_ERR_INVALID);
    let mut w = ev_io::zeroed();
    quiche_ev_client_recv_cb(f.lp, &mut w, EV_READ);
    quiche_ev_client_free(c);
}

#[test]
fn every_exported_function_runs_inside_a_panic_boundary() {
    // Structural check over src/ffi: each `extern "C"` body starts with the
    // guard (`guard(` or `callback(`), so no panic can unwind into C. The
    // guard itself is tested in src/ffi/guard.rs.
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/ffi");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let src = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        let mut rest = src.as_str();
        while let Some(at) = rest.find("#[no_mangle]") {
            rest = &rest[at + 12..];
            let body = &rest[rest.find('{').unwrap() + 1..];
            let first = body.trim_start();
            assert!(first.starts_with("guard(") || first.starts_with("callback("),
                    "an exported function in {dir} does not start with the panic guard: {}",
                    &rest[..rest.find('{').unwrap()]);
            seen += 1;
        }
    }
    assert!(seen >= 20, "found only {seen} exported functions");
}

#[test]
fn versions_are_cargo_tomls_and_the_linked_quiches() {
    assert_eq!(text(quiche_ev_version()), env!("CARGO_PKG_VERSION"));
    assert_eq!(text(quiche_ev_quiche_version()), text(unsafe { quiche_version() }));
    assert_eq!(text(quiche_ev_quiche_version()), "0.30.0");
}

#[test]
fn every_error_code_in_the_header_has_its_own_description() {
    // The codes as C sees them: every `#define QUICHE_EV_ERR_<NAME> <n>`.
    let header = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/include/quiche_ev.h")).unwrap();
    let codes: Vec<(String, libc::c_int)> = header.lines()
        .filter_map(|l| l.strip_prefix("#define QUICHE_EV_ERR_"))
        .map(|l| {
            let (name, value) = l.split_once(' ').unwrap();
            (name.to_string(), value.trim().parse().unwrap())
        })
        .collect();
    let names: Vec<&str> = codes.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["NULL", "INVALID", "INTERNAL", "STATE", "CLOSED", "TRANSPORT", "UNSUPPORTED"]);

    let unknown = text(quiche_ev_strerror(-1000));
    assert_eq!(text(quiche_ev_strerror(0)), "success");
    let mut seen = vec![unknown.clone(), "success".to_string()];
    for (name, code) in &codes {
        assert!(*code < 0, "QUICHE_EV_ERR_{name} is not negative");
        let s = text(quiche_ev_strerror(*code));
        assert!(!seen.contains(&s), "QUICHE_EV_ERR_{name} has no description of its own: {s:?}");
        seen.push(s);
    }
    // Anything else: the same generic text, never NULL.
    for code in [1, 2, -8, 100, libc::c_int::MIN, libc::c_int::MAX] {
        assert_eq!(text(quiche_ev_strerror(code)), unknown, "code {code}");
    }
    assert_eq!(quiche_ev_strerror(-2), quiche_ev_strerror(-2), "static strings, not allocations");
}
