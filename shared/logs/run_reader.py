"""The log reader: a PipelineRun as an ordered stream of events, like `tkn pipelinerun logs -f`.

Every TaskRun attempt (retries and `finally` tasks included) is followed as it starts, its step
containers one after another in `pod.spec.containers` order. Attempts that are still running
stream at once and their lines interleave as whole lines; attempts that had already finished
are replayed one after another, in start order. Tasks that produce no logs get one line saying
why. The stream ends with the run's final status.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from shared.kube.client import Kube
from shared.logs.container import ContainerFollower, Cursor
from shared.logs.cursor import ResumePoint
from shared.logs.events import AttemptDone, Event, Heartbeat, LogLine, Notice, RunFinished, RunStarted, StreamEnded
from shared.logs.masking import SecretMasker
from shared.logs.secret_values import SecretMaskers
from shared.runs.model import (
    Attempt,
    Obj,
    attempts_of,
    is_done,
    name_of,
    pipeline_task_of,
    pod_containers,
    status_of,
    succeeded_condition,
    taskrun_start_key,
)
from shared.runs.status import run_status
from shared.runs.watch import RunWatch, RunWatchRegistry

log = logging.getLogger(__name__)

# How long a finished run may wait for the TaskRun/pod watches to catch up with the PipelineRun's.
CATCH_UP_SECONDS = 5.0
# How long a deleted pod's log connection may stay open before it is cut (the kubelet normally
# ends it at once; this guards against a connection that hangs instead).
DELETED_POD_GRACE = 5.0
# Log batches in flight between container readers and a slow client: back-pressure, not memory.
MAX_BATCHES = 64


@dataclass(frozen=True)
class FollowOptions:
    tasks: frozenset[str] = frozenset()
    steps: frozenset[str] = frozenset()
    heartbeat_seconds: float = 15.0
    deadline: float | None = None  # time.monotonic() at which to end the stream early

    def wants_task(self, task: str) -> bool:
        return not self.tasks or task in self.tasks

    def wants_step(self, step: str) -> bool:
        return not self.steps or step in self.steps


class _Done:
    def __init__(self, attempt: Attempt) -> None:
        self.attempt = attempt


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
        self._streamers: dict[str, tuple[threading.Thread, list[ContainerFollower]]] = {}
        self._started: set[str] = set()
        self._finished_attempts: set[str] = set()
        self._replaying: str | None = None
        self._noticed: set[str] = set()
        self._done_since: float | None = None
        self._deletion_timers: dict[str, threading.Timer] = {}

    # -- public ----------------------------------------------------------------------------------
    def events(self) -> Iterator[Event]:
        for batch in self.batches():
            yield from batch

    def batches(self) -> Iterator[list[Event]]:
        """Events grouped by what was ready at once, so a writer can send them in one write."""
        batch: list[Event] = [RunStarted(self.namespace, self.name, resumed=self.resumed)]
        watch = self.registry.acquire(self.namespace, self.name, self.initial)
        watch.add_listener(self._on_change)
        try:
            for item in self._loop(watch):
                if item is _FLUSH:
                    if batch:
                        yield batch
                        batch = []
                else:
                    batch.append(item)
            if batch:
                yield batch
        finally:
            self.close(watch)

    def close(self, watch: RunWatch) -> None:
        """Releases every thread, watch and log connection this follower holds."""
        if self._stop.is_set():
            return
        self._stop.set()
        watch.remove_listener(self._on_change)
        for _, followers in list(self._streamers.values()):
            for follower in followers:
                follower.interrupt()
        with watch.cond:
            watch.cond.notify_all()
        for timer in self._deletion_timers.values():
            timer.cancel()
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
                # A notice from a streamer: said once across resumed streams too.
                if item.key and (item.key in self._noticed or self.resume.notice_sent(item.key)):
                    continue
                if item.key:
                    self._noticed.add(item.key)
                yield item
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

        yield from self._skipped_notices(pipelinerun)
        pending: list[tuple[Obj, Attempt]] = []
        for taskrun in taskruns:
            task = pipeline_task_of(taskrun)
            if not self.options.wants_task(task):
                continue
            attempts = attempts_of(taskrun)
            yield from self._retry_notices(taskrun, attempts)
            if not attempts and is_done(taskrun):
                yield from self._once(
                    f"nopod/{name_of(taskrun)}", Notice(task, _no_pod_message(taskrun), kind="no-logs")
                )
            for attempt in attempts:
                if attempt.pod not in self._started and self.resume.attempt_done(attempt.pod):
                    # Delivered in full by an earlier stream.
                    self._started.add(attempt.pod)
                    self._finished_attempts.add(attempt.pod)
            pending.extend((taskrun, a) for a in attempts if a.pod not in self._started)
        for taskrun, attempt in pending:
            pod = pods.get(attempt.pod)
            live = not is_done(taskrun) or (pod is not None and _pod_active(pod))
            if not live:
                if self._replaying is not None:
                    continue  # finished attempts are replayed one at a time, in start order
                self._replaying = attempt.pod
            self._start(watch, taskrun, attempt)

        for taskrun in taskruns:
            task = pipeline_task_of(taskrun)
            if not self.options.wants_task(task) or not is_done(taskrun):
                continue
            if all(a.pod in self._finished_attempts for a in attempts_of(taskrun)):
                cond = succeeded_condition(taskrun)
                if cond is not None and cond.status == "False":
                    message = f"task failed: {cond.reason}: {cond.message}".rstrip(": ")
                    yield from self._once(f"failed/{name_of(taskrun)}", Notice(task, message, kind="failed"))

        self._interrupt_deleted(watch)
        yield from self._custom_run_notices(pipelinerun)
        if not is_done(pipelinerun) or self._streamers:
            return None
        known = {name_of(tr) for tr in taskruns}
        expected = {
            ref.get("name")
            for ref in status_of(pipelinerun).get("childReferences") or []
            if ref.get("kind", "TaskRun") == "TaskRun" and self.options.wants_task(str(ref.get("pipelineTaskName", "")))
        }
        lagging = (expected - known) or any(not is_done(tr) for tr in taskruns if name_of(tr) in expected)
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
        for pod, (_, followers) in list(self._streamers.items()):
            if pod in watch.deleted_pods and pod not in self._deletion_timers:
                timer = threading.Timer(DELETED_POD_GRACE, _interrupt_all, args=(followers,))
                timer.daemon = True
                self._deletion_timers[pod] = timer
                timer.start()

    def _once(self, key: str, event: Notice) -> Iterator[Event]:
        if key not in self._noticed:
            self._noticed.add(key)
            if not self.resume.notice_sent(key):
                yield Notice(event.task, event.message, event.step, event.kind, key)

    def _skipped_notices(self, pipelinerun: Obj) -> Iterator[Event]:
        for skipped in status_of(pipelinerun).get("skippedTasks") or []:
            task = str(skipped.get("name", ""))
            if self.options.wants_task(task):
                reason = skipped.get("reason") or "skipped"
                yield from self._once(f"skipped/{task}", Notice(task, f"task skipped: {reason}", kind="skipped"))

    def _custom_run_notices(self, pipelinerun: Obj) -> Iterator[Event]:
        for ref in status_of(pipelinerun).get("childReferences") or []:
            kind = ref.get("kind", "TaskRun")
            task = str(ref.get("pipelineTaskName", ""))
            if kind != "TaskRun" and self.options.wants_task(task):
                message = f"{kind} {ref.get('name', '')} has no container logs to show"
                yield from self._once(f"custom/{ref.get('name')}", Notice(task, message, kind="no-logs"))

    def _retry_notices(self, taskrun: Obj, attempts: list[Attempt]) -> Iterator[Event]:
        task = pipeline_task_of(taskrun)
        for index, retry in enumerate(status_of(taskrun).get("retriesStatus") or []):
            cond = succeeded_condition(retry)
            why = f"{cond.reason}: {cond.message}" if cond else "failed"
            message = f"attempt {index + 1} failed ({why}); retrying"
            yield from self._once(f"retry/{name_of(taskrun)}/{index}", Notice(task, message, kind="retry"))

    # -- attempt streaming -----------------------------------------------------------------------
    def _start(self, watch: RunWatch, taskrun: Obj, attempt: Attempt) -> None:
        self._started.add(attempt.pod)
        followers: list[ContainerFollower] = []
        thread = threading.Thread(
            target=self._stream_attempt,
            args=(watch, name_of(taskrun), attempt, followers),
            name=f"logs-{attempt.pod}",
            daemon=True,
        )
        self._streamers[attempt.pod] = (thread, followers)
        thread.start()

    def _stream_attempt(self, watch: RunWatch, taskrun_name: str, attempt: Attempt, followers: list) -> None:
        try:
            self._stream_containers(watch, taskrun_name, attempt, followers)
        except Exception:
            log.exception("following %s failed", attempt.pod)
            self._queue.put(
                Notice(attempt.task, "log stream failed unexpectedly", kind="error", key=f"crash/{attempt.pod}")
            )
        finally:
            self._queue.put(_Done(attempt))

    def _stream_containers(self, watch: RunWatch, taskrun_name: str, attempt: Attempt, followers: list) -> None:
        streamed: list[int] = []  # lines delivered for this attempt, for the deletion notice

        def taskrun_done() -> bool:
            taskrun = watch.taskruns.get(taskrun_name)
            return taskrun is None or is_done(taskrun)

        def pod_gone() -> bool:
            if attempt.pod in watch.pods:
                return False
            return attempt.pod in watch.deleted_pods or ("pods" in watch.synced and taskrun_done())

        with watch.cond:
            watch.cond.wait_for(lambda: self._stop.is_set() or attempt.pod in watch.pods or pod_gone(), None)
            pod = watch.pods.get(attempt.pod)
        if self._stop.is_set():
            return
        deleted_key = f"deleted/{attempt.pod}"
        masker = self.maskers.for_pod(self.namespace, pod) if self.maskers is not None and pod is not None else None
        if pod is None:
            self._queue.put(
                Notice(attempt.task, _deleted_message(attempt, watch, bool(streamed)), kind="no-logs", key=deleted_key)
            )
            return
        position = self.resume.position(attempt.pod)
        if position is not None:
            streamed.append(0)  # an earlier stream delivered lines of this attempt
        for index, container in enumerate(pod_containers(pod)):
            if not self.options.wants_step(container.name):
                continue
            if position is not None and index < position.index:
                continue  # delivered in full by an earlier stream
            follower = ContainerFollower(self.kube, watch, attempt.pod, container.container, self._stop, pod_gone)
            if position is not None and index == position.index:
                follower.cursor = Cursor.at(position.last_ns, position.same_ts)
            followers.append(follower)
            started = follower.wait_started(taskrun_done)
            if started == "stuck":
                current = follower.state()
                reason = f"{current.reason}: {current.message}" if current else "waiting"
                self._queue.put(
                    Notice(
                        attempt.task,
                        f"container cannot start: {reason}".rstrip(": "),
                        step=container.name,
                        kind="image-pull",
                        key=f"stuck/{attempt.pod}/{index}",
                    )
                )
                started = follower.wait_started(taskrun_done, stuck_ok=True)
            if started == "deleted":
                self._queue.put(
                    Notice(
                        attempt.task, _deleted_message(attempt, watch, bool(streamed)), kind="no-logs", key=deleted_key
                    )
                )
                return
            if started != "started":
                return
            result = follower.follow(self._emitter(attempt, container.name, index, streamed, masker))
            if result == "deleted":
                self._queue.put(
                    Notice(
                        attempt.task, _deleted_message(attempt, watch, bool(streamed)), kind="no-logs", key=deleted_key
                    )
                )
                return
            if result.startswith("error"):
                self._queue.put(
                    Notice(attempt.task, result, step=container.name, kind="error", key=f"error/{attempt.pod}/{index}")
                )
            if result != "done":
                return

    def _emitter(
        self, attempt: Attempt, step: str, index: int, streamed: list[int], masker: SecretMasker | None = None
    ) -> Callable[[list[tuple[str, bytes]]], None]:
        def emit(batch: list[tuple[str, bytes]]) -> None:
            streamed.append(len(batch))
            if masker is not None:
                # Lines are whole here, and the masker splits multi-line values into lines.
                batch = [(ts, masker.mask(data)) for ts, data in batch]
            lines = [
                LogLine(
                    attempt.task, step, data.decode("utf-8", "surrogateescape"), ts, attempt.index, attempt.pod, index
                )
                for ts, data in batch
            ]
            while not self._space.acquire(timeout=0.5):
                if self._stop.is_set():
                    return
            self._queue.put(lines)

        return emit


def _interrupt_all(followers: list[ContainerFollower]) -> None:
    for follower in followers:
        follower.interrupt()


def _pod_active(pod: Obj) -> bool:
    return any(c.state != "terminated" for c in pod_containers(pod))


def _no_pod_message(taskrun: Obj) -> str:
    cond = succeeded_condition(taskrun)
    if cond is None:
        return "no logs: the task never started"
    return f"no logs: the task ended before a pod ran ({cond.reason}: {cond.message})".replace(": )", ")")


def _deleted_message(attempt: Attempt, watch: RunWatch, streamed: bool) -> str:
    taskrun = watch.taskruns.get(attempt.taskrun)
    cond = succeeded_condition(taskrun) if taskrun else None
    why = f" ({cond.reason}: {cond.message})" if cond and cond.status == "False" else ""
    if streamed:
        return f"pod {attempt.pod} was deleted while running{why}; its logs end here"
    return f"no logs: pod {attempt.pod} was deleted{why}"
