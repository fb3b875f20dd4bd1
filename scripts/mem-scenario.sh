# The scenario that scripts/valgrind.sh and scripts/asan.sh run, once per
# pair (hq: server/client, h3: http3-server/http3-client). Sourced, not run.
#
# The caller defines two functions and sets LOGDIR:
#   checked REPORT CMD...  exec CMD under the memory checker, which writes
#                          its findings to REPORT (or REPORT.*)
#   report_clean REPORT    true when REPORT shows no error and no leak
#
# run_pair NAME SERVER CLIENT (absolute paths; the cwd must be c-examples/,
# where the servers find ./cert.crt and ./cert.key):
#   1. the server, under the checker, serves a document root on a free port;
#   2. a client, under the checker, fetches / (index.html = "byez"): it must
#      print byez, exit 0 and have a clean report;
#   3. a second client (not checked: SIGKILL would lose its report) fetches
#      a 1 GiB file and is SIGKILLed once the body flows, so the server is
#      left with a live connection in the middle of a file transfer;
#   4. SIGTERM to the server while that connection is live: it must exit 0
#      with a clean report (no error, no definite/indirect leak).
# Every wait has a deadline; any failure prints the logs and exits 1.

DEADLINE=${DEADLINE:-60} # seconds; valgrind is slow to start
export QUICHE_EV_QUIET=1

declare -a STARTED=() # pids we started, killed (by pid) on the way out

cleanup() {
    local pid
    for pid in "${STARTED[@]}"; do
        kill -KILL "$pid" 2>/dev/null || true
    done
    [[ -z ${SCRATCH:-} ]] || rm -rf "$SCRATCH"
}
trap cleanup EXIT

# fail DIR MESSAGE: print MESSAGE and every log of the pair, then exit 1.
fail() {
    local dir=$1 f
    shift
    echo "FAIL: $*" >&2
    for f in "$dir"/*; do
        [[ -s $f ]] || continue
        echo "===== $f =====" >&2
        cat "$f" >&2
    done
    exit 1
}

# wait_for DIR FILE PATTERN PID: until FILE has a line matching PATTERN,
# failing if PID exits first or the deadline passes.
wait_for() {
    local dir=$1 file=$2 pattern=$3 pid=$4 end=$((SECONDS + DEADLINE))
    until grep -q "$pattern" "$file" 2>/dev/null; do
        kill -0 "$pid" 2>/dev/null || fail "$dir" "process $pid exited before '$pattern' in $file"
        ((SECONDS < end)) || fail "$dir" "no '$pattern' in $file after ${DEADLINE}s"
        sleep 0.05
    done
}

# wait_exit DIR PID: PID's exit status, SIGKILLing it after the deadline.
wait_exit() {
    local dir=$1 pid=$2 end=$((SECONDS + DEADLINE)) rc=0
    while kill -0 "$pid" 2>/dev/null; do
        if ((SECONDS >= end)); then
            kill -KILL "$pid" 2>/dev/null || true
            fail "$dir" "process $pid still running ${DEADLINE}s after SIGTERM"
        fi
        sleep 0.05
    done
    wait "$pid" || rc=$?
    echo "$rc"
}

run_pair() {
    local name=$1 server=$2 client=$3
    local dir=$LOGDIR/$name start=$SECONDS
    rm -rf "$dir"
    mkdir -p "$dir"

    SCRATCH=${SCRATCH:-$(mktemp -d)}
    local root=$SCRATCH/root
    mkdir -p "$root"
    printf 'byez\n' >"$root/index.html"
    truncate -s 1G "$root/big" # sparse: no disk used

    # 1. The server.
    checked "$dir/server.report" "$server" --root "$root" 127.0.0.1 0 2>"$dir/server.err" &
    local spid=$!
    STARTED+=("$spid")
    wait_for "$dir" "$dir/server.err" 'listening on' "$spid"
    local port
    port=$(sed -n 's/.*listening on .*:\([0-9]*\)$/\1/p' "$dir/server.err")

    # 2. A checked client with a full response.
    local rc=0
    checked "$dir/client.report" "$client" 127.0.0.1 "$port" \
        >"$dir/client.out" 2>"$dir/client.err" || rc=$?
    ((rc == 0)) || fail "$dir" "$name: client exit status $rc"
    [[ $(cat "$dir/client.out") == byez ]] || fail "$dir" "$name: client did not print byez"
    report_clean "$dir/client.report" || fail "$dir" "$name: client report not clean"

    # 3. A client killed in the middle of a download.
    "$client" 127.0.0.1 "$port" /big >"$dir/killed.out" 2>"$dir/killed.err" &
    local kpid=$!
    STARTED+=("$kpid")
    wait_for "$dir" "$dir/killed.err" 'connection established' "$kpid"
    local end=$((SECONDS + DEADLINE))
    until [[ -s $dir/killed.out ]]; do
        ((SECONDS < end)) || fail "$dir" "$name: no body reached the second client"
        sleep 0.05
    done
    kill -KILL "$kpid"
    wait "$kpid" 2>/dev/null || true

    # 4. SIGTERM with that connection live (its idle timeout is 5 s).
    local opened closed
    opened=$(grep -c 'new connection' "$dir/server.err" || true)
    closed=$(grep -c 'connection closed' "$dir/server.err" || true)
    ((opened > closed)) || fail "$dir" "$name: no live connection on the server before SIGTERM"
    kill -TERM "$spid"
    rc=$(wait_exit "$dir" "$spid")
    ((rc == 0)) || fail "$dir" "$name: server exit status $rc after SIGTERM"
    report_clean "$dir/server.report" || fail "$dir" "$name: server report not clean"

    echo "$name: ok ($((SECONDS - start)) s; logs in $dir)"
}
