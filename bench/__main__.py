"""`python -m bench`: every figure on one sandbox per upstream, a table on stdout, JSON in bench/results/."""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from pathlib import Path

from bench.figures import FIGURES
from bench.harness import RESULTS, Bench, Figure, Sizes, host_info, table, write_json
from bench.upstreams import UPSTREAMS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, one repeat (the smoke test's mode)")
    parser.add_argument("--only", default="", help=f"comma-separated figures: {','.join(FIGURES)}")
    parser.add_argument("--repeats", type=int, default=0, help="override the number of repeats")
    parser.add_argument("--megabytes", default="", help="comma-separated log sizes for the throughput figure")
    parser.add_argument("--out", type=Path, default=RESULTS, help="directory for the JSON (default bench/results)")
    parser.add_argument("--upstream", default="standin", help=f"comma-separated: {','.join(UPSTREAMS)}")
    args = parser.parse_args(argv)
    upstreams = [k.strip() for k in args.upstream.split(",") if k.strip()]
    if unknown := [k for k in upstreams if k not in UPSTREAMS]:
        parser.error(f"unknown upstream(s) {unknown}; choose from {list(UPSTREAMS)}")

    wanted = [k.strip() for k in args.only.split(",") if k.strip()] or list(FIGURES)
    unknown = [k for k in wanted if k not in FIGURES]
    if unknown:
        parser.error(f"unknown figure(s) {unknown}; choose from {list(FIGURES)}")
    sizes = Sizes.quick() if args.quick else Sizes.full()
    if args.repeats:
        sizes = Sizes(**{**sizes.__dict__, "repeats": args.repeats})
    if args.megabytes:
        megabytes = tuple(int(float(m) * 1_000_000) for m in args.megabytes.split(","))
        sizes = Sizes(**{**sizes.__dict__, "throughput_sizes": megabytes})

    failed = False
    for key in upstreams:
        failed |= run_upstream(key, wanted, sizes, args.quick, args.out)
    return 1 if failed else 0


def run_upstream(key: str, wanted: list[str], sizes: Sizes, quick: bool, out: Path) -> bool:
    """Every wanted figure on one upstream; True if one failed."""
    upstream = UPSTREAMS[key]
    started = time.time()
    meta = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "mode": "quick" if quick else "full"}
    meta["upstream"] = {"key": key, "description": upstream.description}
    meta["sizes"] = sizes.__dict__
    meta["host_before"] = host_info()
    figures: list[Figure] = []
    print(f"starting the sandbox on {key} ({meta['mode']} mode; load average {meta['host_before']['loadavg']})")
    with upstream.start() as cluster:
        bench = Bench(cluster, sizes, quick, key)
        try:
            for name in wanted:
                title, run = FIGURES[name]
                fig = Figure(name, title)
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
    path = write_json(figures, meta, out, key)
    print(
        f"\n{meta['seconds']:.0f} s on {key}; load average before {meta['host_before']['loadavg']}, "
        f"after {meta['host_after']['loadavg']}; JSON: {path}"
    )
    return any(f.error for f in figures)


if __name__ == "__main__":
    sys.exit(main())
