"""Issue 17: the built image, run with podman as Knative runs it (tests/image_container.py says
how): what is inside it, its log at start, under load and at stop, and SIGTERM ending open
/logs streams cleanly with their resume cursor, well inside Knative's grace period."""

from __future__ import annotations

import http.client
import json
import tarfile
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from shared.logs.writers import RESUME_MARK
from tests.image import ctr_import_command, image_archive, image_ref, require_engine
from tests.image_container import IMAGE_UID, ImageContainer, engine, knative_run_flags, trouble
from tests.sandbox.cluster import LISTENER_NAMESPACE, Cluster
from tests.sandbox.scenarios import SCENARIOS
from tests.sandbox.simulator import Simulator
from tests.support import basic, grant_listener
from tests.test_image_runtime import held_run
from tests.test_manifests import knative_services

# podman stop's own deadline before SIGKILL; Knative's terminationGracePeriodSeconds is longer
# (the revision's timeoutSeconds), so exiting inside this is well inside Knative's.
STOP_TIMEOUT = 10
# Inside STOP_TIMEOUT with room to spare: streams end at the next check of the shutdown flag (at
# least once a second) instead of draining. Measured 3.8-4.5 s with 10 open streams and 0.6-1.4 s
# idle on a loaded 2-core machine, podman's own stop and clean-up included.
PROMPT_EXIT_SECONDS = 8.0

INSIDE = """
import importlib.util, json, os, shutil
def writable(path):
    try:
        with open(os.path.join(path, ".probe"), "w"):
            pass
        return True
    except OSError:
        return False
print(json.dumps({
    "uid": os.getuid(),
    "pip": importlib.util.find_spec("pip") is not None,
    "tools": [t for t in ("gcc", "cc", "c++", "clang", "make", "pip", "pip3") if shutil.which(t)],
    "pip_caches": [p for p in ("/root/.cache/pip", "/tmp/.cache/pip", "/nonexistent/.cache/pip") if os.path.exists(p)],
    "writable": {p: writable(p) for p in ("/", "/app", "/opt/venv", "/tmp")},
    "kubernetes_aio": importlib.util.find_spec("kubernetes.aio") is not None,
    "native_rows": importlib.util.find_spec("shared.logs._rows") is not None,
}))
"""


@pytest.fixture(scope="module")
def ref() -> str:
    require_engine()
    return image_ref()


@pytest.fixture
def containers(cluster: Cluster, tmp_path: Path) -> Iterator:
    grant_listener(cluster, LISTENER_NAMESPACE)
    started: list[ImageContainer] = []

    def start(function: str, **kwargs: str) -> ImageContainer:
        container = ImageContainer(cluster, tmp_path, function, **kwargs)
        started.append(container)
        return container.start()

    yield start
    for container in started:
        container.remove()


def test_image_holds_no_installer_compiler_or_cache_and_only_tmp_is_writable(ref: str) -> None:
    run = engine("run", "--rm", *knative_run_flags(), "--user", IMAGE_UID, ref, "python3", "-c", INSIDE)
    inside = json.loads(run.stdout)
    assert inside["uid"] == 10001
    assert inside["pip"] is False and inside["tools"] == [], inside
    assert inside["pip_caches"] == []
    assert inside["writable"] == {"/": False, "/app": False, "/opt/venv": False, "/tmp": True}
    assert inside["kubernetes_aio"] is False
    assert inside["native_rows"] is True  # compiled on the build host (image/wheelhouse.py), shipped
    config = json.loads(engine("image", "inspect", ref).stdout)[0]["Config"]
    assert config["User"] == IMAGE_UID
    assert config["Cmd"] == ["functions-framework"]


def _open(container: ImageContainer, path: str) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    conn = container.connect(30)
    conn.request("GET", path, headers={"Authorization": basic()})
    resp = conn.getresponse()
    assert resp.status == 200, resp.read()[:300]
    return conn, resp


