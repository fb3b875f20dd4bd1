//! What a handle (server or client) keeps to be called back safely: how
//! many of its callbacks are on the stack, whether the host asked to free
//! it meanwhile, and whether an internal error stopped it.
//!
//! Every libev callback of a handle runs through [`Reentry::run`]: a
//! panic is caught there (it never unwinds into C) and stops the handle;
//! a free requested from inside a callback (the host may free a handle in
//! its own callback) waits until the outermost one returns.

use std::cell::Cell;

/// Service-then-deliver rounds per callback before the rest waits for the
/// next loop iteration (a host that answers every event with more work
/// must not starve the loop).
const MAX_ROUNDS: usize = 16;

/// Events delivered to the host per dispatch: a host whose every answer
/// makes another event (a writable callback that writes nothing, ...)
/// still lets the loop run its other watchers in between.
pub const MAX_EVENTS_PER_DISPATCH: usize = 4096;

/// What one dispatch of events to the host did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dispatched {
    Nothing,
    Some,
    /// It stopped at [`MAX_EVENTS_PER_DISPATCH`]: more are waiting.
    Capped,
}

#[derive(Default)]
pub struct Reentry {
    depth: Cell<u32>,
    free_requested: Cell<bool>,
    failed: Cell<bool>,
}

/// What the caller must do after [`Reentry::run`].
#[derive(Debug, Default, PartialEq, Eq)]
pub struct After {
    /// The callback panicked: stop the handle (once).
    pub fail: bool,
    /// The host freed the handle during the callback and no other
    /// callback of it is on the stack: free it now.
    pub free: bool,
}

impl Reentry {
    /// Runs `f` as one callback; skipped once the handle failed.
    pub fn run(&self, f: impl FnOnce()) -> After {
        let mut after = After::default();
        if !self.failed.get() {
            self.depth.set(self.depth.get() + 1);
            let ok = crate::unwind::guard(false, || {
                f();
                true
            });
            self.depth.set(self.depth.get() - 1);
            if !ok {
                self.failed.set(true);
                after.fail = true;
            }
        }
        after.free = self.free_due();
        after
    }

    /// Runs `f` (a host callback telling of the failure) as a callback of
    /// a failed handle: a free inside it waits too. Panics are caught.
    pub fn notify(&self, f: impl FnOnce()) -> bool {
        self.depth.set(self.depth.get() + 1);
        crate::unwind::guard((), f);
        self.depth.set(self.depth.get() - 1);
        self.free_due()
    }

    /// Marks the handle failed outside a callback (a C API call panicked).
    pub fn set_failed(&self) {
        self.failed.set(true);
    }

    /// Whether a free must wait (a callback is running); if so it is
    /// recorded.
    pub fn defer_free(&self) -> bool {
        if self.depth.get() > 0 {
            self.free_requested.set(true);
            return true;
        }
        false
    }

    /// The host asked for a free and no callback is on the stack: free now.
    pub fn free_due(&self) -> bool {
        self.depth.get() == 0 && self.free_requested.get()
    }

    /// A callback of this handle is on the stack.
    pub fn inside(&self) -> bool {
        self.depth.get() > 0
    }

    /// Stop delivering: the host freed the handle, or it failed.
    pub fn should_stop(&self) -> bool {
        self.free_requested.get() || self.failed.get()
    }

    pub fn failed(&self) -> bool {
        self.failed.get()
    }

    /// A handle's step after input: `service` (the connections work and
    /// flush), then `dispatch` (the host hears what happened), again while
    /// the host's answers make more, for at most `MAX_ROUNDS` rounds or
    /// until a dispatch stops at its cap (then `service` once more, for
    /// what the host's answers produced). `None`: the handle must stop
    /// now (freed or failed in a callback); otherwise whether events are
    /// left for the next loop iteration.
    pub fn rounds(&self, mut service: impl FnMut(), mut dispatch: impl FnMut() -> Dispatched) -> Option<bool> {
        for _ in 0..MAX_ROUNDS {
            service();
            let d = dispatch();
            if self.should_stop() {
                return None;
            }
            match d {
                Dispatched::Nothing => break,
                Dispatched::Some => {}
                Dispatched::Capped => {
                    service();
                    return Some(true);
                }
            }
        }
        Some(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_fails_once_and_a_nested_free_waits_for_the_outermost_callback() {
        let r = Reentry::default();
        assert_eq!(r.run(|| {}), After::default());
        let nested = r.run(|| {
            assert!(r.inside());
            assert!(r.defer_free(), "inside a callback the free waits");
            assert_eq!(r.run(|| {}), After::default(), "not the outermost: nothing to do yet");
        });
        assert_eq!(nested, After { fail: false, free: true });
        let r = Reentry::default();
        assert_eq!(r.run(|| panic!("injected")), After { fail: true, free: false });
        assert!(r.failed() && r.should_stop());
        assert_eq!(r.run(|| unreachable!()), After::default(), "a failed handle runs nothing");
        assert!(r.notify(|| assert!(r.defer_free(), "a free inside the failure notice waits")),
                "and is due when the notice returns");
        let r = Reentry::default();
        assert!(!r.defer_free(), "outside callbacks a free is immediate");
    }
}
