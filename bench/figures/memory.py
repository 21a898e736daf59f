"""Peak RSS against log size, and CPU per 100 MB: the listener streams a log without holding it.

Per size, a finished container's log and a fresh listener instance (so its peak RSS is that
size's); curl reads the log through `/logs` as text, then as NDJSON; after both, the gunicorn
worker's `VmHWM`. The goal: the largest log's peak within 10 MB of the smallest's. On the real
node the largest size stays under the kubelet's `containerLogMaxSize` (500 MiB in the sandbox):
past it the kubelet rotates the file and serves only the current one.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from bench.clients import cpu_seconds, curl_listener, proc_kb, timed_run, worker_pid
from bench.harness import Bench, Figure
from bench.workloads import MB, finished_log

NODE_LARGEST = 250 * MB  # plus ~40 B of CRI framing per line, under the 500 MiB rotation size
SLACK_MB = 10.0


def memory(b: Bench, fig: Figure) -> None:
    sizes = b.sizes.memory_sizes
    if b.cluster.node is not None:
        sizes = tuple(min(size, NODE_LARGEST) for size in sizes)
    peaks = []
    for size in sizes:
        log = finished_log(b, size)
        label = f"{size / MB:g} MB"
        listener = b.new_listener()
        worker = worker_pid(listener)
        with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
            for kind, query in (("text", ""), ("ndjson", "?format=ndjson")):
                cpu = cpu_seconds(worker)
                timed = timed_run(curl_listener(listener, f"/logs/{log.run}{query}"), Path(tmp) / "body", 3600)
                if timed.size < log.bytes:
                    raise RuntimeError(f"{kind}: {timed.size} bytes received for a {log.bytes}-byte log")
                used = cpu_seconds(worker) - cpu
                fig.add(f"{label}: /logs {kind}", "MB/s", log.bytes / timed.seconds / MB)
                fig.add(f"{label}: CPU per 100 MB, /logs {kind} (listener worker)", "s", used * 100 * MB / log.bytes)
        peak = proc_kb(worker, "VmHWM") / 1024
        peaks.append(peak)
        fig.add(f"{label}: peak RSS, listener worker", "MB", peak)
        listener.stop()
    fig.add(
        f"peak RSS, {sizes[-1] / MB:g} MB log - {sizes[0] / MB:g} MB log",
        "MB",
        peaks[-1] - peaks[0],
        f"< {SLACK_MB:g}",
        (SLACK_MB).__gt__,
    )
    fig.notes.append(
        "Build-log-like lines (30-190 B); one fresh listener per size; text then NDJSON read to the end by curl; "
        "CPU: the gunicorn worker's utime+stime over each read; peak RSS: its VmHWM after both reads."
    )
