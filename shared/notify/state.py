"""Per-process memory of runs: a lock per run and its last delivery record, in a bounded LRU by UID.

The lock serialises the events of one run (two copies of an event arriving together are not both
sent), while events of different runs proceed in parallel. The record here is a cache of the one
stored on the PipelineRun (`record`), which is what survives a restart or scale-to-zero; the
cache only matters when that one cannot be written (no `patch pipelineruns`): then a restarted
instance falls back on the terminal-state check (docs/notify.md, "Delivery semantics").
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field

from shared.notify.record import DeliveryRecord


@dataclass
class RunRecord:
    lock: threading.Lock = field(default_factory=threading.Lock)
    record: DeliveryRecord | None = None


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
