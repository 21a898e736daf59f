"""Small holes found by attacking the landed service (issue 15), each tried from the attacker's side
over real HTTP: names with a trailing newline, forged resume tokens, readiness details, request
lines and headers larger than any real client sends."""

from __future__ import annotations

import json
import socket
import time
import uuid

import pytest

from shared.kube.names import namespace_problem, object_name_problem
from shared.logs.cursor import Cursor
from shared.logs.tokens import Binding, attempt_key, encode_active, encode_stable
from tests.sandbox.cluster import LISTENER_NAMESPACE, Cluster
from tests.sandbox.scenarios import SCENARIOS
from tests.sandbox.simulator import PlayedRun, Simulator
from tests.support import Listener, basic

NS = LISTENER_NAMESPACE


@pytest.mark.parametrize("path", ["/status/demo%0A", "/logs/demo%0A", f"/status/{NS}%0A/demo", "/logs/demo%0D%0A"])
def test_names_with_a_trailing_newline_never_reach_the_api(listener: Listener, path: str) -> None:
    status, headers, body = listener.get(path, timeout=20)
    assert status in (400, 404) and headers["content-type"] == "application/json", (path, status, body)
    assert "not found" not in json.loads(body)["error"] or "PipelineRun" not in json.loads(body)["error"]


@pytest.mark.parametrize("name", ["demo\n", "demo\r\n", "\ndemo", "de\nmo"])
def test_naming_rules_refuse_newlines(name: str) -> None:
    # The path forms (`/status/demo%0A`) are refused by the router before these rules run; the
    # rules must hold on their own.
    assert object_name_problem(name) is not None
    assert namespace_problem(name) is not None


def _forged_token(cluster: Cluster, run: str, pod: str, ns: int, index: int = 0, same: int = 1, piece: int = 0) -> str:
    """A well-formed token for `run` (checksums right, as anyone can compute them) naming `pod`
    at step `index` with a cursor at `ns`."""
    uid = cluster.api("GET", f"/apis/tekton.dev/v1/namespaces/{NS}/pipelineruns/{run}")["metadata"]["uid"]
    binding = Binding.of(uid)
    stable, crc = encode_stable(binding, frozenset())
    token = f"{stable}.{encode_active({attempt_key(pod): (index, Cursor(ns, same, piece))}, crc)}"
    return token


@pytest.fixture(scope="module")
def finished_run(sim: Simulator) -> PlayedRun:
    return sim.play(SCENARIOS["success"](), NS, f"forged-{uuid.uuid4().hex[:8]}").wait(60)


@pytest.mark.parametrize(
    ("ns", "index", "same", "piece"),
    [(2**64 - 1, 0, 1, 0), (2**63, 0, 1, 0), (10**9, 2**60, 1, 0), (10**9, 0, 2**62, 0), (10**9, 0, 1, 2**62)],
    ids=["u64-max", "i64-overflow", "huge-step-index", "huge-same", "huge-piece"],
)
@pytest.mark.parametrize("fmt", ["text", "ndjson"])
def test_resume_token_with_absurd_cursor_is_a_400_not_a_traceback(
    listener: Listener, finished_run: PlayedRun, cluster: Cluster, ns: int, index: int, same: int, piece: int, fmt: str
) -> None:
    """A token's checksums stop accidents, not attackers: a well-formed token naming a position no
    stream can reach is refused (today it skipped whole steps silently, or worse)."""
    run = finished_run
    pod = run.pods("unit")[0]
    token = _forged_token(cluster, run.name, pod, ns, index, same, piece)
    started = time.monotonic()
    status, headers, body = listener.get(f"/logs/{run.name}?format={fmt}&resume={token}", timeout=30)
    assert time.monotonic() - started < 20
    assert status == 400, (status, body[-500:])
    assert headers["content-type"] == "application/json"
    assert "resume token" in json.loads(body)["error"]
    assert "Traceback" not in listener.log()


def test_readiness_details_only_for_operators(cluster: Cluster, tmp_path) -> None:
    """A CI user (one namespace) learns nothing about the service's Kubernetes access from the
    readiness probe; an operator entry (every namespace) does."""
    import bcrypt

    hashed = bcrypt.hashpw(b"op-password", bcrypt.gensalt(4)).decode()
    auth_file = tmp_path / "users"
    auth_file.write_text(f"operator:{hashed}:*\n")
    with Listener(cluster, AUTH_FILE=str(auth_file), AUTH_NAMESPACES="") as running:
        status, body = running.get_json("/health/readiness")  # the env user: NAMESPACE only
        assert (status, body) == (200, {"status": "ready"})
        status, body = running.get_json("/health/readiness", auth=basic("operator", "op-password"))
        assert status == 200 and body == {"status": "ready", "kubernetes": "ok", "namespace": NS}


def _send_raw(listener: Listener, data: bytes, timeout: float = 10.0) -> tuple[bytes, int]:
    """Sends `data` as fast as the server reads it; returns (answer, bytes the server took)."""
    sent = 0
    answer = b""
    with socket.create_connection(("127.0.0.1", listener.port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        try:
            view = memoryview(data)
            while sent < len(data):
                sent += sock.send(view[sent : sent + 65536])
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    return answer, sent


@pytest.mark.parametrize(
    ("what", "request_bytes", "code"),
    [
        ("request line", b"GET /status/" + b"a" * (8 << 20) + b" HTTP/1.1\r\nHost: x\r\n\r\n", b"414"),
        ("header", b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (8 << 20) + b"\r\n\r\n", b"431"),
    ],
    ids=["request-line", "header"],
)
def test_oversized_request_is_refused_before_it_is_read(
    listener: Listener, what: str, request_bytes: bytes, code: bytes
) -> None:
    answer, sent = _send_raw(listener, request_bytes)
    head = answer.split(b"\r\n", 1)[0]
    assert code in head or b"400" in head, (what, head)
    body = answer.split(b"\r\n\r\n", 1)[-1]
    assert json.loads(body)["status"] in (400, 414, 431)
    # The server stops reading long before 8 MiB (socket buffers hold at most a few MiB).
    assert sent < 4 << 20, f"{what}: the server read {sent} bytes before answering"
    assert listener.get("/health/liveness", auth=None)[0] == 200


@pytest.mark.parametrize("setting", ["", "not a namespace!", "team-a,"])
def test_env_user_reads_only_namespace_unless_configured(cluster: Cluster, namespace: str, setting: str) -> None:
    """The one user from AUTH_USERNAME is the CI credential: leaked, it reads NAMESPACE only.
    An unusable AUTH_NAMESPACES narrows to NAMESPACE too, never widens."""
    with Listener(cluster, AUTH_NAMESPACES=setting) as running:
        for path in (f"/status/{namespace}/some-run", f"/logs/{namespace}/some-run", "/status/kube-system/x"):
            status, headers, body = running.get(path)
            assert status == 403 and headers["content-type"] == "application/json", (path, status, body)
            assert json.loads(body) == {"error": json.loads(body)["error"], "status": 403}
        assert running.get(f"/status/no-such-run-{uuid.uuid4().hex[:6]}")[0] == 404  # NAMESPACE: allowed


def test_env_user_namespaces_are_configurable(cluster: Cluster, namespace: str) -> None:
    with Listener(cluster, AUTH_NAMESPACES=f"{NS},{namespace}") as running:
        # Allowed by the caller's grant; the service's Role is not bound there: 403 all the same.
        status, body = running.get_json(f"/status/{namespace}/some-run")
        assert status == 403 and "RBAC" in body["error"]
        assert running.get_json("/status/kube-system/x")[0] == 403
