//! Bodies the library drives out on its own: bytes the host handed over
//! whole (`quiche_ev_respond_bytes`, a client request's body) and files
//! served under `--root`. Each is written as flow control allows, never
//! read whole into memory (files) and never blocking the loop: file data
//! is read with `RWF_NOWAIT`, and a read that would wait for the disk asks
//! the kernel to read ahead and is retried on the next turn.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// Bytes read from a file per chunk.
pub const FILE_CHUNK: usize = 256 * 1024;

/// What a send function reports for one call.
#[derive(Debug, PartialEq, Eq)]
pub enum Sent {
    /// This many bytes were taken, and the FIN with them when it was
    /// asked for and all the bytes were taken (an empty final chunk:
    /// `Took(0)` means its FIN went out).
    Took(usize),
    /// Nothing was taken, not even a FIN: no room now.
    Full,
    /// The stream is gone; stop.
    Failed,
}

/// Where a driven body stands after [`Body::write`].
#[derive(Debug, PartialEq, Eq)]
pub enum Progress {
    /// All of it went out, with FIN.
    Done,
    /// Flow control is full: call again when the stream is writable.
    Blocked,
    /// The disk is not ready: call again soon.
    Waiting,
    /// The stream refused it, or the file could not be read (the caller
    /// resets the stream: a short body must never look complete).
    Failed(String),
}

#[derive(Debug)]
enum Source {
    Memory { data: Vec<u8>, off: usize },
    File { file: File, offset: u64, buf: Vec<u8>, start: usize, end: usize },
}

/// A body being sent.
#[derive(Debug)]
pub struct Body {
    source: Source,
    /// Bytes not yet handed to the transport.
    remaining: u64,
}

impl Body {
    pub fn from_bytes(data: Vec<u8>) -> Body {
        Body { remaining: data.len() as u64, source: Source::Memory { data, off: 0 } }
    }

    /// A regular file's first `len` bytes (its whole content at its size
    /// when opened: [`crate::app::files::Root::open_file`] says it).
    pub fn from_file(file: File, len: u64) -> Body {
        Body { remaining: len, source: Source::File { file, offset: 0, buf: Vec::new(), start: 0, end: 0 } }
    }

    pub fn len(&self) -> u64 {
        self.remaining
    }

    pub fn is_empty(&self) -> bool {
        self.remaining == 0
    }

    /// The next bytes to send; `Ok(None)` when the disk is not ready.
    fn chunk(&mut self) -> io::Result<Option<&[u8]>> {
        match &mut self.source {
            Source::Memory { data, off } => Ok(Some(&data[*off..])),
            Source::File { file, offset, buf, start, end } => {
                if *start == *end && self.remaining > 0 {
                    // Sized for what is left: a small file is not worth
                    // zeroing a whole chunk for.
                    let want = FILE_CHUNK.min(self.remaining as usize);
                    if buf.len() < want {
                        buf.resize(want, 0);
                    }
                    match read_nowait(file, *offset, &mut buf[..want])? {
                        None => return Ok(None),
                        Some(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "file shrank")),
                        Some(n) => {
                            *offset += n as u64;
                            (*start, *end) = (0, n);
                        }
                    }
                }
                Ok(Some(&buf[*start..*end]))
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

    /// Hands the body to `send(bytes, fin)` until it is all out or the
    /// transport (or the disk) has no more for now.
    pub fn write(&mut self, mut send: impl FnMut(&[u8], bool) -> Sent) -> Progress {
        loop {
            let remaining = self.remaining;
            let chunk = match self.chunk() {
                Ok(Some(c)) => c,
                Ok(None) => return Progress::Waiting,
                Err(e) => return Progress::Failed(format!("failed to read response body: {e}")),
            };
            let fin = chunk.len() as u64 == remaining;
            let len = chunk.len();
            match send(chunk, fin) {
                Sent::Failed => return Progress::Failed("stream closed".into()),
                Sent::Full => return Progress::Blocked,
                Sent::Took(n) => {
                    self.consume(n);
                    if n == len && fin {
                        return Progress::Done;
                    }
                    if n < len {
                        return Progress::Blocked;
                    }
                }
            }
        }
    }
}

/// `preadv2(RWF_NOWAIT)`: `Ok(None)` when the data is not in the page
/// cache yet (the kernel is then asked to read it ahead). Kernels or file
/// systems without RWF_NOWAIT get a plain read.
#[cfg(all(target_os = "linux", not(feature = "portable")))]
fn read_nowait(file: &File, offset: u64, buf: &mut [u8]) -> io::Result<Option<usize>> {
    let fd = file.as_raw_fd();
    let iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    loop {
        // SAFETY: one iovec over `buf`, valid for the call.
        let n = unsafe { libc::preadv2(fd, &iov, 1, offset as libc::off_t, libc::RWF_NOWAIT) };
        if n >= 0 {
            return Ok(Some(n as usize));
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EAGAIN) => {
                // SAFETY: advisory; any error just means no read-ahead.
                unsafe { libc::posix_fadvise(fd, offset as libc::off_t, buf.len() as libc::off_t,
                                             libc::POSIX_FADV_WILLNEED) };
                return Ok(None);
            }
            Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS) | Some(libc::EINVAL) => return pread(file, offset, buf),
            _ => return Err(e),
        }
    }
}

