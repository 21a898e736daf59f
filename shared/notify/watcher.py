"""The watch-fed mode, for clusters without Knative Eventing: `python -m shared.notify.watcher`.

The same `Notifier` (same senders, same allow-list, same delivery record on each run), driven by
one resumable list-watch of the PipelineRuns in `NAMESPACE` (`shared.kube.listwatch`: the
resourceVersion is carried across reconnects, a re-list happens only when it expired). Every run
of the list and every ADDED/MODIFIED run is reported as the API shows it; the run's record makes
that idempotent, so a restart (which lists everything again) re-posts nothing and posts what
changed while it was down: at-least-once across restarts. A report that failed transiently
(answer >= 500) is retried from a fresh read with backoff until it succeeds or the run goes.

Leader election (`lease`): only the holder of the Lease `tekton-listener-notify` watches, so
two replicas never race on one run; one that loses the Lease stops watching and campaigns again.
`NOTIFY_LEADER_ELECTION=off` runs without it (one replica only). SIGTERM stops it. Metrics
(deliveries, API requests, the notifier's counters) on `METRICS_PORT`, as for the functions.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from typing import Any

from shared import log_lines
from shared.config import Env, MetricsSettings, load
from shared.kube.client import PIPELINERUNS, KubeError
from shared.kube.listwatch import Listed, ListWatch
from shared.kube.retry import Backoff
from shared.metrics.server import serve
from shared.notify.lease import Lease
from shared.notify.notifier import Notifier
from shared.runs.model import Obj

log = logging.getLogger(__name__)

RETRY_FIRST, RETRY_MAX = 1.0, 60.0


class Watcher:
    def __init__(self, notifier: Notifier, namespace: str, lease: Lease | None, stop: threading.Event) -> None:
        self.notifier, self.namespace, self.lease, self.stop = notifier, namespace, lease, stop
        self._pending: dict[str, str] = {}  # name -> uid of runs whose report must be retried
        self._lock = threading.Lock()
        self.listwatch: ListWatch | None = None

    def run(self) -> None:
        threading.Thread(target=self._retry_loop, name="notify-retry", daemon=True).start()
        while not self.stop.is_set():
            if self.lease is not None:
                self.lease.keep(self.stop)
            self.listwatch = ListWatch(
                self.notifier.kube, PIPELINERUNS, self.namespace, stop=self.stop, what="PipelineRuns (notify)"
            )
            for update in self.listwatch.updates(gone=self._lost):
                items = update.items if isinstance(update, Listed) else [update.obj]
                if not isinstance(update, Listed) and update.type == "DELETED":
                    self._forget(update.obj)
                    continue
                for obj in items:
                    self.report(obj)
            if self._lost() and not self.stop.is_set():
                log.warning("not the leader any more: watch stopped, campaigning again")

    def _lost(self) -> bool:
        return self.lease is not None and not self.lease.held

    def report(self, obj: Obj) -> None:
        meta = obj.get("metadata") or {}
        name, uid = str(meta.get("name") or ""), str(meta.get("uid") or "")
        try:
            status = self.notifier.report_run(obj).status
        except Exception:  # one run's trouble must not end the watch
            log.exception("%s/%s: report failed", self.namespace, name)
            status = 500
        with self._lock:
            if status >= 500:
                self._pending[name] = uid
            else:
                self._pending.pop(name, None)

    def _forget(self, obj: Obj) -> None:
        with self._lock:
            self._pending.pop(str((obj.get("metadata") or {}).get("name") or ""), None)

    def _retry_loop(self) -> None:
        backoff = Backoff(self.stop, RETRY_FIRST, RETRY_MAX)
        while not backoff.wait():
            with self._lock:
                pending = dict(self._pending)
            if not pending:
                backoff.reset()
                continue
            for name, uid in pending.items():
                try:
                    obj = self.notifier.runs.pipelinerun(self.namespace, name)
                except KubeError:
                    continue
                if obj is None or (obj.get("metadata") or {}).get("uid") != uid:
                    self._forget({"metadata": {"name": name}})
                elif not self._lost():
                    self.report(obj)

    def shutdown(self, *_: Any) -> None:
        self.stop.set()
        if self.listwatch is not None:
            self.listwatch.interrupt()


def main() -> None:
    stop = threading.Event()
    watcher: Watcher | None = None

    def shutdown(*_: Any) -> None:
        # installed first: a pod stopped while it still starts up exits cleanly too
        stop.set()
        if watcher is not None:
            watcher.shutdown()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    log_lines.install("%(asctime)s %(levelname)s %(name)s: %(message)s", logging.INFO)
    env = Env()
    notifier = Notifier.from_env()
    namespace = env.text("NAMESPACE", "tekton-pipelines")
    lease = None
    if env.switch("NOTIFY_LEADER_ELECTION", True):
        identity = f"{env.text('POD_NAME') or socket.gethostname()}_{os.getpid()}"
        lease = Lease(notifier.kube, namespace, identity, env.number("NOTIFY_LEASE_SECONDS", 15.0, low=3, high=300))
    try:  # deliveries, API requests and the notifier's counters on METRICS_PORT, as for the functions
        serve(load(MetricsSettings, env))
    except Exception:  # metrics must never keep the watcher from running
        log.exception("starting the metrics server failed")
    watcher = Watcher(notifier, namespace, lease, stop)
    log.info("watching PipelineRuns in %s (leader election %s)", namespace, "on" if lease else "off")
    watcher.run()
    if lease is not None:
        lease.release()


if __name__ == "__main__":
    main()
