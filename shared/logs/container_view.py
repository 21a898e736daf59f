"""What a container's log reader learns of its pod from whoever watches it, and what it tells
its caller: how the wait for the container to start and the read ended."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from shared.runs.model import Container


class ContainerView(Protocol):
    """What a container reader learns about its pod from whoever watches it."""

    namespace: str

    def state(self, container: str) -> Container | None:
        """The container as last seen; None while the pod is not known."""

    def pod_known(self) -> bool: ...

    def pod_gone(self) -> bool: ...

    def pod_deleting(self) -> bool:
        """The pod is gone or being deleted (it has a deletionTimestamp)."""

    def reconnecting(self) -> bool:
        """The API failed recently: a refusal may be a restarting apiserver's, not RBAC's."""

    def wait(self, ready: Callable[[], bool], timeout: float | None) -> None:
        """Blocks until `ready()` holds (checked on every change) or `timeout` passes."""


class Start(enum.Enum):
    STARTED = "started"
    DELETED = "deleted"
    STUCK = "stuck"  # cannot start, e.g. an image pull failure
    ENDED = "ended"  # the caller's end condition came first
    STOPPED = "stopped"


class Ended(enum.Enum):
    DONE = "done"
    DELETED = "deleted"
    STOPPED = "stopped"


@dataclass(frozen=True)
class Failed:
    message: str


Outcome = Ended | Failed
