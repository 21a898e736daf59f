"""Writers: turn follow events into bytes for the HTTP response.

Text mode prints lines like `tkn pipelinerun logs -f`: `[task : step] line`, with what a step
prints to move the cursor or erase shown as text (`shared.logs.controls`). NDJSON mode prints
one JSON object per line for machines.

With a `Tracker` (see `shared.logs.tracker`), a writer records every event it writes, so that the
resume token it hands out names exactly what went out before it:

- text: a stream cut before the run is done ends with one line
  `[stream interrupted] <why>; continue with resume=<token>`;
- text with `cursors=True`: every line is `<cursor> <text line>` (the resumable text the CI
  client reads), the cursor being the full token or `.<active part>` (see `Tracker.line_prefix`);
- NDJSON: every `log`, `notice`, `end` and `interrupted` object carries `"cursor": <token>`.
"""

from __future__ import annotations

import dataclasses
import json
import re
from itertools import chain, repeat
from typing import Any, Protocol

import orjson

from shared.logs.controls import neutralised, neutralised_text
from shared.logs.events import AttemptDone, Event, Heartbeat, LogLines, Notice, RunFinished, RunStarted, StreamEnded
from shared.logs.line_cursors import CONTENT, PART, STAMP
from shared.logs.tracker import Tracker

INTERRUPTED = "[stream interrupted] "  # a line that starts with this is the last of a cut stream
RESUME_MARK = "; continue with resume="
# What a line can hold and still be its own JSON string: printable ASCII but quotes and
# backslashes (not ASCII may not be UTF-8 at all). `translate` deletes them in one C pass.
_FEW = 8  # lines in an event below which one by one is quicker than a batch's fixed costs
_STAMP_CHARS = b"0123456789-:T."  # of an RFC 3339 UTC timestamp without its final `Z`
_JSON_SAFE = bytes(c for c in range(0x20, 0x7F) if c not in b'"\\') + b"\n"
# A newline, the next line's timestamp and the space after it. Starting at a literal newline lets
# the regex engine skip ahead between lines, several times faster than a multi-line `^`.
_STAMP = re.compile(rb"\n[^ \n]* ")


class Writer(Protocol):
    content_type: str

    def write(self, event: Event) -> bytes: ...


def _track(tracker: Tracker | None, event: Event) -> None:
    if tracker is None:
        return
    match event:  # log lines are tracked where they are written (`_lines`)
        case Notice(key=key):
            tracker.notice(key)
        case AttemptDone(pod=pod):
            tracker.attempt_done(pod)


def interrupted_line(event: StreamEnded, token: str | None) -> str:
    if token is None:
        return f"{event.message}; reconnect to continue"
    return f"{INTERRUPTED}{event.message}{RESUME_MARK}{token}"


