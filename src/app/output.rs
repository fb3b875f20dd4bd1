//! The example clients' built-in application: fetch the paths given on
//! the command line and write each body to stdout (one after another, so
//! they print in order, like upstream), to a file, or each to its own
//! file in a folder (all at once). It receives responses through the same
//! events a host's callbacks would.
//!
//! A file given with `--output` may be a pipe that the host drains on the
//! same loop: it is written without blocking, and when it is full the
//! response is paused (flow control then holds the server) until the pipe
//! is writable again.

use std::cell::UnsafeCell;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::path::PathBuf;

use libc::{c_int, c_void};
use libev_sys::{ev_io, ev_io_cb, EV_WRITE};

use super::framing::AppPlatform;
use super::host::{ReqId, ResponseOutcome as Outcome};
use crate::evloop::EvLoop;

enum Sink {
    Stdout,
    /// A file (or pipe) we opened, non-blocking.
    Fd(File),
    /// One file per request in this folder.
    Dir(PathBuf, HashMap<ReqId, File>),
}

pub struct Output<P: AppPlatform> {
    paths: Vec<String>,
    issued: usize,
    in_flight: usize,
    concurrent: bool,
    sink: Sink,
    failures: Vec<String>,
    completed: usize,
    /// Waits for the pipe to drain; `data` is the client. Boxed: libev
    /// keeps its address while it is active.
    waiter: Box<UnsafeCell<ev_io>>,
    waiter_loop: Option<P::Loop>,
    waiting: Option<ReqId>,
}

impl<P: AppPlatform> Drop for Output<P> {
    fn drop(&mut self) {
        if let Some(lp) = &self.waiter_loop {
            // SAFETY: the watcher was initialised on this loop.
            unsafe { lp.io_stop(self.waiter.get()) };
        }
    }
}

impl<P: AppPlatform> Output<P> {
    /// Bodies of `paths` to stdout, one request after another.
    pub fn stdout(paths: Vec<String>) -> Output<P> {
        Output { paths, issued: 0, in_flight: 0, concurrent: false, sink: Sink::Stdout, failures: Vec::new(),
                 completed: 0, waiter: Box::new(UnsafeCell::new(ev_io::zeroed())), waiter_loop: None,
                 waiting: None }
    }

