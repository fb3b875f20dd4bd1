"""The per-case checks, made as the interop runner makes them
(quic-interop-runner, testcases.py), from the two decrypted traces of a run
and the downloaded files.

Each check returns a short description of what it saw, or raises Failed
with the reason. Where we check more than the runner does, it says so:

- transfer: the client raised its flow-control limits (MAX_DATA or
  MAX_STREAM_DATA) during the transfer, as the runner's description of the
  case asks of clients ("small initial flow control windows ... need to be
  increased");
- multiplexing: beyond the runner's initial_max_streams_bidi <= 1000, the
  server sent MAX_STREAMS;
- chacha20: every suite the client offers is ChaCha20 (the runner reads
  only the first of the list);
- resumption: no 0-RTT packet (the runner's description: "without 0-RTT");
- blackhole, rebind-*: the relay did black out / rebind during the run;
- every case: when the traces can be decrypted, the ALPN the server
  selected is the one the pair was set up for (h3 for http3).

connectionmigration follows the runner's checks with one difference: the
runner inherits rebind-addr's "more than one client IP address", which on
loopback (the client moves to a new port, the relay maps it on 127.0.0.1)
becomes "more than one client address".
"""

import os

from packets import FROM_CLIENT, FROM_SERVER

QUIC_V1 = "0x00000001"
QUIC_V2 = "0x6b3343cf"


class Failed(Exception):
    pass


def need(cond, why):
    if not cond:
        raise Failed(why)


class Run:
    """What a check looks at."""

    def __init__(self, case, www, downloads, files, client, server, relay_stats, alpn,
                 have_keys):
        self.case = case
        self.www = www
        self.downloads = downloads
        self.files = files
        self.client = client  # Trace of the client leg
        self.server = server  # Trace of the server leg
        self.relay = relay_stats
        self.alpn = alpn
        self.have_keys = have_keys


# -- shared pieces -------------------------------------------------------------


def files_intact(run):
    got = sorted(n for n in os.listdir(run.downloads)
                 if os.path.isfile(os.path.join(run.downloads, n)))
    missing = [f for f in run.files if f not in got]
    extra = [f for f in got if f not in run.files]
    need(not missing, f"{len(missing)} of {len(run.files)} files missing (e.g. {missing[0][:20]})"
         if missing else "")
    need(not extra, f"unexpected downloaded files: {', '.join(x[:20] for x in extra[:3])}")
    for name in run.files:
        a, b = os.path.join(run.www, name), os.path.join(run.downloads, name)
        sa, sb = os.path.getsize(a), os.path.getsize(b)
        need(sa == sb, f"{name[:20]}: {sb} bytes downloaded, {sa} served")
        with open(a, "rb") as fa, open(b, "rb") as fb:
            offset = 0
            while True:
                x, y = fa.read(1 << 20), fb.read(1 << 20)
                if not x:
                    break
                if x != y:
                    at = next(i for i in range(len(x)) if x[i] != y[i])
                    raise Failed(f"{name[:20]}: contents differ at byte {offset + at}")
                offset += len(x)
    return f"{len(run.files)} file(s) intact"


def versions(run):
    vs = {p.version for p in run.server.initial(FROM_SERVER)}
    need(vs == {QUIC_V1}, f"server Initial versions {sorted(vs)}, want exactly {QUIC_V1}")


def version_and_files(run):
    versions(run)
    return files_intact(run)


def handshakes(run):
    """Handshakes = distinct source connection IDs of the server's
    Initials (the runner's _count_handshakes)."""
    return len({p.get("quic.scid") for p in run.server.initial(FROM_SERVER)})


def n_handshakes(run, n):
    got = handshakes(run)
    need(got == n, f"{got} handshake(s), want {n}")
    return f"{n} handshake(s)"


def need_keys(run):
    need(run.have_keys, "cannot decrypt the Handshake packets: neither side wrote a key log "
                        "(SSLKEYLOGFILE)")
    if any(p.decrypted for p in run.client.handshake()):
        return
    if run.client.retry():
        raise Failed("cannot decrypt the Handshake packets: the client sent a new ClientHello "
                     "after the Retry and Wireshark looks up the secrets of the first one")
    raise Failed("cannot decrypt the Handshake packets: the key logs hold no secrets for "
                 "this connection")


