"""The cap on concurrent log streams and waits: per principal, in total, and within the threads
not reserved for short requests."""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from shared.config import Env, StreamSettings, load

log = logging.getLogger(__name__)


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
    no total cap), `LOGS_STREAM_RETRY_AFTER` (seconds in Retry-After, default 10); `THREADS` bounds
    streams and waits together (gunicorn runs `RESERVED_THREADS` more for short requests).
    """

    def __init__(self, per_principal: int = 10, total: int = 0, retry_after: int = 10, capacity: int = 0) -> None:
        self.per_principal = per_principal
        self.total = total
        # Worker threads streams and waits may hold in all (0: no bound); the rest stay free.
        self.capacity = capacity
        self.retry_after = retry_after
        self._active: dict[str, int] = {}
        self._count = 0
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: StreamSettings) -> StreamLimiter:
        """Streams and waits each hold a worker thread for their whole life: in total they may
        take THREADS of them, never the reserved ones gunicorn runs beyond (server_hooks), so
        short requests are never starved."""
        threads = settings.threads or (os.cpu_count() or 1) * 4
        return cls(settings.per_principal, settings.total, settings.retry_after, threads)

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
            if self.capacity and self._count >= self.capacity:
                log.warning("log stream refused: %d streams and waits hold every unreserved thread", self._count)
                raise StreamLimitExceeded(
                    "this instance is busy with streams and waits; its spare threads are kept for short requests",
                    self.retry_after,
                )
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
