//! hq-interop (HTTP/0.9 over QUIC): upstream `server.c` answers every
//! request stream with `byez\n`; `client.c` sends `GET /index.html\r\n` on
//! stream 4 and prints what comes back.

use std::collections::HashMap;
use std::io::Write;

use super::serve::{hq_request_path, Body, Responder, Response, Sent};
use super::Outcome;

/// Longest request we buffer before giving up on a stream.
const MAX_REQUEST_LEN: usize = 8192;

/// Application error code for a stream we refuse (hq-interop has none of
/// its own; HTTP/3's H3_REQUEST_REJECTED reads well in logs).
const STREAM_REFUSED: u64 = 0x10b;

/// Writes as much of `body` to stream `s` as flow control allows; true
/// when it is all out.
fn write_body(conn: &mut quiche::Connection, s: u64, body: &mut Body) -> bool {
    body.write(|data, fin| match conn.stream_send(s, data, fin) {
        Ok(n) => Sent::Took(n),
        Err(quiche::Error::Done) => Sent::Took(0),
        Err(e) => {
            eprintln!("failed to send response on stream {s}: {e:?}");
            Sent::Failed
        }
    })
}

#[derive(Default)]
pub struct HqServer {
    requests: HashMap<u64, Vec<u8>>,
    pending: HashMap<u64, Body>,
}

impl HqServer {
    pub fn on_recv(&mut self, conn: &mut quiche::Connection, serve: &Responder) {
        let mut buf = [0u8; 4096];
        for s in conn.readable() {
            loop {
                match conn.stream_recv(s, &mut buf) {
                    Ok((n, fin)) => {
                        let req = self.requests.entry(s).or_default();
                        req.extend_from_slice(&buf[..n]);
                        if req.len() > MAX_REQUEST_LEN {
                            eprintln!("request on stream {s} too long, refused");
                            self.requests.remove(&s);
                            let _ = conn.stream_shutdown(s, quiche::Shutdown::Read, STREAM_REFUSED);
                            let _ = conn.stream_shutdown(s, quiche::Shutdown::Write, STREAM_REFUSED);
                            break;
                        }
                        if fin {
                            let req = self.requests.remove(&s).unwrap_or_default();
                            self.respond(conn, s, &req, serve);
                            break;
                        }
                    }
                    Err(quiche::Error::Done) => break,
                    Err(e) => {
                        eprintln!("failed to read stream {s}: {e:?}");
                        self.requests.remove(&s);
                        break;
                    }
                }
            }
        }
        self.resume(conn);
    }

    fn respond(&mut self, conn: &mut quiche::Connection, s: u64, req: &[u8], serve: &Responder) {
        match serve.respond(hq_request_path(req)) {
            Response::Body(mut body) => {
                if !write_body(conn, s, &mut body) {
                    self.pending.insert(s, body);
                }
            }
            Response::NotFound => {
                // hq-interop has no status line: a reset says "no such file".
                let _ = conn.stream_shutdown(s, quiche::Shutdown::Write, STREAM_REFUSED);
            }
        }
    }

    /// Continues responses that flow control held back.
    fn resume(&mut self, conn: &mut quiche::Connection) {
        if self.pending.is_empty() {
            return;
        }
        for s in conn.writable() {
            if let Some(body) = self.pending.get_mut(&s) {
                if write_body(conn, s, body) {
                    self.pending.remove(&s);
                }
            }
        }
    }
}

/// First client-initiated stream upstream's client uses.
const FIRST_STREAM: u64 = 4;

pub struct HqClient {
    paths: Vec<String>,
    /// Index into `paths` of the request in flight.
    next: usize,
    stream: u64,
    pub outcome: Outcome,
}

impl HqClient {
    pub fn new(paths: Vec<String>) -> Self {
        HqClient { paths, next: 0, stream: FIRST_STREAM, outcome: Outcome::Pending }
    }

    pub fn on_established(&mut self, conn: &mut quiche::Connection) {
        self.send_next(conn);
    }

    /// Requests are sent one after another so bodies print in order.
    fn send_next(&mut self, conn: &mut quiche::Connection) {
        let Some(path) = self.paths.get(self.next) else {
            self.outcome = Outcome::Complete;
            let _ = conn.close(true, 0, b"");
            return;
        };
        let req = format!("GET {path}\r\n");
        self.stream = FIRST_STREAM + 4 * self.next as u64;
        match conn.stream_send(self.stream, req.as_bytes(), true) {
            Ok(_) => eprintln!("sent HTTP request"),
            Err(e) => self.fail(conn, format!("failed to send HTTP request: {e:?}")),
        }
    }

    fn fail(&mut self, conn: &mut quiche::Connection, why: String) {
        eprintln!("{why}");
        self.outcome = Outcome::Failed(why);
        let _ = conn.close(true, 0, b"");
    }

    pub fn on_recv(&mut self, conn: &mut quiche::Connection, out: &mut dyn Write) {
        let mut buf = [0u8; 65535];
        for s in conn.readable() {
            loop {
                match conn.stream_recv(s, &mut buf) {
                    Ok((n, fin)) => {
                        if s == self.stream {
                            if let Err(e) = out.write_all(&buf[..n]) {
                                return self.fail(conn, format!("failed to write response: {e}"));
                            }
                        }
                        if fin && s == self.stream {
                            let _ = out.flush();
                            self.next += 1;
                            self.send_next(conn);
                            break;
                        }
                    }
                    Err(quiche::Error::Done) => break,
                    Err(quiche::Error::StreamReset(code)) => {
                        return self.fail(conn, format!("request was reset: stream {s}, error code {code}"));
                    }
                    Err(e) => return self.fail(conn, format!("failed to read stream {s}: {e:?}")),
                }
            }
        }
    }
}
