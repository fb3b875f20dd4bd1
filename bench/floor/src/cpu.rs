//! Thread CPU time, the unit every figure of the floor is made of.

/// This thread's CPU time (user + system) in nanoseconds:
/// `clock_gettime(CLOCK_THREAD_CPUTIME_ID)`.
pub fn thread_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid out-parameter for the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// CPU time spent by one side (the server's calls, or the client's): the
/// sum of the turns it was given.
#[derive(Default, Clone, Copy)]
pub struct Meter {
    pub ns: u64,
}

impl Meter {
    /// Runs `f` and adds the thread CPU time it took.
    pub fn time<R>(&mut self, f: impl FnOnce() -> R) -> R {
        let t0 = thread_ns();
        let r = f();
        self.ns += thread_ns() - t0;
        r
    }
}
