#!/usr/bin/env python3
"""Behaviour parity harness: quiche-ev's examples side by side with
upstream quiche's C samples and two independent QUIC stacks.

Run it with `make compare` (which builds everything it needs first), or
directly: `python3 tests/compare/compare.py [options]` from anywhere.

The matrix
----------
For hq-interop (`server` / `client`) and HTTP/3 (`http3-server` /
`http3-client`), every client -> server pairing of three implementations
of quiche's samples:

    ours         c-examples/* (the Rust event core behind the C mains)
    upstream     quiche's examples/*.c linked against plain libquiche.a
    upstream-ev  the same upstream sources linked against libquiche_ev.a

plus independent stacks, each paired with ours and, as the reference, with
upstream in the same role:

    aioquic      tests/peers/aioquic_peer.py (hq-interop and h3, client
                 against our server, server for our client)
    ngtcp2       gtlsclient -> our http3-server, our http3-client ->
                 gtlsserver (serving index.html = "byez\\n"; "/" maps to it)

Every pair is compared with its *reference*: the same pair with each
`ours` / `upstream-ev` side replaced by `upstream`. For quiche pairs that is
upstream -> upstream of the same protocol (the baseline); for a third-party
pair it is the third party with upstream in our role. Reference pairs are
run too (rows marked "baseline") and must themselves succeed: full "byez\\n"
on the client's stdout.

What is compared
----------------
- the client's stdout, byte for byte;
- the client's exit status (and the server's, after SIGTERM);
- the ordered event lines on each side's stderr (`version negotiation`,
  `stateless retry`, `new connection`, `connection established: ...`,
  `sent HTTP request ...`, `got HTTP header: ...`, `got HTTP/3 SETTING:
  ...`, `connection closed...`, `request was reset`, `got GOAWAY`,
  `invalid address validation token`)
  and the extra lines our programs print that the README documents
  (`listening on`, `connection freed`, `signal N: shutting down`,
  `error: ...`, the dropped-packet lines). quiche's trace lines and
  upstream's chatter (`sent N bytes`, `done reading`, ...) are ignored.
  Digits are normalised to N (ports to PORT) except in `got HTTP header`,
  `got HTTP/3 SETTING`, `sent HTTP request` and `connection established`
  lines, whose values are behaviour (status, content-length, settings,
  stream id); a GREASE setting (reserved id 0x1f*N+0x21, random values) is
  shown as GREASE=N;
- what crossed the wire, from quiche's trace lines on every quiche-based
  side (ours run WITHOUT QUICHE_EV_QUIET): the packet types each side sent
  and received (`tx pkt <Type>` / `rx pkt <Type>`), in order of first
  appearance (counts vary with timing; the set and order do not), an
  Initial with a version other than 1 shown as Initial(v=...); and the
  STREAM frames per stream (end offset and FIN), which shows the request
  and response bytes: every stream a side sent, and the bidirectional
  (request/response) streams it received. A peer's unidirectional streams
  (HTTP/3 control, QPACK, GREASE) may still be in flight when the client
  closes, so on the receiving side they vary with timing; they are checked
  where they were sent.

Each difference from the reference is looked up in INTENDED below, a table
of the intended improvements of README.md's "Differences from upstream"
(each entry names its README row). A match is "intended"; anything else is
a REGRESSION, which fails the run (exit 1) and names the pair.

Upstream's samples re-arm their connection timer with quiche's timeout as
the repeat; a zero timeout stops it (README row "a zero timeout ..."). So
an upstream client sometimes never exits after a complete exchange, and an
upstream server sometimes never closes a finished connection. A client
that printed the whole body and did not exit within --hang-grace seconds
is killed and recorded as `hung`; a server that has not logged `connection
closed` for every connection within 7 s is recorded as stuck. What such a
run lacks (the exit status, the closing line) is upstream's quirk, not our
regression; the same from one of ours is a regression. Upstream clients run
under `stdbuf -o0` so a killed one still shows what it printed.

Output: a table on stdout, a Markdown report (default target/compare.md),
and every side's stdout/stderr under <report>-logs/ (target/compare-logs/).

Exit status: 0 every pair passed (only intended differences), 1 a
regression or a failed reference run, 2 a setup problem (a missing binary
or peer, with the command that installs it).

Options
-------
  --ours-dir DIR             where our example programs are (default
                             c-examples/; tests/portable.rs passes
                             target/portable/c-examples/, the examples
                             linked against the `portable` build). They
                             still run in c-examples/, beside the
                             certificate.
  --ours-server-args "ARGS"  extra arguments for our servers, before HOST
                             PORT (the harness's own test passes
                             "--root DIR" with a wrong index.html to prove
                             that a broken server fails the run)
  --only SUBSTR              run only pairs whose name contains SUBSTR
                             (e.g. "hq:", "h3: ours -> ", "aioquic"); their
                             references always run
  --jobs N                   pairs run in parallel (default 4)
  --report PATH              Markdown report (default target/compare.md)
  --hang-grace S             seconds an upstream client may linger after
                             the full body before it counts as hung (3)
"""

