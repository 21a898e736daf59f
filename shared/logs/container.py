"""Reading one container's log to its end, through breaks, without losing or repeating a line.

The log is read with `timestamps=true`: a container that has terminated without `follow` (the
kubelet then sends its file in large chunks, as `kubectl logs` gets it), a live one with
`follow`. When the stream breaks before the container has ended, it is reopened with
`sinceTime` (which the apiserver truncates to whole seconds) and the `LineSplitter` drops what
the cursor says was delivered. The reader knows a pod and a container, nothing of runs: what it
needs to know about them comes through a `ContainerView`.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from shared.kube.client import Forbidden, Kube, KubeError, NotFound, interrupt
from shared.kube.retry import REFUSAL_GRACE, Backoff
from shared.logs.body import pieces
from shared.logs.container_view import ContainerView, Ended, Failed, Outcome, Start
from shared.logs.cursor import Cursor
from shared.logs.file_starts import LOOK_EVERY, FileStarts
from shared.logs.lines import LineSplitter, Piece
from shared.logs.rotation import ROTATION_BYTES, current_file_head, may_have_missed_lines
from shared.runs.model import Container

log = logging.getLogger(__name__)

# After EOF, how long to wait for the pod watch to report the container terminated before
# concluding the stream broke and reopening it.
TERMINATION_GRACE = 2.0
DELETE_SETTLE = 5.0  # how long a 400 for a vanished container waits for the watch to see the delete
RESTART_WAIT = 330.0  # the kubelet's restart back-off goes up to 5 minutes


class ContainerReader:
    """Reads one container's log until the container has terminated."""

    def __init__(
        self,
        kube: Kube,
        view: ContainerView,
        pod: str,
        container: str,
        stop: threading.Event,
        cursor: Cursor | None = None,
    ) -> None:
        self.kube = kube
        self.view = view
        self.pod = pod
        self.container = container
        self.stop = stop
        self.cursor = cursor or Cursor()
        self._response: Any = None
        self.read_bytes = 0  # log bytes this reader delivered
        self._chunk_at, self._delivering = 0.0, False  # when the last chunk came, whether it is being delivered
        self._resumes_at = -1  # a stuck follow's next file begins with this line: no gap before it

    def interrupt(self) -> None:
        response = self._response
        if response is not None:
            interrupt(response)

    def wait_started(self, ended: Callable[[], bool], stuck_ok: bool = False) -> Start:
        """Blocks until the container runs or ran, or something else settles it."""
        result: list[Start] = []

        def settled() -> bool:
            current = self.view.state(self.container)
            if self.stop.is_set():
                result.append(Start.STOPPED)
            elif current is not None and current.started:
                result.append(Start.STARTED)
            elif self.view.pod_gone():
                result.append(Start.DELETED)
            elif ended():
                result.append(Start.ENDED)
            elif current is not None and current.stuck and not stuck_ok:
                result.append(Start.STUCK)
            return bool(result)

        self.view.wait(settled, None)
        return result[0] if result else Start.STOPPED

    def read(
        self,
        emit: Callable[[Piece], None],
        follow: bool | None,
        gap: Callable[[int, int], None],
    ) -> Outcome:
        """Emits the log's lines until the container ends (`follow=None`: follow unless it has
        terminated already). Breaks are retried with backoff: a cut connection, an apiserver that
        is down or restarting (403 until its RBAC caches sync, 404 until it serves the pod again,
        5xx), a kubelet that drops the stream. 403/404 are final only when the pod is gone, or
        after `REFUSAL_GRACE` seconds of nothing else (or at once on the first request: then it
        is RBAC, not a restart).

        A container the kubelet starts again (restartPolicy) is read on into its new instance.
        A follow that ended well before the container did is read once more without `follow`:
        kubelet 1.20's follow stays on a rotated log file and misses what goes to the new one.
        Lines that only a rotated file held are gone: `gap(after_ns, next_ns)` says so, where a
        reopened read starts after the last line delivered or a lagging follow skipped a file
        (`shared/logs/rotation.py`)."""
        backoff = Backoff(self.stop)
        opened = reopening = looked_again = False
        last_tail: bytes | None = None
        refused_since: float | None = None
        while not self.stop.is_set():
            current = self.view.state(self.container)
            following = follow if follow is not None else not (current is not None and current.state == "terminated")
            try:
                response = self.kube.pod_log(
                    self.view.namespace,
                    self.pod,
                    self.container,
                    follow=following,
                    timestamps=True,
                    since_time=self.cursor.since_time(),
                )
            except (NotFound, Forbidden) as err:
                now = time.monotonic()
                refused_since = refused_since or now
                outcome = self._refused(err, opened, now - refused_since)
                if outcome is not None:
                    return outcome
                log.info("log of %s/%s refused (%s); retrying", self.pod, self.container, err.reason)
                if backoff.wait():
                    break
                continue
            except KubeError as err:
                if err.status == 400 and "waiting to start" in err.detail and follow is None:
                    if self.wait_started(lambda: False, stuck_ok=True) != Start.STARTED:
                        return Ended.DELETED if self.view.pod_gone() else Ended.STOPPED
                    continue
                if err.status == 400 and "is terminated" in err.detail:
                    # A container whose pod is being deleted loses its ID: the kubelet answers 400.
                    self.view.wait(lambda: self.stop.is_set() or self.view.pod_deleting(), DELETE_SETTLE)
                    if self.view.pod_deleting():
                        return Ended.DELETED
                if err.status == 400 and not self.view.reconnecting():
                    return Failed(err.detail or err.reason)
                if backoff.wait():
                    break
                continue
            opened = True
            refused_since = None
            splitter = LineSplitter(self.cursor, ordered=following)
            clean_eof, delivered = self._consume(response, splitter, emit, gap, following, reopening)
            reopening = True
            if self.stop.is_set():
                break
            # A clean end inside a line is a cut (the apiserver ends its response cleanly when the
            # kubelet's connection breaks) or a terminated container's last line without a newline:
            # no need to wait for the pod watch. Other clean ends of a follow wait a moment for it
            # to say whether the container has terminated.
            partial = clean_eof and bool(splitter.tail)
            current = (
                self._await_termination()
                if clean_eof and following and not partial
                else self.view.state(self.container)
            )
            if current is None and self.view.pod_gone():
                return Ended.DELETED
            finished = not following or (current is not None and current.state == "terminated")
            if finished and clean_eof:
                # A trailing partial line is believed to be the container's own last output only
                # when two reads in a row end with the same bytes; a cut lands elsewhere every time.
                if splitter.tail and splitter.tail != last_tail:
                    last_tail = splitter.tail
                    if splitter.seen:
                        backoff.reset()  # the stream worked: read the tail again at once
                    elif backoff.wait():
                        break
                    continue
                for piece in splitter.finish():
                    emit(piece)
                    self.cursor = piece.cursor
                if current is not None and current.restarting:
                    if not self._await_restart(current.restarts):
                        return Ended.DONE
                    reopening = False  # the new instance's log begins after the old one's
                    continue
                if following and not looked_again and may_have_missed_lines(current, self.cursor, self.read_bytes):
                    looked_again = True
                    continue
                return Ended.DONE
            # The stream broke (or ended early) with the container still running: reopen it and
            # skip what was already delivered. A cut partial line is read again whole.
            if delivered:
                backoff.reset()
            elif backoff.wait():
                break
        return Ended.STOPPED

    def _refused(self, err: KubeError, opened: bool, refused_for: float) -> Outcome | None:
        """A 403/404: the final outcome, or None to retry (a restarting apiserver refuses too)."""
        not_found = isinstance(err, NotFound)
        if not_found and (self.view.pod_gone() or (not opened and not self.view.pod_known())):
            return Ended.DELETED
        # A lasting 404 for a pod still in the API: its node has no log for it, not a deletion.
        what = "its node has no log for it" if not_found else "not allowed to read logs"
        why = f"{what} ({err.detail or err.reason})"
        if not not_found and not opened and not self.view.reconnecting():
            return Failed(why)
        return Failed(why) if refused_for > REFUSAL_GRACE else None

    def _consume(
        self,
        response: Any,
        splitter: LineSplitter,
        emit: Callable[[Piece], None],
        gap: Callable[[int, int], None],
        following: bool,
        reopened: bool,
    ) -> tuple[bool, bool]:
        """Reads one response to its end. Returns (ended cleanly, delivered anything). Lines
        missing before the first one it delivers are said there (`gap`): a reopened read that
        starts after the last line delivered (the file was rotated since), or a lagging follow
        that steps over a rotated file (`FileStarts`)."""
        self._response = response
        clean_eof = delivered = False
        head = functools.partial(current_file_head, self.kube, self.view.namespace, self.pod, self.container)
        starts = FileStarts(head, gap) if following else None
        after, resumes_at, self._resumes_at = (self.cursor.ns if reopened else -1), self._resumes_at, -1
        done = threading.Event()
        if starts is not None:
            beside = (done, lambda: self.cursor, self._busy, self._may_fill, lambda: self._stuck(response))
            threading.Thread(target=starts.watch, args=beside, daemon=True).start()
        try:
            if not self.stop.is_set():
                for data in pieces(response):
                    self._chunk_at, self._delivering = time.monotonic(), True
                    for piece in splitter.feed(data):
                        if not delivered and splitter.first_ns > after >= 0 and splitter.first_ns != resumes_at:
                            gap(after, splitter.first_ns)  # the file no longer holds the last line
                        if starts is not None and piece.cursor.ns >= starts.next_ns:
                            starts.pass_on(piece, self.cursor, lambda part: self._deliver(part, emit))
                        else:
                            self._deliver(piece, emit)
                        delivered = True
                    self._delivering = False
                clean_eof = True
        except Exception as err:  # a cut connection surfaces as urllib3/OSError/BodyError types
            log.info("log stream of %s/%s broke: %s", self.pod, self.container, type(err).__name__)
        finally:
            done.set()
            self._response = None
            # Closed before it is released: a half-read connection never goes back to the pool.
            response.close()
            response.release_conn()
        if starts is not None:
            self._resumes_at = starts.resumes_at
        return clean_eof, delivered

    def _deliver(self, piece: Piece, emit: Callable[[Piece], None]) -> None:
        emit(piece)
        self.cursor = piece.cursor
        self.read_bytes += len(piece.data)

    def _busy(self) -> bool:
        """The follow has lines to deliver, or had some lately."""
        return self._delivering or time.monotonic() - self._chunk_at < LOOK_EVERY

    def _may_fill(self) -> bool:
        return self.read_bytes >= ROTATION_BYTES // 2

    def _stuck(self, response: Any) -> None:
        log.warning("the kubelet's follow of %s/%s is stuck on a rotated log file: reopened", self.pod, self.container)
        interrupt(response)

    def _await_restart(self, restarts: int) -> bool:
        """Waits for the kubelet to start the container again; False if it will not."""

        def settled() -> bool:
            current = self.view.state(self.container)
            return self.stop.is_set() or current is None or current.restarts > restarts or not current.restarting

        self.view.wait(settled, RESTART_WAIT)
        current = self.view.state(self.container)
        return not self.stop.is_set() and current is not None and current.restarts > restarts

    def _await_termination(self) -> Container | None:
        def settled() -> bool:
            current = self.view.state(self.container)
            return self.stop.is_set() or self.view.pod_gone() or (current is not None and current.state == "terminated")

        self.view.wait(settled, TERMINATION_GRACE)
        return self.view.state(self.container)
