"""What a log follow produces, before formatting: the reader/writer split of tkn's pkg/log."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class RunStarted:
    namespace: str
    name: str
    resumed: bool = False  # the stream continues an earlier one (a resume token was given)


@dataclass(slots=True)  # one per log line: a frozen dataclass's __init__ costs several times more
class LogLine:
    task: str
    step: str
    line: str  # without its newline; a last line may have had none
    timestamp: str = ""  # the kubelet's RFC 3339 timestamp
    attempt: int = 0
    pod: str = ""
    index: int = -1  # the step's position in the pod's step containers (for resume tokens)


@dataclass(frozen=True)
class Notice:
    """Something a user should know that is not a log line: a skipped task, deleted pod..."""

    task: str
    message: str
    step: str = ""
    kind: str = "info"  # skipped | no-logs | image-pull | failed | retry | error | info
    key: str = ""  # identifies the notice across resumed streams, so it is never sent twice


@dataclass(frozen=True)
class AttemptDone:
    """Every container of this attempt's pod was delivered (writers print nothing)."""

    pod: str


@dataclass(frozen=True)
class RunFinished:
    status: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StreamEnded:
    """The stream stops before the run is done (deadline, shutdown, API failure)."""

    reason: str  # deadline | shutdown | error
    message: str


@dataclass(frozen=True)
class Heartbeat:
    pass


Event = RunStarted | LogLine | Notice | AttemptDone | RunFinished | StreamEnded | Heartbeat
