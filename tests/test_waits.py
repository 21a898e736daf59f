"""Requests that wait (issue 15, item 2), tried from the attacker's side over real sockets: a wait
never outlives the platform's timeout, a client that leaves mid-wait frees its thread, socket and
stream slot at once, and callers holding waits or streams cannot starve the short requests
(`/status`, probes) of the same instance."""

from __future__ import annotations

import json
import select
import socket
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from shared.auth.credentials import token_digest
from tests.sandbox.cluster import LISTENER_NAMESPACE, Cluster
from tests.sandbox.scenarios import SCENARIOS
from tests.sandbox.simulator import Simulator
from tests.support import ROOT, Listener, basic, grant_listener, wait_for

NS = LISTENER_NAMESPACE
PLATFORM_TIMEOUT = 600  # Knative Serving's max-revision-timeout-seconds default


def eventually(check: Callable[[], bool], within: float, what: str) -> float:
    """Seconds until `check()` held; polls, since what is awaited happens in another process."""
    started = time.monotonic()
    wait_for(check, what, within)
    return time.monotonic() - started


def close_wait_sockets(port: int) -> int:
    """TCP sockets on local `port` in CLOSE_WAIT: the peer left, the server still holds them."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "08":
                count += 1
    return count


def test_wait_maximum_is_within_the_platform_timeout(listener: Listener, sim: Simulator) -> None:
    run = sim.play(SCENARIOS["when-skipped"](), NS).wait(60)
    for path in (f"/status/{run.name}?wait=601", f"/logs/{run.name}?wait=3600", f"/status/{run.name}?wait=1e9"):
        status, body = listener.get_json(path)
        assert status == 400 and "wait must be at most" in body["error"], (path, status, body)
    assert listener.get(f"/status/{run.name}?wait=590")[0] in (200, 422)  # done already: at once
    # The documented maxima say the same, and no Service's timeouts cut a wait short.
    spec = yaml.safe_load((ROOT / "docs" / "openapi.yaml").read_text())
    maxima = [p["schema"]["maximum"] for p in spec["components"]["parameters"].values() if p["name"] == "wait"]
    assert maxima and all(m <= PLATFORM_TIMEOUT for m in maxima), maxima


def parked_wait(listener: Listener, path: str) -> socket.socket:
    """A raw connection whose request `path` waits holding the user's one stream slot (a probe
    is refused with 429 while it is unanswered). A probe holding the slot just as the wait
    arrives makes the wait a 429: it is sent again."""
    request = f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: {basic()}\r\n\r\n".encode()
    for _ in range(5):
        raw = socket.create_connection(("127.0.0.1", listener.port))
        raw.sendall(request)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            status = listener.get("/logs/no-such-run?wait=0")[0]
            answered = select.select([raw], [], [], 0)[0]
            if answered:
                break
            if status == 429:
                return raw
        raw.close()
    raise AssertionError(f"{path} never held the stream slot")


@pytest.mark.parametrize("endpoint", ["status", "logs"])
@pytest.mark.parametrize("by", ["name", "eventid"])
def test_a_client_that_leaves_mid_wait_frees_thread_socket_and_slot(cluster: Cluster, endpoint: str, by: str) -> None:
    grant_listener(cluster, NS)
    with Listener(cluster, LOGS_MAX_STREAMS_PER_PRINCIPAL="1") as capped:
        never = uuid.uuid4().hex[:8]
        # By name the run's own watch waits; by event ID, a watch of the label (`shared.runs.find`).
        path = f"/{endpoint}/never-created-{never}?wait=300"
        if by == "eventid":
            path = f"/{endpoint}?eventid={never}&wait=300"
        raw = parked_wait(capped, path)
        raw.close()
        freed = eventually(lambda: capped.get("/logs/no-such-run?wait=0")[0] == 404, 5, "slot freed")
        eventually(lambda: close_wait_sockets(capped.port) == 0, 5, "no CLOSE_WAIT socket")
        assert freed < 3, freed
        assert "Traceback" not in capped.log()


def test_waits_and_streams_cannot_starve_short_requests(cluster: Cluster, sim: Simulator, tmp_path: Path) -> None:
    """Eight callers (one token each, so no per-user cap helps) each park two waits on an instance
    with THREADS=4; /status of a finished run and the probes still answer at once."""
    grant_listener(cluster, NS)
    run = sim.play(SCENARIOS["when-skipped"](), NS).wait(60)
    tokens = {f"caller-{i}": f"tok-{uuid.uuid4().hex}" for i in range(8)}
    credentials = tmp_path / "credentials"
    credentials.write_text("".join(f"{n}:sha256${token_digest(t).hex()}:*\n" for n, t in tokens.items()))
    with Listener(cluster, THREADS="4", AUTH_FILE=str(credentials)) as small, ThreadPoolExecutor(16) as pool:
        waits = [
            pool.submit(small.get, f"/{kind}/never-{kind}-{i}?wait=30", f"Bearer {token}", 60)
            for i, token in enumerate(tokens.values())
            for kind in ("status", "logs")
        ]
        # THREADS=4: 4 waits are admitted, the others refused at once; 2 more threads are reserved.
        eventually(lambda: sum(f.done() for f in waits) >= len(waits) - 4, 15, "waits over capacity refused")
        answers = [f.result()[0] for f in waits if f.done()]
        assert answers and set(answers) == {429}, answers
        short = [(f"/status/{run.name}", "default"), ("/health/readiness", None), ("/health/liveness", None)]
        for _ in range(5):
            for path, auth in short:
                started = time.monotonic()
                status, _, body = small.get(path, auth=auth, timeout=10)
                assert status == 200 and time.monotonic() - started < 2, (path, status, body)
        assert json.loads(small.get(f"/status/{run.name}")[2])["outcome"] == "succeeded"
