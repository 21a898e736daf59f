"""Rate limits for failed authentication and a cap on concurrent log streams."""

from __future__ import annotations

import logging
import math
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from typing import Any

from shared.config import Env, StreamSettings, load

log = logging.getLogger(__name__)

Clock = Callable[[], float]


class SlidingWindow:
    """At most `limit` events per key within the last `window` seconds (a sliding log).

    Memory is bounded: each key keeps at most `limit` timestamps, and at most `max_keys` keys are
    tracked (expired keys are purged first, then the oldest are dropped) so spraying random keys
    (user names) cannot grow memory without bound.
    """

    def __init__(self, limit: int, window: float, clock: Clock = time.monotonic, max_keys: int = 100_000) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._max_keys = max_keys
        self._events: dict[Hashable, deque[float]] = {}
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.limit > 0 and self.window > 0

    def retry_after(self, key: Hashable) -> int:
        """0 if another event is allowed now, else whole seconds until one is."""
        if not self.enabled:
            return 0
        now = self._clock()
        with self._lock:
            events = self._events.get(key)
            if events is None:
                return 0
            self._expire(events, now)
            if not events:
                del self._events[key]
                return 0
            if len(events) < self.limit:
                return 0
            # The oldest event in the window leaves it at events[0] + window.
            return max(1, math.ceil(events[0] + self.window - now))

    def _current(self, key: Hashable, now: float) -> deque[float]:
        """The key's events within the window (a new, empty record for a new key). Lock held."""
        events = self._events.get(key)
        if events is None:
            if len(self._events) >= self._max_keys:
                self._make_room(now)
            events = self._events[key] = deque(maxlen=self.limit)
        else:
            self._expire(events, now)
        return events

    def hit(self, key: Hashable) -> bool:
        """Record one event; True if this event reached the limit (the key is now blocked)."""
        if not self.enabled:
            return False
        now = self._clock()
        with self._lock:
            events = self._current(key, now)
            events.append(now)
            return len(events) >= self.limit

    def attempt(self, key: Hashable, block: bool = True) -> tuple[int, float | None]:
        """Count an attempt now, atomically with the check: `(0, stamp)` if admitted (`undo` the
        stamp if it turns out not to be a failure), `(retry_after, None)` if the key is blocked.

        Counting before the slow verification matters: otherwise a burst of concurrent requests
        would all pass the check before the first failure is recorded, each costing a bcrypt.
        With `block=False` the attempt is counted but never refused.
        """
        if not self.enabled:
            return 0, None
        now = self._clock()
        with self._lock:
            events = self._current(key, now)
            if len(events) >= self.limit:
                if block:
                    return max(1, math.ceil(events[0] + self.window - now)), None
                # Exempt and already at the limit: appending would push out (and so forgive) the
                # oldest counted failure.
                return 0, None
            events.append(now)
            return 0, now

    def undo(self, key: Hashable, stamp: float | None) -> None:
        """Forget one attempt counted by `attempt` (it succeeded, or was refused elsewhere)."""
        if stamp is None:
            return
        with self._lock:
            events = self._events.get(key)
            if events is not None:
                try:
                    events.remove(stamp)
                except ValueError:
                    pass  # already expired or pushed out

    def __len__(self) -> int:
        return len(self._events)

    def _expire(self, events: deque[float], now: float) -> None:
        horizon = now - self.window
        while events and events[0] <= horizon:
            events.popleft()

    def _make_room(self, now: float) -> None:
        horizon = now - self.window
        for key in [k for k, events in self._events.items() if not events or events[-1] <= horizon]:
            del self._events[key]
        while len(self._events) >= self._max_keys:
            del self._events[next(iter(self._events))]  # oldest inserted


class RecentSet:
    """Keys seen within `ttl` seconds, bounded (used for addresses that recently succeeded)."""

    def __init__(self, ttl: float, clock: Clock = time.monotonic, max_keys: int = 100_000) -> None:
        self.ttl = ttl
        self._clock = clock
        self._max_keys = max_keys
        self._seen: dict[Hashable, float] = {}
        self._lock = threading.Lock()

    def add(self, key: Hashable) -> None:
        now = self._clock()
        with self._lock:
            self._seen.pop(key, None)  # re-insert: dict order stays oldest-first
            if len(self._seen) >= self._max_keys:
                horizon = now - self.ttl
                for old in [k for k, t in self._seen.items() if t <= horizon]:
                    del self._seen[old]
                while len(self._seen) >= self._max_keys:
                    del self._seen[next(iter(self._seen))]
            self._seen[key] = now

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            seen = self._seen.get(key)
            return seen is not None and self._clock() - seen < self.ttl

    def clear(self) -> None:
        with self._lock:
            self._seen.clear()