import argparse
import concurrent.futures
import difflib
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLES = os.path.join(ROOT, "c-examples")
VENV_PY = os.path.join(ROOT, "target", "venv", "bin", "python")
PEER = os.path.join(ROOT, "tests", "peers", "aioquic_peer.py")

EXPECTED = b"byez\n"
CLIENT_DEADLINE = 20.0     # a client that runs longer is killed (failure)
SERVER_START = 10.0        # until a server is listening
SERVER_CLOSE = 7.0         # until a server has logged every close (idle timeout is 5 s)
SERVER_STOP = 5.0          # after SIGTERM, before SIGKILL

PROTOS = {
    # proto: (server binary, client binary, ALPN for the peers)
    "hq": ("server", "client", "hq-interop"),
    "h3": ("http3-server", "http3-client", "h3"),
}
QUICHE_IMPLS = ("ours", "upstream", "upstream-ev")
UPSTREAM_DIR = {"upstream": "quiche", "upstream-ev": "quiche-ev"}

# --------------------------------------------------------------------------
# What is read from stderr

TRACE = re.compile(r"^quiche(::\S+)?: ")
EVENTS = [re.compile(p) for p in (
    # upstream's event lines
    r"^version negotiation$",
    r"^stateless retry$",
    r"^new connection$",
    r"^connection established: ",
    r"^sent HTTP request",
    r"^got HTTP header: ",
    r"^got HTTP/3 SETTING: ",
    r"^connection closed",
    r"^request was reset$",
    r"^got GOAWAY$",
    r"^invalid address validation token",
    # our extra lines (README: "Differences from upstream")
    r"^listening on ",
    r"^connection freed, ",
    r"^signal \d+: shutting down$",
    r"^error: ",
    r"^packet for unknown connection dropped$",
    r"^datagram of \d+ bytes for unknown connection dropped$",
    r"^initial with a destination connection ID of ",
    r"^connection limit \(\d+\) reached",
)]
KEEP_NUMBERS = re.compile(r"^(got HTTP header: |got HTTP/3 SETTING: |sent HTTP request"
                          r"|connection established: )")
PKT = re.compile(r"^quiche: \S+ (tx|rx) pkt (\w+)(?: version=([0-9a-fA-F]+))?")
FRM = re.compile(r"^quiche: \S+ (tx|rx) frm STREAM id=(\d+) off=(\d+) len=(\d+) fin=(\w+)")
PKT_NAMES = {"VersionNegotiation": "VN", "Short": "1-RTT", "ZeroRTT": "0-RTT"}


def normalise(line):
    m = re.match(r"^got HTTP/3 SETTING: (\d+)=\d+$", line)
    if m and int(m.group(1)) >= 0x21 and (int(m.group(1)) - 0x21) % 0x1f == 0:
        return "got HTTP/3 SETTING: GREASE=N"   # reserved id, random per connection
    line = re.sub(r"(127\.0\.0\.1|\[::1\]):\d+", r"\1:PORT", line)   # e.g. :authority
    return line if KEEP_NUMBERS.match(line) else re.sub(r"(?<![\d.])\d+(?![\d.])", "N", line)


def events_of(lines):
    return [normalise(l) for l in lines
            if not TRACE.match(l) and any(p.match(l) for p in EVENTS)]


def wire_of(lines):
    """{'tx': [types...], 'rx': [...]} in order of first appearance."""
    seen = {"tx": [], "rx": []}
    for l in lines:
        m = PKT.match(l)
        if not m:
            continue
        d, typ, ver = m.groups()
        name = PKT_NAMES.get(typ, typ)
        if ver and typ in ("Initial", "Handshake", "ZeroRTT") and int(ver, 16) != 1:
            name += f"(v={ver})"
        if name not in seen[d]:
            seen[d].append(name)
    return seen


def streams_of(lines):
    """{'tx': {id: (end offset, fin)}, 'rx': {...}} over STREAM frames."""
    out = {"tx": {}, "rx": {}}
    for l in lines:
        m = FRM.match(l)
        if not m:
            continue
        d, sid, off, ln, fin = m.groups()
        sid, end = int(sid), int(off) + int(ln)
        e, f = out[d].get(sid, (0, False))
        out[d][sid] = (max(e, end), f or fin == "true")
    return out


def show_stream(sid, v):
    return "none" if v is None else f"id={sid} len={v[0]}{' fin' if v[1] else ''}"

# --------------------------------------------------------------------------
# Intended differences: each is one row of README.md's "Differences from
# upstream" (its upstream column quoted in `readme`; None where the lead
# declared it intended but the README has no row yet). `match(d, pair, ref)`
# gets a difference and says whether this entry explains it.


