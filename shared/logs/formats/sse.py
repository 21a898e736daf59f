"""Server-sent events (`Accept: text/event-stream`, or `format=sse`): each NDJSON object is one
event, named after its `event` field, with `id:` set to its cursor, so a browser's `EventSource`
that reconnects sends `Last-Event-ID` and the stream continues exactly after the last event it
got. `retry:` tells it how soon to reconnect; a heartbeat is a comment line.

A client closes the EventSource on the `end` event: reconnecting after it would only hear the
run's end again.
"""

from __future__ import annotations

import re

from shared.logs.events import Event, Heartbeat, RunStarted
from shared.logs.writers import Writer

RETRY_MS = 1000
# An NDJSON object's kind and its cursor (the last key of the objects that carry one). A quote
# inside a JSON string is escaped, so neither pattern can match inside a log line's text.
_EVENT = re.compile(rb'^\{"event":"([a-z]+)"')
_CURSOR = re.compile(rb'"cursor":"([A-Za-z0-9_.-]+)"\}$')


class SseWriter:
    content_type = "text/event-stream; charset=utf-8"

    def __init__(self, ndjson: Writer) -> None:
        self.inner = ndjson

    def write(self, event: Event) -> bytes:
        if isinstance(event, Heartbeat):
            return b": heartbeat\n\n"
        data = self.inner.write(event)
        out = [b"retry: %d\n" % RETRY_MS] if isinstance(event, RunStarted) else []
        for line in data.splitlines():
            kind = _EVENT.match(line)
            cursor = _CURSOR.search(line)
            if cursor is not None:
                out.append(b"id: " + cursor.group(1) + b"\n")
            out.append(b"event: " + (kind.group(1) if kind else b"message") + b"\ndata: " + line + b"\n\n")
        return b"".join(out)
