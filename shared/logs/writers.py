"""Writers: turn follow events into bytes for the HTTP response.

Text mode prints lines like `tkn pipelinerun logs -f`: `[task : step] line`. NDJSON mode prints
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

import json
import re
from typing import Any, Protocol

import orjson

from shared.logs.events import AttemptDone, Event, Heartbeat, LogLines, Notice, RunFinished, RunStarted, StreamEnded
from shared.logs.tracker import Tracker

INTERRUPTED = "[stream interrupted] "  # a line that starts with this is the last of a cut stream
RESUME_MARK = "; continue with resume="
# What keeps a line from being its own JSON string: control characters, quotes, backslashes and
# anything not ASCII (which may not be UTF-8 at all).
_UNSAFE = re.compile(rb'[\x00-\x09\x0b-\x1f"\\\x7f-\xff]')
# A newline, the next line's timestamp and the space after it. Starting at a literal newline lets
# the regex engine skip ahead between lines, several times faster than a multi-line `^`.
_STAMP = re.compile(rb"\n[^ \n]* ")


class Writer(Protocol):
    content_type: str

    def write(self, event: Event) -> bytes: ...


def _track(tracker: Tracker | None, event: Event) -> None:
    if tracker is None:
        return
    match event:
        case LogLines(pod=pod, index=index, cursor=cursor):
            tracker.advance(pod, index, cursor)
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
            return self._lines(event)
        _track(self.tracker, event)
        text = self._text(event)
        if text is None:
            # The first byte goes out at once, so Knative's response-start timeout is met.
            return b"\r" if isinstance(event, Heartbeat | RunStarted) else b""
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
        rows = event.split()
        parts = tracker.line_cursors(event.pod, event.index, [stamp for stamp, _ in rows], event.cursor)
        out = []
        for (stamp, content), active in zip(rows, parts, strict=True):
            shown = stamp + b" " + content if self.timestamps and stamp else content
            out.append(tracker.prefix_of(active.decode()).encode() + b" " + prefix + shown + b"\n")
        return b"".join(out)

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


def _dumps(obj: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(obj) + b"\n"
    except TypeError:  # a string orjson refuses (lone surrogates): the standard library copes
        return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


class NdjsonWriter:
    """One JSON object per line; a log line's object carries its cursor when a tracker is kept."""

    content_type = "application/x-ndjson"

    def __init__(self, tracker: Tracker | None = None) -> None:
        self.tracker = tracker

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

    def _lines(self, event: LogLines) -> bytes:
        tracker = self.tracker
        rows = event.split()
        stamps = [stamp for stamp, _ in rows]
        parts: list[bytes] = []
        stable = b""
        if tracker is not None:
            parts = tracker.line_cursors(event.pod, event.index, stamps, event.cursor)
            stable = tracker.stable()[0].encode() + b"."
        if event.stamped and all(stamps) and _UNSAFE.search(event.data) is None:
            return self._templated(event, rows, stable, parts)
        obj: dict[str, Any] = {"event": "log", "task": event.task, "step": event.step, "attempt": event.attempt}
        out = []
        for i, (stamp, content) in enumerate(rows):
            obj["timestamp"] = stamp.decode("ascii", "replace") if stamp else None
            # Undecodable bytes become U+FFFD here; text mode passes them through as they were.
            obj["line"] = content.decode("utf-8", "replace")
            if parts:
                obj["cursor"] = (stable + parts[i]).decode()
            out.append(orjson.dumps(obj))
        out.append(b"")
        return b"\n".join(out)

    def _templated(self, event: LogLines, rows: list[tuple[bytes, bytes]], stable: bytes, parts: list[bytes]) -> bytes:
        """Printable ASCII without quotes or backslashes is its own JSON string: the objects are
        put together from bytes, in the same key order `orjson` writes."""
        head = b'{"event":"log","task":%s,"step":%s,"attempt":%d,"timestamp":"' % (
            orjson.dumps(event.task),
            orjson.dumps(event.step),
            event.attempt,
        )
        if not parts:
            return b"".join([head + stamp + b'","line":"' + content + b'"}\n' for stamp, content in rows])
        cursor = b'","cursor":"' + stable
        return b"".join(
            [
                head + stamp + b'","line":"' + content + cursor + part + b'"}\n'
                for (stamp, content), part in zip(rows, parts, strict=True)
            ]
        )
