"""/status, /health, auth and error answers, over real HTTP against the sandbox."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.sandbox.cluster import Cluster
from tests.sandbox.scenarios import SCENARIOS
from tests.sandbox.simulator import Simulator
from tests.support import PASSWORD, USER, Listener, basic, grant_listener, holding_the_slot

NS = "tekton-pipelines"
SEED_FIELDS = {"message", "reason", "type", "status"}


@pytest.mark.parametrize(
    ("scenario", "code", "outcome", "reason"),
    [
        ("success", 200, "succeeded", "Succeeded"),
        ("when-skipped", 200, "succeeded", "Completed"),
        ("failure", 422, "failed", "Failed"),
        ("cancelled", 422, "cancelled", "Cancelled"),
        ("timeout", 422, "timed-out", "PipelineRunTimeout"),
    ],
)
def test_final_states(listener: Listener, sim: Simulator, scenario: str, code: int, outcome: str, reason: str) -> None:
    run = sim.play(SCENARIOS[scenario](), NS).wait(60)
    status, body = listener.get_json(f"/status/{run.name}")
    assert status == code
    assert SEED_FIELDS <= set(body)
    assert body["type"] == "Succeeded" and body["reason"] == reason and body["outcome"] == outcome
    assert body["status"] == ("True" if code == 200 else "False")
    assert body["name"] == run.name and body["namespace"] == NS
    # The same answer under the explicit namespace path.
    assert listener.get_json(f"/status/{NS}/{run.name}") == (status, body)
    curl = subprocess.run(
        ["curl", "-sf", "--user", f"{USER}:{PASSWORD}", f"{listener.url}/status/{run.name}"], capture_output=True
    )
    assert curl.returncode == (0 if code == 200 else 22)


def test_running_is_409_and_distinct_from_failed(listener: Listener, sim: Simulator) -> None:
    hold = threading.Event()
    scenario = SCENARIOS["success"]()
    scenario.tasks[0].steps[0].hold = hold
    run = sim.play(scenario, NS)
    try:
        # ?wait= waits for the run to exist, then for it to finish; the held step keeps it running.
        status, headers, raw = listener.get(f"/status/{run.name}?wait=1", timeout=30)
        body = json.loads(raw)
        assert status == 409 and headers["retry-after"]
        assert body["outcome"] in ("running", "pending") and body["status"] == "Unknown"
    finally:
        hold.set()
    run.wait(60)
    assert listener.get_json(f"/status/{run.name}")[0] == 200


def test_wait_long_polls_until_the_run_finishes(listener: Listener, sim: Simulator) -> None:
    run = sim.play(SCENARIOS["failure"](), NS)
    status, body = listener.get_json(f"/status/{run.name}?wait=60", timeout=90)
    assert status == 422 and body["outcome"] == "failed"
    assert run.done.is_set() or run.wait(10)


def test_tasks_detail(listener: Listener, sim: Simulator) -> None:
    run = sim.play(SCENARIOS["when-skipped"](), NS).wait(60)
    _, body = listener.get_json(f"/status/{run.name}?tasks=true")
    tasks = {t["name"]: t for t in body["tasks"]}
    assert tasks["deploy"]["outcome"] == "skipped"
    assert tasks["test"]["outcome"] == "succeeded" and tasks["test"]["reason"] == "Succeeded"


def test_missing_run(listener: Listener) -> None:
    status, headers, raw = listener.get("/status/does-not-exist")
    assert status == 404 and headers["content-type"] == "application/json"
    assert json.loads(raw) == {"error": f"PipelineRun {NS}/does-not-exist not found", "status": 404}


@pytest.mark.parametrize(
    "path",
    [
        "/status/Bad_Name",
        "/status/-x",
        "/logs/" + "a" * 254,
        "/status/UPPER/run",
        "/logs/ns.with.dots/run",
        "/status/ok?wait=-1",
        "/status/ok?bogus=1",
        "/logs/ok?format=xml",
        "/logs/ok?heartbeat=abc",
    ],
)
def test_bad_input_is_400_json(listener: Listener, path: str) -> None:
    status, headers, raw = listener.get(path)
    assert status == 400 and headers["content-type"] == "application/json"
    body = json.loads(raw)
    assert body["status"] == 400 and body["error"]


def test_unknown_paths_and_methods(listener: Listener) -> None:
    assert listener.get("/status")[0] == 404
    assert listener.get("/logs/a/b/c")[0] == 404
    assert listener.get("/nowhere")[0] == 404
    conn = listener.connect()
    conn.request("POST", "/status/x", body=b"{}", headers={"Authorization": basic()})
    resp = conn.getresponse()
    assert resp.status == 405 and json.loads(resp.read())["status"] == 405


def test_health_and_probes_need_no_auth(listener: Listener) -> None:
    status, body = listener.get_json("/health", auth=None)
    assert status == 200 and body["status"] == "ok"
    assert listener.get_json("/health/liveness", auth=None)[0] == 200
    status, body = listener.get_json("/health/readiness", auth=None)
    assert status == 200 and body == {"status": "ready"}  # no details for anonymous callers
    status, body = listener.get_json("/health/readiness")
    assert body["kubernetes"] == "ok"


@pytest.mark.parametrize(
    "auth",
    [None, basic(USER, "wrong"), basic("nobody", PASSWORD), "Bearer abc", "Basic !!!notbase64", "Basic " + "A" * 10],
)
@pytest.mark.parametrize("path", ["/status/x", "/logs/x"])
def test_auth_is_required(listener: Listener, auth: str | None, path: str) -> None:
    status, headers, raw = listener.get(path, auth=auth)
    assert status == 401
    assert headers["www-authenticate"].startswith("Basic realm=")
    assert PASSWORD not in raw.decode() and json.loads(raw)["status"] == 401


def test_no_configured_credentials_refuse_everything(cluster: Cluster) -> None:
    with Listener(cluster, AUTH_USERNAME="", AUTH_PASSWORD="") as bare:
        status, body = bare.get_json("/status/x", auth=basic("", ""))
        assert status == 503 and "not configured" in body["error"]
        assert bare.get_json("/health", auth=None)[0] == 200
    assert "authentication is not configured" in bare.log_path.read_text()


def test_rbac_denial_is_a_clear_403(listener: Listener, cluster: Cluster, namespace: str) -> None:
    # The listener's Role is bound only in tekton-pipelines; the caller may read every namespace.
    # 403, as for a namespace the caller may not read (issue 15): the namespace is not served here.
    for path in (f"/status/{namespace}/some-run", f"/logs/{namespace}/some-run?wait=0"):
        status, body = listener.get_json(path)
        assert status == 403 and "RBAC" in body["error"] and body["status"] == 403


def test_unreachable_api_is_503(cluster: Cluster, tmp_path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    cluster.write_kubeconfig(kubeconfig, cluster.listener)
    from tests.sandbox.cluster import free_port

    kubeconfig.write_text(kubeconfig.read_text().replace(cluster.server, f"https://127.0.0.1:{free_port()}"))
    with Listener(cluster, KUBECONFIG=str(kubeconfig)) as broken:
        status, body = broken.get_json("/status/x")
        assert status == 503 and "unreachable" in body["error"]
        assert broken.get_json("/health/readiness", auth=None) == (503, {"status": "not ready"})


@pytest.mark.parametrize("name", ["health", "logs", "status"])
def test_each_function_serves_alone_with_functions_framework(cluster: Cluster, sim: Simulator, name: str) -> None:
    """The contract: `functions-framework --source functions/<name>/main.py --target <name>`."""
    from tests.support import grant_listener

    grant_listener(cluster, NS)
    command = [sys.executable, "-m", "functions_framework", "--source", f"functions/{name}/main.py", "--target", name]
    run = sim.play(SCENARIOS["success"](), NS).wait(60)
    with Listener(cluster, command) as alone:
        assert alone.get_json("/health/readiness", auth=None)[0] == 200
        if name == "health":
            assert alone.get_json("/health", auth=None)[0] == 200
        elif name == "status":
            assert alone.get_json(f"/status/{run.name}")[0] == 200
        else:
            status, _, body = alone.get(f"/logs/{run.name}")
            assert status == 200 and f"PipelineRun {run.name} Succeeded".encode() in body


def test_health_without_credentials_serves_probes_and_logs_no_error(cluster: Cluster) -> None:
    """health's pods get no credentials (service.yaml): that is not a misconfiguration to log."""
    source = "functions/health/main.py"
    command = [sys.executable, "-m", "functions_framework", "--source", source, "--target", "health"]
    with Listener(cluster, command, AUTH_USERNAME="", AUTH_PASSWORD="") as health:
        for path in ("/health", "/health/liveness", "/health/readiness"):
            assert health.get_json(path, auth=None)[0] == 200
    assert "authentication is not configured" not in health.log_path.read_text()


