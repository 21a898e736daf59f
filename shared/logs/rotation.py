"""Where a followed container's log may have lost lines to the kubelet's log rotation.

kubelet 1.20's follow of a log file that it rotates reads on in the old file while it lags
behind, and opens the current file only at the old one's end. Two ways that loses lines:

- The container ends while the follow is still in the old file: what went to the new one never
  reaches the follower (`kubectl logs -f` loses it too). A read without `follow` afterwards
  serves the current file (`may_have_missed_lines` says when it is worth its request); a gap
  between the follow's last line and that file's first is said.
- The kubelet rotated twice while the follow lagged: at the old file's end it goes straight to
  the newest file, and the one between is never read. Nothing in the stream shows the jump, so
  while a follow lags, `FileStarts` asks every few seconds which line the current file begins
  with (one line, `limitBytes`) and checks that the follow reads that line when it gets there.
  A follow that steps over it skipped a file: the gap is said where it is.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable

from shared.kube.client import Kube, KubeError
from shared.logs.cursor import Cursor, timestamp_ns
from shared.logs.lines import Piece, cursor_after
from shared.runs.model import Container

# The kubelet rotates at containerLogMaxSize (10 MiB by default; 1 MiB is a sensible floor).
ROTATION_BYTES = 1024 * 1024
# A container that finished this long after the last line the follow delivered.
LATE_END_NS = 2_000_000_000
# A follow whose last line is this much older than the clock lags behind its container. (The
# node's clock is the listener's, give or take what NTP keeps them apart.)
LAG_NS = 2_000_000_000
# The kubelet checks log sizes every 10 s, so each file is the current one for at least that
# long: looking more often than that sees every file's first line.
LOOK_EVERY = 3.0
HEAD_BYTES = 64  # an RFC 3339 timestamp (at most 35 bytes), its space and some content

Gap = tuple[int, int]  # (the last line read before it, the first line after it), in ns


def may_have_missed_lines(current: Container | None, cursor: Cursor, read_bytes: int) -> bool:
    if read_bytes >= ROTATION_BYTES:
        return True
    if current is None or current.state != "terminated" or not current.finished_at:
        return False
    try:
        finished = timestamp_ns(current.finished_at)
    except ValueError:
        return False
    return finished - cursor.ns > LATE_END_NS


def current_file_head(kube: Kube, namespace: str, pod: str, container: str) -> bytes:
    """The first bytes of the container's current log file (b"" when they cannot be read)."""
    try:
        response = kube.pod_log(
            namespace, pod, container, follow=False, timestamps=True, read_timeout=5.0, limit_bytes=HEAD_BYTES
        )
    except KubeError:
        return b""
    try:
        return response.read(HEAD_BYTES)
    except Exception:  # a cut connection surfaces as urllib3/OSError types
        return b""
    finally:
        response.close()
        response.release_conn()


class FileStarts:
    """The first lines of log files that a lagging follow has yet to reach."""

    def __init__(
        self,
        head: Callable[[], bytes],
        gap: Callable[[int, int], None],
        wall: Callable[[], int] = time.time_ns,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._head = head
        self._gap = gap
        self._wall = wall
        self._clock = clock
        self._next_look = 0.0
        self._starts: list[int] = []
        self.next_ns = _NEVER  # the first of them: a piece reaching it is checked

    def look(self, cursor: Cursor) -> None:
        """While the follow lags behind, learns which line the current file begins with."""
        now = self._clock()
        if now < self._next_look or cursor.ns < 0 or self._wall() - cursor.ns < LAG_NS:
            return
        self._next_look = now + LOOK_EVERY
        head = self._head()
        ns = _stamp(head, 0)
        if ns > cursor.ns and ns not in self._starts:
            bisect.insort(self._starts, ns)
            self.next_ns = self._starts[0]

    def pass_on(self, piece: Piece, before: Cursor, deliver: Callable[[Piece], None]) -> None:
        """Delivers `piece` (following `before`), with a gap where it steps over a file's start."""
        for item in self.split(piece, before):
            if isinstance(item, Piece):
                deliver(item)
            else:
                self._gap(*item)

    def split(self, piece: Piece, before: Cursor) -> list[Piece | Gap]:
        """`piece` (following `before`), cut where it steps over a file's first line."""
        out: list[Piece | Gap] = []
        while piece.stamped and piece.cursor.ns >= self.next_ns:
            data = piece.data
            offsets = [0, *(i + 1 for i in _newlines(data))]
            stamps = [_stamp(data, offset) for offset in offsets]
            at = next((i for i, ns in enumerate(stamps) if ns >= self.next_ns), None)
            if at is None or min(stamps) < 0:
                break  # not stamped lines after all: nothing to compare
            reached = stamps[at]
            skipped = reached > self.next_ns
            self._starts = [ns for ns in self._starts if ns > reached]
            self.next_ns = self._starts[0] if self._starts else _NEVER
            if not skipped:
                continue  # the follow read that file from its first line
            if at:
                head = data[: offsets[at]]
                last = offsets[at - 1]
                before = cursor_after(head, before, last, data.find(b" ", last), stamps[at - 1])
                out.append(Piece(head, at, True, before))
                piece = Piece(data[offsets[at] :], piece.lines - at, True, piece.cursor)
            out.append((before.ns, reached))
        out.append(piece)
        return out


_NEVER = 1 << 62


def _newlines(data: bytes) -> list[int]:
    found, pos = [], data.find(b"\n")
    while 0 <= pos < len(data) - 1:
        found.append(pos)
        pos = data.find(b"\n", pos + 1)
    return found


def _stamp(data: bytes, offset: int) -> int:
    """The timestamp of the line at `offset` (-1: it has none)."""
    space = data.find(b" ", offset, offset + 40)
    try:
        return timestamp_ns(data[offset:space]) if space > offset else -1
    except ValueError:
        return -1
