//! What a host does with the client's requests: issue them (a body
//! copied whole, or streamed with backpressure), write and end a streamed
//! body, resume a paused response, cancel. Each borrows the client for
//! its own duration, queues what the host must hear, and lets the client
//! flush.

use quiche::h3;

use super::{Cli, ClientRequests, NewRequest, Outcome, ReqId, Streamed, Upload, H3_REQUEST_CANCELLED};
use crate::app::datagram::{self, DgramError};
use crate::app::framing::{reject, AppPlatform, Framing, SendError, Streams};
use crate::app::host::ClientHost;
use crate::client::ClientCore;

/// Why a request operation was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum ReqError {
    /// No such request (never issued, or over).
    Unknown,
    /// Not now: not a streamed body, already ended, not HTTP/3.
    State,
    /// The server reset the stream, or the connection is over.
    Closed,
    /// No room now; the writable callback says when to try again.
    Again,
    /// quiche refused.
    Transport(String),
    /// The peer (or the protocol) does not allow it, and why.
    Unsupported(&'static str),
    /// Larger than the peer takes now; the largest that fits.
    TooLarge(usize),
}

impl From<DgramError> for ReqError {
    fn from(e: DgramError) -> ReqError {
        match e {
            DgramError::NotYet => ReqError::State,
            DgramError::Closed => ReqError::Closed,
            DgramError::Unsupported(why) => ReqError::Unsupported(why),
            DgramError::TooLarge(max) => ReqError::TooLarge(max),
            DgramError::Again => ReqError::Again,
            DgramError::Transport(why) => ReqError::Transport(why),
        }
    }
}

/// `quiche_ev_client_request` (and `_request_start`): queues a request;
/// its id, or why not.
///
/// # Safety
/// `client` is live; no borrow of it is alive.
pub unsafe fn request<P: AppPlatform, H: ClientHost>(client: *mut Cli<P, H>, r: NewRequest)
                                                      -> Result<ReqId, &'static str> {
    let id = ClientCore::state(client).app.add(r)?;
    ClientCore::changed(client);
    Ok(id)
}

/// `quiche_ev_client_request_write`: as much of `data` as flow control
/// takes now (0 before the request's stream is open); when less than
/// all, the request writable callback follows. `fin` ends the body once
/// all of `data` was taken; an owed FIN goes out on its own.
///
/// # Safety
/// As for [`request`].
pub unsafe fn write<P: AppPlatform, H: ClientHost>(client: *mut Cli<P, H>, id: ReqId, data: &[u8], fin: bool)
                                                    -> Result<usize, ReqError> {
    let a = &mut ClientCore::state(client).app;
    let Some(stream) = open_upload(a, id)? else { return Ok(0) };
    let sent = a.framing.send_body(ClientCore::conn(client), stream, data, fin);
    let took = match sent {
        Ok(Some(n)) => n,
        Ok(None) => 0,
        Err(SendError::Stopped(_)) => return Err(ReqError::Closed),
        Err(SendError::Other(why)) => return Err(ReqError::Transport(why)),
    };
    if took == data.len() && fin {
        if sent == Ok(None) {
            upload(a, id).fin_owed = true;
        } else {
            end_upload(a, id);
        }
    } else if took < data.len() {
        blocked(a, id, ClientCore::conn(client).stream_capacity(stream).unwrap_or(0));
    }
    ClientCore::changed(client);
    Ok(took)
}

/// The stream of request `id`'s streamed body, still open for writing;
/// `None` while the request is not sent yet (its writable callback comes
/// once it is).
fn open_upload<P: AppPlatform, H: ClientHost>(a: &mut ClientRequests<P, H>, id: ReqId)
                                              -> Result<Option<u64>, ReqError> {
    let r = a.reqs.get_mut(&id).ok_or(ReqError::Unknown)?;
    if r.done {
        return Err(ReqError::Closed);
    }
    let Upload::Streamed(s) = &mut r.upload else { return Err(ReqError::State) };
    if s.fin_owed {
        return Err(ReqError::State);
    }
    if r.stream.is_none() {
        s.want_writable = true;
    }
    Ok(r.stream)
}

/// The streamed body of request `id` (known to exist).
fn upload<P: AppPlatform, H: ClientHost>(a: &mut ClientRequests<P, H>, id: ReqId) -> &mut Streamed {
    match a.reqs.get_mut(&id).map(|r| &mut r.upload) {
        Some(Upload::Streamed(s)) => s,
        _ => unreachable!("checked by open_upload"),
    }
}

/// The host's write fell short with `capacity` left on the stream: the
/// writable callback comes once there is more.
fn blocked<P: AppPlatform, H: ClientHost>(a: &mut ClientRequests<P, H>, id: ReqId, capacity: usize) {
    let s = upload(a, id);
    s.want_writable = true;
    s.blocked_at = capacity;
}

fn end_upload<P: AppPlatform, H: ClientHost>(a: &mut ClientRequests<P, H>, id: ReqId) {
    if let Some(r) = a.reqs.get_mut(&id) {
        r.upload = Upload::Sent;
    }
}

