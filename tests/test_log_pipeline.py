"""The chunk-level log path: whatever the upstream's framing, whatever the pod's status says,
every line arrives once; secrets are masked across the pieces of a long line."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from types import SimpleNamespace

from shared.logs.attempt import AttemptReader
from shared.logs.cursor import Cursor, timestamp_ns
from shared.logs.events import LogLines
from shared.logs.lines import MAX_LINE, LineSplitter
from shared.logs.masking import SecretMasker
from shared.logs.tokens import Binding, decode
from shared.logs.tracker import Tracker
from shared.logs.writers import NdjsonWriter
from shared.runs.model import Attempt
from tests.sandbox.cluster import Cluster
from tests.sandbox.scenarios import SCENARIOS
from tests.sandbox.simulator import MERGE, PlayedRun, Simulator
from tests.support import ROOT, Listener, strip_heartbeats, task_lines
from tests.test_logs import NS, assert_all_lines, follow_while_playing


def test_one_chunk_per_line_and_lines_split_across_chunks(cluster: Cluster, listener: Listener, sim: Simulator) -> None:
    # A real kubelet flushes a follow after every line; here chunks also end in mid-line.
    cluster.kubelet.frame_follows(lines=1, split=9)
    try:
        run, body = follow_while_playing(listener, sim, "success", lines=30, interval=0.002)
    finally:
        cluster.kubelet.clear_faults()
    assert_all_lines(run, body)


def tasks_of(run: PlayedRun) -> list[str]:
    return sorted({task for task, _ in run.expected()})


def test_a_finished_container_is_read_without_follow_and_a_live_one_with_it(
    cluster: Cluster, listener: Listener, sim: Simulator
) -> None:
    """A terminated container is read the quickest way the API allows, as `kubectl logs` does:
    one request without `follow` (the kubelet sends big chunks, not one per line)."""
    run = sim.play(SCENARIOS["success"](lines=5, interval=0), NS).wait(60)
    status, _, body = listener.get(f"/logs/{run.name}")
    assert status == 200
    assert_all_lines(run, body)
    pods = [pod for task in tasks_of(run) for pod in run.pods(task)]
    queries = [query for pod in pods for _, query in cluster.kubelet.log_queries(pod)]
    assert queries and not any(query.follow for query in queries)

    live, followed = follow_while_playing(listener, sim, "success", lines=30, interval=0.02)
    assert_all_lines(live, followed)
    live_pods = [pod for task in tasks_of(live) for pod in live.pods(task)]
    assert any(query.follow for pod in live_pods for _, query in cluster.kubelet.log_queries(pod))


def test_a_pod_status_without_container_states_still_gives_the_lines(
    cluster: Cluster, listener: Listener, sim: Simulator
) -> None:
    run = sim.play(SCENARIOS["success"](lines=5, interval=0), NS).wait(60)
    for task in tasks_of(run):
        for pod in run.pods(task):
            path = f"/api/v1/namespaces/{NS}/pods/{pod}/status"
            patched = cluster.api("PATCH", path, {"status": {"containerStatuses": None}}, content_type=MERGE)
            assert not patched["status"].get("containerStatuses")
    status, _, body = listener.get(f"/logs/{run.name}")
    assert status == 200
    assert_all_lines(run, body)


def test_secrets_straddling_the_pieces_of_a_long_line_are_masked() -> None:
    secret = b"s3cr3t-" + b"k" * 20
    events: list[LogLines] = []
    attempt = Attempt("task", "taskrun", 0, "pod", "")
    reader = AttemptReader(
        None,  # type: ignore[arg-type] - the emitter never talks to Kubernetes
        SimpleNamespace(namespace=NS),  # type: ignore[arg-type]
        attempt,
        threading.Event(),
        events.append,  # type: ignore[arg-type]
        events.extend,  # type: ignore[arg-type]
        lambda step: True,
    )
    emit = reader._emitter("step", 0, SecretMasker([secret]))
    stamp = b"2026-01-01T00:00:05Z "
    for offset in (-10, -1, 0, 5):
        events.clear()
        # The secret lies across the point where the line is cut into its first piece.
        start = MAX_LINE + 1 - len(stamp) + offset
        line = b"a" * start + secret + b"b" * (MAX_LINE + 100)
        splitter = LineSplitter(Cursor())
        for i in range(0, len(stamp + line) + 1, 65536):
            for piece in splitter.feed((stamp + line + b"\n")[i : i + 65536]):
                emit(piece)
        text = b"".join(e.data.replace(b"\n", b"") for e in events)
        assert secret not in text and secret[:10] not in text and secret[-10:] not in text, offset
        assert text == stamp + b"a" * start + b"***" + b"b" * (MAX_LINE + 100), offset
        # A piece's cursor counts what went out, not what the masker still holds back.
        first = events[0]
        assert 0 < first.cursor.piece < len(first.data) - len(stamp) + len(secret)
        assert events[-1].cursor == Cursor(first.cursor.ns, 1)


def test_ndjson_objects_are_the_same_built_from_templates_or_by_the_encoder() -> None:
    stamps = [f"2026-01-01T00:00:0{i // 3}.5Z".encode() for i in range(9)]  # three lines per timestamp
    safe = [b"plain line %d" % i for i in range(9)]
    unsafe = [b'quote " and \\ and \xc3\xa9 and \xff %d' % i for i in range(9)]
    for tracked in (True, False):
        objects = []
        for contents in (safe, unsafe):
            data = b"".join(s + b" " + c + b"\n" for s, c in zip(stamps, contents, strict=True))
            cursor = Cursor(timestamp_ns(stamps[-1]), 3)
            tracker = Tracker(Binding.of("uid")) if tracked else None
            raw = NdjsonWriter(tracker).write(LogLines("t", "s", data, 9, cursor, True, 2, "pod", 1))
            objects.append([json.loads(line) for line in raw.splitlines()])
        for plain, escaped in zip(*objects, strict=True):
            assert list(plain) == list(escaped)  # the same keys in the same order
            assert plain["timestamp"] == escaped["timestamp"] and plain.get("cursor") == escaped.get("cursor")
        assert [o["line"] for o in objects[0]] == [c.decode() for c in safe]
        assert objects[1][0]["line"] == 'quote " and \\ and é and \ufffd 0'
        if tracked:
            # Each line's cursor names that line: lines sharing a timestamp are counted.
            fifth = decode(objects[0][4]["cursor"], Binding.of("uid")).position("pod")
            assert fifth == (1, Cursor(timestamp_ns(stamps[4]), 2))


def test_writers_and_tokens_do_not_need_the_kubernetes_package() -> None:
    code = (
        "import sys\n"
        "import shared.logs.writers, shared.logs.tracker, shared.logs.tokens, shared.logs.lines\n"
        "sys.exit(any(m == 'kubernetes' or m.startswith('kubernetes.') for m in sys.modules))\n"
    )
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=False).returncode == 0


def test_a_pod_without_container_states_whose_log_cannot_be_read_is_said(
    cluster: Cluster, listener: Listener, sim: Simulator
) -> None:
    """No container states and a kubelet that no longer has the log: the stream says so where
    the step's lines would be, and the other tasks' lines all come."""
    run = sim.play(SCENARIOS["success"](lines=5, interval=0), NS).wait(60)
    (pod,) = run.pods("unit")
    path = f"/api/v1/namespaces/{NS}/pods/{pod}/status"
    cluster.api("PATCH", path, {"status": {"containerStatuses": None}}, content_type=MERGE)
    cluster.kubelet.store.remove_pod(NS, pod)
    status, _, body = listener.get(f"/logs/{run.name}")
    assert status == 200
    got = task_lines(body)
    # Where unit's lines would be, only the stream's word on why there are none.
    said = [line for line in strip_heartbeats(body).split(b"\n") if line.startswith(b"[unit")]
    # Not taken for a deletion: the pod is still in the API; its node has no log for it.
    assert said and all(b"] error: its node has no log for it (" in line for line in said), said
    for (task, step), lines in run.expected().items():
        if task != "unit" and lines:
            assert got[(task, step)] == lines, (task, step)
