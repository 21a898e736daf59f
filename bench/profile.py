"""`python -m bench.profile`: where the listener's CPU goes while it streams one big log.

Plays one finished container log on a sandbox, then samples the listener's gunicorn worker with
py-spy (`pip install py-spy`, in the test extra) while curl reads `/logs` to its end, and prints
the top of the profile: functions by own samples (where the time is spent) and by samples
including callees (which layer spends it). The raw collapsed stacks are kept in bench/results/.
The log is figure 1's (one line in 50 carries one of 20 Secret values); with `--masked` the run's
pod references those Secrets (`get secrets` granted), so `/logs` masks them, as figure 1's masked
reader does.
"""

from __future__ import annotations

import argparse
import collections
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.clients import cpu_per_request, cpu_seconds, curl_listener, timed_run, worker_pid
from bench.harness import NS, RESULTS, Bench, Sizes
from bench.workloads import MB, finished_log, secret_refs, secret_values, status_run
from tests.sandbox.cluster import Cluster

# Frames of the sampled process that are waiting, not working (py-spy --idle is off, but a
# thread blocked inside a C call still shows up as that call).
_IDLE = ("wait (threading.py", "select (selectors.py", "_recv_into", "accept (socket.py")


def top(collapsed: str, limit: int = 15) -> dict[str, list[tuple[str, float]]]:
    """Own and inclusive sample shares per function from py-spy's raw (collapsed) format."""
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    for row in collapsed.splitlines():
        stack, _, count = row.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [_short(f) for f in stack.split(";")]
        if any(marker in frames[-1] for marker in _IDLE):
            continue
        n = int(count)
        samples += n
        own[frames[-1]] += n
        for frame in set(frames):
            total[frame] += n
    if not samples:
        return {"own": [], "total": []}

    def share(counter: collections.Counter[str]) -> list[tuple[str, float]]:
        return [(name, round(100 * n / samples, 1)) for name, n in counter.most_common(limit)]

    return {"own": share(own), "total": share(total), "samples": [("busy samples", samples)]}


def _short(frame: str) -> str:
    # "feed (shared/logs/lines.py:120)" -> "feed (shared/logs/lines.py)": lines split one function.
    name, _, where = frame.partition(" (")
    return f"{name} ({where.rsplit(':', 1)[0].rstrip(')')})" if where else name


def render(result: dict[str, list[tuple[str, float]]]) -> str:
    lines = []
    for key, title in (("own", "own samples"), ("total", "samples including callees")):
        lines.append(f"{title}:")
        lines += [f"  {pct:5.1f}%  {name}" for name, pct in result.get(key, [])]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("--megabytes", type=int, default=20)
    parser.add_argument("--query", default="", help="query string for /logs, e.g. format=ndjson")
    parser.add_argument("--label", default="logs")
    parser.add_argument("--masked", action="store_true", help="the run's pod references the log's Secrets: masked")
    parser.add_argument("--warmups", type=int, default=0, help="unprofiled reads before the profiled one")
    parser.add_argument(
        "--status", type=float, default=0.0, help="profile N seconds of the /status figure's keep-alive load instead"
    )
    args = parser.parse_args(argv)
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        parser.error("py-spy is not installed (pip install py-spy)")
    RESULTS.mkdir(parents=True, exist_ok=True)
    return _profile_logs(spy, args)


def _record(spy: str, worker: int, raw: Path) -> subprocess.Popen[bytes]:
    recorder = subprocess.Popen(
        [spy, "record", "--nonblocking", "-r", "200", "-f", "raw", "-o", str(raw), "-p", str(worker)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)  # py-spy attaches asynchronously; nothing to wait on but its first sample
    return recorder


def _profile_status(bench: Bench, spy: str, seconds: float, label: str) -> int:
    """The /status figure's load (keep-alive clients on one finished run) under py-spy."""
    run = status_run(bench)
    raw = RESULTS / f"profile-{label}.collapsed"
    recorder = _record(spy, worker_pid(bench.listener), raw)
    cpu_ms, got = cpu_per_request(bench.listener, f"/status/{run.name}", 8, seconds)
    recorder.send_signal(signal.SIGINT)
    recorder.wait(60)
    result = top(raw.read_text())
    cpu_ms = round(cpu_ms, 2) if got.latencies else None
    summary = {"label": label, "req/s": round(got.rate, 1), "worker CPU ms per request": cpu_ms, **result}
    (RESULTS / f"profile-{label}.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"{summary['req/s']} req/s, {summary['worker CPU ms per request']} worker CPU ms per /status")
    print(render(result))
    return 0


def _profile_logs(spy: str, args: argparse.Namespace) -> int:
    with Cluster.start() as cluster:
        bench = Bench(cluster, Sizes.quick(), quick=True)
        try:
            if args.status:
                return _profile_status(bench, spy, args.status, args.label)
            values = secret_values()
            refs = secret_refs(bench, values) if args.masked else None
            log = finished_log(bench, args.megabytes * MB, values, env=refs)
            listener = bench.listener
            worker = worker_pid(listener)
            raw = RESULTS / f"profile-{args.label}.collapsed"
            path = f"/logs/{log.run}" + (f"?{args.query}" if args.query else "")
            with tempfile.TemporaryDirectory() as tmp:
                for _ in range(args.warmups):  # e.g. the masked read's Secret watches started, as in figure 1
                    timed_run(curl_listener(listener, path), Path(tmp) / "body", timeout=600)
                recorder = _record(spy, worker, raw)
                cpu = cpu_seconds(worker)
                timed = timed_run(curl_listener(listener, path), Path(tmp) / "body", timeout=600)
                cpu = cpu_seconds(worker) - cpu
            recorder.send_signal(signal.SIGINT)
            recorder.wait(60)
        finally:
            bench.stop()
    result = top(raw.read_text())
    summary = {
        "label": args.label,
        "query": args.query,
        "masked": args.masked,
        "warmups": args.warmups,
        "log_bytes": log.bytes,
        "lines": log.lines,
        "seconds": round(timed.seconds, 2),
        "MB/s": round(log.bytes / timed.seconds / MB, 1),
        "worker CPU s per 100 MB": round(cpu * 100 * MB / log.bytes, 2),
        **result,
    }
    (RESULTS / f"profile-{args.label}.json").write_text(json.dumps(summary, indent=2) + "\n")
    where = f"{path}, {NS}" + (", masked" if args.masked else "")
    print(f"{summary['MB/s']} MB/s, {summary['worker CPU s per 100 MB']} CPU s per 100 MB ({where})")
    print(render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
