//! What a server answers for a request path: upstream's fixed `byez\n`, or
//! (with a document root) the file under that root, streamed in chunks as
//! flow control allows (never read whole into memory).

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

/// The fixed answer of upstream's servers.
pub const BYEZ: &[u8] = b"byez\n";

/// Bytes read from a file per chunk.
const FILE_CHUNK: usize = 256 * 1024;

/// The answer to one request.
#[derive(Debug)]
pub enum Response {
    Body(Body),
    NotFound,
}

/// A response body: in memory or streamed from a file.
#[derive(Debug)]
pub struct Body {
    source: Source,
    /// Bytes not yet handed to the transport.
    remaining: u64,
}

#[derive(Debug)]
enum Source {
    Memory { data: Vec<u8>, off: usize },
    File { file: File, buf: Vec<u8>, start: usize, end: usize },
}

/// What a send function reports for one call.
pub enum Sent {
    /// This many bytes were taken (0: no room now).
    Took(usize),
    /// The stream is gone; stop.
    Failed,
}

impl Body {
    pub fn from_bytes(data: Vec<u8>) -> Body {
        Body { remaining: data.len() as u64, source: Source::Memory { data, off: 0 } }
    }

    fn from_file(file: File) -> io::Result<Body> {
        let len = file.metadata()?.len();
        Ok(Body { remaining: len, source: Source::File { file, buf: Vec::new(), start: 0, end: 0 } })
    }

    pub fn len(&self) -> u64 {
        self.remaining
    }

    pub fn is_empty(&self) -> bool {
        self.remaining == 0
    }

    /// The next bytes to send (reading the next file chunk when needed).
    fn chunk(&mut self) -> io::Result<&[u8]> {
        match &mut self.source {
            Source::Memory { data, off } => Ok(&data[*off..]),
            Source::File { file, buf, start, end } => {
                if *start == *end && self.remaining > 0 {
                    buf.resize(FILE_CHUNK, 0);
                    let want = FILE_CHUNK.min(self.remaining as usize);
                    let n = file.read(&mut buf[..want])?;
                    if n == 0 {
                        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "file shrank"));
                    }
                    (*start, *end) = (0, n);
                }
                Ok(&buf[*start..*end])
            }
        }
    }

    fn consume(&mut self, n: usize) {
        self.remaining -= n as u64;
        match &mut self.source {
            Source::Memory { off, .. } => *off += n,
            Source::File { start, .. } => *start += n,
        }
    }

    /// Hands the body to `send(bytes, fin)` until it is all out (true) or
    /// the transport has no room (false; call again when writable). A
    /// failure ends the body (true).
    pub fn write(&mut self, mut send: impl FnMut(&[u8], bool) -> Sent) -> bool {
        loop {
            let remaining = self.remaining;
            let chunk = match self.chunk() {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("failed to read response body: {e}");
                    return true;
                }
            };
            let fin = chunk.len() as u64 == remaining;
            let len = chunk.len();
            match send(chunk, fin) {
                Sent::Failed => return true,
                Sent::Took(n) => {
                    self.consume(n);
                    if n == len && fin {
                        return true;
                    }
                    if n < len || n == 0 {
                        return false;
                    }
                }
            }
        }
    }
}

/// Maps request paths to responses.
#[derive(Default)]
pub struct Responder {
    /// Canonical document root; `None` answers `byez\n` to everything.
    root: Option<PathBuf>,
}

impl Responder {
    /// Upstream's behaviour: `byez\n` for every request.
    pub fn byez() -> Self {
        Responder { root: None }
    }

    /// Serve files below `root` (which must be a readable folder).
    pub fn with_root(root: &Path) -> std::io::Result<Self> {
        let root = fs::canonicalize(root)?;
        if !root.is_dir() {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a folder"));
        }
        Ok(Responder { root: Some(root) })
    }

    pub fn respond(&self, path: &[u8]) -> Response {
        let Some(root) = &self.root else {
            return Response::Body(Body::from_bytes(BYEZ.to_vec()));
        };
        resolve(root, path)
            .and_then(|f| File::open(f).ok())
            .and_then(|f| Body::from_file(f).ok())
            .map(Response::Body)
            .unwrap_or(Response::NotFound)
    }
}

