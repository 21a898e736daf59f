"""The log reader: a PipelineRun as an ordered stream of events, like `tkn pipelinerun logs -f`.

Every TaskRun attempt (retries and `finally` tasks included) is followed as it starts, its step
containers one after another in `pod.spec.containers` order. Attempts that are still running
stream at once and their lines interleave as whole lines; attempts that had already finished
are replayed one after another, in start order. Tasks that produce no logs get one line saying
why. The stream ends with the run's final status.
"""

from __future__ import annotations

import functools
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from shared.kube.client import Kube
from shared.logs import events, notices
from shared.logs.attempt import AttemptReader
from shared.logs.events import AttemptDone, Event, Heartbeat, LogLines, Notice, RunFinished, RunStarted, StreamEnded
from shared.logs.options import FollowOptions
from shared.logs.secret_values import SecretMaskers
from shared.logs.tokens import ResumePoint
from shared.runs.model import (
    Attempt,
    Obj,
    attempts_of,
    is_done,
    name_of,
    pipeline_task_of,
    pod_containers,
    status_of,
    taskrun_start_key,
)
from shared.runs.status import run_status
from shared.runs.watch import RunWatch, RunWatchRegistry

# How long a finished run may wait for the TaskRun/pod watches to catch up with the PipelineRun's.
CATCH_UP_SECONDS = 5.0
# How long a deleted pod's log connection may stay open before it is cut (the kubelet normally
# ends it at once; this guards against a connection that hangs instead).
DELETED_POD_GRACE = 5.0
# Log batches in flight between container readers and a slow client: back-pressure, not memory.
MAX_BATCHES = 64
# Log bytes per write at most: what is ready beyond that waits, so a writer that is slower than its
# readers (NDJSON) never formats the whole queue at once.
BATCH_BYTES = 256 * 1024


@dataclass(frozen=True)
class _Done:
    attempt: Attempt


_CHANGED = object()
_FLUSH = object()  # yielded by the loop just before it would block
_END = object()  # returned by _reconcile: the stream ends without a final status


