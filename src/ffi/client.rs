//! `quiche_ev_client_*`: the client handle and its libev callbacks.

use std::fs::File;
use std::io::BufWriter;

use libc::{c_char, c_int, sockaddr, socklen_t};
use libev_sys::{ev_io, ev_loop, ev_signal};

use super::guard::{as_mut, as_str, callback, guard};
use super::types::{quiche_config, quiche_h3_config};
use super::{QUICHE_EV_ERR_INTERNAL, QUICHE_EV_ERR_INVALID, QUICHE_EV_ERR_NULL};
use crate::app::{h3::H3Client, hq::HqClient, ClientApp};
use crate::batch_io::IoMode;
use crate::client::Client;
use crate::socket::{local_addr, sockaddr_to_std};

/// A QUIC client: one connection, its request(s) and the response on
/// stdout. Made by `quiche_ev_client_new`, freed by `quiche_ev_client_free`.
pub struct quiche_ev_client {
    _private: [u8; 0],
}

fn client<'a>(p: *mut quiche_ev_client) -> Option<&'a mut Client> {
    // SAFETY: a non-NULL handle came from quiche_ev_client_new, which
    // returns a boxed Client; C must not use it after _free.
    unsafe { as_mut(p.cast::<Client>()) }
}

/// Connects to `peer` over the non-blocking UDP socket `sock`; the first
/// flight goes out as soon as `ev_run` starts.
///
/// `host` is the TLS server name (and HTTP/3 `:authority`). `config` (and
/// `h3_config`) stay owned by the caller and must outlive the client. With
/// `h3_config` NULL the client speaks hq-interop (`GET <path>\r\n` on
/// stream 4, like upstream `client.c`); otherwise HTTP/3. `paths` lists
/// `paths_len` request paths fetched one after another; with none, the
/// client asks for `/index.html` (hq) or `/` (HTTP/3) like upstream.
///
/// Returns NULL (with a message on stderr) on a NULL or invalid argument.
#[no_mangle]
pub extern "C" fn quiche_ev_client_new(loop_: *mut ev_loop, sock: c_int, host: *const c_char,
                                       peer: *const sockaddr, peer_len: socklen_t,
                                       config: *mut quiche_config,
                                       h3_config: *mut quiche_h3_config,
                                       paths: *const *const c_char, paths_len: usize)
                                       -> *mut quiche_ev_client {
    guard(std::ptr::null_mut(), || {
        if loop_.is_null() || config.is_null() || sock < 0 || (paths.is_null() && paths_len > 0) {
            eprintln!("quiche_ev_client_new: loop, config and socket are required");
            return std::ptr::null_mut();
        }
        // SAFETY: host is NULL or a C string.
        let host = unsafe { as_str(host) };
        // SAFETY: the caller passes peer_len readable bytes at peer.
        let Some(peer) = (unsafe { sockaddr_to_std(peer, peer_len) }) else {
            eprintln!("quiche_ev_client_new: peer address is not an IPv4/IPv6 address");
            return std::ptr::null_mut();
        };
        let mut list = Vec::with_capacity(paths_len);
        for i in 0..paths_len {
            // SAFETY: the caller passes paths_len C strings at paths.
            match unsafe { as_str(*paths.add(i)) } {
                Some(p) if p.starts_with('/') => list.push(p.to_string()),
                _ => {
                    eprintln!("quiche_ev_client_new: request path {i} must be a string starting with '/'");
                    return std::ptr::null_mut();
                }
            }
        }
        let local = match local_addr(sock) {
            Ok(a) => a,
            Err(e) => {
                eprintln!("failed to get local address of socket: {e}");
                return std::ptr::null_mut();
            }
        };
        let app = if h3_config.is_null() {
            if list.is_empty() {
                list.push("/index.html".into());
            }
            ClientApp::Hq(HqClient::new(list))
        } else {
            if list.is_empty() {
                list.push("/".into());
            }
            let h3 = quiche_h3_config::as_config(h3_config);
            ClientApp::H3(H3Client::new(host.unwrap_or("").to_string(), list, h3))
        };
        // SAFETY: config outlives the client, as documented above.
        let config = unsafe { &mut *quiche_config::as_config(config) };
        // SAFETY: loop_ is non-NULL and, per the C API, outlives the client.
        match unsafe { Client::new(loop_, sock, host, local, peer, config, app) } {
            Ok(c) => Box::into_raw(c).cast(),
            Err(e) => {
                eprintln!("{e}");
                std::ptr::null_mut()
            }
        }
    })
}