def alpn_selected(run):
    """The ALPN in the server's EncryptedExtensions, or None when it
    cannot be read."""
    for p in run.client.handshake(FROM_SERVER):
        v = p.get("tls.handshake.extensions_alpn_str")
        if v:
            return v
    return None


def standard(run, n=1):
    """The runner's most common check: n handshakes, v1, files."""
    return ", ".join([n_handshakes(run, n), version_and_files(run)])


def frames_from(trace, direction, frame_type, value_field):
    """Values of `value_field` in frames of `frame_type` sent in
    `direction`."""
    rows = trace.rows(f"quic.frame_type == {frame_type}", ["quic.frame_type", value_field])
    return [v for r in rows if r["direction"] == direction for v in r[value_field]]


# -- the cases -------------------------------------------------------------------


def check_handshake(run):
    files = version_and_files(run)
    need(not run.client.retry(), "a Retry was sent (handshake wants none)")
    return ", ".join([n_handshakes(run, 1), files, "no Retry"])


def check_transfer(run):
    done = standard(run)
    need_keys(run)
    md = frames_from(run.client, FROM_CLIENT, 0x10, "quic.md.maximum_data")
    msd = frames_from(run.client, FROM_CLIENT, 0x11, "quic.msd.maximum_stream_data")
    need(md or msd, "the client never raised its flow-control limits (no MAX_DATA or "
                    "MAX_STREAM_DATA): its initial windows covered the whole transfer")
    return f"{done}, client sent {len(md)} MAX_DATA and {len(msd)} MAX_STREAM_DATA"


def check_longrtt(run):
    done = standard(run)
    hellos = [p for p in run.client.initial(FROM_CLIENT) if "0" in p.all("quic.crypto.offset")]
    need(len(hellos) >= 2, f"{len(hellos)} ClientHello(s) in the client's Initials, "
                           "want at least 2 (a retransmission)")
    return f"{done}, {len(hellos)} ClientHellos"


def check_chacha20(run):
    hs = n_handshakes(run, 1)
    offered = set()
    for p in run.client.initial(FROM_CLIENT):
        if "1" in p.all("tls.handshake.type"):
            offered |= set(p.all("tls.handshake.ciphersuite"))
    need(offered, "no ClientHello found")
    need(offered == {"0x1303"}, f"the client offered {sorted(offered)}, want only 0x1303 "
                                "(TLS_CHACHA20_POLY1305_SHA256)")
    return f"{hs}, only ChaCha20 offered, {version_and_files(run)}"


def check_multiplexing(run):
    need_keys(run)
    done = standard(run)
    limits = [int(v) for p in run.client.handshake(FROM_SERVER)
              for v in p.all("tls.quic.parameter.initial_max_streams_bidi")]
    need(limits, "could not read the server's initial_max_streams_bidi")
    need(max(limits) <= 1000, f"the server's initial_max_streams_bidi is {max(limits)}, "
                              "want at most 1000")
    raised = frames_from(run.client, FROM_SERVER, 0x12, "quic.ms.max_streams")
    need(raised, "the server never raised the stream limit (no MAX_STREAMS)")
    return f"{done}, stream limit {max(limits)} raised to {max(map(int, raised))}"


def check_retry(run):
    done = standard(run)
    tokens = []
    for p in run.client.retry(FROM_SERVER):
        tok = p.get("quic.retry_token")
        need(tok is not None, "a Retry packet without a token")
        tokens.append(tok.replace(":", ""))
    need(tokens, "no Retry packet")
    highest = -1
    for p in run.client.initial(FROM_CLIENT):
        pn = int(p.get("quic.packet_number", "-1"))
        if p.get("quic.token_length") == "0":
            highest = max(highest, pn)
            continue
        need(pn > highest, f"the client reset its packet number after the Retry (PN {pn})")
        if (p.get("quic.token") or "").replace(":", "") in tokens:
            return f"{done}, Retry token used"
    raise Failed("no client Initial carried the Retry's token")


