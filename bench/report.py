"""`python -m bench.report <results.json>...`: the bench's JSON as the Markdown tables the docs quote.

`python -m bench.report --goals <standin.json> <node.json>`: every metric that has a goal, one
column per upstream, the summary table the README and docs quote.

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
            spread = f"{fmt(m['min'])} - {fmt(m['max'])}" if len(m["samples"]) > 1 else ""
            goal = f"{m['goal']}{_mark(m)}" if m["goal"] else ""
            out.append(f"| {m['name']} | {fmt(m['median'])} | {spread} | {m['unit']} | {goal} |")
        out.append("")
    return "\n".join(out)


def _mark(metric: dict[str, Any]) -> str:
    return {True: " ✔", False: " **missed**", None: ""}[metric["ok"]]


def goals(bodies: list[dict[str, Any]]) -> str:
    """Every metric with a goal, in the order the figures give them, one column per upstream."""
    keys = [body.get("upstream", {}).get("key", "?") for body in bodies]
    rows: dict[str, dict[str, dict[str, Any]]] = {}
    for key, body in zip(keys, bodies, strict=True):
        for fig in body["figures"].values():
            for metric in fig.get("metrics") or []:
                if metric.get("goal"):
                    rows.setdefault(metric["name"], {})[key] = metric
    out = [
        "| metric | goal | " + " | ".join(f"`{key}`" for key in keys) + " |",
        "|---|---|" + "---|" * len(keys),
    ]
    for name, by_key in rows.items():
        cells = []
        for key in keys:
            m = by_key.get(key)
            if m is None:
                cells.append("not measured")
                continue
            spread = f" ({fmt(m['min'])} - {fmt(m['max'])})" if len(m["samples"]) > 1 else ""
            cells.append(f"{fmt(m['median'])}{spread} {m['unit']}{_mark(m)}")
        goal = next(iter(by_key.values()))["goal"]
        out.append(f"| {name} | {goal} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    args = list(argv if argv is not None else sys.argv[1:])
    summary = "--goals" in args
    paths = [Path(p) for p in args if p != "--goals"]
    if not paths:
        print(__doc__, file=sys.stderr)
        return 2
    bodies = [json.loads(path.read_text()) for path in paths]
    if summary:
        print(goals(bodies))
        return 0
    for body in bodies:
        print(markdown(body))
    return 0


if __name__ == "__main__":
    sys.exit(main())
