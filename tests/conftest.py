"""Shared fixtures: one real sandbox cluster per test session."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.needs import need_real_node
from tests.sandbox.cluster import LISTENER_NAMESPACE, Cluster
from tests.sandbox.simulator import Simulator
from tests.support import Listener, grant_listener

# Modules that hold the machine, not just a sandbox of their own: the one real node (the kubelet's
# and containerd's fixed host paths), podman's containers and sysctls, the bench, and checks that
# compare the whole machine before and after. Under `pytest -n` (make test) they run one after
# another on one worker; every other module runs whole on whichever worker is free, so a module's
# fixtures are set up once.
MACHINE_MODULES = frozenset(
    {
        "test_bench_smoke",
        "test_image_container",
        "test_in_cluster",
        "test_real_node_lifecycle",
        "test_real_pods",
    }
)


def schedule_group(nodeid: str) -> str:
    """The scope a test is scheduled in under `pytest -n`: its module, or `machine`."""
    module = nodeid.split("::", 1)[0]
    return "machine" if Path(module).stem in MACHINE_MODULES else module


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    # A scheduler, not `xdist_group` marks: pytest-xdist 3.8 tags a grouped test by rewriting an
    # attribute pytest 9 no longer reads, so `--dist loadgroup` quietly spreads the group.
    from xdist.scheduler import LoadScopeScheduling

    class ModuleScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return schedule_group(nodeid)

    return ModuleScheduling(config, log)


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    """etcd + kube-apiserver 1.20 + kubelet stand-in, Tekton/Knative/Gateway API CRDs installed."""
    with Cluster.start(install_extra_crds=True) as running:
        yield running


@pytest.fixture
def namespace(cluster: Cluster) -> str:
    """A fresh namespace for one test."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    cluster.ensure_namespace(name)
    return name


@pytest.fixture(scope="session")
def listener(cluster: Cluster) -> Iterator[Listener]:
    """All functions behind the local router, as the listener's ServiceAccount with only the
    shipped Role, reading `tekton-pipelines`."""
    grant_listener(cluster, LISTENER_NAMESPACE)
    with Listener(cluster, HEARTBEAT_SECONDS="15") as running:
        yield running


@pytest.fixture(scope="session")
def sim(cluster: Cluster) -> Iterator[Simulator]:
    simulator = Simulator(cluster)
    yield simulator
    simulator.stop()


@pytest.fixture(scope="module")
def cutting(cluster: Cluster) -> Iterator[Listener]:
    """A listener whose streams end after 2 s (STREAM_DEADLINE_SECONDS), as one just under
    Knative's timeoutSeconds does, but every couple of seconds."""
    grant_listener(cluster, LISTENER_NAMESPACE)
    with Listener(cluster, STREAM_DEADLINE_SECONDS="2", HEARTBEAT_SECONDS="1") as running:
        yield running


# -- the real node: kubelet + containerd + runc running real pods ----------------------------------
@pytest.fixture(scope="module")
def node_cluster() -> Iterator[Cluster]:
    """A second sandbox cluster with a real node beside the stand-in (tests/sandbox/node.py), per
    module: there is one real node per machine, and other modules (the lifecycle tests, the
    bench's node upstream) bring up their own.

    Skipped, with the reason, where this machine cannot run a kubelet; under CI=true that is
    a failure instead: CI must never pass without the real-pod tests."""
    need_real_node()
    with Cluster.start(real_node=True) as running:
        yield running


@pytest.fixture(scope="module")
def real_sim(node_cluster: Cluster) -> Iterator[Simulator]:
    """Plays scenarios whose TaskRuns' pods run on the real node."""
    simulator = Simulator(node_cluster, real_pods=True)
    yield simulator
    simulator.stop()


@pytest.fixture(scope="module")
def real_listener(node_cluster: Cluster) -> Iterator[Listener]:
    grant_listener(node_cluster, LISTENER_NAMESPACE)
    with Listener(node_cluster, HEARTBEAT_SECONDS="15") as running:
        yield running
