//! The host's C callbacks, as the application layer's host traits: each
//! event becomes one C call (or, where the host set no callback, the
//! application's built-in behaviour).

use libc::{c_int, c_void};
use quiche::h3;

use super::errors::QUICHE_EV_ERR_INTERNAL;
use super::types::*;
use crate::app::builtin::Builtin;
use crate::app::host::{ClientHost, Outcome, ReqId, ReqRef, ResponseOutcome, ServerHost};
use crate::app::request::Request;
use crate::hooks::{ConnRef, HandleRef};
use crate::transport::{CloseInfo, ConnStats};

/// A server's C callbacks (each may be unset) and user data, and the
/// built-in responder that answers when the host takes no requests.
#[derive(Clone)]
pub struct CServerHost {
    pub builtin: Builtin,
    pub user: *mut c_void,
    pub on_request: quiche_ev_request_cb,
    pub on_body: quiche_ev_request_body_cb,
    pub on_writable: quiche_ev_request_writable_cb,
    pub on_request_closed: quiche_ev_request_closed_cb,
    pub on_conn_established: quiche_ev_conn_cb,
    pub on_conn_closed: quiche_ev_conn_closed_cb,
    pub on_stopped: quiche_ev_server_stopped_cb,
    pub on_datagram: quiche_ev_conn_datagram_cb,
    pub on_request_datagram: quiche_ev_request_datagram_cb,
    pub on_datagram_writable: quiche_ev_conn_cb,
}

impl Default for CServerHost {
    fn default() -> Self {
        CServerHost { builtin: Builtin::Byez, user: std::ptr::null_mut(), on_request: None, on_body: None, on_writable: None,
                      on_request_closed: None, on_conn_established: None, on_conn_closed: None, on_stopped: None,
                      on_datagram: None, on_request_datagram: None, on_datagram_writable: None }
    }
}

/// What a C host keeps on each request: its own writable and datagram
/// callbacks.
#[derive(Default)]
pub struct CRequestData {
    pub on_writable: quiche_ev_request_writable_cb,
    pub on_datagram: quiche_ev_request_datagram_cb,
}

impl ServerHost<P> for CServerHost {
    type PerRequest = CRequestData;

    fn request(&self, r: ReqRef) {
        match self.on_request {
            // SAFETY: the host's callback, with a live request handle.
            Some(cb) => unsafe { cb(r.cast(), self.user) },
            // SAFETY: r is a live request of this C API.
            None => unsafe { self.builtin.respond(r as *mut Request<P, CServerHost>) },
        }
    }

    fn body(&self, r: ReqRef, data: &[u8], fin: bool) -> Option<usize> {
        let cb = self.on_body?;
        // SAFETY: as in request; the bytes are valid for the call.
        Some(unsafe { cb(r.cast(), data.as_ptr(), data.len(), fin as c_int, self.user) })
    }

    fn writable(&self, r: ReqRef) {
        // SAFETY: r is a live request of this C API.
        let own = unsafe { (*(r as *mut Request<P, CServerHost>)).host_data.on_writable };
        if let Some(cb) = own.or(self.on_writable) {
            // SAFETY: as in request.
            unsafe { cb(r.cast(), self.user) };
        }
    }

    fn request_closed(&self, r: ReqRef, outcome: Outcome, code: u64) {
        if let Some(cb) = self.on_request_closed {
            // SAFETY: as in request.
            unsafe { cb(r.cast(), outcome as c_int, code, self.user) };
        }
    }

    fn request_datagram(&self, r: ReqRef, data: &[u8]) -> bool {
        // SAFETY: r is a live request of this C API.
        let own = unsafe { (*(r as *mut Request<P, CServerHost>)).host_data.on_datagram };
        let Some(cb) = own.or(self.on_request_datagram) else { return false };
        // SAFETY: as in request; the bytes are valid for the call.
        unsafe { cb(r.cast(), data.as_ptr(), data.len(), self.user) };
        true
    }

    fn datagram(&self, conn: ConnRef, data: &[u8]) -> bool {
        let Some(cb) = self.on_datagram else { return false };
        // SAFETY: the host's callback, with a live connection handle; the
        // bytes are valid for the call.
        unsafe { cb(conn as *mut quiche_ev_conn, data.as_ptr(), data.len(), self.user) };
        true
    }

    fn datagram_writable(&self, conn: ConnRef) {
        if let Some(cb) = self.on_datagram_writable {
            // SAFETY: the host's callback, with a live connection handle.
            unsafe { cb(conn as *mut quiche_ev_conn, self.user) };
        }
    }

    fn hears_conns(&self) -> bool {
        self.on_conn_established.is_some() || self.on_conn_closed.is_some()
    }

    fn conn_established(&self, conn: ConnRef) {
        if let Some(cb) = self.on_conn_established {
            // SAFETY: the host's callback, with a live connection handle.
            unsafe { cb(conn as *mut quiche_ev_conn, self.user) };
        }
    }

