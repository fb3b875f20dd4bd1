#!/usr/bin/env python3
"""A small aioquic peer for the quiche-ev tests and the interop runner.

    aioquic_peer.py client --alpn hq-interop|h3 [--token HEX] [--timeout S]
                           [--output-dir DIR] [--multiconnect]
                           [--session-file F] [--early-data] [--key-update]
                           [--migrate] [--chacha20] [--v2]
                           [--keylog F] [--qlog-dir D]
                           HOST PORT [PATH...]
    aioquic_peer.py server --alpn hq-interop|h3 --cert C --key K [--retry]
                           [--root DIR] [--tickets] [--chacha20]
                           [--connect-udp [--no-datagrams]]
                           [--keylog F] [--qlog-dir D] HOST PORT
    aioquic_peer.py connect-udp [--count N] [--timeout S] [--no-datagrams]
                           HOST PORT TARGET_HOST TARGET_PORT

client: fetches each PATH (default "/" for h3, "/index.html" for
hq-interop), all at once on one connection, and exits 0 only when every
response arrived in full (and, for h3, with status 200). Without
--output-dir the bodies go to stdout, in the order of the paths; with it,
each is saved as DIR/<last path segment>. The server's certificate is not
verified. `--token HEX` puts that address-validation token in the first
Initial packet. Exit status: 0 ok, 1 bad or incomplete response, 2 usage,
3 timeout, 4 connection error.

  --multiconnect   one connection per path, one after another
  --session-file   resume the TLS session stored in F (if F exists) and
                   store the session ticket the server sends into F
  --early-data     with a stored session, send the requests in 0-RTT
  --key-update     update the 1-RTT keys as soon as the handshake is done
  --migrate        once response data flows, move to a new local port and
                   a new connection ID (active migration, RFC 9000 §9)
  --chacha20       offer only TLS_CHACHA20_POLY1305_SHA256
  --v2             start in QUIC v1 and offer v2 (compatible version
                   negotiation, RFC 9368/9369)

connect-udp: a CONNECT-UDP client (RFC 9298) over HTTP/3: waits for the
server's SETTINGS (which must allow extended CONNECT and HTTP Datagrams),
opens a tunnel to TARGET_HOST:TARGET_PORT with an extended CONNECT
(`:protocol connect-udp`, the path /.well-known/masque/udp/{host}/{port}/),
sends N HTTP Datagrams (Context ID 0, then a numbered payload of 7 to
1006 bytes), at most 16 unanswered at a time, and expects each back
intact (a UDP echo behind the proxy); then ends its side of the stream
and waits for the proxy to end its own. Prints "echoed N/N bytes=B" and
exits 0 only when every one came back whole. `--no-datagrams`: takes no
datagrams itself (no max_datagram_frame_size, no SETTINGS_H3_DATAGRAM)
and only opens the tunnel: exit 0 if the proxy accepts it, 1 if not.

server: without --root, answers every request with the body "byez\\n" (h3:
status 200, a server header and content-length 5); with --root, serves the
files under DIR (h3: 404, hq-interop: a stream reset, for anything missing
or outside DIR). An h3 POST is answered once its body (and any trailers)
ended, with one line: "received BYTES crc32 HEX trailers NAME=VALUE,..."
(the body is counted, never kept). Prints "listening on HOST:PORT" on stderr once bound (PORT
0 lets the kernel pick) and runs until killed. `--retry` makes it do
stateless retry; `--tickets` issues session tickets (resumption and 0-RTT).
`--connect-udp` (h3) makes it a CONNECT-UDP proxy instead: an extended
CONNECT to /.well-known/masque/udp/{host}/{port}/ opens a UDP socket to
that target, HTTP Datagrams with Context ID 0 go to it and what it
answers comes back the same way, until the client ends the stream; it
sends SETTINGS_H3_DATAGRAM and takes QUIC datagrams, unless
`--no-datagrams` (then it takes none, and its SETTINGS say so).

Both: `--keylog F` appends TLS secrets to F (NSS key log format);
`--qlog-dir D` writes one qlog per connection into D.

hq-interop is HTTP/0.9 over QUIC: the client sends "GET /path\\r\\n" on a
bidirectional stream and finishes it; the server sends the raw body and
finishes its side.

Run it with the venv that `make peers` creates (target/venv/bin/python).
"""

import argparse
import asyncio
import logging
import os
import pickle
import socket
import ssl
import sys
import zlib

