"""What a container's log reader needs to know of its pod, from whoever watches it."""

from __future__ import annotations

from collections.abc import Callable
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
