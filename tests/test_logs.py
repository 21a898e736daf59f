"""/logs end to end: simulator -> real apiserver -> kubelet stand-in -> listener -> HTTP client."""

from __future__ import annotations

import json
import subprocess
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from shared.logs.controls import neutralised
from tests.sandbox.cluster import Cluster
from tests.sandbox.scenarios import SCENARIOS
from tests.sandbox.simulator import PlayedRun, Simulator
from tests.support import Listener, basic, chunks, grant_listener, holding_the_slot, strip_heartbeats, task_lines

NS = "tekton-pipelines"


def follow_while_playing(
    listener: Listener, sim: Simulator, scenario: str, query: str = "", **knobs: object
) -> tuple[PlayedRun, bytes]:
    """Starts following before the run exists, plays it, returns everything received."""
    pool = ThreadPoolExecutor(1)
    # Unique per call: thread ids and object ids repeat within a session that shares one cluster.
    run_name = f"{scenario}-{uuid.uuid4().hex[:10]}"
    future = pool.submit(lambda: b"".join(listener.stream(f"/logs/{run_name}?wait=30{query}", timeout=120)))
    run = sim.play(SCENARIOS[scenario](**knobs), NS, run_name)
    run.wait(120)
    body = future.result(timeout=120)
    pool.shutdown()
    return run, body


def assert_all_lines(run: PlayedRun, body: bytes, shown: Callable[[bytes], bytes] = bytes) -> None:
    """Every line the run wrote arrived once, in order (as text mode `shown` it)."""
    got = task_lines(body)
    expected = run.expected()
    assert expected, "the scenario wrote nothing"
    for key, lines in expected.items():
        assert got.get(key, []) == [shown(line) for line in lines], key
    assert set(got) <= set(expected)


@pytest.mark.parametrize("scenario", ["success", "failure", "retries", "when-skipped", "finally", "sidecar"])
def test_live_follow_delivers_every_line_once_in_order(listener: Listener, sim: Simulator, scenario: str) -> None:
    run, body = follow_while_playing(listener, sim, scenario)
    assert_all_lines(run, body)
    final = strip_heartbeats(body).rstrip(b"\n").split(b"\n")[-1]
    status = run.objects()[f"PipelineRun/{run.name}"]["status"]["conditions"][0]
    assert final.startswith(f"PipelineRun {run.name} {status['reason']}".encode())


@pytest.mark.parametrize("scenario", ["success", "failure", "retries", "finally"])
def test_finished_run_replays_stored_logs_task_after_task(listener: Listener, sim: Simulator, scenario: str) -> None:
    run = sim.play(SCENARIOS[scenario](), NS).wait(60)
    status, _, body = listener.get(f"/logs/{run.name}")
    assert status == 200
    assert_all_lines(run, body)
    # Finished attempts are replayed one after another: each (task, step) block is contiguous.
    order = [
        k
        for k in (
            tuple(line[1:].split(b"] ")[0].split(b" : "))
            for line in strip_heartbeats(body).split(b"\n")
            if line.startswith(b"[") and b" : " in line.split(b"] ")[0]
        )
    ]
    blocks = [k for i, k in enumerate(order) if i == 0 or order[i - 1] != k]
    assert len(blocks) == len(set(blocks)), blocks


def notices(body: bytes) -> list[str]:
    return [
        line.decode(errors="replace")
        for line in strip_heartbeats(body).split(b"\n")
        if line.startswith(b"[") and b" : " not in line.split(b"] ")[0]
    ]


def test_skipped_task_gets_one_line(listener: Listener, sim: Simulator) -> None:
    _, body = follow_while_playing(listener, sim, "when-skipped")
    skipped = [n for n in notices(body) if "task skipped" in n]
    assert len(skipped) == 1 and "When Expressions evaluated to false" in skipped[0]


def test_retry_attempts_are_announced_and_streamed(listener: Listener, sim: Simulator) -> None:
    run, body = follow_while_playing(listener, sim, "retries")
    assert any("attempt 1 failed" in n for n in notices(body))
    assert len(run.pods("compile")) == 2
    # Both attempts' lines, attempt 0 first, each exactly once.
    assert task_lines(body)[("compile", "build")] == run.expected_lines("compile", "build")
    assert len(run.expected_lines("compile", "build")) == 2 * 3