    fn conn_closed(&self, conn: ConnRef, stats: &ConnStats, info: &CloseInfo) {
        if let Some(cb) = self.on_conn_closed {
            let c = quiche_ev_stats::new(stats, info);
            // SAFETY: as in conn_established; `c` lives through the call.
            unsafe { cb(conn as *mut quiche_ev_conn, &c, self.user) };
        }
    }

    fn stopped(&self, server: HandleRef, failed: bool) {
        if let Some(cb) = self.on_stopped {
            let status = if failed { QUICHE_EV_ERR_INTERNAL } else { 0 };
            // SAFETY: the host's callback, with its live server.
            unsafe { cb(server as *mut quiche_ev_server, status, self.user) };
        }
    }
}

/// A client's C callbacks (each may be unset) and user data.
#[derive(Clone, Copy)]
pub struct CClientHost {
    pub user: *mut c_void,
    pub on_established: quiche_ev_client_cb,
    pub on_closed: quiche_ev_client_closed_cb,
    pub on_headers: quiche_ev_response_headers_cb,
    pub on_body: quiche_ev_response_body_cb,
    pub on_done: quiche_ev_response_done_cb,
    pub on_trailers: quiche_ev_response_trailers_cb,
    pub on_request_writable: quiche_ev_request_body_writable_cb,
    pub on_datagram: quiche_ev_client_datagram_cb,
    pub on_request_datagram: quiche_ev_response_datagram_cb,
    pub on_datagram_writable: quiche_ev_client_cb,
}

impl Default for CClientHost {
    fn default() -> Self {
        CClientHost { user: std::ptr::null_mut(), on_established: None, on_closed: None, on_headers: None,
                      on_body: None, on_done: None, on_trailers: None, on_request_writable: None,
                      on_datagram: None, on_request_datagram: None, on_datagram_writable: None }
    }
}

/// Header fields as the C API hands them out (views, valid while `list`).
fn c_headers(list: &[h3::Header]) -> Vec<quiche_ev_header> {
    list.iter().map(quiche_ev_header::of).collect()
}

fn client(c: HandleRef) -> *mut quiche_ev_client {
    c as *mut quiche_ev_client
}

impl ClientHost for CClientHost {
    fn established(&self, c: HandleRef) {
        if let Some(cb) = self.on_established {
            // SAFETY: the host's callback, with its live client.
            unsafe { cb(client(c), self.user) };
        }
    }

    fn headers(&self, c: HandleRef, id: ReqId, status: i32, headers: &[h3::Header], user: *mut c_void) -> bool {
        let Some(cb) = self.on_headers else { return false };
        let list = c_headers(headers);
        // SAFETY: as in established; the views live through the call.
        unsafe { cb(client(c), id, status, list.as_ptr(), list.len(), user) };
        true
    }

    fn body(&self, c: HandleRef, id: ReqId, data: &[u8], user: *mut c_void) -> Option<usize> {
        let cb = self.on_body?;
        // SAFETY: as in established; the bytes are valid for the call.
        Some(unsafe { cb(client(c), id, data.as_ptr(), data.len(), user) })
    }

    fn trailers(&self, c: HandleRef, id: ReqId, headers: &[h3::Header], user: *mut c_void) -> bool {
        let Some(cb) = self.on_trailers else { return false };
        let list = c_headers(headers);
        // SAFETY: as in headers.
        unsafe { cb(client(c), id, list.as_ptr(), list.len(), user) };
        true
    }

    fn done(&self, c: HandleRef, id: ReqId, outcome: ResponseOutcome, code: u64, user: *mut c_void) -> bool {
        let Some(cb) = self.on_done else { return false };
        // SAFETY: as in established.
        unsafe { cb(client(c), id, outcome as c_int, code, user) };
        true
    }

    fn request_writable(&self, c: HandleRef, id: ReqId, user: *mut c_void) {
        if let Some(cb) = self.on_request_writable {
            // SAFETY: as in established.
            unsafe { cb(client(c), id, user) };
        }
    }

    fn request_datagram(&self, c: HandleRef, id: ReqId, data: &[u8], user: *mut c_void) -> bool {
        let Some(cb) = self.on_request_datagram else { return false };
        // SAFETY: as in established; the bytes are valid for the call.
        unsafe { cb(client(c), id, data.as_ptr(), data.len(), user) };
        true
    }

    fn datagram(&self, c: HandleRef, data: &[u8]) -> bool {
        let Some(cb) = self.on_datagram else { return false };
        // SAFETY: as in established; the bytes are valid for the call.
        unsafe { cb(client(c), data.as_ptr(), data.len(), self.user) };
        true
    }

    fn datagram_writable(&self, c: HandleRef) {
        if let Some(cb) = self.on_datagram_writable {
            // SAFETY: as in established.
            unsafe { cb(client(c), self.user) };
        }
    }

    fn closed(&self, c: HandleRef, failed: bool) {
        if let Some(cb) = self.on_closed {
            let state = if failed { QUICHE_EV_CLIENT_FAILED } else { QUICHE_EV_CLIENT_CLOSED };
            // SAFETY: as in established.
            unsafe { cb(client(c), state, self.user) };
        }
    }
}