/// Writes response bodies to the file `path` (created or truncated)
/// instead of stdout. Returns 0, `QUICHE_EV_ERR_NULL`, or
/// `QUICHE_EV_ERR_INVALID` when the file cannot be created.
#[no_mangle]
pub extern "C" fn quiche_ev_client_set_output(client_: *mut quiche_ev_client, path: *const c_char) -> c_int {
    guard(QUICHE_EV_ERR_INTERNAL, || {
        let Some(c) = client(client_) else { return QUICHE_EV_ERR_NULL };
        // SAFETY: path is NULL or a C string.
        let Some(path) = (unsafe { as_str(path) }) else { return QUICHE_EV_ERR_NULL };
        match File::create(path) {
            Ok(f) => {
                c.set_output(Box::new(BufWriter::with_capacity(1 << 20, f)));
                0
            }
            Err(e) => {
                eprintln!("cannot write {path}: {e}");
                QUICHE_EV_ERR_INVALID
            }
        }
    })
}

/// Chooses the datagram path, as `quiche_ev_server_set_batched_io`.
/// Returns 0 or `QUICHE_EV_ERR_NULL`.
#[no_mangle]
pub extern "C" fn quiche_ev_client_set_batched_io(client_: *mut quiche_ev_client, batched: c_int) -> c_int {
    guard(QUICHE_EV_ERR_INTERNAL, || {
        let Some(c) = client(client_) else { return QUICHE_EV_ERR_NULL };
        c.set_io(if batched != 0 { IoMode::BATCHED } else { IoMode::PLAIN });
        0
    })
}

/// Turns GSO sends on or off, as `quiche_ev_server_set_gso`. Returns 0 or
/// `QUICHE_EV_ERR_NULL`.
#[no_mangle]
pub extern "C" fn quiche_ev_client_set_gso(client_: *mut quiche_ev_client, on: c_int) -> c_int {
    guard(QUICHE_EV_ERR_INTERNAL, || {
        let Some(c) = client(client_) else { return QUICHE_EV_ERR_NULL };
        c.set_io(IoMode { gso: on != 0, ..c.io_mode() });
        0
    })
}

/// The socket watcher's callback (upstream's `recv_cb`): set it with
/// `ev_io_init(&w, quiche_ev_client_recv_cb, sock, EV_READ)` and
/// `w.data = client`. The loop breaks when the connection is closed.
#[no_mangle]
pub extern "C" fn quiche_ev_client_recv_cb(loop_: *mut ev_loop, w: *mut ev_io, _revents: c_int) {
    callback(loop_, || {
        // SAFETY: w is the watcher libev is calling us for.
        let Some(w) = (unsafe { w.as_ref() }) else { return };
        match client(w.data.cast()) {
            Some(c) => c.recv_cb(),
            None => eprintln!("quiche_ev_client_recv_cb: watcher data is not a client"),
        }
    });
}

/// A signal watcher's callback for SIGINT/SIGTERM (`w.data = client`):
/// closes the connection, marks the request interrupted, breaks the loop.
#[no_mangle]
pub extern "C" fn quiche_ev_client_signal_cb(loop_: *mut ev_loop, w: *mut ev_signal, _revents: c_int) {
    callback(loop_, || {
        // SAFETY: w is the watcher libev is calling us for.
        let Some(w) = (unsafe { w.as_ref() }) else { return };
        if let Some(c) = client(w.data.cast()) {
            c.interrupt();
        }
    });
}

/// 0 when every requested response arrived in full, 1 otherwise (the
/// reason was printed on stderr), `QUICHE_EV_ERR_NULL` for NULL. Use it as
/// the exit status.
#[no_mangle]
pub extern "C" fn quiche_ev_client_status(client_: *mut quiche_ev_client) -> c_int {
    guard(QUICHE_EV_ERR_INTERNAL, || match client(client_) {
        Some(c) => c.status(),
        None => QUICHE_EV_ERR_NULL,
    })
}

/// Frees the client and its connection (stopping its timer). NULL is a
/// no-op.
#[no_mangle]
pub extern "C" fn quiche_ev_client_free(client_: *mut quiche_ev_client) {
    guard((), || {
        if !client_.is_null() {
            // SAFETY: made by Box::into_raw in quiche_ev_client_new.
            drop(unsafe { Box::from_raw(client_.cast::<Client>()) });
        }
    })
}
