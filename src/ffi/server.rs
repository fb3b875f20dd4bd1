//! `quiche_ev_server_*`: the server handle and its libev callbacks.

use std::path::Path;
use std::time::Duration;

use libc::{c_char, c_int, sockaddr, socklen_t, ssize_t};
use libev_sys::{ev_io, ev_loop, ev_signal};

use super::guard::{as_mut, as_str, callback, guard};
use super::types::{quiche_config, quiche_h3_config};
use super::{QUICHE_EV_ERR_INTERNAL, QUICHE_EV_ERR_INVALID, QUICHE_EV_ERR_NULL};
use crate::app::serve::Responder;
use crate::app::ServerAppConfig;
use crate::batch_io::IoMode;
use crate::server::Server;
use crate::socket::sockaddr_to_std;

/// A QUIC server: the connection table and everything event-driven about
/// it. Made by `quiche_ev_server_new`, freed by `quiche_ev_server_free`.
pub struct quiche_ev_server {
    _private: [u8; 0],
}

fn handle<'a>(p: *mut quiche_ev_server) -> Option<&'a mut Server> {
    // SAFETY: a non-NULL handle came from quiche_ev_server_new, which
    // returns a boxed Server; C must not use it after _free.
    unsafe { as_mut(p.cast::<Server>()) }
}

/// Creates a server on the bound, non-blocking UDP socket `sock` whose
/// address is `local`.
///
/// `config` (and `h3_config`, if given) stay owned by the caller and must
/// outlive the server. With `h3_config` NULL every connection speaks
/// hq-interop and answers `byez\n` like upstream `server.c`; otherwise
/// HTTP/3 like `http3-server.c`.
///
/// Returns NULL (with a message on stderr) when an argument is NULL or the
/// address is not IPv4/IPv6.
#[no_mangle]
pub extern "C" fn quiche_ev_server_new(loop_: *mut ev_loop, sock: c_int,
                                       local: *const sockaddr, local_len: socklen_t,
                                       config: *mut quiche_config,
                                       h3_config: *mut quiche_h3_config) -> *mut quiche_ev_server {
    guard(std::ptr::null_mut(), || {
        if loop_.is_null() || config.is_null() || sock < 0 {
            eprintln!("quiche_ev_server_new: loop, config and socket are required");
            return std::ptr::null_mut();
        }
        // SAFETY: the caller passes local_len readable bytes at local.
        let Some(local) = (unsafe { sockaddr_to_std(local, local_len) }) else {
            eprintln!("quiche_ev_server_new: local address is not an IPv4/IPv6 address");
            return std::ptr::null_mut();
        };
        let app = if h3_config.is_null() {
            ServerAppConfig::Hq { serve: Responder::byez() }
        } else {
            ServerAppConfig::H3 { config: quiche_h3_config::as_config(h3_config), serve: Responder::byez() }
        };
        // SAFETY: the config outlives the server, as documented above.
        let server = unsafe { Server::new(loop_, sock, local, quiche_config::as_config(config), app) };
        Box::into_raw(server).cast()
    })
}

/// Serves files below the folder `dir` instead of answering `byez\n`:
/// the request path maps to a file under `dir`; anything missing or outside
/// it gets 404 (HTTP/3) or a stream reset (hq-interop).
///
/// Returns 0, `QUICHE_EV_ERR_NULL`, or `QUICHE_EV_ERR_INVALID` when `dir`
/// is not a readable folder.
#[no_mangle]
pub extern "C" fn quiche_ev_server_set_root(server: *mut quiche_ev_server, dir: *const c_char) -> c_int {
    guard(QUICHE_EV_ERR_INTERNAL, || {
        let Some(s) = handle(server) else { return QUICHE_EV_ERR_NULL };
        // SAFETY: dir is NULL or a C string.
        let Some(dir) = (unsafe { as_str(dir) }) else { return QUICHE_EV_ERR_NULL };
        let responder = match Responder::with_root(Path::new(dir)) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("cannot serve {dir}: {e}");
                return QUICHE_EV_ERR_INVALID;
            }
        };
        match s.app_config_mut() {
            ServerAppConfig::Hq { serve } | ServerAppConfig::H3 { serve, .. } => {
                *serve = responder
            }
        }
        0
    })
}

/// Bounds the number of live connections (default 10000). When the table
/// is full, new connections are refused before any state is made for them.
/// Returns 0, `QUICHE_EV_ERR_NULL` or `QUICHE_EV_ERR_INVALID` (for 0).
#[no_mangle]
pub extern "C" fn quiche_ev_server_set_max_conns(server: *mut quiche_ev_server, max: usize) -> c_int {
    guard(QUICHE_EV_ERR_INTERNAL, || {
        let Some(s) = handle(server) else { return QUICHE_EV_ERR_NULL };
        if max == 0 {
            return QUICHE_EV_ERR_INVALID;
        }
        s.set_max_conns(max);
        0
    })
}

