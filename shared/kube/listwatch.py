"""A resumable list-watch of one collection: what a Kubernetes informer does, for plain dicts.

List, then watch from the list's resourceVersion, carrying the version forward through every
reconnect; list again only when the watch says the version expired (410). Breaks are retried with
the retry policy; refusals (403/404) only within `refusal_grace` after a first successful list.
The consumer iterates `updates()`: a `Listed` snapshot, then `Changed` events, a new `Listed`
after every re-list. Leaving the loop (or `stop`) closes the watch.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from shared.kube.client import Forbidden, Gone, Kube, KubeError, NotFound, Resource, interrupt
from shared.kube.retry import REFUSAL_GRACE, Backoff

log = logging.getLogger(__name__)

Obj = dict[str, Any]

WATCH_SECONDS = 240
# A watch that ends sooner than this without an error is an apiserver on its way down: back off.
SHORT_WATCH = 1.0


@dataclass(frozen=True)
class Listed:
    """Every object of the collection, as of the list's resourceVersion."""

    items: list[Obj]


@dataclass(frozen=True)
class Changed:
    """One watch event: ADDED, MODIFIED or DELETED."""

    type: str
    obj: Obj


Update = Listed | Changed


@dataclass
class ListWatch:
    """One collection (namespace, labels, fields) kept in view across breaks."""

    kube: Kube
    resource: Resource
    namespace: str
    labels: str | None = None
    fields: str | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    refusal_grace: float = REFUSAL_GRACE
    watch_seconds: int = WATCH_SECONDS
    on_break: Callable[[], None] | None = None
    what: str = ""
    _response: Any = field(default=None, init=False, repr=False)

    @property
    def watching(self) -> bool:
        """A watch request is open."""
        return self._response is not None

    def interrupt(self) -> None:
        """Ends the open watch request at once, also when the API is silent (for `stop`)."""
        response = self._response
        if response is not None:
            interrupt(response)

    def updates(
        self, deadline: float | None = None, gone: Callable[[], bool] | None = None, since: str = ""
    ) -> Iterator[Update]:
        """Updates until `stop` is set, `gone()` is true or `deadline` (monotonic) passes.

        `since`: the resourceVersion of a list the caller has already made of this collection; the
        watch starts from it without a `Listed` of its own (a 410 lists again as usual).

        Raises the refusal (Forbidden/NotFound) that outlasted `refusal_grace`, or came before any
        list succeeded: retrying will not heal RBAC or a missing namespace or CRD.
        """
        version = since
        backoff = Backoff(self.stop)
        listed = bool(since)
        refused_since: float | None = None
        while not self._over(deadline, gone):
            try:
                if not version:
                    items, version = self.kube.list_objects(self.resource, self.namespace, self.labels, self.fields)
                    listed = True
                    yield Listed(items)
                    if self._over(deadline, gone):
                        return
                timeout = self._watch_timeout(deadline)
                stream = self.kube.open_watch(self.resource, self.namespace, version, self.labels, self.fields, timeout)
                refused_since = None
                opened_at = time.monotonic()
                self._response = stream.response
                try:
                    if self.stop.is_set():
                        return
                    for event, obj in stream:
                        version = (obj.get("metadata") or {}).get("resourceVersion") or version
                        if event != "BOOKMARK":
                            yield Changed(event, obj)
                        backoff.reset()
                        if deadline is not None and time.monotonic() >= deadline:
                            return
                finally:
                    self._response = None
                    stream.close()
                if time.monotonic() - opened_at < min(SHORT_WATCH, timeout / 2) and not self.stop.is_set():
                    self._broke("ended at once")
                    if backoff.wait(deadline):
                        return
                else:
                    backoff.reset()
            except Gone:
                version = ""  # expired: list again
            except (Forbidden, NotFound) as err:
                if self.stop.is_set():
                    return
                now = time.monotonic()
                refused_since = refused_since or now
                if not listed or now - refused_since >= self.refusal_grace:
                    raise
                self._broke(f"refused ({err.reason})")
                if backoff.wait(deadline):
                    return
            except Exception as err:  # a cut socket surfaces as many urllib3/OSError types
                if self.stop.is_set():
                    return
                self._broke(f"broke ({err.reason if isinstance(err, KubeError) else type(err).__name__})")
                if backoff.wait(deadline):
                    return

    def _over(self, deadline: float | None, gone: Callable[[], bool] | None) -> bool:
        if self.stop.is_set() or (gone is not None and gone()):
            return True
        return deadline is not None and time.monotonic() >= deadline

    def _watch_timeout(self, deadline: float | None) -> int:
        if deadline is None:
            return self.watch_seconds
        return max(1, min(self.watch_seconds, int(deadline - time.monotonic() + 0.999)))

    def _broke(self, why: str) -> None:
        log.warning("watch of %s %s; retrying", self.what or self.resource.plural, why)
        if self.on_break is not None:
            self.on_break()