class TextWriter:
    """`[task : step] line`, like tkn. Heartbeats are a lone carriage return at a line
    boundary: invisible in terminals and CI log viewers, and they keep idle proxies open.

    Lines are written a whole event at a time: the timestamps cut off with one regex pass and
    the prefix put in front of every line with one replace."""

    content_type = "text/plain; charset=utf-8"

    def __init__(self, timestamps: bool = False, tracker: Tracker | None = None, cursors: bool = False) -> None:
        self.timestamps = timestamps
        self.tracker = tracker
        self.cursors = cursors and tracker is not None
        self._prefixes: dict[tuple[str, str], tuple[bytes, bytes, bytes]] = {}

    def write(self, event: Event) -> bytes:
        if isinstance(event, LogLines):
            # What would move the cursor or erase is shown as text: no step can paint over a
            # prefix or fake a line of ours (shared/logs/controls.py).
            data = neutralised(event.data)
            return self._lines(event if data is event.data else dataclasses.replace(event, data=data))
        _track(self.tracker, event)
        text = self._text(event)
        if text is None:
            # The first byte goes out at once, so Knative's response-start timeout is met.
            return b"\r" if isinstance(event, Heartbeat | RunStarted) else b""
        text = neutralised_text(text)
        if self.cursors:
            assert self.tracker is not None
            text = f"{self.tracker.line_prefix()} {text}"
        return text.encode("utf-8", "surrogateescape") + b"\n"

    def _prefix(self, task: str, step: str) -> tuple[bytes, bytes, bytes]:
        """`[task : step] `, the same after a newline, and that as a regex replacement."""
        made = self._prefixes.get((task, step))
        if made is None:
            prefix = f"[{task} : {step}] ".encode("utf-8", "surrogateescape")
            newline_prefix = b"\n" + prefix
            made = self._prefixes[(task, step)] = (prefix, newline_prefix, newline_prefix.replace(b"\\", b"\\\\"))
        return made

    def _lines(self, event: LogLines) -> bytes:
        prefix, newline_prefix, replacement = self._prefix(event.task, event.step)
        if self.cursors:
            return self._with_cursors(event, prefix)
        if self.tracker is not None:
            self.tracker.advance(event.pod, event.index, event.cursor)
        data = event.data
        if event.stamped and not self.timestamps:
            first = data.find(b" ", 0, data.find(b"\n"))
            return prefix + _STAMP.sub(replacement, data[first + 1 :])
        return prefix + data[:-1].replace(b"\n", newline_prefix) + b"\n"

    def _with_cursors(self, event: LogLines, prefix: bytes) -> bytes:
        tracker = self.tracker
        assert tracker is not None
        shown_native = (STAMP, b"Z ", CONTENT) if self.timestamps else (CONTENT,)
        native = tracker.rows(event, (b".", PART, b" " + prefix, *shown_native, b"\n"), json=False)
        if native is not None:
            return tracker.lead()[:-1] + native
        cells = _cells(event) if event.lines >= _FEW else None
        if cells is None:
            rows = event.split()
            parts = tracker.line_cursors(event.pod, event.index, [stamp for stamp, _ in rows], event.cursor)
            out = []
            for (stamp, content), active in zip(rows, parts, strict=True):
                shown = stamp + b" " + content if self.timestamps and stamp else content
                out.append(tracker.lead() + active + b" " + prefix + shown + b"\n")
            return b"".join(out)
        stamps, contents = cells
        parts = tracker.line_cursors(event.pod, event.index, stamps, event.cursor, zoned=False)
        lead = tracker.lead()
        shown = (stamps, b"Z ", contents) if self.timestamps else (contents,)
        return lead[:-1] + _weave(len(parts), b".", parts, b" " + prefix, *shown, b"\n")

    def _text(self, event: Event) -> str | None:
        match event:
            case Notice(task=task, step=step, message=message):
                where = f"{task} : {step}" if step else task
                return f"[{where}] {message}"
            case RunFinished(status=status):
                return f"PipelineRun {status.get('name')} {status.get('reason')}: {status.get('message')}"
            case StreamEnded():
                return interrupted_line(event, self.tracker.token() if self.tracker else None)
        return None


def _json(value: dict[str, Any] | str) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError:  # a string orjson refuses (lone surrogates): the standard library copes
        return json.dumps(value, separators=(",", ":")).encode()


def _dumps(obj: dict[str, Any]) -> bytes:
    return _json(obj) + b"\n"