@pytest.mark.parametrize("scenario", ["timeout", "cancelled"])
def test_cancelled_and_timed_out_runs_end_and_say_so(listener: Listener, sim: Simulator, scenario: str) -> None:
    run, body = follow_while_playing(listener, sim, scenario)
    # Lines written before the pod was deleted were streamed live.
    for key, lines in run.expected().items():
        assert task_lines(body).get(key, []) == lines
    text = strip_heartbeats(body).decode(errors="replace")
    reason = "PipelineRunTimeout" if scenario == "timeout" else "Cancelled"
    assert f"PipelineRun {run.name} {reason}" in text
    assert any("was deleted while running" in n for n in notices(body)), notices(body)
    assert any("task failed: TaskRunCancelled" in n for n in notices(body)), notices(body)


def test_deleted_pod_is_reported_not_waited_for(listener: Listener, sim: Simulator) -> None:
    run = sim.play(SCENARIOS["pod-deleted"](), NS).wait(60)
    status, _, body = listener.get(f"/logs/{run.name}", timeout=30)
    assert status == 200
    deleted = [n for n in notices(body) if "was deleted" in n]
    assert deleted and all("no logs: pod" in n for n in deleted)


def test_image_pull_failure_is_reported(listener: Listener, sim: Simulator) -> None:
    _, body = follow_while_playing(listener, sim, "image-pull-failure")
    pull = [n for n in notices(body) if "cannot start" in n or "ImagePull" in n]
    assert pull, notices(body)


def test_late_run_is_waited_for(listener: Listener, sim: Simulator) -> None:
    run, body = follow_while_playing(listener, sim, "late", appear_after=1.0)
    assert_all_lines(run, body)


def test_missing_run_is_404_json_after_bounded_wait(listener: Listener) -> None:
    status, headers, body = listener.get("/logs/never-appears-x1?wait=1")
    assert status == 404 and headers["content-type"] == "application/json"
    assert "not found" in json.loads(body)["error"]


def test_large_output_arrives_byte_exact(listener: Listener, sim: Simulator) -> None:
    run, body = follow_while_playing(listener, sim, "large-output", size=3 * 1024 * 1024)
    # Byte exact, but for controls that would move the cursor: text mode shows those as text.
    assert_all_lines(run, body, shown=neutralised)
    lines = [line for lines in run.expected().values() for line in lines]
    assert any(b"\r" in line for line in lines) and b"carriage^Mreturn" in body
    assert any(len(line) > 16 * 1024 for line in lines)
    assert any(b"\xff" in line or b"\xfe" in line for line in lines) or any(not _utf8(line) for line in lines)


def _utf8(data: bytes) -> bool:
    try:
        data.decode()
        return True
    except UnicodeDecodeError:
        return False


def test_task_and_step_filters(listener: Listener, sim: Simulator) -> None:
    run = sim.play(SCENARIOS["success"](), NS).wait(60)
    task, step = next(iter(run.expected()))
    _, _, body = listener.get(f"/logs/{run.name}?task={task}&step={step}")
    assert set(task_lines(body)) == {(task, step)}
    assert task_lines(body)[(task, step)] == run.expected_lines(task, step)


def test_timestamps_option(listener: Listener, sim: Simulator) -> None:
    run = sim.play(SCENARIOS["success"](), NS).wait(60)
    _, _, body = listener.get(f"/logs/{run.name}?timestamps=true")
    for (task, step), lines in task_lines(body).items():
        for got, want in zip(lines, run.expected_lines(task, step), strict=True):
            stamp, _, text = got.partition(b" ")
            assert stamp.endswith(b"Z") and b"T" in stamp and text == want


def test_ndjson_mode(listener: Listener, sim: Simulator) -> None:
    run = sim.play(SCENARIOS["failure"](), NS).wait(60)
    status, headers, body = listener.get(f"/logs/{run.name}?format=ndjson")
    assert status == 200 and headers["content-type"] == "application/x-ndjson"
    events = [json.loads(line) for line in body.splitlines()]
    assert events[0] == {"event": "start", "namespace": NS, "name": run.name}
    assert events[-1]["event"] == "end" and events[-1]["status"]["outcome"] == "failed"
    got: dict[tuple[str, str], list[bytes]] = {}
    for event in events:
        if event["event"] == "log":
            assert event["timestamp"].endswith("Z")
            got.setdefault((event["task"], event["step"]), []).append(event["line"].encode())
    assert got == {k: v for k, v in run.expected().items() if v}


def test_first_byte_at_once_and_heartbeat_on_silence(listener: Listener, sim: Simulator) -> None:
    hold = threading.Event()
    scenario = SCENARIOS["success"]()
    scenario.tasks[0].steps[0].hold = hold
    run = sim.play(scenario, NS)
    stream = chunks(listener, f"/logs/{run.name}?wait=30&heartbeat=1", timeout=30)
    received = [next(stream)]
    assert received[0].startswith(b"\r")  # the first byte goes out before any log line
    # The first step writes its lines, then is held silent: heartbeats must keep coming.
    while received[-1].count(b"\r") < 2 and b"".join(received).count(b"\r") < 4:
        received.append(next(stream))
    silent_tail = b"".join(received).rsplit(b"\n", 1)[-1]
    assert silent_tail and set(silent_tail) == {ord("\r")}, silent_tail
    hold.set()
    body = b"".join(received) + b"".join(stream)
    run.wait(60)
    assert_all_lines(run, body)


