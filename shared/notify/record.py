"""What was delivered for a run, kept on the PipelineRun itself so it survives scale-to-zero.

The record is the JSON value of the annotation `tekton-pipeline-listener.dev/notified`:

    {"uid": "<run uid>", "rank": 4, "sent": {"<target id>": {"rank": 4, "states": ["running", "failed"]}}}

`rank` is the highest rank the notifier has acted on for the run; per target (its id is a hash of
the target's key, which holds no secret) the states delivered and the highest rank among them. A
target is skipped for a state it already got, and for any state ranked at or below one it got: a
final state is never followed by `running`, and a repeated `running` is sent once. A record whose
`uid` is not the run's (copied with the run's YAML into a new run) is ignored.

The record is written with the run's resourceVersion as a precondition (`runs_api`), so two
writers never lose each other's entries.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

RECORD_ANNOTATION = "tekton-pipeline-listener.dev/notified"


def target_id(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


@dataclass
class Sent:
    rank: int = -1
    states: set[str] = field(default_factory=set)


@dataclass
class DeliveryRecord:
    uid: str
    rank: int = -1
    sent: dict[str, Sent] = field(default_factory=dict)

    @classmethod
    def of(cls, run: Mapping[str, Any]) -> DeliveryRecord:
        """The record on `run` (an API object); an empty one if absent, unreadable or another run's."""
        metadata = run.get("metadata") or {}
        uid = str(metadata.get("uid") or "")
        raw = (metadata.get("annotations") or {}).get(RECORD_ANNOTATION)
        if not raw:
            return cls(uid)
        try:
            data = json.loads(raw)
            if not isinstance(data, Mapping) or data.get("uid") != uid:
                raise ValueError("not this run's record")
            sent = {
                str(tid): Sent(int(entry["rank"]), {str(s) for s in entry["states"]})
                for tid, entry in (data.get("sent") or {}).items()
            }
            return cls(uid, int(data.get("rank", -1)), sent)
        except (ValueError, TypeError, KeyError, AttributeError) as e:
            log.warning("%s/%s: delivery record ignored (%s)", metadata.get("namespace"), metadata.get("name"), e)
            return cls(uid)

    def knows(self, key: str) -> bool:
        return target_id(key) in self.sent

    def delivered(self, key: str, state: str, rank: int) -> bool:
        entry = self.sent.get(target_id(key))
        return entry is not None and (state in entry.states or rank <= entry.rank)

    def add(self, key: str, state: str, rank: int) -> None:
        entry = self.sent.setdefault(target_id(key), Sent())
        entry.states.add(state)
        entry.rank = max(entry.rank, rank)

    def seen(self, rank: int) -> None:
        self.rank = max(self.rank, rank)

    def merge(self, other: DeliveryRecord) -> None:
        """Adds what another writer recorded meanwhile (both only ever grow)."""
        self.rank = max(self.rank, other.rank)
        for tid, entry in other.sent.items():
            mine = self.sent.setdefault(tid, Sent())
            mine.states |= entry.states
            mine.rank = max(mine.rank, entry.rank)

    def to_json(self) -> str:
        sent = {tid: {"rank": e.rank, "states": sorted(e.states)} for tid, e in sorted(self.sent.items())}
        return json.dumps({"uid": self.uid, "rank": self.rank, "sent": sent}, separators=(",", ":"))