class StreamLimitExceeded(Exception):
    """Too many concurrent log streams; answer `status` with `error` and `headers`."""

    status = 429

    def __init__(self, error: str, retry_after: int) -> None:
        super().__init__(error)
        self.error = error
        self.headers = {"Retry-After": str(retry_after)}


class StreamLease:
    """One admitted stream. Release it exactly once: `release()`, `with lease:`, or `guard()`.

    If it is dropped without a release (a response generator that never started), the garbage
    collector releases it, so a slot cannot leak forever.
    """

    def __init__(self, limiter: StreamLimiter, key: str) -> None:
        self.key = key
        self._release_lock = threading.Lock()
        self._released = False
        self._finalizer = weakref.finalize(self, limiter._release, key)

    @property
    def released(self) -> bool:
        return self._released

    def release(self) -> None:
        with self._release_lock:
            if self._released:
                return
            self._released = True
        self._finalizer()  # runs limiter._release once, and detaches the GC fallback

    def __enter__(self) -> StreamLease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def guard(self, body: Iterable[Any]) -> GuardedBody:
        """Wrap a response body: released when it is exhausted, fails, or is closed by the server.

        WSGI servers always call `close()` on the body, also when the client went away before the
        first chunk; a bare generator with `with lease:` inside would never run in that case.
        """
        return GuardedBody(body, self)


class GuardedBody:
    def __init__(self, body: Iterable[Any], lease: StreamLease) -> None:
        self._body = body
        self._iter: Iterator[Any] | None = None
        self._lease = lease

    def __iter__(self) -> GuardedBody:
        return self

    def __next__(self) -> Any:
        if self._iter is None:
            self._iter = iter(self._body)
        try:
            return next(self._iter)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        try:
            close = getattr(self._iter if self._iter is not None else self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._lease.release()


class StreamLimiter:
    """Caps concurrent log streams per principal (and optionally in total).

        lease = stream_limiter.acquire(decision.principal)   # raises StreamLimitExceeded (429)
        return Response(lease.guard(generate()), ...)

    Env: `LOGS_MAX_STREAMS_PER_PRINCIPAL` (default 10, 0 = no cap), `LOGS_MAX_STREAMS` (default 0 =
    no total cap), `LOGS_STREAM_RETRY_AFTER` (seconds in Retry-After, default 10).
    """

    def __init__(self, per_principal: int = 10, total: int = 0, retry_after: int = 10) -> None:
        self.per_principal = per_principal
        self.total = total
        self.retry_after = retry_after
        self._active: dict[str, int] = {}
        self._count = 0
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: StreamSettings) -> StreamLimiter:
        return cls(settings.per_principal, settings.total, settings.retry_after)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> StreamLimiter:
        """Settings read by the configuration loader (`shared.config`) from `environ`."""
        return cls.from_settings(load(StreamSettings, Env(environ)))

    def acquire(self, principal: Any) -> StreamLease:
        """Admit one stream for `principal` (a Principal or a name) or raise StreamLimitExceeded."""
        key = principal if isinstance(principal, str) else principal.name
        with self._lock:
            current = self._active.get(key, 0)
            if self.per_principal and current >= self.per_principal:
                log.warning("log stream refused: %r already has %d open streams", key, current)
                raise StreamLimitExceeded(
                    f"too many concurrent streams or waits for this user (limit {self.per_principal})",
                    self.retry_after,
                )
            if self.total and self._count >= self.total:
                log.warning("log stream refused: %d streams open in total", self._count)
                raise StreamLimitExceeded("too many concurrent streams or waits on this service", self.retry_after)
            self._active[key] = current + 1
            self._count += 1
        return StreamLease(self, key)

    def active(self, principal: Any = None) -> int:
        with self._lock:
            if principal is None:
                return self._count
            key = principal if isinstance(principal, str) else principal.name
            return self._active.get(key, 0)

    def _release(self, key: str) -> None:
        with self._lock:
            left = self._active.get(key, 0) - 1
            if left > 0:
                self._active[key] = left
            else:
                self._active.pop(key, None)
            self._count = max(self._count - 1, 0)