from aioquic.asyncio import QuicConnectionProtocol, connect, serve
from aioquic.h0.connection import H0_ALPN, H0Connection
from urllib.parse import unquote

from aioquic.h3.connection import H3_ALPN, H3Connection, Setting
from aioquic.h3.events import DatagramReceived, DataReceived, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import ConnectionTerminated, QuicEvent, StreamReset
from aioquic.quic.logger import QuicFileLogger
from aioquic.quic.packet import QuicProtocolVersion
from aioquic.tls import CipherSuite

BODY = b"byez\n"

EXIT_OK = 0
EXIT_BAD_RESPONSE = 1
EXIT_USAGE = 2
EXIT_TIMEOUT = 3
EXIT_CONN_ERROR = 4

# Bytes of response data after which --migrate moves the connection: well
# into the transfer, once the server has issued spare connection IDs.
MIGRATE_AFTER = 64 * 1024


def alpn_list(alpn):
    return list(H0_ALPN) if alpn == "hq-interop" else list(H3_ALPN)


def make_http(alpn, quic):
    return H0Connection(quic) if alpn == "hq-interop" else H3Connection(quic)


def configure(config, args):
    """The options client and server share."""
    if args.keylog:
        config.secrets_log_file = open(args.keylog, "a")
    if args.qlog_dir:
        os.makedirs(args.qlog_dir, exist_ok=True)
        config.quic_logger = QuicFileLogger(args.qlog_dir)
    if args.chacha20:
        config.cipher_suites = [CipherSuite.CHACHA20_POLY1305_SHA256]


# --------------------------------------------------------------------------
# client


class Response:
    def __init__(self, path):
        self.path = path
        self.status = None
        self.body = bytearray()
        self.done = asyncio.get_running_loop().create_future()

    def finish(self, ok, why=""):
        if not self.done.done():
            self.done.set_result((ok, why))


class _Forward(asyncio.DatagramProtocol):
    """The socket a migrated client moved to: hands datagrams to the
    connection's protocol."""

    def __init__(self, target):
        self.target = target

    def datagram_received(self, data, addr):
        self.target.datagram_received(data, addr)


class ClientProtocol(QuicConnectionProtocol):
    """Sends requests and collects their responses."""

    def __init__(self, *args, alpn, migrate=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.alpn = alpn
        # From the start: the server's control and QPACK streams can arrive
        # during the handshake, and a HEADERS block may refer to its QPACK
        # encoder stream, so no event may be dropped.
        self.http = make_http(alpn, self._quic)
        self.responses = {}
        self.received = 0
        self.want_migration = migrate
        self.old_transports = []

    def request(self, host, port, path):
        stream_id = self._quic.get_next_available_stream_id()
        headers = [
            (b":method", b"GET"),
            (b":scheme", b"https"),
            (b":authority", f"{host}:{port}".encode()),
            (b":path", path.encode()),
            (b"user-agent", b"aioquic-peer"),
        ]
        resp = Response(path)
        self.responses[stream_id] = resp
        self.http.send_headers(stream_id, headers, end_stream=True)
        self.transmit()
        return resp

    def _fail_all(self, why):
        for r in self.responses.values():
            r.finish(False, why)

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, ConnectionTerminated):
            self._fail_all(f"connection closed by peer: error {event.error_code}"
                           f" {event.reason_phrase!r}")
            return
        if isinstance(event, StreamReset) and event.stream_id in self.responses:
            self.responses[event.stream_id].finish(False, "request was reset")
        for ev in self.http.handle_event(event):
            resp = self.responses.get(getattr(ev, "stream_id", None))
            if resp is None:
                continue
            if isinstance(ev, HeadersReceived):
                for k, v in ev.headers:
                    if k == b":status":
                        resp.status = v.decode(errors="replace")
                    print(f"got header: {k.decode(errors='replace')}="
                          f"{v.decode(errors='replace')}", file=sys.stderr)
                if ev.stream_ended:
                    resp.finish(True)
            elif isinstance(ev, DataReceived):
                resp.body += ev.data
                self.received += len(ev.data)
                if ev.stream_ended:
                    resp.finish(True)
        if self.want_migration and self.received >= MIGRATE_AFTER:
            self.want_migration = False
            asyncio.ensure_future(self.migrate())

    async def migrate(self):
        """Active migration: a new socket (new local port) and the next
        connection ID the server issued."""
        sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(("::", 0, 0, 0))
        transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: _Forward(self), sock=sock)
        # The old socket stays open: the server may still answer there
        # until it has validated the new path.
        self.old_transports.append(self._transport)
        self._transport = transport
        self._quic.change_connection_id()
        self.transmit()
        print(f"migrated to local port {sock.getsockname()[1]}", file=sys.stderr, flush=True)


