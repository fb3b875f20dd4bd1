# The scenario that scripts/valgrind.sh and scripts/asan.sh run for each
# pair (hq: server/client; h3: http3-server/http3-client). Sourced, not run.
#
# The caller sets LOGDIR and defines two functions:
#   checked REPORT CMD...  exec CMD under the memory checker, which writes
#                          its findings to REPORT (or REPORT.*). It replaces
#                          the shell: call it in a subshell or with &.
#   report_clean REPORT    true when REPORT shows no error and no leak
# REPORT is always DIR/X.report, and the command's stderr is in DIR/X.err.
#
# run_pair NAME SERVER CLIENT [SERVER-OPTION...] (absolute paths; the
# options go before the server's own, e.g. --workers 2; the cwd must be c-examples/,
# where the servers find ./cert.crt and ./cert.key) runs two rounds, each
# with a fresh server under the checker serving a document root
# (index.html = "byez", big = 1 GiB) on a free port:
#   NAME        a checked client fetches /: it must print byez, exit 0 and
#               have a clean report. Then a second client (not checked: its
#               report would die with it) fetches /big and is SIGKILLed
#               once the body flows, leaving the server a live connection in
#               the middle of a file; then SIGTERM to the server.
#   NAME-twice  the same killed download, then SIGTERM and SIGINT at once:
#               the second signal breaks the loop without waiting, so the
#               server frees a connection that is still open (not closed).
# Each server must exit 0 with a clean report (no memory error, no
# definitely or indirectly lost block). Every wait has a deadline; any
# failure prints the round's logs and exits 1.
#
# run_c_test PROGRAM runs a C test program of tests/c/ (its own deadlines
# inside) under the checker: exit 0, "ok" last, a clean report.

DEADLINE=${DEADLINE:-60} # seconds; valgrind is slow to start
export QUICHE_EV_QUIET=1

SCRATCH=$(mktemp -d)

# On the way out, SIGKILL the background jobs still running (only those we
# started and have not reaped, so no pid can have been reused).
cleanup() {
    local pid
    for pid in $(jobs -p); do
        kill -KILL "$pid" 2>/dev/null || true
    done
    rm -rf "$SCRATCH"
}
trap cleanup EXIT

ROOT=$SCRATCH/root
mkdir -p "$ROOT"
printf 'byez\n' >"$ROOT/index.html"
truncate -s 1G "$ROOT/big" # sparse: no disk used