class NdjsonWriter:
    """One JSON object per line; a log line's object carries its cursor when a tracker is kept."""

    content_type = "application/x-ndjson"

    def __init__(self, tracker: Tracker | None = None) -> None:
        self.tracker = tracker
        self._heads: dict[tuple[str, str, int], bytes] = {}

    def write(self, event: Event) -> bytes:
        if isinstance(event, LogLines):
            return self._lines(event)
        _track(self.tracker, event)
        match event:
            case Notice():
                obj = {"event": "notice", "kind": event.kind, "task": event.task, "message": event.message}
                if event.step:
                    obj["step"] = event.step
            case RunStarted():
                obj = {"event": "start", "namespace": event.namespace, "name": event.name}
                if event.resumed:
                    obj["resumed"] = True
                return _dumps(obj)
            case RunFinished():
                obj = {"event": "end", "status": event.status}
            case StreamEnded():
                obj = {"event": "interrupted", "reason": event.reason, "message": event.message}
            case Heartbeat():
                return b'{"event":"heartbeat"}\n'
            case _:
                return b""
        if self.tracker is not None:
            obj["cursor"] = self.tracker.token()
        return _dumps(obj)

    def _head(self, event: LogLines) -> bytes:
        """What every log object of this step starts with, up to the timestamp's value."""
        key = (event.task, event.step, event.attempt)
        head = self._heads.get(key)
        if head is None:
            head = self._heads[key] = b'{"event":"log","task":%s,"step":%s,"attempt":%d,"timestamp":' % (
                _json(event.task),
                _json(event.step),
                event.attempt,
            )
        return head

    def _lines(self, event: LogLines) -> bytes:
        tracker = self.tracker
        if tracker is not None:
            cursor = b'","cursor":"' + tracker.stable()[0].encode() + b"."
            row = (self._head(event) + b'"', STAMP, b'Z","line":"', CONTENT, cursor, PART, b'"}\n')
            native = tracker.rows(event, row, json=True)
            if native is not None:
                return native
        cells = _cells(event) if event.lines >= _FEW else None
        if cells is None:
            return self._one_by_one(event)
        stamps, contents = cells
        head = self._head(event)
        if tracker is None:
            tail: tuple[bytes | list[bytes], ...] = ()
        else:
            parts = tracker.line_cursors(event.pod, event.index, stamps, event.cursor, zoned=False)
            tail = (b',"cursor":"' + tracker.stable()[0].encode() + b".", parts, b'"')
        if not event.data.translate(None, _JSON_SAFE):
            # Printable ASCII without quotes or backslashes is its own JSON string.
            return _weave(len(stamps), head + b'"', stamps, b'Z","line":"', contents, b'"', *tail, b"}\n")
        # Undecodable bytes become U+FFFD here (text mode passes them through as they were), so
        # there is no lone surrogate for orjson to refuse.
        texts = list(map(orjson.dumps, map(bytes.decode, contents, repeat("utf-8"), repeat("replace"))))
        times = list(map(orjson.dumps, map(bytes.decode, map(bytes.__add__, stamps, repeat(b"Z")), repeat("ascii"))))
        return _weave(len(stamps), head, times, b',"line":', texts, *tail, b"}\n")

    def _one_by_one(self, event: LogLines) -> bytes:
        """A few lines, lines without timestamps (the rest of a long line) or odd ones."""
        tracker = self.tracker
        rows = event.split()
        stamps = [stamp for stamp, _ in rows]
        parts: list[bytes] = []
        stable = b""
        if tracker is not None:
            parts = tracker.line_cursors(event.pod, event.index, stamps, event.cursor)
            stable = tracker.stable()[0].encode() + b"."
        if event.stamped and all(stamps) and not event.data.translate(None, _JSON_SAFE):
            head = self._head(event) + b'"'
            if not parts:
                return b"".join([head + stamp + b'","line":"' + content + b'"}\n' for stamp, content in rows])
            return b"".join(
                [
                    head + stamp + b'","line":"' + content + b'","cursor":"' + stable + part + b'"}\n'
                    for (stamp, content), part in zip(rows, parts, strict=True)
                ]
            )
        if event.stamped and not b"".join(stamps).isascii():  # a first word beyond ASCII: no timestamp
            rows = [(stamp, content) if stamp.isascii() else (b"", stamp + b" " + content) for stamp, content in rows]
        obj: dict[str, Any] = {"event": "log", "task": event.task, "step": event.step, "attempt": event.attempt}
        out = []
        for i, (stamp, content) in enumerate(rows):
            obj["timestamp"] = stamp.decode("ascii") if stamp else None
            obj["line"] = content.decode("utf-8", "replace")
            if parts:
                obj["cursor"] = (stable + parts[i]).decode()
            out.append(_dumps(obj))
        return b"".join(out)


def _cells(event: LogLines) -> tuple[list[bytes], list[bytes]] | None:
    """Each line's timestamp without its final `Z`, and its content, cut with C-level passes over
    the whole event: when every `Z ` in it ends a timestamp (nearly always), the event is split at
    those and at its newlines in one go; else line by line. None if a line has no timestamp (or the
    event holds pieces of a long line)."""
    if not event.stamped:
        return None
    data = event.data
    lines = data.count(b"\n")
    cells = data.replace(b"\n", b"Z ").split(b"Z ")
    # Two cells a line (and an empty one at the end) when every line holds one `Z `: no second search.
    if len(cells) == 2 * lines + 1:
        cells.pop()
        stamps = cells[0::2]
        # Each line's only `Z ` ends its timestamp if what comes before it looks like one.
        if not b"".join(stamps).translate(None, _STAMP_CHARS) and b"" not in stamps:
            return stamps, cells[1::2]
    rows = data.split(b"\n")
    rows.pop()
    cells = list(chain.from_iterable(map(bytes.partition, rows, repeat(b" ", len(rows)))))
    stamps = cells[0::3]
    joined = b"\n".join(stamps) + b"\n"
    if cells[1::3].count(b" ") != len(rows) or joined.count(b"Z\n") != len(rows) or not joined.isascii():
        return None  # a line without a space, or what comes before it is no ASCII ending in `Z`
    return [stamp[:-1] for stamp in stamps], cells[2::3]


def _weave(rows: int, *columns: bytes | list[bytes]) -> bytes:
    """Row after row, the columns' cells joined: a `bytes` column is the same in every row."""
    merged: list[bytes | list[bytes]] = []  # neighbouring constants joined: a column costs a cell a row
    for column in columns:
        if isinstance(column, bytes) and merged and isinstance(merged[-1], bytes):
            column = merged.pop() + column
        merged.append(column)
    width = len(merged)
    out: list[bytes] = [b""] * (rows * width)
    for k, column in enumerate(merged):
        out[k::width] = [column] * rows if isinstance(column, bytes) else column
    return b"".join(out)
