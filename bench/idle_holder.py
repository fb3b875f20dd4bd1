"""Idle-connection holder for bench/bench.py (needs aioquic: target/venv).

    python idle_holder.py HOST PORT N [--interval SECS] [--alpn hq-interop]
                          [--max-seconds SECS]

Opens N QUIC connections to HOST PORT (ALPN hq-interop, certificate not
verified, at most 32 handshakes in flight) and keeps them open and idle: no
stream is ever opened. Each connection sends a PING once per --interval
(default 1 s) so the server's 5 s idle timeout never fires; the pings are
spread evenly over the interval (each connection at its own phase, as
independent clients would be), not sent as one burst.

Protocol on stdin/stdout, one line each:
  out: "ready K N"        once, after every handshake finished or failed
                          (K established out of N asked; K < N is reported,
                          not fatal)
  in:  "count"            -> out: "alive K" (connections not terminated)
  in:  EOF                -> close every connection and exit 0
It also exits (closing everything) after --max-seconds (default 900), so a
holder orphaned by a killed parent does not live forever.
"""

import argparse
import asyncio
import ssl

from aioquic.asyncio import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import ConnectionTerminated

from peer_pool import allow_files, every, serve_commands

HANDSHAKE_TIMEOUT = 15.0
IN_FLIGHT = 32


class Held(QuicConnectionProtocol):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.terminated = False

    def quic_event_received(self, event):
        if isinstance(event, ConnectionTerminated):
            self.terminated = True
        super().quic_event_received(event)

    def send_ping(self):
        if not self.terminated:
            self._quic.send_ping(0)
            self.transmit()


async def open_one(host, port, config, sem, conns):
    async with sem:
        ctx = connect(host, port, configuration=config, create_protocol=Held)
        try:
            proto = await asyncio.wait_for(ctx.__aenter__(), HANDSHAKE_TIMEOUT)
        except Exception:
            return
        conns.append((ctx, proto))


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("n", type=int)
    ap.add_argument("--interval", type=float, default=1.0)
    ap.add_argument("--alpn", default="hq-interop")
    ap.add_argument("--max-seconds", type=float, default=900.0)
    args = ap.parse_args()

    allow_files(args.n)
    config = QuicConfiguration(is_client=True, alpn_protocols=[args.alpn],
                               verify_mode=ssl.CERT_NONE, idle_timeout=60.0)
    sem = asyncio.Semaphore(IN_FLIGHT)
    conns = []
    openers = [asyncio.ensure_future(open_one(args.host, args.port, config, sem, conns))
               for _ in range(args.n)]

    # Ping while the rest are still handshaking: the first ones must not time out.
    ping_task = asyncio.ensure_future(every(conns, args.interval, lambda c: c[1].send_ping()))

    await asyncio.gather(*openers)
    print(f"ready {len(conns)} {args.n}", flush=True)

    def count():
        return f"alive {sum(1 for _, p in conns if not p.terminated)}"

    await serve_commands({"count": count}, args.max_seconds)

    ping_task.cancel()
    for _, proto in conns:
        proto.close()
    try:
        await asyncio.wait_for(asyncio.gather(*(ctx.__aexit__(None, None, None) for ctx, _ in conns),
                                              return_exceptions=True), 5.0)
    except asyncio.TimeoutError:
        pass


if __name__ == "__main__":
    asyncio.run(main())
