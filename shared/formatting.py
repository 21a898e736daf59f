"""Writers: turn follow events into bytes for the HTTP response.

Text mode prints lines like `tkn pipelinerun logs -f`: `[task : step] line`. NDJSON mode prints
one JSON object per line for machines.
"""

from __future__ import annotations

import json
from typing import Protocol

from shared.events import Event, Heartbeat, LogLine, Notice, RunFinished, RunStarted, StreamEnded


class Writer(Protocol):
    content_type: str

    def write(self, event: Event) -> bytes: ...


class TextWriter:
    """`[task : step] line`, like tkn. Heartbeats are a lone carriage return at a line
    boundary: invisible in terminals and CI log viewers, and they keep idle proxies open."""

    content_type = "text/plain; charset=utf-8"

    def __init__(self, timestamps: bool = False) -> None:
        self.timestamps = timestamps

    def write(self, event: Event) -> bytes:
        match event:
            case LogLine(task=task, step=step, line=line, timestamp=ts):
                stamp = f"{ts} " if self.timestamps and ts else ""
                return f"[{task} : {step}] {stamp}{line}\n".encode("utf-8", "surrogateescape")
            case Notice(task=task, step=step, message=message):
                where = f"{task} : {step}" if step else task
                return f"[{where}] {message}\n".encode()
            case RunFinished(status=status):
                return (f"PipelineRun {status.get('name')} {status.get('reason')}: {status.get('message')}\n").encode()
            case StreamEnded(message=message):
                return f"{message}\n".encode()
            case Heartbeat() | RunStarted():
                # The first byte goes out at once, so Knative's response-start timeout is met.
                return b"\r"
        return b""


class NdjsonWriter:
    content_type = "application/x-ndjson"

    def __init__(self, timestamps: bool = True) -> None:
        self.timestamps = timestamps

    def write(self, event: Event) -> bytes:
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
            case RunFinished():
                obj = {"event": "end", "status": event.status}
            case StreamEnded():
                obj = {"event": "interrupted", "reason": event.reason, "message": event.message}
            case Heartbeat():
                obj = {"event": "heartbeat"}
            case _:
                return b""
        return json.dumps(obj, separators=(",", ":")).encode() + b"\n"
