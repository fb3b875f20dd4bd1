#!/bin/bash
# make valgrind: the hq and h3 pairs of c-examples/ under valgrind's
# memcheck (scenario: scripts/mem-scenario.sh), then the C test programs
# of tests/c/ that MEM_TESTS names (make valgrind passes its list), from
# target/c-tests/. Fails on any memcheck error
# or any definitely/indirectly lost block; "still reachable" is allowed.
# No suppressions: none are needed (BoringSSL's and quiche's one-time
# globals stay reachable, which is not an error).
set -euo pipefail

cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind not installed (make deps)" >&2; exit 1; }
LOGDIR=$PWD/target/memcheck/valgrind
bin=$PWD/c-examples
tests=$PWD/target/c-tests
source scripts/mem-scenario.sh

checked() {
    local report=$1
    shift
    exec valgrind --leak-check=full --errors-for-leak-kinds=definite,indirect \
        --error-exitcode=99 --log-file="$report" "$@"
}

report_clean() {
    grep -q 'ERROR SUMMARY: 0 errors' "$1"
}

cd c-examples
run_pair hq "$bin/server" "$bin/client"
run_pair h3 "$bin/http3-server" "$bin/http3-client"
# Two workers: threads, their loops, the group's sockets and its free.
run_pair h3-workers "$bin/http3-server" "$bin/http3-client" --workers 2
for t in ${MEM_TESTS:-free_in_callbacks logs_and_errors}; do
    run_c_test "$tests/$t"
done