    /// Bodies to the file `path` (created or truncated; may be a FIFO).
    pub fn to_file(&mut self, path: &str) -> io::Result<()> {
        let c = std::ffi::CString::new(path).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: a valid C string; the descriptor is owned by the File.
        let fd = unsafe {
            libc::open(c.as_ptr(), libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_NONBLOCK | libc::O_CLOEXEC,
                       0o644)
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: just opened, owned by nobody else.
        self.sink = Sink::Fd(unsafe { File::from_raw_fd(fd) });
        Ok(())
    }

    /// Each body to `dir/<last path segment>`, all requests at once.
    pub fn to_dir(&mut self, dir: &str) -> io::Result<()> {
        let d = PathBuf::from(dir);
        if !d.is_dir() {
            std::fs::create_dir_all(&d)?;
        }
        self.sink = Sink::Dir(d, HashMap::new());
        self.concurrent = true;
        Ok(())
    }

    /// Takes over where `old` writes (a sink set before the paths).
    pub fn keep_sink_of(&mut self, mut old: Output<P>) {
        self.sink = std::mem::replace(&mut old.sink, Sink::Stdout);
        self.concurrent = old.concurrent;
    }

    /// The paths to request now.
    pub fn next_requests(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        while self.issued < self.paths.len() && (self.concurrent || self.in_flight == 0) {
            out.push(self.paths[self.issued].clone());
            self.issued += 1;
            self.in_flight += 1;
        }
        out
    }

    /// The response paused on a full pipe, once the pipe drained.
    pub fn take_waiting(&mut self) -> Option<ReqId> {
        self.waiting.take()
    }

    /// Every path was fetched (or failed).
    pub fn finished(&self) -> bool {
        self.issued == self.paths.len() && self.in_flight == 0
    }

    /// Every response arrived whole and successful.
    pub fn ok(&self) -> bool {
        self.finished() && self.failures.is_empty() && self.completed == self.paths.len()
    }

    pub fn on_headers(&mut self, _id: ReqId, _status: c_int) {}

    /// Writes body bytes of request `id` (for `path`); returns how many
    /// were taken (fewer when a pipe is full: `drained(…, w, …)` with
    /// `w.data = client` runs once it drained, to resume the request).
    ///
    /// # Safety
    /// `client` is the live client this output belongs to, on `lp`.
    pub unsafe fn on_body(&mut self, lp: &P::Loop, client: *mut c_void, drained: ev_io_cb, id: ReqId, path: &str,
                          data: &[u8]) -> usize {
        let written = match &mut self.sink {
            Sink::Stdout => io::stdout().lock().write_all(data).map(|_| data.len()),
            Sink::Fd(f) => write_some(f, data),
            Sink::Dir(dir, files) => {
                if let std::collections::hash_map::Entry::Vacant(e) = files.entry(id) {
                    let name = file_name(path);
                    e.insert(File::create(dir.join(name)).map_err(|e| {
                        log_error!("cannot write {}: {e}", dir.display());
                        e
                    }).ok().unwrap_or_else(|| File::open("/dev/null").expect("/dev/null")));
                }
                files.get_mut(&id).expect("inserted").write_all(data).map(|_| data.len())
            }
        };
        match written {
            Ok(n) if n < data.len() => {
                self.wait_writable(lp, client, drained, id);
                n
            }
            Ok(n) => n,
            Err(e) => {
                self.failures.push(format!("failed to write response: {e}"));
                data.len()
            }
        }
    }

    unsafe fn wait_writable(&mut self, lp: &P::Loop, client: *mut c_void, drained: ev_io_cb, id: ReqId) {
        let Sink::Fd(f) = &self.sink else { return };
        let w = self.waiter.get();
        if self.waiter_loop.is_none() {
            lp.io_init(w, drained, f.as_raw_fd(), EV_WRITE, client);
            self.waiter_loop = Some(lp.clone());
        }
        self.waiting = Some(id);
        lp.io_start(w);
    }

    pub fn on_done(&mut self, _id: ReqId, path: &str, status: c_int, outcome: Outcome, code: u64) {
        self.in_flight = self.in_flight.saturating_sub(1);
        if let Sink::Dir(_, files) = &mut self.sink {
            files.remove(&_id);
        }
        if let Sink::Stdout = self.sink {
            let _ = io::stdout().flush();
        }
        let failure = match outcome {
            // (the connection's own failure, if any, is reported too)
            Outcome::Complete if status == 0 || (200..300).contains(&status) => None,
            Outcome::Complete => Some(format!("request for {path} failed: server answered status {status}")),
            Outcome::Reset => Some(format!("request for {path} was reset: error code {code}")),
            Outcome::Failed => Some(format!("request for {path} could not be sent")),
            Outcome::ConnClosed => Some(format!("request for {path} not complete: the connection closed")),
        };
        match failure {
            Some(why) => {
                log_error!("error: {why}");
                self.failures.push(why);
            }
            None if outcome == Outcome::Complete => self.completed += 1,
            None => {}
        }
    }

}

/// The last segment of a request path, as a file name (`index.html` for
/// a folder); never a path of its own.
fn file_name(path: &str) -> String {
    let p = path.split(['?', '#']).next().unwrap_or("");
    match p.rsplit('/').next() {
        Some(n) if !n.is_empty() && n != "." && n != ".." => n.to_string(),
        _ => "index.html".into(),
    }
}

/// A non-blocking write: what the file took (0 when full).
fn write_some(f: &mut File, data: &[u8]) -> io::Result<usize> {
    let mut off = 0;
    while off < data.len() {
        match f.write(&data[off..]) {
            Ok(0) => break,
            Ok(n) => off += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(off)
}

#[cfg(test)]
mod tests {
    use super::file_name;

    #[test]
    fn file_names_never_leave_the_folder() {
        assert_eq!(file_name("/a/b.txt"), "b.txt");
        assert_eq!(file_name("/"), "index.html");
        assert_eq!(file_name("/x/.."), "index.html");
        assert_eq!(file_name("/f?x=1"), "f");
    }
}
