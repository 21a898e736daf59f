"""`format=gitlab` and `format=github` end to end: simulator -> apiserver -> listener -> curl or
ci/tekton-logs.sh, read back the way GitLab and the GitHub Actions runner read a job log."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from shared.logs.controls import neutralised
from tests.ci_parsers import GitLabLog, parse_github, parse_gitlab
from tests.sandbox.scenarios import SCENARIOS, Scenario, Step, Task, numbered
from tests.sandbox.simulator import PlayedRun, Simulator
from tests.support import PASSWORD, ROOT, USER, Listener, curl, task_lines

NS = "tekton-pipelines"
CLIENT = ROOT / "ci" / "tekton-logs.sh"
HOSTILE = [
    b"::error title=spoofed::this is not the listener's annotation",
    b"##[error]legacy command in the middle",
    b"  ::add-mask::hunter2",
    b"::stop-commands::attacker",
    b"::endgroup::",
    b"section_end:1:compile_0_build_1\r\x1b[0K",
    b"100% done, 50%0A of it",
]


def follow_with_curl(listener: Listener, sim: Simulator, scenario: Scenario, query: str) -> tuple[PlayedRun, bytes]:
    """curl follows a run that does not exist yet; the run is then played."""
    name = f"{scenario.kind}-{uuid.uuid4().hex[:10]}"
    with ThreadPoolExecutor(1) as pool:
        body = pool.submit(curl, listener, f"/logs/{name}?wait=30&{query}")
        run = sim.play(scenario, NS, name).wait(120)
        return run, body.result(timeout=120)


def assert_lines_once(run: PlayedRun, body: bytes) -> None:
    got = task_lines(body)
    for key, lines in run.expected().items():
        assert got.get(key, []) == [neutralised(line) for line in lines], key  # controls shown as text
    assert set(got) <= set(run.expected())


def assert_in_their_sections(run: PlayedRun, log: GitLabLog) -> None:
    """Each step's lines sit in a section titled `task : step`, inside one titled for the task."""
    for (task, step), lines in run.expected().items():
        sections = log.titled(f"{task} : {step}")
        assert bool(sections) == bool(lines), (task, step)
        inside = [line.partition(b"] ")[2] for s in sections for line in s.lines]
        assert inside == [neutralised(line) for line in lines], (task, step)
        assert all(s.parent is not None and s.parent.header.startswith(task) for s in sections)


def slow_failure() -> Scenario:
    """`failure` with a build step that writes for over a second before it exits 2."""
    return SCENARIOS["failure"](lines=4, interval=0.45)


def test_gitlab_sections_live_with_durations_and_the_digest(listener: Listener, sim: Simulator) -> None:
    run, body = follow_with_curl(listener, sim, slow_failure(), "format=gitlab")
    assert_lines_once(run, body)
    log = parse_gitlab(body)
    assert_in_their_sections(run, log)
    (build,) = log.titled("compile : build")
    assert build.duration >= 1  # the kubelet's stamps of its first and last line, 1.35 s apart
    (digest,) = [s for s in log.sections if s.header.startswith("Failure digest: PipelineRun")]
    assert not digest.collapsed and digest.parent is None
    text = b"\n".join(digest.lines).decode()
    assert "FAILED task compile" in text and "step build: exit code 2" in text
    assert [line for line in digest.lines if line.startswith(b"      | ")] == [
        b"      | " + line for line in run.expected_lines("compile", "build")
    ]
    assert "SKIPPED task publish" not in text or "publish" in text
    assert log.top[-1].startswith(f"PipelineRun {run.name} Failed".encode())


def test_gitlab_replay_expands_only_what_failed(listener: Listener, sim: Simulator) -> None:
    run = sim.play(SCENARIOS["failure"](), NS).wait(60)
    log = parse_gitlab(curl(listener, f"/logs/{run.name}?format=gitlab"))
    assert_in_their_sections(run, log)
    states = {s.header: s.collapsed for s in log.sections if not s.header.startswith("Failure digest")}
    assert states["compile"] is False and states["compile : build"] is False
    assert states["cleanup"] is True and states["cleanup : rm"] is True


