"""What the aioquic peers of bench/bench.py share (idle_holder.py,
slow_readers.py): many connections in one process, a periodic action
spread evenly over them, and the line protocol on stdin/stdout with which
bench.py drives them."""

import asyncio
import resource
import sys
import time

TICK = 0.05


def allow_files(n):
    """Raises the soft limit on open files to fit n sockets and some more."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, n + 256))
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


async def every(conns, interval, act):
    """Calls act(conn) on each of `conns` (a list that may grow) once per
    `interval` seconds, each connection at its own phase (as independent
    clients would), not all in one burst."""
    i, budget, last = 0, 0.0, time.monotonic()
    while True:
        await asyncio.sleep(TICK)
        now = time.monotonic()
        # By the clock, not by TICK: a busy loop wakes late, and must then
        # catch up.
        budget += len(conns) * (now - last) / interval
        last = now
        if not conns:
            budget = 0.0
            continue
        share, budget = int(budget), budget - int(budget)
        for _ in range(min(share, len(conns))):
            i %= len(conns)
            try:
                act(conns[i])
            except Exception as e:  # one connection's trouble must not stop the rest
                print(f"{sys.argv[0]}: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
            i += 1


async def serve_commands(commands, max_seconds):
    """Answers commands from stdin, one a line: commands[line]() returns the
    line to print. Returns at EOF, or after max_seconds (so a peer orphaned
    by a killed parent does not live forever)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    end = time.monotonic() + max_seconds
    while True:
        try:
            line = await asyncio.wait_for(reader.readline(), max(0.1, end - time.monotonic()))
        except asyncio.TimeoutError:
            return
        if not line:
            return
        answer = commands.get(line.strip().decode(errors="replace"))
        if answer:
            print(answer(), flush=True)
