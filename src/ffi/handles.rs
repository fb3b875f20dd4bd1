//! What each C handle is in Rust, and every cast between the two: one
//! place, one kind of object per handle type (the handle machinery's raw
//! root, a request box, a connection box).

use libc::c_void;

use super::host::{CClientHost, CServerHost};
use super::types::*;
use crate::platform::Platform;

/// What each handle is.
/// cbindgen:ignore
pub(crate) type Srv = crate::app::server::Srv<P, CServerHost>;
/// cbindgen:ignore
pub(crate) type SConn = crate::app::server::SConn<P, CServerHost>;
/// cbindgen:ignore
pub(crate) type Req = crate::app::request::Request<P, CServerHost>;
/// cbindgen:ignore
pub(crate) type Cli = crate::app::client::Cli<P, CClientHost>;

impl quiche_config {
    /// The `quiche::Config` behind a C `quiche_config *`. This holds for
    /// the pinned quiche version, whose `quiche_config_new` returns
    /// `Box::into_raw(Box<Config>)`; `tests/config_identity.rs` proves it.
    pub(crate) fn as_config(p: *mut quiche_config) -> *mut <P as Platform>::Config {
        p.cast()
    }
}

impl quiche_h3_config {
    /// The `quiche::h3::Config` behind a C `quiche_h3_config *`.
    pub(crate) fn as_config(p: *mut quiche_h3_config) -> *const <P as crate::app::framing::AppPlatform>::H3Config {
        p.cast()
    }
}

impl quiche_ev_server {
    pub(crate) fn of(s: *const Srv) -> *mut quiche_ev_server {
        s as *mut quiche_ev_server
    }

    /// The server behind a handle; `None` for NULL.
    pub(crate) fn get(p: *const quiche_ev_server) -> Option<*mut Srv> {
        (!p.is_null()).then_some(p as *mut Srv)
    }
}

impl quiche_ev_client {
    pub(crate) fn of(c: *const Cli) -> *mut quiche_ev_client {
        c as *mut quiche_ev_client
    }

    pub(crate) fn get(p: *const quiche_ev_client) -> Option<*mut Cli> {
        (!p.is_null()).then_some(p as *mut Cli)
    }
}

impl quiche_ev_request {
    pub(crate) fn get(p: *const quiche_ev_request) -> Option<*mut Req> {
        (!p.is_null()).then_some(p as *mut Req)
    }
}

impl quiche_ev_conn {
    pub(crate) fn of(c: *const c_void) -> *mut quiche_ev_conn {
        c as *mut quiche_ev_conn
    }

    pub(crate) fn get(p: *const quiche_ev_conn) -> Option<*const SConn> {
        (!p.is_null()).then_some(p as *const SConn)
    }
}

impl quiche_conn {
    /// quiche's ffi takes a `quiche::Connection` as `quiche_conn` (pinned
    /// version).
    pub(crate) fn of(c: *mut <P as Platform>::Conn) -> *mut quiche_conn {
        c.cast()
    }
}

