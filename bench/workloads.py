"""What the figures read: runs played on the bench's upstream, named and waited for by API.

The figures ask for logs and runs here and never look inside the kubelet that serves them, so
an upstream is a parameter: today the sandbox's kubelet stand-in, later a real node.
"""

from __future__ import annotations

import json
import secrets as _secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from bench.harness import NS, Bench
from tests.sandbox.objects import random_suffix
from tests.sandbox.scenarios import Scenario, Step, Task, success
from tests.sandbox.simulator import PlayedRun
from tests.support import env_ref, grant_secret_reads, put_secret

MB = 1_000_000
SECRETS = 20  # Secret values a masked run's pod references (figure 1, bench.profile --masked)
_FILLER = b"compiling src/module/component_%d.c -O2 -Wall -Werror -fPIC -I include -DNDEBUG " * 3


def ci_lines(total: int, secrets: tuple[bytes, ...] = ()) -> Callable[[], Iterator[bytes]]:
    """~`total` bytes of build-log-like lines, 30 to 190 bytes long (about 110 on average); with
    `secrets`, one line in 50 carries one of them."""

    def generate() -> Iterator[bytes]:
        written, i = 0, 0
        while written < total:
            line = b"%08d " % i + _FILLER[: 20 + (i * 37) % 160]
            if secrets and i % 50 == 7:
                line += b" token=" + secrets[i % len(secrets)]
            written += len(line) + 1
            i += 1
            yield line

    return generate


def ci_lines_script(total: int, secrets: tuple[bytes, ...] = ()) -> str:
    """A busybox awk program printing exactly `ci_lines(total, secrets)` inside a real container,
    then a pause (containerd can lose the tail of a burst from a container that exits at once)."""
    filler = _FILLER.decode()
    assert "'" not in filler and all("'" not in s.decode() and " " not in s.decode() for s in secrets)
    keys = " ".join(s.decode() for s in secrets)
    return (
        f"/bin/busybox awk -v total={total} -v keys='{keys}' -v filler='{filler}' 'BEGIN {{"
        ' n = split(keys, secret, " "); written = 0;'
        " for (i = 0; written < total; i++) {"
        ' line = sprintf("%08d ", i) substr(filler, 1, 20 + (i * 37) % 160);'
        ' if (n && i % 50 == 7) line = line " token=" secret[(i % n) + 1];'
        " print line; written += length(line) + 1 } }'\n"
        "sleep 1"
    )


def secret_values(n: int = SECRETS) -> tuple[bytes, ...]:
    """`n` random Secret values, as the masked log carries them."""
    return tuple(_secrets.token_urlsafe(18).encode() for _ in range(n))


def secret_refs(b: Bench, values: tuple[bytes, ...]) -> list[dict]:
    """Secrets holding `values`, `get` on them granted to the listener; env references to them
    (`finished_log(..., env=refs)` gives a run whose `/logs` masks them)."""
    grant_secret_reads(b.cluster, NS)
    refs = []
    for i, value in enumerate(values):
        name = f"bench-token-{i}"
        put_secret(b.cluster, NS, name, {"token": value})
        refs.append(env_ref(f"TOKEN_{i}", name, "token"))
    return refs


def run_name(kind: str) -> str:
    return f"bench-{kind}-{random_suffix()}"


def status_run(b: Bench) -> PlayedRun:
    """The /status figure's run (bench.profile --status and bench.status_cpu load it too): finished,
    two lines."""
    return b.sim.play(success(lines=2, interval=0), NS, run_name("status")).wait(60)


@dataclass(frozen=True)
class FinishedLog:
    """One finished step container's log on the upstream."""

    run: str
    task: str
    pod: str
    container: str
    bytes: int
    lines: int


def finished_log(b: Bench, size: int, secrets: tuple[bytes, ...] = (), env: list[dict] | None = None) -> FinishedLog:
    """A run whose one step wrote ~`size` bytes and ended: every reader reads the same log. With
    `env`, the step's container gets those variables (e.g. Secret references)."""
    script = ci_lines_script(size, secrets) if b.cluster.node is not None else None
    step = Step("dump", ci_lines(size, secrets), env=list(env or []), real_script=script)
    scenario = Scenario("bench-throughput", tasks=[Task("dump", [step])], max_duration=3600)
    run = b.sim.play(scenario, NS, run_name("throughput")).wait(3600)
    lines = run.expected_lines("dump", "dump")
    return FinishedLog(run.name, "dump", run.pods("dump")[0], "step-dump", sum(len(x) + 1 for x in lines), len(lines))


def wait_running(b: Bench, run: PlayedRun, task: str, container: str, timeout: float = 30.0) -> str:
    """The pod of `task`'s first attempt, once the API reports `container` started."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pod in run.pods(task):
            code, body = b.cluster.raw("GET", f"/api/v1/namespaces/{NS}/pods/{pod}", b.cluster.admin)
            status = (json.loads(body).get("status") or {}) if code == 200 else {}
            for item in status.get("containerStatuses") or []:
                if item.get("name") == container and ("running" in item["state"] or "terminated" in item["state"]):
                    return pod
        if run.done.is_set():
            run.wait(0)
        time.sleep(0.02)  # polling the API stands in for a watch: a few requests, off the measured path
    raise TimeoutError(f"{container} of {run.name} not running after {timeout}s")


def wait_created(run: PlayedRun, timeout: float = 30.0) -> None:
    """Until the simulator has created the PipelineRun (read from its record: no API request)."""
    deadline = time.monotonic() + timeout
    while f"PipelineRun/{run.name}" not in run.objects():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{run.name} not created after {timeout}s")
        time.sleep(0.005)
