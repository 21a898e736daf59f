"""Live state of one PipelineRun, its TaskRuns and their pods, kept current by three list-watches.

A follow costs a constant number of API requests: one LIST + one WATCH per kind (more only when
a watch ends or expires), never polling. Followers of the same run in one process share one
`RunWatch` through `RunWatchRegistry`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from shared.kube.client import PIPELINERUNS, PODS, TASKRUNS, Kube, KubeError, Resource
from shared.kube.listwatch import Changed, Listed, ListWatch
from shared.kube.retry import REFUSAL_GRACE
from shared.runs.model import PIPELINE_RUN_LABEL, Obj, name_of, owned_children


class RunWatch:
    """Snapshots of the run's objects; `cond` is notified on every change.

    The TaskRuns and pods are listed by the run's label, which anyone who may create them in the
    namespace can set; `taskruns` and `pods` hold only those the run owns (ownerReference uids),
    so a forged TaskRun or pod cannot put lines into the run's stream."""

    def __init__(self, kube: Kube, namespace: str, name: str, pipelinerun: Obj | None = None) -> None:
        self.kube = kube
        self.namespace = namespace
        self.name = name
        self.cond = threading.Condition()
        self.pipelinerun: Obj | None = pipelinerun
        self.pipelinerun_deleted = False
        self.taskruns: dict[str, Obj] = {}
        self.pods: dict[str, Obj] = {}
        # Everything the label selectors return; `taskruns` and `pods` are the owned part.
        self._labelled_taskruns: dict[str, Obj] = {}
        self._labelled_pods: dict[str, Obj] = {}
        self.deleted_pods: set[str] = set()
        self.synced: set[str] = set()
        self.error: KubeError | None = None
        self.version = 0
        self._stop = threading.Event()
        self._listwatches: list[ListWatch] = []
        self._threads: list[threading.Thread] = []
        self._listeners: list[Callable[[], None]] = []
        self._troubled_until = 0.0  # monotonic time until which refusals count as transient
        self.breaks = 0  # watch requests that broke or failed (for tests and logs)

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> RunWatch:
        selector = f"{PIPELINE_RUN_LABEL}={self.name}"
        kinds: list[tuple[str, Resource, str | None, str | None]] = [
            ("pipelinerun", PIPELINERUNS, None, f"metadata.name={self.name}"),
            ("taskruns", TASKRUNS, selector, None),
            ("pods", PODS, selector, None),
        ]
        for kind, resource, labels, fields in kinds:
            listwatch = ListWatch(
                self.kube,
                resource,
                self.namespace,
                labels=labels,
                fields=fields,
                stop=self._stop,
                on_break=self._trouble,
                what=f"{kind} for {self.namespace}/{self.name}",
            )
            self._listwatches.append(listwatch)
            thread = threading.Thread(
                target=self._run, args=(kind, listwatch), name=f"watch-{kind}-{self.name}", daemon=True
            )
            self._threads.append(thread)
            thread.start()
        return self

    def stop(self) -> None:
        """Ends the watches at once, also when the API is silent: their sockets are shut down."""
        self._stop.set()
        for listwatch in self._listwatches:
            listwatch.interrupt()
        with self.cond:
            self.cond.notify_all()

    def join(self, timeout: float = 5.0) -> None:
        for thread in self._threads:
            thread.join(timeout)

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def add_listener(self, callback: Callable[[], None]) -> None:
        with self.cond:
            self._listeners.append(callback)

    def remove_listener(self, callback: Callable[[], None]) -> None:
        with self.cond:
            if callback in self._listeners:
                self._listeners.remove(callback)

    def reconnecting(self) -> bool:
        """True while the API recently failed us: refusals may be a restart's, not RBAC's."""
        return time.monotonic() < self._troubled_until

    def _trouble(self) -> None:
        self.breaks += 1
        self._troubled_until = time.monotonic() + REFUSAL_GRACE

    # -- state changes ---------------------------------------------------------------------------
    def _changed(self) -> None:
        # Called with self.cond held.
        self.taskruns, self.pods = owned_children(self.pipelinerun, self._labelled_taskruns, self._labelled_pods)
        self.version += 1
        self.cond.notify_all()
        for callback in list(self._listeners):
            callback()

    def _replace(self, kind: str, items: list[Obj]) -> None:
        with self.cond:
            if kind == "pipelinerun":
                if items:
                    self.pipelinerun = items[0]
                elif self.pipelinerun is not None:
                    self.pipelinerun_deleted = True
            elif kind == "taskruns":
                self._labelled_taskruns = {name_of(i): i for i in items}
            else:
                fresh = {name_of(i): i for i in items}
                self.deleted_pods |= set(self._labelled_pods) - set(fresh)
                self._labelled_pods = fresh
            self.synced.add(kind)
            self._changed()

    def _apply(self, kind: str, event: str, obj: Obj) -> None:
        name = name_of(obj)
        with self.cond:
            if kind == "pipelinerun":
                if event == "DELETED":
                    self.pipelinerun_deleted = True
                else:
                    self.pipelinerun = obj
            elif kind == "taskruns":
                if event == "DELETED":
                    self._labelled_taskruns.pop(name, None)
                else:
                    self._labelled_taskruns[name] = obj
            elif event == "DELETED":
                self._labelled_pods.pop(name, None)
                self.deleted_pods.add(name)
            else:
                self._labelled_pods[name] = obj
            self._changed()

    def _fail(self, err: KubeError) -> None:
        with self.cond:
            self.error = err
            self._changed()

    # -- watch loop ------------------------------------------------------------------------------
    def _run(self, kind: str, listwatch: ListWatch) -> None:
        try:
            for update in listwatch.updates():
                if isinstance(update, Listed):
                    self._replace(kind, update.items)
                elif isinstance(update, Changed):
                    self._apply(kind, update.type, update.obj)
        except KubeError as err:  # refused for good: RBAC, or a missing namespace or CRD
            if not self._stop.is_set():
                self._fail(err)


class RunWatchRegistry:
    """Shares one RunWatch among all followers of a run in this process (fan-out)."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self._lock = threading.Lock()
        self._watches: dict[tuple[str, str], tuple[RunWatch, int]] = {}

    def acquire(self, namespace: str, name: str, pipelinerun: Obj | None = None) -> RunWatch:
        with self._lock:
            entry = self._watches.get((namespace, name))
            if entry is None or entry[0].stopped or entry[0].error is not None:
                watch = RunWatch(self.kube, namespace, name, pipelinerun).start()
                self._watches[(namespace, name)] = (watch, 1)
                return watch
            watch, count = entry
            self._watches[(namespace, name)] = (watch, count + 1)
            return watch

    def release(self, watch: RunWatch) -> None:
        with self._lock:
            key = (watch.namespace, watch.name)
            entry = self._watches.get(key)
            if entry is not None and entry[0] is watch:
                if entry[1] > 1:
                    self._watches[key] = (watch, entry[1] - 1)
                    return
                del self._watches[key]
        watch.stop()

    def peek(self, namespace: str, name: str) -> RunWatch | None:
        """The run's shared watch if a follower holds it, without taking a reference."""
        with self._lock:
            entry = self._watches.get((namespace, name))
        return entry[0] if entry is not None else None

    def active(self) -> int:
        with self._lock:
            return len(self._watches)
