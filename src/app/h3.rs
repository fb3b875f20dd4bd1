//! HTTP/3, as upstream's `http3-server.c` (answers every request with
//! `:status 200`, `server: quiche`, `content-length: 5`, `byez\n`) and
//! `http3-client.c` (`GET /`, prints the body).

use std::collections::HashMap;
use std::io::Write;

use quiche::h3::{self, NameValue};

use super::serve::{Body, Responder, Response, Sent};
use super::Outcome;

/// Writes as much of `body` to request stream `s` as flow control allows;
/// true when it is all out.
fn write_body(h3: &mut h3::Connection, conn: &mut quiche::Connection, s: u64, body: &mut Body) -> bool {
    body.write(|data, fin| match h3.send_body(conn, s, data, fin) {
        Ok(n) => Sent::Took(n),
        Err(h3::Error::Done) => Sent::Took(0),
        Err(e) => {
            eprintln!("failed to send response body on stream {s}: {e:?}");
            Sent::Failed
        }
    })
}

fn log_headers(list: &[h3::Header]) {
    for h in list {
        eprintln!("got HTTP header: {}={}",
                  String::from_utf8_lossy(h.name()), String::from_utf8_lossy(h.value()));
    }
}

#[derive(Default)]
pub struct H3Server {
    /// Made once the transport is established; dropped with the connection.
    /// Boxed: it is large, and idle or hq connections should not pay for it.
    h3: Option<Box<h3::Connection>>,
    pending: HashMap<u64, Body>,
}

impl H3Server {
    pub fn on_recv(&mut self, conn: &mut quiche::Connection, config: &h3::Config, serve: &Responder) {
        if !conn.is_established() {
            return;
        }
        if self.h3.is_none() {
            match h3::Connection::with_transport(conn, config) {
                Ok(h) => self.h3 = Some(Box::new(h)),
                Err(e) => {
                    eprintln!("failed to create HTTP/3 connection: {e:?}");
                    let _ = conn.close(true, 0x0101, b"h3 setup failed");
                    return;
                }
            }
        }
        let h3 = self.h3.as_mut().expect("set above");
        loop {
            match h3.poll(conn) {
                Ok((s, h3::Event::Headers { list, .. })) => {
                    log_headers(&list);
                    let path = list.iter().find(|h| h.name() == b":path")
                        .map(|h| h.value().to_vec()).unwrap_or_else(|| b"/".to_vec());
                    let (status, mut body) = match serve.respond(&path) {
                        Response::Body(b) => ("200", b),
                        Response::NotFound => ("404", Body::from_bytes(Vec::new())),
                    };
                    let len = body.len().to_string();
                    let headers = [
                        h3::Header::new(b":status", status.as_bytes()),
                        h3::Header::new(b"server", b"quiche"),
                        h3::Header::new(b"content-length", len.as_bytes()),
                    ];
                    if let Err(e) = h3.send_response(conn, s, &headers, false) {
                        eprintln!("failed to send response on stream {s}: {e:?}");
                        continue;
                    }
                    if !write_body(h3, conn, s, &mut body) {
                        self.pending.insert(s, body);
                    }
                }
                Ok((_, h3::Event::Data)) => eprintln!("got HTTP data"),
                Ok((_, h3::Event::GoAway)) => eprintln!("got GOAWAY"),
                Ok((s, h3::Event::Reset(_))) => {
                    self.pending.remove(&s);
                }
                Ok((_, h3::Event::Finished)) | Ok((_, h3::Event::PriorityUpdate)) => {}
                Err(h3::Error::Done) => break,
                Err(e) => {
                    eprintln!("HTTP/3 processing failed: {e:?}");
                    break;
                }
            }
        }
        if !self.pending.is_empty() {
            for s in conn.writable() {
                if let Some(body) = self.pending.get_mut(&s) {
                    if write_body(h3, conn, s, body) {
                        self.pending.remove(&s);
                    }
                }
            }
        }
    }
}

pub struct H3Client {
    host: String,
    paths: Vec<String>,
    /// Borrowed from C; outlives the client (documented in the C API).
    config: *const h3::Config,
    h3: Option<h3::Connection>,
    next: usize,
    stream: Option<u64>,
    status: Option<String>,
    settings_logged: bool,
    pub outcome: Outcome,
}

