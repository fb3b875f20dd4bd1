#!/usr/bin/env python3
"""quiche-ev benchmarks: `make bench` (after `make`, `make upstream`,
`make peers`). Not a test: it measures and reports ratios, each against a
baseline run in the same invocation. Writes target/bench.md.

Rows:
  1. handshake load: N connections (our `client`, 16 at a time) against our
     `server` and upstream's `server.c`, with 0 and with 500 idle connections
     held open in the background (bench/idle_holder.py, aioquic): server CPU
     per connection (utime+stime from /proc/PID/stat), p50/p99 completion.
  2. bulk: one file over loopback, our server -> our client (hq and h3),
     batched I/O (GSO/GRO, the default) and plain (QUICHE_EV_PLAIN_IO=1),
     and ngtcp2 gtlsserver -> gtlsclient (h3) on the same file: Gbit/s and
     CPU seconds per GiB on each side; the downloaded bytes are checked.
  3. memory: server RSS per idle connection with 1000 held open, ours vs
     upstream.

Every figure is the median of RUNS runs. BENCH_QUICK=1 shrinks everything.
Upstream's samples always write quiche's debug log (to /dev/null here);
ours run with QUICHE_EV_QUIET=1, as a deployment would.
"""

import hashlib
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EX = os.path.join(ROOT, "c-examples")
UP = os.path.join(ROOT, "target/upstream/quiche")
PY = os.path.join(ROOT, "target/venv/bin/python")
HOLDER = os.path.join(ROOT, "bench/idle_holder.py")
QUICK = os.environ.get("BENCH_QUICK") == "1"
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
HANDSHAKES = int(os.environ.get("BENCH_HANDSHAKES", "200" if QUICK else "1000"))
IDLE = int(os.environ.get("BENCH_IDLE", "100" if QUICK else "500"))
MEM_IDLE = int(os.environ.get("BENCH_MEM_IDLE", "200" if QUICK else "1000"))
BULK_MIB = int(os.environ.get("BENCH_BULK_MIB", "32" if QUICK else "256"))
CONCURRENCY = 16
TICK = os.sysconf("SC_CLK_TCK")
QUIET = dict(os.environ, QUICHE_EV_QUIET="1")
children = []


