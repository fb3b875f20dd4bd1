#!/usr/bin/env python3
"""An independent QUIC-LB decoder (draft-ietf-quic-load-balancers-21), for
the tests: written from the draft's text, not from src/quic_lb, so that a
CID our servers issue is checked by a second reading of the algorithm.

    quic_lb_decode.py selftest
        decodes (and encodes) every vector of the draft's Appendix B and its
        worked four-pass example; exits 1 on any mismatch

    quic_lb_decode.py decode --config-id N --server-id-len S --nonce-len L
                             [--key HEX] CID-HEX...
        prints one line per CID: "CID config_id=N server_id=HEX"; exits 1
        (after printing all) if a CID has another config ID or length

Layout (§3, §5): first octet = config ID (3 bits) | 5 bits the load
balancer ignores; then server ID || nonce, in the clear, or encrypted:
one AES-128-ECB block when they make 16 octets (§5.4.1), else a
four-pass Feistel network (§5.4.2) whose round function is AES-128-ECB of
one half expanded to a block (half, zero padding, plaintext length, pass
number), truncated to the other half. For an odd plaintext length the
middle octet is shared: its high nibble belongs to the left half, its low
nibble to the right one.

Needs `cryptography` (the aioquic venv of `make peers` has it).
"""

import argparse
import sys

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes


def aes_ecb(key, block, decrypt=False):
    c = Cipher(algorithms.AES(key), modes.ECB())
    op = c.decryptor() if decrypt else c.encryptor()
    return op.update(block) + op.finalize()


def halves(data, n):
    """The left and right halves of an n-octet string, each ceil(n/2)
    octets; for odd n the middle octet's nibbles are split (left keeps the
    high one, right the low one), the other nibble zeroed."""
    h = (n + 1) // 2
    left = bytearray(data[:h])
    right = bytearray(data[n - h:])
    if n % 2:
        left[-1] &= 0xF0
        right[0] &= 0x0F
    return bytes(left), bytes(right)


def join(left, right, n):
    """The inverse of halves()."""
    h = (n + 1) // 2
    if n % 2 == 0:
        return left + right
    middle = (left[-1] & 0xF0) | (right[0] & 0x0F)
    return left[:h - 1] + bytes([middle]) + right[1:]


def expand(half, n, pass_no):
    return half + bytes(14 - len(half)) + bytes([n, pass_no])


def round_left(key, right, n, pass_no):
    """AES of the expanded right half, truncated to a left half."""
    h = (n + 1) // 2
    out = bytearray(aes_ecb(key, expand(right, n, pass_no))[:h])
    if n % 2:
        out[-1] &= 0xF0
    return bytes(out)


def round_right(key, left, n, pass_no):
    """AES of the expanded left half, truncated to a right half."""
    h = (n + 1) // 2
    out = bytearray(aes_ecb(key, expand(left, n, pass_no))[:h])
    if n % 2:
        out[0] &= 0x0F
    return bytes(out)


def xor(a, b):
    return bytes(x ^ y for x, y in zip(a, b))


def four_pass_encrypt(key, plaintext):
    n = len(plaintext)
    l0, r0 = halves(plaintext, n)
    r1 = xor(r0, round_right(key, l0, n, 1))
    l1 = xor(l0, round_left(key, r1, n, 2))
    r2 = xor(r1, round_right(key, l1, n, 3))
    l2 = xor(l1, round_left(key, r2, n, 4))
    return join(l2, r2, n)


def four_pass_decrypt(key, ciphertext):
    n = len(ciphertext)
    l2, r2 = halves(ciphertext, n)
    l1 = xor(l2, round_left(key, r2, n, 4))
    r1 = xor(r2, round_right(key, l1, n, 3))
    l0 = xor(l1, round_left(key, r1, n, 2))
    r0 = xor(r1, round_right(key, l0, n, 1))
    return join(l0, r0, n)


def encode(config_id, server_id, nonce, key, low_bits):
    plaintext = server_id + nonce
    if key is None:
        body = plaintext
    elif len(plaintext) == 16:
        body = aes_ecb(key, plaintext)
    else:
        body = four_pass_encrypt(key, plaintext)
    return bytes([(config_id << 5) | low_bits]) + body


def decode(cid, server_id_len, nonce_len, key):
    """(config ID, server ID, nonce) of a CID."""
    n = server_id_len + nonce_len
    body = cid[1:1 + n]
    if len(body) < n:
        raise ValueError(f"{cid.hex()} is too short for {1 + n} octets")
    if key is None:
        plaintext = body
    elif n == 16:
        plaintext = aes_ecb(key, body, decrypt=True)
    else:
        plaintext = four_pass_decrypt(key, body)
    return cid[0] >> 5, plaintext[:server_id_len], plaintext[server_id_len:]


# Appendix B: (config ID, server ID, nonce, key, CID), the first octet's
# low bits self-describing the length (CID length - 1).
KEY_B = "8f95f09245765f80256934e50c66207f"
VECTORS = [
    (0, "c4605e", "4504cc4f", None, "07c4605e4504cc4f"),
    (1, "350d28b420", "03487d970b", None, "2a350d28b42003487d970b"),
    (0, "ed793a", "ee080dbf", KEY_B, "0720b1d07b359d3c"),
    (1, "ed793a51d49b8f5fab65", "ee080dbf48", KEY_B, "2fcc381bc74cb4fbad2823a3d1f8fed2"),
    (2, "ed793a51d49b8f5f", "ee080dbf48c0d1e5", KEY_B, "504dd2d05a7b0de9b2b9907afb5ecf8cc3"),
    (0, "ed793a51d49b8f5fab", "ee080dbf48c0d1e55d", KEY_B, "125779c9cc86beb3a3a4a3ca96fce4bfe0cdbc"),
    # §5.4.2's worked example.
    (0, "31441a", "9c69c275", "fdf726a9893ec05c0632d3956680baf0", "0767947d29be054a"),
]


def selftest():
    bad = 0
    for config_id, sid, nonce, key, cid in VECTORS:
        sid, nonce, cid = bytes.fromhex(sid), bytes.fromhex(nonce), bytes.fromhex(cid)
        key = bytes.fromhex(key) if key else None
        got = encode(config_id, sid, nonce, key, len(cid) - 1)
        dec = decode(cid, len(sid), len(nonce), key)
        ok = got == cid and dec == (config_id, sid, nonce)
        print(f"{'ok ' if ok else 'BAD'} {cid.hex()} -> config {dec[0]} server {dec[1].hex()} nonce {dec[2].hex()}")
        bad += not ok
    return 1 if bad else 0


def main(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("selftest")
    d = sub.add_parser("decode")
    d.add_argument("--config-id", type=int, required=True)
    d.add_argument("--server-id-len", type=int, required=True)
    d.add_argument("--nonce-len", type=int, required=True)
    d.add_argument("--key")
    d.add_argument("cids", nargs="+")
    a = p.parse_args(argv)
    if a.cmd == "selftest":
        return selftest()
    key = bytes.fromhex(a.key) if a.key else None
    bad = 0
    for h in a.cids:
        cid = bytes.fromhex(h)
        try:
            config_id, sid, _ = decode(cid, a.server_id_len, a.nonce_len, key)
        except ValueError as e:
            print(f"{h} error={e}")
            bad += 1
            continue
        if config_id != a.config_id or len(cid) != 1 + a.server_id_len + a.nonce_len:
            bad += 1
        print(f"{h} config_id={config_id} server_id={sid.hex()}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