def test_missing_kubeconfig_is_503_not_500(cluster: Cluster, tmp_path) -> None:
    with Listener(cluster, KUBECONFIG=str(tmp_path / "absent")) as broken:
        status, body = broken.get_json("/status/x")
        assert status == 503 and "cannot configure its Kubernetes client" in body["error"]
        assert broken.get_json("/health/liveness", auth=None)[0] == 200


def test_a_waiting_status_request_holds_a_stream_slot(cluster: Cluster, sim: Simulator) -> None:
    grant_listener(cluster, NS)
    name = f"awaited-status-{threading.get_ident() % 100000}"
    with Listener(cluster, LOGS_MAX_STREAMS_PER_PRINCIPAL="1") as capped, ThreadPoolExecutor(1) as pool:
        waiting = holding_the_slot(capped, pool, f"/status/{name}?wait=60")
        assert capped.get(f"/status/{name}")[0] == 404  # a status that does not wait needs no slot
        status, headers, _ = capped.get(f"/status/{name}?wait=5")
        assert status == 429 and headers["retry-after"]
        run = sim.play(SCENARIOS["success"](), NS, name)
        run.wait(120)
        status, _, body = waiting.result(timeout=120)
        assert status == 200 and json.loads(body)["outcome"] == "succeeded"
        assert capped.get(f"/status/{name}?wait=5")[0] == 200  # the slot was freed with the answer
