"""The figures, one module each. Each takes the shared `Bench` and fills one `Figure`."""

from __future__ import annotations

from collections.abc import Callable

from bench.figures.api_cost import api_cost
from bench.figures.coldstart import coldstart
from bench.figures.fanout import fanout
from bench.figures.latency import latency
from bench.figures.masking import masking
from bench.figures.memory import memory
from bench.figures.status import status
from bench.figures.throughput import throughput
from bench.harness import Bench, Figure

FIGURES: dict[str, tuple[str, Callable[[Bench, Figure], None]]] = {
    "throughput": ("1. Log throughput: /logs vs kubectl logs on the same container", throughput),
    "latency": ("2. Line latency: /logs vs raw pods/log follow", latency),
    "fanout": ("3. Fan-out: concurrent followers of one run", fanout),
    "status": ("4. /status: rate and latency vs kubectl get", status),
    "coldstart": ("5. Cold start of the status function", coldstart),
    "api": ("6. Kubernetes API requests per follow and per /status", api_cost),
    "masking": ("7. Masking in-process: one pass per chunk, whatever the number of values", masking),
    "memory": ("8. Memory and CPU against log size: peak RSS, smallest vs largest log", memory),
}
