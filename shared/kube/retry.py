"""The one retry policy for talking to Kubernetes: capped exponential backoff, reset on progress.

A break (a cut connection, an apiserver restarting, a 5xx) is retried after 0.2 s, then 0.4 s,
... up to `MAX_BACKOFF`; any progress (an event, a delivered line) starts the schedule again.
A restarting kube-apiserver answers 403 until its RBAC informers have synced and 404 for custom
resources until the CRD handler serves them: after a break, such refusals are retried for
`REFUSAL_GRACE` seconds before they count as real (RBAC changed, namespace or CRD removed).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

from shared.kube.errors import Forbidden, KubeError, NotFound

FIRST_BACKOFF = 0.2
MAX_BACKOFF = 5.0
REFUSAL_GRACE = 30.0

T = TypeVar("T")


def backoff_delay(attempt: int, first: float = FIRST_BACKOFF, cap: float = MAX_BACKOFF) -> float:
    """The wait before retry number `attempt` (1-based): first, twice that, ... capped."""
    return min(cap, first * (2 ** (attempt - 1)))


class Backoff:
    """The schedule of one retrying loop: `wait()` sleeps the next delay, `reset()` after progress."""

    def __init__(self, stop: threading.Event | None = None, first: float = FIRST_BACKOFF, cap: float = MAX_BACKOFF):
        self.stop = stop if stop is not None else threading.Event()
        self.first = first
        self.cap = cap
        self.attempt = 0

    def reset(self) -> None:
        self.attempt = 0

    def next_delay(self) -> float:
        self.attempt += 1
        return backoff_delay(self.attempt, self.first, self.cap)

    def wait(self, deadline: float | None = None) -> bool:
        """Sleeps the next delay (never past `deadline`, a monotonic time); True if `stop` was set."""
        delay = self.next_delay()
        if deadline is not None:
            delay = min(delay, max(0.0, deadline - time.monotonic()))
        return self.stop.wait(delay)


def transient(err: Exception) -> bool:
    """A failure worth retrying: anything but a refusal (403/404) or a rejected request (4xx)."""
    if isinstance(err, Forbidden | NotFound):
        return False
    if isinstance(err, KubeError):
        return err.status == 0 or err.status >= 500 or err.status == 429
    return True


def retrying(call: Callable[[], T], attempts: int = 3, stop: threading.Event | None = None) -> T:
    """`call()`, retried on transient failures with the policy's backoff; the last failure is raised."""
    backoff = Backoff(stop)
    while True:
        try:
            return call()
        except KubeError as err:
            if not transient(err) or backoff.attempt + 1 >= attempts or backoff.wait():
                raise
