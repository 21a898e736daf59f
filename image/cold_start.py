"""Cold start of the image: from starting the container to the first /health answer, for the
health function run as Knative runs it (image/knative.py), beside the same function started as a
bare process from this checkout in the same run. Prints JSON.

    .venv/bin/python -m image.cold_start [--runs 10]

The container is created first and the clock starts at `podman start`, as a kubelet's start of an
already pulled image; the bare process's clock starts at its exec.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

from image import build, knative
from image.paths import ROOT

HEALTH_ENV = {
    "FUNCTION_TARGET": "health",
    "FUNCTION_SIGNATURE_TYPE": "http",
    "THREADS": "4",
    "CLOUD_RUN_TIMEOUT_SECONDS": "0",
}
POLL_SECONDS = 0.005
TIMEOUT_SECONDS = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def answered(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as resp:
            return resp.status == 200
    except OSError:
        return False


def until_health(port: int, began: float) -> float:
    while time.perf_counter() - began < TIMEOUT_SECONDS:
        if answered(port):
            return time.perf_counter() - began
        time.sleep(POLL_SECONDS)  # polling the port is the measurement itself
    raise TimeoutError(f"no /health answer on {port} in {TIMEOUT_SECONDS}s")


def container_once(ref: str) -> float:
    port, name = free_port(), f"tpl-cold-{uuid.uuid4().hex[:8]}"
    env = {**HEALTH_ENV, "PORT": str(port)}
    create = ["create", "--name", name, *knative.run_flags(build.engine()), "--network", "host"]
    create += ["--user", knative.IMAGE_UID]
    create += [arg for key, value in env.items() for arg in ("-e", f"{key}={value}")]
    try:
        build.run_engine(*create, ref, capture=True)
        began = time.perf_counter()
        build.run_engine("start", name, capture=True)
        return until_health(port, began)
    finally:
        subprocess.run([build.engine(), "rm", "--force", name], env=build.engine_env(), capture_output=True)


def bare_once() -> float:
    port = free_port()
    env = {
        **os.environ,
        **HEALTH_ENV,
        "PORT": str(port),
        "FUNCTION_SOURCE": str(ROOT / "functions" / "health" / "main.py"),
    }
    command = [str(Path(sys.executable).parent / "functions-framework")]
    began = time.perf_counter()
    proc = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        return until_health(port, began)
    finally:
        proc.terminate()
        proc.wait(30)


def summary(measure: Callable[[], float], runs: int) -> dict[str, float]:
    measure()  # warm the page cache, as a node that has run the image before
    samples = sorted(measure() for _ in range(runs))
    return {
        "median_s": round(statistics.median(samples), 3),
        "min_s": round(samples[0], 3),
        "max_s": round(samples[-1], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    ref = build.build()
    result = {
        "image": ref,
        "engine": build.engine(),
        "runs": args.runs,
        "container_start_to_first_health": summary(lambda: container_once(ref), args.runs),
        "bare_process_to_first_health": summary(bare_once, args.runs),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