def check_resumption(run):
    need_keys(run)
    hs = n_handshakes(run, 2)
    packets = run.client.handshake(FROM_SERVER)
    scids = [p.get("quic.scid") for p in packets]
    first_has_cert = False
    for p in packets:
        if p.get("quic.scid") == scids[0]:
            first_has_cert = first_has_cert or p.has("tls.handshake.certificates_length")
        elif p.get("quic.scid") == scids[-1]:
            need(not p.has("tls.handshake.certificates_length"),
                 "the server sent a Certificate in the second handshake (not resumed)")
        else:
            raise Failed("a Handshake packet of neither the first nor the second handshake")
    need(first_has_cert, "no Certificate in the first handshake")
    need(not run.client.zero_rtt(), "the client sent 0-RTT (resumption wants none)")
    return f"{hs}, second resumed without a certificate, no 0-RTT, {version_and_files(run)}"


ZERO_RTT_FILES, ZERO_RTT_NAME = 40, 250


def check_zerortt(run):
    hs = n_handshakes(run, 2)
    files = version_and_files(run)
    zero = sum(p.payload_length for p in run.client.zero_rtt())
    need(zero > 0, "the client sent no 0-RTT data")
    one = sum(p.payload_length for p in run.client.packets("quic.header_form == 0")
              if p.direction == FROM_CLIENT and p.type == "1rtt")
    limit = 0.5 * ZERO_RTT_NAME * ZERO_RTT_FILES
    need(one <= limit, f"the client sent {one} bytes in 1-RTT packets, want at most {limit:.0f} "
                       "(requests belong in 0-RTT)")
    return f"{hs}, {files}, {zero} bytes of 0-RTT, {one} of 1-RTT from the client"


def check_http3(run):
    done = standard(run)
    if run.have_keys:
        need(alpn_selected(run) in (None, "h3"), f"ALPN {alpn_selected(run)}, want h3")
    return done


def check_blackhole(run):
    done = standard(run)
    need(run.relay["blackholes"] >= 1 and
         run.relay["to_server"]["blackholed"] + run.relay["to_client"]["blackholed"] > 0,
         "the blackhole never opened: the transfer ended before its trigger")
    dropped = run.relay["to_server"]["blackholed"] + run.relay["to_client"]["blackholed"]
    return f"{done}, {dropped} datagrams blackholed"


def check_keyupdate(run):
    need_keys(run)
    done = standard(run)
    client = [v for r in run.client.rows("quic.header_form == 0", ["quic.key_phase"])
              if r["direction"] == FROM_CLIENT for v in r["quic.key_phase"]]
    server = [v for r in run.server.rows("quic.header_form == 0", ["quic.key_phase"])
              if r["direction"] == FROM_SERVER for v in r["quic.key_phase"]]
    c1, s1 = client.count("1"), server.count("1")
    need(c1 and s1, f"key phase 1 in {c1} client and {s1} server packets, want both > 0 "
                    f"(client phase 0: {client.count('0')}, server: {server.count('0')})")
    return f"{done}, key phase 1: {c1} client / {s1} server packets"


ECN_NONE, ECN_ECT1, ECN_ECT0, ECN_CE = 0, 1, 2, 3


def _ecn(trace, direction):
    rows = trace.rows("quic", ["ip.dsfield.ecn", "ipv6.tclass.ecn", "quic.ack.ect0_count"])
    marks = [0, 0, 0, 0]
    acks = False
    for r in rows:
        if r["direction"] != direction:
            continue
        e = (r["ip.dsfield.ecn"] or r["ipv6.tclass.ecn"] or ["0"])[0]
        marks[int(e)] += 1
        acks = acks or bool(r["quic.ack.ect0_count"])
    return marks, acks


def check_ecn(run):
    need_keys(run)
    done = check_handshake(run)
    cm, c_acks = _ecn(run.client, FROM_CLIENT)
    sm, s_acks = _ecn(run.server, FROM_SERVER)

    def marked_ok(m):
        return m[ECN_NONE] == 0 and m[ECN_CE] == 0 and ((m[ECN_ECT0] == 0) != (m[ECN_ECT1] == 0))
    problems = []
    if not (cm[ECN_ECT0] or cm[ECN_ECT1]):
        problems.append("the client marked no packet ECT")
    elif not marked_ok(cm):
        problems.append(f"client marks inconsistent (not-ECT/ECT1/ECT0/CE: {cm})")
    if not (sm[ECN_ECT0] or sm[ECN_ECT1]):
        problems.append("the server marked no packet ECT")
    elif not marked_ok(sm):
        problems.append(f"server marks inconsistent (not-ECT/ECT1/ECT0/CE: {sm})")
    if not s_acks:
        problems.append("the server's ACKs carry no ECN counts")
    if not c_acks:
        problems.append("the client's ACKs carry no ECN counts")
    need(not problems, "; ".join(problems))
    return f"{done}, ECT marks and ACK-ECN both ways"


