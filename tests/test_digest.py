"""The failure digest: at the end of a failed run's stream (text, NDJSON) and in /status, with the
last (masked) lines of each failed step, read over HTTP from the sandbox."""

from __future__ import annotations

import json

from tests.sandbox.cluster import Cluster
from tests.sandbox.scenarios import SCENARIOS
from tests.sandbox.simulator import Simulator
from tests.support import Listener, grant_listener, grant_secret_reads, put_secret, secret_scenario, strip_heartbeats

NS = "tekton-pipelines"


def test_status_of_a_failed_run_carries_the_digest_with_last_lines(listener: Listener, sim: Simulator) -> None:
    run = sim.play(SCENARIOS["failure"](lines=30), NS).wait(60)
    status, body = listener.get_json(f"/status/{run.name}")
    assert status == 422
    digest = body["digest"]
    assert digest["outcome"] == "failed" and digest["reason"] == body["reason"]
    (task,) = digest["failedTasks"]
    assert task["task"] == "compile" and task["outcome"] == "failed" and task["durationSeconds"] >= 0
    (step,) = task["steps"]  # `package`, skipped after `build` failed, is not a failure of its own
    assert step["step"] == "build" and step["exitCode"] == 2
    assert [line.encode() for line in step["lastLines"]] == run.expected_lines("compile", "build")[-20:]
    assert [s["task"] for s in digest["skippedTasks"]] == ["publish"]
    assert digest["skippedTasks"][0]["reason"]
    # Without the tasks option, `tasks` stays as it was: names only.
    assert "outcome" not in body["tasks"][0]

    _, fewer = listener.get_json(f"/status/{run.name}?digest_lines=3")
    assert len(fewer["digest"]["failedTasks"][0]["steps"][0]["lastLines"]) == 3
    _, none = listener.get_json(f"/status/{run.name}?digest_lines=0")
    assert "lastLines" not in none["digest"]["failedTasks"][0]["steps"][0]


def test_succeeded_run_has_no_digest(listener: Listener, sim: Simulator) -> None:
    run = sim.play(SCENARIOS["success"](lines=2), NS).wait(60)
    status, body = listener.get_json(f"/status/{run.name}?tasks=true")
    assert status == 200 and "digest" not in body
    _, _, text = listener.get(f"/logs/{run.name}?digest=true")
    assert b"Failure digest" not in text


def test_stream_ends_with_the_digest_before_the_final_line(listener: Listener, sim: Simulator) -> None:
    run = sim.play(SCENARIOS["retries"](), NS).wait(60)
    _, _, body = listener.get(f"/logs/{run.name}?digest=true&digest_lines=2")
    lines = strip_heartbeats(body).rstrip(b"\n").split(b"\n")
    assert lines[-1].startswith(f"PipelineRun {run.name} Failed".encode())
    start = next(i for i, line in enumerate(lines) if line.startswith(b"Failure digest: PipelineRun"))
    digest = b"\n".join(lines[start:-1]).decode()
    assert "FAILED task compile" in digest and "1 retries" in digest and "step build: exit code 2" in digest
    # The last attempt's lines: the digest is about the attempt that decided the outcome.
    assert digest.count("      | ") == 2 and "      | build line 3/3" in digest

    _, _, ndjson = listener.get(f"/logs/{run.name}?format=ndjson")
    end = json.loads(ndjson.rstrip(b"\n").split(b"\n")[-1])
    step = end["status"]["digest"]["failedTasks"][0]["steps"][0]
    assert end["event"] == "end" and step["lastLines"] == ["build line 1/3", "build line 2/3", "build line 3/3"]


def test_digest_lines_are_masked(cluster: Cluster, sim: Simulator, namespace: str) -> None:
    grant_listener(cluster, namespace)
    grant_secret_reads(cluster, namespace)
    put_secret(cluster, namespace, "deploy-token", {"token": b"glpat-Qq1Ww2Ee3Rr4"})
    scenario = secret_scenario([b"pushing with glpat-Qq1Ww2Ee3Rr4", b"denied"], exit_code=1, name="masked-failure")
    run = sim.play(scenario, namespace).wait(60)
    with Listener(cluster) as masking:
        status, body = masking.get_json(f"/status/{namespace}/{run.name}")
        assert status == 422
        assert body["digest"]["failedTasks"][0]["steps"][0]["lastLines"] == ["pushing with ***", "denied"]
        _, _, text = masking.get(f"/logs/{namespace}/{run.name}?format=gitlab")
        assert b"      | pushing with ***\n" in text and b"glpat-Qq1Ww2Ee3Rr4" not in text
