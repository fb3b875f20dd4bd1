"""The interop matrix as markdown (target/interop.md): first a grid in the
runner's style (servers across, clients down, each cell the abbreviations
of the cases that passed / were unsupported / failed), then one table per
role of quiche-ev and one of the peers against each other, cases down and
peers across, each cell the result and its one-line reason.
"""

import time

PASS, FAIL, UNSUPPORTED = "pass", "fail", "unsupported"
OURS = "ours"


class Result:
    def __init__(self, status, reason, seconds=0.0):
        self.status = status
        self.reason = reason
        self.seconds = seconds

    def cell(self):
        reason = self.reason.replace("|", "/").replace("\n", " ")
        return f"**{self.status}**: {reason}" if self.status == FAIL else f"{self.status}: {reason}"


def _table(cases, columns, lookup):
    """Rows: cases; columns: (title, key); lookup(case, key) -> Result."""
    out = ["| case | " + " | ".join(t for t, _ in columns) + " |",
           "|---" * (len(columns) + 1) + "|"]
    for c in cases:
        cells = []
        for _, key in columns:
            r = lookup(c, key)
            cells.append(r.cell() if r else "not run")
        out.append(f"| {c.name} | " + " | ".join(cells) + " |")
    return out


def _grid(cases, results, impls):
    servers = sorted({s for (_, s, _) in results}, key=impls.index)
    clients = sorted({c for (_, _, c) in results}, key=impls.index)
    out = ["| client \\ server | " + " | ".join(servers) + " |",
           "|---" * (len(servers) + 1) + "|"]
    for cl in clients:
        cells = []
        for sv in servers:
            got = {st: "".join(c.abbreviation for c in cases
                               if (c.name, sv, cl) in results and results[(c.name, sv, cl)].status == st)
                   for st in (PASS, UNSUPPORTED, FAIL)}
            if not any((c.name, sv, cl) in results for c in cases):
                cells.append("")
                continue
            cells.append(f"pass: {got[PASS] or '-'}<br>unsupported: {got[UNSUPPORTED] or '-'}"
                         f"<br>**fail: {got[FAIL] or '-'}**" if got[FAIL] else
                         f"pass: {got[PASS] or '-'}<br>unsupported: {got[UNSUPPORTED] or '-'}")
        out.append(f"| {cl} | " + " | ".join(cells) + " |")
    return out


def render(cases, results, peers, impls, title="quiche-ev interop matrix", notes=()):
    """`results`: {(case, server, client): Result}."""
    counts = {st: sum(1 for r in results.values() if r.status == st)
              for st in (PASS, FAIL, UNSUPPORTED)}
    lines = [f"# {title}", "",
             f"Run {time.strftime('%Y-%m-%d %H:%M:%S')}: {len(results)} runs, "
             f"{counts[PASS]} pass, {counts[FAIL]} fail, {counts[UNSUPPORTED]} unsupported "
             "(an endpoint exited 127).", ""]
    lines += list(notes)
    lines += ["## Grid (the runner's style)", "",
              "Case abbreviations: " + ", ".join(f"{c.abbreviation} {c.name}" for c in cases) + ".",
              ""]
    lines += _grid(cases, results, impls) + [""]

    def by(server=None, client=None):
        def lookup(case, key):
            s = server if server else key
            cl = client if client else key
            return results.get((case.name, s, cl))
        return lookup

    lines += ["## quiche-ev as server", "", "Columns: the client.", ""]
    lines += _table(cases, [(p, p) for p in [OURS] + peers], by(server=OURS)) + [""]
    lines += ["## quiche-ev as client", "", "Columns: the server.", ""]
    lines += _table(cases, [(p, p) for p in peers + [OURS]], by(client=OURS)) + [""]
    reference = [(f"{s} server, {c} client", (s, c)) for s in peers for c in peers
                 if s != c and any((x.name, s, c) in results for x in cases)]
    if reference:
        lines += ["## Reference: the peers against each other", ""]
        lines += _table(cases, reference,
                        lambda case, key: results.get((case.name, key[0], key[1]))) + [""]
    lines += ["## The cases", ""]
    lines += [f"- **{c.name}** ({c.abbreviation}): {c.description}" for c in cases] + [""]
    return "\n".join(lines)
