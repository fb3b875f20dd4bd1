"""Opens N QUIC connections (hq-interop) to HOST PORT and keeps them open
and idle, pinging each once a second so the server's 5 s idle timeout never
fires. Prints "ready N" on stdout once all are established; runs until
stdin closes (or it is killed). Used by bench.py; needs aioquic."""

import asyncio
import ssl
import sys
from contextlib import AsyncExitStack

from aioquic.asyncio import connect
from aioquic.quic.configuration import QuicConfiguration


async def hold(host, port, n):
    config = QuicConfiguration(is_client=True, alpn_protocols=["hq-interop"],
                               verify_mode=ssl.CERT_NONE, idle_timeout=30.0)
    sem = asyncio.Semaphore(32)
    async with AsyncExitStack() as stack:
        conns = []

        async def one():
            async with sem:
                c = await stack.enter_async_context(connect(host, port, configuration=config))
                conns.append(c)

        await asyncio.gather(*(one() for _ in range(n)))
        print(f"ready {len(conns)}", flush=True)

        async def pinger():
            while True:
                await asyncio.sleep(1.0)
                await asyncio.gather(*(c.ping() for c in conns), return_exceptions=True)

        task = asyncio.ensure_future(pinger())
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.read)
        task.cancel()
        for c in conns:
            c.close()


if __name__ == "__main__":
    asyncio.run(hold(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
