"""Shared fixtures: one real sandbox cluster per test session."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.sandbox.cluster import LISTENER_NAMESPACE, Cluster
from tests.sandbox.simulator import Simulator
from tests.support import Listener, grant_listener


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
