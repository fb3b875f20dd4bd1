#!/usr/bin/env bash
# `make miri`: the unit tests that exercise the library's own unsafe code
# without C under Miri: the server's and the client's lifecycles on the
# fake loop, the C API itself driven the way careless hosts drive it
# (careless_tests) and by random hosts (model_tests, MODEL_SEEDS seeds),
# the connection table, the GRO control-message parsing, which checks every pointer use against Rust's aliasing rules
# (Stacked Borrows) and reports leaks. (Tests of safe code are left to
# `cargo test`: Miri runs them thousands of times slower.)
#
# Miri needs a nightly toolchain with the miri and rust-src components.
# They are installed when missing and possible; when they cannot be had
# (no rustup, no network to the toolchain server), this says so plainly
# and exits 0: the same tests still run natively in `cargo test`, and the
# C examples run under ASan and valgrind (`make asan valgrind`).
set -uo pipefail
cd "$(dirname "$0")/.."

unavailable() {
    echo "miri: NOT RUN: $* -- the lifecycle tests ran natively (cargo test) and the examples under ASan/valgrind instead"
    exit 0
}

if ! cargo +nightly miri --version >/dev/null 2>&1; then
    command -v rustup >/dev/null 2>&1 || unavailable "no rustup to install a nightly toolchain"
    echo "miri: installing the nightly toolchain's miri and rust-src components"
    if ! rustup toolchain install nightly --profile minimal --component miri,rust-src >/tmp/miri-install.$$ 2>&1; then
        reason=$(tail -1 /tmp/miri-install.$$)
        rm -f /tmp/miri-install.$$
        unavailable "nightly toolchain with miri cannot be installed here ($reason)"
    fi
    rm -f /tmp/miri-install.$$
    cargo +nightly miri --version >/dev/null 2>&1 || unavailable "cargo miri still missing after installing"
fi

echo "miri: $(cargo +nightly miri --version)"
# Miri builds the crate's dependencies once into target/miri (BoringSSL's
# C build included, which Miri never runs). QUICHE_EV_SKIP_HEADER: the
# header is the release build's job.
QUICHE_EV_SKIP_HEADER=1 MODEL_SEEDS=${MODEL_SEEDS:-6} cargo +nightly miri test -p quiche-ev --lib -- \
    lifecycle_tests careless_tests model_tests reentry:: table::tests::cids batch_io::linux::truncation_tests \
    --skip a_coalesced
