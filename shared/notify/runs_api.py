"""The notifier's view of the cluster: a run and its TaskRuns as the API has them, and its delivery record.

An event only names a run; what is reported is read here. Rights this needs (notify's own Role in
service.yaml): get pipelineruns, list taskruns, and patch pipelineruns for the record annotation.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from shared.kube.client import PIPELINERUNS, Forbidden, Kube, KubeError, NotFound
from shared.notify.record import RECORD_ANNOTATION, DeliveryRecord
from shared.runs.lookup import taskruns_of
from shared.runs.model import Obj

log = logging.getLogger(__name__)

MERGE_PATCH = "application/merge-patch+json"
# The apiserver's 404 message for a path it does not serve at all (a missing object names itself).
UNSERVED = "the server could not find the requested resource"
SAVE_ATTEMPTS = 5


class RunStore(Protocol):
    def pipelinerun(self, namespace: str, name: str) -> Obj | None:
        """The run, None if it does not exist; raises KubeError when the API cannot tell."""

    def taskruns(self, run: Obj) -> list[Obj]:
        """The run's own TaskRuns (owned by its uid); [] when they cannot be read."""

    def save(self, run: Obj, record: DeliveryRecord) -> bool:
        """Stores `record` on `run` (merged with what is there); False if it could not be stored."""


class ApiRuns:
    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self._save_refused = False

    def pipelinerun(self, namespace: str, name: str) -> Obj | None:
        try:
            return self.kube.get_object(PIPELINERUNS, namespace, name)
        except NotFound as e:
            if e.detail.startswith(UNSERVED):
                # Not "no such run": the resource itself is not served (yet), as while an apiserver
                # restarts and its CRD handler has not caught up. Telling the two apart keeps a
                # genuine event from being dropped then.
                raise KubeError(503, "pipelineruns not served", e.detail) from None
            return None

    def taskruns(self, run: Obj) -> list[Obj]:
        try:
            return taskruns_of(self.kube, run)
        except KubeError as e:
            meta = run["metadata"]
            log.warning(
                "%s/%s: TaskRuns not read (%s), no per-task statuses", meta["namespace"], meta["name"], e.reason
            )
            return []

    def save(self, run: Obj, record: DeliveryRecord) -> bool:
        meta = run["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        current = run
        for _ in range(SAVE_ATTEMPTS):
            cmeta = current["metadata"]
            if cmeta.get("uid") != record.uid:
                log.warning("%s/%s: the run was replaced, delivery record not stored", namespace, name)
                return False
            record.merge(DeliveryRecord.of(current))
            patch: dict[str, Any] = {
                "metadata": {
                    "uid": record.uid,
                    "resourceVersion": cmeta.get("resourceVersion"),
                    "annotations": {RECORD_ANNOTATION: record.to_json()},
                }
            }
            try:
                self.kube.send("PATCH", PIPELINERUNS.path(namespace, name), patch, MERGE_PATCH)
                return True
            except Forbidden as e:
                if not self._save_refused:
                    log.error("cannot store delivery records (%s): needs `patch pipelineruns`", e.reason)
                self._save_refused = True
                return False
            except KubeError as e:
                if e.status != 409:
                    log.warning("%s/%s: delivery record not stored (%s)", namespace, name, e)
                    return False
            # 409: someone else wrote the run since it was read; merge with theirs and try again
            latest = self.pipelinerun(namespace, name)
            if latest is None:
                return False
            current = latest
        log.warning("%s/%s: delivery record not stored after %d conflicts", namespace, name, SAVE_ATTEMPTS)
        return False