def die(msg):
    print(f"bench: {msg}", file=sys.stderr)
    sys.exit(1)


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def port_bound(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind(("127.0.0.1", port))
        return False
    except OSError:
        return True
    finally:
        s.close()


def wait_for(cond, what, deadline=30.0):
    end = time.monotonic() + deadline
    while not cond():
        if time.monotonic() > end:
            die(f"timed out waiting for {what}")
        time.sleep(0.01)


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Server:
    """A server on a free port; `kind` is "ours" or "upstream"."""

    def __init__(self, kind, name, args=(), env=None):
        port = free_port()
        binary = os.path.join(EX if kind == "ours" else UP, name)
        self.proc = subprocess.Popen([binary, *args, "127.0.0.1", str(port)], cwd=EX,
                                     env=env or QUIET, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        children.append(self.proc)
        self.port = port
        wait_for(lambda: port_bound(port) or self.proc.poll() is not None, f"{name} to bind")
        if self.proc.poll() is not None:
            die(f"{binary} exited at start")

    def cpu(self):
        return cpu_seconds(self.proc.pid)

    def rss(self):
        return rss_kib(self.proc.pid)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Idle:
    """N idle connections held open by the aioquic holder."""

    def __init__(self, port, n):
        self.proc = subprocess.Popen([PY, HOLDER, "127.0.0.1", str(port), str(n)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True)
        children.append(self.proc)
        line = self.proc.stdout.readline()
        if not line.startswith("ready"):
            die(f"idle holder failed: {line!r}")

    def close(self):
        self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def one_client(port):
    t = time.monotonic()
    r = subprocess.run([os.path.join(EX, "client"), "127.0.0.1", str(port)], env=QUIET,
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=30)
    if r.stdout != b"byez\n":
        raise RuntimeError(f"client got {r.stdout!r}")
    return time.monotonic() - t


def handshake_run(kind, idle):
    s = Server(kind, "server")
    holder = Idle(s.port, idle) if idle else None
    one_client(s.port)  # warm-up
    before = s.cpu()
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        times = sorted(pool.map(one_client, [s.port] * HANDSHAKES))
    used = s.cpu() - before
    if holder:
        holder.close()
    s.stop()
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
    return used / HANDSHAKES * 1e6, statistics.median(times) * 1e3, p99 * 1e3


def median_of(fn, *args):
    runs = [fn(*args) for _ in range(RUNS)]
    return tuple(statistics.median(col) for col in zip(*runs))


def bulk_ours(name, cli, path, digest, size, plain):
    env = dict(QUIET, QUICHE_EV_PLAIN_IO="1") if plain else QUIET
    root = os.path.dirname(path)
    s = Server("ours", name, ["--root", root], env)
    out = path + ".out"
    before = s.cpu()
    t = time.monotonic()
    p = subprocess.Popen([os.path.join(EX, cli), "--output", out, "127.0.0.1", str(s.port),
                          "/" + os.path.basename(path)], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.monotonic() - t
    srv = s.cpu() - before
    s.stop()
    ok = status == 0 and file_digest(out) == digest
    os.unlink(out)
    if not ok:
        die(f"{cli} download failed or differs (status {status})")
    return throughput(size, wall, srv, ru.ru_utime + ru.ru_stime)


def bulk_ngtcp2(path, digest, size):
    if not shutil.which("gtlsserver") or not shutil.which("gtlsclient"):
        return None
    port = free_port()
    srv = subprocess.Popen(["gtlsserver", "-q", "-d", os.path.dirname(path), "127.0.0.1", str(port),
                            os.path.join(EX, "cert.key"), os.path.join(EX, "cert.crt")],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    children.append(srv)
    wait_for(lambda: port_bound(port), "gtlsserver to bind")
    dl = tempfile.mkdtemp(prefix="bench-dl-")
    before = cpu_seconds(srv.pid)
    t = time.monotonic()
    p = subprocess.Popen(["gtlsclient", "-q", "--download", dl, "--exit-on-all-streams-close",
                          "127.0.0.1", str(port), f"https://127.0.0.1:{port}/{os.path.basename(path)}"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.monotonic() - t
    used = cpu_seconds(srv.pid) - before
    srv.kill()
    srv.wait()
    got = os.path.join(dl, os.path.basename(path))
    ok = status == 0 and os.path.exists(got) and file_digest(got) == digest
    shutil.rmtree(dl)
    if not ok:
        die(f"gtlsclient download failed or differs (status {status})")
    return throughput(size, wall, used, ru.ru_utime + ru.ru_stime)


def throughput(size, wall, srv_cpu, cli_cpu):
    gib = size / (1 << 30)
    return size * 8 / wall / 1e9, srv_cpu / gib, cli_cpu / gib


def file_digest(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def memory_run(kind):
    s = Server(kind, "server")
    one_client(s.port)
    base = s.rss()
    holder = Idle(s.port, MEM_IDLE)
    time.sleep(1.0)  # let one ping round pass: steady state, not a timing
    held = s.rss()
    holder.close()
    s.stop()
    return ((held - base) / MEM_IDLE,)


def main():
    for path, what in [(os.path.join(EX, "server"), "make"), (os.path.join(UP, "server"), "make upstream"),
                       (PY, "make peers")]:
        if not os.path.exists(path):
            die(f"{path} is missing: run `{what}` first")
    rows = []

    def row(what, ours, base, unit, note=""):
        ratio = ours / base if base else float("nan")
        rows.append((what, ours, base, ratio, unit, note))
        print(f"{what:<58} {ours:>10.2f} {base:>10.2f} {ratio:>7.2f}  {unit} {note}", flush=True)

    print(f"{'row':<58} {'ours':>10} {'baseline':>10} {'ratio':>7}")
    # 1. handshake load
    hs = {}
    for kind in ["upstream", "ours"]:
        for idle in [0, IDLE]:
            hs[(kind, idle)] = median_of(handshake_run, kind, idle)
    for idle in [0, IDLE]:
        o, u = hs[("ours", idle)], hs[("upstream", idle)]
        row(f"handshake: server CPU us/conn, {idle} idle (vs upstream)", o[0], u[0], "us")
        row(f"handshake: p50 completion ms, {idle} idle (vs upstream)", o[1], u[1], "ms")
        row(f"handshake: p99 completion ms, {idle} idle (vs upstream)", o[2], u[2], "ms")
    row(f"handshake: ours CPU/conn {IDLE} idle vs ours 0 idle", hs[("ours", IDLE)][0], hs[("ours", 0)][0], "us")

    # 2. bulk
    size = BULK_MIB << 20
    tmp = tempfile.mkdtemp(prefix="bench-bulk-")
    path = os.path.join(tmp, "bulk.bin")
    with open(path, "wb") as f:
        for _ in range(BULK_MIB):
            f.write(os.urandom(1 << 20))
    digest = file_digest(path)
    ng = median_of(bulk_ngtcp2, path, digest, size) if shutil.which("gtlsserver") else None
    res = {}
    for name, cli in [("server", "client"), ("http3-server", "http3-client")]:
        for plain in [False, True]:
            res[(cli, plain)] = median_of(bulk_ours, name, cli, path, digest, size, plain)
    shutil.rmtree(tmp)
    label = {False: "GSO", True: "plain"}
    for (cli, plain), r in res.items():
        proto = "h3" if "http3" in cli else "hq"
        if ng:
            row(f"bulk {BULK_MIB} MiB {proto} {label[plain]}: Gbit/s (vs ngtcp2 h3)", r[0], ng[0], "Gbit/s")
            row(f"bulk {BULK_MIB} MiB {proto} {label[plain]}: server CPU s/GiB (vs ngtcp2)", r[1], ng[1], "s/GiB")
            row(f"bulk {BULK_MIB} MiB {proto} {label[plain]}: client CPU s/GiB (vs ngtcp2)", r[2], ng[2], "s/GiB")
        else:
            row(f"bulk {proto} {label[plain]}: Gbit/s", r[0], float("nan"), "Gbit/s", "ngtcp2 missing: apt-get install ngtcp2-server ngtcp2-client")
    for proto, cli in [("hq", "client"), ("h3", "http3-client")]:
        row(f"bulk {proto}: Gbit/s GSO vs plain (ours)", res[(cli, False)][0], res[(cli, True)][0], "Gbit/s")

    # 3. memory
    mo = median_of(memory_run, "ours")[0]
    mu = median_of(memory_run, "upstream")[0]
    row(f"memory: server RSS KiB per idle conn, {MEM_IDLE} idle (vs upstream)", mo, mu, "KiB")

    os.makedirs(os.path.join(ROOT, "target"), exist_ok=True)
    with open(os.path.join(ROOT, "target/bench.md"), "w") as f:
        f.write("# quiche-ev benchmark\n\n")
        f.write(f"Medians of {RUNS} runs; {HANDSHAKES} handshakes ({CONCURRENCY} at a time), "
                f"{IDLE} idle connections for the loaded rows, {BULK_MIB} MiB bulk file, "
                f"{MEM_IDLE} idle connections for memory. Ratio = ours / baseline "
                "(below 1 is better for CPU, time and memory; above 1 is better for Gbit/s).\n\n")
        f.write("| row | ours | baseline | ratio | unit |\n|---|---:|---:|---:|---|\n")
        for what, o, b, r, unit, note in rows:
            f.write(f"| {what} | {o:.2f} | {b:.2f} | {r:.2f} | {unit} {note} |\n")
    print("\nwritten: target/bench.md")


if __name__ == "__main__":
    try:
        main()
    finally:
        for p in children:
            if p.poll() is None:
                p.kill()
                p.wait()
