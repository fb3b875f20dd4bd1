//! `quiche_ev_set_log`: where the library's messages go (nowhere unless
//! the host says).

use libc::{c_int, c_void};

use super::guard::guard;
use super::types::quiche_ev_log_cb;
use super::{QUICHE_EV_ERR_INTERNAL, QUICHE_EV_ERR_INVALID};
use crate::log::{self, Level};

/// Log levels for `quiche_ev_set_log`.
pub const QUICHE_EV_LOG_ERROR: c_int = 1;
pub const QUICHE_EV_LOG_WARN: c_int = 2;
pub const QUICHE_EV_LOG_INFO: c_int = 3;
pub const QUICHE_EV_LOG_DEBUG: c_int = 4;

/// Sends the library's messages up to `level` (`QUICHE_EV_LOG_ERROR` ..
/// `QUICHE_EV_LOG_DEBUG`) to `cb(level, message, user)`: one line, no
/// newline, valid during the call. With `cb` NULL (the default) the
/// library prints nothing at all. Process-wide. The callback runs on the
/// thread of the loop that logs, possibly inside the library's own code:
/// it must not call any other quiche-ev function. INFO carries upstream's
/// event lines ("new connection", "connection established: ...", ...);
/// DEBUG adds every dropped datagram. quiche's own debug log is separate
/// (`quiche_enable_debug_logging`). Returns 0 or `QUICHE_EV_ERR_INVALID`
/// (a bad level).
#[no_mangle]
pub extern "C" fn quiche_ev_set_log(cb: quiche_ev_log_cb, user: *mut c_void, level: c_int) -> c_int {
    guard(QUICHE_EV_ERR_INTERNAL, || {
        let Some(level) = Level::from_c(level) else { return QUICHE_EV_ERR_INVALID };
        log::set(cb, user, level);
        0
    })
}
