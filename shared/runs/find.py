"""Finding a run by what a CI job knows instead of its generated name: the Tekton Triggers event
ID an EventListener answered with (label `triggers.tekton.dev/triggers-eventid`), or the commit
SHA (a label the trigger sets, or an annotation; see `Settings.run_sha_label`).

A run not there yet is waited for with one LIST and one WATCH from that list's resourceVersion,
with the label selector (`waiting_updates`), no polling, cut as soon as the client has gone.
Every match is returned, oldest first: more than one is for the caller to refuse.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass

from shared.kube.client import PIPELINERUNS, Kube
from shared.kube.listwatch import Listed
from shared.kube.names import LABEL_VALUE_MAX, label_value_problem
from shared.runs.lookup import waiting_updates
from shared.runs.model import Obj, labels_of, name_of

EVENT_ID_LABEL = "triggers.tekton.dev/triggers-eventid"


@dataclass(frozen=True)
class RunSelector:
    eventid: str | None = None
    sha: str | None = None  # lower case
    sha_label: str = ""
    sha_annotation: str = ""  # when set, the SHA is read from this annotation instead of the label

    def __bool__(self) -> bool:
        return bool(self.eventid or self.sha)

    def describe(self) -> str:
        return " and ".join(f"{k}={v}" for k, v in (("eventid", self.eventid), ("sha", self.sha)) if v)

    def problem(self) -> str | None:
        """Why the API server would refuse this selection (checked before asking it), or None."""
        if self.sha and not self.sha_annotation and label_value_problem(self.sha):
            return (
                f"sha has {len(self.sha)} digits, but the label {self.sha_label} holds at most {LABEL_VALUE_MAX} "
                "characters; a SHA-256 commit is found by an annotation (RUN_SHA_ANNOTATION)"
            )
        return None

    def label_selector(self) -> str | None:
        parts = [f"{EVENT_ID_LABEL}={self.eventid}"] if self.eventid else []
        if self.sha and not self.sha_annotation:
            parts.append(f"{self.sha_label}={self.sha}")
        return ",".join(parts) or None

    def matches(self, run: Obj) -> bool:
        if self.eventid and labels_of(run).get(EVENT_ID_LABEL) != self.eventid:
            return False
        if self.sha:
            meta = run.get("metadata") or {}
            source = (meta.get("annotations") or {}) if self.sha_annotation else labels_of(run)
            return str(source.get(self.sha_annotation or self.sha_label) or "").lower() == self.sha
        return True


def _created(run: Obj) -> tuple[str, str]:
    return str((run.get("metadata") or {}).get("creationTimestamp", "")), name_of(run)


def _oldest_first(runs: dict[str, Obj]) -> list[Obj]:
    return sorted(runs.values(), key=_created)


def find_runs(
    kube: Kube,
    namespace: str,
    selector: RunSelector,
    wait_seconds: float,
    stop: threading.Event | None = None,
    client_gone: Callable[[], bool] | None = None,
) -> list[Obj]:
    """The runs that match, waiting up to `wait_seconds` for a first one; [] if none came."""
    labels = selector.label_selector()
    items, version = kube.list_objects(PIPELINERUNS, namespace, labels)
    found = {name_of(i): i for i in items if selector.matches(i)}
    if found or wait_seconds <= 0:
        return _oldest_first(found)
    what = f"PipelineRuns in {namespace} with {selector.describe()}"
    # Watched from this list's version: a run created since is an event, not a second LIST.
    updates = waiting_updates(kube, namespace, what, wait_seconds, stop, client_gone, labels, since=version)
    with closing(updates):
        for update in updates:
            if isinstance(update, Listed):
                found = {name_of(i): i for i in update.items if selector.matches(i)}
            elif update.type in ("ADDED", "MODIFIED") and selector.matches(update.obj):
                found[name_of(update.obj)] = update.obj
            elif update.type == "DELETED":
                found.pop(name_of(update.obj), None)
            if found:
                return _oldest_first(found)
    return []
