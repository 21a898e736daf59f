"""The log budget over HTTP: `max_bytes` (head + tail per step, an elision line whose URL fetches
exactly what was left out), `tail`, `since`, `max_lines`."""

from __future__ import annotations

import json
import re
import time

import pytest

from shared.logs.cursor import timestamp_ns
from tests.sandbox.scenarios import Scenario, Step, Task, numbered
from tests.sandbox.simulator import Simulator
from tests.support import Listener, strip_heartbeats, task_lines

NS = "tekton-pipelines"
ELISION = re.compile(rb"^\[(\S+) : (\S+)\] \xe2\x80\xa6 (\d+) lines \((\d+) bytes\) left out here; all of them: (\S+)$")


def chatty() -> Scenario:
    """Two steps with many lines, one with few (left whole), and a second task."""
    return Scenario(
        "chatty",
        tasks=[
            Task("build", [Step("compile", numbered("compile", 300)), Step("short", numbered("short", 3))]),
            Task("test", [Step("unit", numbered("unit", 120))], run_after=["build"]),
        ],
    )


def split(body: bytes) -> tuple[dict[tuple[str, str], list[bytes]], list[re.Match[bytes]]]:
    lines = strip_heartbeats(body).split(b"\n")
    elisions = [m for m in map(ELISION.match, lines) if m]
    kept = b"\n".join(line for line in lines if not ELISION.match(line))
    return task_lines(kept), elisions


def test_max_bytes_keeps_head_and_tail_and_the_url_fetches_exactly_the_rest(listener: Listener, sim: Simulator) -> None:
    run = sim.play(chatty(), NS).wait(60)
    status, _, body = listener.get(f"/logs/{run.name}?max_bytes=1200")
    assert status == 200
    shown, elisions = split(body)
    assert [(m.group(1), m.group(2)) for m in elisions] == [(b"build", b"compile"), (b"test", b"unit")]
    assert shown[("build", "short")] == run.expected_lines("build", "short")  # within the budget: whole
    for m in elisions:
        task, step = m.group(1).decode(), m.group(2).decode()
        everything = run.expected_lines(task, step)
        got = shown[(task, step)]
        left, left_bytes = int(m.group(3)), int(m.group(4))
        assert len(got) + left == len(everything)
        # What went out is a head of the step's lines, then its tail: one cut, `left` lines long.
        heads = [h for h in range(len(got) + 1) if got == everything[:h] + everything[h + left :]]
        assert heads, (task, step)
        head = heads[0]
        assert sum(len(line) for line in got[:head]) <= 600 and sum(len(line) for line in got[head:]) <= 600
        assert sum(len(line) + 1 for line in everything[head : head + left]) == left_bytes  # newlines too
        # The elision line's URL gives exactly the lines left out, then ends with a resume token.
        status, _, rest = listener.get(m.group(5).decode())
        assert status == 200
        assert task_lines(rest) == {(task, step): everything[head : head + left]}
        assert strip_heartbeats(rest).rstrip(b"\n").split(b"\n")[-1].startswith(b"[stream interrupted] max_lines=")


def test_tail_keeps_the_last_lines_of_each_step(listener: Listener, sim: Simulator) -> None:
    run = sim.play(chatty(), NS).wait(60)
    _, _, body = listener.get(f"/logs/{run.name}?tail=5&format=ndjson")
    events = [json.loads(line) for line in body.splitlines()]
    for (task, step), lines in run.expected().items():
        got = [e["line"].encode() for e in events if e["event"] == "log" and (e["task"], e["step"]) == (task, step)]
        assert got == lines[-5:], (task, step)
    notes = [e for e in events if e["event"] == "notice" and e["kind"] == "elided"]
    assert sorted((n["task"], n["step"]) for n in notes) == [("build", "compile"), ("test", "unit")]
    assert all(n["message"].startswith(f"… {295 if n['step'] == 'compile' else 115} lines") for n in notes)


def test_since_drops_older_lines(listener: Listener, sim: Simulator) -> None:
    scenario = Scenario("paced", tasks=[Task("t", [Step("s", numbered("s", 4), interval=1.0)])])
    run = sim.play(scenario, NS).wait(60)
    _, _, stamped = listener.get(f"/logs/{run.name}?format=ndjson")
    times = [timestamp_ns(e["timestamp"]) for e in map(json.loads, stamped.splitlines()) if e["event"] == "log"]
    cutoff = (times[1] + times[2]) // 2  # between the 2nd and 3rd line, ~0.5 s from each
    since = (time.time_ns() - cutoff) / 1e9
    _, _, body = listener.get(f"/logs/{run.name}?since={since:.3f}s")
    assert task_lines(body) == {("t", "s"): run.expected_lines("t", "s")[2:]}


@pytest.mark.parametrize("query", ["since=abc", "since=-5m", "max_bytes=-1", "tail=1.5", "max_lines=x"])
def test_bad_budget_options_are_400(listener: Listener, query: str) -> None:
    status, _, body = listener.get(f"/logs/any-run?{query}")
    assert status == 400 and json.loads(body)["status"] == 400
