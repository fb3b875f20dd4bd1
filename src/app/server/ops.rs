//! What a host (or a built-in responder) does with a request: respond,
//! write the body, end it with trailers, reset it, resume its body. Each
//! operation borrows the request and its connection for its own duration
//! only, queues what the host must hear (never calls it), and lets the
//! server flush the connection.

use quiche::h3::{self, NameValue};

use super::{ConnApp, OpError, SConn, H3_REQUEST_REJECTED};
use crate::app::body::Body;
use crate::app::framing::{reject, AppPlatform, Framing, SendError};
use crate::app::host::ServerHost;
use crate::app::request::{Outcome, Request, Response};
use crate::server::{ServerConn, ServerCore};

/// The connection of request `r` (live).
unsafe fn conn_of<P: AppPlatform, H: ServerHost<P>>(r: *mut Request<P, H>) -> *const SConn<P, H> {
    (*r).conn as *const SConn<P, H>
}

/// After an operation on request `r`: move its response as far as it
/// goes, and let the server flush the connection.
///
/// # Safety
/// `r` is live; no reference to it or its server is alive.
pub(super) unsafe fn request_changed<P: AppPlatform, H: ServerHost<P>>(r: *mut Request<P, H>) {
    let e = conn_of(r);
    let stream = (*r).stream;
    let shared = ServerCore::app_shared(ServerConn::server(e));
    ServerConn::app(e).advance(ServerConn::conn(e), shared, stream, false);
    ServerCore::conn_changed(e);
}

/// Ends request `r` (already reset on the wire, or refused).
unsafe fn finish<P: AppPlatform, H: ServerHost<P>>(r: *mut Request<P, H>, outcome: Outcome, code: u64) {
    let e = conn_of(r);
    let stream = (*r).stream;
    let shared = ServerCore::app_shared(ServerConn::server(e));
    ServerConn::app(e).finish(shared, stream, outcome, code);
    ServerCore::conn_changed(e);
}

/// Fails with `Closed` (or `State` for a request whose response went out
/// whole: it has ended, as a finished one has) once the request is over.
unsafe fn check_live<P: AppPlatform, H: ServerHost<P>>(r: *mut Request<P, H>) -> Result<(), OpError> {
    if (*r).closed {
        return Err(if matches!((*r).response, Response::Done) { OpError::State } else { OpError::Closed });
    }
    Ok(())
}

/// `quiche_ev_respond`: the status and headers (`:status` is added),
/// then the body through [`write`] unless `fin`.
///
/// # Safety
/// `r` is a request handle still valid (before its closed callback
/// returned); no borrow of its server is alive.
pub unsafe fn respond<P: AppPlatform, H: ServerHost<P>, T: NameValue>(r: *mut Request<P, H>, status: u16,
                                                                      headers: &[T], fin: bool)
                                                                      -> Result<(), OpError> {
    start(r, status, headers, fin)?;
    request_changed(r);
    Ok(())
}