/// `quiche_ev_client_request_trailers`: HTTP/3 trailer fields ending a
/// streamed request body.
///
/// # Safety
/// As for [`request`].
pub unsafe fn trailers<P: AppPlatform, H: ClientHost>(client: *mut Cli<P, H>, id: ReqId, headers: &[h3::Header])
                                                       -> Result<(), ReqError> {
    let a = &mut ClientCore::state(client).app;
    if !a.is_h3() {
        return Err(ReqError::State);
    }
    let Some(stream) = open_upload(a, id)? else { return Err(ReqError::Again) };
    match a.framing.send_headers(ClientCore::conn(client), stream, headers, true, true) {
        Ok(true) => end_upload(a, id),
        Ok(false) => {
            blocked(a, id, ClientCore::conn(client).stream_capacity(stream).unwrap_or(0));
            return Err(ReqError::Again);
        }
        Err(SendError::Stopped(_)) => return Err(ReqError::Closed),
        Err(SendError::Other(why)) => return Err(ReqError::Transport(why)),
    }
    ClientCore::changed(client);
    Ok(())
}

/// `quiche_ev_client_resume`: the host takes response body again (from
/// inside the body callback: the short return of that callback does not
/// pause it).
///
/// # Safety
/// As for [`request`].
pub unsafe fn resume<P: AppPlatform, H: ClientHost>(client: *mut Cli<P, H>, id: ReqId) -> bool {
    let a = &mut ClientCore::state(client).app;
    let Some(r) = a.reqs.get_mut(&id) else { return false };
    if r.in_body {
        r.resume_wanted = true;
    } else if r.paused {
        r.paused = false;
        a.body_ready(id);
        ClientCore::changed(client);
    }
    true
}

/// `quiche_ev_client_cancel`: resets a request; its done callback follows
/// (outcome Failed).
///
/// # Safety
/// As for [`request`].
pub unsafe fn cancel<P: AppPlatform, H: ClientHost>(client: *mut Cli<P, H>, id: ReqId) -> bool {
    let a = &mut ClientCore::state(client).app;
    let Some(r) = a.reqs.get(&id) else { return false };
    if let Some(s) = r.stream {
        reject(ClientCore::conn(client), s, H3_REQUEST_CANCELLED);
    }
    a.done(id, Outcome::Failed, H3_REQUEST_CANCELLED);
    ClientCore::changed(client);
    true
}

/// `quiche_ev_client_send_datagram`: one QUIC datagram (RFC 9221).
///
/// # Safety
/// As for [`request`].
pub unsafe fn send_datagram<P: AppPlatform, H: ClientHost>(client: *mut Cli<P, H>, data: &[u8])
                                                            -> Result<(), ReqError> {
    let sent = datagram::send(ClientCore::conn(client), data);
    ClientCore::state(client).app.dgrams.note(sent)?;
    ClientCore::changed(client);
    Ok(())
}

/// `quiche_ev_client_datagram_max_len`: the largest QUIC datagram payload
/// the server takes now.
///
/// # Safety
/// As for [`request`].
pub unsafe fn datagram_max_len<P: AppPlatform, H: ClientHost>(client: *mut Cli<P, H>) -> Result<usize, ReqError> {
    Ok(datagram::max_len(ClientCore::conn(client))?)
}

/// The stream of request `id`, which can carry datagrams: sent, not over.
unsafe fn datagram_stream<P: AppPlatform, H: ClientHost>(client: *mut Cli<P, H>, id: ReqId) -> Result<u64, ReqError> {
    let r = ClientCore::state(client).app.reqs.get(&id).ok_or(ReqError::Unknown)?;
    if r.done {
        return Err(ReqError::Closed);
    }
    r.stream.ok_or(ReqError::State)
}

/// `quiche_ev_client_request_send_datagram`: one HTTP Datagram (RFC 9297)
/// bound to request `id`'s stream.
///
/// # Safety
/// As for [`request`].
pub unsafe fn request_send_datagram<P: AppPlatform, H: ClientHost>(client: *mut Cli<P, H>, id: ReqId, payload: &[u8])
                                                                    -> Result<(), ReqError> {
    let stream = datagram_stream(client, id)?;
    let a = &mut ClientCore::state(client).app;
    let sent = datagram::send_http(ClientCore::conn(client), &a.framing, stream, payload);
    a.dgrams.note(sent)?;
    ClientCore::changed(client);
    Ok(())
}

/// `quiche_ev_client_request_datagram_max_len`: the largest HTTP Datagram
/// payload request `id` can send now.
///
/// # Safety
/// As for [`request`].
pub unsafe fn request_datagram_max_len<P: AppPlatform, H: ClientHost>(client: *mut Cli<P, H>, id: ReqId)
                                                                       -> Result<usize, ReqError> {
    let stream = datagram_stream(client, id)?;
    let a = &ClientCore::state(client).app;
    Ok(datagram::http_max_len(ClientCore::conn(client), &a.framing, stream)?)
}