def client_config(args, session_ticket=None):
    config = QuicConfiguration(is_client=True, alpn_protocols=alpn_list(args.alpn))
    config.verify_mode = ssl.CERT_NONE
    if args.token:
        config.token = bytes.fromhex(args.token)
    if args.v2:
        config.original_version = QuicProtocolVersion.VERSION_1
        config.supported_versions = [QuicProtocolVersion.VERSION_2, QuicProtocolVersion.VERSION_1]
    config.session_ticket = session_ticket
    configure(config, args)
    return config


def load_session(path):
    if path and os.path.exists(path):
        with open(path, "rb") as f:
            return pickle.load(f)
    return None


def store_session(path):
    def handler(ticket):
        with open(path, "wb") as f:
            pickle.dump(ticket, f)
    return handler


async def fetch(args, paths):
    """One connection for `paths`; returns [(path, ok, why, status, body)]."""
    ticket = load_session(args.session_file)
    config = client_config(args, ticket)
    early = bool(args.early_data and ticket is not None)

    def create(*a, **kw):
        return ClientProtocol(*a, alpn=args.alpn, migrate=args.migrate, **kw)

    async with connect(args.host, args.port, configuration=config, create_protocol=create,
                       session_ticket_handler=store_session(args.session_file)
                       if args.session_file else None,
                       wait_connected=not early) as proto:
        if not early:
            print(f"connection established: {args.alpn}", file=sys.stderr)
        if args.key_update:
            proto._quic.request_key_update()
            proto.transmit()
        responses = [proto.request(args.host, args.port, p) for p in paths]
        results = []
        for r in responses:
            ok, why = await r.done
            results.append((r.path, ok, why, r.status, bytes(r.body)))
        for t in proto.old_transports:
            t.close()
    return results


async def run_client(args):
    paths = args.paths or [("/index.html" if args.alpn == "hq-interop" else "/")]
    results = []
    if args.multiconnect:
        for p in paths:
            results += await fetch(args, [p])
    else:
        results = await fetch(args, paths)

    # Without --output-dir, stdout gets every body (even a partial one), in
    # the order of the paths; with it, only complete responses are saved.
    code, out = EXIT_OK, bytearray()
    for path, ok, why, status, body in results:
        if not args.output_dir:
            out += body
        if not ok:
            print(f"error: {path}: {why}", file=sys.stderr)
            code = max(code, EXIT_CONN_ERROR)
        elif args.alpn == "h3" and status != "200":
            print(f"error: {path}: status {status}", file=sys.stderr)
            code = max(code, EXIT_BAD_RESPONSE)
        elif args.output_dir:
            name = os.path.basename(path.rstrip("/")) or "index.html"
            with open(os.path.join(args.output_dir, name), "wb") as f:
                f.write(body)
    return code, bytes(out)


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
        # aioquic raises a bare ConnectionError when the connection ends
        # before its handshake completed.
        print(f"error: {str(e) or 'the connection closed before the handshake completed'}",
              file=sys.stderr)
        return EXIT_CONN_ERROR
    sys.stdout.buffer.write(body)
    sys.stdout.buffer.flush()
    return code


# --------------------------------------------------------------------------
# CONNECT-UDP (RFC 9298): HTTP Datagrams (RFC 9297) on an extended CONNECT


MASQUE_PREFIX = "/.well-known/masque/udp/"
# Unanswered datagrams a tunnel client keeps in flight.
WINDOW = 16


class DatagramH3(H3Connection):
    """HTTP/3 that sends SETTINGS_H3_DATAGRAM=1 (aioquic's own sends it
    only with WebTransport)."""

    def _get_local_settings(self):
        settings = super()._get_local_settings()
        settings[Setting.H3_DATAGRAM] = 1
        return settings


def tunnel_payload(i):
    """Datagram i's payload: its number, then 0 to 999 bytes more (what
    fits a QUIC packet of aioquic's 1200 bytes)."""
    return f"{i:06d}:".encode() + bytes((i + k) % 251 for k in range((i * 397) % 1000))


