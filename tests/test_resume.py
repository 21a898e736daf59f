"""Resuming a log stream across cuts: tokens (pure), then the service ending streams early
(deadline, SIGTERM) and clients continuing exactly after the last line they received."""

from __future__ import annotations

import base64
import http.client
import json
import random
import signal
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import quote

import pytest

from shared.logs.cursor import Cursor
from shared.logs.events import AttemptDone, Notice, RunFinished, StreamEnded
from shared.logs.tokens import Binding, TokenError, decode
from shared.logs.tracker import Tracker
from shared.logs.writers import INTERRUPTED, RESUME_MARK, NdjsonWriter, TextWriter
from tests.sandbox.cluster import LISTENER_NAMESPACE, Cluster
from tests.sandbox.scenarios import SCENARIOS, Scenario, numbered
from tests.sandbox.simulator import PlayedRun, Simulator
from tests.support import Listener, grant_listener, log_line, strip_heartbeats

NS = LISTENER_NAMESPACE
STAMP = "2026-03-01T10:00:0{}.{:09d}Z"


# -- tokens ------------------------------------------------------------------------------------
def binding(uid: str = "uid-1") -> Binding:
    return Binding.of(uid, frozenset({"build"}), frozenset())


def test_token_round_trip_names_exactly_what_was_written() -> None:
    tracker = Tracker(binding())
    tracker.line("run-a-pod", 0, STAMP.format(1, 5))
    tracker.line("run-a-pod", 0, STAMP.format(1, 5))
    tracker.attempt_done("run-a-pod")
    tracker.notice("skipped/deploy")
    tracker.line("run-b-pod", 2, STAMP.format(2, 0))
    point = decode(tracker.token(), binding())
    assert point.attempt_done("run-a-pod") and not point.attempt_done("run-b-pod")
    assert point.notice_sent("skipped/deploy") and not point.notice_sent("skipped/other")
    assert point.position("run-a-pod") is None
    second = 1_772_359_202 * 10**9
    assert point.position("run-b-pod") == (2, Cursor(second, 1))
    # A resumed stream starts from the decoded point and keeps counting from there.
    again = Tracker(binding(), point)
    again.line("run-b-pod", 2, STAMP.format(2, 0))
    assert decode(again.token(), binding()).position("run-b-pod") == (2, Cursor(second, 2))


def test_tokens_are_compact() -> None:
    tracker = Tracker(binding())
    assert len(tracker.token()) < 30
    tracker.line("a-very-long-pipelinerun-name-with-a-task-pod", 3, STAMP.format(1, 123456789))
    assert len(tracker.token()) < 50
    for i in range(20):
        tracker.attempt_done(f"pod-{i}")
    # ~5.5 characters per finished attempt or sent notice.
    assert len(tracker.token()) < 50 + 20 * 6


def test_text_cursor_prefix_repeats_the_stable_part_only_when_it_changes() -> None:
    tracker = Tracker(binding())
    tracker.line("p", 0, STAMP.format(1, 1))
    first = tracker.line_prefix()
    tracker.line("p", 0, STAMP.format(1, 2))
    second = tracker.line_prefix()
    assert "." in first and not first.startswith(".") and second.startswith(".")
    assert first.split(".")[0] + second == tracker.token()
    tracker.notice("x")
    assert not tracker.line_prefix().startswith(".")


@pytest.mark.parametrize(
    "token",
    [
        "",
        ".",
        "abc",
        "!!!.???",
        "AAAA.AAAA",
        "x" * 9000,
        "AQ.",
        base64.urlsafe_b64encode(b"\x01" * 40).decode().rstrip("=") + ".",
    ],
)
def test_malformed_tokens_are_refused_with_400(token: str) -> None:
    with pytest.raises(TokenError) as err:
        decode(token, binding())
    assert err.value.status == 400


