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
# The C API under Miri: the careless hosts' scenarios that free handles
# from callbacks and end watchers (each promise of the Rules), a few seeds
# of the random hosts, and the transport's lifecycle. Miri runs a thousand
# times slower than a release build: `make miri-full` runs every careless
# scenario and MODEL_SEEDS seeds (default here: 3).
if [ "${MIRI_FULL:-0}" = 1 ]; then
    set -- careless_tests model_tests
else
    set -- careless_tests::a_server_freed_in_its_request careless_tests::a_server_freed_in_a_request_closed \
        careless_tests::a_client_freed_in_its_done careless_tests::an_idle_servers_shutdown \
        careless_tests::a_client_whose_server_never_answers careless_tests::a_connection_ended_by_a_stateless \
        careless_tests::an_empty_final_write careless_tests::a_failed_new careless_tests::a_watcher_the \
        careless_tests::a_host_watcher_stopped model_tests
fi
# Miri links no native code, so boring-sys need not build BoringSSL with
# CMake again (two minutes on a fresh machine): a folder of empty archives
# stands for the prebuilt library and bindgen reads the headers vendored in
# the very boring-sys package of Cargo.lock (as make cross-check does).
boring_manifest=$(cargo metadata --format-version 1 --locked 2>/dev/null |
    python3 -c 'import json,sys; print(next(p["manifest_path"] for p in json.load(sys.stdin)["packages"] if p["name"] == "boring-sys"))')
boring_include="$(dirname "$boring_manifest")/deps/boringssl/include"
if [ -f "$boring_include/openssl/ssl.h" ]; then
    # Empty archives: rustc wants a static library to exist where the
    # build script says, even though nothing is ever linked from it.
    mkdir -p target/miri/no-boringssl
    for lib in crypto ssl; do
        [ -f "target/miri/no-boringssl/lib$lib.a" ] || ar rcs "target/miri/no-boringssl/lib$lib.a"
    done
    export BORING_BSSL_PATH="$PWD/target/miri/no-boringssl" BORING_BSSL_INCLUDE_PATH="$boring_include"
fi
QUICHE_EV_SKIP_HEADER=1 MODEL_SEEDS=${MODEL_SEEDS:-3} cargo +nightly miri test -p quiche-ev --lib -- \
    "$@" lifecycle_tests reentry:: table::tests::cids batch_io::linux::truncation_tests \
    --skip a_coalesced
