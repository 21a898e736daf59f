"""A live follow checked against the first lines of the kubelet's log files, beside the follow.

kubelet 1.20's follow of a log file that it rotates goes wrong in two ways (both seen on the real
node, `shared/logs/rotation.py`):

- Its file watch sits on the file it opened first; once that file is renamed away, the follow
  waits at its end for writes that never come, until the container ends. The stream falls
  silent while the step goes on writing (`kubectl logs -f` loses the rest). So when a follow is
  idle, `FileStarts.watch` asks which line the current file begins with (one line, `limitBytes`);
  a current file that begins after the last line delivered, twice in a row, means the follow is
  stuck: it is reopened, and goes on live from the current file.
- It lags across two rotations: at the old file's end it goes straight to the newest file, and
  the one between is never read. Nothing in the stream shows the jump, so while a follow lags
  (it has lines to deliver, its last line is >= 2 s old), the same question is asked every few
  seconds, and the follow must read each first line learnt when it gets there. One it steps
  over means a skipped file: the piece is cut there and the gap said between.

The kubelet checks log sizes every 10 s, so each file is the current one at least that long:
looking every 3 s sees every file's first line.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Callable

from shared.logs.cursor import Cursor
from shared.logs.lines import Piece, cursor_after, stamp_ns

LOOK_EVERY = 3.0
IDLE_LOOK_MAX = 60.0  # an idle follow looks ever less often: a quiet container's costs little
# A follow whose last line is this much older than the clock lags behind its container. (The
# node's clock is the listener's, give or take what NTP keeps them apart.)
LAG_NS = 2_000_000_000

Gap = tuple[int, int]  # (the last line read before it, the first line after it), in ns
_NEVER = 1 << 62


class FileStarts:
    """The first lines of the log files one follow has yet to reach."""

    def __init__(
        self, head: Callable[[], bytes], gap: Callable[[int, int], None], wall: Callable[[], int] = time.time_ns
    ) -> None:
        self._head = head  # the current file's first bytes
        self._gap = gap
        self._wall = wall
        self._lock = threading.Lock()
        self._starts: list[int] = []
        self.next_ns = _NEVER  # the first of them: a piece reaching it is checked
        # The follow was found stuck at the end of a file, and this file began next: a read that
        # begins with it lost nothing (-1: none).
        self.resumes_at = -1

    def watch(
        self,
        done: threading.Event,
        cursor: Callable[[], Cursor],
        busy: Callable[[], bool],
        idle_ok: Callable[[], bool],
        reopen: Callable[[], None],
    ) -> None:
        """Runs until `done`, on a thread of its own (a follow held back by a slow client lags the
        most, and its reader then waits for the client). A `busy` follow looks every
        `LOOK_EVERY` s; an idle one that may have filled a file (`idle_ok`) looks ever less
        often, and is reopened when it is stuck."""
        wait, suspect = LOOK_EVERY, (-1, -1)
        while not done.wait(wait):
            at = cursor()
            if busy():
                wait, suspect = LOOK_EVERY, (-1, -1)
                self.look(at)
            elif idle_ok() and at.ns >= 0:
                first = self.current_first()
                if first <= at.ns:
                    wait, suspect = min(wait * 2, IDLE_LOOK_MAX), (-1, -1)
                elif suspect != (first, at.ns):
                    wait, suspect = LOOK_EVERY, (first, at.ns)  # may be a line on its way: look again
                else:
                    with self._lock:
                        self.resumes_at = first if first <= self.next_ns else -1
                    reopen()
                    return

    def look(self, cursor: Cursor) -> None:
        """If the follow lags behind, learns which line the current file begins with."""
        if cursor.ns < 0 or self._wall() - cursor.ns < LAG_NS:
            return
        ns = self.current_first()
        with self._lock:
            if ns > cursor.ns and ns not in self._starts:
                bisect.insort(self._starts, ns)
                self.next_ns = self._starts[0]

    def current_first(self) -> int:
        """The current file's first line's timestamp (-1: unknown)."""
        return stamp_ns(self._head(), 0)

    def pass_on(self, piece: Piece, before: Cursor, deliver: Callable[[Piece], None]) -> None:
        """Delivers `piece` (following `before`), with a gap where it steps over a file's start."""
        with self._lock:
            items = self._split(piece, before)
        for item in items:
            if isinstance(item, Piece):
                deliver(item)
            else:
                self._gap(*item)

    def _split(self, piece: Piece, before: Cursor) -> list[Piece | Gap]:
        out: list[Piece | Gap] = []
        while piece.stamped and piece.cursor.ns >= self.next_ns:
            if before.ns >= self.next_ns:
                # Learnt while the reader went past it: whether it read that line is unknown.
                self._drop_through(self.next_ns)
                continue
            data = piece.data
            offsets = [0, *(i + 1 for i in _newlines(data))]
            stamps = [stamp_ns(data, offset) for offset in offsets]
            at = next((i for i, ns in enumerate(stamps) if ns >= self.next_ns), None)
            if at is None or min(stamps) < 0:
                break  # not stamped lines after all: nothing to compare
            reached, skipped = stamps[at], stamps[at] > self.next_ns
            self._drop_through(reached)
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

    def _drop_through(self, ns: int) -> None:
        self._starts = [start for start in self._starts if start > ns]
        self.next_ns = self._starts[0] if self._starts else _NEVER


def _newlines(data: bytes) -> list[int]:
    found, pos = [], data.find(b"\n")
    while 0 <= pos < len(data) - 1:
        found.append(pos)
        pos = data.find(b"\n", pos + 1)
    return found