def test_mutated_tokens_never_crash_and_never_decode_silently_wrong() -> None:
    tracker = Tracker(binding())
    tracker.line("pod", 1, STAMP.format(1, 1))
    tracker.attempt_done("other")
    good = tracker.token()
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."
    rng = random.Random(6)
    for _ in range(3000):
        chars = list(good)
        for _ in range(rng.randint(1, 3)):
            chars[rng.randrange(len(chars))] = rng.choice(alphabet)
        mutated = "".join(chars)
        if mutated == good:
            continue
        try:
            decode(mutated, binding())
        except TokenError as err:
            assert err.status in (400, 409)
        else:
            # Only a change the checksums cannot see (base64 padding bits) may decode, to the same point.
            assert decode(mutated, binding()) == decode(good, binding())


def test_token_of_another_run_or_filter_is_refused() -> None:
    token = Tracker(binding("uid-1")).token()
    with pytest.raises(TokenError) as err:
        decode(token, binding("uid-2"), "ns/run")
    assert err.value.status == 409 and "deleted and created again" in err.value.message
    with pytest.raises(TokenError) as err:
        decode(token, Binding.of("uid-1", frozenset(), frozenset()))
    assert err.value.status == 400 and "filters" in err.value.message


def test_per_line_cursors_reuse_the_encoded_stable_state(monkeypatch: pytest.MonkeyPatch) -> None:
    """NDJSON puts a cursor on every line: the token is rebuilt from a cached stable part and a
    few packed bytes, not a JSON+zlib of the whole state. Its cost is the bench's (throughput,
    ndjson); here: the whole state is encoded once for all the lines, and again only when it changed."""
    import shared.logs.tracker as tracker_module

    calls = []
    real = tracker_module.encode_stable
    monkeypatch.setattr(tracker_module, "encode_stable", lambda *a: calls.append(1) or real(*a))
    tracker = Tracker(binding())
    for i in range(30):
        tracker.attempt_done(f"done-{i}")
    writer = NdjsonWriter(tracker=tracker)
    n = 5_000
    out = b"".join(
        writer.write(log_line("build", "compile", b"line %d" % i, STAMP.format(1 + i // 2000, i), 0, "pod-x", 1))
        for i in range(n)
    )
    cursors = {json.loads(row)["cursor"] for row in out.splitlines()}
    assert len(cursors) == n  # a distinct cursor on every line
    assert len(calls) == 1
    tracker.attempt_done("pod-x")  # the state changed: encoded once more
    writer.write(log_line("deploy", "push", b"next", STAMP.format(3, 0), 0, "pod-y", 1))
    assert len(calls) == 2


def test_writers_end_a_cut_stream_with_a_findable_token() -> None:
    tracker = Tracker(binding())
    writer = TextWriter(tracker=tracker)
    writer.write(log_line("t", "s", b"hello", STAMP.format(1, 1), 0, "pod", 0))
    writer.write(AttemptDone("pod"))
    writer.write(Notice("t", "task failed", key="failed/t"))
    last = writer.write(StreamEnded("deadline", "stream time limit reached")).decode()
    assert last.startswith(INTERRUPTED) and last.endswith("\n")
    token = last.rstrip("\n").rsplit(RESUME_MARK, 1)[1]
    point = decode(token, binding())
    assert point.attempt_done("pod") and point.notice_sent("failed/t")
    ndjson = json.loads(NdjsonWriter(tracker=tracker).write(RunFinished({"reason": "Succeeded"})))
    assert ndjson["cursor"] == token


# -- clients that follow across cuts -----------------------------------------------------------
@dataclass
class Received:
    lines: dict[tuple[str, str], list[bytes]] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)
    streams: int = 0
    interrupted: list[str] = field(default_factory=list)
    end: str | None = None
    digest: list[str] = field(default_factory=list)  # text: a failed run's failure digest, line by line

    def add(self, task: str, step: str, line: bytes) -> None:
        self.lines.setdefault((task, step), []).append(line)


def _with(path: str, **params: str) -> str:
    sep = "&" if "?" in path else "?"
    return path + sep + "&".join(f"{k}={quote(v)}" for k, v in params.items())


def _response_lines(listener: Listener, path: str, timeout: float) -> Iterator[bytes]:
    """Complete lines of one streaming response; stops quietly at a cut (partial line dropped)."""
    with listener.opened(path, timeout) as resp:
        while True:
            try:
                line = resp.readline()
            except (http.client.HTTPException, OSError):
                return
            if not line.endswith(b"\n"):
                return
            yield line


def follow_ndjson(
    listener: Listener, run: str, query: str = "", max_streams: int = 60, timeout: float = 60
) -> Received:
    got, token = Received(), None
    while got.end is None:
        assert got.streams < max_streams, f"no end after {got.streams} streams"
        got.streams += 1
        path = _with(f"/logs/{run}?wait=30&format=ndjson{query}", **({"resume": token} if token else {}))
        for raw in _response_lines(listener, path, timeout):
            event = json.loads(raw)
            token = event.get("cursor", token)
            if event["event"] == "log":
                got.add(event["task"], event["step"], event["line"].encode())
            elif event["event"] == "notice":
                got.notices.append(f"[{event['task']}] {event['message']}")
            elif event["event"] == "interrupted":
                got.interrupted.append(event["reason"])
            elif event["event"] == "end":
                got.end = event["status"]["reason"]
    return got


def _text_line(got: Received, line: bytes) -> None:
    if line.startswith(b"PipelineRun "):
        got.end = line.decode(errors="replace")
        return
    # The failure digest: its header, then indented lines (only after a header: the grammar stays strict).
    if line.startswith(b"Failure digest: PipelineRun ") or (got.digest and line.startswith(b"  ")):
        got.digest.append(line.decode(errors="replace"))
        return
    head, sep, rest = line.partition(b"] ")
    if not line.startswith(b"[") or not sep:
        raise AssertionError(f"unexpected line {line[:200]!r}")
    if b" : " in head:
        task, _, step = head[1:].partition(b" : ")
        got.add(task.decode(), step.decode(), rest)
    else:
        got.notices.append(line.decode(errors="replace"))


def follow_text(listener: Listener, run: str, query: str = "", max_streams: int = 60, timeout: float = 60) -> Received:
    """Plain text; after a clean cut, the token from the `[stream interrupted]` line."""
    got, token = Received(), None
    while got.end is None:
        assert got.streams < max_streams, f"no end after {got.streams} streams"
        got.streams += 1
        path = _with(f"/logs/{run}?wait=30{query}", **({"resume": token} if token else {}))
        token = None
        for raw in _response_lines(listener, path, timeout):
            line = strip_heartbeats(raw).rstrip(b"\n")
            if line.startswith(INTERRUPTED.encode()):
                got.interrupted.append(line.decode())
                token = line.decode().rsplit(RESUME_MARK, 1)[1]
            else:
                _text_line(got, line)
        assert got.end is not None or token is not None, "a text stream ended without its last line"
    return got


def follow_cursors(
    listener: Listener, run: str, query: str = "", max_streams: int = 60, timeout: float = 60
) -> Received:
    """`cursors=true` text, as ci/tekton-logs.sh reads it: resumes after abrupt cuts too."""
    got, token = Received(), ""
    stable = ""
    while got.end is None:
        assert got.streams < max_streams, f"no end after {got.streams} streams"
        got.streams += 1
        path = _with(f"/logs/{run}?wait=30&cursors=true{query}", **({"resume": token} if token else {}))
        for raw in _response_lines(listener, path, timeout):
            line = strip_heartbeats(raw).rstrip(b"\n")
            if not line:
                continue
            cursor, _, text = line.decode("utf-8", "surrogateescape").partition(" ")
            if cursor.startswith("."):
                cursor = stable + cursor
            else:
                stable = cursor.split(".")[0]
            token = cursor
            data = text.encode("utf-8", "surrogateescape")
            if data.startswith(INTERRUPTED.encode()):
                got.interrupted.append(text)
            else:
                _text_line(got, data)
    return got


def assert_exactly_once(run: PlayedRun, got: Received) -> None:
    expected = {k: v for k, v in run.expected().items() if v}
    assert expected, "the scenario wrote nothing"
    for key, lines in expected.items():
        have = got.lines.get(key, [])
        assert have == lines, (key, len(have), len(lines), _first_difference(have, lines))
    assert set(got.lines) <= set(expected)
    assert len(got.notices) == len(set(got.notices)), got.notices


def _first_difference(have: list[bytes], want: list[bytes]) -> object:
    for i, (a, b) in enumerate(zip(have, want, strict=False)):
        if a != b:
            return i, a[:80], b[:80]
    return min(len(have), len(want))


# -- the service cutting streams (the `cutting` fixture, tests/conftest.py) -------------------
def long_run(lines: int = 40, interval: float = 0.1) -> Scenario:
    """`success` stretched over ~15 s: parallel tasks, several steps, lines every `interval`."""
    scenario = SCENARIOS["success"](lines=lines, interval=interval)
    scenario.tasks[1].steps[1].lines = numbered("test", lines * 3)  # a burst between paced steps
    return scenario


def test_deadline_cuts_every_few_seconds_lose_and_repeat_nothing(cutting: Listener, sim: Simulator) -> None:
    run = sim.play(long_run(), NS)
    clients = {"ndjson": follow_ndjson, "text": follow_text, "cursors": follow_cursors}
    with ThreadPoolExecutor(len(clients)) as pool:
        futures = {mode: pool.submit(follow, cutting, run.name) for mode, follow in clients.items()}
        results = {mode: future.result(timeout=120) for mode, future in futures.items()}
    run.wait(60)
    for mode, got in results.items():
        print(f"\n{mode}: {got.streams} streams, {sum(map(len, got.lines.values()))} lines")
        assert got.streams >= 4, (mode, got.streams)
        assert got.end is not None and "Succeeded" in got.end, mode
        assert_exactly_once(run, got)


def test_notices_are_not_repeated_across_cuts(cutting: Listener, sim: Simulator) -> None:
    run = sim.play(SCENARIOS["retries"](lines=15, interval=0.1), NS)
    got = follow_text(cutting, run.name)
    run.wait(60)
    assert got.streams >= 2
    assert_exactly_once(run, got)
    assert sum("attempt 1 failed" in n for n in got.notices) == 1, got.notices
    assert sum("task failed" in n for n in got.notices) == 1, got.notices
    # The stream that reaches the end carries the digest once, about the last attempt.
    assert got.digest[0].startswith(f"Failure digest: PipelineRun {run.name} failed"), got.digest
    assert sum(line.startswith("Failure digest") for line in got.digest) == 1, got.digest
    digest = "\n".join(got.digest)
    assert "FAILED task compile" in digest and "1 retries" in digest and "      | build line 15/15" in digest


def test_finished_attempts_are_skipped_on_resume(listener: Listener, sim: Simulator) -> None:
    """A token taken after the first task: the next stream starts with the second task's lines."""
    run = sim.play(SCENARIOS["failure"](), NS).wait(60)
    events = [json.loads(line) for line in listener.get(f"/logs/{run.name}?format=ndjson")[2].splitlines()]
    cut = max(i for i, e in enumerate(events) if e["event"] == "log" and e["step"] == "build")
    _, _, body = listener.get(f"/logs/{run.name}?format=ndjson&resume={events[cut]['cursor']}")
    rest = [json.loads(line) for line in body.splitlines()]
    assert rest[0] == {"event": "start", "namespace": NS, "name": run.name, "resumed": True}
    assert rest[-1]["event"] == "end"

    def shown(items: list[dict]) -> list[dict]:
        return [{k: v for k, v in e.items() if k != "cursor"} for e in items if e["event"] in ("log", "notice")]

    assert shown(events[: cut + 1]) + shown(rest) == shown(events)


def test_sigterm_mid_stream_a_new_process_takes_over(cluster: Cluster, sim: Simulator) -> None:
    grant_listener(cluster, NS)
    hold = threading.Event()
    scenario = long_run(lines=10, interval=0.02)
    scenario.tasks[1].steps[0].hold = hold  # unit/install writes its lines, then stays silent
    old, new = Listener(cluster), Listener(cluster)
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda listener: listener.start(), (old, new)))
    try:
        run = sim.play(scenario, NS)
        got, token = Received(), None
        want_install = len(scenario.tasks[1].steps[0].lines)  # type: ignore[arg-type]
        for raw in _response_lines(old, f"/logs/{run.name}?wait=30&format=ndjson", 60):
            event = json.loads(raw)
            token = event.get("cursor", token)
            if event["event"] == "log":
                got.add(event["task"], event["step"], event["line"].encode())
                if len(got.lines.get(("unit", "install"), [])) == want_install and old.proc:
                    old.proc.send_signal(signal.SIGTERM)  # mid-run, mid-task, at a quiet moment
            elif event["event"] == "interrupted":
                got.interrupted.append(event["reason"])
        assert got.interrupted == ["shutdown"], got.interrupted
        assert old.proc is not None and old.proc.wait(30) == 0
        hold.set()
        # The new process knows nothing of the old one: everything it needs is in the token.
        for raw in _response_lines(new, f"/logs/{run.name}?format=ndjson&resume={token}", 60):
            event = json.loads(raw)
            if event["event"] == "log":
                got.add(event["task"], event["step"], event["line"].encode())
            elif event["event"] == "end":
                got.end = event["status"]["reason"]
        run.wait(60)
        assert got.end == "Succeeded"
        assert_exactly_once(run, got)
    finally:
        hold.set()
        old.stop()
        new.stop()


