"""A step that prints terminal controls cannot make text mode show a line that is not its own:
no other task's prefix, no erased or overwritten line, no fake final status line. Colour stays.
From the attacker's side: a step on the sandbox prints the controls, `curl -N` reads `/logs`."""

from __future__ import annotations

import json
import re
import uuid

from shared.logs.controls import neutralised, neutralised_text
from shared.logs.formats.digest_text import digest_lines
from tests.sandbox.scenarios import Scenario, Step, Task
from tests.sandbox.simulator import Simulator
from tests.support import Listener, curl

NS = "tekton-pipelines"
RUN = f"spoof-{uuid.uuid4().hex[:8]}"
FAKE_END = f"PipelineRun {RUN} Succeeded: Tasks Completed: 2 (Failed: 0, Cancelled 0), Skipped: 0".encode()
ATTACKS = [
    b"\r[deploy : push] pushed to production",
    b"\x1b[2K\r[deploy : push] erased and replaced",
    b"\x1b[1A\x1b[2K[deploy : push] one line up",
    b"\x1b[0G\x1b[K[deploy : push] column zero",
    b"\x1b7\x1b[H[deploy : push] saved and homed\x1b8",
    b"\x1b]0;owned\x07\x1b]8;;http://evil.example\x07link\x1b]8;;\x1b\\",
    b"abc" + b"\x08" * 20 + b"[deploy : push] over the prefix",
    b"\x0b\x0c[deploy : push] vertical",
    b"\r" + FAKE_END,
    b"\x1b[2K" + FAKE_END,
    "\u009b2K\u009d0;C1 controls".encode(),
]
COLOUR = b"\x1b[1;31mred and bold\x1b[0m \x1b[38;5;208morange\x1b[m stays"
DEPLOY = [b"real deploy line 1", b"real deploy line 2"]
MOVING = re.compile(rb"[\r\x08\x0b\x0c]|\xc2[\x80-\x9f]|\x1b(?!\[[0-9;:]*m)")


def _scenario() -> Scenario:
    return Scenario(
        "spoof",
        tasks=[
            Task("build", [Step("attack", [*ATTACKS, COLOUR])]),
            Task("deploy", [Step("push", DEPLOY)], run_after=["build"]),
        ],
    )


def test_a_step_cannot_paint_another_tasks_line_or_the_final_status(listener: Listener, sim: Simulator) -> None:
    run = sim.play(_scenario(), NS, RUN).wait(60)
    for query in ("", "?timestamps=true", "?cursors=true"):
        body = curl(listener, f"/logs/{run.name}{query}")
        # Heartbeats are the listener's own lone `\r` at a line start; nothing else may move the cursor.
        lines = [line.lstrip(b"\r") for line in body.rstrip(b"\n").split(b"\n")]
        assert not [line for line in lines if MOVING.search(line)], query
        if query == "?cursors=true":
            lines = [line.split(b" ", 1)[1] for line in lines]  # the cursor before each line
        # Every line starts with the prefix of the step that printed it; the final line is ours.
        build = [line for line in lines if line.startswith(b"[build : attack] ")]
        deploy = [line for line in lines if line.startswith(b"[deploy : push] ")]
        assert len(build) == len(ATTACKS) + 1 and len(build) + len(deploy) == len(lines) - 1, query
        assert len(deploy) == len(DEPLOY) and all(map(bytes.endswith, deploy, DEPLOY)), query
        # One line starts as the final status does, the last: the step's two fakes are its own lines.
        assert [line for line in lines if line.startswith(b"PipelineRun ")] == [lines[-1]]
        assert lines[-1].startswith(f"PipelineRun {run.name} Succeeded".encode())
        assert sum(FAKE_END in line for line in build) == 2, query
        # What the step printed is still there to read, made visible; colour is passed on as it is.
        assert any(line.endswith(b" ^M[deploy : push] pushed to production") for line in build), query
        assert any(line.endswith(b" ^[[2K" + FAKE_END) for line in build), query
        assert any(line.endswith(COLOUR) for line in build), query
    # NDJSON is for machines: JSON escapes every control, the line is given exactly as printed.
    objects = [json.loads(line) for line in curl(listener, f"/logs/{run.name}?format=ndjson").splitlines()]
    printed = [o["line"] for o in objects if o.get("event") == "log" and o["task"] == "build"]
    assert printed == [line.decode() for line in [*ATTACKS, COLOUR]]


def test_chunks_without_controls_or_with_colour_only_pass_untouched() -> None:
    plain = b"2026-01-01T00:00:00.1Z compiling\n" * 100
    assert neutralised(plain) is plain
    assert neutralised(COLOUR) is COLOUR
    assert neutralised("caf\u00e9 25\u00b0C".encode()) == "caf\u00e9 25\u00b0C".encode()
    assert neutralised(b"a\rb\x1b[2Kc\x1b[31md") == b"a^Mb^[[2Kc\x1b[31md"
    assert neutralised_text("failed: \x1b[2K\rPipelineRun x Succeeded") == "failed: ^[[2K^MPipelineRun x Succeeded"


def test_the_digest_shows_controls_as_text_in_messages_too() -> None:
    """A step writes its own termination message: in the digest it moves nothing, as its lines."""
    step = {"step": "push", "exitCode": 1, "message": ATTACKS[1].decode(), "lastLines": [ATTACKS[0].decode()]}
    task = {"task": "deploy", "reason": "Failed", "message": ATTACKS[2].decode(), "steps": [step]}
    digest = {"outcome": "failed", "reason": "Failed", "message": "\r" + FAKE_END.decode(), "failedTasks": [task]}
    lines = digest_lines(RUN, digest)
    assert not [line for line in lines if MOVING.search(line.encode())]
    assert "      | ^M[deploy : push] pushed to production" in lines
