#!/bin/bash
# make asan: the hq and h3 pairs built with AddressSanitizer and UBSan
# (BINDIR, default target/asan) run the scenario of scripts/mem-scenario.sh;
# then the C test programs of tests/c/ that MEM_TESTS names (make asan
# passes its list), built the same way, each run whole.
# The C code is instrumented; the Rust staticlib is not, but its heap goes
# through the intercepted malloc, so LeakSanitizer sees its leaks too.
set -euo pipefail

cd "$(dirname "$0")/.."
bin=$(realpath "${1:-target/asan}")
LOGDIR=$PWD/target/memcheck/asan
source scripts/mem-scenario.sh

# ASan and LSan write REPORT.<pid>, only when they find something; UBSan
# writes to stderr (X.err beside X.report) whatever log_path says.
checked() {
    local report=$1
    shift
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:log_path=$report \
    UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
        exec "$@"
}

report_clean() {
    ! compgen -G "$1.*" >/dev/null && ! grep -q 'runtime error:' "${1%.report}.err"
}

cd c-examples
run_pair hq "$bin/server" "$bin/client"
run_pair h3 "$bin/http3-server" "$bin/http3-client"
# Two workers: threads, their loops, the group's sockets and its free.
run_pair h3-workers "$bin/http3-server" "$bin/http3-client" --workers 2
for t in ${MEM_TESTS:-free_in_callbacks logs_and_errors}; do
    run_c_test "$bin/$t"
done
