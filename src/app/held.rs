//! Received body bytes the host has not taken yet: a request body on the
//! server, a response body on the client. A body callback may take less
//! than it is offered (it pauses the body); the rest waits here, with the
//! FIN if it came with those bytes, and goes out first on resume.

use std::cell::RefCell;

/// Bytes handed to a body callback per call.
pub const BODY_CHUNK: usize = 64 * 1024;

thread_local! {
    /// The buffer bodies are read into before a body callback, allocated
    /// once per thread (not per event).
    static BODY_BUF: RefCell<Option<Vec<u8>>> = const { RefCell::new(None) };
}

/// Runs `f` with a [`BODY_CHUNK`]-sized buffer (a fresh one if `f` itself
/// runs this again).
pub fn with_body_buf<R>(f: impl FnOnce(&mut [u8]) -> R) -> R {
    let mut buf = BODY_BUF.with(|b| b.borrow_mut().take()).unwrap_or_else(|| vec![0; BODY_CHUNK]);
    let r = f(&mut buf);
    BODY_BUF.with(|b| *b.borrow_mut() = Some(buf));
    r
}

#[derive(Debug, Default)]
pub struct Held {
    bytes: Vec<u8>,
    /// The FIN came with the bytes held (or after them).
    fin: bool,
}

impl Held {
    /// The next chunk of what is held, copied into `buf`: (bytes, FIN
    /// reached). `None` when nothing is held (read from quiche instead).
    pub fn take(&mut self, buf: &mut [u8]) -> Option<(usize, bool)> {
        if self.bytes.is_empty() && !self.fin {
            return None;
        }
        let n = self.bytes.len().min(buf.len());
        buf[..n].copy_from_slice(&self.bytes[..n]);
        self.bytes.drain(..n);
        Some((n, self.bytes.is_empty() && std::mem::take(&mut self.fin)))
    }

    /// What the callback did not take of a chunk (`fin`: the chunk ended
    /// the body) waits in front of anything held (whose FIN, if any,
    /// stays behind it).
    pub fn put_back(&mut self, rest: &[u8], fin: bool) {
        self.bytes.splice(0..0, rest.iter().copied());
        self.fin |= fin;
    }

    /// Appends what was read after the host stopped taking (`fin`: the
    /// body ended there).
    pub fn append(&mut self, data: &[u8], fin: bool) {
        self.bytes.extend_from_slice(data);
        self.fin |= fin;
    }

    /// The whole body has arrived (the FIN is held, not yet delivered).
    pub fn complete(&self) -> bool {
        self.fin
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_was_not_taken_comes_first_in_chunks_with_the_fin_on_the_last() {
        let mut h = Held::default();
        let mut buf = [0u8; 4];
        assert_eq!(h.take(&mut buf), None, "nothing held: read from quiche");
        h.put_back(b"abcdef", true);
        assert!(h.complete());
        assert_eq!(h.take(&mut buf), Some((4, false)));
        assert_eq!(&buf, b"abcd");
        assert_eq!(h.take(&mut buf), Some((2, true)), "the FIN with the last bytes");
        assert_eq!(&buf[..2], b"ef");
        assert_eq!(h.take(&mut buf), None);
        h.append(b"gh", false);
        h.append(b"", true);
        assert_eq!(h.take(&mut buf), Some((2, true)));
        assert_eq!(h.take(&mut buf), None);
    }

    #[test]
    fn a_partial_take_of_one_chunk_of_many_keeps_the_fin_behind_the_rest() {
        // (What the client kept at a connection's close: many chunks.)
        let mut h = Held::default();
        let mut buf = [0u8; 4];
        h.append(b"abcdefgh", true);
        assert_eq!(h.take(&mut buf), Some((4, false)));
        h.put_back(b"cd", false); // the host took "ab"
        assert_eq!(h.take(&mut buf), Some((4, false)));
        assert_eq!(&buf, b"cdef");
        assert_eq!(h.take(&mut buf), Some((2, true)), "the FIN is still there");
        assert_eq!(&buf[..2], b"gh");
    }
}
