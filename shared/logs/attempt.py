"""One TaskRun attempt's pod: its step containers read one after another into log events."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from shared.kube.client import Kube
from shared.logs import notices
from shared.logs.container import ContainerReader
from shared.logs.container_view import Ended, Failed, Start
from shared.logs.cursor import Cursor
from shared.logs.events import Event, LogLines
from shared.logs.lines import Piece
from shared.logs.secret_values import PodSecrets, SecretMaskers, Unreadable
from shared.runs.model import Attempt, Container, Obj, is_done, pod_containers
from shared.runs.watch import RunWatch

log = logging.getLogger(__name__)


class PodView:
    """A `ContainerView` of one attempt's pod, from the run's watch."""

    def __init__(self, watch: RunWatch, attempt: Attempt) -> None:
        self.watch = watch
        self.namespace = watch.namespace
        self.pod = attempt.pod
        self.taskrun = attempt.taskrun

    def state(self, container: str) -> Container | None:
        pod = self.watch.pods.get(self.pod)
        if pod is None:
            return None
        return next((c for c in pod_containers(pod, sidecars=True) if c.container == container), None)

    def pod_known(self) -> bool:
        return self.pod in self.watch.pods

    def taskrun_done(self) -> bool:
        taskrun = self.watch.taskruns.get(self.taskrun)
        return taskrun is None or is_done(taskrun)

    def pod_gone(self) -> bool:
        if self.pod in self.watch.pods:
            return False
        if self.pod in self.watch.deleted_pods:
            return True
        # Never seen, and its TaskRun is done: gone, unless the watches broke lately (an apiserver
        # restart): then the pods watch may simply be behind the TaskRun watch.
        return "pods" in self.watch.synced and self.taskrun_done() and not self.watch.reconnecting()

    def pod_deleting(self) -> bool:
        pod = self.watch.pods.get(self.pod)
        if pod is None:
            return self.pod_gone()
        return bool((pod.get("metadata") or {}).get("deletionTimestamp"))

    def reconnecting(self) -> bool:
        return self.watch.reconnecting()

    def wait(self, ready: Callable[[], bool], timeout: float | None) -> None:
        with self.watch.cond:
            self.watch.cond.wait_for(ready, timeout)


class AttemptReader:
    """Reads the step containers of one attempt in `pod.spec.containers` order, from where an
    earlier stream left off (`position`), masking the Secret values the pod can see."""

    def __init__(
        self,
        kube: Kube,
        watch: RunWatch,
        attempt: Attempt,
        stop: threading.Event,
        put: Callable[[Event], None],
        put_lines: Callable[[list[Event]], None],
        wants_step: Callable[[str], bool],
        position: tuple[int, Cursor] | None = None,
        maskers: SecretMaskers | None = None,
    ) -> None:
        self.kube = kube
        self.watch = watch
        self.attempt = attempt
        self.stop = stop
        self.put = put
        self.put_lines = put_lines
        self.wants_step = wants_step
        self.position = position
        self.maskers = maskers
        self.view = PodView(watch, attempt)
        self.readers: list[ContainerReader] = []
        self._cut: threading.Timer | None = None
        self.streamed = position is not None  # lines of this attempt went out (in this stream or before)

    def interrupt(self) -> None:
        if self._cut is not None:
            self._cut.cancel()
        for reader in list(self.readers):
            reader.interrupt()

    def cut_later(self, seconds: float) -> None:
        """Cuts the log connections in `seconds` (once), for a pod that was deleted."""
        if self._cut is None:
            self._cut = threading.Timer(seconds, self.interrupt)
            self._cut.daemon = True
            self._cut.start()

    def run_reporting(self, done: Callable[[], None]) -> None:
        """`run`, on a thread of its own: a crash becomes a notice, `done()` comes at the end."""
        try:
            self.run()
        except Exception:
            log.exception("following %s failed", self.attempt.pod)
            self.put(notices.crashed(self.attempt))
        finally:
            done()

    def run(self) -> None:
        view = self.view
        # Re-checked every second too: `pod_gone` also changes when a reconnect's grace runs out.
        while not (self.stop.is_set() or view.pod_known() or view.pod_gone()):
            view.wait(lambda: self.stop.is_set() or view.pod_known() or view.pod_gone(), 1.0)
        if self.stop.is_set():
            return
        pod = self.watch.pods.get(self.attempt.pod)
        if pod is None:
            self._deleted()
            return
        try:
            masker = self.maskers.for_pod(view.namespace, pod) if self.maskers is not None else None
        except Unreadable as err:
            self.put(notices.masking_unavailable(self.attempt, str(err)))
            return
        try:
            self._read_all(pod, masker)
        finally:
            if masker is not None:
                masker.close()

    def _read_all(self, pod: Obj, masker: PodSecrets | None) -> None:
        for index, container in enumerate(pod_containers(pod)):
            if not self.wants_step(container.name):
                continue
            cursor = None
            if self.position is not None:
                if index < self.position[0]:
                    continue  # delivered in full by an earlier stream
                if index == self.position[0]:
                    cursor = self.position[1]
            if not self._read(container, index, cursor, masker):
                return

    def _read(self, container: Container, index: int, cursor: Cursor | None, masker: PodSecrets | None) -> bool:
        """Reads one container; False when the attempt's later containers are not to be read."""
        reader = ContainerReader(self.kube, self.view, self.attempt.pod, container.container, self.stop, cursor)
        self.readers.append(reader)
        started = reader.wait_started(self.view.taskrun_done)
        if started is Start.STUCK:
            current = self.view.state(container.container)
            reason = f"{current.reason}: {current.message}" if current else "waiting"
            self.put(notices.cannot_start(self.attempt, container.name, index, reason))
            started = reader.wait_started(self.view.taskrun_done, stuck_ok=True)
        follow: bool | None = None
        if started is Start.ENDED:
            current = self.view.state(container.container)
            if current is not None and current.state != "unknown":
                return False  # it never started: it has no lines
            # The pod says nothing of this container: read what the kubelet has, or say why not.
            follow = False
        elif started is Start.DELETED:
            self._deleted()
            return False
        elif started is not Start.STARTED:
            return False

        def gap(after_ns: int, next_ns: int) -> None:
            self.put(notices.lines_missing(self.attempt, container.name, index, after_ns, next_ns))

        outcome = reader.read(self._emitter(container.name, index, masker), follow, gap)
        if outcome is Ended.DELETED:
            self._deleted()
        elif isinstance(outcome, Failed):
            self.put(notices.read_failed(self.attempt, container.name, index, outcome.message))
        return outcome is Ended.DONE

    def _deleted(self) -> None:
        self.put(notices.pod_deleted(self.attempt, self.watch.taskruns.get(self.attempt.taskrun), self.streamed))

    def _emitter(self, step: str, index: int, masker: PodSecrets | None) -> Callable[[Piece], None]:
        attempt, task = self.attempt, self.attempt.task
        masking = masker.stream() if masker else None

        def emit(piece: Piece) -> None:
            self.streamed = True
            data, cursor = piece.data, piece.cursor
            if masking is not None:
                if cursor.piece:
                    # A piece of a long line: a secret may go on in the next piece, so the masker
                    # holds back its possible start; the cursor counts only what went out.
                    data = masking.feed(data[:-1]) + b"\n"
                    cursor = Cursor(cursor.ns, cursor.same, cursor.piece - masking.held)
                else:
                    data = masking.feed(data)
            lines = LogLines(task, step, data, piece.lines, cursor, piece.stamped, attempt.index, attempt.pod, index)
            self.put_lines([lines])

        return emit
