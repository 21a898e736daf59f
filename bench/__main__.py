"""`python -m bench`: every figure on one sandbox, a table on stdout, JSON in bench/results/."""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from pathlib import Path

from bench.figures import FIGURES
from bench.harness import RESULTS, Bench, Figure, Sizes, host_info, table, write_json
from tests.sandbox.cluster import Cluster


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, one repeat (the smoke test's mode)")
    parser.add_argument("--only", default="", help=f"comma-separated figures: {','.join(FIGURES)}")
    parser.add_argument("--repeats", type=int, default=0, help="override the number of repeats")
    parser.add_argument("--out", type=Path, default=RESULTS, help="directory for the JSON (default bench/results)")
    args = parser.parse_args(argv)

    wanted = [k.strip() for k in args.only.split(",") if k.strip()] or list(FIGURES)
    unknown = [k for k in wanted if k not in FIGURES]
    if unknown:
        parser.error(f"unknown figure(s) {unknown}; choose from {list(FIGURES)}")
    sizes = Sizes.quick() if args.quick else Sizes.full()
    if args.repeats:
        sizes = Sizes(**{**sizes.__dict__, "repeats": args.repeats})

    started = time.time()
    meta = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "mode": "quick" if args.quick else "full"}
    meta["sizes"] = sizes.__dict__
    meta["host_before"] = host_info()
    figures: list[Figure] = []
    print(f"starting the sandbox ({meta['mode']} mode; load average {meta['host_before']['loadavg']})", flush=True)
    with Cluster.start() as cluster:
        bench = Bench(cluster, sizes, args.quick)
        try:
            for key in wanted:
                title, run = FIGURES[key]
                fig = Figure(key, title)
                figures.append(fig)
                print(f"- {title} ...", flush=True)
                t0 = time.perf_counter()
                try:
                    run(bench, fig)
                except Exception as err:
                    fig.error = f"{type(err).__name__}: {err}"
                    traceback.print_exc()
                fig.seconds = time.perf_counter() - t0
                print(f"  done in {fig.seconds:.1f} s", flush=True)
        finally:
            bench.stop()
    meta["host_after"] = host_info()
    meta["seconds"] = round(time.time() - started, 1)
    print()
    print(table(figures))
    for fig in figures:
        for note in fig.notes:
            print(f"\n[{fig.key}] {note}")
        if "breakdown" in fig.extra:
            for label, rows in fig.extra["breakdown"].items():
                print(f"  {label}: " + ", ".join(f"{k} {v:g}" for k, v in rows.items()))
    path = write_json(figures, meta, args.out)
    print(
        f"\n{meta['seconds']:.0f} s; load average before {meta['host_before']['loadavg']}, "
        f"after {meta['host_after']['loadavg']}; JSON: {path}"
    )
    return 1 if any(f.error for f in figures) else 0


if __name__ == "__main__":
    sys.exit(main())