/// Elsewhere (and in the portable build) a plain positioned read: it may
/// wait for the disk when the page cache is cold (the README says so).
#[cfg(not(all(target_os = "linux", not(feature = "portable"))))]
fn read_nowait(file: &File, offset: u64, buf: &mut [u8]) -> io::Result<Option<usize>> {
    pread(file, offset, buf)
}

fn pread(file: &File, offset: u64, buf: &mut [u8]) -> io::Result<Option<usize>> {
    loop {
        // SAFETY: a positioned read into `buf`, valid for the call.
        let n = unsafe { libc::pread(file.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), offset as libc::off_t) };
        if n >= 0 {
            return Ok(Some(n as usize));
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file's body at its size now.
    fn from_path(p: &std::path::Path) -> Body {
        let f = File::open(p).unwrap();
        let len = f.metadata().unwrap().len();
        Body::from_file(f, len)
    }

    /// The whole body, through `write` with a transport that takes at
    /// most 1000 bytes per call and is full every third call.
    pub fn drain(mut b: Body) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        let mut calls = 0;
        let mut fins = 0;
        loop {
            let p = b.write(|data, fin| {
                calls += 1;
                if calls % 3 == 0 {
                    return Sent::Full;
                }
                let n = data.len().min(1000);
                out.extend_from_slice(&data[..n]);
                if fin && n == data.len() {
                    fins += 1;
                }
                Sent::Took(n)
            });
            match p {
                Progress::Done => break,
                Progress::Blocked | Progress::Waiting => {}
                Progress::Failed(e) => return Err(e),
            }
        }
        assert_eq!(fins, 1, "fin is set exactly once, with the last byte");
        Ok(out)
    }

    #[test]
    fn memory_and_file_bodies_arrive_whole_with_one_fin() {
        assert_eq!(drain(Body::from_bytes(b"byez\n".to_vec())).unwrap(), b"byez\n");
        assert_eq!(drain(Body::from_bytes(Vec::new())).unwrap(), b"");
        let p = std::env::temp_dir().join(format!("qev-body-{}", std::process::id()));
        let big: Vec<u8> = (0..3 * FILE_CHUNK as u32 + 7).map(|i| (i % 251) as u8).collect();
        std::fs::write(&p, &big).unwrap();
        assert_eq!(drain(from_path(&p)).unwrap(), big);
        std::fs::remove_file(&p).unwrap();
    }

    #[test]
    fn an_empty_body_whose_fin_does_not_fit_waits_for_room() {
        let mut b = Body::from_bytes(Vec::new());
        assert_eq!(b.write(|_, _| Sent::Full), Progress::Blocked, "the FIN did not go out: not done");
        let mut fins = 0;
        assert_eq!(b.write(|d, fin| {
            assert!(d.is_empty() && fin);
            fins += 1;
            Sent::Took(0)
        }), Progress::Done);
        assert_eq!(fins, 1);
    }

    #[test]
    fn a_file_that_shrinks_fails_instead_of_ending_short() {
        let p = std::env::temp_dir().join(format!("qev-shrink-{}", std::process::id()));
        std::fs::write(&p, vec![1u8; 10_000]).unwrap();
        let b = from_path(&p);
        std::fs::write(&p, vec![1u8; 100]).unwrap();
        assert!(drain(b).is_err());
        std::fs::remove_file(&p).unwrap();
    }
}
