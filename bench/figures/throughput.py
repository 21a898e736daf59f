"""Log throughput: /logs against kubectl on the same finished container, in the same run.

Per log size, one fresh listener instance (so its peak RSS belongs to that size) and two runs
with the same content: one whose pod references 20 Secrets whose values appear in the log (so
/logs masks them) and one that references none. Every reader reads the whole log, in rotating
order, one at a time; wall time from spawn to exit, as a CI job waits for it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.clients import cpu_seconds, curl_listener, proc_kb, timed_run, worker_pid
from bench.harness import NS, Bench, Figure
from bench.workloads import MB, SECRETS, FinishedLog, finished_log, secret_refs, secret_values
from tests.support import Listener

PREFIX = len(b"[dump : dump] ")


@dataclass(frozen=True)
class Reader:
    name: str
    args: list[str]
    size_ok: Callable[[int], bool]
    listener: bool = False


def readers(b: Bench, listener: Listener, plain: FinishedLog, masked: FinishedLog) -> list[Reader]:
    kubectl = ["kubectl", "--kubeconfig", str(b.listener_kubeconfig), "-n", NS, "logs"]
    where = [plain.pod, "-c", plain.container]
    exact, stamped = plain.bytes.__eq__, plain.bytes.__lt__
    prefixed = (plain.bytes + plain.lines * PREFIX).__le__

    def logs(path: str) -> list[str]:
        return curl_listener(listener, path)

    return [
        Reader("kubectl logs", [*kubectl, *where], exact),
        Reader("kubectl logs --timestamps", [*kubectl, "--timestamps", *where], stamped),
        Reader("kubectl logs -f", [*kubectl, "-f", *where], exact),
        Reader("kubectl logs -f --timestamps", [*kubectl, "-f", "--timestamps", *where], stamped),
        Reader("/logs text", logs(f"/logs/{plain.run}"), prefixed, True),
        Reader("/logs ndjson", logs(f"/logs/{plain.run}?format=ndjson"), prefixed, True),
        Reader("/logs text timestamps=true", logs(f"/logs/{plain.run}?timestamps=true"), prefixed, True),
        Reader("/logs text cursors=true", logs(f"/logs/{plain.run}?cursors=true"), prefixed, True),
        Reader("/logs text task= and step= filters", logs(f"/logs/{plain.run}?task=dump&step=dump"), prefixed, True),
        # Masked lines are shorter: each value becomes `***`.
        Reader(f"/logs text masked ({SECRETS} secrets)", logs(f"/logs/{masked.run}"), (plain.bytes * 0.9).__le__, True),
    ]


# (metric, numerator, denominator, goal, check)
RATIOS = [
    ("/logs text / kubectl logs -f --timestamps", "/logs text", "kubectl logs -f --timestamps", 0.95),
    ("/logs text / kubectl logs -f", "/logs text", "kubectl logs -f", 0.9),
    ("/logs text / kubectl logs --timestamps (finished container)", "/logs text", "kubectl logs --timestamps", 0.9),
    ("/logs ndjson / /logs text", "/logs ndjson", "/logs text", 0.8),
    (f"/logs masked / unmasked ({SECRETS} secrets)", f"/logs text masked ({SECRETS} secrets)", "/logs text", 0.85),
]


def throughput(b: Bench, fig: Figure) -> None:
    values = secret_values()
    refs = secret_refs(b, values)
    for size in b.sizes.throughput_sizes:
        plain = finished_log(b, size, values)
        masked = finished_log(b, size, values, env=refs)
        label = f"{size / MB:g} MB"
        listener = b.new_listener()
        worker = worker_pid(listener)
        clients = readers(b, listener, plain, masked)
        with tempfile.TemporaryDirectory(prefix="bench-tput-") as tmp:
            for repeat in range(b.sizes.repeats):
                shift = repeat % len(clients)
                rates = {
                    r.name: _read(fig, label, r, plain, worker, Path(tmp)) for r in clients[shift:] + clients[:shift]
                }
                for metric, top, bottom, goal in RATIOS:
                    fig.add(f"{label}: {metric}", "x", rates[top] / rates[bottom], f">= {goal}", goal.__le__)
        fig.add(f"{label}: peak RSS, listener worker", "MB", proc_kb(worker, "VmHWM") / 1024, "flat in log size")
        listener.stop()
        fig.extra.setdefault("logs", []).append(
            {"label": label, "bytes": plain.bytes, "lines": plain.lines, "mean_line": round(plain.bytes / plain.lines)}
        )
    fig.notes.append(
        "Each size: one finished step container's log of build-log-like lines (30-190 B, about 110 B mean), "
        f"one in 50 carrying one of {SECRETS} Secret values; `/logs` reads it with timestamps=true from the "
        "apiserver (its resume position), without follow once the container has terminated. Readers in rotating "
        "order, one at a time, each to the end; MB/s = log bytes / wall time (the log's own bytes, not prefixes, "
        "timestamps or JSON). `/logs text` is the default: no timestamps, no filters, a resume token kept but "
        "not printed; ndjson carries a cursor on every line; masked reads the same content from a pod that "
        f"references the {SECRETS} Secrets, with `get secrets` granted. CPU: the listener's gunicorn worker "
        "(curl not counted) or kubectl's own. Peak RSS: one fresh listener per size, after every read of it."
    )


def _read(fig: Figure, label: str, reader: Reader, log: FinishedLog, worker: int, tmp: Path) -> float:
    cpu = cpu_seconds(worker) if reader.listener else 0.0
    timed = timed_run(reader.args, tmp / "body", timeout=1800)
    if not reader.size_ok(timed.size):
        raise RuntimeError(f"{reader.name}: {timed.size} bytes received for a {log.bytes}-byte log")
    rate = log.bytes / timed.seconds / MB
    fig.add(f"{label}: {reader.name}", "MB/s", rate)
    used = cpu_seconds(worker) - cpu if reader.listener else timed.cpu
    who = "listener worker" if reader.listener else "kubectl"
    fig.add(f"{label}: CPU per 100 MB, {reader.name} ({who})", "s", used * 100 * MB / log.bytes)
    return rate
