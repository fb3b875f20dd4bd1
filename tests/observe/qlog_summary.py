"""Checks that each file given is a JSON-SEQ qlog (RFC 7464: every record is
0x1E, one JSON text, then a line feed) and prints one tab-separated line per
record, for tests/observe.rs to assert on:

    header  FILE_SCHEMA  SERIALIZATION_FORMAT  VANTAGE_POINT_TYPE  TITLE
    event   NAME  PACKET_TYPE  SCID  DCID  INITIATOR  FRAME,TYPES  REASON

("-" for what a record does not have). Exits 1 with a reason on stderr at
the first record that breaks the format.
"""

import json
import sys

RS = b"\x1e"


def fail(path, why):
    sys.stderr.write(f"{path}: {why}\n")
    sys.exit(1)


def field(value):
    if value is None or value == "":
        return "-"
    return str(value).replace("\t", " ").replace("\n", " ")


def records(path):
    data = open(path, "rb").read()
    if not data.startswith(RS):
        fail(path, "does not start with a record separator (0x1E)")
    for i, raw in enumerate(data.split(RS)[1:]):
        if not raw.endswith(b"\n"):
            fail(path, f"record {i} does not end with a line feed (truncated?)")
        try:
            yield i, json.loads(raw)
        except ValueError as e:
            fail(path, f"record {i} is not JSON: {e}")


def header_line(path, rec):
    trace = rec.get("trace")
    if not isinstance(trace, dict):
        fail(path, "the first record has no trace")
    vantage = trace.get("vantage_point") or {}
    return ["header", field(rec.get("file_schema")), field(rec.get("serialization_format")),
            field(vantage.get("type")), field(rec.get("title"))]


def event_line(path, i, rec):
    if not isinstance(rec.get("time"), (int, float)) or not isinstance(rec.get("name"), str):
        fail(path, f"record {i} is not an event (no numeric time and name)")
    data = rec.get("data")
    if not isinstance(data, dict):
        fail(path, f"record {i} has no data object")
    header = data.get("header") or {}
    frames = ",".join(f.get("frame_type", "?") for f in data.get("frames") or [])
    return ["event", rec["name"], field(header.get("packet_type")), field(header.get("scid")),
            field(header.get("dcid")), field(data.get("initiator")), field(frames),
            field(data.get("reason"))]


def main():
    for path in sys.argv[1:]:
        for i, rec in records(path):
            line = header_line(path, rec) if i == 0 else event_line(path, i, rec)
            print("\t".join(line))


main()
