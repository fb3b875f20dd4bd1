#!/usr/bin/env python3
"""quiche-ev benchmark: `make bench` (or `python3 bench/bench.py` after
`make all upstream peers` and `make target/bench/upstream/server`).

Not a test: nothing here passes or fails on timing. Every figure is the
median of several runs, and every row is a ratio against a baseline measured
in the same invocation, so the table is read on one machine at one time.
The table is printed on stdout and written to target/bench.md; the raw runs
go to target/bench.json. Python 3 standard library only (the aioquic peers,
bench/idle_holder.py and bench/slow_readers.py, run under target/venv; the
unknown-CID load, bench/unknown_cid_load.py, is standard library too).

See bench/README.md for how to read the table. Settings (environment, or the
command-line flags shown by --help):

  BENCH_QUICK=1         short run: 100 handshakes, 100 idle, 32 MiB bulk, no
                        `shipped` baseline, 20000 requests, a 100000-request soak
  BENCH_RUNS            runs per figure (default 3; the median is reported)
  BENCH_BULK_RUNS       runs per bulk figure (default 5, quick 3)
  BENCH_HANDSHAKES      client connections per handshake run (default 1000, quick 100)
  BENCH_CONCURRENCY     client processes at a time (default 16)
  BENCH_IDLE            idle connections held during the loaded runs (500, quick 100)
  BENCH_MEM_IDLE        idle connections for the memory rows (1000, quick 100)
  BENCH_MEM_RUNS        runs of the memory rows (BENCH_RUNS, quick 1)
  BENCH_BULK_MIB        bulk file size in MiB (256)
  BENCH_IO_MODES        our I/O modes for the bulk rows (batched,nogso,plain)
  BENCH_SECTIONS        handshake,bulk,memory,unknown_cid,slow,floor,instructions,
                        soak,workers (any subset; the quick run leaves out
                        instructions unless named here)
  BENCH_WORKERS         worker counts of the workers rows, each against the
                        first (default 1,2; e.g. 1,2,4,8 on a larger machine)
  BENCH_WORKERS_DOWNLOADS  concurrent downloads in the workers bulk rows (4)
  BENCH_UNKNOWN_PPS     unknown-CID datagrams a second (default 10000)
  BENCH_UNKNOWN_SECS    seconds of unknown-CID load per run (3, quick 1)
  BENCH_UNKNOWN_BURST   datagrams per burst in the burst row (2000)
  BENCH_UNKNOWN_BURSTS  bursts per run (20, quick 5)
  BENCH_UNKNOWN_INPROC  datagrams of the in-process row (1000000, quick 200000)
  BENCH_SLOW_CONNS      concurrent slow transfers (1000, quick 100)
  BENCH_SLOW_RATE       bytes a second each slow reader takes (4096)
  BENCH_SLOW_WINDOW     each slow reader's receive window in bytes (16384)
  BENCH_SLOW_SECS       measured seconds per slow-transfer run (10, quick 2)
  BENCH_SLOW_RUNS       runs per slow-transfer figure (1)
  BENCH_SHIPPED=0       skip upstream's server as built by `make upstream`
                        (the default in the quick run)
  BENCH_REQUESTS        measured requests in the request rows (100000, quick 20000)
  BENCH_REQ_CONNS       connections of the request rows (10)
  BENCH_REQ_STREAMS     requests in flight per connection (100)
  BENCH_REQ_BODY        response body bytes in the request rows and the soak (1024)
  BENCH_FLOOR_BATCH     the floor client's receive batch, in datagrams (32)
  BENCH_AES_MIB         MiB encrypted for the AES-128-GCM row (256, quick 64)
  BENCH_IR_REQUESTS     requests of the instruction-count rows (20000, quick 4000)
  BENCH_IR_HANDSHAKES   handshakes of the instruction-count rows (300, quick 60)
  BENCH_IR_BULK_MIB     body size of the bulk instruction-count rows in MiB (40, quick 10)
  BENCH_SOAK_REQUESTS   requests of the soak (1000000, quick 100000)
  BENCH_SOAK_CONNS      the soak's long-lived connections (10)
  BENCH_SOAK_RUNS       soak runs (1)
  BENCH_PING_INTERVAL   seconds between PINGs on each idle connection (1.0)
  BENCH_UPKEEP_SECS     window of the idle-upkeep CPU figure (2.0, quick 0.5)
  BENCH_DEADLINE        seconds for the whole run (default 1800); what is
                        left when it passes is reported as skipped
"""

import argparse
import hashlib
import json
import os
import platform
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait

import unknown_cid_load  # bench/: the unknown-CID datagrams, for the burst row too

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EX = os.path.join(ROOT, "c-examples")
WORK = os.path.join(ROOT, "target", "bench")
LOGS = os.path.join(WORK, "logs")
PY = os.path.join(ROOT, "target", "venv", "bin", "python")
HOLDER = os.path.join(ROOT, "bench", "idle_holder.py")
SLOW_READERS = os.path.join(ROOT, "bench", "slow_readers.py")
UNKNOWN_CID_LOAD = os.path.join(ROOT, "bench", "unknown_cid_load.py")
HOST = "127.0.0.1"
# Slow transfers: how long the readers may take to get every transfer past
# its first window before measuring starts anyway.
SLOW_WARM_UP_SECS = 20.0

# Our programs always run with the quiet switch (quiche's trace log off), as
# a deployment would. Their own info lines (a few per connection) stay, as
# upstream's fprintf lines do.
OURS_ENV = {"QUICHE_EV_QUIET": "1"}

# The floor (bench/floor) and the request-load programs (bench/req_*.c).
FLOOR = os.path.join(ROOT, "target", "release", "floor")
# The floor's request row again with the kernel's UDP path between its
# calls (`floor --socket-trip N`, untimed): N datagrams at a time, as ours'
# server makes one system call per 6 datagrams in that row (bench/README.md).
FLOOR_TRIP_GROUP = 6
REQ_SERVER = os.path.join(WORK, "req_server")
REQ_LOAD = os.path.join(WORK, "req_load")
UNKNOWN_INPROC = os.path.join(WORK, "unknown_cid_inproc")

# Our servers in the rows against the floor and in the soak: the quiet
# switch, and the library's log at warn (the examples' default, info,
# prints a few lines per connection and, for HTTP/3, every request header
# (upstream's wording): the floor prints nothing).
FLOOR_ENV = dict(OURS_ENV, QUICHE_EV_LOG="warn")

# Soak: requests per connection before the first RSS sample (allocator and
# tables reach their working size: the floor's own RSS grows by about 4 MB
# over its first tens of thousands of requests, then stays flat).
SOAK_WARMUP = 1000

# Our servers drain for 2 s after SIGTERM by default (letting responses
# finish); the benchmark stops a server only once its measurement is over,
# so it stops them at once.
NO_DRAIN = ["--drain-ms", "0"]

# The I/O path of our programs, per bulk row. This is the hook for the
# "with and without GSO" column: each mode is a set of environment variables
# given to both our server and our client, and the mode's name is printed in
# the row. QUICHE_EV_PLAIN_IO=1: plain recvfrom/sendto (no recvmmsg, no
# GSO/GRO); QUICHE_EV_GSO=0: batched reads, one sendto per packet. Add a
# mode here (and name it in BENCH_IO_MODES) to get its rows.
IO_MODES = {
    "batched": {"QUICHE_EV_GSO": "1"},
    "plain": {"QUICHE_EV_GSO": "0", "QUICHE_EV_PLAIN_IO": "1"},
    "nogso": {"QUICHE_EV_GSO": "0"},
}

# The servers of the handshake and memory rows.
SERVERS = {
    "ours": {
        "argv": [os.path.join(EX, "server")] + NO_DRAIN,
        "env": OURS_ENV, "port": "zero",
        "label": "ours (c-examples/server)",
    },
    # The memory rows' second figure of ours: quiche's default limit of
    # connection IDs a peer may give (upstream's), instead of our 8.
    "ours-cid2": {
        "argv": [os.path.join(EX, "server"), "--cid-limit", "2"] + NO_DRAIN,
        "env": OURS_ENV, "port": "zero",
        "label": "ours (c-examples/server --cid-limit 2)",
    },
    "upstream": {
        "argv": [os.path.join(WORK, "upstream", "server")],
        "env": {}, "port": "fixed",
        "label": "upstream server.c, -O2, debug log off (target/bench/upstream/server)",
    },
    "shipped": {
        "argv": [os.path.join(ROOT, "target", "upstream", "quiche", "server")],
        "env": {}, "port": "fixed", "stderr_null": True,
        "label": "upstream server.c as `make upstream` builds it (-O0, debug log to /dev/null)",
    },
}


class MeasureError(Exception):
    """One measurement could not be made; the message goes into the row."""


# ---------------------------------------------------------------- processes

_children = {}
_children_lock = threading.RLock()
_stopping = threading.Event()


def spawn(argv, env=None, **kw):
    """Starts a child in its own process group, remembered until reaped."""
    if _stopping.is_set():
        raise MeasureError("stopping")
    full_env = dict(os.environ)
    full_env.update(env or {})
    p = subprocess.Popen(argv, env=full_env, start_new_session=True, **kw)
    with _children_lock:
        _children[p.pid] = p
    return p


def forget(p):
    with _children_lock:
        _children.pop(p.pid, None)


def kill_group(p):
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def stop(p, grace=5.0):
    """SIGTERM, then SIGKILL to the group after `grace` seconds."""
    if p.poll() is None:
        try:
            p.send_signal(signal.SIGTERM)
            p.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    kill_group(p)
    try:
        p.wait(5)
    except subprocess.TimeoutExpired:
        pass
    forget(p)


def kill_all():
    _stopping.set()
    with _children_lock:
        procs = list(_children.values())
        _children.clear()
    for p in procs:
        kill_group(p)
    for p in procs:
        try:
            p.wait(5)
        except (subprocess.TimeoutExpired, ChildProcessError):
            pass


def on_signal(signum, _frame):
    kill_all()
    raise SystemExit(128 + signum)


# ------------------------------------------------------------ measurements

def cpu_source():
    if os.environ.get("BENCH_CPU_SOURCE", "") == "stat":
        return "stat"
    return "schedstat" if os.path.exists(f"/proc/{os.getpid()}/schedstat") else "stat"