def test_curl_follows_and_exits_zero(listener: Listener, sim: Simulator) -> None:
    run = sim.play(SCENARIOS["success"](), NS)
    out = subprocess.run(
        ["curl", "-sSfN", "-H", f"Authorization: {basic()}", f"{listener.url}/logs/{run.name}?wait=30"],
        capture_output=True,
        timeout=120,
    )
    run.wait(60)
    assert out.returncode == 0, out.stderr
    assert_all_lines(run, out.stdout)


def test_parallel_followers_get_identical_output(listener: Listener, sim: Simulator) -> None:
    run = sim.play(SCENARIOS["success"](lines=50), NS)
    with ThreadPoolExecutor(8) as pool:
        bodies = list(pool.map(lambda _: b"".join(listener.stream(f"/logs/{run.name}?wait=30&heartbeat=0")), range(8)))
    run.wait(60)
    for body in bodies:
        assert task_lines(body) == {k: v for k, v in run.expected().items() if v}


def test_concurrent_streams_per_user_are_capped(cluster: Cluster, sim: Simulator) -> None:
    hold = threading.Event()
    scenario = SCENARIOS["success"]()
    scenario.tasks[0].steps[0].hold = hold
    grant_listener(cluster, NS)
    run = sim.play(scenario, NS)
    with Listener(cluster, LOGS_MAX_STREAMS_PER_PRINCIPAL="1") as capped:
        try:
            with capped.opened(f"/logs/{run.name}?wait=30") as first:
                assert first.read1(1) == b"\r"
                status, headers, body = capped.get(f"/logs/{run.name}")
                assert status == 429 and headers["retry-after"]
                assert json.loads(body)["status"] == 429
            # The slot is freed when the client goes away: a new stream is admitted.
            hold.set()
            run.wait(60)
            status, _, body = capped.get(f"/logs/{run.name}")
            assert status == 200 and f"PipelineRun {run.name} Succeeded".encode() in body
        finally:
            hold.set()


def test_a_request_waiting_for_its_run_counts_against_the_stream_cap(cluster: Cluster, sim: Simulator) -> None:
    grant_listener(cluster, NS)
    name = f"awaited-{threading.get_ident() % 100000}"
    with Listener(cluster, LOGS_MAX_STREAMS_PER_PRINCIPAL="1") as capped, ThreadPoolExecutor(1) as pool:
        waiting = holding_the_slot(capped, pool, f"/logs/{name}?wait=60")
        run = sim.play(SCENARIOS["success"](), NS, name)
        run.wait(120)
        status, _, body = waiting.result(timeout=120)
        assert status == 200 and f"PipelineRun {name} Succeeded".encode() in body
        status, _, _ = capped.get("/logs/no-such-run?wait=0")
        assert status == 404  # the slot was freed with the stream


def test_ndjson_line_without_timestamp_whose_first_word_is_not_ascii(listener: Listener, sim: Simulator) -> None:
    """A broken upstream's line (no timestamp, its first word beyond ASCII and ending in `Z`) among
    a step's lines: NDJSON writes it with no timestamp and its whole text, and streams on to `end`."""
    run = sim.play(SCENARIOS["success"](lines=12, interval=0), NS).wait(60)
    log = sim.cluster.store.lookup(NS, run.pods("checkout")[0], "step-clone")
    assert log is not None
    raw = b"h\xc3\xa9Z world\n"
    cut = log.log.starts[4]  # before the fifth line, as a proxy between kubelet and listener may add it
    log.log.data[cut:cut] = raw
    for k in range(4, len(log.log.starts)):
        log.log.starts[k] += len(raw)
    status, _, body = listener.get(f"/logs/{run.name}?format=ndjson&task=checkout")
    assert status == 200
    events = [json.loads(line) for line in body.splitlines()]
    assert events[-1]["event"] == "end" and events[-1]["status"]["outcome"] == "succeeded"
    logs = [e for e in events if e["event"] == "log"]
    expected = [line.decode() for line in run.expected_lines("checkout", "clone")]
    assert [e["line"] for e in logs] == [*expected[:4], "h\u00e9Z world", *expected[4:]]
    assert [e["timestamp"] is None for e in logs] == [i == 4 for i in range(len(expected) + 1)]
