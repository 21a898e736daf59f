"""Rate limits for failed authentication (the stream cap lives in `shared.auth.streams`)."""

from __future__ import annotations

import functools
import ipaddress
import itertools
import logging
import math
import threading
import time
from array import array
from collections.abc import Callable, Hashable

log = logging.getLogger(__name__)

Clock = Callable[[], float]


def client_key(address: str) -> str:
    """What failure limits count a client by: an IPv4 address; for IPv6 its /64, the smallest
    allocation a site or host gets, so rotating addresses within it gains nothing (an IPv4-mapped
    address counts as the IPv4 one); anything else as given, truncated."""
    # Parsed once per client, not on every request it makes; a string longer than any address
    # (from X-Forwarded-For) is not kept.
    return _cached_key(address) if len(address) <= 64 else _key(address)


@functools.lru_cache(maxsize=4096)
def _cached_key(address: str) -> str:
    return _key(address)


def _key(address: str) -> str:
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return address[:128]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class SlidingWindow:
    """At most `limit` events per key within the last `window` seconds (a sliding log), with
    backoff: a key that reaches the limit again soon after a block is blocked twice as long each
    time (up to `max_block`), so a persistent guesser slows down exponentially while a key that
    stays quiet for a window starts afresh.

    Memory is bounded and small: a key keeps one compact record (at most `limit` timestamps in an
    array of doubles, and its backoff), and at most `max_keys` keys are tracked (expired keys are
    purged first, then the oldest are dropped), so spraying random keys (user names, addresses)
    cannot grow memory without bound; tests/test_client_limits.py measures the table at its cap.
    """

    def __init__(
        self,
        limit: int,
        window: float,
        clock: Clock = time.monotonic,
        max_keys: int = 100_000,
        max_block: float = 3600.0,
    ) -> None:
        self.limit = limit
        self.window = window
        self.max_block = max_block
        self._clock = clock
        self._max_keys = max_keys
        # Keyed by the key's hash (64 bits, salted per process): a long, attacker-chosen user name
        # costs what a short one does; a collision among 100 000 keys has odds of ~1e-9.
        self._events: dict[int, _Record] = {}
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
            record = self._events.get(hash(key))
            if record is None:
                return 0
            self._expire(record, now)
            if record.idle(now, self.window):
                del self._events[hash(key)]
                return 0
            return self._wait(record, now)

    def _wait(self, record: _Record, now: float) -> int:
        """Seconds until `record` may have another event (0: now). Lock held."""
        until = record.blocked_until
        if len(record.stamps) >= self.limit:
            # The oldest event in the window leaves it at stamps[0] + window.
            until = max(until, record.stamps[0] + self.window)
        return max(1, math.ceil(until - now)) if until > now else 0

    def _current(self, key: Hashable, now: float) -> _Record:
        """The key's record, expired events dropped (a new record for a new key). Lock held."""
        record = self._events.get(hash(key))
        if record is None:
            if len(self._events) >= self._max_keys:
                self._make_room(now)
            record = self._events[hash(key)] = _Record()
        else:
            self._expire(record, now)
        return record

    def _count(self, record: _Record, now: float) -> None:
        """Appends one event; on reaching the limit again after a block, the block escalates."""
        record.stamps.append(now)
        if len(record.stamps) >= self.limit:
            if record.blocked_until and now - record.blocked_until < self.window:
                record.strikes += 1
                record.blocked_until = now + min(self.window * 2.0**record.strikes, self.max_block)
            else:
                record.strikes = 0
                record.blocked_until = record.stamps[0] + self.window
            record.blocked_by = now

    def hit(self, key: Hashable) -> bool:
        """Record one event; True if this event reached the limit (the key is now blocked)."""
        if not self.enabled:
            return False
        now = self._clock()
        with self._lock:
            record = self._current(key, now)
            self._count(record, now)
            return self._wait(record, now) > 0

    def attempt(self, key: Hashable) -> tuple[int, float | None]:
        """Count an attempt now, atomically with the check: `(0, stamp)` if admitted (`undo` the
        stamp if it turns out not to be a failure), `(retry_after, None)` if the key is blocked.

        Counting before the slow verification matters: otherwise a burst of concurrent requests
        would all pass the check before the first failure is recorded, each costing a bcrypt.
        """
        if not self.enabled:
            return 0, None
        now = self._clock()
        with self._lock:
            record = self._current(key, now)
            wait = self._wait(record, now)
            if wait:
                return wait, None
            self._count(record, now)
            return 0, now

    def undo(self, key: Hashable, stamp: float | None) -> None:
        """Forget one attempt counted by `attempt` (it succeeded, or was refused elsewhere)."""
        if stamp is None:
            return
        with self._lock:
            record = self._events.get(hash(key))
            if record is None or stamp not in record.stamps:
                return  # already expired or pushed out
            del record.stamps[record.stamps.index(stamp)]
            if record.blocked_by == stamp:  # that attempt had reached the limit: no block after all
                record.blocked_until, record.blocked_by = 0.0, 0.0
                record.strikes = max(0, record.strikes - 1)

    def __len__(self) -> int:
        return len(self._events)

    def _expire(self, record: _Record, now: float) -> None:
        horizon = now - self.window
        stamps = record.stamps
        drop = 0
        while drop < len(stamps) and stamps[drop] <= horizon:
            drop += 1
        if drop:
            del stamps[:drop]

    def _make_room(self, now: float) -> None:
        """Purges idle keys, then drops the oldest: down to 99 % of the cap, so a table kept full
        by a spray of new keys is scanned once per 1 % of it, not once per key."""
        for key in [k for k, record in self._events.items() if record.idle(now, self.window)]:
            del self._events[key]
        keep = self._max_keys - max(1, self._max_keys // 100)
        if len(self._events) > keep:
            for key in list(itertools.islice(iter(self._events), len(self._events) - keep)):
                del self._events[key]  # oldest inserted


class _Record:
    """One key's failures: their times (oldest first, at most `limit`) and its backoff."""

    __slots__ = ("blocked_by", "blocked_until", "stamps", "strikes")

    def __init__(self) -> None:
        self.stamps = array("d")
        self.blocked_until = 0.0
        self.blocked_by = 0.0  # the event that set the block (undone if it was no failure)
        self.strikes = 0  # blocks in a row, each twice as long as the last

    def idle(self, now: float, window: float) -> bool:
        """Nothing left to remember: no event in the window, no block and no backoff pending."""
        last = self.stamps[-1] if self.stamps else 0.0
        return max(last, self.blocked_until) + window <= now
