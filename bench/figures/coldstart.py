"""Cold start of the status function: process start to first answers, and import costs."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from bench.clients import http_status
from bench.figures.coldstart_pod import pod_coldstart
from bench.harness import NS, Bench, Figure, Stopwatch
from bench.workloads import run_name
from tests.sandbox.cluster import free_port
from tests.sandbox.scenarios import success
from tests.support import PASSWORD, ROOT, USER, basic


def coldstart(b: Bench, fig: Figure) -> None:
    run = b.sim.play(success(lines=1, interval=0), NS, run_name("cold")).wait(60)
    python = sys.executable
    framework = str(Path(python).with_name("functions-framework"))
    env = {
        **os.environ,
        "NAMESPACE": NS,
        "KUBECONFIG": str(b.listener_kubeconfig),
        "AUTH_USERNAME": USER,
        "AUTH_PASSWORD": PASSWORD,
    }
    for _ in range(b.sizes.cold_starts):
        clock = Stopwatch()
        subprocess.run([python, "-c", "pass"], check=True)
        fig.add("floor: python -c pass", "ms", clock() * 1000)

        port = free_port()
        listener_env = {**env, "PORT": str(port)}
        clock = Stopwatch()
        proc = subprocess.Popen(
            [framework, "--source", "functions/status/main.py", "--target", "status"],
            env=listener_env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            health = _first_ok(port, "/health/liveness", None, proc)
            t_health = clock()
            code = http_status(port, f"/status/{run.name}", basic())
            t_status = clock()
            if code != 200:
                raise RuntimeError(f"first /status answered {code}")
            again = Stopwatch()
            http_status(port, f"/status/{run.name}", basic())
            t_again = again()
        finally:
            proc.terminate()
            proc.wait(10)
        fig.add("process start -> first /health/liveness 200", "ms", t_health * 1000)
        fig.add("process start -> first /status 200", "ms", t_status * 1000, "< 1000", lambda v: v < 1000)
        fig.add("first /status request alone", "ms", (t_status - t_health) * 1000)
        fig.add("second /status request", "ms", t_again * 1000)
        fig.extra.setdefault("health_polls", health)
    pod_coldstart(b, fig, run.name)
    fig.extra["imports_ms"] = import_costs(python)
    top = ", ".join(f"{k} {v:.0f}" for k, v in list(fig.extra["imports_ms"].items())[:8])
    fig.notes.append(
        "`functions-framework --source functions/status/main.py --target status` as its container starts it; "
        "/health/liveness polled every 5 ms; then one authenticated /status of a finished run. "
        f"Import cost (ms, cumulative and nested, python -X importtime of loading the function): {top}. "
        "The env user's password is checked by digest, so no bcrypt runs on this path."
    )


def _first_ok(port: int, path: str, auth: str | None, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> int:
    deadline = time.monotonic() + timeout
    polls = 0
    while time.monotonic() < deadline:
        polls += 1
        if proc.poll() is not None:
            raise RuntimeError(f"function exited {proc.returncode}")
        try:
            if http_status(port, path, auth, timeout=2) == 200:
                return polls
        except OSError:
            pass
        time.sleep(0.005)
    raise TimeoutError(f"{path} not answering after {timeout}s")


def import_costs(python: str) -> dict[str, float]:
    """Cumulative import time of each top-level package while functions-framework loads the status
    function (the work a cold start does before it can listen), in ms, largest first. Nested:
    `shared` includes `kubernetes`, which includes `urllib3`..."""
    code = (
        "from functions_framework import create_app\ncreate_app(target='status', source='functions/status/main.py')\n"
    )
    proc = subprocess.run(
        [python, "-X", "importtime", "-c", code], cwd=ROOT, capture_output=True, text=True, check=True, timeout=60
    )
    totals: dict[str, float] = {}
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = line.split("|")
        name = name.strip()
        if "." in name or not cumulative.strip().isdigit():
            continue
        # A package's own import line (first import wins: later ones are cache hits).
        totals.setdefault(name, int(cumulative) / 1000)
    return dict(sorted(totals.items(), key=lambda kv: -kv[1])[:15])
