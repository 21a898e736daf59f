"""`python -m bench.status_cpu [REF ...]`: the listener's CPU per /status request, A/B across commits.

The /status figure's load (keep-alive clients on one finished run) against listeners built from
this tree and from each git REF (exported with `git archive` into a temporary directory), started
in turn on the same sandbox, round after round, so drift of the shared machine hits every tree
alike. Per round and tree: worker CPU ms per request (utime + stime of the gunicorn worker over
the measured seconds, divided by the requests answered in them) and req/s. CPU per request is the
figure to compare: req/s on a 2-core machine shared by client, listener and apiserver moves with
whatever else runs.
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.clients import cpu_per_request
from bench.harness import Bench, Sizes
from bench.workloads import status_run
from tests.sandbox.cluster import Cluster
from tests.support import ROOT, Listener


def export(ref: str, into: Path) -> Path:
    """The tree of `ref` as plain files (no worktree: nothing of git's shared state is touched)."""
    tree = into / ref.replace("/", "_")
    tree.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree


def measure(bench: Bench, tree: Path, path: str, threads: int, seconds: float) -> tuple[float, float]:
    """(worker CPU ms per request, req/s) of a listener run from `tree` with this interpreter."""
    # `python -m` puts the working directory first on sys.path: the tree's `shared` and functions.
    command = ["sh", "-c", f"cd {shlex.quote(str(tree))} && exec {shlex.quote(sys.executable)} -m shared.http.router"]
    # As Bench.new_listener configures its listeners, but from `tree`.
    listener = Listener(bench.cluster, command, HEARTBEAT_SECONDS="0", RUN_WAIT_SECONDS="30").start()
    try:
        cpu_ms, got = cpu_per_request(listener, path, threads, seconds)
    finally:
        listener.stop()
    return cpu_ms, got.rate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.status_cpu", description=__doc__)
    parser.add_argument("refs", nargs="*", help="git refs to compare with this tree, e.g. main")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=Sizes.full().status_threads)
    args = parser.parse_args(argv)
    results: dict[str, list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-status-cpu-") as tmp, Cluster.start() as cluster:
        trees = {ref: export(ref, Path(tmp)) for ref in args.refs}
        trees["this tree"] = ROOT
        bench = Bench(cluster, Sizes.quick(), quick=True)
        try:
            run = status_run(bench)
            for n in range(args.rounds):
                # Alternating order: neither tree always runs first after the other.
                order = list(trees.items()) if n % 2 == 0 else list(reversed(trees.items()))
                for label, tree in order:
                    got = measure(bench, tree, f"/status/{run.name}", args.threads, args.seconds)
                    results.setdefault(label, []).append(got)
                    print(f"round {n + 1} {label:>12}: {got[0]:.3f} CPU ms/request, {got[1]:.0f} req/s", flush=True)
        finally:
            bench.stop()
    print(f"{args.threads} keep-alive clients, {args.seconds:g} s per round; medians of {args.rounds} rounds:")
    for label, got in results.items():
        cpu, rate = statistics.median(g[0] for g in got), statistics.median(g[1] for g in got)
        print(f"  {label:>12}: {cpu:.3f} CPU ms/request, {rate:.0f} req/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