class Diff:
    def __init__(self, kind, where, ref, ours):
        self.kind, self.where, self.ref, self.ours = kind, where, ref, ours
        self.intended = None       # the INTENDED entry, when one matches

    def text(self):
        return f"{self.kind} [{self.where}]: reference {self.ref!r} -> this pair {self.ours!r}"


def _role_is(pair, role, impl):
    return (pair.client if role == "client" else pair.server) == impl


def _extra_ours_line(prefix, role):
    def m(d, pair, ref):
        return (d.kind == "events" and d.where == role and d.ref is None
                and d.ours is not None and d.ours.startswith(prefix)
                and _role_is(pair, role, "ours"))
    return m


def _hang(d, pair, ref):
    # An upstream side whose connection timer stopped (a zero timeout):
    # a client that printed everything and never exited, or a server that
    # never closed the connection. What that run lacks (the exit, the
    # closing line) is upstream's quirk, not a difference of ours.
    role = d.where
    if role not in ("client", "server"):
        return False
    stuck = [r for r in (pair, ref) if r.result and r.result.stuck[role]]
    if not stuck:
        return False
    if d.kind == "exit" and role == "client":
        return "hung" in (d.ref, d.ours)
    if d.kind == "events" and (d.ref is None) != (d.ours is None):
        line = d.ref if d.ours is None else d.ours
        absent_run = pair if d.ours is None else ref
        return line.startswith("connection closed") and absent_run.result.stuck[role]
    return False


def _bare_close(d, pair, ref):
    return (d.kind == "events" and d.where == "client" and _role_is(pair, "client", "ours")
            and d.ref == "connection closed" and d.ours is not None
            and d.ours.startswith("connection closed, recv=N"))


def _nul_byte(d, pair, ref):
    # hq request stream 4: upstream sends 18 bytes (with the NUL), ours 17.
    if d.kind != "stream" or pair.proto != "hq" or not _role_is(pair, "client", "ours"):
        return False
    if _role_is(ref, "client", "ours") or not d.where.startswith(("client tx", "server rx")):
        return False
    m1 = re.fullmatch(r"id=4 len=(\d+) fin", d.ref or "")
    m2 = re.fullmatch(r"id=4 len=(\d+) fin", d.ours or "")
    return bool(m1 and m2 and int(m1.group(1)) == int(m2.group(1)) + 1 == 18)


def _client_exit_on_failure(d, pair, ref):
    return (d.kind == "exit" and d.where == "client" and _role_is(pair, "client", "ours")
            and d.ref == "0" and d.ours == "1")


def _server_sigterm_exit(d, pair, ref):
    return (d.kind == "exit" and d.where == "server" and _role_is(pair, "server", "ours")
            and d.ref == f"signal {signal.SIGTERM.value}" and d.ours == "0")


def _unknown_short(d, pair, ref):
    # A late short-header packet after the server freed the connection:
    # upstream answers Version Negotiation, ours drops it.
    if d.kind != "events" or d.where != "server" or not _role_is(pair, "server", "ours"):
        return False
    return ((d.ref in ("version negotiation", None))
            and d.ours in ("packet for unknown connection dropped", None)
            and (d.ref, d.ours) != (None, None))


INTENDED = [
    ("listening", "servers print `listening on HOST:PORT`",
     "prints nothing when ready", _extra_ours_line("listening on ", "server")),
    ("sigterm-line", "servers log the signal, close every connection and exit 0",
     "dies by SIGINT/SIGTERM", _extra_ours_line("signal N: shutting down", "server")),
    ("sigterm-exit", "server exits 0 after SIGTERM (upstream dies by the signal)",
     "dies by SIGINT/SIGTERM", _server_sigterm_exit),
    ("freed-line", "servers log `connection freed, N left` after freeing a connection",
     "nothing when a connection is freed", _extra_ours_line("connection freed, N left", "server")),
    ("close-stats", "our client's closing line always has the stats; upstream's recv_cb "
     "path prints a bare `connection closed`",
     "the client prints a bare `connection closed` when its recv_cb sees the close", _bare_close),
    ("request-nul", "hq request is `GET /index.html\\r\\n` (17 bytes); upstream sends a "
     "trailing NUL (18)", "client sends `GET /index.html\\r\\n` plus a NUL byte", _nul_byte),
    ("client-exit", "client exits 1 when the response is incomplete (upstream exits 0)",
     "client exits 0 whatever happened", _client_exit_on_failure),
    ("client-error-line", "client says why it failed (`error: ...`)",
     "client exits 0 whatever happened", _extra_ours_line("error: ", "client")),
    ("upstream-hang", "an upstream side's connection timer stopped (zero timeout): its client "
     "hung after the full response (killed by the harness) or its server never closed the "
     "connection", "a zero timeout (`ev_timer_again` with repeat 0) stops "
     "the connection timer: the client can hang after a complete exchange", _hang),
    ("unknown-short", "a short-header packet for a freed connection is dropped, not answered "
     "with Version Negotiation", "a short-header packet for an unknown connection triggers "
     "Version Negotiation", _unknown_short),
]

