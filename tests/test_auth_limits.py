"""Sliding windows and the per-principal cap on concurrent log streams."""

from __future__ import annotations

import gc
import threading

import pytest

from shared.auth import Principal, StreamLimiter, StreamLimitExceeded
from shared.auth.limits import SlidingWindow


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_sliding_window_retry_after() -> None:
    clock = FakeClock()
    window = SlidingWindow(limit=3, window=10, clock=clock)
    assert window.retry_after("k") == 0
    assert not window.hit("k")
    clock.now = 2
    assert not window.hit("k")
    clock.now = 4.5
    assert window.hit("k")  # third event: now blocked
    assert window.retry_after("k") == 6  # until the first event (t=0) leaves at t=10
    clock.now = 9.9
    assert window.retry_after("k") == 1
    clock.now = 10
    assert window.retry_after("k") == 0
    assert window.retry_after("other") == 0


def test_sliding_window_memory_is_bounded() -> None:
    clock = FakeClock()
    window = SlidingWindow(limit=2, window=10, clock=clock, max_keys=100)
    for i in range(1000):
        window.hit(f"user-{i}")
    assert len(window) <= 100
    window.hit("attacker")
    assert window.retry_after("attacker") == 0 and window.hit("attacker")


def test_stream_limiter_per_principal() -> None:
    limiter = StreamLimiter(per_principal=2, retry_after=7)
    alice = Principal("alice")
    first = limiter.acquire(alice)
    second = limiter.acquire("alice")
    with pytest.raises(StreamLimitExceeded) as refused:
        limiter.acquire(alice)
    assert refused.value.status == 429 and refused.value.headers == {"Retry-After": "7"}
    assert "alice" not in refused.value.error
    assert limiter.acquire(Principal("bob")).key == "bob"  # others unaffected
    first.release()
    first.release()  # idempotent: does not free a second slot
    assert limiter.active(alice) == 1
    third = limiter.acquire(alice)
    with pytest.raises(StreamLimitExceeded):
        limiter.acquire(alice)
    second.release()
    third.release()
    assert limiter.active(alice) == 0


def test_stream_limiter_total_cap() -> None:
    limiter = StreamLimiter(per_principal=0, total=2)
    leases = [limiter.acquire("a"), limiter.acquire("b")]
    with pytest.raises(StreamLimitExceeded, match="on this service"):
        limiter.acquire("c")
    leases[0].release()
    leases.append(limiter.acquire("c"))
    assert limiter.active() == 2


def test_lease_as_context_manager() -> None:
    limiter = StreamLimiter(per_principal=1)
    with limiter.acquire("alice") as lease:
        assert limiter.active("alice") == 1 and not lease.released
    assert lease.released and limiter.active("alice") == 0


def test_guarded_body_releases_when_exhausted_failed_or_closed() -> None:
    limiter = StreamLimiter(per_principal=1)

    body = limiter.acquire("a").guard(iter(["x", "y"]))
    assert list(body) == ["x", "y"] and limiter.active("a") == 0

    def failing() -> object:
        yield "x"
        raise RuntimeError("API went away")

    body = limiter.acquire("a").guard(failing())
    with pytest.raises(RuntimeError):
        list(body)
    assert limiter.active("a") == 0

    closed: list[bool] = []

    def endless() -> object:
        try:
            while True:
                yield "line\n"
        finally:
            closed.append(True)

    body = limiter.acquire("a").guard(endless())
    assert next(body) == "line\n"
    body.close()  # what the WSGI server does when the client disconnects
    assert closed == [True] and limiter.active("a") == 0

    never_started = limiter.acquire("a").guard(endless())
    never_started.close()  # client gone before the first chunk: still released
    assert limiter.active("a") == 0


def test_dropped_lease_is_released_by_the_garbage_collector() -> None:
    limiter = StreamLimiter(per_principal=1)
    limiter.acquire("alice")  # dropped at once
    gc.collect()
    assert limiter.active("alice") == 0
    limiter.acquire("alice")


def test_stream_limiter_is_thread_safe() -> None:
    limiter = StreamLimiter(per_principal=5)
    admitted: list[object] = []
    refused: list[object] = []
    barrier = threading.Barrier(20)

    def worker() -> None:
        barrier.wait()
        try:
            admitted.append(limiter.acquire("alice"))
        except StreamLimitExceeded as exc:
            refused.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (len(admitted), len(refused)) == (5, 15)
    assert limiter.active("alice") == 5


def test_stream_limiter_from_env() -> None:
    limiter = StreamLimiter.from_env(
        {"LOGS_MAX_STREAMS_PER_PRINCIPAL": "3", "LOGS_MAX_STREAMS": "50", "LOGS_STREAM_RETRY_AFTER": "4"}
    )
    assert (limiter.per_principal, limiter.total, limiter.retry_after) == (3, 50, 4)
    defaults = StreamLimiter.from_env({"LOGS_MAX_STREAMS_PER_PRINCIPAL": "many"})
    assert (defaults.per_principal, defaults.total, defaults.retry_after) == (10, 0, 10)
