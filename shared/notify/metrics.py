"""The notifier's counters, served as Prometheus text at `GET /metrics` of the notify function.

Kept to what an operator alerts on: targets refused by the allow-list, events that named no run
(or another run), and ingress requests refused. Per process, since start.
"""

from __future__ import annotations

import threading
from collections import Counter as _Counts


class Counter:
    def __init__(self, name: str, help_text: str, label: str) -> None:
        self.name, self.help, self.label = name, help_text, label
        self._lock = threading.Lock()
        self._counts: _Counts[str] = _Counts()

    def inc(self, value: str) -> None:
        with self._lock:
            self._counts[value] += 1

    def get(self, value: str) -> int:
        with self._lock:
            return self._counts[value]

    def render(self) -> str:
        with self._lock:
            lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} counter"]
            lines += [f'{self.name}{{{self.label}="{v}"}} {n}' for v, n in sorted(self._counts.items())]
        return "\n".join(lines) + "\n"


REFUSED = Counter("notify_refused_targets_total", "Targets an annotation chose outside the allow-list.", "kind")
IGNORED = Counter("notify_ignored_events_total", "Events that named no readable run of that uid.", "reason")
REJECTED = Counter("notify_rejected_requests_total", "Requests refused at ingress.", "reason")


def exposition() -> str:
    return "".join(counter.render() for counter in (REFUSED, IGNORED, REJECTED))
