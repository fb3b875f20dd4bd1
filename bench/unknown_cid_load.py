#!/usr/bin/env python3
"""Unknown-CID load for bench/bench.py (Python 3 standard library only).

    python3 unknown_cid_load.py HOST PORT [--rate PPS] [--seconds S]
                                [--min-len N] [--max-len N]

Sends --rate (default 10000) short-header datagrams a second, for --seconds
(default 3), from one UDP socket to HOST PORT. Each one looks like a 1-RTT
packet of a connection the server never had: first byte 0b01xxxxxx (short
header, fixed bit set), 16 random bytes where a server's connection ID
would be, then random bytes (packet number, payload, tag), --min-len to
--max-len (60-100) bytes in all. The pacing is by the clock: whenever it
wakes, it sends every datagram that is due by then, so the rate holds even
if a wake-up comes late (the largest such catch-up is reported).

It counts what comes back on the same socket, by kind:
  vn     long header with version field 0 (Version Negotiation)
  short  short header (what a Stateless Reset looks like, RFC 9000 §10.3)
  other  anything else (a long header with a non-zero version)
and keeps listening --linger seconds (0.5) after the last send.

Prints one JSON line on stdout at the end: sent, seconds (of sending),
rate (achieved), max_catch_up (the most datagrams sent in one wake-up),
replies, vn, short, other, reply_bytes, refused (sends that failed with
an ICMP port unreachable from an earlier datagram: the server is gone).
"""

import argparse
import json
import os
import socket
import sys
import time

DCID_LEN = 16


def packet(min_len, max_len):
    n = min_len + int.from_bytes(os.urandom(1), "big") % (max_len - min_len + 1)
    body = bytearray(os.urandom(n))
    body[0] = 0x40 | (body[0] & 0x3F)  # short header, fixed bit; the DCID follows
    return bytes(body)


class Replies:
    def __init__(self):
        self.vn = self.short = self.other = self.bytes = self.refused = 0

    def take(self, data):
        self.bytes += len(data)
        if not data:
            self.other += 1
        elif data[0] & 0x80 == 0:
            self.short += 1
        elif len(data) >= 5 and data[1:5] == b"\0\0\0\0":
            self.vn += 1
        else:
            self.other += 1

    @property
    def total(self):
        return self.vn + self.short + self.other


def drain(sock, replies):
    while True:
        try:
            data = sock.recv(2048, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return
        except ConnectionRefusedError:  # an ICMP error: the server is gone
            replies.refused += 1
            return
        replies.take(data)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("--rate", type=float, default=10000.0)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--min-len", type=int, default=60)
    ap.add_argument("--max-len", type=int, default=100)
    ap.add_argument("--linger", type=float, default=0.5)
    args = ap.parse_args()
    if not 1 + DCID_LEN < args.min_len <= args.max_len:
        ap.error("need 17 < --min-len <= --max-len")

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    sock.connect((args.host, args.port))
    replies = Replies()
    total = int(args.rate * args.seconds)
    sent = max_catch_up = 0
    t0 = time.monotonic()
    while sent < total:
        now = time.monotonic()
        due = min(total, int((now - t0) * args.rate) + 1)
        max_catch_up = max(max_catch_up, due - sent)
        while sent < due:
            try:
                sock.send(packet(args.min_len, args.max_len))
            except ConnectionRefusedError:  # an ICMP error from an earlier send
                replies.refused += 1
                continue
            sent += 1
        drain(sock, replies)
        wake = t0 + sent / args.rate
        left = wake - time.monotonic()
        if left > 0:
            time.sleep(left)
    elapsed = time.monotonic() - t0
    end = time.monotonic() + args.linger
    while time.monotonic() < end:
        drain(sock, replies)
        time.sleep(0.005)
    drain(sock, replies)
    print(json.dumps({"sent": sent, "seconds": round(elapsed, 4), "rate": sent / elapsed,
                      "max_catch_up": max_catch_up, "replies": replies.total, "vn": replies.vn,
                      "short": replies.short, "other": replies.other, "reply_bytes": replies.bytes,
                      "refused": replies.refused}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
