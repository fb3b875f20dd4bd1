"""Slow HTTP/3 readers for bench/bench.py (needs aioquic: target/venv).

    python slow_readers.py HOST PORT N PATH --expect FILE [--rate BYTES]
                           [--window BYTES] [--max-seconds SECS]

Opens N QUIC connections to HOST PORT (ALPN h3, certificate not verified,
at most 32 handshakes in flight; until its request a connection sends a
PING a second, so the server's idle timeout does not end it). Once all are
up, each GETs PATH (at its own moment within the next second) and reads
the response like an application that takes --rate bytes a second
(default 4096) out of a receive buffer of --window bytes (default 16384):
the request stream's flow-control limit (MAX_STREAM_DATA) is what the
reader has consumed plus the window, raised whenever a quarter of the
window has been consumed since the last raise. So every transfer is held to
about --rate by its reader, not by the network or the server, as with slow
clients on a real network; the server keeps N transfers open, each blocked
on flow control most of the time. Every body byte is compared with FILE
(what the server should send). A body that ends is fetched again on a new
stream.

aioquic raises a stream's receive limit on its own (doubling it when half is
used); the reader replaces that one method (QuicConnection.
_write_stream_limits) for its request streams. If a future aioquic drops
that method, the script says so and exits with status 3.

Protocol on stdin/stdout, one line each:
  out: "ready K N"   once, after every handshake finished or failed
                     (K established out of N asked)
  in:  "mark"        -> out: "mark TIME BYTES ALIVE DONE BAD IDLE WARM": the
                     reader's clock (time.monotonic(), seconds), body bytes
                     received so far (all connections), connections not
                     terminated, bodies received in full, errors (wrong
                     bytes, a status other than 200, a reset stream),
                     live connections that received nothing since the
                     previous mark, live connections that have received
                     3/4 of a window's worth (the start-up burst).
                     The first few errors and connection
                     terminations are described on stderr.
  in:  EOF           -> close every connection and exit 0
It also exits after --max-seconds (default 900).
"""

import argparse
import asyncio
import random
import socket
import ssl
import sys
import time

from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic import connection as quic_connection
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.events import ConnectionTerminated, StreamReset
from aioquic.quic.packet import QuicFrameType

from peer_pool import allow_files, every, serve_commands

HANDSHAKE_TIMEOUT = 15.0
IN_FLIGHT = 32


class Body:
    """One response being read: the reader's consumption and the check."""

    def __init__(self, now):
        self.consumed = 0  # stream bytes the application has taken
        self.last = now
        self.checked = 0  # body bytes compared with the file so far


class SlowReaderConnection(QuicConnection):
    """A QUIC connection whose request streams get flow-control credit only
    as fast as the reader consumes (see the module's description)."""

    def __init__(self, *args, rate, window, **kwargs):
        super().__init__(*args, **kwargs)
        self.rate, self.window = rate, window
        self.bodies = {}  # stream id -> Body

    def _write_stream_limits(self, builder, space, stream):
        body = self.bodies.get(stream.stream_id)
        if body is None:
            return super()._write_stream_limits(builder, space, stream)
        now = time.monotonic()
        received = stream.receiver.highest_offset
        body.consumed = min(received, body.consumed + self.rate * (now - body.last))
        body.last = now
        limit = max(stream.max_stream_data_local, int(body.consumed) + self.window)
        if limit - stream.max_stream_data_local_sent < self.window // 4:
            return
        buf = builder.start_frame(QuicFrameType.MAX_STREAM_DATA,
                                  capacity=quic_connection.MAX_STREAM_DATA_FRAME_CAPACITY,
                                  handler=self._on_max_stream_data_delivery, handler_args=(stream,))
        buf.push_uint_var(stream.stream_id)
        buf.push_uint_var(limit)
        stream.max_stream_data_local = stream.max_stream_data_local_sent = limit


