"""Leader election on a `coordination.k8s.io/v1` Lease, as client-go's leaderelection does it.

One Lease (`tekton-listener-notify` in the watcher's namespace). A candidate takes it when it is
free, or when its record has not changed for `leaseDurationSeconds` as *this process* observed it
(a local clock, so clock skew between nodes does not matter), writing with the Lease's
resourceVersion so two candidates cannot both win. The holder renews every `duration / 3`; one
that cannot renew within `duration` stops acting as leader before anybody else may take over.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from shared.kube.client import Kube, KubeError, NotFound

log = logging.getLogger(__name__)

LEASE_NAME = "tekton-listener-notify"


def _now_micro() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Lease:
    def __init__(
        self,
        kube: Kube,
        namespace: str,
        identity: str,
        duration: float = 15.0,
        name: str = LEASE_NAME,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kube, self.namespace, self.identity, self.duration, self.name = kube, namespace, identity, duration, name
        self.clock = clock
        self.path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}"
        self._observed: tuple[Any, ...] | None = None
        self._observed_at = 0.0
        self._renewed_at: float | None = None

    @property
    def held(self) -> bool:
        """This process is leader: it renewed the Lease less than `duration` ago."""
        return self._renewed_at is not None and self.clock() - self._renewed_at < self.duration

    def try_acquire(self) -> bool:
        """One attempt to take or renew the Lease; True if held afterwards."""
        try:
            lease = self.kube.get(self.path)
        except NotFound:
            return self._write("POST", None)
        except KubeError as e:
            log.warning("lease %s: cannot read (%s)", self.name, e.reason)
            return self.held
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        record = (holder, spec.get("renewTime"), spec.get("leaseTransitions"))
        now = self.clock()
        if record != self._observed:
            self._observed, self._observed_at = record, now
        expired = now - self._observed_at >= float(spec.get("leaseDurationSeconds") or self.duration)
        if holder and holder != self.identity and not expired:
            self._renewed_at = None
            return False
        return self._write("PUT", lease)

    def _write(self, method: str, current: dict[str, Any] | None) -> bool:
        now = _now_micro()
        spec = dict((current or {}).get("spec") or {})
        taking = spec.get("holderIdentity") != self.identity
        spec.update(holderIdentity=self.identity, leaseDurationSeconds=int(self.duration), renewTime=now)
        if taking:
            spec["acquireTime"] = now
            spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + (1 if current else 0)
        metadata: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        if current is not None:
            metadata["resourceVersion"] = current["metadata"]["resourceVersion"]
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": metadata, "spec": spec}
        path = self.path if method == "PUT" else self.path.rsplit("/", 1)[0]
        started = self.clock()
        try:
            self.kube.send(method, path, body)
        except KubeError as e:  # 409: another candidate wrote first
            if e.status != 409:
                log.warning("lease %s: cannot write (%s)", self.name, e.reason)
            return self.held
        if taking:
            log.info("lease %s: %s is the leader", self.name, self.identity)
        self._renewed_at = started
        return True

    def keep(self, stop: threading.Event) -> None:
        """Blocks until this process holds the Lease, then renews it in a daemon thread until `stop`."""
        while not stop.is_set() and not self.try_acquire():
            stop.wait(max(1.0, self.duration / 5))
        threading.Thread(target=self._renew, args=(stop,), name="lease-renew", daemon=True).start()

    def _renew(self, stop: threading.Event) -> None:
        while not stop.wait(self.duration / 3):
            if not self.try_acquire() and not self.held:
                log.error("lease %s: leadership lost", self.name)
                return

    def release(self) -> None:
        """Gives the Lease up at shutdown, so a successor need not wait for it to expire."""
        if self._renewed_at is None:
            return
        self._renewed_at = None
        try:
            lease = self.kube.get(self.path)
            if (lease.get("spec") or {}).get("holderIdentity") != self.identity:
                return
            lease["spec"].update(holderIdentity="", leaseDurationSeconds=1, renewTime=_now_micro())
            self.kube.send("PUT", self.path, lease)
            log.info("lease %s: released", self.name)
        except KubeError as e:
            log.warning("lease %s: not released (%s)", self.name, e.reason)
