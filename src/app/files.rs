//! Files under a document root (`--root`), opened so that no request can
//! escape it: one `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)` below
//! the root's directory descriptor, which the kernel resolves atomically
//! (no check-then-open race with a symlink swapped in between). `..`,
//! absolute paths and symlinks leading out all fail inside the kernel.
//! Where openat2 does not exist (kernels before 5.6, valgrind), the path
//! is resolved and checked first, then opened: the same answers, with that
//! race back.
//!
//! Either way the open itself never blocks the loop: it is non-blocking
//! (a FIFO nobody writes would otherwise wait in `open` for a writer, and
//! stop every connection) and takes no terminal as the controlling one;
//! only a regular file is kept, its descriptor made blocking again (a
//! plain one, as it was before) for the reads that follow.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The root folder, held open.
#[derive(Debug)]
pub struct Root {
    /// What openat2 resolves below (Linux); elsewhere opening it only
    /// checked that the folder is there and readable.
    #[cfg_attr(not(all(target_os = "linux", not(feature = "portable"))), allow(dead_code))]
    dir: OwnedFd,
    /// Its canonical path, for the fallback without openat2.
    path: PathBuf,
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
        let dir = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Root { dir, path: std::fs::canonicalize(path)? })
    }

    /// The regular file a request path names (`/` is `/index.html`; a
    /// query or fragment is ignored) and its size, or `None` when it is
    /// missing, not a regular file, or outside the root.
    pub fn open_file(&self, request_path: &[u8]) -> Option<(File, u64)> {
        let rel = relative(request_path)?;
        if Path::new(&rel).components().any(|c| !matches!(c, std::path::Component::Normal(_) | std::path::Component::CurDir)) {
            return None; // `..` or a root: refused before any system call
        }
        regular(self.open_beneath(&rel)?)
    }

    /// `rel` opened below the root by the kernel (no race with a symlink
    /// swapped in): openat2(RESOLVE_BENEATH) on Linux, where the kernel
    /// has it.
    #[cfg(all(target_os = "linux", not(feature = "portable")))]
    fn open_beneath(&self, rel: &str) -> Option<File> {
        let c = CString::new(rel).ok()?;
        let how = OpenHow {
            flags: (libc::O_RDONLY | libc::O_CLOEXEC | OPEN_FLAGS) as u64,
            mode: 0,
            resolve: RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
        };
        // SAFETY: openat2 with a valid directory descriptor, C string and
        // open_how of the size passed.
        let fd = unsafe {
            libc::syscall(libc::SYS_openat2, self.dir.as_raw_fd(), c.as_ptr(), &how as *const OpenHow,
                          std::mem::size_of::<OpenHow>())
        };
        if fd >= 0 {
            // SAFETY: the kernel just gave us this descriptor.
            Some(unsafe { File::from_raw_fd(fd as i32) })
        } else if io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS) {
            self.open_checked(rel)
        } else {
            None
        }
    }

    /// Elsewhere (and in the portable build): resolved and checked, then
    /// opened (the race openat2 closes is back; the README says so).
    #[cfg(not(all(target_os = "linux", not(feature = "portable"))))]
    fn open_beneath(&self, rel: &str) -> Option<File> {
        self.open_checked(rel)
    }

    /// Without openat2: resolve, check it is below the root, open.
    fn open_checked(&self, rel: &str) -> Option<File> {
        let real = std::fs::canonicalize(self.path.join(rel)).ok()?;
        if !real.starts_with(&self.path) {
            return None;
        }
        OpenOptions::new().read(true).custom_flags(OPEN_FLAGS).open(real).ok()
    }
}

/// Flags for opening a file under the root, besides read-only and
/// close-on-exec: never wait in `open` (a FIFO waits for a writer), never
/// take a terminal as the controlling one.
const OPEN_FLAGS: i32 = libc::O_NONBLOCK | libc::O_NOCTTY;

/// `file` and its size if it is a regular file, made blocking again (it
/// was opened non-blocking); `None` for anything else (FIFO, device,
/// folder, socket). Two system calls: one `fstat` (the kind and the
/// size), and one `F_SETFL` with no flag (F_SETFL changes only the status
/// flags, of which `file` has no other than O_NONBLOCK: nothing to read
/// first).
fn regular(file: File) -> Option<(File, u64)> {
    let meta = file.metadata().ok()?;
    if !meta.is_file() {
        return None;
    }
    // SAFETY: fcntl on a descriptor `file` owns; no pointers involved.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETFL, 0) } < 0 {
        return None;
    }
    Some((file, meta.len()))
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
#[cfg(all(target_os = "linux", not(feature = "portable")))]
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

#[cfg(all(target_os = "linux", not(feature = "portable")))]
const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
#[cfg(all(target_os = "linux", not(feature = "portable")))]
const RESOLVE_BENEATH: u64 = 0x08;

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn files_below_root_only() {
        check_root(|r, p| r.open_file(p));
    }

    #[test]
    fn the_fallback_without_openat2_gives_the_same_answers() {
        check_root(|r, p| relative(p).filter(|rel| !rel.contains("..")).and_then(|rel| r.open_checked(&rel))
            .and_then(regular));
    }

    fn check_root(open: impl Fn(&Root, &[u8]) -> Option<(File, u64)> + Sync) {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("qev-files-{}-{n}", std::process::id()));
        let root = dir.join("root");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("a.txt"), b"hello").unwrap();
        std::fs::write(root.join("sub/b.txt"), b"world").unwrap();
        std::fs::write(root.join("index.html"), b"home").unwrap();
        std::fs::write(dir.join("secret"), b"no").unwrap();
        let _ = std::os::unix::fs::symlink(dir.join("secret"), root.join("link"));
        let _ = std::os::unix::fs::symlink("a.txt", root.join("inside"));
        let fifo = root.join("fifo");
        let c_fifo = CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid C string.
        assert_eq!(unsafe { libc::mkfifo(c_fifo.as_ptr(), 0o600) }, 0);
        let r = Root::open(&root).unwrap();
        let read = |p: &[u8]| {
            open(&r, p).map(|(mut f, len)| {
                // SAFETY: fcntl on a descriptor `f` owns.
                let flags = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GETFL) };
                assert_eq!(flags & libc::O_NONBLOCK, 0, "a file comes back blocking");
                assert_eq!(flags & libc::O_ACCMODE, libc::O_RDONLY, "and read-only");
                // SAFETY: as above.
                let fd_flags = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GETFD) };
                assert_ne!(fd_flags & libc::FD_CLOEXEC, 0, "and close-on-exec");
                let mut s = String::new();
                f.read_to_string(&mut s).unwrap();
                assert_eq!(len, s.len() as u64, "with its size");
                s
            })
        };
        // A FIFO nobody writes is refused at once (a blocking open would
        // wait for a writer: after a while this test becomes one, and fails).
        std::thread::scope(|t| {
            let (done, finished) = std::sync::mpsc::channel();
            let read = &read;
            t.spawn(move || done.send(read(b"/fifo").is_none()).unwrap());
            match finished.recv_timeout(std::time::Duration::from_secs(10)) {
                Ok(refused) => assert!(refused, "a FIFO is not a regular file"),
                Err(_) => {
                    let _writer = OpenOptions::new().write(true).custom_flags(libc::O_NONBLOCK).open(&fifo);
                    panic!("opening a FIFO under the root blocked");
                }
            }
        });
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
