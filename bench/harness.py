"""The bench's plumbing: sizes per mode, metrics summarised over repeats, the table and the JSON."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.sandbox.cluster import LISTENER_NAMESPACE, Cluster
from tests.sandbox.simulator import Simulator
from tests.support import ROOT, Listener, grant_listener

NS = LISTENER_NAMESPACE
RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Sizes:
    """How big and how often: `full` for the numbers, `quick` so a smoke test can run it all."""

    repeats: int
    throughput_sizes: tuple[int, ...]
    latency_lines: int
    latency_interval: float
    fanout_followers: int
    fanout_lines: int
    fanout_interval: float
    status_seconds: float
    status_threads: int
    kubectl_calls: int
    cold_starts: int
    api_status_calls: int
    memory_sizes: tuple[int, ...] = (100 * 1000 * 1000, 1000 * 1000 * 1000)

    @classmethod
    def full(cls) -> Sizes:
        return cls(
            repeats=3,
            throughput_sizes=(20 * 1000 * 1000, 200 * 1000 * 1000),
            latency_lines=300,
            latency_interval=0.02,
            fanout_followers=200,
            fanout_lines=60,
            fanout_interval=0.02,
            status_seconds=5.0,
            status_threads=4,
            kubectl_calls=20,
            cold_starts=5,
            api_status_calls=20,
        )

    @classmethod
    def quick(cls) -> Sizes:
        return cls(
            repeats=1,
            throughput_sizes=(300 * 1000,),
            latency_lines=20,
            latency_interval=0.01,
            # Above the default per-user stream cap (10): the smoke test fails if the figure
            # stopped lifting it, as it once did (190 of 200 followers refused with 429).
            fanout_followers=16,
            fanout_lines=3,
            fanout_interval=0.01,
            status_seconds=0.5,
            status_threads=2,
            kubectl_calls=2,
            cold_starts=1,
            api_status_calls=3,
            memory_sizes=(1000 * 1000, 3 * 1000 * 1000),
        )


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), linear between closest ranks; exact for one sample."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


@dataclass
class Metric:
    """One figure's number, sampled once per repeat; reported as median with min and max."""

    name: str
    unit: str
    samples: list[float] = field(default_factory=list)
    goal: str = ""
    # Decides `ok` from the median; None: a reference number without a goal.
    check: Any = None

    @property
    def median(self) -> float:
        return statistics.median(self.samples) if self.samples else float("nan")

    @property
    def ok(self) -> bool | None:
        if self.check is None or not self.samples:
            return None
        return bool(self.check(self.median))

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "unit": self.unit,
            "median": self.median,
            "min": min(self.samples) if self.samples else None,
            "max": max(self.samples) if self.samples else None,
            "samples": self.samples,
            "goal": self.goal or None,
            "ok": self.ok,
        }


@dataclass
class Figure:
    key: str
    title: str
    metrics: list[Metric] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    error: str | None = None

    def metric(self, name: str, unit: str, goal: str = "", check: Any = None) -> Metric:
        for existing in self.metrics:
            if existing.name == name:
                return existing
        made = Metric(name, unit, goal=goal, check=check)
        self.metrics.append(made)
        return made

    def add(self, name: str, unit: str, value: float, goal: str = "", check: Any = None) -> None:
        self.metric(name, unit, goal, check).samples.append(float(value))

    def as_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "metrics": [m.as_json() for m in self.metrics],
            "notes": self.notes,
            "extra": self.extra,
            "seconds": round(self.seconds, 1),
            "error": self.error,
        }


class Bench:
    """One sandbox for the whole run, with the peer measured against the same cluster."""

    def __init__(self, cluster: Cluster, sizes: Sizes, quick: bool, upstream: str = "standin") -> None:
        self.cluster = cluster
        self.upstream = upstream
        self.sizes = sizes
        self.quick = quick
        # On a real node every run's pods are real containers; the stand-in's are simulated.
        self.sim = Simulator(cluster, real_pods=cluster.node is not None)
        self._listener: Listener | None = None
        self._extra: list[Listener] = []
        grant_listener(cluster, NS)
        self.listener_kubeconfig = cluster.write_kubeconfig(
            cluster.workdir / "bench-listener.kubeconfig", cluster.listener
        )

    @property
    def listener(self) -> Listener:
        """The long-lived instance, configured as deployed (THREADS defaults to cores x 4)."""
        if self._listener is None:
            self._listener = self.new_listener()
        return self._listener

    def new_listener(self, **env: str) -> Listener:
        # Heartbeats off: they are bytes of their own and would blur byte counts and timings.
        env = {"HEARTBEAT_SECONDS": "0", "RUN_WAIT_SECONDS": "30", **env}
        listener = Listener(self.cluster, **env).start()
        self._extra.append(listener)
        return listener

    def stop(self) -> None:
        for listener in self._extra:
            listener.stop()
        self.sim.stop()


# -- output ----------------------------------------------------------------------------------------
def fmt(value: float | None) -> str:
    if value is None or value != value:  # NaN
        return "-"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def table(figures: list[Figure]) -> str:
    rows = [("figure", "metric", "median", "min", "max", "unit", "goal", "ok")]
    for fig in figures:
        if fig.error:
            rows.append((fig.key, f"FAILED: {fig.error[:70]}", "", "", "", "", "", "no"))
            continue
        for m in fig.metrics:
            mark = {True: "yes", False: "NO", None: ""}[m.ok]
            low = min(m.samples) if m.samples else None
            high = max(m.samples) if m.samples else None
            rows.append((fig.key, m.name, fmt(m.median), fmt(low), fmt(high), m.unit, m.goal, mark))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    right = {2, 3, 4}
    lines = []
    for n, row in enumerate(rows):
        cells = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def host_info() -> dict[str, Any]:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        commit = ""
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "commit": commit,
        "loadavg": os.getloadavg(),
    }


def write_json(figures: list[Figure], meta: dict[str, Any], out_dir: Path, upstream: str = "standin") -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S") + f"-{upstream}"
    path = out_dir / f"{stamp}.json"
    n = 1
    while path.exists():
        path = out_dir / f"{stamp}-{n}.json"
        n += 1
    body = {**meta, "figures": {f.key: f.as_json() for f in figures}}
    path.write_text(json.dumps(body, indent=2, default=str) + "\n")
    return path


class Stopwatch:
    def __init__(self) -> None:
        self.start = time.perf_counter()

    def __call__(self) -> float:
        return time.perf_counter() - self.start
