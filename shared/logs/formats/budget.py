"""The log budget: what of each step a stream shows, between the reader's events and the writer.

- `max_bytes=N`: each step's first N/2 bytes go out as they come; later lines are held, the
  newest N/2 bytes of them kept, until the step ends; then one line says how many lines and
  bytes were left out and gives the URL that fetches exactly those (`task`, `step`, a `resume`
  token just before them and `max_lines`), and the kept tail follows. A job log that GitLab cuts
  at 4 MiB then still holds every step's start and end.
- `tail=N`: each step's last N lines (held until the step ends), after the same kind of line.
- `since=<duration>`: only lines stamped at or after (request time - duration).
- `max_lines=N`: the stream ends (with its resume token) after N log lines: what the elision URL
  uses to fetch exactly the lines left out.

Events are cut at line boundaries; each part's cursor comes from its lines' timestamps, so resume
tokens stay exact. A stream that is cut while lines are held continues, when resumed, after the
last line that went out, with a budget of its own.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from shared.logs.cursor import Cursor, timestamp_ns
from shared.logs.events import AttemptDone, Event, LogLines, Notice, RunFinished, StreamEnded


@dataclass(frozen=True)
class Budget:
    max_bytes: int = 0
    tail: int = 0
    since_ns: int = 0  # Unix ns; 0: no limit
    max_lines: int = 0

    def __bool__(self) -> bool:
        return bool(self.max_bytes or self.tail or self.since_ns or self.max_lines)


# (the step's first event, cursor before the first line left out, lines left out, the task's
# earlier attempts' pods) -> the URL that fetches exactly those lines
ElisionUrl = Callable[[LogLines, Cursor, int, list[str]], str]


@dataclass
class _Step:
    first: LogLines  # for task, step, attempt, pod, index
    cursor: Cursor = field(default_factory=Cursor)  # after the last line seen
    shown: int = 0  # bytes that went out in the head
    head_end: Cursor = field(default_factory=Cursor)  # after the last line that went out
    held: deque[tuple[bytes, Cursor]] = field(default_factory=deque)
    held_bytes: int = 0
    left_lines: int = 0
    left_bytes: int = 0


def _rows(event: LogLines, cursor: Cursor) -> list[tuple[bytes, Cursor]]:
    """Each whole line of the event with the cursor after it."""
    rows = event.data.split(b"\n")
    rows.pop()
    if not event.stamped:  # pieces of a long line: one unit, its cursor the event's
        return [(event.data, event.cursor)]
    out = []
    for row in rows:
        try:
            cursor = cursor.after(timestamp_ns(row[: row.find(b" ")]))
        except ValueError:
            pass
        out.append((row + b"\n", cursor))
    out[-1] = (out[-1][0], event.cursor)
    return out


def _size(row: bytes, stamped: bool) -> int:
    """The bytes a line shows: without the kubelet's timestamp."""
    return len(row) - (row.find(b" ") + 1 if stamped else 0)


def _event(first: LogLines, rows: list[tuple[bytes, Cursor]]) -> LogLines:
    data = b"".join(row for row, _ in rows)
    return LogLines(
        first.task, first.step, data, len(rows), rows[-1][1], first.stamped, first.attempt, first.pod, first.index
    )


class BudgetFilter:
    def __init__(self, budget: Budget, elision_url: ElisionUrl) -> None:
        self.budget = budget
        self.elision_url = elision_url
        self.head = budget.max_bytes // 2 if budget.max_bytes and not budget.tail else 0
        self.keep = budget.max_bytes - self.head if budget.max_bytes else 0
        self.steps: dict[tuple[str, int], _Step] = {}
        self.pods: dict[str, list[str]] = {}  # task -> its attempts' pods, in the order seen
        self.before: dict[tuple[str, int], Cursor] = {}  # step -> cursor after what went out
        self.lines_out = 0
        self.done = False  # `max_lines` reached: the caller ends the stream

    @property
    def holds(self) -> bool:
        return bool(self.budget.max_bytes or self.budget.tail)

    def apply(self, events: list[Event]) -> list[Event]:
        out: list[Event] = []
        for event in events:
            if self.done:
                break
            match event:
                case LogLines():
                    if self.holds:
                        out += self._limit(self._flush(lambda key, e=event: key[0] == e.pod and key[1] < e.index))
                    out += self._limit(self._lines(event))
                case AttemptDone(pod=pod):
                    out += self._limit(self._flush(lambda key, pod=pod: key[0] == pod))
                    out.append(event)
                case RunFinished() | StreamEnded():
                    out += self._limit(self._flush(lambda key: True))
                    out.append(event)
                case _:
                    out.append(event)
        return out

    def _lines(self, event: LogLines) -> list[Event]:
        key = (event.pod, event.index)
        st = self.steps.get(key)
        if st is None:
            st = self.steps[key] = _Step(event)
            pods = self.pods.setdefault(event.task, [])
            if event.pod not in pods:
                pods.append(event.pod)
        start = st.cursor
        st.cursor = event.cursor
        if not self.budget.since_ns and not self.holds:
            return [event]
        rows = _rows(event, start)
        if self.budget.since_ns:
            rows = [r for r in rows if not (event.stamped and r[1].ns >= 0 and r[1].ns < self.budget.since_ns)]
        shown: list[tuple[bytes, Cursor]] = []
        for row in rows:
            if (self.holds and st.shown + _size(row[0], event.stamped) > self.head) or st.held:
                self._hold(st, row)
            else:
                st.shown += _size(row[0], event.stamped)
                st.head_end = row[1]
                shown.append(row)
        return [_event(event, shown)] if shown else []

    def _hold(self, st: _Step, row: tuple[bytes, Cursor]) -> None:
        st.held.append(row)
        st.held_bytes += _size(row[0], st.first.stamped)
        while st.held and (
            (self.keep and st.held_bytes > self.keep) or (self.budget.tail and len(st.held) > self.budget.tail)
        ):
            left, _ = st.held.popleft()
            size = _size(left, st.first.stamped)
            st.held_bytes -= size
            st.left_lines += 1
            st.left_bytes += size

    def _flush(self, which: Callable[[tuple[str, int]], bool]) -> list[Event]:
        out: list[Event] = []
        for key in [k for k in self.steps if which(k)]:
            st = self.steps.pop(key)
            first = st.first
            if st.left_lines:
                earlier = self.pods.get(first.task, [])
                earlier = earlier[: earlier.index(first.pod)] if first.pod in earlier else earlier
                url = self.elision_url(first, st.head_end, st.left_lines, earlier)
                message = f"… {st.left_lines} lines ({st.left_bytes} bytes) left out here; all of them: {url}"
                out.append(Notice(first.task, message, step=first.step, kind="elided"))
            if st.held:
                out.append(_event(first, list(st.held)))
        return out

    def _limit(self, events: list[Event]) -> list[Event]:
        if not self.budget.max_lines:
            return events
        out: list[Event] = []
        for event in events:
            if not isinstance(event, LogLines):
                out.append(event)
                continue
            key = (event.pod, event.index)
            before, self.before[key] = self.before.get(key, Cursor()), event.cursor
            room = self.budget.max_lines - self.lines_out
            if event.lines >= room:
                out.append(event if event.lines == room else _event(event, _rows(event, before)[:room]))
                self.lines_out += room
                self.done = True
                out.append(StreamEnded("limit", f"max_lines={self.budget.max_lines} reached"))
                break
            self.lines_out += event.lines
            out.append(event)
        return out
