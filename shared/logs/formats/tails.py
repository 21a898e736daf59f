"""The last lines of each step, for the failure digest: references to the events' bytes, split
into lines only when the digest asks (a step's tail costs nothing per line while it streams)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from shared.logs.events import LogLines

# (pod, step, lines) -> the step's last lines as the kubelet still has them (masked).
Fetch = Callable[[str, str, int], list[str]]


class Tails:
    def __init__(self, lines: int, fetch: Fetch | None = None) -> None:
        self.lines = lines
        self.fetch = fetch
        self._events: dict[tuple[str, str], tuple[deque[LogLines], list[int]]] = {}

    def add(self, event: LogLines) -> None:
        if self.lines <= 0 or not event.pod:
            return
        entry = self._events.get((event.pod, event.step))
        if entry is None:
            entry = self._events[(event.pod, event.step)] = (deque(), [0])
        events, count = entry
        events.append(event)
        count[0] += event.lines
        # Older events go once the newer ones hold enough lines by themselves.
        while len(events) > 1 and count[0] - events[0].lines >= self.lines:
            count[0] -= events.popleft().lines

    def last(self, pod: str, step: str) -> list[str]:
        """The step's last lines as text (timestamps cut off, undecodable bytes replaced)."""
        entry = self._events.get((pod, step))
        rows = [content for event in entry[0] for _, content in event.split()] if entry else []
        seen = [row.decode("utf-8", "replace") for row in rows[-self.lines :]]
        if len(seen) < self.lines and self.fetch is not None and pod:
            # A resumed, filtered or budgeted stream (the only ones given `fetch`) may have seen few
            # or none of them: an earlier stream delivered them, or none did, and the digest is read
            # from the end of what the client prints. A pod that is gone reads nothing.
            read = self.fetch(pod, step, self.lines)
            if len(read) > len(seen):
                return read
        return seen