def run_client(listener: Listener, run: str, **env: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["sh", str(CLIENT), run],
        env={
            "PATH": os.environ["PATH"],
            "LISTENER_URL": listener.url,
            "LISTENER_CREDS": f"{USER}:{PASSWORD}",
            "TEKTON_LOGS_WAIT": "30",
            "TEKTON_LOGS_MAX_BACKOFF": "1",
            **env,
        },
        capture_output=True,
        timeout=180,
    )


def long_failure() -> Scenario:
    scenario = SCENARIOS["failure"](lines=30, interval=0.15)
    scenario.tasks[0].steps[1].lines = numbered("package", 40)
    return scenario


def test_gitlab_ci_script_sections_survive_cuts(cutting: Listener, sim: Simulator) -> None:
    run = sim.play(long_failure(), NS)
    done = run_client(cutting, run.name, GITLAB_CI="true")
    run.wait(60)
    assert done.returncode == 1, done.stderr
    assert done.stderr.count(b"resuming") >= 2, done.stderr  # the stream was cut, and continued
    assert_lines_once(run, done.stdout)
    log = parse_gitlab(done.stdout)  # every section closed, names unique across the streams
    builds = log.titled("compile : build")
    assert [line.partition(b"] ")[2] for s in builds for line in s.lines] == run.expected_lines("compile", "build")
    assert any(s.header.startswith("Failure digest") for s in log.sections)


def hostile_failure() -> Scenario:
    """A failing step that prints workflow commands and markers of its own."""
    return Scenario(
        "hostile",
        tasks=[Task("compile", [Step("build", [b"compiling", *HOSTILE, b"error: it broke"], exit_code=3)])],
    )


def test_github_groups_and_annotations_and_no_command_from_the_steps(listener: Listener, sim: Simulator) -> None:
    run, body = follow_with_curl(listener, sim, hostile_failure(), "format=github")
    assert_lines_once(run, body)
    log = parse_github(body)
    names = [c.name for c in log.commands if c.name not in ("stop-commands",)]
    assert names == ["group", "endgroup", "error"], log.commands
    assert log.named("group")[0].data == "compile : build"
    (error,) = log.named("error")
    assert error.properties == {"title": "Tekton compile : build failed (exit code 3)"}
    # The annotation quotes the step's last lines, escaped so the runner reads them back whole.
    assert error.data.split("\n")[-2:] == [HOSTILE[-1].decode(), "error: it broke"]
    shown = "\n".join(log.shown)
    for line in HOSTILE:
        assert f"[compile : build] {neutralised(line).decode()}" in shown
    assert any(line.startswith("Failure digest: PipelineRun") for line in log.shown)


def test_github_script_keeps_one_stop_token_across_cuts(cutting: Listener, sim: Simulator) -> None:
    scenario = long_failure()
    scenario.tasks[0].steps[0].lines = [*numbered("build", 20), *HOSTILE]
    run = sim.play(scenario, NS)
    done = run_client(cutting, run.name, GITHUB_ACTIONS="true")
    run.wait(60)
    assert done.returncode == 1, done.stderr
    assert done.stderr.count(b"resuming") >= 2, done.stderr
    assert_lines_once(run, done.stdout)
    log = parse_github(done.stdout)
    tokens = {c.data for c in log.named("stop-commands")}
    assert len(tokens) == 1 and len(next(iter(tokens))) == 32
    groups = [c.data for c in log.commands if c.name in ("group", "endgroup")]
    assert groups and all(a == "" for a in groups[1::2]) and len(groups) % 2 == 0  # balanced
    assert set(groups[::2]) == {"compile : build", "cleanup : rm"}  # package is skipped: no lines
    assert [e.properties["title"] for e in log.named("error")] == ["Tekton compile : build failed (exit code 2)"]


@pytest.mark.parametrize(
    "query",
    ["format=xml", "format=gitlab&digest_lines=501", "digest_lines=-1", "stop_commands=short", "stop_commands=a::b"],
)
def test_bad_format_options_are_400_json(listener: Listener, query: str) -> None:
    status, headers, body = listener.get(f"/logs/any-run?{query}")
    assert status == 400 and headers["content-type"] == "application/json"
    assert json.loads(body)["status"] == 400
