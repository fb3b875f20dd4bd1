//! Files under a document root (`--root`), opened so that no request can
//! escape it: one `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)` below
//! the root's directory descriptor, which the kernel resolves atomically
//! (no check-then-open race with a symlink swapped in between). `..`,
//! absolute paths and symlinks leading out all fail inside the kernel.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

/// The root folder, held open.
#[derive(Debug)]
pub struct Root {
    dir: OwnedFd,
}

impl Root {
    /// Opens `path`, which must be a readable folder.
    pub fn open(path: &Path) -> io::Result<Root> {
        let c = CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))?;
        // SAFETY: a valid C string; the descriptor is owned below.
        let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd was just opened and is owned by nobody else.
        Ok(Root { dir: unsafe { OwnedFd::from_raw_fd(fd) } })
    }

    /// The regular file a request path names (`/` is `/index.html`; a
    /// query or fragment is ignored), or `None` when it is missing, not a
    /// regular file, or outside the root.
    pub fn open_file(&self, request_path: &[u8]) -> Option<File> {
        let rel = relative(request_path)?;
        let c = CString::new(rel).ok()?;
        let how = OpenHow {
            flags: (libc::O_RDONLY | libc::O_CLOEXEC) as u64,
            mode: 0,
            resolve: RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
        };
        // SAFETY: openat2 with a valid directory descriptor, C string and
        // open_how of the size passed.
        let fd = unsafe {
            libc::syscall(libc::SYS_openat2, self.dir.as_raw_fd(), c.as_ptr(), &how as *const OpenHow,
                          std::mem::size_of::<OpenHow>())
        };
        if fd < 0 {
            return None;
        }
        // SAFETY: the kernel just gave us this descriptor.
        let file = unsafe { File::from_raw_fd(fd as i32) };
        file.metadata().ok()?.is_file().then_some(file)
    }
}

/// The path below the root: leading slashes dropped, query and fragment
/// cut, empty (the root itself) becomes `index.html`. `None` for a path
/// that is not UTF-8 or holds a NUL.
fn relative(request_path: &[u8]) -> Option<String> {
    let p = std::str::from_utf8(request_path).ok()?;
    let p = p.split(['?', '#']).next()?;
    let rel = p.trim_start_matches('/');
    if rel.contains('\0') {
        return None;
    }
    Some(if rel.is_empty() || rel.ends_with('/') { format!("{rel}index.html") } else { rel.to_string() })
}

/// `struct open_how` (linux/openat2.h).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
const RESOLVE_BENEATH: u64 = 0x08;

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn files_below_root_only() {
        let dir = std::env::temp_dir().join(format!("qev-files-{}", std::process::id()));
        let root = dir.join("root");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("a.txt"), b"hello").unwrap();
        std::fs::write(root.join("sub/b.txt"), b"world").unwrap();
        std::fs::write(root.join("index.html"), b"home").unwrap();
        std::fs::write(dir.join("secret"), b"no").unwrap();
        let _ = std::os::unix::fs::symlink(dir.join("secret"), root.join("link"));
        let _ = std::os::unix::fs::symlink("a.txt", root.join("inside"));
        let r = Root::open(&root).unwrap();
        let read = |p: &[u8]| {
            r.open_file(p).map(|mut f| {
                let mut s = String::new();
                f.read_to_string(&mut s).unwrap();
                s
            })
        };
        assert_eq!(read(b"/a.txt").as_deref(), Some("hello"));
        assert_eq!(read(b"/sub/b.txt?x=1").as_deref(), Some("world"));
        assert_eq!(read(b"/").as_deref(), Some("home"));
        assert_eq!(read(b"/inside").as_deref(), Some("hello"), "a symlink inside the root is fine");
        for bad in [&b"/missing"[..], b"/../secret", b"/sub/../../secret", b"//etc/passwd", b"/link", b"/sub",
                    b"/%00", b"/a.txt\0x"] {
            assert!(read(bad).is_none(), "{}", String::from_utf8_lossy(bad));
        }
        assert!(Root::open(&dir.join("nope")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