/// The head of `r`'s response: sent at once when the stream takes it,
/// straight from the caller's fields; copied only when it has to wait
/// (the stream is full), to be sent when it has room.
///
/// # Safety
/// As for [`respond`].
unsafe fn start<P: AppPlatform, H: ServerHost<P>, T: NameValue>(r: *mut Request<P, H>, status: u16, headers: &[T],
                                                                fin: bool) -> Result<(), OpError> {
    check_live(r)?;
    if !matches!((*r).response, Response::NotStarted) || !(100..=999).contains(&status) {
        return Err(OpError::State);
    }
    let e = conn_of(r);
    let stream = (*r).stream;
    if (*r).h3 {
        let digits = [b'0' + (status / 100) as u8, b'0' + (status / 10 % 10) as u8, b'0' + (status % 10) as u8];
        let mut list = Vec::with_capacity(headers.len() + 1);
        list.push(h3::HeaderRef::new(b":status", &digits));
        list.extend(headers.iter().map(|h| h3::HeaderRef::new(h.name(), h.value())));
        match ServerConn::app(e).framing.send_headers(ServerConn::conn(e), stream, &list, fin, false) {
            Ok(true) => (*r).response = if fin { Response::Done } else { Response::Sending },
            Ok(false) => {
                let owned = list.iter().map(|h| h3::Header::new(h.name(), h.value())).collect();
                (*r).response = Response::Pending(owned, fin);
            }
            // The request is over: its closed callback says how.
            Err(err) => {
                let shared = ServerCore::app_shared(ServerConn::server(e));
                ServerConn::app(e).failed(ServerConn::conn(e), shared, stream, err);
            }
        }
    } else {
        // hq-interop has no status line: an error status with no body is
        // a stream reset ("no such file"); anything else is just a body.
        if fin && !(200..300).contains(&status) {
            reject(ServerConn::conn(e), stream, H3_REQUEST_REJECTED);
            finish(r, Outcome::Cancelled, H3_REQUEST_REJECTED);
            return Ok(());
        }
        (*r).response = Response::Sending;
        if fin {
            // The FIN alone, sent as soon as the stream takes it.
            (*r).driven = Some(Body::from_bytes(Vec::new()));
        }
    }
    Ok(())
}

/// `quiche_ev_respond_write`: as much of `data` as flow control takes
/// now (maybe 0); when less than all, the writable callback follows when
/// more fits. `fin` ends the response once all of `data` was taken: the
/// FIN itself is never lost, when it does not fit at once (an empty final
/// write on a full stream) the library sends it as soon as it does.
///
/// # Safety
/// As for [`respond`].
pub unsafe fn write<P: AppPlatform, H: ServerHost<P>>(r: *mut Request<P, H>, data: &[u8], fin: bool)
                                                       -> Result<usize, OpError> {
    check_live(r)?;
    match (*r).response {
        Response::Sending if (*r).driven.is_none() => {}
        Response::Pending(..) => {
            (*r).want_writable = true;
            return Ok(0);
        }
        _ => return Err(OpError::State),
    }
    let sent = send_body_now(r, data, fin)?;
    let took = sent.unwrap_or(0);
    if took == data.len() && fin {
        if sent.is_none() {
            // Nothing fit, not even the FIN: it is owed, and goes out on
            // its own as soon as the stream has room.
            (*r).driven = Some(Body::from_bytes(Vec::new()));
        } else {
            (*r).response = Response::Done;
        }
    } else if took < data.len() {
        (*r).want_writable = true;
    }
    request_changed(r);
    Ok(took)
}

/// Body bytes of `r` straight to its stream: `Some(n)` taken (with the
/// FIN when `fin` and n is all of `data`), `None` when nothing fit, not
/// even the FIN. When the stream refused them the request is over (its
/// closed callback says how; what that queued is flushed): `Closed`.
///
/// # Safety
/// As for [`respond`].
unsafe fn send_body_now<P: AppPlatform, H: ServerHost<P>>(r: *mut Request<P, H>, data: &[u8], fin: bool)
                                                           -> Result<Option<usize>, OpError> {
    let e = conn_of(r);
    let stream = (*r).stream;
    match ServerConn::app(e).framing.send_body(ServerConn::conn(e), stream, data, fin) {
        Ok(sent) => Ok(sent),
        Err(err) => {
            let shared = ServerCore::app_shared(ServerConn::server(e));
            ServerConn::app(e).failed(ServerConn::conn(e), shared, stream, err);
            ServerCore::conn_changed(e);
            Err(OpError::Closed)
        }
    }
}

