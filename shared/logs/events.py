"""What a log follow produces, before formatting: the reader/writer split of tkn's pkg/log."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shared.logs.cursor import Cursor


@dataclass(frozen=True)
class RunStarted:
    namespace: str
    name: str
    resumed: bool = False  # the stream continues an earlier one (a resume token was given)


@dataclass(frozen=True, slots=True)
class LogLines:
    """Whole lines of one step container, as the kubelet sent them (masked): each line is
    `<RFC 3339 timestamp> <content>\\n` when `stamped`, else it is the rest of a line longer than
    `lines.MAX_LINE`, passed on in pieces. One event carries every line one read brought."""

    task: str
    step: str
    data: bytes
    lines: int
    cursor: Cursor  # where the container's log stands after these lines
    stamped: bool = True
    attempt: int = 0
    pod: str = ""
    index: int = -1  # the step's position in the pod's step containers (for resume tokens)

    def split(self) -> list[tuple[bytes, bytes]]:
        """(timestamp, content) per line, for writers that need lines one by one."""
        rows = self.data.split(b"\n")
        rows.pop()
        if not self.stamped:
            return [(b"", row) for row in rows]
        return [(stamp, content) if sep else (b"", stamp) for stamp, sep, content in (r.partition(b" ") for r in rows)]


@dataclass(frozen=True)
class Notice:
    """Something a user should know that is not a log line: a skipped task, deleted pod..."""

    task: str
    message: str
    step: str = ""
    kind: str = "info"  # skipped | no-logs | image-pull | failed | retry | error | lines-missing | info
    key: str = ""  # identifies the notice across resumed streams, so it is never sent twice


@dataclass(frozen=True)
class AttemptDone:
    """Every container of this attempt's pod was delivered (writers print nothing)."""

    pod: str


@dataclass(frozen=True)
class RunFinished:
    status: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StreamEnded:
    """The stream stops before the run is done (deadline, shutdown, API failure)."""

    reason: str  # deadline | shutdown | error
    message: str


@dataclass(frozen=True)
class Heartbeat:
    pass


Event = RunStarted | LogLines | Notice | AttemptDone | RunFinished | StreamEnded | Heartbeat


def merged(batch: list[Event]) -> list[Event]:
    """`batch` with runs of whole lines of one container that follow each other joined into one
    event, so writers pay their fixed cost per event once per write (reads of a live log are
    small). A piece of a long line (`cursor.piece`) ends a run: its cursor must stay its own."""
    out: list[Event] = []
    run: list[LogLines] = []
    for event in batch:
        if isinstance(event, LogLines):
            if run and (not _joins(run[-1], event)):
                out.append(_join(run))
                run = []
            run.append(event)
            continue
        if run:
            out.append(_join(run))
            run = []
        out.append(event)
    if run:
        out.append(_join(run))
    return out


def _joins(before: LogLines, after: LogLines) -> bool:
    return (
        before.stamped
        and after.stamped
        and not before.cursor.piece
        and (before.pod, before.index, before.task, before.step, before.attempt)
        == (after.pod, after.index, after.task, after.step, after.attempt)
    )


def _join(run: list[LogLines]) -> LogLines:
    if len(run) == 1:
        return run[0]
    last = run[-1]
    data = b"".join(event.data for event in run)
    lines = sum(event.lines for event in run)
    return LogLines(last.task, last.step, data, lines, last.cursor, True, last.attempt, last.pod, last.index)