def test_logs_container_serves_load_and_ends_streams_with_resume_cursor_on_sigterm(containers, sim: Simulator) -> None:
    done = sim.play(SCENARIOS["success"](), LISTENER_NAMESPACE)
    done.wait(60)
    container = containers("logs")
    assert trouble(container.log()) == [], "at start"

    run, hold = held_run(sim)
    concurrency = knative_services()["logs"]["spec"]["template"]["spec"]["containerConcurrency"]
    try:
        streams = [_open(container, f"/logs/{run.name}?wait=30") for _ in range(concurrency - 2)]
        firsts = [resp.readline() for _, resp in streams]  # the held step's first line, then silence
        assert all(first.startswith(b"\r[") for first in firsts), firsts

        def finished_log(_: int) -> bytes:
            status, _, body = container.get(f"/logs/{done.name}")
            assert status == 200
            return body

        with ThreadPoolExecutor(2) as pool:  # the two threads containerConcurrency leaves
            bodies = list(pool.map(finished_log, range(40)))
        assert all(f"PipelineRun {done.name} Succeeded".encode() in body for body in bodies)
        assert container.get("/health/readiness", auth=None)[0] == 200
        assert trouble(container.log()) == [], "under load"

        ended: list[bytes] = [b""] * len(streams)

        def finish(index: int) -> None:
            ended[index] = streams[index][1].read()  # raises unless the chunked body ends cleanly

        readers = [threading.Thread(target=finish, args=(i,)) for i in range(len(streams))]
        for reader in readers:
            reader.start()
        assert container.stop(timeout=STOP_TIMEOUT) == 0, container.log()
        for reader in readers:
            reader.join(30)
        assert container.stop_seconds is not None and container.stop_seconds < PROMPT_EXIT_SECONDS
    finally:
        hold.set()
    tokens = []
    for first, rest in zip(firsts, ended, strict=True):
        lines = (first + rest).split(b"\n")
        assert lines[-1] == b"", "the body ends at a line boundary"
        assert b"shutting down" in lines[-2] and RESUME_MARK.encode() in lines[-2], lines[-3:]
        tokens.append(lines[-2].split(RESUME_MARK.encode())[1].decode())
    assert trouble(container.log()) == [], "at stop"

    # A new pod picks the stream up where the cursor says, without repeating what was sent.
    run.wait(60)
    successor = containers("logs")
    status, _, body = successor.get(f"/logs/{run.name}?resume={tokens[0]}")
    assert status == 200
    assert f"PipelineRun {run.name} Succeeded".encode() in body
    assert firsts[0].strip() not in body
    assert successor.stop(timeout=STOP_TIMEOUT) == 0
    assert trouble(successor.log()) == []


def test_health_runs_as_another_uid_as_func_deploys_it(containers) -> None:
    # `func deploy` runs the container as uid 1001, group 0: no passwd entry, same read-only root.
    container = containers("health", user="1001:0")
    assert container.get("/health", auth=None)[0] == 200
    assert container.get("/health/readiness", auth=None)[0] == 200
    assert container.stop(timeout=STOP_TIMEOUT) == 0
    assert container.stop_seconds is not None and container.stop_seconds < PROMPT_EXIT_SECONDS
    assert trouble(container.log()) == []


def test_negative_control_the_log_check_sees_gunicorn_failing_to_write_under_home(containers) -> None:
    # HOME as the base image's nologin user has it: gunicorn's control socket cannot be made.
    container = containers("health", HOME="/nonexistent")
    assert any("Control server error" in line for line in trouble(container.log())), container.log()


def test_archive_for_a_nodes_containerd_names_this_image(ref: str) -> None:
    archive = image_archive()
    with tarfile.open(archive) as tar:
        index = json.load(tar.extractfile("index.json"))
    [manifest] = index["manifests"]
    assert manifest["annotations"]["org.opencontainers.image.ref.name"] == ref
    assert image_archive() == archive and archive.stat().st_mtime_ns == image_archive().stat().st_mtime_ns
    repository = ref.rsplit(":", 1)[0]
    assert ctr_import_command(archive)[-4:] == ["import", "--base-name", repository, str(archive)]
