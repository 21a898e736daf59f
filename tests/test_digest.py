"""The failure digest: at the end of a failed run's stream (text, NDJSON) and in /status, with the
last (masked) lines of each failed step, read over HTTP from the sandbox."""

from __future__ import annotations

import json

from tests.sandbox.cluster import Cluster
from tests.sandbox.scenarios import SCENARIOS
from tests.sandbox.simulator import Simulator
from tests.support import (
    Listener,
    grant_listener,
    grant_secret_reads,
    put_secret,
    secret_scenario,
    task_lines,
    text_lines,
)
from tests.test_sse import sse_events

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
    for query in ("", "?digest=true", "?format=gitlab", "?format=github"):
        _, _, text = listener.get(f"/logs/{run.name}{query}")
        assert b"Failure digest" not in text, query
        assert text_lines(text)[-1].startswith(f"PipelineRun {run.name} Succeeded".encode()), query
    _, _, ndjson = listener.get(f"/logs/{run.name}?format=ndjson")
    end = end_event(ndjson)
    assert end["event"] == "end" and "digest" not in end["status"]


def end_event(body: bytes) -> dict:
    """The last object of an NDJSON body: the `end` event of a stream that reached the end."""
    return json.loads(body.rstrip(b"\n").split(b"\n")[-1])


def digest_block(lines: list[bytes], name: str) -> list[str]:
    """The digest of a text stream: from its header to just before the final status line."""
    start = next(i for i, line in enumerate(lines) if line.startswith(f"Failure digest: PipelineRun {name} ".encode()))
    return [line.decode() for line in lines[start:-1]]


def test_default_text_stream_of_a_failed_run_ends_with_the_digest_then_the_status_line(
    listener: Listener, sim: Simulator
) -> None:
    run = sim.play(SCENARIOS["failure"](lines=30), NS).wait(60)
    _, status = listener.get_json(f"/status/{run.name}")
    _, _, body = listener.get(f"/logs/{run.name}")
    lines = text_lines(body)
    assert lines[-1] == f"PipelineRun {run.name} {status['reason']}: {status['message']}".encode()
    digest = digest_block(lines, run.name)
    # Nothing but the status line after it; no digest line reads as a step's `[task : step]` line.
    assert all(line.startswith("  ") for line in digest[1:]) and not any(line.startswith("[") for line in digest)
    assert digest[0].startswith(f"Failure digest: PipelineRun {run.name} failed after ")
    assert digest[1] == f"  {status['reason']}: {status['message']}"
    assert digest[2].startswith("  FAILED task compile after ") and '"step-build" exited with code 2' in digest[2]
    assert digest[3].startswith("    step build: exit code 2 (Error) after ")
    tail = run.expected_lines("compile", "build")[-20:]
    assert digest[4:25] == ["      last 20 lines:"] + [f"      | {line.decode()}" for line in tail]
    assert digest[25:] == [f"  SKIPPED task publish: {status['digest']['skippedTasks'][0]['reason']}"]
    # The log itself is untouched: every step line once, before the digest.
    assert task_lines(b"\n".join(lines[: -len(digest) - 1])) == {k: v for k, v in run.expected().items() if v}

    _, _, off = listener.get(f"/logs/{run.name}?digest=false")
    assert text_lines(off) == lines[: -len(digest) - 1] + lines[-1:]
    _, _, fewer = listener.get(f"/logs/{run.name}?digest_lines=0")
    assert digest_block(text_lines(fewer), run.name) == digest[:4] + digest[25:]


def test_a_resumed_stream_that_reaches_a_failed_end_also_ends_with_the_digest(
    listener: Listener, sim: Simulator
) -> None:
    """What the client prints is what a person reads: a stream resumed after the last log line
    still ends with the digest, before the status line."""
    run = sim.play(SCENARIOS["failure"](lines=5), NS).wait(60)
    _, _, first = listener.get(f"/logs/{run.name}?cursors=true&digest=false")
    stable, cursor = "", ""
    for line in text_lines(first):
        token, _, text = line.decode().partition(" ")
        stable = stable if token.startswith(".") else token.split(".")[0]
        # The last step line, whichever it is: finished tasks are replayed in no fixed order.
        if text.startswith("[") and " : " in text.partition("] ")[0]:
            cursor = stable + token if token.startswith(".") else token
    assert cursor, first
    _, _, rest = listener.get(f"/logs/{run.name}?resume={cursor}")
    lines = text_lines(rest)
    assert lines[-1].startswith(f"PipelineRun {run.name} Failed".encode())
    digest = digest_block(lines, run.name)
    assert not task_lines(rest) and any(line.startswith("  FAILED task compile") for line in digest)
    # This stream saw none of the failed step's lines: the digest reads them from the kubelet.
    tail = [f"      | {line.decode()}" for line in run.expected_lines("compile", "build")]
    assert digest[digest.index("      last 5 lines:") + 1 :][:5] == tail


def test_stream_ends_with_the_digest_before_the_final_line(listener: Listener, sim: Simulator) -> None:
    run = sim.play(SCENARIOS["retries"](), NS).wait(60)
    _, _, body = listener.get(f"/logs/{run.name}?digest=true&digest_lines=2")
    lines = text_lines(body)
    assert lines[-1].startswith(f"PipelineRun {run.name} Failed".encode())
    digest = "\n".join(digest_block(lines, run.name))
    assert "FAILED task compile" in digest and "1 retries" in digest and "step build: exit code 2" in digest
    # The last attempt's lines: the digest is about the attempt that decided the outcome.
    assert digest.count("      | ") == 2 and "      | build line 3/3" in digest

    _, _, ndjson = listener.get(f"/logs/{run.name}?format=ndjson")
    end = end_event(ndjson)
    step = end["status"]["digest"]["failedTasks"][0]["steps"][0]
    assert end["event"] == "end" and step["lastLines"] == ["build line 1/3", "build line 2/3", "build line 3/3"]


def test_ndjson_and_sse_carry_the_digest_in_their_end_event(listener: Listener, sim: Simulator) -> None:
    """Formats with structured events carry the digest as data, not as text lines: the `end`
    event's status, the same digest `/status` has, its last lines taken from the stream."""
    run = sim.play(SCENARIOS["failure"](lines=4), NS).wait(60)
    _, status = listener.get_json(f"/status/{run.name}")
    tail = [line.decode() for line in run.expected_lines("compile", "build")]
    for query, last in (("format=ndjson", tail), ("format=ndjson&digest_lines=2", tail[-2:]), ("format=sse", tail)):
        _, _, body = listener.get(f"/logs/{run.name}?{query}")
        if "sse" in query:
            events = sse_events(body)
            assert events[-1]["event"] == "end"
            end = json.loads(events[-1]["data"])
        else:
            end = end_event(body)
        assert end["event"] == "end" and b"Failure digest" not in body, query
        digest = end["status"]["digest"]
        assert digest["failedTasks"][0]["steps"][0]["lastLines"] == last, query
        assert digest == {**status["digest"], "failedTasks": digest["failedTasks"]}, query
    # digest=false: the end event is still the status body, without the steps' last lines.
    _, _, off = listener.get(f"/logs/{run.name}?format=ndjson&digest=false")
    step = end_event(off)["status"]["digest"]["failedTasks"][0]["steps"][0]
    assert step["step"] == "build" and "lastLines" not in step


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