# --------------------------------------------------------------------------
# Processes


class Proc:
    """A child with its stdout and stderr collected by threads."""

    def __init__(self, argv, cwd=None, env=None, name=""):
        self.argv, self.name = argv, name
        self.p = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  start_new_session=True)
        self.cv = threading.Condition()
        self.out = bytearray()
        self.err = []
        self.out_full_at = None       # when stdout first reached len(EXPECTED)
        self.t = [threading.Thread(target=self._read_out, daemon=True),
                  threading.Thread(target=self._read_err, daemon=True)]
        for t in self.t:
            t.start()

    def _read_out(self):
        while True:
            b = self.p.stdout.read1(65536)
            if not b:
                break
            with self.cv:
                self.out += b
                if self.out_full_at is None and len(self.out) >= len(EXPECTED):
                    self.out_full_at = time.monotonic()
                self.cv.notify_all()

    def _read_err(self):
        for raw in self.p.stderr:
            with self.cv:
                self.err.append(raw.decode("utf-8", "replace").rstrip("\r\n"))
                self.cv.notify_all()
        with self.cv:
            self.cv.notify_all()

    def wait_until(self, cond, timeout):
        """Waits until cond() (called with the lock held) or timeout."""
        end = time.monotonic() + timeout
        with self.cv:
            while not cond():
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self.cv.wait(min(left, 0.05))
            return True

    def count(self, pred):
        return sum(1 for l in self.err if not TRACE.match(l) and pred(l))

    def kill(self):
        if self.p.poll() is None:
            try:
                os.killpg(self.p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.p.wait()

    def finish(self):
        for t in self.t:
            t.join(5)
        return self.p.returncode

    def stderr_lines(self):
        with self.cv:
            return list(self.err)


def exit_text(rc):
    return f"signal {-rc}" if rc < 0 else str(rc)


def free_port():
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def udp_ports_of(pid):
    """UDP ports bound by process `pid` (its socket inodes in /proc/net/udp*)."""
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                t = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if t.startswith("socket:["):
                inodes.add(t[8:-1])
    except OSError:
        return set()
    ports = set()
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(table) as f:
                next(f)
                for row in f:
                    cols = row.split()
                    if len(cols) > 9 and cols[9] in inodes:
                        ports.add(int(cols[1].rsplit(":", 1)[1], 16))
        except OSError:
            pass
    return ports


def clean_env():
    env = dict(os.environ)
    for k in list(env):
        if k.startswith("QUICHE_EV_"):
            del env[k]     # ours must log quiche's trace, on the default I/O path
    return env

# --------------------------------------------------------------------------
# Sides


class Setup:
    def __init__(self, args, tmp):
        self.args, self.tmp = args, tmp
        self.ours_server_args = shlex.split(args.ours_server_args or "")
        self.ours_dir = args.ours_dir
        self.htdocs = os.path.join(tmp, "htdocs")
        os.makedirs(self.htdocs, exist_ok=True)
        with open(os.path.join(self.htdocs, "index.html"), "wb") as f:
            f.write(EXPECTED)


def start_server(setup, proto, impl):
    """Returns (Proc, port) with the server listening on 127.0.0.1."""
    sbin, _, alpn = PROTOS[proto]
    env = clean_env()
    cert, key = os.path.join(EXAMPLES, "cert.crt"), os.path.join(EXAMPLES, "cert.key")
    if impl == "ours" or impl == "aioquic":
        if impl == "ours":
            argv = [os.path.join(setup.ours_dir, sbin)] + setup.ours_server_args + ["127.0.0.1", "0"]
        else:
            argv = [VENV_PY, PEER, "server", "--alpn", alpn, "--cert", cert, "--key", key,
                    "127.0.0.1", "0"]
        p = Proc(argv, cwd=EXAMPLES, env=env, name=f"{impl} server")
        pat = re.compile(r"^listening on .*:(\d+)$")
        ok = p.wait_until(lambda: any(pat.match(l) for l in p.err) or p.p.poll() is not None,
                          SERVER_START)
        port = next((int(pat.match(l).group(1)) for l in p.stderr_lines() if pat.match(l)), None)
        if not ok or port is None:
            p.kill()
            p.finish()
            raise RuntimeError(f"{impl} {sbin} did not start:\n" + "\n".join(p.err[-20:]))
        return p, port
    # Fixed-port servers: pick a free port; the server is ready once a
    # socket it owns is bound there. Another process may take the port in
    # between: then it exits at once and we try again.
    for _ in range(5):
        port = free_port()
        if impl == "ngtcp2":
            argv = ["gtlsserver", "-q", "-d", setup.htdocs, "127.0.0.1", str(port), key, cert]
        else:
            argv = [os.path.join(ROOT, "target", "upstream", UPSTREAM_DIR[impl], sbin),
                    "127.0.0.1", str(port)]
        p = Proc(argv, cwd=EXAMPLES, env=env, name=f"{impl} server")
        end = time.monotonic() + SERVER_START
        while time.monotonic() < end and p.p.poll() is None and port not in udp_ports_of(p.p.pid):
            time.sleep(0.01)
        if p.p.poll() is None and port in udp_ports_of(p.p.pid):
            return p, port
        p.kill()
        p.finish()
    raise RuntimeError(f"{impl} {sbin} did not start:\n" + "\n".join(p.err[-20:]))


def run_client(setup, proto, impl, port, tag):
    """Runs a client to its end: (stdout, exit status text, stderr lines).
    The exit status is "hung" for an upstream client killed after printing
    the whole body, "timeout" for any client killed at the deadline."""
    _, cbin, alpn = PROTOS[proto]
    env = clean_env()
    dl = None
    if impl == "ours":
        argv = [os.path.join(setup.ours_dir, cbin), "127.0.0.1", str(port)]
    elif impl in UPSTREAM_DIR:
        argv = ["stdbuf", "-o0",
                os.path.join(ROOT, "target", "upstream", UPSTREAM_DIR[impl], cbin),
                "127.0.0.1", str(port)]
    elif impl == "aioquic":
        argv = [VENV_PY, PEER, "client", "--alpn", alpn, "--timeout", "15", "127.0.0.1", str(port)]
    else:  # ngtcp2
        dl = tempfile.mkdtemp(prefix=f"dl-{tag}-", dir=setup.tmp)
        argv = ["gtlsclient", "-q", "--exit-on-all-streams-close", "--timeout=10s",
                "--download", dl, "127.0.0.1", str(port), f"https://127.0.0.1:{port}/"]
    p = Proc(argv, cwd=EXAMPLES, env=env, name=f"{impl} client")
    grace = setup.args.hang_grace
    may_hang = impl in UPSTREAM_DIR
    start = time.monotonic()

    def done():
        if p.p.poll() is not None:
            return True
        if may_hang and p.out_full_at is not None and time.monotonic() - p.out_full_at > grace:
            return True
        return time.monotonic() - start > CLIENT_DEADLINE

    p.wait_until(done, CLIENT_DEADLINE + grace + 1)
    if p.p.poll() is None:
        hung = may_hang and p.out_full_at is not None and bytes(p.out) == EXPECTED
        p.kill()
        p.finish()
        status = "hung" if hung else "timeout"
    else:
        status = exit_text(p.finish())
    out = bytes(p.out)
    if dl is not None:
        f = os.path.join(dl, "index.html")
        out = open(f, "rb").read() if os.path.exists(f) else b""
    return out, status, p.stderr_lines()

# --------------------------------------------------------------------------
# Pairs


class Side:
    def __init__(self, impl, lines):
        self.impl = impl
        self.lines = lines
        self.events = events_of(lines)
        self.quiche = impl in QUICHE_IMPLS
        self.wire = wire_of(lines) if self.quiche else None
        self.streams = streams_of(lines) if self.quiche else None


class Result:
    def __init__(self):
        self.stdout = b""
        self.client_exit = None
        self.server_exit = None
        self.client = None
        self.server = None
        self.error = None
        self.seconds = 0.0
        # an upstream side whose connection timer stopped (zero timeout)
        self.stuck = {"client": False, "server": False}


class Pair:
    def __init__(self, proto, client, server):
        self.proto, self.client, self.server = proto, client, server
        self.result = None
        self.diffs = []

    @property
    def name(self):
        return f"{self.proto}: {self.client} -> {self.server}"

    @property
    def slug(self):
        return f"{self.proto}-{self.client}-to-{self.server}"

    def reference(self):
        swap = lambda i: "upstream" if i in QUICHE_IMPLS else i
        return (self.proto, swap(self.client), swap(self.server))

    def is_reference(self):
        return self.reference() == (self.proto, self.client, self.server)


def run_pair(setup, pair, logdir):
    r = Result()
    t0 = time.monotonic()
    server = None
    try:
        server, port = start_server(setup, pair.proto, pair.server)
        out, status, clines = run_client(setup, pair.proto, pair.client, port, pair.slug)
        r.stdout, r.client_exit = out, status
        r.stuck["client"] = status == "hung"
        if pair.server in QUICHE_IMPLS:
            # Every connection the server opened is closed (and, for ours,
            # freed) before it is stopped, so its log is complete.
            def closed():
                n = server.count(lambda l: l == "new connection")
                c = server.count(lambda l: l.startswith("connection closed"))
                f = server.count(lambda l: l.startswith("connection freed"))
                return server.p.poll() is not None or (
                    c >= n and (pair.server != "ours" or f >= n))
            if not server.wait_until(closed, SERVER_CLOSE) and pair.server in UPSTREAM_DIR:
                r.stuck["server"] = True
        if server.p.poll() is None:
            server.p.send_signal(signal.SIGTERM)
            try:
                server.p.wait(SERVER_STOP)
            except subprocess.TimeoutExpired:
                server.kill()
        r.server_exit = exit_text(server.finish())
        r.client = Side(pair.client, clines)
        r.server = Side(pair.server, server.stderr_lines())
        with open(os.path.join(logdir, f"{pair.slug}.client.out"), "wb") as f:
            f.write(out)
        with open(os.path.join(logdir, f"{pair.slug}.client.err"), "w") as f:
            f.write("\n".join(clines) + "\n")
        with open(os.path.join(logdir, f"{pair.slug}.server.err"), "w") as f:
            f.write("\n".join(r.server.lines) + "\n")
    except Exception as e:  # a side that would not start
        r.error = str(e)
        if server is not None:
            server.kill()
            server.finish()
    r.seconds = time.monotonic() - t0
    pair.result = r
    return pair


def seq_diffs(kind, where, ref, ours):
    out = []
    sm = difflib.SequenceMatcher(None, ref, ours, autojunk=False)
    for op, i1, i2, j1, j2 in sm.get_opcodes():
        if op == "equal":
            continue
        a, b = ref[i1:i2], ours[j1:j2]
        for k in range(max(len(a), len(b))):
            out.append(Diff(kind, where, a[k] if k < len(a) else None,
                            b[k] if k < len(b) else None))
    return out


def compare(pair, ref):
    a, b = ref.result, pair.result
    d = []
    if a.stdout != b.stdout:
        d.append(Diff("stdout", "client", a.stdout.decode("latin-1"), b.stdout.decode("latin-1")))
    if a.client_exit != b.client_exit:
        d.append(Diff("exit", "client", a.client_exit, b.client_exit))
    if a.server_exit != b.server_exit:
        d.append(Diff("exit", "server", a.server_exit, b.server_exit))
    for role in ("client", "server"):
        sa, sb = getattr(a, role), getattr(b, role)
        d += seq_diffs("events", role, sa.events, sb.events)
        if sa.quiche and sb.quiche:
            for direction in ("tx", "rx"):
                if sa.wire[direction] != sb.wire[direction]:
                    d.append(Diff("wire", f"{role} {direction}", " ".join(sa.wire[direction]),
                                  " ".join(sb.wire[direction])))
                ma, mb = sa.streams[direction], sb.streams[direction]
                for sid in sorted(set(ma) | set(mb)):
                    if direction == "rx" and sid & 2:
                        continue   # a peer's uni stream may still be in flight at close
                    if ma.get(sid) != mb.get(sid):
                        d.append(Diff("stream", f"{role} {direction}",
                                      show_stream(sid, ma.get(sid)), show_stream(sid, mb.get(sid))))
    for x in d:
        x.intended = next((e for e in INTENDED if e[3](x, pair, ref)), None)
    return d


def absolute_problems(pair):
    """A reference run must itself succeed."""
    r = pair.result
    probs = []
    if r.error:
        probs.append(r.error)
        return probs
    if r.stdout != EXPECTED:
        probs.append(f"client stdout {r.stdout!r}, expected {EXPECTED!r}")
    if r.client_exit not in ("0", "hung"):
        probs.append(f"client exit {r.client_exit}")
    return probs

# --------------------------------------------------------------------------


def build_pairs():
    pairs = []
    for proto in PROTOS:
        for c in QUICHE_IMPLS:
            for s in QUICHE_IMPLS:
                pairs.append(Pair(proto, c, s))
        for third in ("aioquic",) + (("ngtcp2",) if proto == "h3" else ()):
            for q in ("upstream", "ours"):
                pairs.append(Pair(proto, third, q))
                pairs.append(Pair(proto, q, third))
    return pairs


def preflight(args):
    problems = []
    for proto, (s, c, _) in PROTOS.items():
        for b in (s, c):
            if not os.access(os.path.join(args.ours_dir, b), os.X_OK):
                problems.append(f"{os.path.relpath(os.path.join(args.ours_dir, b), ROOT)} is missing: run `make`"
                                + (" portable" if args.ours_dir != EXAMPLES else ""))
            for fl in UPSTREAM_DIR.values():
                if not os.access(os.path.join(ROOT, "target", "upstream", fl, b), os.X_OK):
                    problems.append(f"target/upstream/{fl}/{b} is missing: run `make upstream`")
    for f in ("cert.crt", "cert.key"):
        if not os.path.exists(os.path.join(EXAMPLES, f)):
            problems.append(f"c-examples/{f} is missing: run `make`")
    if not os.access(VENV_PY, os.X_OK) or subprocess.run(
            [VENV_PY, "-c", "import aioquic"], capture_output=True).returncode != 0:
        problems.append("aioquic peer missing (target/venv with aioquic): run `make peers`")
    for tool in ("gtlsserver", "gtlsclient"):
        if shutil.which(tool) is None:
            problems.append(f"{tool} not found: run `apt-get install ngtcp2-server ngtcp2-client`")
    # Each intended difference must still be a row of README's table.
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    for e in INTENDED:
        if e[2] and f"| {e[2]} |" not in readme:
            problems.append(f"intended difference {e[0]!r} cites README row {e[2]!r}, "
                            "which README.md no longer has: update INTENDED in compare.py")
    if shutil.which("stdbuf") is None:
        problems.append("stdbuf not found: run `apt-get install coreutils`")
    return sorted(set(problems))


def main(argv):
    ap = argparse.ArgumentParser(description="Behaviour parity harness: quiche-ev's examples "
                                 "against upstream quiche's C samples, aioquic and ngtcp2.",
                                 epilog="See the top of this file for what is compared.")
    ap.add_argument("--ours-dir", default=EXAMPLES, metavar="DIR",
                    help="where our example programs are (default c-examples/)")
    ap.add_argument("--ours-server-args", default="", metavar="ARGS",
                    help="extra arguments for our servers, before HOST PORT")
    ap.add_argument("--only", default=None, metavar="SUBSTR",
                    help="run only pairs whose name (e.g. 'h3: ours -> upstream') contains "
                         "SUBSTR; their references always run")
    ap.add_argument("--jobs", type=int, default=4, help="pairs run in parallel (default 4)")
    ap.add_argument("--report", default=os.path.join(ROOT, "target", "compare.md"),
                    help="Markdown report (default target/compare.md); logs go to "
                         "<report without .md>-logs/")
    ap.add_argument("--hang-grace", type=float, default=3.0, metavar="S",
                    help="seconds an upstream client may linger after the full body "
                         "before it counts as hung (default 3)")
    args = ap.parse_args(argv)
    args.ours_dir = os.path.abspath(args.ours_dir)

    problems = preflight(args)
    if problems:
        for p in problems:
            print(f"compare: {p}", file=sys.stderr)
        return 2

    pairs = build_pairs()
    wanted = [p for p in pairs if args.only is None or args.only in p.name]
    if not wanted:
        print(f"compare: no pair matches {args.only!r}", file=sys.stderr)
        return 2
    by_key = {(p.proto, p.client, p.server): p for p in pairs}
    refs = {by_key[p.reference()] for p in wanted}
    todo = sorted(set(wanted) | refs, key=pairs.index)

    logdir = os.path.splitext(args.report)[0] + "-logs"
    os.makedirs(logdir, exist_ok=True)
    os.makedirs(os.path.dirname(os.path.abspath(args.report)), exist_ok=True)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="quiche-ev-compare-") as tmp:
        setup = Setup(args, tmp)
        with concurrent.futures.ThreadPoolExecutor(max(1, args.jobs)) as ex:
            list(ex.map(lambda p: run_pair(setup, p, logdir), todo))
    elapsed = time.monotonic() - t0

    rows = []
    failed = []
    for p in todo:
        ref = by_key[p.reference()]
        if p.is_reference():
            probs = absolute_problems(p)
            verdict = "baseline ok" if not probs else "BASELINE FAILED"
            if probs:
                failed.append((p, probs))
            rows.append((p, verdict, probs))
            continue
        if p.result.error or ref.result.error:
            probs = [p.result.error or f"reference failed: {ref.result.error}"]
            failed.append((p, probs))
            rows.append((p, "ERROR", probs))
            continue
        p.diffs = compare(p, ref)
        regressions = [d for d in p.diffs if d.intended is None]
        if p.result.stdout != EXPECTED and not any(d.kind == "stdout" for d in regressions):
            regressions.append(Diff("stdout", "client", EXPECTED.decode(), p.result.stdout.decode("latin-1")))
            p.diffs.append(regressions[-1])
        if regressions:
            failed.append((p, [d.text() for d in regressions]))
            rows.append((p, "REGRESSION", regressions))
        else:
            rows.append((p, "pass", []))

    print_table(rows, by_key, elapsed)
    write_report(args, rows, by_key, elapsed, logdir)
    if failed:
        print(file=sys.stderr)
        for p, why in failed:
            print(f"compare: FAILED {p.name}", file=sys.stderr)
            for w in why:
                print(f"    {w}", file=sys.stderr)
        return 1
    return 0


