//! What a host sends as datagrams on a server connection: QUIC datagrams
//! on the connection, HTTP Datagrams on a request. Each borrows the
//! connection for its own duration, never calls the host, and lets the
//! server flush the connection; a send refused for a full queue is
//! remembered, so the host hears when there is room.

use super::{OpError, SConn};
use crate::app::datagram::{self, DgramError};
use crate::app::framing::AppPlatform;
use crate::app::host::ServerHost;
use crate::app::request::{Request, Response};
use crate::server::{ServerConn, ServerCore};

pub(super) fn op_error(e: DgramError) -> OpError {
    match e {
        DgramError::NotYet => OpError::State,
        DgramError::Closed => OpError::Closed,
        DgramError::Unsupported(why) => OpError::Unsupported(why),
        DgramError::TooLarge(max) => OpError::TooLarge(max),
        DgramError::Again => OpError::Again,
        DgramError::Transport(why) => OpError::Transport(why),
    }
}

/// A request that can still carry datagrams: not over.
unsafe fn live<P: AppPlatform, H: ServerHost<P>>(r: *mut Request<P, H>) -> Result<*const SConn<P, H>, OpError> {
    if (*r).closed {
        return Err(if matches!((*r).response, Response::Done) { OpError::State } else { OpError::Closed });
    }
    Ok((*r).conn as *const SConn<P, H>)
}

/// `quiche_ev_request_send_datagram`: one HTTP Datagram (RFC 9297) bound
/// to request `r`'s stream.
///
/// # Safety
/// `r` is a request handle still valid; no borrow of its server is alive.
pub unsafe fn send_datagram<P: AppPlatform, H: ServerHost<P>>(r: *mut Request<P, H>, payload: &[u8])
                                                               -> Result<(), OpError> {
    let e = live(r)?;
    let app = ServerConn::app(e);
    let sent = datagram::send_http(ServerConn::conn(e), &app.framing, (*r).stream, payload);
    app.dgrams.note(sent).map_err(op_error)?;
    ServerCore::conn_changed(e);
    Ok(())
}

/// `quiche_ev_request_datagram_max_len`: the largest HTTP Datagram payload
/// request `r` can send now.
///
/// # Safety
/// As for [`send_datagram`].
pub unsafe fn request_datagram_max_len<P: AppPlatform, H: ServerHost<P>>(r: *mut Request<P, H>)
                                                                          -> Result<usize, OpError> {
    let e = live(r)?;
    datagram::http_max_len(ServerConn::conn(e), &ServerConn::app(e).framing, (*r).stream).map_err(op_error)
}

/// `quiche_ev_conn_send_datagram`: one QUIC datagram (RFC 9221) on
/// connection `e`.
///
/// # Safety
/// `e` is a live connection of a live server; no borrow of it is alive.
pub unsafe fn conn_send_datagram<P: AppPlatform, H: ServerHost<P>>(e: *const SConn<P, H>, data: &[u8])
                                                                    -> Result<(), OpError> {
    let sent = datagram::send(ServerConn::conn(e), data);
    ServerConn::app(e).dgrams.note(sent).map_err(op_error)?;
    ServerCore::conn_changed(e);
    Ok(())
}

/// `quiche_ev_conn_datagram_max_len`: the largest QUIC datagram payload
/// the peer takes now.
///
/// # Safety
/// As for [`conn_send_datagram`].
pub unsafe fn conn_datagram_max_len<P: AppPlatform, H: ServerHost<P>>(e: *const SConn<P, H>)
                                                                       -> Result<usize, OpError> {
    datagram::max_len(ServerConn::conn(e)).map_err(op_error)
}
