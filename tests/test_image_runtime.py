"""The real logs function started the way its container starts it (Dockerfile CMD and ENV plus
the Knative Service's env), as the listener's ServiceAccount with the shipped Role."""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.sandbox.cluster import LISTENER_NAMESPACE, Cluster, free_port
from tests.sandbox.scenarios import SCENARIOS
from tests.sandbox.simulator import PlayedRun, Simulator
from tests.support import ROOT, basic, grant_listener
from tests.test_manifests import dockerfile_cmd, dockerfile_env, knative_services, ksvc_literal_env


class ImageProcess:
    def __init__(self, cluster: Cluster, tmp: Path) -> None:
        self.port = free_port()
        env = {k: v for k, v in dockerfile_env().items() if k != "PATH"}
        env.update(ksvc_literal_env("logs"))
        kubeconfig = cluster.write_kubeconfig(tmp / "kubeconfig", cluster.listener)
        env.update(
            {
                "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
                "PORT": str(self.port),
                # The image's /app is this checkout here.
                "FUNCTION_SOURCE": str(ROOT / "functions" / "logs" / "main.py"),
                "KUBECONFIG": str(kubeconfig),
                "AUTH_USERNAME": "ci-user",
                "AUTH_PASSWORD": "s3cret-pa55word",
            }
        )
        self.log = tmp / "image.log"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(dockerfile_cmd(), env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while self.probe("/health/liveness") != 200:
            assert self.proc.poll() is None and time.monotonic() < deadline, self.log.read_text()[-2000:]
            time.sleep(0.05)

    def probe(self, path: str, timeout: float = 2.0) -> int | None:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
            conn.request("GET", path)
            status = conn.getresponse().status
            conn.close()
            return status
        except OSError:
            return None

    def open_stream(self, path: str) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        conn.request("GET", path, headers={"Authorization": basic()})
        resp = conn.getresponse()
        assert resp.status == 200
        return conn, resp


@pytest.fixture
def image(cluster: Cluster, tmp_path: Path) -> Iterator[ImageProcess]:
    grant_listener(cluster, LISTENER_NAMESPACE)
    process = ImageProcess(cluster, tmp_path)
    yield process
    if process.proc.poll() is None:
        process.proc.kill()
    process.proc.wait(10)


def held_run(sim: Simulator) -> tuple[PlayedRun, threading.Event]:
    hold = threading.Event()
    scenario = SCENARIOS["success"]()
    scenario.tasks[0].steps[0].hold = hold
    return sim.play(scenario, LISTENER_NAMESPACE), hold


def test_probes_answer_while_container_concurrency_streams_are_open(image: ImageProcess, sim: Simulator) -> None:
    run, hold = held_run(sim)
    concurrency = knative_services()["logs"]["spec"]["template"]["spec"]["containerConcurrency"]
    try:
        streams = [image.open_stream(f"/logs/{run.name}?wait=30") for _ in range(concurrency)]
        for _, resp in streams:
            assert resp.read1(1) == b"\r"  # every stream is open and has its first byte
        for _ in range(3):
            assert image.probe("/health/liveness") == 200
            assert image.probe("/health/readiness") == 200
    finally:
        hold.set()
    run.wait(60)
    for conn, resp in streams:
        assert f"PipelineRun {run.name} Succeeded".encode() in resp.read()
        conn.close()


def test_sigterm_ends_open_streams_cleanly_at_a_line_boundary(image: ImageProcess, sim: Simulator) -> None:
    run, hold = held_run(sim)
    try:
        conn, resp = image.open_stream(f"/logs/{run.name}?wait=30")
        first = resp.readline()  # the held step's lines arrive, then the stream is silent
        assert first.startswith(b"\r[")
        image.proc.send_signal(signal.SIGTERM)
        rest = resp.read()  # ends promptly with a clean chunked terminator (read() would raise)
        lines = (first + rest).split(b"\n")
        assert lines[-1] == b"", "the body ends at a line boundary"
        assert b"shutting down" in lines[-2], lines[-3:]
        conn.close()
        assert image.proc.wait(30) == 0
    finally:
        hold.set()
    run.wait(60)
