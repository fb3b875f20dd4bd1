//! Connection-ID generation.
//!
//! Upstream's `gen_cid` opens `/dev/urandom` on every call and never closes
//! it (one descriptor leaked per retry); we draw from BoringSSL's CSPRNG,
//! which keeps no descriptor per call.

use crate::LOCAL_CONN_ID_LEN;

pub use crate::crypto::random_bytes;

/// A fresh random connection ID of our own length.
pub fn gen_cid() -> [u8; LOCAL_CONN_ID_LEN] {
    let mut cid = [0; LOCAL_CONN_ID_LEN];
    random_bytes(&mut cid);
    cid
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cids_are_random_and_full_length() {
        let a = gen_cid();
        let b = gen_cid();
        assert_ne!(a, b);
        assert_ne!(a, [0; LOCAL_CONN_ID_LEN]);
    }

    #[test]
    fn gen_cid_keeps_no_descriptor() {
        // Open descriptors below 4096, counted with fcntl (no /proc off
        // Linux).
        // SAFETY: F_GETFD on any number only asks whether it is open.
        let count = || (0..4096).filter(|&fd| unsafe { libc::fcntl(fd, libc::F_GETFD) } != -1).count();
        let before = count();
        for _ in 0..1000 {
            gen_cid();
        }
        // Other tests in this process may open a few files meanwhile; a
        // descriptor per call (upstream's gen_cid) would add a thousand.
        assert!(count() < before + 10, "descriptors grew from {before} to {}", count());
    }
}