class TunnelClient(QuicConnectionProtocol):
    datagrams = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.http = DatagramH3(self._quic) if self.datagrams else H3Connection(self._quic)
        loop = asyncio.get_running_loop()
        self.settings = loop.create_future()
        self.status = loop.create_future()
        self.ended = loop.create_future()
        self.echoes = asyncio.Queue()
        self.stream_id = None

    def _fail(self, why):
        for f in (self.settings, self.status, self.ended):
            if not f.done():
                f.set_exception(ConnectionError(why))

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, ConnectionTerminated):
            self._fail(f"connection closed by peer: error {event.error_code} {event.reason_phrase!r}")
            return
        for ev in self.http.handle_event(event):
            if getattr(ev, "stream_id", None) != self.stream_id:
                continue
            if isinstance(ev, HeadersReceived):
                status = dict(ev.headers).get(b":status", b"").decode()
                print(f"got response: {status}", file=sys.stderr, flush=True)
                if not self.status.done():
                    self.status.set_result(status)
                if ev.stream_ended and not self.ended.done():
                    self.ended.set_result(True)
            elif isinstance(ev, DataReceived) and ev.stream_ended and not self.ended.done():
                self.ended.set_result(True)
            elif isinstance(ev, DatagramReceived):
                self.echoes.put_nowait(ev.data)
        if self.http.received_settings is not None and not self.settings.done():
            self.settings.set_result(self.http.received_settings)


async def run_tunnel(args):
    config = QuicConfiguration(is_client=True, alpn_protocols=list(H3_ALPN),
                               max_datagram_frame_size=None if args.no_datagrams else 65536)
    config.verify_mode = ssl.CERT_NONE
    proto_cls = type("TunnelClient_", (TunnelClient,), {"datagrams": not args.no_datagrams})
    async with connect(args.host, args.port, configuration=config, create_protocol=proto_cls) as proto:
        settings = await proto.settings
        if settings.get(Setting.ENABLE_CONNECT_PROTOCOL) != 1 or settings.get(Setting.H3_DATAGRAM) != 1:
            print(f"error: the server's SETTINGS do not allow CONNECT-UDP: {settings}", file=sys.stderr)
            return EXIT_BAD_RESPONSE
        sid = proto._quic.get_next_available_stream_id()
        proto.stream_id = sid
        host = args.target_host if ":" not in args.target_host else args.target_host.replace(":", "%3A")
        proto.http.send_headers(sid, [
            (b":method", b"CONNECT"),
            (b":protocol", b"connect-udp"),
            (b":scheme", b"https"),
            (b":authority", f"{args.host}:{args.port}".encode()),
            (b":path", f"{MASQUE_PREFIX}{host}/{args.target_port}/".encode()),
            (b"capsule-protocol", b"?1"),
        ], end_stream=False)
        proto.transmit()
        if await proto.status != "200":
            print("error: the tunnel was refused", file=sys.stderr)
            return EXIT_BAD_RESPONSE
        if args.no_datagrams:
            return EXIT_OK
        expected = {tunnel_payload(i) for i in range(args.count)}
        echoed, total, sent = 0, 0, 0
        while echoed < args.count:
            while sent < args.count and sent - echoed < WINDOW:
                proto.http.send_datagram(sid, b"\x00" + tunnel_payload(sent))
                sent += 1
            proto.transmit()
            data = await proto.echoes.get()
            if data[:1] != b"\x00" or data[1:] not in expected:
                print(f"error: a datagram came back altered: {data[:32]!r}...", file=sys.stderr)
                return EXIT_BAD_RESPONSE
            expected.discard(data[1:])
            echoed += 1
            total += len(data) - 1
        proto.http.send_data(sid, b"", end_stream=True)
        proto.transmit()
        await proto.ended
    print(f"echoed {echoed}/{args.count} bytes={total}")
    return EXIT_OK


def tunnel_main(args):
    async def with_timeout():
        return await asyncio.wait_for(run_tunnel(args), timeout=args.timeout)
    try:
        return asyncio.run(with_timeout())
    except asyncio.TimeoutError:
        print(f"error: not done within {args.timeout}s", file=sys.stderr)
        return EXIT_TIMEOUT
    except ConnectionError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_CONN_ERROR