impl H3Client {
    pub fn new(host: String, paths: Vec<String>, config: *const h3::Config) -> Self {
        H3Client { host, paths, config, h3: None, next: 0, stream: None, status: None,
                   settings_logged: false, outcome: Outcome::Pending }
    }

    pub fn on_established(&mut self, conn: &mut quiche::Connection) {
        // SAFETY: the config outlives the client (see `config`).
        let config = unsafe { &*self.config };
        match h3::Connection::with_transport(conn, config) {
            Ok(h) => self.h3 = Some(h),
            Err(e) => return self.fail(conn, format!("failed to create HTTP/3 connection: {e:?}")),
        }
        self.send_next(conn);
    }

    fn fail(&mut self, conn: &mut quiche::Connection, why: String) {
        eprintln!("{why}");
        self.outcome = Outcome::Failed(why);
        let _ = conn.close(true, 0, b"");
    }

    /// Requests go one after another so bodies print in order.
    fn send_next(&mut self, conn: &mut quiche::Connection) {
        let Some(path) = self.paths.get(self.next) else {
            self.outcome = Outcome::Complete;
            let _ = conn.close(true, 0, b"");
            return;
        };
        let headers = [
            h3::Header::new(b":method", b"GET"),
            h3::Header::new(b":scheme", b"https"),
            h3::Header::new(b":authority", self.host.as_bytes()),
            h3::Header::new(b":path", path.as_bytes()),
            h3::Header::new(b"user-agent", b"quiche"),
        ];
        let h3 = self.h3.as_mut().expect("created on establishment");
        match h3.send_request(conn, &headers, true) {
            Ok(s) => {
                eprintln!("sent HTTP request {s}");
                self.stream = Some(s);
                self.status = None;
            }
            Err(e) => self.fail(conn, format!("failed to send HTTP request: {e:?}")),
        }
    }

    pub fn on_recv(&mut self, conn: &mut quiche::Connection, out: &mut dyn Write) {
        let mut buf = [0u8; 65535];
        while let Some(h3) = self.h3.as_mut() {
            let ev = h3.poll(conn);
            if !self.settings_logged {
                if let Some(settings) = h3.peer_settings_raw() {
                    for (id, value) in settings {
                        eprintln!("got HTTP/3 SETTING: {id}={value}");
                    }
                    self.settings_logged = true;
                }
            }
            match ev {
                Ok((s, h3::Event::Headers { list, .. })) => {
                    log_headers(&list);
                    if Some(s) == self.stream {
                        self.status = list.iter().find(|h| h.name() == b":status")
                            .map(|h| String::from_utf8_lossy(h.value()).into_owned());
                    }
                }
                Ok((s, h3::Event::Data)) => loop {
                    match h3.recv_body(conn, s, &mut buf) {
                        Ok(n) if n > 0 => {
                            if let Err(e) = out.write_all(&buf[..n]) {
                                return self.fail(conn, format!("failed to write response: {e}"));
                            }
                        }
                        _ => break,
                    }
                },
                Ok((s, h3::Event::Finished)) if Some(s) == self.stream => {
                    let _ = out.flush();
                    match self.status.as_deref() {
                        Some(st) if st.starts_with('2') => {
                            self.next += 1;
                            self.send_next(conn);
                        }
                        st => {
                            let path = self.paths[self.next].clone();
                            return self.fail(conn, format!(
                                "request for {path} failed: server answered status {}",
                                st.unwrap_or("(none)")));
                        }
                    }
                }
                Ok((s, h3::Event::Reset(code))) if Some(s) == self.stream => {
                    eprintln!("request was reset");
                    return self.fail(conn, format!("request was reset: stream {s}, error code {code}"));
                }
                Ok((_, h3::Event::GoAway)) => eprintln!("got GOAWAY"),
                Ok(_) => {}
                Err(h3::Error::Done) => break,
                Err(e) => return self.fail(conn, format!("HTTP/3 processing failed: {e:?}")),
            }
        }
    }
}