class RunFollower:
    """Produces the events of one PipelineRun for one client."""

    def __init__(
        self,
        kube: Kube,
        registry: RunWatchRegistry,
        pipelinerun: Obj,
        options: FollowOptions,
        shutdown: threading.Event | None = None,
        client_gone: Callable[[], bool] | None = None,
        resume: ResumePoint | None = None,
        maskers: SecretMaskers | None = None,
    ) -> None:
        self.kube = kube
        # Secret values the run's pods can see are masked where RBAC lets us read them.
        self.maskers = maskers
        self.registry = registry
        self.namespace = str(pipelinerun["metadata"]["namespace"])
        self.name = name_of(pipelinerun)
        self.initial = pipelinerun
        self.options = options
        self.shutdown = shutdown or threading.Event()
        self.client_gone = client_gone or (lambda: False)
        # What an earlier stream of this client delivered: finished attempts and sent notices
        # are skipped, attempts in progress continue after their last delivered line.
        self.resume = resume or ResumePoint()
        self.resumed = resume is not None
        self._queue: queue.Queue[object] = queue.Queue()
        self._space = threading.Semaphore(MAX_BATCHES)
        self._stop = threading.Event()
        self._changed_pending = threading.Event()
        self._streamers: dict[str, tuple[threading.Thread, AttemptReader]] = {}
        self._started: set[str] = set()
        self._finished_attempts: set[str] = set()
        self._replaying: str | None = None
        self._notices = notices.Said(self.resume.notice_sent)
        self._done_since: float | None = None

    # -- public ----------------------------------------------------------------------------------
    def batches(self) -> Iterator[list[Event]]:
        """Events grouped by what was ready at once (up to `BATCH_BYTES` of log lines), so a
        writer can send them in one write."""
        batch: list[Event] = [RunStarted(self.namespace, self.name, resumed=self.resumed)]
        size = 0
        watch = self.registry.acquire(self.namespace, self.name, self.initial)
        watch.add_listener(self._on_change)
        try:
            for item in self._loop(watch):
                if item is not _FLUSH:
                    batch.append(item)
                    size += len(item.data) if isinstance(item, LogLines) else 0
                if (item is _FLUSH or size >= BATCH_BYTES) and batch:
                    yield events.merged(batch)
                    batch, size = [], 0
            if batch:
                yield events.merged(batch)
        finally:
            self.close(watch)

    def close(self, watch: RunWatch) -> None:
        """Releases every thread, watch and log connection this follower holds."""
        if self._stop.is_set():
            return
        self._stop.set()
        watch.remove_listener(self._on_change)
        for _, reader in list(self._streamers.values()):
            reader.interrupt()
        with watch.cond:
            watch.cond.notify_all()
        for thread, _ in list(self._streamers.values()):
            thread.join(5.0)
        self.registry.release(watch)

    # -- main loop -------------------------------------------------------------------------------
    def _on_change(self) -> None:
        # Runs on a watch thread with the watch's lock held: never block here.
        if not self._changed_pending.is_set():
            self._changed_pending.set()
            self._queue.put(_CHANGED)

    def _loop(self, watch: RunWatch) -> Iterator[Any]:
        heartbeat = self.options.heartbeat_seconds
        last_sent = time.monotonic()
        self._queue.put(_CHANGED)
        self._changed_pending.set()
        while True:
            now = time.monotonic()
            if self.client_gone():
                return
            if self.shutdown.is_set():
                yield StreamEnded("shutdown", "the listener is shutting down")
                return
            if self.options.deadline is not None and now >= self.options.deadline:
                yield StreamEnded("deadline", "stream time limit reached")
                return
            waits = [1.0]
            if heartbeat > 0:
                waits.append(max(0.0, last_sent + heartbeat - now))
            if self.options.deadline is not None:
                waits.append(max(0.0, self.options.deadline - now))
            if self._queue.empty():
                yield _FLUSH
            try:
                item = self._queue.get(timeout=min(waits))
            except queue.Empty:
                if heartbeat > 0 and time.monotonic() - last_sent >= heartbeat:
                    last_sent = time.monotonic()
                    yield Heartbeat()
                continue
            if item is _CHANGED:
                self._changed_pending.clear()
                finished = yield from self._reconcile(watch)
                if finished is _END:
                    return
                if finished is not None:
                    yield finished
                    return
            elif isinstance(item, _Done):
                key = item.attempt.pod
                self._streamers.pop(key, None)
                self._finished_attempts.add(key)
                if self._replaying == key:
                    self._replaying = None
                self._queue.put(_CHANGED)
                yield AttemptDone(key)
            elif isinstance(item, list):
                self._space.release()
                yield from item
            elif isinstance(item, Notice):
                # A notice from an attempt reader: said once across resumed streams too.
                yield from self._notices.once([item])
            else:
                yield item
            last_sent = time.monotonic()

    def _reconcile(self, watch: RunWatch) -> Iterator[Event]:
        """Starts followers for new attempts and says what happened to tasks without logs.
        Returns (as the generator's value) the RunFinished event once everything is done."""
        with watch.cond:
            error = watch.error
            pipelinerun = watch.pipelinerun or self.initial
            deleted = watch.pipelinerun_deleted
            taskruns = sorted(watch.taskruns.values(), key=taskrun_start_key)
            pods = dict(watch.pods)
            synced = len(watch.synced) == 3
        if error is not None:
            # Not the run's end: the client may continue later, with the token this carries.
            yield StreamEnded("error", f"cannot follow the run: Kubernetes API {error.reason} ({error.detail})")
            return _END
        if deleted:
            yield Notice("", f"PipelineRun {self.name} was deleted", kind="error", key="deleted-run")
            return RunFinished(run_status(pipelinerun, taskruns))
        if not synced:
            return None

        yield from self._notices.once(notices.skipped(pipelinerun, self.options.wants_task))
        pending: list[tuple[Obj, Attempt]] = []
        for taskrun in taskruns:
            task = pipeline_task_of(taskrun)
            if not self.options.wants_task(task):
                continue
            attempts = attempts_of(taskrun)
            yield from self._notices.once(notices.retries(taskrun))
            if not attempts and is_done(taskrun):
                yield from self._notices.once([notices.no_pod(taskrun)])
            for attempt in attempts:
                if attempt.pod not in self._started and self.resume.attempt_done(attempt.pod):
                    # Delivered in full by an earlier stream.
                    self._started.add(attempt.pod)
                    self._finished_attempts.add(attempt.pod)
            pending.extend((taskrun, a) for a in attempts if a.pod not in self._started)
        for taskrun, attempt in pending:
            containers = pod_containers(pods[attempt.pod]) if attempt.pod in pods else []
            live = not is_done(taskrun) or any(c.state != "terminated" for c in containers)
            if not live:
                if self._replaying is not None:
                    continue  # finished attempts are replayed one at a time, in start order
                self._replaying = attempt.pod
            self._start(watch, attempt)

        for taskrun in taskruns:
            if self.options.wants_task(pipeline_task_of(taskrun)):
                yield from self._notices.once(notices.task_failed(taskrun, self._finished_attempts.__contains__))

        self._interrupt_deleted(watch)
        yield from self._notices.once(notices.custom_runs(pipelinerun, self.options.wants_task))
        if not is_done(pipelinerun) or self._streamers:
            return None
        lagging = _children_lagging(pipelinerun, taskruns, self.options.wants_task)
        if lagging:
            # The PipelineRun's watch can run ahead of the TaskRuns' watch; give it a moment.
            now = time.monotonic()
            self._done_since = self._done_since or now
            if now - self._done_since < CATCH_UP_SECONDS:
                threading.Timer(0.2, self._on_change).start()
                return None
        return RunFinished(run_status(pipelinerun, taskruns))

    def _interrupt_deleted(self, watch: RunWatch) -> None:
        """A kubelet ends a log follow when the pod's containers are killed; should that
        connection hang instead, cut it once the pod has been gone for a while."""
        for pod, (_, reader) in list(self._streamers.items()):
            if pod in watch.deleted_pods:
                reader.cut_later(DELETED_POD_GRACE)

    # -- attempt streaming -----------------------------------------------------------------------
    def _start(self, watch: RunWatch, attempt: Attempt) -> None:
        self._started.add(attempt.pod)
        position = self.resume.position(attempt.pod)
        put, wants = self._queue.put, self.options.wants_step
        reader = AttemptReader(
            self.kube, watch, attempt, self._stop, put, self._put_lines, wants, position, self.maskers
        )
        done = functools.partial(put, _Done(attempt))
        thread = threading.Thread(target=reader.run_reporting, args=(done,), name=f"logs-{attempt.pod}", daemon=True)
        self._streamers[attempt.pod] = (thread, reader)
        thread.start()

    def _put_lines(self, events: list[Event]) -> None:
        """Hands a batch to the writer's side; waits while `MAX_BATCHES` are in flight (a slow
        client slows its readers down instead of growing memory)."""
        while not self._space.acquire(timeout=0.5):
            if self._stop.is_set():
                return
        self._queue.put(events)


def _children_lagging(pipelinerun: Obj, taskruns: list[Obj], wanted: Callable[[str], bool]) -> bool:
    """A done PipelineRun names TaskRuns the watch has not seen, or not seen done, yet."""
    refs = status_of(pipelinerun).get("childReferences") or []
    expected = {
        r.get("name") for r in refs if r.get("kind", "TaskRun") == "TaskRun" and wanted(r.get("pipelineTaskName", ""))
    }
    known = {name_of(tr) for tr in taskruns}
    return bool(expected - known) or any(not is_done(tr) for tr in taskruns if name_of(tr) in expected)
