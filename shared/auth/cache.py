"""Credentials proven correct recently, so bcrypt runs once per client, not once per request.

Keys are HMACs of the whole credential under a per-process random key (see the authenticator): they
hold no password and are useless outside this process. An entry is valid for `ttl` seconds and only
for the credentials snapshot (generation) it was proven against.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

from shared.auth.decision import Principal

MAX_CACHE_ENTRIES = 4096


class VerifiedCache:
    def __init__(self, ttl: float, clock: Callable[[], float]) -> None:
        self._ttl = ttl
        self._clock = clock
        self._entries: dict[bytes, tuple[Principal, float, int]] = {}
        self._lock = threading.Lock()

    def __iter__(self) -> Iterator[bytes]:
        with self._lock:
            return iter(list(self._entries))

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def get(self, key: bytes, generation: int) -> Principal | None:
        if self._ttl <= 0:
            return None
        with self._lock:
            item = self._entries.get(key)
            if item is None:
                return None
            principal, expires, item_generation = item
            if item_generation != generation or self._clock() >= expires:
                del self._entries[key]
                return None
            return principal

    def put(self, key: bytes, principal: Principal, generation: int) -> None:
        if self._ttl <= 0:
            return
        now = self._clock()
        with self._lock:
            if len(self._entries) >= MAX_CACHE_ENTRIES:
                for stale in [k for k, (_, expires, _) in self._entries.items() if expires <= now]:
                    del self._entries[stale]
                while len(self._entries) >= MAX_CACHE_ENTRIES:
                    del self._entries[next(iter(self._entries))]
            self._entries[key] = (principal, now + self._ttl, generation)
