//! What a server answers for a request path: upstream's fixed `byez\n`, or
//! (with a document root) the file under that root.

use std::fs;
use std::path::{Component, Path, PathBuf};

/// The fixed answer of upstream's servers.
pub const BYEZ: &[u8] = b"byez\n";

/// The answer to one request.
#[derive(Debug, PartialEq, Eq)]
pub enum Response {
    Body(Vec<u8>),
    NotFound,
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
            return Response::Body(BYEZ.to_vec());
        };
        match resolve(root, path) {
            Some(file) => fs::read(file).map(Response::Body).unwrap_or(Response::NotFound),
            None => Response::NotFound,
        }
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

    #[test]
    fn byez_without_root() {
        assert_eq!(Responder::byez().respond(b"/anything"), Response::Body(BYEZ.to_vec()));
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
        let r = Responder::with_root(&root).unwrap();
        assert_eq!(r.respond(b"/a.txt"), Response::Body(b"hello".to_vec()));
        assert_eq!(r.respond(b"/sub/b.txt?x=1"), Response::Body(b"world".to_vec()));
        assert_eq!(r.respond(b"/missing"), Response::NotFound);
        assert_eq!(r.respond(b"/../secret"), Response::NotFound);
        assert_eq!(r.respond(b"/sub/../../secret"), Response::NotFound);
        assert_eq!(r.respond(b"//etc/passwd"), Response::NotFound);
        assert_eq!(r.respond(b"/link"), Response::NotFound);
        assert_eq!(r.respond(b"/sub"), Response::NotFound);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn request_line_parsing() {
        assert_eq!(hq_request_path(b"GET /index.html\r\n\0"), b"/index.html");
        assert_eq!(hq_request_path(b"GET /x\r\n"), b"/x");
        assert_eq!(hq_request_path(b"junk"), b"/");
    }
}
