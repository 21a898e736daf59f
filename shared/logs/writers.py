"""Writers: turn follow events into bytes for the HTTP response.

Text mode prints lines like `tkn pipelinerun logs -f`: `[task : step] line`. NDJSON mode prints
one JSON object per line for machines.

With a `Tracker` (see `shared.logs.cursor`), a writer records every event it writes, so that the
resume token it hands out names exactly what went out before it:

- text: a stream cut before the run is done ends with one line
  `[stream interrupted] <why>; continue with resume=<token>`;
- text with `cursors=True`: every line is `<cursor> <text line>` (the resumable text the CI
  client reads), the cursor being the full token or `.<active part>` (see `Tracker.line_prefix`);
- NDJSON: every `log`, `notice`, `end` and `interrupted` object carries `"cursor": <token>`.
"""

from __future__ import annotations

import json
from typing import Protocol

from shared.logs.cursor import Tracker
from shared.logs.events import AttemptDone, Event, Heartbeat, LogLine, Notice, RunFinished, RunStarted, StreamEnded

INTERRUPTED = "[stream interrupted] "  # a line that starts with this is the last of a cut stream
RESUME_MARK = "; continue with resume="


class Writer(Protocol):
    content_type: str

    def write(self, event: Event) -> bytes: ...


def _track(tracker: Tracker | None, event: Event) -> None:
    if tracker is None:
        return
    match event:
        case LogLine(pod=pod, index=index, timestamp=ts):
            tracker.line(pod, index, ts)
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
    boundary: invisible in terminals and CI log viewers, and they keep idle proxies open."""

    content_type = "text/plain; charset=utf-8"

    def __init__(self, timestamps: bool = False, tracker: Tracker | None = None, cursors: bool = False) -> None:
        self.timestamps = timestamps
        self.tracker = tracker
        self.cursors = cursors and tracker is not None

    def write(self, event: Event) -> bytes:
        _track(self.tracker, event)
        text = self._text(event)
        if text is None:
            # The first byte goes out at once, so Knative's response-start timeout is met.
            return b"\r" if isinstance(event, Heartbeat | RunStarted) else b""
        if self.cursors:
            assert self.tracker is not None
            text = f"{self.tracker.line_prefix()} {text}"
        return text.encode("utf-8", "surrogateescape") + b"\n"

    def _text(self, event: Event) -> str | None:
        match event:
            case LogLine(task=task, step=step, line=line, timestamp=ts):
                stamp = f"{ts} " if self.timestamps and ts else ""
                return f"[{task} : {step}] {stamp}{line}"
            case Notice(task=task, step=step, message=message):
                where = f"{task} : {step}" if step else task
                return f"[{where}] {message}"
            case RunFinished(status=status):
                return f"PipelineRun {status.get('name')} {status.get('reason')}: {status.get('message')}"
            case StreamEnded():
                return interrupted_line(event, self.tracker.token() if self.tracker else None)
        return None


class NdjsonWriter:
    content_type = "application/x-ndjson"

    def __init__(self, timestamps: bool = True, tracker: Tracker | None = None) -> None:
        self.timestamps = timestamps
        self.tracker = tracker

    def write(self, event: Event) -> bytes:
        _track(self.tracker, event)
        match event:
            case LogLine():
                obj = {
                    "event": "log",
                    "task": event.task,
                    "step": event.step,
                    "attempt": event.attempt,
                    "timestamp": event.timestamp or None,
                    # Undecodable bytes become U+FFFD here; text mode passes them through as they were.
                    "line": event.line.encode("utf-8", "surrogateescape").decode("utf-8", "replace"),
                }
            case Notice():
                obj = {"event": "notice", "kind": event.kind, "task": event.task, "message": event.message}
                if event.step:
                    obj["step"] = event.step
            case RunStarted():
                obj = {"event": "start", "namespace": event.namespace, "name": event.name}
                if event.resumed:
                    obj["resumed"] = True
                return json.dumps(obj, separators=(",", ":")).encode() + b"\n"
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
        return json.dumps(obj, separators=(",", ":")).encode() + b"\n"