def summary(p):
    intended = sorted({d.intended[0] for d in p.diffs if d.intended})
    return ", ".join(intended) if intended else "-"


def client_note(p):
    r = p.result
    if r.error:
        return "error"
    note = f"exit {r.client_exit}, {r.stdout!r}"
    if r.stuck["server"]:
        note += ", server never closed"
    return note


def print_table(rows, by_key, elapsed):
    head = ("pair (client -> server)", "result", "client", "intended differences")
    data = [(p.name, v, client_note(p), summary(p) if v in ("pass", "REGRESSION") else "")
            for p, v, _ in rows]
    w = [max(len(head[i]), *(len(r[i]) for r in data)) for i in range(4)]
    line = lambda r: "  ".join(r[i].ljust(w[i]) for i in range(4)).rstrip()
    print(line(head))
    print(line(tuple("-" * x for x in w)))
    for r in data:
        print(line(r))
    n_fail = sum(1 for _, v, _ in rows if v not in ("pass", "baseline ok"))
    print(f"\n{len(rows)} runs in {elapsed:.1f} s; "
          f"{'all pairs pass' if not n_fail else f'{n_fail} failed'}")
    for p, v, why in rows:
        if v == "REGRESSION":
            print(f"\nREGRESSION in {p.name} (reference: {by_key[p.reference()].name}):")
            for d in why:
                print(f"    {d.text()}")


