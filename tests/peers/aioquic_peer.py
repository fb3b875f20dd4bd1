#!/usr/bin/env python3
"""A small aioquic peer for the quiche-ev interop tests.

    aioquic_peer.py client --alpn hq-interop|h3 [--token HEX] [--timeout S]
                           HOST PORT [PATH]
    aioquic_peer.py server --alpn hq-interop|h3 --cert C --key K HOST PORT

client: fetches PATH (default "/" for h3, "/index.html" for hq-interop),
writes the response body to stdout and exits 0 only when the whole response
arrived (and, for h3, its status was 200). The server's certificate is not
verified. `--token HEX` puts that address-validation token in the first
Initial packet. Exit status: 0 ok, 1 bad or incomplete response, 2 usage,
3 timeout, 4 connection error.

server: answers every request with the body "byez\\n" (h3: status 200,
a server header and content-length 5), prints "listening on HOST:PORT" on
stderr once bound (PORT 0 lets the kernel pick) and runs until killed.
`--retry` makes it do stateless retry.

hq-interop is HTTP/0.9 over QUIC: the client sends "GET /path\\r\\n" on a
bidirectional stream and finishes it; the server sends the raw body and
finishes its side.

Run it with the venv that `make peers` creates (target/venv/bin/python).
"""

import argparse
import asyncio
import logging
import ssl
import sys

from aioquic.asyncio import QuicConnectionProtocol, connect, serve
from aioquic.h0.connection import H0_ALPN, H0Connection
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import ConnectionTerminated, QuicEvent

BODY = b"byez\n"

EXIT_OK = 0
EXIT_BAD_RESPONSE = 1
EXIT_USAGE = 2
EXIT_TIMEOUT = 3
EXIT_CONN_ERROR = 4


def alpn_list(alpn):
    return list(H0_ALPN) if alpn == "hq-interop" else list(H3_ALPN)


def make_http(alpn, quic):
    return H0Connection(quic) if alpn == "hq-interop" else H3Connection(quic)


# --------------------------------------------------------------------------
# client


class ClientProtocol(QuicConnectionProtocol):
    """Sends one request and collects its response."""

    def __init__(self, *args, alpn, **kwargs):
        super().__init__(*args, **kwargs)
        self.alpn = alpn
        # From the start: the server's control and QPACK streams can arrive
        # during the handshake, and a HEADERS block may refer to its QPACK
        # encoder stream, so no event may be dropped.
        self.http = make_http(alpn, self._quic)
        self.stream_id = None
        self.status = None
        self.body = bytearray()
        self.done = asyncio.get_running_loop().create_future()

    def request(self, host, port, path):
        self.stream_id = self._quic.get_next_available_stream_id()
        headers = [
            (b":method", b"GET"),
            (b":scheme", b"https"),
            (b":authority", f"{host}:{port}".encode()),
            (b":path", path.encode()),
            (b"user-agent", b"aioquic-peer"),
        ]
        self.http.send_headers(self.stream_id, headers, end_stream=True)
        self.transmit()

    def _finish(self, ok, why=""):
        if not self.done.done():
            self.done.set_result((ok, why))

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, ConnectionTerminated):
            self._finish(False, f"connection closed by peer: error {event.error_code}"
                                f" {event.reason_phrase!r}")
            return
        for ev in self.http.handle_event(event):
            if getattr(ev, "stream_id", None) != self.stream_id:
                continue
            if isinstance(ev, HeadersReceived):
                for k, v in ev.headers:
                    if k == b":status":
                        self.status = v.decode(errors="replace")
                    print(f"got header: {k.decode(errors='replace')}="
                          f"{v.decode(errors='replace')}", file=sys.stderr)
                if ev.stream_ended:
                    self._finish(True)
            elif isinstance(ev, DataReceived):
                self.body += ev.data
                if ev.stream_ended:
                    self._finish(True)