class _Relay(asyncio.DatagramProtocol):
    """The UDP socket of one tunnel: what the target sends goes back as an
    HTTP Datagram with Context ID 0."""

    def __init__(self, proto, stream_id):
        self.proto = proto
        self.stream_id = stream_id

    def datagram_received(self, data, addr):
        self.proto.http.send_datagram(self.stream_id, b"\x00" + data)
        self.proto.transmit()


class ProxyProtocol(QuicConnectionProtocol):
    """A CONNECT-UDP proxy."""

    datagrams = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.http = DatagramH3(self._quic) if self.datagrams else H3Connection(self._quic)
        self.tunnels = {}

    async def open_tunnel(self, stream_id, path):
        parts = path[len(MASQUE_PREFIX):].split("/") if path.startswith(MASQUE_PREFIX) else []
        if len(parts) < 2 or not parts[1].isdigit():
            self.http.send_headers(stream_id, [(b":status", b"400")], end_stream=True)
            self.transmit()
            return
        host, port = unquote(parts[0]), int(parts[1])
        transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: _Relay(self, stream_id), remote_addr=(host, port))
        self.tunnels[stream_id] = transport
        print(f"tunnel on stream {stream_id} to {host}:{port}", file=sys.stderr, flush=True)
        self.http.send_headers(stream_id, [(b":status", b"200"), (b"capsule-protocol", b"?1")])
        self.transmit()

    def quic_event_received(self, event: QuicEvent) -> None:
        for ev in self.http.handle_event(event):
            if isinstance(ev, HeadersReceived):
                req = dict(ev.headers)
                if req.get(b":method") == b"CONNECT" and req.get(b":protocol") == b"connect-udp":
                    asyncio.ensure_future(self.open_tunnel(ev.stream_id, req.get(b":path", b"").decode()))
                else:
                    self.http.send_headers(ev.stream_id, [(b":status", b"404")], end_stream=True)
                    self.transmit()
            elif isinstance(ev, DatagramReceived):
                t = self.tunnels.get(ev.stream_id)
                if t is not None and ev.data[:1] == b"\x00":
                    t.sendto(ev.data[1:])
            elif isinstance(ev, DataReceived) and ev.stream_ended:
                t = self.tunnels.pop(ev.stream_id, None)
                if t is not None:
                    t.close()
                    print(f"tunnel on stream {ev.stream_id} ended", file=sys.stderr, flush=True)
                self.http.send_data(ev.stream_id, b"", end_stream=True)
                self.transmit()


# --------------------------------------------------------------------------
# server


def resolve(root, path):
    """The file under `root` that `path` names, or None (missing, not a
    regular file, or outside root)."""
    path = path.split("?", 1)[0]
    full = os.path.realpath(os.path.join(root, path.lstrip("/")))
    if not full.startswith(os.path.realpath(root) + os.sep) or not os.path.isfile(full):
        return None
    return full


class ServerProtocol(QuicConnectionProtocol):
    """Answers every request with BODY, or with the file under `root`."""

    alpn = "h3"
    root = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.http = make_http(self.alpn, self._quic)
        # POST bodies being received: stream -> [bytes, crc32, trailers]
        self.uploads = {}

    def answer_upload(self, stream_id):
        n, crc, trailers = self.uploads.pop(stream_id)
        line = "received %d crc32 %08x trailers %s\n" % (
            n, crc, ",".join(f"{k.decode()}={v.decode()}" for k, v in trailers) or "-")
        print(f"upload on stream {stream_id}: {line.strip()}", file=sys.stderr, flush=True)
        self.http.send_headers(stream_id, [(b":status", b"200"), (b"server", b"aioquic-peer")])
        self.http.send_data(stream_id, line.encode(), end_stream=True)
        self.transmit()

    def answer(self, stream_id, path):
        if self.root is None:
            body = BODY
        else:
            full = resolve(self.root, path)
            if full is None:
                if self.alpn == "h3":
                    self.http.send_headers(stream_id, [(b":status", b"404")], end_stream=True)
                else:
                    self._quic.reset_stream(stream_id, 0x100)
                self.transmit()
                return
            with open(full, "rb") as f:
                body = f.read()
        self.http.send_headers(stream_id, [
            (b":status", b"200"),
            (b"server", b"aioquic-peer"),
            (b"content-length", str(len(body)).encode()),
        ])
        self.http.send_data(stream_id, body, end_stream=True)
        self.transmit()

    def quic_event_received(self, event: QuicEvent) -> None:
        for ev in self.http.handle_event(event):
            upload = self.uploads.get(getattr(ev, "stream_id", None))
            if upload is not None:
                if isinstance(ev, DataReceived):
                    upload[0] += len(ev.data)
                    upload[1] = zlib.crc32(ev.data, upload[1])
                elif isinstance(ev, HeadersReceived):
                    upload[2] += ev.headers
                if ev.stream_ended:
                    self.answer_upload(ev.stream_id)
                continue
            if isinstance(ev, HeadersReceived):
                req = {k: v for k, v in ev.headers}
                if self.alpn == "h3" and req.get(b":method") == b"POST" and not ev.stream_ended:
                    self.uploads[ev.stream_id] = [0, 0, []]
                    continue
                path = req.get(b":path", b"").decode(errors="replace")
                print(f"request on stream {ev.stream_id}: "
                      f"{req.get(b':method', b'').decode(errors='replace')} {path}",
                      file=sys.stderr, flush=True)
                self.answer(ev.stream_id, path)