/// The regular file `path` names below `root`, or `None` when it is missing
/// or would leave `root` (`..`, or a symlink pointing outside).
fn resolve(root: &Path, path: &[u8]) -> Option<PathBuf> {
    let path = std::str::from_utf8(path).ok()?;
    // Drop a query string, like a web server would.
    let path = path.split(['?', '#']).next()?;
    let rel = path.trim_start_matches('/');
    let mut candidate = root.to_path_buf();
    for c in Path::new(rel).components() {
        match c {
            Component::Normal(part) => candidate.push(part),
            Component::CurDir => {}
            // `..`, a second root or a prefix: never let the client climb.
            _ => return None,
        }
    }
    if candidate == *root {
        candidate.push("index.html");
    }
    let real = fs::canonicalize(&candidate).ok()?;
    (real.starts_with(root) && real.is_file()).then_some(real)
}

/// The path of an HTTP/0.9 request line (`GET /path\r\n`), tolerating the
/// trailing NUL upstream's client sends.
pub fn hq_request_path(req: &[u8]) -> &[u8] {
    let line = req.split(|&b| b == b'\n' || b == b'\r' || b == 0).next().unwrap_or(b"");
    let mut words = line.split(|&b| b == b' ').filter(|w| !w.is_empty());
    match (words.next(), words.next()) {
        (Some(b"GET"), Some(path)) => path,
        _ => b"/",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The whole body, through `write` with a transport that takes at
    /// most 1000 bytes per call and is full every third call.
    fn drain(r: Response) -> Option<Vec<u8>> {
        let Response::Body(mut b) = r else { return None };
        let mut out = Vec::new();
        let mut calls = 0;
        let mut fins = 0;
        while !b.write(|data, fin| {
            calls += 1;
            if calls % 3 == 0 {
                return Sent::Took(0);
            }
            let n = data.len().min(1000);
            out.extend_from_slice(&data[..n]);
            if fin && n == data.len() {
                fins += 1;
            }
            Sent::Took(n)
        }) {}
        assert_eq!(fins, 1, "fin is set exactly once, with the last byte");
        Some(out)
    }

    #[test]
    fn byez_without_root() {
        assert_eq!(drain(Responder::byez().respond(b"/anything")).unwrap(), BYEZ);
    }

    #[test]
    fn files_below_root_only() {
        let dir = std::env::temp_dir().join(format!("qev-serve-{}", std::process::id()));
        let root = dir.join("root");
        fs::create_dir_all(root.join("sub")).unwrap();
        fs::write(root.join("a.txt"), b"hello").unwrap();
        fs::write(root.join("sub/b.txt"), b"world").unwrap();
        fs::write(dir.join("secret"), b"no").unwrap();
        let _ = std::os::unix::fs::symlink(dir.join("secret"), root.join("link"));
        let big: Vec<u8> = (0..3 * FILE_CHUNK as u32 + 7).map(|i| (i % 251) as u8).collect();
        fs::write(root.join("big"), &big).unwrap();
        fs::write(root.join("empty"), b"").unwrap();
        let r = Responder::with_root(&root).unwrap();
        assert_eq!(drain(r.respond(b"/a.txt")).unwrap(), b"hello");
        assert_eq!(drain(r.respond(b"/sub/b.txt?x=1")).unwrap(), b"world");
        assert_eq!(drain(r.respond(b"/big")).unwrap(), big);
        assert_eq!(drain(r.respond(b"/empty")).unwrap(), b"");
        for missing in [&b"/missing"[..], b"/../secret", b"/sub/../../secret", b"//etc/passwd", b"/link", b"/sub"] {
            assert!(drain(r.respond(missing)).is_none(), "{}", String::from_utf8_lossy(missing));
        }
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn request_line_parsing() {
        assert_eq!(hq_request_path(b"GET /index.html\r\n\0"), b"/index.html");
        assert_eq!(hq_request_path(b"GET /x\r\n"), b"/x");
        assert_eq!(hq_request_path(b"junk"), b"/");
    }
}