/// A built-in file (or any body the library reads on its own): status,
/// headers and a body the library drives out.
///
/// # Safety
/// As for [`respond`].
pub unsafe fn respond_body<P: AppPlatform, H: ServerHost<P>, T: NameValue>(r: *mut Request<P, H>, status: u16,
                                                                           headers: &[T], body: Body)
                                                                           -> Result<(), OpError> {
    check_live(r)?;
    if !matches!((*r).response, Response::NotStarted) {
        return Err(OpError::State);
    }
    let empty = body.is_empty();
    if !empty {
        (*r).driven = Some(body);
    }
    respond(r, status, headers, empty)
}

/// `quiche_ev_respond_bytes`: status, headers and a body in the host's
/// memory. What the stream takes at once goes straight from `body`; the
/// library copies only the rest, and drives it out as room comes.
///
/// # Safety
/// As for [`respond`].
pub unsafe fn respond_bytes<P: AppPlatform, H: ServerHost<P>, T: NameValue>(r: *mut Request<P, H>, status: u16,
                                                                            headers: &[T], body: &[u8])
                                                                            -> Result<(), OpError> {
    if body.is_empty() {
        return respond(r, status, headers, true);
    }
    start(r, status, headers, false)?;
    if (*r).closed {
        // The head failed (the closed callback says how): what that
        // queued (a reset) still goes out.
        ServerCore::conn_changed(conn_of(r));
        return Ok(());
    }
    let mut took = 0;
    if matches!((*r).response, Response::Sending) {
        match send_body_now(r, body, true) {
            Ok(sent) => took = sent.unwrap_or(0),
            // Over: the closed callback says how.
            Err(_) => return Ok(()),
        }
    }
    if took == body.len() {
        (*r).response = Response::Done;
    } else {
        (*r).driven = Some(Body::from_bytes(body[took..].to_vec()));
    }
    request_changed(r);
    Ok(())
}

/// `quiche_ev_respond_trailers`: HTTP/3 trailers, ending the response.
///
/// # Safety
/// As for [`respond`].
pub unsafe fn trailers<P: AppPlatform, H: ServerHost<P>>(r: *mut Request<P, H>, headers: &[h3::Header])
                                                          -> Result<(), OpError> {
    check_live(r)?;
    if !matches!((*r).response, Response::Sending) || (*r).driven.is_some() || !(*r).h3 {
        return Err(OpError::State);
    }
    let e = conn_of(r);
    let stream = (*r).stream;
    match ServerConn::app(e).framing.send_headers(ServerConn::conn(e), stream, headers, true, true) {
        Ok(true) => (*r).response = Response::Done,
        Ok(false) => {
            // The writable callback says when to try again.
            (*r).want_writable = true;
            return Err(OpError::Again);
        }
        Err(SendError::Stopped(_)) => return Err(OpError::Closed),
        Err(SendError::Other(why)) => return Err(OpError::Transport(why)),
    }
    request_changed(r);
    Ok(())
}

/// `quiche_ev_request_reset`: abandons the request (both directions) with
/// the application error `code`; its closed callback follows.
///
/// # Safety
/// As for [`respond`].
pub unsafe fn reset<P: AppPlatform, H: ServerHost<P>>(r: *mut Request<P, H>, code: u64) -> Result<(), OpError> {
    check_live(r)?;
    reject(ServerConn::conn(conn_of(r)), (*r).stream, code);
    finish(r, Outcome::Cancelled, code);
    Ok(())
}

/// `quiche_ev_request_resume_body`: the host can take request body again.
/// From inside the body callback itself it keeps the body going when that
/// callback returns short.
///
/// # Safety
/// As for [`respond`].
pub unsafe fn resume_body<P: AppPlatform, H: ServerHost<P>>(r: *mut Request<P, H>) -> Result<(), OpError> {
    check_live(r)?;
    if (*r).in_body {
        (*r).resume_wanted = true;
    } else if (*r).paused {
        (*r).paused = false;
        let e = conn_of(r);
        ConnApp::body_ready(ServerCore::app_shared(ServerConn::server(e)), std::ptr::NonNull::new_unchecked(r));
        ServerCore::conn_changed(e);
    }
    Ok(())
}