/// How long a Retry token stays valid, in milliseconds (default 10000).
/// Returns 0, `QUICHE_EV_ERR_NULL` or `QUICHE_EV_ERR_INVALID` (for 0).
#[no_mangle]
pub extern "C" fn quiche_ev_server_set_token_lifetime(server: *mut quiche_ev_server, ms: u64) -> c_int {
    guard(QUICHE_EV_ERR_INTERNAL, || {
        let Some(s) = handle(server) else { return QUICHE_EV_ERR_NULL };
        if ms == 0 {
            return QUICHE_EV_ERR_INVALID;
        }
        s.set_token_lifetime(Duration::from_millis(ms));
        0
    })
}

/// Chooses the datagram path: `batched` non-zero (the default) reads with
/// `recvmmsg` + UDP GRO and sends GSO batches; 0 uses one `recvfrom` /
/// `sendto` per packet like upstream (for comparison). Returns 0 or
/// `QUICHE_EV_ERR_NULL`.
#[no_mangle]
pub extern "C" fn quiche_ev_server_set_batched_io(server: *mut quiche_ev_server, batched: c_int) -> c_int {
    guard(QUICHE_EV_ERR_INTERNAL, || {
        let Some(s) = handle(server) else { return QUICHE_EV_ERR_NULL };
        s.set_io(if batched != 0 { IoMode::BATCHED } else { IoMode::PLAIN });
        0
    })
}

/// Turns GSO sends on (non-zero, the default on the batched path) or off,
/// keeping the read side as it is: for measuring what GSO itself brings.
/// Returns 0 or `QUICHE_EV_ERR_NULL`.
#[no_mangle]
pub extern "C" fn quiche_ev_server_set_gso(server: *mut quiche_ev_server, on: c_int) -> c_int {
    guard(QUICHE_EV_ERR_INTERNAL, || {
        let Some(s) = handle(server) else { return QUICHE_EV_ERR_NULL };
        s.set_io(IoMode { gso: on != 0, ..s.io_mode() });
        0
    })
}

/// The number of live connections, or `QUICHE_EV_ERR_NULL`.
#[no_mangle]
pub extern "C" fn quiche_ev_server_conn_count(server: *mut quiche_ev_server) -> ssize_t {
    guard(QUICHE_EV_ERR_INTERNAL as ssize_t, || match handle(server) {
        Some(s) => s.conn_count() as ssize_t,
        None => QUICHE_EV_ERR_NULL as ssize_t,
    })
}

/// The socket watcher's callback (upstream's `recv_cb`): set it with
/// `ev_io_init(&w, quiche_ev_server_recv_cb, sock, EV_READ)` and
/// `w.data = server`.
#[no_mangle]
pub extern "C" fn quiche_ev_server_recv_cb(loop_: *mut ev_loop, w: *mut ev_io, _revents: c_int) {
    callback(loop_, || {
        // SAFETY: w is the watcher libev is calling us for.
        let Some(w) = (unsafe { w.as_ref() }) else { return };
        match handle(w.data.cast()) {
            Some(s) => s.recv_cb(),
            None => eprintln!("quiche_ev_server_recv_cb: watcher data is not a server"),
        }
    });
}

/// A signal watcher's callback for SIGINT/SIGTERM (`w.data = server`):
/// refuses new connections, closes every connection with CONNECTION_CLOSE
/// and sends it, then breaks the loop once they have finished closing (at
/// most a second later), so `main`
/// can free the server and exit 0. A second signal breaks at once.
#[no_mangle]
pub extern "C" fn quiche_ev_server_signal_cb(loop_: *mut ev_loop, w: *mut ev_signal, _revents: c_int) {
    callback(loop_, || {
        // SAFETY: w is the watcher libev is calling us for.
        let Some(w) = (unsafe { w.as_ref() }) else { return };
        if let Some(s) = handle(w.data.cast()) {
            eprintln!("signal {}: shutting down", w.signum);
            s.shutdown();
        }
    });
}

/// Frees the server and every connection it still has (stopping their
/// timers). NULL is a no-op.
#[no_mangle]
pub extern "C" fn quiche_ev_server_free(server: *mut quiche_ev_server) {
    guard((), || {
        if !server.is_null() {
            // SAFETY: made by Box::into_raw in quiche_ev_server_new.
            drop(unsafe { Box::from_raw(server.cast::<Server>()) });
        }
    })
}