def test_resume_errors_are_clear_json(listener: Listener, sim: Simulator, cluster: Cluster) -> None:
    name = f"recreated-{uuid.uuid4().hex[:6]}"
    first = sim.play(SCENARIOS["when-skipped"](), NS, name).wait(60)
    events = [json.loads(line) for line in listener.get(f"/logs/{name}?format=ndjson")[2].splitlines()]
    token = next(e["cursor"] for e in events if e["event"] == "log")
    for path, status, words in [
        (f"/logs/{name}?resume=not-a-token", 400, "resume token"),
        (f"/logs/{name}?resume=%25%25", 400, "resume"),
        (f"/logs/{name}?resume={token[:-3]}", 400, "resume token"),
        (f"/logs/{name}?resume={token}&task=test", 400, "filters"),
    ]:
        code, headers, body = listener.get(path)
        assert code == status and headers["content-type"] == "application/json", (path, code, body)
        assert words in json.loads(body)["error"] and json.loads(body)["status"] == status
    code, _, body = listener.get(f"/logs/{name}", headers={"Last-Event-ID": "garbage!"})
    assert code == 400, body
    # The same name, a new run: the old token must not skip anything of it. (No garbage
    # collector here: the run's TaskRuns, pods and kubelet logs are removed by hand.)
    selector = f"labelSelector=tekton.dev/pipelineRun%3D{name}"
    for kind in ("tekton.dev/v1/namespaces/{ns}/taskruns", "tekton.dev/v1/namespaces/{ns}/pipelineruns"):
        cluster.api("DELETE", f"/apis/{kind.format(ns=NS)}?{selector}", ok=(200, 202))
    cluster.api("DELETE", f"/apis/tekton.dev/v1/namespaces/{NS}/pipelineruns/{name}", ok=(200, 202, 404))
    cluster.api("DELETE", f"/api/v1/namespaces/{NS}/pods?{selector}", ok=(200, 202))
    for task in ("test", "deploy"):
        for pod in first.pods(task):
            cluster.store.remove_pod(NS, pod)
    sim.play(SCENARIOS["when-skipped"](), NS, name).wait(60)
    code, headers, body = listener.get(f"/logs/{name}?resume={token}")
    assert code == 409 and headers["content-type"] == "application/json"
    assert "created again" in json.loads(body)["error"]
