"""/logs as server-sent events: curl for the wire format, the npm `eventsource` package (what
browsers' EventSource does, under node) for reconnecting with Last-Event-ID across cuts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.needs import need
from tests.sandbox.scenarios import SCENARIOS
from tests.sandbox.simulator import PlayedRun, Simulator
from tests.support import ROOT, Listener, basic
from tests.test_resume import long_run

NS = "tekton-pipelines"
CLIENT_DIR = ROOT / "tests" / "sse"


def sse_events(body: bytes) -> list[dict[str, str]]:
    """Events as the EventSource processing model reads them: fields up to a blank line."""
    events, fields = [], {}
    for line in body.decode().split("\n"):
        if line == "":
            if "data" in fields:
                events.append(fields)
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(": ")
            fields[name] = value
    return events


def log_lines(run: PlayedRun, events: list[dict]) -> dict[tuple[str, str], list[bytes]]:
    out: dict[tuple[str, str], list[bytes]] = {}
    for event in events:
        if event["kind"] == "log":
            data = event["data"]
            out.setdefault((data["task"], data["step"]), []).append(data["line"].encode())
    return out


def test_wire_format_ids_retry_and_last_event_id(listener: Listener, sim: Simulator) -> None:
    run = sim.play(SCENARIOS["success"](), NS).wait(60)
    status, headers, body = listener.get(f"/logs/{run.name}", headers={"Accept": "text/event-stream"})
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    assert body.startswith(b"retry: ")
    events = sse_events(body)
    assert events[0]["event"] == "start" and events[-1]["event"] == "end"
    logs = [e for e in events if e["event"] == "log"]
    assert logs and all(e.get("id") == json.loads(e["data"])["cursor"] for e in logs)
    # A client that got the first 7 lines and reconnects with Last-Event-ID gets exactly the rest.
    cut = logs[6]
    status, _, rest = listener.get(
        f"/logs/{run.name}?format=sse", headers={"Last-Event-ID": cut["id"], "Accept": "text/event-stream"}
    )
    assert status == 200
    again = [json.loads(e["data"])["line"] for e in sse_events(rest) if e["event"] == "log"]
    assert again == [json.loads(e["data"])["line"] for e in logs[7:]]


@pytest.fixture(scope="module")
def node_client() -> Path:
    """node_modules with the pinned `eventsource` (npm ci from the lock file), kept in the cache."""
    missing = None if shutil.which("node") and shutil.which("npm") else "no node or npm on PATH"
    need("the SSE client test needs node and npm", missing)
    cache = Path.home() / ".cache" / "tekton-pipeline-listener" / "sse-client"
    lock = (CLIENT_DIR / "package-lock.json").read_bytes()
    if not (cache / "node_modules" / "eventsource").is_dir() or (cache / "package-lock.json").read_bytes() != lock:
        cache.mkdir(parents=True, exist_ok=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copy(CLIENT_DIR / name, cache / name)
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=cache, check=True, capture_output=True)
    return cache / "node_modules"


def test_eventsource_reconnects_across_cuts_without_loss_or_repeat(
    cutting: Listener, sim: Simulator, node_client: Path
) -> None:
    run = sim.play(long_run(lines=30), NS)
    done = subprocess.run(
        ["node", str(CLIENT_DIR / "follow.js"), f"{cutting.url}/logs/{run.name}?wait=30"],
        env={**os.environ, "NODE_PATH": str(node_client), "SSE_AUTHORIZATION": basic()},
        capture_output=True,
        timeout=120,
    )
    run.wait(60)
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    opens = int(done.stderr.decode().rsplit("opens ", 1)[1])
    assert opens >= 4, done.stderr  # cut every 2 s, reconnected each time
    assert sum(e["kind"] == "interrupted" for e in events) == opens - 1
    got = log_lines(run, events)
    for key, lines in run.expected().items():
        assert got.get(key, []) == lines, key
    assert events[-1]["kind"] == "end" and events[-1]["data"]["status"]["outcome"] == "succeeded"
