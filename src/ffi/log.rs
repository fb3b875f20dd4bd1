//! `quiche_ev_set_log` and `quiche_ev_set_logger`: where the library's
//! messages go (nowhere unless the host says).

use std::sync::Arc;

use libc::{c_int, c_void};

use super::guard::guard;
use super::types::{quiche_ev_client, quiche_ev_conn, quiche_ev_log_cb, quiche_ev_log_record, quiche_ev_logger_cb,
                   quiche_ev_server};
use super::{QUICHE_EV_ERR_INTERNAL, QUICHE_EV_ERR_INVALID};
use crate::log::{self, Level, Origin};

/// Log levels for `quiche_ev_set_log` and `quiche_ev_set_logger`.
pub const QUICHE_EV_LOG_ERROR: c_int = 1;
pub const QUICHE_EV_LOG_WARN: c_int = 2;
pub const QUICHE_EV_LOG_INFO: c_int = 3;
pub const QUICHE_EV_LOG_DEBUG: c_int = 4;

/// The host's pointer, handed back to its callback on whichever thread
/// logs (the host answers for its thread safety; see the header).
#[derive(Clone, Copy)]
struct User(*mut c_void);
// SAFETY: only handed back to the host's own callback, as documented.
unsafe impl Send for User {}
// SAFETY: as above.
unsafe impl Sync for User {}

/// Sends the library's messages up to `level` (`QUICHE_EV_LOG_ERROR` ..
/// `QUICHE_EV_LOG_DEBUG`) to `cb(level, message, user)`: one line, no
/// newline, valid during the call. With `cb` NULL (the default) the
/// library prints nothing at all. Process-wide; replaces what
/// `quiche_ev_set_logger` installed. The callback runs on the thread of
/// the loop that logs, possibly inside the library's own code: it must
/// not call any other quiche-ev function. INFO carries upstream's event
/// lines ("new connection", "connection established: ...", ...; the
/// built-in responder also prints each HTTP/3 request's header fields, as
/// upstream's servers do); DEBUG adds every dropped datagram and the
/// header fields of requests a request callback of yours takes. quiche's
/// own debug log is separate (`quiche_enable_debug_logging`). Returns 0
/// or `QUICHE_EV_ERR_INVALID` (a bad level).
#[no_mangle]
pub extern "C" fn quiche_ev_set_log(cb: quiche_ev_log_cb, user: *mut c_void, level: c_int) -> c_int {
    guard(QUICHE_EV_ERR_INTERNAL, || {
        let Some(level) = Level::from_c(level) else { return QUICHE_EV_ERR_INVALID };
        let user = User(user);
        let sink: Option<Arc<log::Sink>> = cb.map(|cb| {
            Arc::new(move |level: Level, msg: &std::ffi::CStr, _: &Origin| {
                let u = user;
                // SAFETY: the host's callback, with a C string valid for the call.
                unsafe { cb(level as c_int, msg.as_ptr(), u.0) }
            }) as Arc<log::Sink>
        });
        log::set(sink, level);
        0
    })
}

/// As `quiche_ev_set_log`, but each message comes as a
/// `quiche_ev_log_record` that also says who it is about: the server or
/// client whose work logged it and, for a server, the connection (NULL
/// where none applies), so a program with several handles can tell their
/// lines apart. The record and its strings are valid during the call;
/// the handles are the program's own (compare them; calling any
/// quiche-ev function from the callback is not allowed). Replaces what
/// `quiche_ev_set_log` installed. Returns 0 or `QUICHE_EV_ERR_INVALID`.
#[no_mangle]
pub extern "C" fn quiche_ev_set_logger(cb: quiche_ev_logger_cb, user: *mut c_void, level: c_int) -> c_int {
    guard(QUICHE_EV_ERR_INTERNAL, || {
        let Some(level) = Level::from_c(level) else { return QUICHE_EV_ERR_INVALID };
        let user = User(user);
        let sink: Option<Arc<log::Sink>> = cb.map(|cb| {
            Arc::new(move |level: Level, msg: &std::ffi::CStr, o: &Origin| {
                let u = user;
                let record = quiche_ev_log_record {
                    size: std::mem::size_of::<quiche_ev_log_record>(),
                    level: level as c_int,
                    message: msg.as_ptr(),
                    server: o.server as *mut quiche_ev_server,
                    client: o.client as *mut quiche_ev_client,
                    conn: o.conn as *mut quiche_ev_conn,
                };
                // SAFETY: the host's callback, with a record valid for the call.
                unsafe { cb(&record, u.0) }
            }) as Arc<log::Sink>
        });
        log::set(sink, level);
        0
    })
}
