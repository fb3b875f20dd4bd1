"""The interop runner's endpoint contract, shared by our endpoint scripts.

Every endpoint script (ours.py, aioquic.py, ngtcp2.py) reads the same
environment, starts its implementation's programs accordingly and exits
with the contract's status: 0 success, 1 failure, 127 test case not
supported (with `unsupported: <why>` as the last line on stderr).

From the runner's contract:

    ROLE           server | client
    TESTCASE       the test case, as the runner names it for this role
    REQUESTS       client: space-separated URLs https://HOST:PORT/FILE;
                   the client connects to HOST:PORT of the first one
    SSLKEYLOGFILE  where to append the TLS secrets (NSS key log format)
    QLOGDIR        where to write qlog files

Where the runner's containers have fixed paths, local runs set:

    WWW            server: the directory to serve (default /www)
    DOWNLOADS      client: where to save each response as <file name>
                   (default /downloads)
    CERTS          server: directory with cert.pem (the chain, leaf first)
                   and priv.key (default /certs)
    HOST, PORT     server: address and UDP port to listen on (default ::
                   and 443)
    ALPN           hq-interop | h3. Default: h3 for TESTCASE=http3,
                   hq-interop otherwise (the runner's rule). The local
                   runner sets h3 for every case of a pair when one side
                   speaks only HTTP/3 (Debian's ngtcp2 packages only the
                   HTTP/3 examples).
"""

import atexit
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from urllib.parse import urlsplit

UNSUPPORTED = 127

# The test cases whose clients make two connections: the first fetches the
# first file and stores the session, the second resumes it for the rest.
RESUMING = ("resumption", "zerortt")


class Endpoint:
    def __init__(self, environ=None):
        env = os.environ if environ is None else environ
        self.role = env.get("ROLE", "")
        self.testcase = env.get("TESTCASE", "")
        self.requests = env.get("REQUESTS", "").split()
        self.keylog = env.get("SSLKEYLOGFILE") or None
        self.qlogdir = env.get("QLOGDIR") or None
        self.www = env.get("WWW", "/www")
        self.downloads = env.get("DOWNLOADS", "/downloads")
        self.certs = env.get("CERTS", "/certs")
        self.host = env.get("HOST", "::")
        self.port = int(env.get("PORT", "443"))
        self.alpn = env.get("ALPN") or ("h3" if self.testcase == "http3" else "hq-interop")
        if self.role not in ("server", "client"):
            fail(f"ROLE must be server or client, not {self.role!r}")
        if self.alpn not in ("hq-interop", "h3"):
            fail(f"ALPN must be hq-interop or h3, not {self.alpn!r}")
        if self.role == "client" and not self.requests:
            fail("REQUESTS is empty")
        if self.qlogdir:
            os.makedirs(self.qlogdir, exist_ok=True)

    @property
    def session_file(self):
        """A scratch file for the TLS session a resuming client stores."""
        if not hasattr(self, "_scratch"):
            self._scratch = tempfile.mkdtemp(prefix="interop-endpoint-")
            atexit.register(shutil.rmtree, self._scratch, True)
        return os.path.join(self._scratch, "session.bin")

    @property
    def cert(self):
        return os.path.join(self.certs, "cert.pem")

    @property
    def key(self):
        return os.path.join(self.certs, "priv.key")

    @property
    def server_address(self):
        """(host, port) of the first request's URL (client)."""
        u = urlsplit(self.requests[0])
        return u.hostname, u.port or 443

    @property
    def paths(self):
        return paths_of(self.requests)

    def connections(self):
        """The paths each connection of a resuming client fetches."""
        if self.testcase in RESUMING and len(self.requests) > 1:
            return [self.requests[:1], self.requests[1:]]
        return [self.requests]


def paths_of(urls):
    return [urlsplit(u).path or "/" for u in urls]


def main(server, client, cases, unsupported_cases):
    """The common entry point of an endpoint script: reads the contract,
    exits 127 for what `unsupported_cases[role]` explains or `cases[role]`
    does not list, else runs server(ep) (which does not return) or
    client(ep) (which returns the exit status)."""
    ep = Endpoint()
    why = unsupported_cases.get(ep.role, {}).get(ep.testcase)
    if why:
        unsupported(why)
    if ep.testcase not in cases[ep.role]:
        unsupported(f"unknown test case {ep.testcase!r}")
    if ep.role == "server":
        server(ep)
    return client(ep)


def fail(why):
    print(f"error: {why}", file=sys.stderr, flush=True)
    sys.exit(1)


def unsupported(why):
    print(f"unsupported: {why}", file=sys.stderr, flush=True)
    sys.exit(UNSUPPORTED)


def show(cmd):
    line = " ".join(cmd)
    return line if len(line) < 400 else f"{line[:400]}... ({len(cmd)} arguments)"


def missing_downloads(ep, cmd):
    """Why the URLs among `cmd`'s arguments left no file in DOWNLOADS, or
    None when every one did."""
    names = [os.path.basename(p) for p in paths_of(a for a in cmd if a.startswith("https://"))]
    missing = [n for n in names if not os.path.exists(os.path.join(ep.downloads, n))]
    return f"{len(missing)} file(s) not downloaded, e.g. {missing[0]}" if missing else None


def run(commands, cwd=None, env=None, check=None):
    """Runs the commands one after another (each a list), stopping at the
    first that fails (exits non-zero, or `check(cmd)` returns a reason);
    returns the contract's exit status. SIGTERM and SIGINT are passed on
    to the running command."""
    current = [None]

    def forward(sig, _frame):
        if current[0] is not None and current[0].poll() is None:
            current[0].send_signal(sig)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, forward)
    for cmd in commands:
        print("running: " + show(cmd), file=sys.stderr, flush=True)
        current[0] = subprocess.Popen(cmd, cwd=cwd, env=env)
        rc = current[0].wait()
        if rc != 0:
            return UNSUPPORTED if rc == UNSUPPORTED else 1
        why = check(cmd) if check else None
        if why:
            print(f"error: {os.path.basename(cmd[0])} exited 0 but {why}", file=sys.stderr)
            return 1
    return 0


def exec_(cmd, cwd=None, env=None):
    """Replaces this process with `cmd` (a server: signals reach it
    directly and its exit status is ours)."""
    print("running: " + show(cmd), file=sys.stderr, flush=True)
    if cwd:
        os.chdir(cwd)
    os.execvpe(cmd[0], cmd, env if env is not None else os.environ)