def check_amplificationlimit(run):
    need_keys(run)
    need(not run.server.version_negotiation,
         "a Version Negotiation packet (amplificationlimit wants none): the client's first "
         f"Initial used version {', '.join(sorted(run.server.foreign_versions)) or '?'}")
    done = standard(run)
    crypto = 0
    for p in run.server.handshake(FROM_SERVER):
        for off, length in zip(p.all("quic.crypto.offset"), p.all("quic.crypto.length")):
            crypto = max(crypto, int(off) + int(length))
    need(crypto >= 7500, f"the server sent {crypto} bytes of Handshake CRYPTO, want at least "
                         "7500 (is it using the 9-certificate chain?)")
    allowed = tolerance = 0
    rows = run.server.rows("quic", ["quic.header_form", "quic.long.packet_type", "quic.version"])
    for r in rows:
        first_long = (r["quic.header_form"] or ["0"])[0] == "1"
        kind = (r["quic.long.packet_type"] or [""])[0] if first_long else "1rtt"
        size = r["udp_length"] - 8
        if r["direction"] == FROM_CLIENT:
            # A Handshake packet validates the client's address, also when
            # it is coalesced behind an Initial in the same datagram.
            if "2" in (r["quic.long.packet_type"] or []):
                return f"{done}, {crypto} bytes of server Handshake CRYPTO within 3x"
            if kind == "0":
                allowed += 3 * size
                tolerance += 4 * size
        else:
            need(size < tolerance, f"the server sent a {size}-byte datagram with only "
                                   f"{max(allowed, 0)} bytes of its 3x allowance left")
            allowed -= size
            tolerance -= size
    raise Failed("the client never sent a Handshake packet")


def check_multiconnect(run):
    return standard(run, len(run.files))


def check_ipv6(run):
    done = standard(run)
    v4 = [r for r in run.server.rows("quic && ip", []) if r["direction"] == FROM_SERVER]
    need(not v4, f"{len(v4)} IPv4 packets from the server")
    return f"{done}, all over IPv6"


def check_v2(run):
    def versions_of(packets):
        return {p.version for p in packets}
    ci = versions_of(run.client.initial(FROM_CLIENT))
    need(QUIC_V1 in ci, f"client Initial versions {sorted(ci)}, want {QUIC_V1} among them")
    si = versions_of(run.server.initial(FROM_SERVER))
    need(QUIC_V2 in si, f"server Initial versions {sorted(si)}, want {QUIC_V2} among them")
    ch = versions_of(run.client.handshake(FROM_CLIENT))
    need(ch == {QUIC_V2}, f"client Handshake versions {sorted(ch)}, want only {QUIC_V2}")
    sh = versions_of(run.server.handshake(FROM_SERVER))
    need(sh == {QUIC_V2}, f"server Handshake versions {sorted(sh)}, want only {QUIC_V2}")
    return f"switched to v2, {files_intact(run)}"


ACK_ONLY = {"0", "2", "3"}  # PADDING, ACK, ACK_ECN


