"""Shared fixtures: one real sandbox cluster per test session."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.sandbox.cluster import Cluster


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
