//! The secrets a server's stateless answers depend on, shareable between
//! servers (the workers of a group, the hosts of a fleet) and rotated
//! without dropping anything in flight:
//!
//! - the **token key**: Retry tokens are MACed with it (see `token`); any
//!   server holding it accepts a token any other minted;
//! - the **reset key**: stateless-reset tokens are derived from it and the
//!   connection ID (see `stateless`); any server holding it can reset a
//!   connection another one issued the CID of (a dead worker's, a
//!   restarted host's).
//!
//! Each is a [`KeyPair`]: the current key makes new tokens; the previous
//! one (during a rotation) is still accepted, and resets are sent under
//! both, so tokens minted and connections created before the rotation
//! keep working. (TLS session-ticket keys live in the quiche config: see
//! `tickets`.)
//!
//! A fleet rotates in two steps, so no server ever meets a token it cannot
//! read: first every server gets (old, new) (the new key is accepted
//! everywhere, nobody mints with it yet), then every server gets (new,
//! old); the old one can go once tokens under it have expired and no
//! connection it issued reset tokens for is left.

use std::sync::{Arc, RwLock};

use crate::crypto::random_bytes;

/// A key and, during a rotation, a second one that is still accepted.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct KeyPair {
    pub current: [u8; 32],
    pub previous: Option<[u8; 32]>,
}

impl KeyPair {
    /// A random current key, no previous one.
    pub fn random() -> KeyPair {
        let mut current = [0u8; 32];
        random_bytes(&mut current);
        KeyPair { current, previous: None }
    }

    /// The current key, then the previous one if there is one.
    pub fn all(&self) -> impl Iterator<Item = &[u8; 32]> {
        std::iter::once(&self.current).chain(self.previous.as_ref())
    }
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the keys themselves.
        write!(f, "KeyPair {{ previous: {} }}", self.previous.is_some())
    }
}

/// A server's token and reset keys.
#[derive(Clone, Copy, Debug)]
pub struct Secrets {
    pub token: KeyPair,
    pub reset: KeyPair,
}

impl Secrets {
    /// Fresh random keys (a server's own, until the host sets others).
    pub fn random() -> Secrets {
        Secrets { token: KeyPair::random(), reset: KeyPair::random() }
    }
}

/// Secrets one or more servers read (each use copies them out) and any
/// thread may change: the workers of a group hold the same one.
#[derive(Clone, Debug)]
pub struct SharedSecrets(Arc<RwLock<Secrets>>);

impl SharedSecrets {
    pub fn new(s: Secrets) -> SharedSecrets {
        SharedSecrets(Arc::new(RwLock::new(s)))
    }

    /// The secrets now.
    pub fn get(&self) -> Secrets {
        *self.0.read().unwrap_or_else(|p| p.into_inner())
    }

    pub fn set_token(&self, keys: KeyPair) {
        self.0.write().unwrap_or_else(|p| p.into_inner()).token = keys;
    }

    pub fn set_reset(&self, keys: KeyPair) {
        self.0.write().unwrap_or_else(|p| p.into_inner()).reset = keys;
    }

    /// Whether `other` is the very same store (not a copy).
    pub fn same(&self, other: &SharedSecrets) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_secrets_change_for_every_holder_and_never_print() {
        let a = SharedSecrets::new(Secrets::random());
        let b = a.clone();
        let before = a.get().token.current;
        let new = KeyPair { current: [1; 32], previous: Some(before) };
        b.set_token(new);
        assert!(a.get().token == new, "a change through one holder is seen by the other");
        assert!(a.same(&b) && !a.same(&SharedSecrets::new(a.get())));
        assert_eq!(new.all().count(), 2);
        assert_eq!(KeyPair::random().all().count(), 1);
        let shown = format!("{:?}", a.get());
        assert!(!shown.contains("1, 1"), "{shown}");
    }
}