CPU_SOURCE = cpu_source()
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """CPU time of a live process: the sum of its threads' on-CPU time from
    /proc/PID/task/*/schedstat (nanoseconds), or utime+stime from
    /proc/PID/stat (clock ticks) where schedstat is missing."""
    try:
        if CPU_SOURCE == "schedstat":
            total = 0
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    total += int(f.read().split()[0])
            return total / 1e9
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK
    except (FileNotFoundError, ProcessLookupError, IndexError, ValueError) as e:
        raise MeasureError(f"process {pid} is gone ({e})")


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except FileNotFoundError:
        pass
    raise MeasureError(f"no VmRSS for process {pid}")


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((HOST, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def port_bound(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind((HOST, port))
        return False
    except OSError:
        return True
    finally:
        s.close()


def tail(path, n=5):
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.path.getsize(path) - 4000))
            lines = f.read().decode("utf-8", "replace").splitlines()
        return " | ".join(lines[-n:])
    except OSError:
        return ""


class Server:
    """A server process on a free loopback port, its stderr in a log file."""

    serial = 0

    def __init__(self, name, argv, env, port_mode, stderr_null=False, cwd=EX, start_timeout=15.0):
        Server.serial += 1
        self.name = name
        self.log = os.path.join(LOGS, f"{Server.serial:03d}-{name}.log")
        if port_mode == "zero":
            port_arg = "0"
        else:
            self.port = free_port()
            port_arg = str(self.port)
        full = list(argv)
        if "{port}" in full:  # ngtcp2 puts the key and cert after the port
            full[full.index("{port}")] = port_arg
        else:
            full += [HOST, port_arg]
        if not os.path.exists(full[0]) and not shutil.which(full[0]):
            raise MeasureError(f"{full[0]} is missing")
        err = subprocess.DEVNULL if stderr_null else open(self.log, "wb")
        try:
            self.proc = spawn(full, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=err)
        finally:
            if err is not subprocess.DEVNULL:
                err.close()
        end = time.monotonic() + start_timeout
        while True:
            if self.proc.poll() is not None:
                raise MeasureError(f"{name} exited at start with {self.proc.returncode}: {tail(self.log)}")
            if port_mode == "zero":
                port = self._listening_port()
                if port:
                    self.port = port
                    break
            elif port_bound(self.port):
                break
            if time.monotonic() > end:
                self.stop()
                raise MeasureError(f"{name} did not bind within {start_timeout:.0f} s")
            time.sleep(0.01)

    def _listening_port(self):
        try:
            with open(self.log, "rb") as f:
                for line in f.read(8192).decode("utf-8", "replace").splitlines():
                    if line.startswith("listening on "):
                        return int(line.rsplit(":", 1)[1])
        except (OSError, ValueError):
            pass
        return None

    def check(self):
        if self.proc.poll() is not None:
            raise MeasureError(f"{self.name} exited with {self.proc.returncode} during the run "
                               f"(log {os.path.relpath(self.log, ROOT)}: {tail(self.log)})")

    def cpu(self):
        self.check()
        return cpu_seconds(self.proc.pid)

    def rss(self):
        self.check()
        return rss_kib(self.proc.pid)

    def stop(self, grace=5.0):
        stop(self.proc, grace)

    def counters(self):
        """Our servers' "server counters: k=v ..." line at exit, as a dict
        ({} for a server that prints none, or before it exits)."""
        try:
            with open(self.log, "rb") as f:
                f.seek(max(0, os.path.getsize(self.log) - 4000))
                lines = f.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return {}
        for line in reversed(lines):
            if line.startswith("server counters:"):
                pairs = (w.split("=", 1) for w in line.split(":", 1)[1].split() if "=" in w)
                return {k: int(v) for k, v in pairs if v.isdigit()}
        return {}


def ngtcp2_server(root):
    """Debian's ngtcp2 HTTP/3 server, serving the files under `root`."""
    for tool in ("gtlsserver", "gtlsclient"):
        if not shutil.which(tool):
            raise MeasureError(f"{tool} not installed (Debian: ngtcp2-server ngtcp2-client)")
    return Server("gtlsserver", ["gtlsserver", "-q", "-d", root, HOST, "{port}",
                                 os.path.join(EX, "cert.key"), os.path.join(EX, "cert.crt")],
                  {}, "fixed")


def read_line(proc, deadline, name):
    """One line from a child's unbuffered stdout, or MeasureError at the deadline."""
    buf = b""
    fd = proc.stdout.fileno()
    while not buf.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0:
            raise MeasureError(f"{name} did not answer in time")
        r, _, _ = select.select([fd], [], [], left)
        if r:
            chunk = os.read(fd, 1)
            if not chunk:
                raise MeasureError(f"{name} exited ({proc.poll()})")
            buf += chunk
    return buf.decode().strip()


class Peer:
    """An aioquic peer holding many connections to a server (a script run
    under target/venv): it says "ready K N" once its N connections are open
    (K of them established), then answers one line per command; EOF on its
    stdin closes everything and ends it."""

    def __init__(self, name, script_args, timeout):
        if not os.path.exists(PY):
            raise MeasureError("target/venv is missing (`make peers` installs aioquic)")
        self.name = name
        self.log = os.path.join(LOGS, f"{Server.serial:03d}-{name}.log")
        with open(self.log, "wb") as err:
            self.proc = spawn([PY] + script_args + ["--max-seconds", str(int(timeout) + 600)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, bufsize=0)
        t0 = time.monotonic()
        try:
            line = read_line(self.proc, t0 + timeout, name)
        except MeasureError as e:
            self.close()
            raise MeasureError(f"{e}: {tail(self.log)}")
        self.setup_s = time.monotonic() - t0
        parts = line.split()
        if len(parts) != 3 or parts[0] != "ready":
            self.close()
            raise MeasureError(f"{name} said {line!r}: {tail(self.log)}")
        self.ready, self.asked = int(parts[1]), int(parts[2])

    def ask(self, command):
        """The answer to one command, split into words."""
        try:
            self.proc.stdin.write(command.encode() + b"\n")
        except OSError as e:
            raise MeasureError(f"{self.name} is gone ({e}): {tail(self.log)}")
        return read_line(self.proc, time.monotonic() + 10, self.name).split()

    def close(self):
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            pass
        stop(self.proc, grace=1)


class Holder(Peer):
    """N idle QUIC connections held open by bench/idle_holder.py."""

    def __init__(self, port, n, interval, timeout):
        super().__init__("holder", [HOLDER, HOST, str(port), str(n), "--interval", str(interval)], timeout)

    def alive(self):
        try:
            return int(self.ask("count")[1])
        except (MeasureError, IndexError, ValueError):
            return -1


class SlowReaders(Peer):
    """N slow HTTP/3 downloads of `path` (bench/slow_readers.py)."""

    def __init__(self, port, n, path, rate, window, timeout):
        super().__init__("readers", [SLOW_READERS, HOST, str(port), str(n), "/" + os.path.basename(path),
                                     "--expect", path, "--rate", str(rate), "--window", str(window)],
                         timeout)

    def mark(self):
        """(reader's clock, body bytes so far, alive, done, errors, idle
        since the last mark, past their first window)."""
        words = self.ask("mark")
        try:
            if words[0] != "mark" or len(words) != 8:
                raise ValueError
            return (float(words[1]),) + tuple(int(w) for w in words[2:])
        except (IndexError, ValueError):
            raise MeasureError(f"slow readers said {' '.join(words)!r}")


def udp_socket_rows(port):
    """The /proc/net/udp (and udp6) rows of the UDP sockets bound to
    `port`, split into fields."""
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(table) as f:
                lines = f.readlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 12 and int(fields[1].rsplit(":", 1)[1], 16) == port:
                yield fields


def udp_rx_queue(port):
    """Bytes waiting in the receive queues of the UDP sockets bound to
    `port` (the rx_queue column)."""
    return sum(int(f[4].split(":")[1], 16) for f in udp_socket_rows(port))


def udp_drops(port):
    """Datagrams the kernel dropped on the UDP sockets bound to `port`
    (their receive buffers were full): the last column."""
    return sum(int(f[-1]) for f in udp_socket_rows(port))


def run_client(argv, env, timeout, running=None):
    """Runs one client; returns (seconds, exit code, stdout). `running`, a
    set, holds the client while it runs (so a caller can kill the lot)."""
    t0 = time.monotonic()
    p = spawn(argv, env=env, cwd=EX, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
              stderr=subprocess.DEVNULL)
    if running is not None:
        running.add(p)
    try:
        out, _ = p.communicate(timeout=timeout)
        return time.monotonic() - t0, p.returncode, out
    except subprocess.TimeoutExpired:
        kill_group(p)
        p.communicate()
        return time.monotonic() - t0, "timeout", b""
    finally:
        forget(p)
        if running is not None:
            running.discard(p)


def percentile(sorted_values, q):
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, int(-(-q * len(sorted_values) // 1)) - 1))
    return sorted_values[k]


# ------------------------------------------------------------------ runner

class Bench:
    def __init__(self, cfg):
        self.cfg = cfg
        self.end = time.monotonic() + cfg.deadline
        self.raw = {}  # key -> list of per-run dicts or error strings

    def remaining(self):
        return self.end - time.monotonic()

    def guard(self, need):
        if self.remaining() < need:
            raise MeasureError("skipped: BENCH_DEADLINE reached")

    def record(self, key, fn, *args):
        """Runs one measurement; keeps its result dict or its error text."""
        t0 = time.monotonic()
        try:
            res = fn(*args)
        except MeasureError as e:
            res = {"error": str(e)}
        except Exception as e:  # a bug or an OS error: keep going, say so
            res = {"error": f"{type(e).__name__}: {e}"}
        res["seconds"] = round(time.monotonic() - t0, 2)
        self.raw.setdefault(key, []).append(res)
        shown = res.get("error") or ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                              for k, v in res.items() if k not in ("seconds",))
        print(f"  [{key}] run {len(self.raw[key])}: {shown} ({res['seconds']} s)", file=sys.stderr, flush=True)
        return res

    # -- 1. handshake load

    def client_argv(self, port):
        return [os.path.join(EX, "client"), HOST, str(port)]

    def handshake_once(self, server_key, idle):
        cfg = self.cfg
        self.guard(30)
        spec = SERVERS[server_key]
        srv = Server(server_key, spec["argv"], spec["env"], spec["port"], spec.get("stderr_null", False))
        holder = None
        try:
            res = {}
            if idle:
                holder = Holder(srv.port, idle, cfg.ping_interval, timeout=max(60, idle * 0.1))
                res.update(idle_asked=idle, idle_ready=holder.ready, holder_setup_s=holder.setup_s)
                time.sleep(cfg.ping_interval)  # one full ping round: steady state
                c0, t0 = srv.cpu(), time.monotonic()
                time.sleep(cfg.upkeep_secs)
                res["upkeep_ms_per_s"] = (srv.cpu() - c0) / (time.monotonic() - t0) * 1e3
            _, rc, out = run_client(self.client_argv(srv.port), OURS_ENV, 20)
            if rc != 0 or out != b"byez\n":
                raise MeasureError(f"warm-up client failed (exit {rc}, stdout {out[:40]!r})")
            n = cfg.handshakes
            c0, t0 = srv.cpu(), time.monotonic()
            results = self.burst(srv, n)
            wall = time.monotonic() - t0
            used = srv.cpu() - c0
            ok = sorted(t for t, rc, out in results if rc == 0 and out == b"byez\n")
            failed = n - len(ok)
            res.update(cpu_us=used / n * 1e6, p50_ms=percentile(ok, 0.50) * 1e3,
                       p99_ms=percentile(ok, 0.99) * 1e3, wall_s=wall, conns_per_s=n / wall,
                       failed=failed)
            if idle:
                res["net_cpu_us"] = (used - res["upkeep_ms_per_s"] / 1e3 * wall) / n * 1e6
                res["idle_alive_after"] = holder.alive()
            if failed:
                bad = [(rc, out[:20]) for t, rc, out in results if not (rc == 0 and out == b"byez\n")][:3]
                res["failures"] = repr(bad)
            return res
        finally:
            if holder:
                holder.close()
            srv.stop()

    def burst(self, srv, n):
        """n client connections, cfg.concurrency at a time; stops early (and
        kills the clients) if the server dies or the burst overruns."""
        running = set()
        pool = ThreadPoolExecutor(self.cfg.concurrency)
        limit = max(120.0, n * 0.25)
        deadline = time.monotonic() + limit
        try:
            futures = [pool.submit(run_client, self.client_argv(srv.port), OURS_ENV, 20, running)
                       for _ in range(n)]
            while wait(futures, timeout=0.2)[1]:
                if srv.proc.poll() is not None or time.monotonic() > deadline:
                    pool.shutdown(wait=False, cancel_futures=True)
                    for p in list(running):
                        kill_group(p)
                    srv.check()
                    raise MeasureError(f"stalled: {n} connections not done after {limit:.0f} s")
            return [f.result() for f in futures]
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    # -- 2. bulk

    def bulk_ours(self, proto, mode, path, digest, discard=False):
        """Our server (--root) to our client; with `discard` the client
        writes the body to /dev/null (nothing to check but its exit
        status: it exits 0 only when the response arrived in full)."""
        self.guard(30)
        env = dict(OURS_ENV, **IO_MODES[mode])
        sname, cname = ("server", "client") if proto == "hq" else ("http3-server", "http3-client")
        srv = Server(f"{sname}-{mode}", [os.path.join(EX, sname), "--root", os.path.dirname(path)] + NO_DRAIN,
                     env, "zero")
        out = None if discard else os.path.join(WORK, "dl", f"{proto}-{mode}.out")
        try:
            argv = [os.path.join(EX, cname), "--output", out or "/dev/null", HOST, str(srv.port),
                    "/" + os.path.basename(path)]
            return self.download(srv, argv, env, out, path, digest, client_log=srv.log + ".client")
        finally:
            srv.stop()
            if out and os.path.exists(out):
                os.unlink(out)

    def bulk_ngtcp2(self, path, digest, discard=False):
        """gtlsserver -> gtlsclient; with `discard` the client is run
        without --download (it reads the body and drops it)."""
        self.guard(30)
        srv = ngtcp2_server(os.path.dirname(path))
        dl = os.path.join(WORK, "dl", "ngtcp2")
        shutil.rmtree(dl, ignore_errors=True)
        os.makedirs(dl)
        out = None if discard else os.path.join(dl, os.path.basename(path))
        try:
            argv = ["gtlsclient", "-q", "--exit-on-all-streams-close"] + ([] if discard else ["--download", dl]) + \
                   [HOST, str(srv.port), f"https://{HOST}:{srv.port}/{os.path.basename(path)}"]
            return self.download(srv, argv, {}, out, path, digest)
        finally:
            srv.stop()
            shutil.rmtree(dl, ignore_errors=True)

    def download(self, srv, argv, env, out, path, digest, client_log=None):
        """One client download of `path`; `out` None: the client discards
        the body. `client_log`: keep the client's stderr there (our
        client's "connection closed, ... sent=N" gives its datagrams)."""
        size = os.path.getsize(path)
        timeout = max(60.0, size / (8 << 20))  # at least 8 MiB/s, or it is a stall
        c0 = srv.cpu()
        t0 = time.monotonic()
        err = open(client_log, "wb") if client_log else subprocess.DEVNULL
        try:
            p = spawn(argv, env=env, cwd=EX, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        finally:
            if client_log:
                err.close()
        box = {}

        def reap():
            _, status, ru = os.wait4(p.pid, 0)
            box.update(status=status, ru=ru, t=time.monotonic())

        waiter = threading.Thread(target=reap, daemon=True)
        waiter.start()
        waiter.join(timeout)
        if waiter.is_alive():
            kill_group(p)
            waiter.join(5)
            forget(p)
            srv_cpu = srv.cpu() - c0
            got = os.path.getsize(out) if out and os.path.exists(out) else 0
            raise MeasureError(f"stalled: {argv[0].rsplit('/', 1)[-1]} not done after {timeout:.0f} s "
                               f"({got} of {size} bytes written, server used {srv_cpu:.1f} s CPU)")
        forget(p)
        p.returncode = os.waitstatus_to_exitcode(box["status"])
        wall = box["t"] - t0
        srv_cpu = srv.cpu() - c0
        cli_cpu = box["ru"].ru_utime + box["ru"].ru_stime
        if p.returncode != 0:
            raise MeasureError(f"{os.path.basename(argv[0])} exited with {p.returncode}")
        if out is not None:
            if not os.path.exists(out):
                raise MeasureError("no output file")
            got = file_digest(out)
            if got != digest:
                raise MeasureError(f"wrong bytes: {os.path.getsize(out)} bytes, sha256 {got[:16]}.. "
                                   f"(want {size} bytes, {digest[:16]}..)")
        gib = size / (1 << 30)
        res = {"gbit_s": size * 8 / wall / 1e9, "server_s_per_gib": srv_cpu / gib,
               "client_s_per_gib": cli_cpu / gib, "wall_s": wall}
        sent = client_datagrams(client_log) if client_log else None
        if sent is not None:
            res["client_datagrams_per_gib"] = sent / gib
        return res

    # -- 3. memory

    def memory_once(self, server_key, n):
        self.guard(60)
        spec = SERVERS[server_key]
        srv = Server(server_key, spec["argv"], spec["env"], spec["port"], spec.get("stderr_null", False))
        holder = None
        try:
            _, rc, out = run_client(self.client_argv(srv.port), OURS_ENV, 20)
            if rc != 0 or out != b"byez\n":
                raise MeasureError(f"warm-up client failed (exit {rc})")
            base = srv.rss()
            holder = Holder(srv.port, n, self.cfg.ping_interval, timeout=max(90, n * 0.15))
            time.sleep(max(1.0, self.cfg.ping_interval) + 0.5)  # a ping round: steady state
            held = srv.rss()
            alive = holder.alive()
            if alive < holder.ready:
                raise MeasureError(f"only {alive} of {holder.ready} idle connections were still open when "
                                   f"RSS was sampled (holder set-up took {holder.setup_s:.0f} s)")
            c0, t0 = srv.cpu(), time.monotonic()
            time.sleep(self.cfg.upkeep_secs)
            upkeep = (srv.cpu() - c0) / (time.monotonic() - t0) * 1e3
            if holder.ready == 0:
                raise MeasureError("no idle connection could be opened")
            return {"kib_per_conn": (held - base) / holder.ready, "rss_base_kib": base,
                    "rss_held_kib": held, "idle_asked": n, "idle_ready": holder.ready,
                    "idle_alive_after": holder.alive(),
                    "upkeep_ms_per_s": upkeep, "holder_setup_s": holder.setup_s}
        finally:
            if holder:
                holder.close()
            srv.stop()


    # -- 4. unknown connection IDs

    def unknown_cid_once(self, server_key):
        """bench/unknown_cid_load.py against one server: its CPU per
        datagram, and what it sent back."""
        cfg = self.cfg
        self.guard(cfg.unknown_secs + 30)
        spec = SERVERS[server_key]
        srv = Server(server_key, spec["argv"], spec["env"], spec["port"], spec.get("stderr_null", False))
        try:
            drops0, c0 = udp_drops(srv.port), srv.cpu()
            p = spawn([sys.executable, UNKNOWN_CID_LOAD, HOST, str(srv.port), "--rate", str(cfg.unknown_pps),
                       "--seconds", str(cfg.unknown_secs)],
                      stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            try:
                out, err = p.communicate(timeout=cfg.unknown_secs + 20)
            except subprocess.TimeoutExpired:
                kill_group(p)
                p.communicate()
                raise MeasureError("the unknown-CID load did not finish in time")
            finally:
                forget(p)
            used = srv.cpu() - c0
            dropped = udp_drops(srv.port) - drops0
        finally:
            srv.stop()
        if p.returncode != 0:
            raise MeasureError(f"unknown_cid_load.py exited with {p.returncode}: "
                               f"{err.decode(errors='replace')[-300:]}")
        load = json.loads(out.decode().splitlines()[-1])
        received = load["sent"] - dropped
        if received <= 0:
            raise MeasureError("the server received none of the datagrams")
        res = {"cpu_ns": used / received * 1e9, "pps": load["rate"], "sent": load["sent"],
               "kernel_drops": dropped, "max_catch_up": load["max_catch_up"], "replies": load["replies"],
               "vn": load["vn"], "short": load["short"], "other": load["other"]}
        counters = srv.counters()
        for k in ("stateless_resets", "dropped_rate_limited", "dropped_unknown"):
            if k in counters:
                res[k] = counters[k]
        return res

    def unknown_burst_once(self, server_key):
        """A burst of cfg.unknown_burst unknown-CID datagrams queued on one
        server's socket while it is stopped (SIGSTOP), then drained in one
        go (SIGCONT): its CPU per datagram with the receive calls batched
        and no wake-up per datagram, repeated cfg.unknown_bursts times."""
        cfg = self.cfg
        self.guard(30)
        spec = SERVERS[server_key]
        srv = Server(server_key, spec["argv"], spec["env"], spec["port"], spec.get("stderr_null", False))
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setblocking(False)
        used = received = queued_bytes = 0
        try:
            pid = srv.proc.pid
            for _ in range(cfg.unknown_bursts):
                junk = [unknown_cid_load.packet(60, 100) for _ in range(cfg.unknown_burst)]
                os.kill(pid, signal.SIGSTOP)
                try:
                    drops0 = udp_drops(srv.port)
                    for d in junk:
                        sock.sendto(d, (HOST, srv.port))
                    queued_bytes = max(queued_bytes, udp_rx_queue(srv.port))
                    c0 = srv.cpu()
                finally:
                    os.kill(pid, signal.SIGCONT)
                deadline = time.monotonic() + 10
                while udp_rx_queue(srv.port) and time.monotonic() < deadline:
                    time.sleep(0.002)
                # The queue is empty: let the last batch finish (its CPU
                # stops moving) before reading the total.
                c1 = srv.cpu()
                while time.monotonic() < deadline:
                    time.sleep(0.01)
                    c0_ = c1
                    c1 = srv.cpu()
                    if c1 == c0_:
                        break
                used += c1 - c0
                received += cfg.unknown_burst - (udp_drops(srv.port) - drops0)
                while True:  # the server's answers: read and forgotten
                    try:
                        sock.recv(2048)
                    except (BlockingIOError, InterruptedError, ConnectionRefusedError):
                        break
        finally:
            sock.close()
            srv.stop()
        if received <= 0:
            raise MeasureError("the server received none of the bursts' datagrams")
        return {"cpu_ns": used / received * 1e9, "received_per_burst": received / cfg.unknown_bursts,
                "queued_kib": queued_bytes / 1024}

    def unknown_inproc_once(self):
        """benches/unknown_cid_inproc.rs: our code's own cost per unknown-CID
        datagram, handed to a server in process (no socket, no loop)."""
        self.guard(60)
        if not os.path.exists(UNKNOWN_INPROC):
            raise MeasureError("the in-process unknown-CID bench is missing (`make bench` builds it)")
        p = subprocess.run([UNKNOWN_INPROC, str(self.cfg.unknown_inproc)], capture_output=True, timeout=60)
        if p.returncode != 0:
            raise MeasureError(f"unknown_cid_inproc exited with {p.returncode}: "
                               f"{p.stderr.decode(errors='replace')[-300:]}")
        return json.loads(p.stdout.decode().splitlines()[-1])

    # -- 5. slow transfers

    def slow_once(self, kind, path):
        """cfg.slow_conns slow readers (bench/slow_readers.py) downloading
        `path` from our http3-server or ngtcp2's: the server's CPU per GiB
        delivered over cfg.slow_secs once every transfer is running."""
        cfg = self.cfg
        n = cfg.slow_conns
        setup = max(60.0, n * 0.1)
        self.guard(setup + cfg.slow_secs + 30)
        root = os.path.dirname(path)
        if kind == "ours":
            srv = Server("http3-server", [os.path.join(EX, "http3-server"), "--root", root] + NO_DRAIN,
                         OURS_ENV, "zero")
        else:
            srv = ngtcp2_server(root)
        readers = None
        try:
            readers = SlowReaders(srv.port, n, path, cfg.slow_rate, cfg.slow_window, setup)
            ready_at = time.monotonic()  # CLOCK_MONOTONIC: the readers' clock too
            # The requests go out within a second of "ready", and each gets
            # a first window at once: a burst the readers take a while to
            # digest. Measuring starts a second after every transfer is past
            # it.
            warm_by = time.monotonic() + SLOW_WARM_UP_SECS
            while True:
                time.sleep(0.5)
                _, _, alive, _, _, _, warm = readers.mark()
                if warm >= alive or time.monotonic() > warm_by:
                    break
            time.sleep(1.0)
            (t0, b0, *_), c0 = readers.mark(), srv.cpu()
            time.sleep(cfg.slow_secs)
            (t1, b1, alive, done, bad, idle, _), c1 = readers.mark(), srv.cpu()
            if bad:
                raise MeasureError(f"{bad} transfer error(s): {tail(readers.log, 3)}")
            got = b1 - b0
            if got <= 0:
                raise MeasureError(f"nothing delivered in {cfg.slow_secs:g} s: {tail(readers.log, 3)}")
            res = {"s_per_gib": (c1 - c0) / (got / (1 << 30)), "mib_s": got / (t1 - t0) / (1 << 20),
                   "asked_mib_s": readers.ready * cfg.slow_rate / (1 << 20),
                   "server_cpu_ms_per_s": (c1 - c0) / (t1 - t0) * 1e3, "conns_asked": n,
                   "conns_ready": readers.ready, "conns_alive_after": alive, "conns_idle": idle,
                   "bodies_done": done, "setup_s": readers.setup_s, "warm_up_s": t0 - ready_at}
            if readers.ready < n or alive < readers.ready or idle:
                res["warning"] = (f"{n} connections asked, {readers.ready} opened, {alive} alive at the "
                                  f"end, {idle} received nothing in the measured {cfg.slow_secs:g} s "
                                  f"({tail(readers.log, 1) or 'no reason given'})")
            return res
        finally:
            if readers:
                readers.close()
            srv.stop()

    # -- 6. the floor: quiche's own cost, and ours against it

    def floor_once(self):
        """One run of target/release/floor (bench/floor): quiche client and
        server in one process, datagrams passed in memory; each side's
        CPU apart. The figures of its JSON, flattened."""
        cfg = self.cfg
        self.guard(60)
        d = self.floor_json(["--handshakes", str(cfg.handshakes), "--bulk-mib", str(cfg.bulk_mib),
                             "--aes-mib", str(cfg.aes_mib)])
        hs, hr, bk, rq, ae = d["handshake"], d["handshake_retry"], d["bulk"], d["requests"], d["aes128gcm"]
        gib = bk["bytes"] / (1 << 30)
        return {"hs_server_us": hs["server_us"], "hs_client_us": hs["client_us"],
                "hsr_server_us": hr["server_us"], "hsr_client_us": hr["client_us"],
                "bulk_server_s_per_gib": bk["server_s_per_gib"], "bulk_client_s_per_gib": bk["client_s_per_gib"],
                "bulk_client_datagrams_per_gib": bk["client_packets"] / gib,
                "bulk_gbit_s_in_memory": bk["gbit_s_in_memory"],
                "req_server_us": rq["server_us"], "req_client_us": rq["client_us"],
                "req_server_pkts_sent": rq.get("server_packets_sent", 0) / rq["requests"],
                "req_server_pkts_recv": rq.get("server_packets_recv", 0) / rq["requests"],
                "aes_seal_s_per_gib": ae["seal_s_per_gib"], "aes_open_s_per_gib": ae["open_s_per_gib"]}

    def floor_json(self, args):
        """One run of the floor with `args` after the request scenario's
        settings (shared by every floor run, so its rows compare): its
        JSON, or MeasureError with the floor's reason."""
        cfg = self.cfg
        if not os.path.exists(FLOOR):
            raise MeasureError("target/release/floor is missing (`make bench` builds it)")
        argv = [FLOOR, "--requests", str(cfg.req_requests), "--conns", str(cfg.req_conns), "--streams",
                str(cfg.req_streams), "--body", str(cfg.req_body), "--batch", str(cfg.floor_batch)] + args
        rc, out, err = run_floor(argv, 300)
        try:
            d = json.loads(out.decode())
        except ValueError:
            raise MeasureError(f"floor exited with {rc}: {err.decode(errors='replace')[-300:]}")
        bad = [f"{k}: {v['error']}" for k, v in d.items() if isinstance(v, dict) and "error" in v]
        if bad:
            raise MeasureError("floor: " + "; ".join(bad))
        return d

    def floor_trip_once(self):
        """The floor's request scenario with every datagram to its server
        also sent and received on a loopback socket, FLOOR_TRIP_GROUP at a
        time, the trips' own CPU left out of the server's figure: what the
        kernel's path between quiche's calls does to quiche's own cost."""
        self.guard(60)
        rq = self.floor_json(["--only", "requests", "--socket-trip", str(FLOOR_TRIP_GROUP)])["requests"]
        return {"server_us": rq["server_us"], "client_us": rq["client_us"]}

    def req_load(self, srv, args, settle=0.0, on_progress=None, timeout=120.0):
        """bench/req_load.c (our client API) against `srv`, paused after
        its warm-up and after the measured phase: the server's CPU and RSS
        at both marks (`settle` seconds after each, so closing
        connections are done), and req_load's own figures."""
        if not os.path.exists(REQ_LOAD):
            raise MeasureError("target/bench/req_load is missing (`make bench` builds it)")
        log = srv.log + ".load"
        with open(log, "wb") as err:
            p = spawn([REQ_LOAD] + args + ["--pause", HOST, str(srv.port)], cwd=EX, stdin=subprocess.PIPE,
                      stdout=subprocess.PIPE, stderr=err, bufsize=0)
        deadline = time.monotonic() + timeout
        try:
            def line():
                try:
                    return read_line(p, deadline, "req_load")
                except MeasureError as e:
                    srv.check()
                    raise MeasureError(f"{e}: {tail(log, 2)}")
            first = line()
            if first != "warm":
                raise MeasureError(f"req_load said {first!r}: {tail(log, 2)}")
            time.sleep(settle)
            c0, rss0 = srv.cpu(), srv.rss()
            p.stdin.write(b"go\n")
            while True:
                got = line()
                if got.startswith("progress ") and on_progress:
                    on_progress(int(got.split()[1]))
                elif got.startswith("done "):
                    break
            time.sleep(settle)
            c1, rss1 = srv.cpu(), srv.rss()
            res = json.loads(got[5:])
            p.stdin.write(b"go\n")
            p.stdin.close()
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                raise MeasureError("req_load did not close its connections within 30 s")
            if res["failed"]:
                raise MeasureError(f"{res['failed']} of {res['requests']} requests failed: {tail(log, 2)}")
            res.update(server_cpu=c1 - c0, rss_start_kib=rss0, rss_end_kib=rss1)
            return res
        finally:
            kill_group(p)
            forget(p)

    def ours_handshake_once(self, retry):
        """HTTP/3 handshakes (one GET / each, `byez`, close) from req_load,
        cfg.concurrency at a time, to our http3-server: CPU per connection
        of the server and of req_load."""
        cfg = self.cfg
        self.guard(60)
        argv = [os.path.join(EX, "http3-server")] + NO_DRAIN + ([] if retry else ["--no-retry"])
        srv = Server("http3-server-hs" + ("-retry" if retry else ""), argv, FLOOR_ENV, "zero")
        try:
            n = cfg.handshakes
            r = self.req_load(srv, ["--handshakes", str(n), "--concurrency", str(cfg.concurrency), "--path", "/"],
                              settle=0.3, timeout=60 + n * 0.1)
            return {"server_us": r["server_cpu"] / n * 1e6, "client_us": r["cpu_s"] / n * 1e6,
                    "conns_per_s": n / r["wall_s"]}
        finally:
            srv.stop()

    def ours_requests_once(self, kind):
        """cfg.req_conns connections with cfg.req_streams requests in flight
        each (req_load), cfg.req_body-byte responses: from a C request
        callback (bench/req_server.c) or from http3-server's built-in file
        responder. CPU per request of the server and of req_load."""
        cfg = self.cfg
        self.guard(60)
        if kind == "callback":
            if not os.path.exists(REQ_SERVER):
                raise MeasureError("target/bench/req_server is missing (`make bench` builds it)")
            srv = Server("req_server", [REQ_SERVER, "--body", str(cfg.req_body)], FLOOR_ENV, "zero")
            path = "/req"
        else:
            f = req_file(cfg.req_body)
            srv = Server("http3-server-req", [os.path.join(EX, "http3-server"), "--root", os.path.dirname(f)]
                         + NO_DRAIN, FLOOR_ENV, "zero")
            path = "/" + os.path.basename(f)
        try:
            n = cfg.req_requests
            r = self.req_load(srv, ["--conns", str(cfg.req_conns), "--inflight", str(cfg.req_streams),
                                    "--warmup", "20", "--requests", str(n), "--path", path],
                              timeout=60 + n * 0.002)
            # The client's packets are the server's, the other way round.
            return {"server_us": r["server_cpu"] / n * 1e6, "client_us": r["cpu_s"] / n * 1e6,
                    "req_per_s": n / r["wall_s"], "server_pkts_sent": r.get("packets_recv", 0) / n,
                    "server_pkts_recv": r.get("packets_sent", 0) / n}
        finally:
            srv.stop()

    # -- instructions (callgrind)

    def instructions_once(self, what):
        """Instructions (callgrind's Ir: user space only, the same count on
        every run) of one server per request or per handshake, or of the
        sending or receiving side per MiB of a bulk body: ours under
        callgrind (against req_load, or our client or server), and the
        floor's turns of the same side (the other side's are not
        collected). Each side runs twice, n and n / 5, and the difference
        is divided by 4n / 5, so that what does not grow with n (start-up,
        certificates, the warm-up, the handshake) drops out."""
        cfg = self.cfg
        if not shutil.which("valgrind"):
            raise MeasureError("valgrind is missing")
        if what.startswith("bulk-"):
            return self.bulk_instructions(what == "bulk-send")
        if what == "requests":
            n = cfg.ir_requests
            floor_args = ["--only", "requests", "--requests", "{n}", "--conns", str(cfg.req_conns),
                          "--streams", str(cfg.req_streams), "--body", str(cfg.req_body)]
            server = [REQ_SERVER, "--body", str(cfg.req_body)]
            load = ["--conns", str(cfg.req_conns), "--inflight", str(cfg.req_streams), "--warmup", "20",
                    "--requests", "{n}", "--path", "/req"]
        else:  # "handshake" or "handshake-retry"
            n = cfg.ir_handshakes
            retry = what == "handshake-retry"
            floor_args = ["--only", "handshake_retry" if retry else "handshake", "--handshakes", "{n}"]
            server = [os.path.join(EX, "http3-server")] + ([] if retry else ["--no-retry"]) + NO_DRAIN
            load = ["--handshakes", "{n}", "--concurrency", str(cfg.concurrency), "--path", "/"]
        self.guard(120 + n * (0.01 if what == "requests" else 0.5))
        counts = {}
        for size in (n, n // 5):
            fill = lambda argv: [a.replace("{n}", str(size)) for a in argv]
            out = os.path.join(WORK, f"callgrind-floor-{what}-{size}.out")
            counts[("floor", size)] = floor_instructions(out, "server_turn", fill(floor_args))
            out = os.path.join(WORK, f"callgrind-ours-{what}-{size}.out")
            srv = Server(f"callgrind-{what}", callgrind(out) + server, FLOOR_ENV, "zero", start_timeout=60)
            try:
                self.req_load(srv, fill(load), settle=0.3, timeout=120 + size * 0.5)
            finally:
                srv.stop(grace=60)
            counts[("ours", size)] = callgrind_total(out)
        return differenced(counts, n)

    def bulk_instructions(self, sending):
        """Instructions per MiB of one response body: with `sending`, of
        `http3-server --no-retry --root` under callgrind against the
        floor's server turns, otherwise of `http3-client --output
        /dev/null` against the floor's client turns. No Retry: the floor's
        bulk connection has none, and quiche copies the transport
        parameters (a Retry's CID among them) at every send."""
        n = self.cfg.ir_bulk_mib
        self.guard(120 + n * 3.0)
        side = "send" if sending else "recv"
        data = os.path.join(WORK, "ir-bulk")
        counts = {}
        for size in (n, n // 5):
            path = random_file(os.path.join(data, f"{size}MiB.bin"), size)
            out = os.path.join(WORK, f"callgrind-floor-bulk-{side}-{size}.out")
            counts[("floor", size)] = floor_instructions(
                out, "server_turn" if sending else "client_turn", ["--only", "bulk", "--bulk-mib", str(size)])
            out = os.path.join(WORK, f"callgrind-ours-bulk-{side}-{size}.out")
            under = callgrind(out)
            srv = Server(f"callgrind-bulk-{side}", (under if sending else [])
                         + [os.path.join(EX, "http3-server"), "--no-retry", "--root", data] + NO_DRAIN,
                         FLOOR_ENV, "zero", start_timeout=60)
            try:
                _, rc, _ = run_client((under if not sending else []) +
                                      [os.path.join(EX, "http3-client"), "--output", "/dev/null", HOST,
                                       str(srv.port), "/" + os.path.basename(path)],
                                      FLOOR_ENV, 120 + size * 3.0)
                if rc != 0:
                    raise MeasureError(f"http3-client exited with {rc} fetching {size} MiB")
            finally:
                srv.stop(grace=60)
            counts[("ours", size)] = callgrind_total(out)
        return differenced(counts, n)

    # -- 7. soak

    def soak_once(self):
        """cfg.soak_requests requests over cfg.soak_conns long-lived
        connections to bench/req_server.c (a C request callback): server
        RSS after the warm-up and at the end (before the connections
        close), and along the way."""
        cfg = self.cfg
        n = cfg.soak_requests
        self.guard(60 + n * 0.0002)
        if not os.path.exists(REQ_SERVER):
            raise MeasureError("target/bench/req_server is missing (`make bench` builds it)")
        srv = Server("req_server-soak", [REQ_SERVER, "--body", str(cfg.req_body)], FLOOR_ENV, "zero")
        series = []
        try:
            step = max(1, n // 5)
            r = self.req_load(srv, ["--conns", str(cfg.soak_conns), "--inflight", str(cfg.req_streams),
                                    "--warmup", str(SOAK_WARMUP), "--requests", str(n), "--progress", str(step),
                                    "--path", "/soak"],
                              on_progress=lambda done: series.append((done, srv.rss())),
                              timeout=120 + n * 0.002)
            start, end = r["rss_start_kib"], r["rss_end_kib"]
            # The slope past the first fifth (what is left of warming up).
            d0, k0 = series[0] if series else (0, start)
            slope = (end - k0) * 1024 / (n - d0) if n > d0 else 0.0
            return {"rss_start_kib": start, "rss_end_kib": end, "requests": n,
                    "growth_bytes_per_request": (end - start) * 1024 / n, "slope_bytes_per_request": slope,
                    "server_us": r["server_cpu"] / n * 1e6, "wall_s": r["wall_s"],
                    "series": " ".join(f"{d}:{k}" for d, k in series)}
        finally:
            srv.stop()


    # -- 8. workers (--workers N): one server per thread on one port

    def workers_server(self, n, extra=()):
        """Our hq server with `n` workers (n = 1: the single server,
        exactly as in the other rows, no worker group)."""
        argv = [os.path.join(EX, "server")] + (["--workers", str(n)] if n > 1 else []) + list(extra) + NO_DRAIN
        return Server(f"server-w{n}", argv, FLOOR_ENV, "zero")

    def worker_split(self, srv, before):
        """Each worker's CPU seconds since `before`, and the busiest one's
        share of their sum (1 for one worker)."""
        now = worker_cpu(srv.proc.pid)
        used = {w: now.get(w, 0.0) - before.get(w, 0.0) for w in now}
        total = sum(used.values())
        share = max(used.values()) / total if len(used) > 1 and total > 0 else 1.0
        return used, share

    def workers_handshake_once(self, n):
        """cfg.handshakes connections of our `client` (cfg.concurrency at a
        time) against `n` workers: connections a second, server CPU per
        connection, and how evenly the workers shared it."""
        self.guard(30)
        srv = self.workers_server(n)
        try:
            _, rc, out = run_client(self.client_argv(srv.port), OURS_ENV, 20)
            if rc != 0 or out != b"byez\n":
                raise MeasureError(f"warm-up client failed (exit {rc})")
            w0, c0, t0 = worker_cpu(srv.proc.pid), srv.cpu(), time.monotonic()
            results = self.burst(srv, self.cfg.handshakes)
            wall = time.monotonic() - t0
            used = srv.cpu() - c0
            per, share = self.worker_split(srv, w0)
            failed = sum(1 for _, rc, out in results if not (rc == 0 and out == b"byez\n"))
            res = {"conns_per_s": len(results) / wall, "cpu_us": used / len(results) * 1e6, "wall_s": wall,
                   "busiest_share": share, "worker_cpu_s": [round(v, 3) for _, v in sorted(per.items())],
                   "failed": failed}
            if failed:
                res["failures"] = repr([(rc, out[:20]) for _, rc, out in results
                                        if not (rc == 0 and out == b"byez\n")][:3])
            return res
        finally:
            srv.stop()

    def workers_bulk_once(self, n, path):
        """cfg.workers_downloads concurrent downloads of `path` (our client,
        body to /dev/null) from `n` workers: aggregate Gbit/s, server CPU
        per GiB, and the workers' balance."""
        self.guard(60)
        k = self.cfg.workers_downloads
        srv = self.workers_server(n, ["--root", os.path.dirname(path)])
        size = os.path.getsize(path)
        argv = [os.path.join(EX, "client"), "--output", "/dev/null", HOST, str(srv.port), "/" + os.path.basename(path)]
        try:
            w0, c0, t0 = worker_cpu(srv.proc.pid), srv.cpu(), time.monotonic()
            timeout = max(60.0, k * size / (8 << 20))
            with ThreadPoolExecutor(k) as pool:
                runs = list(pool.map(lambda _: run_client(argv, OURS_ENV, timeout), range(k)))
            wall = time.monotonic() - t0
            bad = [rc for _, rc, _ in runs if rc != 0]
            if bad:
                raise MeasureError(f"{len(bad)} of {k} downloads failed (exit {bad[0]})")
            used = srv.cpu() - c0
            per, share = self.worker_split(srv, w0)
            gib = k * size / (1 << 30)
            return {"gbit_s": k * size * 8 / wall / 1e9, "server_s_per_gib": used / gib, "wall_s": wall,
                    "busiest_share": share, "worker_cpu_s": [round(v, 3) for _, v in sorted(per.items())]}
        finally:
            srv.stop()


def worker_cpu(pid):
    """CPU seconds of each worker thread of process `pid` (threads named
    quiche-ev-wN by the library), by worker index; {} without workers."""
    out = {}
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/comm") as f:
                    name = f.read().strip()
                if not name.startswith("quiche-ev-w"):
                    continue
                if CPU_SOURCE == "schedstat":
                    with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                        secs = int(f.read().split()[0]) / 1e9
                else:
                    with open(f"/proc/{pid}/task/{tid}/stat") as f:
                        fields = f.read().rsplit(")", 1)[1].split()
                    secs = (int(fields[11]) + int(fields[12])) / TICK
                out[int(name[len("quiche-ev-w"):])] = secs
            except (FileNotFoundError, ProcessLookupError, ValueError, IndexError):
                continue
    except FileNotFoundError:
        raise MeasureError(f"process {pid} is gone")
    return out


def client_datagrams(log):
    """The datagrams our client sent, from its "connection closed, recv=...
    sent=N ..." line (None when there is none)."""
    try:
        with open(log, "rb") as f:
            for line in f.read().decode("utf-8", "replace").splitlines():
                if line.startswith("connection closed,") and " sent=" in line:
                    return int(line.split(" sent=", 1)[1].split()[0])
    except (OSError, ValueError, IndexError):
        pass
    return None


def file_digest(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ------------------------------------------------------------------- table

class Table:
    def __init__(self):
        self.rows = []

    def add(self, section, what, unit, better, ours, base, ours_label, base_label, field, note=""):
        """ours/base: lists of per-run dicts (or errors) for the two sides."""
        o, onote = summarize(ours, field)
        b, bnote = summarize(base, field)
        notes = [n for n in (note, onote and f"ours: {onote}", bnote and f"baseline: {bnote}") if n]
        ratio = o / b if (o is not None and b) else None
        self.rows.append(dict(section=section, what=what, unit=unit, better=better, ours=o, base=b,
                              ratio=ratio, ours_label=ours_label, base_label=base_label,
                              ours_runs=values(ours, field), base_runs=values(base, field),
                              note="; ".join(notes)))

    def render_text(self):
        w = max([len(r["what"]) + len(r["unit"]) + 3 for r in self.rows] + [20])
        head = f"{'#':<3} {'measurement [unit]':<{w}} {'ours':>9} {'baseline':>9} {'ratio':>6}  better  note"
        lines = [head, "-" * len(head)]
        for i, r in enumerate(self.rows, 1):
            lines.append(f"{i:<3} {r['what'] + ' [' + r['unit'] + ']':<{w}} {fmt(r['ours']):>9} "
                         f"{fmt(r['base']):>9} {fmt(r['ratio'], 2):>6}  {r['better']:<6}  {r['note']}")
        return "\n".join(lines)

    def render_md(self):
        out = ["| # | measurement | unit | ours | baseline | ratio ours/baseline | better | runs (ours / baseline) | note |",
               "|---|---|---|---:|---:|---:|---|---|---|"]
        for i, r in enumerate(self.rows, 1):
            runs = f"{' '.join(fmt(v) for v in r['ours_runs'])} / {' '.join(fmt(v) for v in r['base_runs'])}"
            out.append(f"| {i} | {r['what']} | {r['unit']} | {fmt(r['ours'])} | {fmt(r['base'])} | "
                       f"**{fmt(r['ratio'], 2)}** | {r['better']} | {runs} | {r['note'].replace('|', '/')} |")
        return "\n".join(out)


def values(runs, field):
    return [r[field] for r in runs if "error" not in r and r.get(field) is not None]


def summarize(runs, field):
    """Median of the successful runs, and a note on failures."""
    ok = values(runs, field)
    errors = [r["error"] for r in runs if "error" in r]
    note = ""
    if errors:
        note = f"{len(errors)}/{len(runs)} runs failed: {errors[0]}"
    fails = sum(r.get("failed", 0) for r in runs if "error" not in r)
    if fails:
        note = (note + "; " if note else "") + f"{fails} client(s) failed in total: " + \
            next(r["failures"] for r in runs if r.get("failures"))
    short = [r for r in runs if "error" not in r and r.get("idle_ready") is not None
             and (r.get("idle_alive_after", 0) < r["idle_ready"] or r["idle_ready"] < r["idle_asked"])]
    if short:
        r = short[0]
        note = (note + "; " if note else "") + \
            f"idle connections (run {runs.index(r) + 1}): {r['idle_asked']} asked, {r['idle_ready']} " \
            f"opened, {r.get('idle_alive_after')} alive at the end"
    warned = [(i, r["warning"]) for i, r in enumerate(runs, 1) if "error" not in r and r.get("warning")]
    if warned:
        i, w = warned[0]
        note = (note + "; " if note else "") + f"run {i}: {w}"
    return (statistics.median(ok) if ok else None), note


def fmt(v, digits=None):
    if v is None:
        return "n/a"
    if digits is not None:
        return f"{v:.{digits}f}"
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


# -------------------------------------------------------------------- main

def unknown_cid_note(cfg, ours, base):
    """What each server sent back to the unknown-CID load, and the rate the
    load achieved (medians of the runs)."""
    def med(runs, field):
        v = values(runs, field)
        return statistics.median(v) if v else None

    def answers(runs):
        replies = med(runs, "replies")
        if replies is None:
            return "n/a"
        kinds = [(med(runs, "vn"), "Version Negotiation, version field 0"),
                 (med(runs, "short"), "short header: Stateless Reset"), (med(runs, "other"), "other")]
        text = f"{replies:.0f} sent back"
        if replies:
            text += f" ({', '.join(f'{n:.0f} {what}' for n, what in kinds if n)})"
        if med(runs, "stateless_resets") is not None:
            text += (f", its counters say {med(runs, 'stateless_resets'):.0f} stateless_resets, "
                     f"{med(runs, 'dropped_rate_limited'):.0f} dropped_rate_limited")
        return text

    def achieved(runs):
        pps, drops = med(runs, "pps"), med(runs, "kernel_drops")
        if pps is None:
            return "n/a"
        return f"{pps:.0f} pps" + (f", {drops:.0f} dropped by the kernel" if drops else "")

    sent = med(ours + base, "sent")
    return (f"per run of {sent or 0:.0f} datagrams: ours {answers(ours)}; baseline {answers(base)}; "
            f"load achieved: ours {achieved(ours)}, baseline {achieved(base)} "
            f"(asked {cfg.unknown_pps})")


def run_floor(argv, timeout):
    """Runs the floor (`argv`: it, or a tool wrapping it) to its end:
    (exit status, stdout, stderr)."""
    p = spawn(argv, cwd=EX, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(p)
        p.communicate()
        raise MeasureError(f"the floor did not finish in {timeout} s")
    finally:
        forget(p)
    return p.returncode, out, err


def floor_instructions(out, turn, args):
    """The instructions of one side's turns (`turn`: `server_turn` or
    `client_turn` of floor::pair::Pair) in a floor run under callgrind."""
    rc, _, err = run_floor(callgrind(out) + [f"--toggle-collect=floor::pair::Pair::{turn}", FLOOR] + args, 600)
    if rc != 0:
        raise MeasureError(f"the floor under callgrind exited with {rc}: {err.decode(errors='replace')[-300:]}")
    return callgrind_total(out)


def callgrind(out):
    """The command prefix that runs a program under callgrind, its
    profile to `out`."""
    return ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]


def differenced(counts, n):
    """Per unit, ours and the floor's: `counts[(who, size)]` of runs of n
    and n // 5 units, their difference over the units between them (what
    does not grow with n drops out)."""
    per = lambda who: (counts[(who, n)] - counts[(who, n // 5)]) / (n - n // 5)
    return {"ours_ir": per("ours"), "floor_ir": per("floor")}


def callgrind_total(path):
    """The instructions a callgrind profile counted (its `totals:` line)."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(("totals:", "summary:")):
                    return int(line.split()[1])
    except OSError as e:
        raise MeasureError(f"no callgrind profile {path}: {e}")
    raise MeasureError(f"callgrind profile {path} has no totals")


def renamed(runs, src, dst):
    """Per-run dicts with field `src` renamed `dst` (errors kept), so two
    figures of different names can share a row."""
    return [r if "error" in r else dict(r, **{dst: r.get(src)}) for r in runs]


def floor_rows(table, cfg, raw):
    """The rows of ours against the floor (bench/floor), and of our bulk
    costs against encryption alone."""
    fl = raw["floor/quiche"]
    fl_label = "floor: quiche client + server in one process, datagrams in memory (bench/floor)"
    hs, hsr = raw["floor/ours/hs"], raw["floor/ours/hs_retry"]
    for ours, pre, name in ((hs, "hs", "no retry"), (hsr, "hsr", "with retry")):
        for side in ("server", "client"):
            table.add("floor", f"floor hs h3 ({name}): {side} CPU/conn, ours vs floor", "us", "lower",
                      ours, renamed(fl, f"{pre}_{side}_us", f"{side}_us"),
                      f"ours http3-server{'' if name == 'with retry' else ' --no-retry'} <- req_load",
                      fl_label, f"{side}_us",
                      "ours: one GET / (byez) per connection from bench/req_load.c, "
                      f"{cfg.concurrency} at a time; client CPU: the whole req_load process" if side == "client"
                      else "")
    bk = raw["floor/ours/bulk"]
    med = lambda runs, f: statistics.median(values(runs, f)) if values(runs, f) else float("nan")
    acks = (f"client datagrams (ACKs) per GiB: ours {med(bk, 'client_datagrams_per_gib'):.0f}, floor "
            f"{med(fl, 'bulk_client_datagrams_per_gib'):.0f} (receive batches of {cfg.floor_batch})")
    for side, role in (("server", "sending"), ("client", "receiving")):
        table.add("floor", f"floor bulk h3 {cfg.bulk_mib} MiB, discarded: {role} side CPU/GiB, ours vs floor",
                  "s/GiB", "lower", bk, renamed(fl, f"bulk_{side}_s_per_gib", f"{side}_s_per_gib"),
                  f"ours http3-server --root -> http3-client --output /dev/null", fl_label,
                  f"{side}_s_per_gib", acks if side == "client" else "")
    req = f"floor requests {cfg.req_body} B, {cfg.req_conns} conns x {cfg.req_streams} streams"
    for key, who in (("req_callback", "C callback (bench/req_server.c)"),
                     ("req_builtin", "built-in file responder (http3-server --root)")):
        ours = raw[f"floor/ours/{key}"]
        pkts = (f"server packets per request, sent / received: ours {med(ours, 'server_pkts_sent'):.2f} / "
                f"{med(ours, 'server_pkts_recv'):.2f}, floor {med(fl, 'req_server_pkts_sent'):.2f} / "
                f"{med(fl, 'req_server_pkts_recv'):.2f}")
        table.add("floor", f"{req}: server CPU/request, ours {who} vs floor", "us", "lower",
                  ours, renamed(fl, "req_server_us", "server_us"), f"ours {who}", fl_label, "server_us", pkts)
    if "floor/quiche_trip" in raw:
        table.add("floor", f"{req}: server CPU/request, floor with the socket path between its calls vs floor",
                  "us", "lower", raw["floor/quiche_trip"], renamed(fl, "req_server_us", "server_us"),
                  f"floor --socket-trip {FLOOR_TRIP_GROUP}", fl_label, "server_us",
                  f"each datagram to the floor's server also sent and received on a loopback socket, "
                  f"{FLOOR_TRIP_GROUP} at a time, the trips' CPU left out: quiche's own calls after the kernel's")
    table.add("floor", f"{req}: client CPU/request, ours req_load vs floor", "us", "lower",
              raw["floor/ours/req_callback"], renamed(fl, "req_client_us", "client_us"),
              "ours bench/req_load.c (against req_server)", fl_label, "client_us")
    for side, role, aes, what in (("server", "sending", "aes_seal_s_per_gib", "seal"),
                                  ("client", "receiving", "aes_open_s_per_gib", "open")):
        note = (f"AES-128-GCM {what} of 1313-byte payloads in 1350-byte packets, BoringSSL in process "
                f"(quiche's calls); the floor's {role} side: {med(fl, f'bulk_{side}_s_per_gib'):.3f} s/GiB")
        table.add("floor", f"bulk h3 {role} side CPU/GiB: ours vs AES-128-GCM {what} alone", "s/GiB", "lower",
                  bk, renamed(fl, aes, f"{side}_s_per_gib"), "ours (discarded)", "encryption alone",
                  f"{side}_s_per_gib", note)


def bulk_file(cfg):
    """The bulk rows' file of random bytes (kept between runs)."""
    data = os.path.join(WORK, "data")
    os.makedirs(data, exist_ok=True)
    path = os.path.join(data, f"bulk-{cfg.bulk_mib}MiB.bin")
    for old in os.listdir(data):  # files of other sizes from earlier runs
        if old != os.path.basename(path):
            os.unlink(os.path.join(data, old))
    return random_file(path, cfg.bulk_mib)


def random_file(path, mib):
    """`path`, made of `mib` MiB of random bytes unless it has that size
    already (kept between runs)."""
    if not os.path.exists(path) or os.path.getsize(path) != mib << 20:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path + ".tmp", "wb") as f:
            for _ in range(mib):
                f.write(os.urandom(1 << 20))
        os.replace(path + ".tmp", path)
    return path


def req_file(size):
    """The file http3-server --root serves in the request rows: `size`
    random bytes, alone in its folder."""
    d = os.path.join(WORK, "req")
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, f"req-{size}.bin")
    for old in os.listdir(d):
        if old != os.path.basename(path):
            os.unlink(os.path.join(d, old))
    if not os.path.exists(path) or os.path.getsize(path) != size:
        with open(path + ".tmp", "wb") as f:
            f.write(os.urandom(size))
        os.replace(path + ".tmp", path)
    return path


def slow_file():
    """The file the slow readers download (1 MiB of random bytes, kept
    between runs): larger than a reader takes in a run, and fetched again
    if one does finish it."""
    d = os.path.join(WORK, "slow")
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "slow-1MiB.bin")
    if not os.path.exists(path) or os.path.getsize(path) != 1 << 20:
        with open(path + ".tmp", "wb") as f:
            f.write(os.urandom(1 << 20))
        os.replace(path + ".tmp", path)
    return path


SECTIONS = ("handshake", "bulk", "memory", "unknown_cid", "slow", "floor", "instructions", "soak", "workers")


def settings(argv):
    env = os.environ.get
    quick = env("BENCH_QUICK", "") not in ("", "0")
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", default=quick)
    ap.add_argument("--runs", type=int, default=None)
    ap.add_argument("--bulk-runs", type=int, default=None)
    ap.add_argument("--handshakes", type=int, default=None)
    ap.add_argument("--concurrency", type=int, default=int(env("BENCH_CONCURRENCY", "16")))
    ap.add_argument("--idle", type=int, default=None)
    ap.add_argument("--mem-idle", type=int, default=None)
    ap.add_argument("--bulk-mib", type=int, default=None)
    ap.add_argument("--io-modes", default=env("BENCH_IO_MODES", "batched,nogso,plain"))
    # The quick run leaves out the instruction counts (about a minute
    # under callgrind): it stays under two minutes.
    quick_sections = ",".join(x for x in SECTIONS if x != "instructions")
    ap.add_argument("--sections", default=env("BENCH_SECTIONS", quick_sections if quick else ",".join(SECTIONS)))
    ap.add_argument("--shipped", type=int, default=None)
    ap.add_argument("--ping-interval", type=float, default=float(env("BENCH_PING_INTERVAL", "1.0")))
    ap.add_argument("--upkeep-secs", type=float, default=None)
    ap.add_argument("--deadline", type=float, default=float(env("BENCH_DEADLINE", "1800")))
    ap.add_argument("--unknown-pps", type=int, default=int(env("BENCH_UNKNOWN_PPS", "10000")))
    ap.add_argument("--unknown-secs", type=float, default=None)
    ap.add_argument("--unknown-burst", type=int, default=int(env("BENCH_UNKNOWN_BURST", "2000")))
    ap.add_argument("--unknown-bursts", type=int, default=None)
    ap.add_argument("--unknown-inproc", type=int, default=None)
    ap.add_argument("--slow-conns", type=int, default=None)
    ap.add_argument("--slow-rate", type=int, default=int(env("BENCH_SLOW_RATE", "4096")))
    ap.add_argument("--slow-window", type=int, default=int(env("BENCH_SLOW_WINDOW", "16384")))
    ap.add_argument("--slow-secs", type=float, default=None)
    ap.add_argument("--slow-runs", type=int, default=int(env("BENCH_SLOW_RUNS", "1")))
    ap.add_argument("--requests", dest="req_requests", type=int, default=None)
    ap.add_argument("--req-conns", type=int, default=int(env("BENCH_REQ_CONNS", "10")))
    ap.add_argument("--req-streams", type=int, default=int(env("BENCH_REQ_STREAMS", "100")))
    ap.add_argument("--req-body", type=int, default=int(env("BENCH_REQ_BODY", "1024")))
    ap.add_argument("--floor-batch", type=int, default=int(env("BENCH_FLOOR_BATCH", "32")))
    ap.add_argument("--aes-mib", type=int, default=None)
    ap.add_argument("--soak-requests", type=int, default=None)
    ap.add_argument("--soak-conns", type=int, default=int(env("BENCH_SOAK_CONNS", "10")))
    ap.add_argument("--soak-runs", type=int, default=int(env("BENCH_SOAK_RUNS", "1")))
    ap.add_argument("--workers", default=env("BENCH_WORKERS", "1,2"))
    ap.add_argument("--workers-downloads", type=int, default=int(env("BENCH_WORKERS_DOWNLOADS", "4")))
    ap.add_argument("--out", default=os.path.join(ROOT, "target", "bench.md"))
    cfg = ap.parse_args(argv)
    q = cfg.quick
    cfg.runs = cfg.runs or int(env("BENCH_RUNS", "3"))
    cfg.bulk_runs = cfg.bulk_runs or int(env("BENCH_BULK_RUNS", "3" if q else "5"))
    cfg.handshakes = cfg.handshakes or int(env("BENCH_HANDSHAKES", "100" if q else "1000"))
    cfg.idle = cfg.idle if cfg.idle is not None else int(env("BENCH_IDLE", "100" if q else "500"))
    cfg.mem_idle = cfg.mem_idle or int(env("BENCH_MEM_IDLE", "100" if q else "1000"))
    cfg.bulk_mib = cfg.bulk_mib or int(env("BENCH_BULK_MIB", "32" if q else "256"))
    cfg.unknown_secs = cfg.unknown_secs or float(env("BENCH_UNKNOWN_SECS", "1" if q else "3"))
    cfg.unknown_bursts = cfg.unknown_bursts or int(env("BENCH_UNKNOWN_BURSTS", "5" if q else "20"))
    cfg.unknown_inproc = cfg.unknown_inproc or int(env("BENCH_UNKNOWN_INPROC", "200000" if q else "1000000"))
    cfg.upkeep_secs = cfg.upkeep_secs or float(env("BENCH_UPKEEP_SECS", "0.5" if q else "2.0"))
    cfg.slow_conns = cfg.slow_conns or int(env("BENCH_SLOW_CONNS", "100" if q else "1000"))
    cfg.slow_secs = cfg.slow_secs or float(env("BENCH_SLOW_SECS", "2" if q else "10"))
    cfg.shipped = cfg.shipped if cfg.shipped is not None else int(env("BENCH_SHIPPED", "0" if q else "1"))
    cfg.req_requests = cfg.req_requests or int(env("BENCH_REQUESTS", "20000" if q else "100000"))
    cfg.aes_mib = cfg.aes_mib or int(env("BENCH_AES_MIB", "64" if q else "256"))
    cfg.ir_requests = int(env("BENCH_IR_REQUESTS", "4000" if q else "20000"))
    # RSS per connection moves by under 1 % between runs: one run keeps the
    # quick run under two minutes.
    cfg.mem_runs = int(env("BENCH_MEM_RUNS", "1" if q else str(cfg.runs)))
    cfg.ir_handshakes = int(env("BENCH_IR_HANDSHAKES", "60" if q else "300"))
    cfg.ir_bulk_mib = int(env("BENCH_IR_BULK_MIB", "10" if q else "40"))
    cfg.soak_requests = cfg.soak_requests or int(env("BENCH_SOAK_REQUESTS", "100000" if q else "1000000"))
    cfg.io_modes = [m for m in cfg.io_modes.split(",") if m]
    for m in cfg.io_modes:
        if m not in IO_MODES:
            ap.error(f"unknown I/O mode {m!r} (known: {', '.join(IO_MODES)})")
    cfg.workers = [int(n) for n in cfg.workers.split(",") if n]
    if not cfg.workers or any(not 1 <= n <= 32 for n in cfg.workers):
        ap.error("BENCH_WORKERS: worker counts from 1 to 32, e.g. 1,2")
    cfg.sections = [s for s in cfg.sections.split(",") if s]
    for s in cfg.sections:
        if s not in SECTIONS:
            ap.error(f"unknown section {s!r} (known: {', '.join(SECTIONS)})")
    return cfg


def machine():
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "")
    except OSError:
        pass
    rev = ""
    try:
        rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "-uno"], capture_output=True,
                               text=True, timeout=10).stdout.strip()
        rev += " (uncommitted changes)" if dirty else ""
    except (OSError, subprocess.TimeoutExpired):
        pass
    return f"{os.cpu_count()} CPUs ({model}), Linux {platform.release()}, git {rev or '?'}"


def main(argv):
    cfg = settings(argv)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    os.makedirs(LOGS, exist_ok=True)
    os.makedirs(os.path.join(WORK, "dl"), exist_ok=True)
    for f in os.listdir(LOGS):
        os.unlink(os.path.join(LOGS, f))
    started = time.monotonic()
    bench = Bench(cfg)
    table = Table()
    missing = [p for p in (os.path.join(EX, "server"), os.path.join(EX, "client"), os.path.join(EX, "cert.crt"))
               if not os.path.exists(p)]
    if missing:
        print(f"bench: {', '.join(missing)} missing: run `make` first", file=sys.stderr)
        return 2
    baselines = ["upstream"]
    if not os.path.exists(SERVERS["upstream"]["argv"][0]):
        print("bench: target/bench/upstream/server missing (`make bench` builds it); "
              "using `make upstream`'s server as the baseline", file=sys.stderr)
        baselines = ["shipped"]
    elif cfg.shipped:
        baselines.append("shipped")
    print(f"bench: {machine()}; CPU time from {CPU_SOURCE}", file=sys.stderr)

    if "handshake" in cfg.sections:
        print(f"handshake load: {cfg.handshakes} connections, {cfg.concurrency} at a time, "
              f"0 and {cfg.idle} idle; {cfg.runs} runs", file=sys.stderr, flush=True)
        idles = [0, cfg.idle] if cfg.idle else [0]
        for _ in range(cfg.runs):
            for idle in idles:
                for key in ["ours"] + baselines:
                    bench.record(f"hs/{key}/{idle}", bench.handshake_once, key, idle)
        hs = lambda key, idle: bench.raw.get(f"hs/{key}/{idle}", [])
        for idle in idles:
            for b in baselines:
                vs = b
                label = SERVERS[b]["label"]
                table.add("handshake", f"hs {idle} idle: server CPU/conn vs {vs}",
                          "us", "lower", hs("ours", idle), hs(b, idle), SERVERS["ours"]["label"], label, "cpu_us")
                if idle:
                    table.add("handshake", f"hs {idle} idle: server CPU/conn net of upkeep vs {vs}",
                              "us", "lower", hs("ours", idle), hs(b, idle), SERVERS["ours"]["label"], label,
                              "net_cpu_us")
            b = baselines[0]
            table.add("handshake", f"hs {idle} idle: client completion p50 vs {baselines[0]}", "ms",
                      "lower", hs("ours", idle), hs(b, idle), "ours", SERVERS[b]["label"], "p50_ms")
            table.add("handshake", f"hs {idle} idle: client completion p99 vs {baselines[0]}", "ms",
                      "lower", hs("ours", idle), hs(b, idle), "ours", SERVERS[b]["label"], "p99_ms")
        if cfg.idle:
            table.add("handshake", f"hs server CPU/conn: ours {cfg.idle} idle vs ours 0 idle",
                      "us", "lower", hs("ours", cfg.idle), hs("ours", 0), "ours loaded", "ours unloaded", "cpu_us")
            table.add("handshake", f"hs server CPU/conn: ours {cfg.idle} idle net vs ours 0 idle",
                      "us", "lower", [dict(r, cpu_us=r.get("net_cpu_us")) for r in hs("ours", cfg.idle)],
                      hs("ours", 0), "ours loaded, net", "ours unloaded", "cpu_us")

    if "bulk" in cfg.sections:
        print(f"bulk: {cfg.bulk_mib} MiB over loopback; {cfg.bulk_runs} runs", file=sys.stderr, flush=True)
        path = bulk_file(cfg)
        digest = file_digest(path)
        for _ in range(cfg.bulk_runs):
            bench.record("bulk/ngtcp2/h3", bench.bulk_ngtcp2, path, digest)
            for proto in ("hq", "h3"):
                for mode in cfg.io_modes:
                    bench.record(f"bulk/ours/{proto}/{mode}", bench.bulk_ours, proto, mode, path, digest)
            # Every client discarding the body: QUIC without the disk.
            bench.record("bulk/ngtcp2/h3/discard", bench.bulk_ngtcp2, path, digest, True)
            bench.record("bulk/ours/h3/batched/discard", bench.bulk_ours, "h3", "batched", path, digest, True)
        ng = bench.raw["bulk/ngtcp2/h3"]
        ng_label = "ngtcp2 gtlsserver -> gtlsclient (h3)"
        for proto in ("hq", "h3"):
            for mode in cfg.io_modes:
                ours = bench.raw[f"bulk/ours/{proto}/{mode}"]
                label = f"ours {proto}, io={mode}"
                name = f"bulk {proto} io={mode}"
                cross = "" if proto == "h3" else "hq-interop vs ngtcp2's h3"
                table.add("bulk", f"{name}: throughput vs ngtcp2", "Gbit/s", "higher", ours, ng,
                          label, ng_label, "gbit_s", cross)
                table.add("bulk", f"{name}: server CPU/GiB vs ngtcp2", "s/GiB", "lower", ours, ng,
                          label, ng_label, "server_s_per_gib")
                table.add("bulk", f"{name}: client CPU/GiB vs ngtcp2", "s/GiB", "lower", ours, ng,
                          label, ng_label, "client_s_per_gib")
        ngd, oursd = bench.raw["bulk/ngtcp2/h3/discard"], bench.raw["bulk/ours/h3/batched/discard"]
        name, labels = "bulk h3 io=batched, bodies discarded", ("ours h3, io=batched, --output /dev/null",
                                                                 "ngtcp2 gtlsclient without --download")
        why = "both clients drop the body (not checked byte for byte; the rows above check the same pairs)"
        table.add("bulk", f"{name}: throughput vs ngtcp2", "Gbit/s", "higher", oursd, ngd, *labels, "gbit_s", why)
        table.add("bulk", f"{name}: server CPU/GiB vs ngtcp2", "s/GiB", "lower", oursd, ngd, *labels,
                  "server_s_per_gib")
        table.add("bulk", f"{name}: client CPU/GiB vs ngtcp2", "s/GiB", "lower", oursd, ngd, *labels,
                  "client_s_per_gib")
        if len(cfg.io_modes) > 1:
            first = cfg.io_modes[0]
            for proto in ("hq", "h3"):
                for mode in cfg.io_modes[1:]:
                    table.add("bulk", f"bulk {proto}: throughput, ours io={first} vs io={mode}", "Gbit/s",
                              "higher", bench.raw[f"bulk/ours/{proto}/{first}"],
                              bench.raw[f"bulk/ours/{proto}/{mode}"], f"io={first}", f"io={mode}", "gbit_s")

    if "memory" in cfg.sections:
        print(f"memory: {cfg.mem_idle} idle connections; {cfg.mem_runs} runs", file=sys.stderr, flush=True)
        b = baselines[0]
        for _ in range(cfg.mem_runs):
            for key in ("ours", "ours-cid2", b):
                bench.record(f"mem/{key}", bench.memory_once, key, cfg.mem_idle)
        mo, mb = bench.raw["mem/ours"], bench.raw[f"mem/{b}"]
        table.add("memory", f"mem {cfg.mem_idle} idle: server RSS/conn vs {b}", "KiB",
                  "lower", mo, mb, "ours", SERVERS[b]["label"], "kib_per_conn",
                  "ours lets a client give 8 connection IDs (room for NAT rebindings), upstream quiche's "
                  "default 2: aioquic gives all it may, and quiche keeps them (next row)")
        table.add("memory", f"mem {cfg.mem_idle} idle: server RSS/conn, ours --cid-limit 2 (upstream's "
                  f"quiche default) vs {b}", "KiB", "lower", bench.raw["mem/ours-cid2"], mb,
                  SERVERS["ours-cid2"]["label"], SERVERS[b]["label"], "kib_per_conn")
        table.add("memory", f"mem {cfg.mem_idle} idle: server RSS total vs {b}", "KiB",
                  "lower", mo, mb, "ours", SERVERS[b]["label"], "rss_held_kib")
        table.add("memory", f"mem {cfg.mem_idle} idle: server CPU keeping them vs {b}", "ms/s", "lower", mo, mb, "ours", SERVERS[b]["label"],
                  "upkeep_ms_per_s")

    if "unknown_cid" in cfg.sections:
        b = baselines[0]
        print(f"unknown CIDs: {cfg.unknown_pps} datagrams/s for {cfg.unknown_secs:g} s; {cfg.runs} runs",
              file=sys.stderr, flush=True)
        for _ in range(cfg.runs):
            for key in ("ours", b):
                bench.record(f"ucid/{key}", bench.unknown_cid_once, key)
        uo, ub = bench.raw["ucid/ours"], bench.raw[f"ucid/{b}"]
        table.add("unknown_cid", f"unknown CID {cfg.unknown_pps} pps: server CPU/datagram vs {b}", "ns",
                  "lower", uo, ub, "ours", SERVERS[b]["label"], "cpu_ns", unknown_cid_note(cfg, uo, ub))
        for _ in range(cfg.runs):
            for key in ("ours", b):
                bench.record(f"ucid_burst/{key}", bench.unknown_burst_once, key)
            bench.record("ucid_inproc", bench.unknown_inproc_once)
        bo, bb = bench.raw["ucid_burst/ours"], bench.raw[f"ucid_burst/{b}"]

        def held(runs):
            v = values(runs, "received_per_burst")
            q = values(runs, "queued_kib")
            return f"{statistics.median(v):.0f} datagrams ({max(q):.0f} KiB queued)" if v and q else "n/a"
        table.add("unknown_cid", f"unknown CID bursts of {cfg.unknown_burst} (queued, then drained): "
                  f"server CPU/datagram vs {b}", "ns", "lower", bo, bb, "ours", SERVERS[b]["label"], "cpu_ns",
                  f"{cfg.unknown_bursts} bursts a run, each sent while the server was stopped (SIGSTOP); a burst "
                  f"is what its socket buffer holds: ours {held(bo)}, baseline {held(bb)}")
        io = bench.raw["ucid_inproc"]
        table.add("unknown_cid", "unknown CID in process (inject_datagram, no socket): our code's CPU/datagram "
                  "vs our server's with its socket (the burst row)", "ns", "lower",
                  renamed(io, "short_header_ns", "ns"), renamed(bo, "cpu_ns", "ns"), "ours, our code alone",
                  "ours, whole server", "ns",
                  "issue 18's target for our code: 1000 ns; benches/unknown_cid_inproc.rs, short-header junk "
                  "(long-header junk: " + ", ".join(f"{v:.0f}" for v in values(io, "long_header_ns")) + " ns)")

    if "slow" in cfg.sections:
        path = slow_file()
        n, kib = cfg.slow_conns, cfg.slow_rate / 1024
        print(f"slow transfers: {n} h3 connections reading {kib:g} KiB/s each, measured over "
              f"{cfg.slow_secs:g} s; {cfg.slow_runs} run(s)", file=sys.stderr, flush=True)
        for _ in range(cfg.slow_runs):
            for kind in ("ours", "ngtcp2"):
                bench.record(f"slow/{kind}", bench.slow_once, kind, path)
        so, sn = bench.raw["slow/ours"], bench.raw["slow/ngtcp2"]
        name = f"{n} slow transfers h3 ({kib:g} KiB/s each; ngtcp2: upstream serves no files)"
        labels = ("ours http3-server --root", "ngtcp2 gtlsserver -d")
        table.add("slow", f"{name}: server CPU/GiB vs ngtcp2", "s/GiB", "lower", so, sn, *labels, "s_per_gib")
        asked = statistics.median(values(so + sn, "asked_mib_s") or [0])
        table.add("slow", f"{name}: delivered vs ngtcp2", "MiB/s", "higher", so, sn, *labels, "mib_s",
                  f"the readers asked for {asked:.2f} MiB/s in all")

    if "floor" in cfg.sections:
        print(f"floor: quiche alone (target/release/floor) vs ours: {cfg.handshakes} HTTP/3 handshakes, "
              f"{cfg.bulk_mib} MiB, {cfg.req_requests} requests of {cfg.req_body} B over {cfg.req_conns} "
              f"connections x {cfg.req_streams} streams; {cfg.runs} runs", file=sys.stderr, flush=True)
        path = bulk_file(cfg)
        for _ in range(cfg.runs):
            bench.record("floor/quiche", bench.floor_once)
            bench.record("floor/ours/hs", bench.ours_handshake_once, False)
            bench.record("floor/ours/hs_retry", bench.ours_handshake_once, True)
            bench.record("floor/ours/bulk", bench.bulk_ours, "h3", "batched", path, None, True)
            bench.record("floor/ours/req_callback", bench.ours_requests_once, "callback")
            bench.record("floor/ours/req_builtin", bench.ours_requests_once, "builtin")
            if not cfg.quick:  # the quick run stays under two minutes
                bench.record("floor/quiche_trip", bench.floor_trip_once)
        floor_rows(table, cfg, bench.raw)

    if "instructions" in cfg.sections:
        print(f"instructions: callgrind, ours vs the floor's same side: {cfg.ir_requests} requests, "
              f"{cfg.ir_handshakes} handshakes, a {cfg.ir_bulk_mib} MiB body (and a fifth of each)",
              file=sys.stderr, flush=True)
        req = f"{cfg.req_body} B requests, {cfg.req_conns} conns x {cfg.req_streams} streams"
        server_turns = "floor's server turns (bench/floor under callgrind)"
        for what, unit, row, who, fl_label in (
                ("requests", "Ir", f"instructions {req}: server instructions/request, ours C callback vs floor",
                 "ours bench/req_server.c <- req_load", server_turns),
                ("handshake", "Ir", "instructions h3 handshake (no retry): server instructions/conn, ours vs floor",
                 "ours http3-server --no-retry <- req_load", server_turns),
                ("handshake-retry", "Ir", "instructions h3 handshake (with retry): server instructions/conn, ours vs floor",
                 "ours http3-server <- req_load", server_turns),
                ("bulk-send", "Ir/MiB", "instructions h3 bulk (no retry): sending side instructions/MiB, ours vs floor",
                 "ours http3-server --no-retry --root", server_turns),
                ("bulk-recv", "Ir/MiB", "instructions h3 bulk (no retry): receiving side instructions/MiB, ours vs floor",
                 "ours http3-client --output /dev/null", "floor's client turns (bench/floor under callgrind)")):
            bench.record(f"ir/{what}", bench.instructions_once, what)
            runs = bench.raw[f"ir/{what}"]
            table.add("instructions", row, unit, "lower", renamed(runs, "ours_ir", "ir"),
                      renamed(runs, "floor_ir", "ir"), who, fl_label, "ir",
                      "user space only (no kernel); counted, not timed: runs differ only as their packets do")

    if "soak" in cfg.sections:
        print(f"soak: {cfg.soak_requests} requests over {cfg.soak_conns} connections to req_server "
              f"(C callback); {cfg.soak_runs} run(s)", file=sys.stderr, flush=True)
        for _ in range(cfg.soak_runs):
            bench.record("soak/ours", bench.soak_once)
        so = bench.raw["soak/ours"]
        ok = [r for r in so if "error" not in r]
        note = ""
        if ok:
            r = ok[0]
            note = (f"run 1: {r['growth_bytes_per_request']:.1f} bytes of RSS per request "
                    f"({r['slope_bytes_per_request']:.1f} after the first fifth); server "
                    f"{r['server_us']:.1f} us CPU/request; RSS KiB after N requests: {r['series']}")
        table.add("soak", f"soak {cfg.soak_requests} requests / {cfg.soak_conns} conns (C callback): "
                  f"server RSS at the end vs after warm-up", "KiB", "lower", renamed(so, "rss_end_kib", "rss"),
                  renamed(so, "rss_start_kib", "rss"), "RSS at the end", "RSS after warm-up", "rss", note)

    if "workers" in cfg.sections:
        counts, k = cfg.workers, cfg.workers_downloads
        print(f"workers: {', '.join(map(str, counts))} worker(s) on one port: {cfg.handshakes} handshakes "
              f"({cfg.concurrency} clients at a time), {k} concurrent downloads of {cfg.bulk_mib} MiB; "
              f"{cfg.runs} runs ({cfg.bulk_runs} for bulk)", file=sys.stderr, flush=True)
        path = bulk_file(cfg)
        for i in range(max(cfg.runs, cfg.bulk_runs)):
            for n in counts:
                if i < cfg.runs:
                    bench.record(f"workers/hs/{n}", bench.workers_handshake_once, n)
                if i < cfg.bulk_runs:
                    bench.record(f"workers/bulk/{n}", bench.workers_bulk_once, n, path)
        first = counts[0]
        hsw = lambda n: bench.raw.get(f"workers/hs/{n}", [])
        bw = lambda n: bench.raw.get(f"workers/bulk/{n}", [])
        for n in counts[1:]:
            a, b = f"{n} workers", f"{first} worker{'s' if first > 1 else ''}"
            table.add("workers", f"hs: connections/s, {a} vs {b}", "conn/s", "higher", hsw(n), hsw(first),
                      a, b, "conns_per_s", "the load generator (client processes) shares the cores")
            table.add("workers", f"hs: server CPU/conn, {a} vs {b}", "us", "lower", hsw(n), hsw(first), a, b,
                      "cpu_us")
            table.add("workers", f"bulk x{k}: aggregate throughput, {a} vs {b}", "Gbit/s", "higher", bw(n),
                      bw(first), a, b, "gbit_s", f"{k} downloads at once; clients share the cores")
            table.add("workers", f"bulk x{k}: server CPU/GiB, {a} vs {b}", "s/GiB", "lower", bw(n), bw(first),
                      a, b, "server_s_per_gib")
            even = [{"busiest_share": 1.0 / n}]
            table.add("workers", f"hs: busiest worker's share of worker CPU, {a} vs an even split", "share",
                      "lower", hsw(n), even, a, f"1/{n}", "busiest_share",
                      "worker CPU s per run: " + "; ".join(str(r.get("worker_cpu_s")) for r in hsw(n)
                                                           if "error" not in r))
            table.add("workers", f"bulk x{k}: busiest worker's share of worker CPU, {a} vs an even split",
                      "share", "lower", bw(n), even, a, f"1/{n}", "busiest_share",
                      "worker CPU s per run: " + "; ".join(str(r.get("worker_cpu_s")) for r in bw(n)
                                                           if "error" not in r))

    elapsed = time.monotonic() - started
    text = table.render_text()
    print()
    print(text)
    baseline_text = "; ".join("`%s` = %s" % (k, SERVERS[k]["label"]) for k in baselines)
    modes_text = ", ".join("%s = %s" % (m, " ".join("%s=%s" % kv for kv in IO_MODES[m].items()))
                           for m in cfg.io_modes)
    header = (
        f"# quiche-ev benchmark\n\n"
        f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}; {machine()}; took {elapsed:.0f} s.\n\n"
        f"Settings: {'quick, ' if cfg.quick else ''}medians of {cfg.runs} runs ({cfg.bulk_runs} for bulk); handshake load "
        f"{cfg.handshakes} connections ({cfg.concurrency} client processes at a time, our `client` "
        f"against every server) with 0 and {cfg.idle} idle connections; bulk {cfg.bulk_mib} MiB; "
        f"memory with {cfg.mem_idle} idle connections; idle connections ping every "
        f"{cfg.ping_interval:g} s; unknown CIDs {cfg.unknown_pps} datagrams/s for "
        f"{cfg.unknown_secs:g} s; {cfg.slow_conns} slow transfers at {cfg.slow_rate} B/s each "
        f"(window {cfg.slow_window} B), measured over {cfg.slow_secs:g} s, {cfg.slow_runs} run(s); "
        f"floor rows: {cfg.req_requests} requests of {cfg.req_body} B over {cfg.req_conns} connections x "
        f"{cfg.req_streams} streams, the floor's receive batches {cfg.floor_batch} datagrams, AES over "
        f"{cfg.aes_mib} MiB; soak {cfg.soak_requests} requests over {cfg.soak_conns} connections; "
        f"workers {','.join(map(str, cfg.workers))} ({cfg.workers_downloads} concurrent downloads); "
        f"sections {','.join(cfg.sections)}; server CPU time from /proc/PID/"
        f"{'task/*/schedstat' if CPU_SOURCE == 'schedstat' else 'stat (utime+stime)'}.\n\n"
        f"Baselines: {baseline_text}; ngtcp2 = `gtlsserver` -> `gtlsclient` (Debian "
        f"ngtcp2-server/-client). I/O modes of ours: {modes_text}.\n\n"
        f"Ratio = ours / baseline: below 1 is better where `better` says lower (CPU, time, memory), "
        f"above 1 where it says higher (Gbit/s). See bench/README.md. Raw runs: target/bench.json; "
        f"server logs: target/bench/logs/.\n\n")
    os.makedirs(os.path.dirname(cfg.out), exist_ok=True)
    with open(cfg.out, "w") as f:
        f.write(header + table.render_md() + "\n")
    with open(os.path.join(os.path.dirname(cfg.out), "bench.json"), "w") as f:
        json.dump({"settings": {k: v for k, v in vars(cfg).items()}, "cpu_source": CPU_SOURCE,
                   "machine": machine(), "elapsed_s": elapsed, "runs": bench.raw, "rows": table.rows},
                  f, indent=1, default=str)
    print(f"\nwritten: {os.path.relpath(cfg.out, os.getcwd())} ({elapsed:.0f} s)")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        sys.exit(130)
    finally:
        kill_all()
