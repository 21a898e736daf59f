"""Cold start of the status function's container in a real pod on the node (issue 17, item 4):
the image as Knative runs it (service.yaml's pod spec, in-cluster credentials), beside the bare
process of coldstart.py in the same run.

The clock starts when runc created the container (its state's nanosecond `created`; the API's
`startedAt` has whole seconds). The pod's address is taken from the node's IPAM as soon as it is
handed out, before the container starts, so polling never waits for the kubelet's status update.
"""

from __future__ import annotations

import socket
import time

from bench.clients import http_status
from bench.harness import Bench, Figure
from image import build
from tests.listener_pods import ListenerPods
from tests.sandbox.cluster import ApiError
from tests.support import basic
from tests.test_manifests import container, knative_services

POLL_SECONDS = 0.005
# A SYN to an address whose veth is not up yet is dropped, not refused: give up on it quickly.
CONNECT_SECONDS = 0.2


def pod_coldstart(b: Bench, fig: Figure, run_name: str) -> None:
    if b.cluster.node is None or not b.cluster.in_cluster:
        fig.notes.append("Container in a real pod: only on the node upstream (a real kubelet runs the image).")
        return
    try:
        build.engine()
    except SystemExit as missing:
        fig.notes.append(f"Container in a real pod: not measured, no container engine to build the image ({missing}).")
        return
    pods = ListenerPods(b.cluster).deploy()
    fig.extra["pod_image"] = pods.image
    fig.extra["pod_image_import_s"] = round(pods.import_seconds, 2)
    for _ in range(b.sizes.cold_starts):
        known = pods.allocated()
        created = time.time()
        name = pods.create("status")
        try:
            address = pods.first_address(name, known)
            health = _first_ok(address, "/health/liveness", None)
            answered = _first_ok(address, f"/status/{run_name}", basic())
            started = _container_started(pods, name)
        finally:
            pods.delete(name)
        fig.add("container start -> first /health/liveness 200 (real pod)", "ms", (health - started) * 1000)
        fig.add("container start -> first /status 200 (real pod)", "ms", (answered - started) * 1000)
        fig.add("pod created -> first /status 200 (real pod)", "ms", (answered - created) * 1000)
        _wait_gone(pods, name)
    fig.notes.append(
        "Real pod: service.yaml's status Service as the Pod Knative runs (read-only root, no capabilities, "
        "uid 10001, token and CA mounted by the kubelet, API through the `kubernetes` Service), on kubelet 1.20.2 "
        "+ containerd + runc, its own network namespace on the node's bridge; no queue-proxy. From runc's "
        "container creation; /health/liveness polled every 5 ms, then /status until 200. `pod created` adds "
        "the API write, the kubelet's sync, the sandbox and its network."
    )


def _first_ok(address: str, path: str, auth: str | None, timeout: float = 60.0) -> float:
    """Wall-clock time of the first 200 (runc's clock is the wall clock too)."""
    port = container(knative_services()["status"])["ports"][0]["containerPort"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection((address, port), CONNECT_SECONDS).close()
            if http_status(port, path, auth, host=address) == 200:
                return time.time()
        except OSError:
            pass
        time.sleep(POLL_SECONDS)
    raise TimeoutError(f"{path} on {address} not answering after {timeout:.0f}s")


def _container_started(pods: ListenerPods, name: str, timeout: float = 30.0) -> float:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return pods.container_started(name)
        except (KeyError, ValueError, IndexError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)  # the kubelet has not reported the container's ID yet


def _wait_gone(pods: ListenerPods, name: str, timeout: float = 90.0) -> None:
    """The next sample starts on a quiet node: the old pod's SIGTERM and clean-up are over."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            pods.get(name)
        except ApiError as err:
            if err.status == 404:
                return
            raise
        time.sleep(0.2)
    raise TimeoutError(f"pod {name} still there after {timeout:.0f}s")
