"""Following one container's log to its end, through breaks, without losing or repeating a line.

The log is read with `timestamps=true`. When the stream breaks before the container has ended,
it is reopened with `sinceTime` (which the apiserver truncates to whole seconds) and every line
at or before the last delivered one is dropped: by timestamp, and by count among lines sharing
the last timestamp.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from shared.kube.client import Forbidden, Kube, KubeError, NotFound
from shared.runs.model import Container, pod_containers
from shared.runs.watch import REFUSAL_GRACE, RunWatch, _interrupt

log = logging.getLogger(__name__)

# A run of bytes without a newline longer than this is passed on as a line of its own, so one
# endless line cannot grow memory without bound.
MAX_LINE = 1024 * 1024
# After EOF, how long to wait for the pod watch to report the container terminated before
# concluding the stream broke and reopening it.
TERMINATION_GRACE = 2.0
MAX_BACKOFF = 5.0


_SECONDS: dict[str, int] = {}  # parsed whole seconds: lines of one second share the work


def timestamp_ns(value: str) -> int:
    """RFC 3339 with up to nanoseconds (Go's RFC3339Nano trims trailing zeros) to Unix ns."""
    if not value.endswith("Z"):
        raise ValueError(f"not a UTC timestamp: {value!r}")
    body = value[:-1]
    frac = 0
    if "." in body:
        body, digits = body.split(".", 1)
        if not digits.isdigit():
            raise ValueError(f"not a timestamp: {value!r}")
        frac = int((digits + "000000000")[:9])
    seconds = _SECONDS.get(body)
    if seconds is None:
        seconds = int(dt.datetime.strptime(body, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=dt.UTC).timestamp())
        if len(_SECONDS) > 4096:
            _SECONDS.clear()
        _SECONDS[body] = seconds
    return seconds * 1_000_000_000 + frac


def rfc3339_seconds(ns: int) -> str:
    """`sinceTime` for a cursor: the apiserver truncates to whole seconds anyway."""
    return dt.datetime.fromtimestamp(ns // 1_000_000_000, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Cursor:
    """Where a container's log was delivered up to."""

    last_ts: str = ""
    last_ns: int = -1
    same_ts: int = 0  # lines already delivered that carry `last_ts`

    def record(self, ts: str) -> bool:
        """Notes a delivered line; a first stream repeats nothing, so every line is accepted."""
        try:
            ns = timestamp_ns(ts)
        except ValueError:
            return True
        if ns == self.last_ns:
            self.same_ts += 1
        else:
            self.last_ts, self.last_ns, self.same_ts = ts, ns, 1
        return True

    def resume(self) -> ResumeFilter:
        return ResumeFilter(self)

    @classmethod
    def at(cls, last_ns: int, same_ts: int) -> Cursor:
        """A cursor from a resume token: the stream continues after that line."""
        return cls(rfc3339_seconds(last_ns), last_ns, same_ts)


class ResumeFilter:
    """For a reopened stream: drops what it repeats (older lines, and the first `same_ts` lines
    with the last delivered timestamp), then records like a first stream."""

    def __init__(self, cursor: Cursor) -> None:
        self.cursor = cursor
        self.skip_same = cursor.same_ts
        self.caught_up = cursor.last_ns < 0

    def accept(self, ts: str) -> bool:
        if self.caught_up:
            return self.cursor.record(ts)
        try:
            ns = timestamp_ns(ts)
        except ValueError:
            return True
        if ns < self.cursor.last_ns:
            return False
        if ns == self.cursor.last_ns and self.skip_same > 0:
            self.skip_same -= 1
            return False
        self.caught_up = True
        return self.cursor.record(ts)


Emit = Callable[[list[tuple[str, bytes]]], None]


class ContainerFollower:
    """Reads one container's log, following it until the container has terminated."""

    def __init__(
        self,
        kube: Kube,
        watch: RunWatch,
        pod: str,
        container: str,
        stop: threading.Event,
        pod_gone: Callable[[], bool],
    ) -> None:
        self.kube = kube
        self.watch = watch
        self.pod = pod
        self.container = container
        self.stop = stop
        self.pod_gone = pod_gone
        self.cursor = Cursor()
        self._response: object | None = None

    def interrupt(self) -> None:
        if self._response is not None:
            _interrupt(self._response)

    def state(self) -> Container | None:
        """The container as the pod watch last saw it; None if the pod is not known."""
        pod = self.watch.pods.get(self.pod)
        if pod is None:
            return None
        for item in pod_containers(pod, sidecars=True):
            if item.container == self.container:
                return item
        return None

    def wait_started(self, ended: Callable[[], bool], stuck_ok: bool = False) -> str:
        """Blocks until the container runs or ran. Returns 'started', 'deleted', 'stuck' (cannot
        start, e.g. image pull failure), 'ended' (its TaskRun ended first) or 'stopped'."""
        with self.watch.cond:
            while not self.stop.is_set():
                current = self.state()
                if current is not None and current.started:
                    return "started"
                if self.pod_gone():
                    return "deleted"
                if ended():
                    return "ended"
                if current is not None and current.stuck and not stuck_ok:
                    return "stuck"
                self.watch.cond.wait()
        return "stopped"

    def follow(self, emit: Emit) -> str:
        """Emits batches of (timestamp, line) until the container ends. Returns why it stopped:
        'done', 'deleted', 'stopped' or 'error: <message>'.

        Breaks are retried with backoff: a cut connection, an apiserver that is down, restarting
        (it answers 403 until its RBAC caches sync, 404 until it serves the pod again, 5xx), a
        kubelet that drops the stream. 403/404 are final only when the pod watch says the pod is
        gone, or after `REFUSAL_GRACE` seconds of nothing else (or at once on the first request:
        then it is RBAC, not a restart)."""
        backoff = 0.2
        resume: ResumeFilter | None = self.cursor.resume() if self.cursor.last_ns >= 0 else None
        opened = False
        last_tail: bytes | None = None
        refused_since: float | None = None
        while not self.stop.is_set():
            try:
                response = self.kube.pod_log(
                    self.watch.namespace,
                    self.pod,
                    self.container,
                    follow=True,
                    timestamps=True,
                    since_time=self.cursor.last_ts or None,
                )
            except (NotFound, Forbidden) as err:
                now = time.monotonic()
                refused_since = refused_since or now
                gone = isinstance(err, NotFound) and self.pod_gone()
                if gone or (isinstance(err, NotFound) and not opened and self.watch.pods.get(self.pod) is None):
                    return "deleted"
                if isinstance(err, Forbidden) and not opened and not self.watch.reconnecting():
                    return f"error: not allowed to read logs ({err.detail or err.reason})"
                if now - refused_since > REFUSAL_GRACE:
                    if isinstance(err, NotFound):
                        return "deleted"
                    return f"error: not allowed to read logs ({err.detail or err.reason})"
                log.info("log of %s/%s refused (%s); retrying", self.pod, self.container, err.reason)
                if self.stop.wait(backoff):
                    break
                backoff = min(backoff * 2, MAX_BACKOFF)
                continue
            except KubeError as err:
                if err.status == 400 and "waiting to start" in err.detail:
                    if self.wait_started(lambda: False, stuck_ok=True) != "started":
                        return "deleted" if self.pod_gone() else "stopped"
                    continue
                if err.status == 400 and not self.watch.reconnecting():
                    return f"error: {err.detail or err.reason}"
                if self.stop.wait(backoff):
                    break
                backoff = min(backoff * 2, MAX_BACKOFF)
                continue
            opened = True
            refused_since = None
            accept = resume.accept if resume is not None else self.cursor.record
            reader = _LineReader(accept)
            self._response = response
            clean_eof = delivered = False
            try:
                if not self.stop.is_set():
                    for chunk in response.stream(64 * 1024, decode_content=False):
                        batch = reader.feed(chunk)
                        if batch:
                            emit(batch)
                            delivered = True
                    clean_eof = True
            except Exception as err:  # a cut connection surfaces as urllib3/OSError types
                log.info("log stream of %s/%s broke: %s", self.pod, self.container, type(err).__name__)
            finally:
                self._response = None
                # Closed before it is released: a half-read connection never goes back to the pool.
                response.close()
                response.release_conn()
            if self.stop.is_set():
                break
            # A clean end inside a line is a cut (the apiserver ends its response cleanly when the
            # kubelet's connection breaks) or a terminated container's last line without a newline:
            # no need to wait for the pod watch. Other clean ends wait a moment for it to say
            # whether the container has terminated.
            partial = clean_eof and bool(reader.buf)
            current = self._await_termination() if clean_eof and not partial else self.state()
            if current is None and self.pod_gone():
                return "deleted"
            if current is not None and current.state == "terminated" and clean_eof:
                # The kubelet ends a follow when the container ends. A trailing partial line is
                # believed to be the container's own last output only when two reads in a row
                # end with the same bytes; a cut lands elsewhere every time.
                if reader.buf and reader.buf != last_tail:
                    last_tail = reader.buf
                    resume = self.cursor.resume()
                    if self.stop.wait(0.0 if reader.seen else backoff):
                        break
                    backoff = min(backoff * 2, MAX_BACKOFF)
                    continue
                tail = reader.finish()
                if tail:
                    emit(tail)
                return "done"
            # The stream broke (or ended early) with the container still running: reopen it
            # and skip what was already delivered. A cut partial line is read again whole.
            resume = self.cursor.resume()
            if not delivered and self.stop.wait(backoff):
                break
            backoff = 0.2 if delivered else min(backoff * 2, MAX_BACKOFF)
        return "stopped"

    def _await_termination(self) -> Container | None:
        def settled() -> bool:
            current = self.state()
            return self.stop.is_set() or self.pod_gone() or (current is not None and current.state == "terminated")

        with self.watch.cond:
            self.watch.cond.wait_for(settled, TERMINATION_GRACE)
            return self.state()


class _LineReader:
    """Splits `<timestamp> <content>` lines out of arbitrary chunks."""

    def __init__(self, accept: Callable[[str], bool]) -> None:
        self.accept = accept
        self.buf = b""
        self.seen = 0  # complete lines read, delivered or dropped as repeats: the stream worked
        self.continuing = False  # inside a line longer than MAX_LINE, past its timestamp
        self.dropping = False  # that line's start was a repeat: drop the rest of it too

    def feed(self, chunk: bytes) -> list[tuple[str, bytes]]:
        self.buf += chunk
        lines = self.buf.split(b"\n")
        self.buf = lines.pop()
        self.seen += len(lines)
        out: list[tuple[str, bytes]] = []
        for line in lines:
            self._take(line, out)
            self.continuing = False
        if len(self.buf) > MAX_LINE:
            self._take(self.buf, out)
            self.buf = b""
            self.continuing = True
        return out

    def finish(self) -> list[tuple[str, bytes]]:
        out: list[tuple[str, bytes]] = []
        if self.buf:
            self._take(self.buf, out)
            self.buf = b""
        return out

    def _take(self, line: bytes, out: list[tuple[str, bytes]]) -> None:
        if self.continuing:
            if not self.dropping:
                out.append(("", line))
            return
        ts, sep, content = line.partition(b" ")
        stamp = ts.decode("ascii", "replace") if sep else ""
        if not sep:
            content = line
        self.dropping = bool(stamp) and not self.accept(stamp)
        if not self.dropping:
            out.append((stamp, content))