class TicketStore:
    def __init__(self):
        self.tickets = {}

    def add(self, ticket):
        self.tickets[ticket.ticket] = ticket

    def pop(self, label):
        return self.tickets.pop(label, None)


async def run_server(args):
    config = QuicConfiguration(is_client=False, alpn_protocols=alpn_list(args.alpn))
    config.load_cert_chain(args.cert, args.key)
    configure(config, args)

    proto_cls = type("ServerProtocol_" + args.alpn.replace("-", "_"),
                     (ServerProtocol,), {"alpn": args.alpn, "root": args.root})
    if args.connect_udp:
        if not args.no_datagrams:
            config.max_datagram_frame_size = 65536
        proto_cls = type("ProxyProtocol_", (ProxyProtocol,), {"datagrams": not args.no_datagrams})
    tickets = TicketStore() if args.tickets else None
    server = await serve(args.host, args.port, configuration=config,
                         create_protocol=proto_cls, retry=args.retry,
                         session_ticket_fetcher=tickets.pop if tickets else None,
                         session_ticket_handler=tickets.add if tickets else None)
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
    s = sub.add_parser("server")
    t = sub.add_parser("connect-udp")
    t.add_argument("--count", type=int, default=100)
    t.add_argument("--timeout", type=float, default=10.0)
    t.add_argument("--no-datagrams", action="store_true", help="take no datagrams; only open the tunnel")
    t.add_argument("host")
    t.add_argument("port", type=int)
    t.add_argument("target_host")
    t.add_argument("target_port", type=int)
    for q in (c, s):
        q.add_argument("--alpn", choices=["hq-interop", "h3"], default="hq-interop")
        q.add_argument("--keylog", help="append TLS secrets to this file")
        q.add_argument("--qlog-dir", help="write qlog files here")
        q.add_argument("--chacha20", action="store_true", help="only ChaCha20-Poly1305")

    c.add_argument("--token", help="address validation token (hex) for the first Initial")
    c.add_argument("--timeout", type=float, default=10.0)
    c.add_argument("--output-dir", help="save each body as DIR/<last path segment>")
    c.add_argument("--multiconnect", action="store_true", help="one connection per path")
    c.add_argument("--session-file", help="resume from / store the session here")
    c.add_argument("--early-data", action="store_true", help="requests in 0-RTT when resuming")
    c.add_argument("--key-update", action="store_true", help="update keys after the handshake")
    c.add_argument("--migrate", action="store_true", help="move to a new port mid-transfer")
    c.add_argument("--v2", action="store_true", help="offer QUIC v2 (compatible negotiation)")
    c.add_argument("host")
    c.add_argument("port", type=int)
    c.add_argument("paths", nargs="*", metavar="path")

    s.add_argument("--cert", required=True)
    s.add_argument("--key", required=True)
    s.add_argument("--retry", action="store_true", help="do stateless retry")
    s.add_argument("--root", help="serve the files under this directory")
    s.add_argument("--tickets", action="store_true", help="issue session tickets")
    s.add_argument("--connect-udp", action="store_true", help="be a CONNECT-UDP proxy (h3)")
    s.add_argument("--no-datagrams", action="store_true", help="with --connect-udp: take no datagrams")
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
    if args.cmd == "connect-udp":
        return tunnel_main(args)
    return server_main(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
