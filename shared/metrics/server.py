"""Serves the metrics on `METRICS_PORT` (every path answers the exposition), one server per process.

Under gunicorn each worker tries to bind the port. With one worker that one serves. With several
and `PROMETHEUS_MULTIPROC_DIR`, the first to bind serves the sum of every worker's values; the
others find the port taken and leave it to it (a replacement worker binds when the server's
worker is gone). Without the directory every worker would only know its own values, so several
workers without it are logged as a misconfiguration.
"""

from __future__ import annotations

import atexit
import glob
import logging
import os
import threading
from collections.abc import Iterable

from prometheus_client import REGISTRY, CollectorRegistry, start_http_server
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from shared.config import MetricsSettings

log = logging.getLogger(__name__)

_lock = threading.Lock()
_served_in: int | None = None  # the pid that tried: a forked worker tries again


class _SettledFiles(MultiProcessCollector):
    """Every worker's files but those still empty. prometheus_client creates a worker's file and
    sizes it a moment later; a scrape in between failed whole with a struct.error (HTTP 500), and a
    worker killed in that window left the empty file for good (prometheus/client_python#1199).
    An empty file holds no values yet, so leaving it out loses nothing."""

    def collect(self) -> Iterable[Metric]:
        return self.merge([path for path in glob.glob(os.path.join(self._path, "*.db")) if _sized(path)])


def _sized(path: str) -> bool:
    try:
        return os.path.getsize(path) > 0  # a file only grows once sized
    except FileNotFoundError:  # a dead worker's gauges, removed by mark_process_dead
        return False


def collector_registry(settings: MetricsSettings) -> CollectorRegistry:
    """What a scrape reads: every worker's files in multiprocess mode, else this process."""
    if not settings.multiproc_dir:
        return REGISTRY
    registry = CollectorRegistry()
    _SettledFiles(registry, path=settings.multiproc_dir)
    return registry


def serve(settings: MetricsSettings, workers: int = 1) -> bool:
    """Starts this process's metrics server once; True if this call bound the port."""
    global _served_in
    if settings.port == 0 or _served_in == os.getpid():
        return False
    with _lock:
        if _served_in == os.getpid():
            return False
        _served_in = os.getpid()
        if settings.multiproc_dir:
            pid = os.getpid()
            atexit.register(mark_process_dead, pid, settings.multiproc_dir)  # its gauges leave the sums
        elif workers > 1:
            log.error("WORKERS=%d without PROMETHEUS_MULTIPROC_DIR: /metrics shows one worker's values only", workers)
        try:
            start_http_server(settings.port, registry=collector_registry(settings))
        except OSError as err:
            log.info("metrics port %d not bound here (%s): another worker serves it", settings.port, err.strerror)
            return False
        return True