def md(s):
    return str(s).replace("|", "\\|").replace("\n", "\\n")


def write_report(args, rows, by_key, elapsed, logdir):
    L = ["# quiche-ev behaviour parity", "",
         f"`make compare` ({len(rows)} runs, {elapsed:.1f} s). Each pair is compared with its "
         "reference: the same pair with every `ours` / `upstream-ev` side replaced by "
         "upstream's sample. See tests/compare/compare.py for what is compared.", ""]
    if args.ours_server_args:
        L += [f"Our servers ran with extra arguments: `{args.ours_server_args}`", ""]
    L += ["| pair (client -> server) | reference | result | client | differences |",
          "|---|---|---|---|---|"]
    for p, v, why in rows:
        ref = "-" if p.is_reference() else by_key[p.reference()].name
        n_int = sum(1 for d in p.diffs if d.intended)
        n_reg = sum(1 for d in p.diffs if not d.intended)
        diffs = "" if p.is_reference() else f"{n_int} intended, {n_reg} regression"
        L.append(f"| {md(p.name)} | {md(ref)} | **{v}** | {md(client_note(p))} | {diffs} |")
    L += ["", "## Differences", ""]
    for p, v, why in rows:
        if p.is_reference():
            if why:
                L += [f"### {md(p.name)}: {v}", ""] + [f"- {md(w)}" for w in why] + [""]
            continue
        if v == "ERROR":
            L += [f"### {md(p.name)}: ERROR", ""] + [f"- {md(w)}" for w in why] + [""]
            continue
        if not p.diffs:
            continue
        L += [f"### {md(p.name)}: {v}", "",
              "| what | where | reference | this pair | classification |", "|---|---|---|---|---|"]
        for d in p.diffs:
            if d.intended:
                cls = f"intended: {d.intended[1]}" + (
                    f" (README: \"{d.intended[2]}\")" if d.intended[2] else " (no README row)")
            else:
                cls = "**REGRESSION**"
            L.append(f"| {d.kind} | {d.where} | `{md(d.ref)}` | `{md(d.ours)}` | {md(cls)} |")
        L.append("")
    L += ["## What the reference runs showed", "",
          "Every other pair is compared with these, difference by difference.", ""]
    for p, v, why in rows:
        r = p.result
        if not p.is_reference() or r.error:
            continue
        L += [f"### {md(p.name)}", ""]
        for role in ("client", "server"):
            side = getattr(r, role)
            L.append(f"- {role} ({side.impl}) events: " +
                     (", ".join(f"`{md(e)}`" for e in side.events) or "(none)"))
            if side.quiche:
                for direction in ("tx", "rx"):
                    streams = " ".join(show_stream(k, v) for k, v in sorted(side.streams[direction].items()))
                    L.append(f"- {role} {direction} packets: {' '.join(side.wire[direction]) or '(none)'};"
                             f" STREAM: {streams or '(none)'}")
        L.append("")
    L += ["## Intended differences the harness knows", "",
          "| id | what | README row (upstream column) |", "|---|---|---|"]
    for e in INTENDED:
        L.append(f"| {e[0]} | {md(e[1])} | {md(e[2]) if e[2] else '(none yet)'} |")
    L += ["", f"Logs of every side: `{os.path.relpath(logdir, ROOT)}/`.", ""]
    with open(args.report, "w") as f:
        f.write("\n".join(L))
    rel = os.path.relpath(args.report, os.getcwd())
    print(f"report: {args.report if rel.startswith('..') else rel}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