def _path_validation(run, what="port"):
    """The runner's TestCasePortRebinding check on the server trace: the
    first datagram the server sends to a new client address carries a
    PATH_CHALLENGE, and the client answers every challenge.

    Three differences: a datagram with nothing but ACK and PADDING frames
    does not count as the first (RFC 9000 §9.3 lets a server acknowledge
    on a new path before it validates it; the runner fails ngtcp2 for it,
    depending on timing). The runner counts every change of destination as a
    move, so a server that probes the old address again after a rebinding
    (RFC 9000 §9.3.3) and then returns to the new one fails there; here
    only addresses the server has not sent to before are new. And the
    runner wants every PATH_CHALLENGE answered, which a challenge to an
    old address the NAT has dropped never is; here each new address needs
    an answered challenge."""
    rows = [r for r in run.server.rows("quic", ["quic.path_challenge.data", "quic.frame_type"])
            if r["direction"] == FROM_SERVER]
    addresses = {r["dst"] for r in rows}
    need(len(addresses) > 1, f"the server saw a single client {what} (no rebinding happened?)")
    seen, moves = set(), 0
    for r in rows:
        if set(r["quic.frame_type"]) <= ACK_ONLY:
            continue
        if seen and r["dst"] not in seen:
            moves += 1
            kinds = ",".join(sorted(set(r["quic.frame_type"]), key=int)) or "?"
            need(r["quic.path_challenge.data"],
                 f"the server's first datagram to new client address {r['dst'][0]}:{r['dst'][1]} "
                 f"carried no PATH_CHALLENGE (frame types {kinds})")
        seen.add(r["dst"])
    challenges = {}
    for r in rows:
        challenges.setdefault(r["dst"], set()).update(r["quic.path_challenge.data"])
    responses = {v for r in run.client.rows("quic", ["quic.path_response.data"])
                 if r["direction"] == FROM_CLIENT for v in r["quic.path_response.data"]}
    first = rows[0]["dst"]
    for addr, sent in challenges.items():
        if addr != first:
            need(sent & responses, f"no PATH_CHALLENGE to new client address {addr[0]}:{addr[1]} "
                                   "was answered by a PATH_RESPONSE")
    return moves, sum(len(c & responses) for c in challenges.values())


def check_rebind_port(run):
    need_keys(run)
    done = standard(run)
    need(run.relay["rebinds"] >= 1, "the relay never rebound: the transfer ended before its trigger")
    moves, challenges = _path_validation(run)
    return f"{done}, {moves} new paths validated ({challenges} PATH_CHALLENGEs answered)"


def check_rebind_addr(run):
    need_keys(run)
    ips = {r["dst"][0] for r in run.server.rows("quic", []) if r["direction"] == FROM_SERVER}
    need(len(ips) > 1, f"the server saw a single client address ({', '.join(ips)})")
    return check_rebind_port(run) + f", client addresses {', '.join(sorted(ips))}"


def check_connectionmigration(run):
    need_keys(run)
    done = standard(run)
    moves, challenges = _path_validation(run, "address")
    last = dcid = None
    changed = 0
    for p in run.client.packets("quic.header_form == 0"):
        if p.direction != FROM_CLIENT:
            continue
        if last is not None and p.src != last:
            need(p.get("quic.dcid") != dcid, f"the client's first packet from {p.src[0]}:{p.src[1]} "
                                             "reused the previous connection ID")
            changed += 1
        last, dcid = p.src, p.get("quic.dcid")
    need(changed, "the client never moved to a new address")
    return f"{done}, client moved {changed}x with a new connection ID, {moves} path(s) validated"


CHECKS = {
    "handshake": check_handshake,
    "transfer": check_transfer,
    "longrtt": check_longrtt,
    "chacha20": check_chacha20,
    "multiplexing": check_multiplexing,
    "retry": check_retry,
    "resumption": check_resumption,
    "zerortt": check_zerortt,
    "http3": check_http3,
    "blackhole": check_blackhole,
    "keyupdate": check_keyupdate,
    "ecn": check_ecn,
    "amplificationlimit": check_amplificationlimit,
    "handshakeloss": check_multiconnect,
    "transferloss": standard,
    "handshakecorruption": check_multiconnect,
    "transfercorruption": standard,
    "ipv6": check_ipv6,
    "v2": check_v2,
    "rebind-port": check_rebind_port,
    "rebind-addr": check_rebind_addr,
    "connectionmigration": check_connectionmigration,
}


def check(run):
    """The case's check, then the ALPN; returns what was seen. A failure
    of a client that started in a greased version says so: its first
    round trip (Version Negotiation) is invisible to the runner's checks."""
    try:
        seen = CHECKS[run.case.name](run)
        if run.have_keys and run.case.name != "v2":
            alpn = alpn_selected(run)
            need(alpn in (None, run.alpn), f"the server selected ALPN {alpn}, want {run.alpn}")
    except Failed as e:
        if run.client.foreign_versions and run.case.name != "amplificationlimit":
            raise Failed(f"{e} (the client's first Initial used version "
                         f"{', '.join(sorted(run.client.foreign_versions))}, answered by "
                         "Version Negotiation)") from None
        raise
    return seen
