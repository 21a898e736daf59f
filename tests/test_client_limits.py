"""Failed-login limits behind Knative (issue 15, item 1), from the attacker's side: the client is
the address the trusted hops name, limits key on (user, client) with backoff so a stranger cannot
lock a user out, IPv6 counts by /64, and the failure tables stay small at their cap."""

from __future__ import annotations

import tracemalloc
import uuid

import pytest
import yaml

from shared.auth.limits import SlidingWindow, client_key
from shared.config import Settings
from tests.sandbox.cluster import LISTENER_NAMESPACE, Cluster
from tests.support import PASSWORD, ROOT, USER, Listener, basic, grant_listener

NS = LISTENER_NAMESPACE


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def behind_queue_proxy(cluster: Cluster) -> Listener:
    """The listener as service.yaml configures it: the test client stands in for queue-proxy
    (127.0.0.1) and says who the client is in X-Forwarded-For, as the ingress and queue-proxy do."""
    grant_listener(cluster, NS)
    trusted = shipped_env("logs")["TRUSTED_PROXIES"]
    with Listener(cluster, TRUSTED_PROXIES=trusted, AUTH_CACHE_TTL="0") as running:
        yield running


def shipped_env(function: str) -> dict[str, str]:
    for doc in yaml.safe_load_all((ROOT / "service.yaml").read_text()):
        if doc and doc["kind"] == "Service" and doc["metadata"]["name"] == f"tekton-listener-{function}":
            env = doc["spec"]["template"]["spec"]["containers"][0]["env"]
            return {e["name"]: e["value"] for e in env if "value" in e}
    raise AssertionError(function)


def get_from(listener: Listener, client: str, user: str, password: str) -> tuple[int, dict[str, str]]:
    status, headers, _ = listener.get(
        f"/status/no-such-run-{uuid.uuid4().hex[:6]}",
        auth=basic(user, password),
        headers={"X-Forwarded-For": f"{client}, 10.0.0.7"},  # client, then the ingress pod
    )
    return status, headers


@pytest.mark.parametrize("function", ["logs", "status"])
def test_service_yaml_trusts_queue_proxy_and_the_ingress(function: str) -> None:
    settings = Settings.from_env(shipped_env(function))
    trusted = settings.trusted_proxies
    import ipaddress

    for hop in ("127.0.0.1", "::1", "10.12.0.5", "172.20.3.4", "192.168.7.7"):  # queue-proxy, pod IPs
        assert any(ipaddress.ip_address(hop) in net for net in trusted), hop
    assert not any(ipaddress.ip_address("203.0.113.9") in net for net in trusted)


def test_a_stranger_cannot_lock_the_ci_user_out(behind_queue_proxy: Listener) -> None:
    """Today's attack: wrong passwords for the CI user from many addresses. The real user, from an
    address it never used, still gets in at once."""
    listener = behind_queue_proxy
    refused = 0
    for i in range(60):
        status, _ = get_from(listener, f"203.0.113.{i % 30}", USER, f"guess-{i}")
        assert status in (401, 429)
        refused += status == 429
    status, _ = get_from(listener, "198.51.100.7", USER, PASSWORD)
    assert status == 404, status  # authenticated: the run does not exist
    # The stranger's own (user, client) pairs did slow down.
    for _ in range(10):
        status, headers = get_from(listener, "203.0.113.1", USER, "guess")
    assert status == 429 and int(headers["retry-after"]) >= 1


def test_rotating_ipv6_addresses_within_a_64_gains_nothing(behind_queue_proxy: Listener) -> None:
    listener = behind_queue_proxy
    statuses = [get_from(listener, f"2001:db8:aa:1::{i:x}", f"user{i}", "guess")[0] for i in range(1, 25)]
    assert statuses[:10] == [401] * 10 and set(statuses[10:]) == {429}, statuses
    # Another /64 is another client.
    assert get_from(listener, "2001:db8:aa:2::1", "someone", "guess")[0] == 401
    assert get_from(listener, "2001:db8:aa:2::2", USER, PASSWORD)[0] == 404


def test_client_keys() -> None:
    assert client_key("2001:db8:1:2:3:4:5:6") == client_key("2001:db8:1:2::ffff") == "2001:db8:1:2::/64"
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key("::ffff:203.0.113.9") == client_key("203.0.113.9") == "203.0.113.9"
    assert client_key("not-an-address" * 20) == ("not-an-address" * 20)[:128]


def test_repeat_offenders_back_off_exponentially() -> None:
    clock = FakeClock()
    window = SlidingWindow(limit=2, window=10, clock=clock, max_block=100)
    waits = []
    for _ in range(5):
        assert window.attempt("k")[0] == 0 and window.attempt("k")[0] == 0
        wait, _ = window.attempt("k")
        waits.append(wait)
        clock.now += wait  # the guesser comes back the moment it may
    assert waits == [10, 20, 40, 80, 100], waits
    # A key that stays quiet for a window after its block starts afresh.
    clock.now += 100 + 10
    window.attempt("k")
    window.attempt("k")
    assert window.attempt("k")[0] == 10


def test_a_success_takes_back_the_block_its_attempt_set() -> None:
    clock = FakeClock()
    window = SlidingWindow(limit=2, window=10, clock=clock)
    window.attempt("k")
    _, stamp = window.attempt("k")  # reaches the limit ...
    window.undo("k", stamp)  # ... but was the right password
    assert window.retry_after("k") == 0 and window.attempt("k")[0] == 0


def test_failure_tables_are_small_at_their_cap() -> None:
    """Every key at the limit, the table full: the memory the limits can cost at worst."""
    clock = FakeClock()
    limit, keys = 10, 100_000
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        window = SlidingWindow(limit=limit, window=60, clock=clock, max_keys=keys)
        for i in range(keys + 1000):
            key = (f"user-{i}", f"2001:db8:{i >> 16:x}:{i & 0xFFFF:x}::/64")
            for _ in range(limit):
                window.hit(key)
            clock.now += 0.0001
        used = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(window) == keys
    print(f"failure table at its cap: {keys} keys x {limit} failures = {used / 2**20:.1f} MiB")
    assert used < 48 * 2**20, used