async def run_client(args):
    config = QuicConfiguration(is_client=True, alpn_protocols=alpn_list(args.alpn))
    config.verify_mode = ssl.CERT_NONE
    if args.token:
        config.token = bytes.fromhex(args.token)
    path = args.path or ("/index.html" if args.alpn == "hq-interop" else "/")

    def create(*a, **kw):
        return ClientProtocol(*a, alpn=args.alpn, **kw)

    async with connect(args.host, args.port, configuration=config,
                       create_protocol=create) as proto:
        print(f"connection established: {args.alpn}", file=sys.stderr)
        proto.request(args.host, args.port, path)
        ok, why = await proto.done
        body = bytes(proto.body)
        status = proto.status

    if not ok:
        print(f"error: {why}", file=sys.stderr)
        return EXIT_CONN_ERROR, body
    if args.alpn == "h3" and status != "200":
        print(f"error: status {status}", file=sys.stderr)
        return EXIT_BAD_RESPONSE, body
    return EXIT_OK, body


def client_main(args):
    async def with_timeout():
        # A connection that is given up on leaves aioquic's "connected"
        # future failed with ConnectionError; our own message says why.
        def quiet(loop, ctx):
            if not isinstance(ctx.get("exception"), ConnectionError):
                loop.default_exception_handler(ctx)
        asyncio.get_running_loop().set_exception_handler(quiet)
        return await asyncio.wait_for(run_client(args), timeout=args.timeout)

    try:
        code, body = asyncio.run(with_timeout())
    except asyncio.TimeoutError:
        print(f"error: no complete response within {args.timeout}s", file=sys.stderr)
        return EXIT_TIMEOUT
    except ConnectionError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_CONN_ERROR
    sys.stdout.buffer.write(body)
    sys.stdout.buffer.flush()
    return code


# --------------------------------------------------------------------------
# server


class ServerProtocol(QuicConnectionProtocol):
    """Answers every request with BODY."""

    alpn = "h3"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.http = make_http(self.alpn, self._quic)

    def quic_event_received(self, event: QuicEvent) -> None:
        for ev in self.http.handle_event(event):
            if isinstance(ev, HeadersReceived):
                req = {k: v for k, v in ev.headers}
                print(f"request on stream {ev.stream_id}: "
                      f"{req.get(b':method', b'').decode(errors='replace')} "
                      f"{req.get(b':path', b'').decode(errors='replace')}",
                      file=sys.stderr, flush=True)
                self.http.send_headers(ev.stream_id, [
                    (b":status", b"200"),
                    (b"server", b"aioquic-peer"),
                    (b"content-length", str(len(BODY)).encode()),
                ])
                self.http.send_data(ev.stream_id, BODY, end_stream=True)
                self.transmit()


async def run_server(args):
    config = QuicConfiguration(is_client=False, alpn_protocols=alpn_list(args.alpn))
    config.load_cert_chain(args.cert, args.key)

    proto_cls = type("ServerProtocol_" + args.alpn.replace("-", "_"),
                     (ServerProtocol,), {"alpn": args.alpn})
    server = await serve(args.host, args.port, configuration=config,
                         create_protocol=proto_cls, retry=args.retry)
    host, port = server._transport.get_extra_info("sockname")[:2]
    print(f"listening on {host}:{port}", file=sys.stderr, flush=True)
    await asyncio.Event().wait()


def server_main(args):
    try:
        asyncio.run(run_server(args))
    except KeyboardInterrupt:
        pass
    return 0


# --------------------------------------------------------------------------


def main(argv):
    p = argparse.ArgumentParser(description="aioquic peer for quiche-ev tests")
    p.add_argument("-v", "--verbose", action="store_true", help="aioquic debug log")
    sub = p.add_subparsers(dest="cmd", required=True)

    c = sub.add_parser("client")
    c.add_argument("--alpn", choices=["hq-interop", "h3"], default="hq-interop")
    c.add_argument("--token", help="address validation token (hex) for the first Initial")
    c.add_argument("--timeout", type=float, default=10.0)
    c.add_argument("host")
    c.add_argument("port", type=int)
    c.add_argument("path", nargs="?")

    s = sub.add_parser("server")
    s.add_argument("--alpn", choices=["hq-interop", "h3"], default="hq-interop")
    s.add_argument("--cert", required=True)
    s.add_argument("--key", required=True)
    s.add_argument("--retry", action="store_true", help="do stateless retry")
    s.add_argument("host")
    s.add_argument("port", type=int)

    args = p.parse_args(argv)
    if args.cmd == "client" and args.token is not None:
        try:
            bytes.fromhex(args.token)
        except ValueError:
            p.error("--token must be hex")
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if args.cmd == "client":
        return client_main(args)
    return server_main(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