class Reader(QuicConnectionProtocol):
    """One connection: requests the file, checks what arrives, counts."""

    def __init__(self, quic, shared):
        super().__init__(quic)
        self.shared = shared
        self.h3 = H3Connection(quic)
        self.terminated = False
        self.bytes = 0
        self.seen = 0  # self.bytes at the previous mark

    def tick(self):
        """Before its request a connection is kept alive by a PING (the
        server's idle timeout is short); after it, this is when the reader
        may grant more flow-control credit: a blocked stream hears nothing
        from the server."""
        if not self._quic.bodies:
            self._quic.send_ping(0)
        self.transmit()

    def request(self):
        sid = self._quic.get_next_available_stream_id()
        s = self.shared
        self.h3.send_headers(sid, [(b":method", b"GET"), (b":scheme", b"https"),
                                   (b":authority", s.authority.encode()), (b":path", s.path.encode()),
                                   (b"user-agent", b"quiche-ev-bench")], end_stream=True)
        self._quic.bodies[sid] = Body(time.monotonic())
        self.transmit()

    def quic_event_received(self, event):
        if isinstance(event, ConnectionTerminated):
            self.terminated = True
            if not self.shared.closing:
                self.shared.note(f"connection terminated: error {event.error_code:#x}, frame type "
                                 f"{event.frame_type}, reason {event.reason_phrase!r}")
        elif isinstance(event, StreamReset) and event.stream_id in self._quic.bodies:
            self.shared.bad(f"stream {event.stream_id} reset with code {event.error_code}")
        # Not passed on to QuicConnectionProtocol: it would make an asyncio
        # stream reader and writer for every stream, which the H3 layer does.
        for ev in self.h3.handle_event(event):
            self.h3_event(ev)

    def h3_event(self, ev):
        body = self._quic.bodies.get(ev.stream_id)
        if body is None:
            return
        if isinstance(ev, HeadersReceived):
            status = dict(ev.headers).get(b":status")
            if status != b"200":
                self.shared.bad(f"status {status!r}")
        elif isinstance(ev, DataReceived):
            expect = self.shared.content[body.checked:body.checked + len(ev.data)]
            if ev.data != expect:
                self.shared.bad(f"wrong bytes at offset {body.checked}")
            body.checked += len(ev.data)
            self.bytes += len(ev.data)
            if ev.stream_ended:
                del self._quic.bodies[ev.stream_id]
                if body.checked != len(self.shared.content):
                    self.shared.bad(f"body of {body.checked} bytes, want {len(self.shared.content)}")
                self.shared.done += 1
                self.request()


class Shared:
    """What every connection needs: the request, the expected body, the
    counts of the mark line."""

    SAY_AT_MOST = 5

    def __init__(self, authority, path, content):
        self.authority, self.path, self.content = authority, path, content
        self.done = self.errors = self.said = 0
        self.closing = False  # set once we close the connections ourselves

    def bad(self, what):
        self.note(what)
        self.errors += 1

    def note(self, what):
        """Says what happened on stderr (the first few times)."""
        if self.said < self.SAY_AT_MOST:
            self.said += 1
            print(f"slow_readers: {what}", file=sys.stderr, flush=True)


async def open_one(host, port, config, shared, rate, window, sem, conns):
    loop = asyncio.get_running_loop()
    async with sem:
        quic = SlowReaderConnection(configuration=config, rate=rate, window=window)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((host, 0))
        try:
            _, proto = await loop.create_datagram_endpoint(lambda: Reader(quic, shared), sock=sock)
        except OSError:
            sock.close()
            return
        proto.connect((host, port))
        try:
            await asyncio.wait_for(proto.wait_connected(), HANDSHAKE_TIMEOUT)
        except Exception:
            proto.close()
            return
        conns.append(proto)


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("n", type=int)
    ap.add_argument("path")
    ap.add_argument("--expect", required=True, help="the file the server serves at PATH")
    ap.add_argument("--rate", type=int, default=4096)
    ap.add_argument("--window", type=int, default=16384)
    ap.add_argument("--max-seconds", type=float, default=900.0)
    args = ap.parse_args()
    if not callable(getattr(QuicConnection, "_write_stream_limits", None)) or \
            not hasattr(quic_connection, "MAX_STREAM_DATA_FRAME_CAPACITY"):
        print("slow_readers: this aioquic has no QuicConnection._write_stream_limits to replace",
              file=sys.stderr)
        return 3

    loop = asyncio.get_running_loop()
    allow_files(args.n)
    with open(args.expect, "rb") as f:
        shared = Shared(f"{args.host}:{args.port}", args.path, f.read())
    config = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN, verify_mode=ssl.CERT_NONE,
                               idle_timeout=60.0, max_stream_data=args.window)
    sem = asyncio.Semaphore(IN_FLIGHT)
    conns = []
    openers = [asyncio.ensure_future(open_one(args.host, args.port, config, shared, args.rate,
                                              args.window, sem, conns))
               for _ in range(args.n)]
    # Each connection wakes at least once a second, and as often as a
    # quarter of its window is consumed.
    waker = asyncio.ensure_future(every(conns, min(1.0, args.window / 4 / args.rate),
                                        lambda c: c.tick()))

    await asyncio.gather(*openers)
    # The transfers start once every connection is up (handshakes in Python
    # are slow enough without them), each at its own moment within a second.
    for c in conns:
        loop.call_later(random.uniform(0, 1), c.request)
    print(f"ready {len(conns)} {args.n}", flush=True)

    def mark():
        alive = [c for c in conns if not c.terminated]
        idle = sum(1 for c in alive if c.bytes == c.seen)
        for c in conns:
            c.seen = c.bytes
        # Most of the first window is body (the rest is HTTP/3 framing).
        warm = sum(1 for c in alive if c.bytes >= args.window * 3 // 4)
        return (f"mark {time.monotonic():.6f} {sum(c.bytes for c in conns)} {len(alive)} "
                f"{shared.done} {shared.errors} {idle} {warm}")

    await serve_commands({"mark": mark}, args.max_seconds)

    waker.cancel()
    shared.closing = True
    for c in conns:
        c.close()
    await asyncio.sleep(0.2)  # let the CONNECTION_CLOSEs go out
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