# fail DIR MESSAGE...: print MESSAGE, every log in DIR and MESSAGE again
# (after pages of logs), then exit 1.
fail() {
    local dir=$1 f
    shift
    echo "FAIL: $*" >&2
    for f in "$dir"/*; do
        [[ -s $f ]] || continue
        echo "===== $f =====" >&2
        cat "$f" >&2
    done
    echo "FAIL: $* (logs above, and in $dir)" >&2
    exit 1
}

# wait_until DIR WHAT PID TEST...: until TEST succeeds; fails when PID
# exits first or after the deadline.
wait_until() {
    local dir=$1 what=$2 pid=$3 end=$((SECONDS + DEADLINE))
    shift 3
    until "$@"; do
        kill -0 "$pid" 2>/dev/null || fail "$dir" "process $pid exited before $what"
        ((SECONDS < end)) || fail "$dir" "no $what after ${DEADLINE}s"
        sleep 0.05
    done
}

has_line() { grep -q "$2" "$1" 2>/dev/null; }

# start_server DIR SERVER: sets SPID and PORT.
start_server() {
    local dir=$1 server=$2
    checked "$dir/server.report" "$server" "${SERVER_OPTS[@]}" --root "$ROOT" 127.0.0.1 0 2>"$dir/server.err" &
    SPID=$!
    wait_until "$dir" "'listening on'" "$SPID" has_line "$dir/server.err" 'listening on'
    PORT=$(sed -n 's/.*listening on .*:\([0-9]*\)$/\1/p' "$dir/server.err")
}

# byez_client DIR CLIENT: a checked client with a full response.
byez_client() {
    local dir=$1 client=$2 rc=0
    (checked "$dir/client.report" "$client" 127.0.0.1 "$PORT") \
        >"$dir/client.out" 2>"$dir/client.err" || rc=$?
    ((rc == 0)) || fail "$dir" "client exit status $rc"
    [[ $(cat "$dir/client.out") == byez ]] || fail "$dir" "the client did not print byez"
    report_clean "$dir/client.report" || fail "$dir" "the client's report is not clean"
}

# killed_download DIR CLIENT: a client SIGKILLed in the middle of /big.
killed_download() {
    local dir=$1 client=$2 body=$SCRATCH/body
    rm -f "$body"
    "$client" 127.0.0.1 "$PORT" /big >"$body" 2>"$dir/killed.err" &
    local pid=$!
    wait_until "$dir" "'connection established'" "$pid" \
        has_line "$dir/killed.err" 'connection established'
    wait_until "$dir" "body at the second client" "$pid" test -s "$body"
    kill -KILL "$pid"
    wait "$pid" 2>/dev/null || true
}

# stop_server DIR SIGNAL...: the signals while a connection is live (its
# idle timeout is 5 s); the server must exit 0 with a clean report.
stop_server() {
    local dir=$1 sig opened closed status=0 end=$((SECONDS + DEADLINE))
    shift
    opened=$(grep -c 'new connection' "$dir/server.err" || true)
    closed=$(grep -c 'connection closed' "$dir/server.err" || true)
    ((opened > closed)) || fail "$dir" "no live connection on the server before the signal"
    for sig in "$@"; do
        kill -"$sig" "$SPID"
    done
    while kill -0 "$SPID" 2>/dev/null; do
        ((SECONDS < end)) || fail "$dir" "server still running ${DEADLINE}s after $*"
        sleep 0.05
    done
    wait "$SPID" || status=$?
    ((status == 0)) || fail "$dir" "server exit status $status after $*"
    report_clean "$dir/server.report" || fail "$dir" "the server's report is not clean"
}

# The two rounds (see the top of this file).
signal_once() {
    start_server "$DIR" "$SERVER"
    byez_client "$DIR" "$CLIENT"
    killed_download "$DIR" "$CLIENT"
    stop_server "$DIR" TERM
}

signal_twice() {
    start_server "$DIR" "$SERVER"
    killed_download "$DIR" "$CLIENT"
    stop_server "$DIR" TERM INT
}

# round NAME FUNCTION: FUNCTION with its logs in DIR=LOGDIR/NAME.
round() {
    local name=$1 start=$SECONDS
    DIR=$LOGDIR/$name
    rm -rf "$DIR"
    mkdir -p "$DIR"
    "$2"
    echo "$name: ok ($((SECONDS - start)) s; logs in $DIR)"
}

SERVER_OPTS=()

run_pair() {
    SERVER=$2 CLIENT=$3
    SERVER_OPTS=("${@:4}")
    round "$1" signal_once
    round "$1-twice" signal_twice
}

# c_test: the tests/c/ program $PROGRAM under the checker, with the test
# certificate: it must exit 0, end with "ok" and leave a clean report.
c_test() {
    local rc=0
    (checked "$DIR/test.report" "$PROGRAM" cert.crt cert.key) >"$DIR/test.out" 2>"$DIR/test.err" || rc=$?
    ((rc == 0)) || fail "$DIR" "$(basename "$PROGRAM") exit status $rc"
    [[ $(tail -1 "$DIR/test.out") == ok ]] || fail "$DIR" "$(basename "$PROGRAM") did not end with ok"
    report_clean "$DIR/test.report" || fail "$DIR" "the report of $(basename "$PROGRAM") is not clean"
}

# run_c_test PROGRAM (an absolute path; the cwd is c-examples/).
run_c_test() {
    PROGRAM=$1
    round "$(basename "$1")" c_test
}
