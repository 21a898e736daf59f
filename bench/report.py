"""`python -m bench.report <results.json>...`: the bench's JSON as the Markdown tables the docs quote.

The docs' figures are pasted from this output, so they are the bench's own numbers: median,
min - max over the repeats, the goal and whether the median meets it, with the upstream and
the machine each set was measured on.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from bench.harness import fmt


def markdown(body: dict[str, Any]) -> str:
    host = body.get("host_before", {})
    upstream = body.get("upstream", {})
    out = [
        f"Upstream `{upstream.get('key', '?')}`: {upstream.get('description', '?')}. Machine: {host.get('cpus')} "
        f"cores, Python {host.get('python')}, commit {host.get('commit')}, load average "
        f"{fmt(host.get('loadavg', [None])[0])} before, {fmt(body.get('host_after', {}).get('loadavg', [None])[0])} "
        f"after; {body.get('mode')} mode, {body.get('seconds')} s, started {body.get('started')}.",
        "",
    ]
    for fig in body["figures"].values():
        out += [f"**{fig['title']}**", ""]
        if fig.get("error"):
            out += [f"failed: `{fig['error']}`", ""]
            continue
        out += ["| metric | median | min - max | unit | goal |", "|---|---|---|---|---|"]
        for m in fig["metrics"]:
            mark = {True: " ✔", False: " **missed**", None: ""}[m["ok"]]
            spread = f"{fmt(m['min'])} - {fmt(m['max'])}" if len(m["samples"]) > 1 else ""
            goal = f"{m['goal']}{mark}" if m["goal"] else ""
            out.append(f"| {m['name']} | {fmt(m['median'])} | {spread} | {m['unit']} | {goal} |")
        out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    paths = [Path(p) for p in (argv if argv is not None else sys.argv[1:])]
    if not paths:
        print(__doc__, file=sys.stderr)
        return 2
    for path in paths:
        print(markdown(json.loads(path.read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
