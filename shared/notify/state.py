"""What has been reported, per run: a bounded in-process LRU keyed by run UID.

For each run: the highest rank seen in any event, and per target the rank last delivered. A lock
per run serialises the events of one run (so two copies of an event arriving together are not
both sent), while events of different runs proceed in parallel.

Limitation: this lives in one process. A scale-to-zero or restarted pod starts empty, and with
several replicas (or gunicorn WORKERS > 1) each has its own copy. What then protects the targets
is documented in docs/notify.md ("Delivery semantics"): GitLab refuses repeating a state, and
before posting a non-terminal state without a record the notifier reads the commit's statuses
and drops the post if this run's status there is already terminal.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field


@dataclass
class RunRecord:
    lock: threading.Lock = field(default_factory=threading.Lock)
    max_rank: int = -1
    delivered: dict[str, int] = field(default_factory=dict)


class RunStates:
    def __init__(self, max_runs: int = 10000) -> None:
        self.max_runs = max(1, max_runs)
        self._lock = threading.Lock()
        self._runs: OrderedDict[str, RunRecord] = OrderedDict()

    def get(self, uid: str) -> RunRecord:
        """The record for `uid`, created if new; the least recently used run is forgotten past max_runs."""
        with self._lock:
            record = self._runs.get(uid)
            if record is None:
                record = self._runs[uid] = RunRecord()
                while len(self._runs) > self.max_runs:
                    self._runs.popitem(last=False)
            else:
                self._runs.move_to_end(uid)
            return record

    def __len__(self) -> int:
        with self._lock:
            return len(self._runs)

    def __contains__(self, uid: str) -> bool:
        with self._lock:
            return uid in self._runs
